"""The answerer on the development set: an index per split (the bundled corpus plus that
split's documents, as a user adding literature would have), scored with the gold-set scorer
(eval/gold.py), with bootstrap intervals.

    from eval.dev.score import open_dev_kb, score_split
    base = open_dev_kb("tune")
    report = score_split(base, "tune")
"""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import yaml

from eval.dev import dev_docs_dir, load_dev_catalogue, load_dev_questions
from eval.gold import GoldQuestion, GoldReport, score
from kb.config import REPO_ROOT, Settings

if TYPE_CHECKING:
    from kb.api import KnowledgeBase
    from kb.embed import Embedder

CACHE = REPO_ROOT / ".cache" / "eval"


def dev_corpus(split: str, dest: Path, exclude: frozenset[str] = frozenset()) -> Path:
    """Write corpus/ plus the `split` documents of eval/dev/ (but those named in `exclude`)
    into `dest` (a corpus folder), with one catalogue holding both; files already there and
    unchanged are left alone so the index stays incremental."""
    dest.mkdir(parents=True, exist_ok=True)
    bundled = REPO_ROOT / "corpus"
    catalogue = yaml.safe_load((bundled / "catalogue.yaml").read_text(encoding="utf-8")) or {}
    entries = dict(catalogue.get("documents") or {})
    wanted: dict[str, Path] = {p.name: p for p in bundled.iterdir() if p.is_file() and p.name != "catalogue.yaml"}
    for name, doc in load_dev_catalogue().items():
        if doc.split == split and name not in exclude:
            wanted[name] = dev_docs_dir() / name
            entries[name] = doc.metadata()
    for p in dest.iterdir():
        if p.is_file() and p.name != "catalogue.yaml" and p.name not in wanted:
            p.unlink()
    for name, src in wanted.items():
        target = dest / name
        if not target.exists() or target.read_bytes() != src.read_bytes():
            shutil.copyfile(src, target)
    text = yaml.safe_dump({"documents": entries}, sort_keys=True, allow_unicode=True)
    cat = dest / "catalogue.yaml"
    if not cat.exists() or cat.read_text(encoding="utf-8") != text:
        cat.write_text(text, encoding="utf-8")
    return dest


def open_dev_kb(split: str, *, embedder: "Embedder | None" = None, settings: Settings | None = None,
                root: Path | None = None, exclude: frozenset[str] = frozenset(), label: str = ""
                ) -> "KnowledgeBase":
    """The index of corpus/ + the split's documents (built or updated under .cache/eval);
    with `exclude`, without those documents, in folders named by `label` as well."""
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    root = root or CACHE
    settings = settings or Settings()
    name = f"dev-{split}-{label}" if label else f"dev-{split}"
    corpus = dev_corpus(split, root / f"{name}-corpus", exclude)
    index = root / f"{name}-index"
    s = replace(settings, corpus_dir=corpus, index_dir=index)
    if embedder is not None:
        s = replace(s, model_name=embedder.name)
    ingest_corpus(corpus, index, embedder=embedder, settings=s, show_progress=False)
    return open_kb(index, embedder=embedder, settings=s)


def split_questions(split: str) -> list[GoldQuestion]:
    return [GoldQuestion(q.id, q.question, q.answerable, q.facts, q.sources, q.tags)
            for q in load_dev_questions() if q.split == split]


def score_split(base: "KnowledgeBase", split: str) -> GoldReport:
    return score(base, split_questions(split))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}]"


def bootstrap(report: GoldReport, n: int = 2000, seed: int = 13) -> dict[str, Interval]:
    """95% percentile intervals over questions resampled with replacement."""
    rng = random.Random(seed)
    ans = [r for r in report.rows if r.answerable]
    una = [r for r in report.rows if not r.answerable]

    def metrics(a: Sequence, u: Sequence) -> dict[str, float]:
        facts = sum(r.facts_total for r in a)
        return {
            "fact_recall": sum(r.facts_found for r in a) / facts if facts else 1.0,
            "source_top3": sum(r.source_ok for r in a) / len(a) if a else 1.0,
            "abstention": sum(r.abstained for r in u) / len(u) if u else 1.0,
            "false_abstention_rate": sum(r.abstained for r in a) / len(a) if a else 0.0,
        }

    point = metrics(ans, una)
    samples: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n):
        m = metrics([rng.choice(ans) for _ in ans] if ans else [], [rng.choice(una) for _ in una] if una else [])
        for k, v in m.items():
            samples[k].append(v)
    out = {}
    for k, v in point.items():
        xs = sorted(samples[k])
        out[k] = Interval(v, xs[int(0.025 * (n - 1))], xs[int(0.975 * (n - 1))])
    return out
