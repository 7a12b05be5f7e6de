"""`python -m ingest pubmed`: bring PubMed records into the corpus through NCBI E-utilities.

The only networked part of the product, run only when a user asks. ESearch (with history)
finds the PMIDs; EFetch returns PubMed XML in batches; each record is stored as its own file
`corpus/pubmed/<PMID>.xml` (read by the PubMed loader), then the index is updated
incrementally.

NCBI usage policy followed: every request names the tool and (when set) a contact email, an
API key is sent when NCBI_API_KEY is set, requests are spaced to at most 3 per second without
a key and 10 with one, and 429 / 5xx answers are retried with exponential backoff (honouring
Retry-After). Re-running skips PMIDs already stored; each record is written to a hidden
temporary file and renamed into place, so an interrupted run leaves only whole records and
the next run resumes where it stopped.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from tqdm import tqdm

from ingest.loaders import load_bytes
from kb.config import PubMedSettings, Settings, get_settings
from kb.errors import KBError, NetworkError, SourceError

if TYPE_CHECKING:
    from ingest.build import EmbedderFactory, IngestReport
    from kb.embed import Embedder

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]  # (records done, records in total, message)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_WAIT_S = 60.0  # a Retry-After longer than this is not honoured in full
_PMID_RE = re.compile(r"^\d{1,9}$")


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What one import did. `failed` holds one message per batch or record that did not land."""

    query: str
    found: int  # PMIDs the search matched (or the PMID file listed)
    requested: int  # of which this run considered (at most --max)
    added: tuple[str, ...] = ()  # PMIDs stored by this run
    skipped: tuple[str, ...] = ()  # PMIDs already in the corpus
    failed: tuple[str, ...] = ()
    not_returned: tuple[str, ...] = ()  # PMIDs asked for that EFetch did not return
    ingest: "IngestReport | None" = None
    ingest_error: str = ""

    def summary(self) -> str:
        parts = [f"PubMed: {self.found} found, {self.requested} considered, {len(self.added)} added, "
                 f"{len(self.skipped)} already present"]
        if self.not_returned:
            parts.append(f"{len(self.not_returned)} not returned by EFetch")
        if self.failed:
            parts.append(f"{len(self.failed)} failed: " + "; ".join(self.failed))
        text = " | ".join(parts)
        if self.ingest is not None:
            text += "\n" + self.ingest.summary()
        if self.ingest_error:
            text += f"\nindex not updated: {self.ingest_error}"
        return text


@dataclass(frozen=True)
class SearchResult:
    count: int
    ids: tuple[str, ...]
    webenv: str = ""
    query_key: str = ""


# ---------------------------------------------------------------------------------------
# the E-utilities client
# ---------------------------------------------------------------------------------------


