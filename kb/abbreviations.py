"""The corpus's abbreviations as query understanding looks them up: short form (any case) ->
long forms, most widely defined first. Built from the pairs ingestion mined and stored."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator, Mapping

from kb.types import Abbreviation


class AbbreviationMap(Mapping[str, list[str]]):
    """Read-only, case-insensitive: m["cni"] == m["CNI"]. Plurals are stored singular ("CNIs"
    defines "CNI"), so strip a plural "s" before looking one up."""

    def __init__(self, pairs: Iterable[Abbreviation]) -> None:
        sources: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        spelling: dict[tuple[str, str], str] = {}
        for a in pairs:
            key, long_key = a.short.casefold(), a.long.casefold()
            sources[key][long_key].update(a.sources)  # "CR" and "Cr" as remission: one entry
            spelling.setdefault((key, long_key), a.long)
        # Most defining documents first; ties alphabetically, so the order is stable.
        self._longs: dict[str, list[str]] = {
            key: [spelling[(key, lk)] for lk, _ in sorted(by_long.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
            for key, by_long in sources.items()}
        self._counts = {(key, lk): len(s) for key, by_long in sources.items() for lk, s in by_long.items()}

    def __getitem__(self, short: str) -> list[str]:
        return list(self._longs[short.casefold()])

    def __contains__(self, short: object) -> bool:
        return isinstance(short, str) and short.casefold() in self._longs

    def __iter__(self) -> Iterator[str]:
        return iter(self._longs)

    def __len__(self) -> int:
        return len(self._longs)

    def doc_count(self, short: str, long: str) -> int:
        """Documents that define `short` as `long` (0 if none)."""
        return self._counts.get((short.casefold(), long.casefold()), 0)