class EUtilsClient:
    """GET requests to E-utilities with NCBI's parameters, rate limit and retries."""

    def __init__(self, settings: PubMedSettings, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.base = settings.eutils_url.rstrip("/") + "/"
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"{settings.tool} (python-requests {requests.__version__})"
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._next_at = 0.0
        self.requests_made = 0

    def _wait_turn(self) -> None:
        """Space requests to the policy's rate (shared by all threads using this client)."""
        interval = 1.0 / self.settings.rate if self.settings.rate > 0 else 0.0
        with self._lock:
            now = self._clock()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + interval
        if wait > 0:
            self._sleep(wait)

    def _params(self, params: dict[str, str]) -> dict[str, str]:
        out = {"db": "pubmed", **params, "tool": self.settings.tool}
        if self.settings.email:
            out["email"] = self.settings.email
        if self.settings.api_key:
            out["api_key"] = self.settings.api_key
        return out

    def get(self, endpoint: str, params: dict[str, str]) -> bytes:
        url = self.base + endpoint
        attempts = self.settings.retries + 1
        last = ""
        for attempt in range(attempts):
            self._wait_turn()
            self.requests_made += 1
            try:
                resp = self.session.get(url, params=self._params(params), timeout=self.settings.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = _net_reason(exc)
                if attempt + 1 < attempts:
                    self._backoff(attempt, None)
                    continue
                raise NetworkError(
                    offline=True, message=f"cannot reach NCBI E-utilities at {self.base} ({last}); the network seems "
                    "unavailable. Check the connection, or set FSGS_KB_EUTILS_URL to a reachable "
                    "mirror.") from None
            if resp.status_code == 200:
                return resp.content
            last = f"HTTP {resp.status_code}"
            if resp.status_code in _RETRY_STATUS and attempt + 1 < attempts:
                logger.info("%s answered %s; retrying", endpoint, last)
                self._backoff(attempt, resp.headers.get("Retry-After"))
                continue
            body = _brief(resp.text or "")
            raise NetworkError(f"E-utilities {endpoint} answered {last}"
                               + (f" after {attempts} attempts" if resp.status_code in _RETRY_STATUS else "")
                               + (f": {body}" if body else ""))
        raise NetworkError(f"E-utilities {endpoint} failed: {last}")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        wait = self.settings.backoff_s * (2 ** attempt)
        if retry_after:
            try:
                wait = max(wait, min(float(retry_after), _MAX_WAIT_S))
            except ValueError:
                pass  # an HTTP date: keep the exponential wait
        self._sleep(wait)

    # -- the two E-utilities used --------------------------------------------------------

    def esearch(self, query: str, retmax: int, since: int | None = None) -> SearchResult:
        params = {"term": query, "usehistory": "y", "retmax": str(retmax), "retstart": "0"}
        if since:
            params.update({"datetype": "pdat", "mindate": str(since), "maxdate": "3000"})
        root = _parse_xml("ESearch answer", self.get("esearch.fcgi", params))
        if root.tag != "eSearchResult":
            raise NetworkError(f"ESearch answer is not an eSearchResult (root <{root.tag}>)")
        error = _text(root.find("ERROR"))
        if error:
            raise NetworkError(f"ESearch rejected the query {query!r}: {error}")
        count = int(_text(root.find("Count")) or 0)
        ids = tuple(_text(i) for i in root.findall("IdList/Id") if _PMID_RE.match(_text(i)))
        return SearchResult(count=count, ids=ids, webenv=_text(root.find("WebEnv")),
                            query_key=_text(root.find("QueryKey")))

    def efetch_history(self, search: SearchResult, retstart: int, retmax: int) -> bytes:
        return self.get("efetch.fcgi", {"query_key": search.query_key, "WebEnv": search.webenv,
                                        "retstart": str(retstart), "retmax": str(retmax),
                                        "rettype": "xml", "retmode": "xml"})

    def efetch_ids(self, ids: Sequence[str]) -> bytes:
        return self.get("efetch.fcgi", {"id": ",".join(ids), "rettype": "xml", "retmode": "xml"})


# ---------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------

_DTD_SUBSET_RE = re.compile(rb"<!DOCTYPE[^>\[]*\[", re.I)
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _parse_xml(what: str, data: bytes) -> ET.Element:
    # Same rule as the loader: no internal DTD subset, so no entity expansion attack.
    if b"<!ENTITY" in data or _DTD_SUBSET_RE.search(data):
        raise SourceError(what, "XML with DTD entity declarations is refused")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise SourceError(what, f"malformed XML ({_brief(exc)})") from None


def split_records(data: bytes) -> list[tuple[str, bytes]]:
    """(PMID, one-record PubMed XML file) for each article of an EFetch answer."""
    root = _parse_xml("EFetch answer", data)
    if root.tag != "PubmedArticleSet":
        message = _text(root.find("ERROR")) if root.tag == "eFetchResult" else ""
        raise SourceError("EFetch answer", message or f"not a PubmedArticleSet (root <{root.tag}>)")
    out: list[tuple[str, bytes]] = []
    for el in root:
        if el.tag == "PubmedArticle":
            pmid = _text(el.find("MedlineCitation/PMID"))
        elif el.tag == "PubmedBookArticle":
            pmid = _text(el.find("BookDocument/PMID"))
        else:
            continue
        body = ET.tostring(el, encoding="unicode")
        out.append((pmid, (_XML_HEAD + "<PubmedArticleSet>\n" + body.strip() + "\n</PubmedArticleSet>\n").encode("utf-8")))
    return out


def record_path(folder: Path, pmid: str) -> Path:
    return folder / f"{pmid}.xml"


def present_pmids(folder: Path) -> set[str]:
    """PMIDs already stored (a whole file exists for each: temporary files are hidden)."""
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.xml") if _PMID_RE.match(p.stem)}


def write_record(folder: Path, pmid: str, data: bytes) -> Path:
    """Write to a hidden temporary file, then rename: a reader (or a rerun) never sees half a
    record, and the build ignores hidden files."""
    folder.mkdir(parents=True, exist_ok=True)
    target = record_path(folder, pmid)
    tmp = folder / f".{pmid}.xml.part"
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _remove_partials(folder: Path) -> None:
    if folder.is_dir():
        for p in folder.glob(".*.xml.part"):
            p.unlink(missing_ok=True)


def read_pmid_file(path: Path) -> list[str]:
    """PMIDs from a file: whitespace/comma separated, '#' comments ignored, order kept."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(str(path), f"cannot read the PMID list ({_brief(exc)})") from None
    pmids: list[str] = []
    for line in text.splitlines():
        for token in re.split(r"[\s,;]+", line.split("#", 1)[0]):
            if not token:
                continue
            if not _PMID_RE.match(token):
                raise SourceError(str(path), f"{token!r} is not a PMID (digits only)")
            pmids.append(token)
    return list(dict.fromkeys(pmids))


# ---------------------------------------------------------------------------------------
# the import
# ---------------------------------------------------------------------------------------


def import_pubmed(
    query: str = "",
    *,
    pmids: Iterable[str] | None = None,
    max_records: int = 100,
    since: int | None = None,
    settings: Settings | None = None,
    client: EUtilsClient | None = None,
    ingest: bool = True,
    embedder: "Embedder | EmbedderFactory | None" = None,
    show_progress: bool = True,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Search (or take `pmids`), fetch the records not yet in the corpus, store each as
    corpus/pubmed/<PMID>.xml, then update the index (unless `ingest` is False)."""
    settings = settings or get_settings()
    ps = settings.pubmed
    if not query.strip() and pmids is None:
        raise KBError("a PubMed import needs a query or a list of PMIDs")
    if max_records < 1:
        raise KBError(f"--max must be at least 1 (got {max_records})")
    max_records = min(max_records, ps.max_records)
    client = client or EUtilsClient(ps)
    folder = settings.corpus_dir / ps.subdir
    _remove_partials(folder)  # leftovers of a run killed mid-write
    have = present_pmids(folder)

    search: SearchResult | None = None
    if pmids is None:
        search = client.esearch(query, max_records, since)
        wanted = list(search.ids[:max_records])
        found = search.count
        label = query
    else:
        wanted = list(dict.fromkeys(pmids))[:max_records]
        found = len(list(dict.fromkeys(pmids)))
        label = query or f"{found} PMIDs"

    added: list[str] = []
    skipped = [p for p in wanted if p in have]
    failed: list[str] = []
    lost: set[str] = set()  # PMIDs of failed batches or records (reported in `failed`)
    seen: set[str] = set()
    total = len(wanted)
    done = 0
    bar = tqdm(total=total, unit="record", desc="PubMed", disable=not show_progress)

    def progress(n: int, message: str) -> None:
        nonlocal done
        done += n
        bar.update(n)
        if on_progress is not None:
            on_progress(done, total, message)

    try:
        size = max(1, ps.batch_size)
        for start in range(0, total, size):
            batch = wanted[start:start + size]
            new = [p for p in batch if p not in have]
            where = f"records {start + 1}-{start + len(batch)}"
            if not new:
                progress(len(batch), f"{where}: already present")
                continue
            try:
                if search is not None and search.webenv and search.query_key:
                    data = client.efetch_history(search, start, len(batch))
                else:
                    data = client.efetch_ids(new)
                records = split_records(data)
            except SourceError as exc:  # a malformed batch: report it, keep the others
                failed.append(f"{where} ({exc.reason})")
                lost.update(new)
                logger.warning("PubMed %s not stored: %s", where, exc.reason)
                progress(len(batch), f"{where}: failed")
                continue
            except NetworkError as exc:
                if exc.offline:
                    raise  # offline: stop; what landed stays and a rerun resumes
                failed.append(f"{where} ({exc})")
                lost.update(new)
                logger.warning("PubMed %s not fetched: %s", where, exc)
                progress(len(batch), f"{where}: failed")
                continue
            for pmid, record in records:
                if not _PMID_RE.match(pmid):
                    failed.append(f"a record of {where} has no usable PMID")
                    continue
                if pmid in have or pmid in seen:
                    continue
                try:
                    load_bytes(f"{pmid}.xml", record)  # the loader must be able to read it
                except SourceError as exc:
                    failed.append(f"PMID {pmid} ({exc.reason})")
                    lost.add(pmid)
                    continue
                write_record(folder, pmid, record)
                seen.add(pmid)
                added.append(pmid)
            progress(len(batch), f"{where}: {len([p for p in new if p in seen])} added")
    finally:
        bar.close()

    not_returned = tuple(p for p in wanted if p not in have and p not in seen and p not in lost)
    report = ImportReport(query=label, found=found, requested=total, added=tuple(added),
                          skipped=tuple(skipped), failed=tuple(failed), not_returned=not_returned)
    if ingest:
        from ingest.build import ingest_corpus

        try:
            ing = ingest_corpus(settings.corpus_dir, settings.index_dir, embedder=embedder,
                                settings=settings, show_progress=show_progress)
        except KBError as exc:
            return replace(report, ingest_error=str(exc))
        return replace(report, ingest=ing)
    return report


def network_available(settings: Settings | None = None, timeout_s: float = 3.0) -> tuple[bool, str]:
    """(reachable, message): one quick EInfo request, for the UI to enable its import form."""
    ps = (settings or get_settings()).pubmed
    try:
        resp = requests.get(ps.eutils_url.rstrip("/") + "/einfo.fcgi",
                            params={"db": "pubmed", "tool": ps.tool}, timeout=timeout_s)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return False, f"NCBI E-utilities at {ps.eutils_url} cannot be reached ({_net_reason(exc)})"
    if resp.status_code >= 500:
        return False, f"NCBI E-utilities at {ps.eutils_url} answered HTTP {resp.status_code}"
    return True, ""


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------


def _net_reason(exc: BaseException) -> str:
    """A short reason for a failed connection, instead of urllib3's long repr."""
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    for needle, reason in (("Connection refused", "connection refused"),
                           ("Failed to resolve", "host name not found"),
                           ("Name or service not known", "host name not found"),
                           ("Temporary failure in name resolution", "host name not found"),
                           ("Network is unreachable", "network unreachable"),
                           ("No route to host", "no route to host")):
        if needle in text:
            return reason
    return _brief(exc)


def _text(el: ET.Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _brief(exc: object) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 200 else msg[:197] + "..."


__all__ = ["EUtilsClient", "ImportReport", "SearchResult", "import_pubmed", "network_available",
           "present_pmids", "read_pmid_file", "split_records", "write_record"]
