"""The draft-audit part of `python -m eval`: every sentence of eval/audit/labelled.yaml audited
(as a one-sentence draft followed by the set's reference list) over an index of corpus/ plus the
development documents (eval/dev/docs/, indexed as dev/<file>); verdict distribution, per-verdict
precision and recall, and the guarantees asserted by tests/test_audit_eval.py. Writes
docs/AUDIT.md (its numbers section)."""
from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from eval.report import markdown_table, replace_marked
from kb.audit_types import SUPPORTED, VERDICTS
from kb.config import REPO_ROOT, Settings

logger = logging.getLogger(__name__)

LABELLED = REPO_ROOT / "eval" / "audit" / "labelled.yaml"
WORK_DIR = REPO_ROOT / ".cache" / "audit-eval"  # staged corpus + index (incremental), not committed
DEV_PREFIX = "dev/"


@dataclass(frozen=True)
class Item:
    id: str
    kind: str
    verdict: str
    text: str


@dataclass
class AuditEvalResult:
    items: list[Item]
    predicted: dict[str, str]  # id -> verdict
    reasons: dict[str, str]
    split_errors: list[str]  # items the splitter did not read as one sentence
    seconds: float
    n_documents: int
    per_verdict: dict[str, tuple[float | None, float | None, int, int]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return sum(self.predicted[i.id] == i.verdict for i in self.items) / max(1, len(self.items))

    @property
    def altered_supported(self) -> list[str]:
        return [i.id for i in self.items if i.kind == "altered-number" and self.predicted[i.id] in SUPPORTED]

    def precision(self, verdict: str) -> float | None:
        return self.per_verdict[verdict][0]

    def recall(self, verdict: str) -> float | None:
        return self.per_verdict[verdict][1]


def load_items(path: Path = LABELLED) -> tuple[str, list[Item]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = [Item(id=str(d["id"]), kind=str(d["kind"]), verdict=str(d["verdict"]), text=str(d["text"]))
             for d in data["items"]]
    unknown = [i.id for i in items if i.verdict not in VERDICTS]
    if unknown:
        raise ValueError(f"{path}: unknown verdicts in items {unknown}")
    return str(data.get("references") or ""), items


def stage_corpus(work: Path = WORK_DIR) -> Path:
    """corpus/ and eval/dev/docs/ in one folder with one catalogue (dev documents under dev/)."""
    from eval.dev import dev_docs_dir, load_dev_catalogue

    dest = work / "corpus"
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "dev").mkdir(parents=True)
    seed = REPO_ROOT / "corpus"
    catalogue = yaml.safe_load((seed / "catalogue.yaml").read_text(encoding="utf-8")) or {}
    entries = dict(catalogue.get("documents") or {})
    for f in sorted(seed.iterdir()):
        if f.is_file() and f.name != "catalogue.yaml":
            shutil.copy2(f, dest / f.name)
    for name, doc in load_dev_catalogue().items():
        src = dev_docs_dir() / name
        if src.is_file():
            shutil.copy2(src, dest / "dev" / name)
            entries[DEV_PREFIX + name] = doc.metadata()
    (dest / "catalogue.yaml").write_text(yaml.safe_dump({"documents": entries}, allow_unicode=True),
                                         encoding="utf-8")
    return dest


def open_eval_kb(work: Path = WORK_DIR, *, show_progress: bool = False) -> Any:
    """The index of corpus/ + dev documents (built or updated incrementally), opened."""
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    corpus = stage_corpus(work)
    settings = replace(Settings(), corpus_dir=corpus, index_dir=work / "index")
    ingest_corpus(corpus, settings.index_dir, settings=settings, show_progress=show_progress)
    return open_kb(settings.index_dir, settings=settings)


def run(base: Any = None, *, show_progress: bool = False) -> AuditEvalResult:
    from kb.audit import audit_text

    base = base if base is not None else open_eval_kb(show_progress=show_progress)
    references, items = load_items()
    predicted: dict[str, str] = {}
    reasons: dict[str, str] = {}
    split_errors: list[str] = []
    started = time.perf_counter()
    for item in items:
        report = audit_text(base, f"{item.text}\n\nReferences\n{references}")
        if len(report.sentences) != 1:
            split_errors.append(item.id)
        s = report.sentences[0]
        predicted[item.id], reasons[item.id] = s.verdict, s.reason
    seconds = time.perf_counter() - started
    res = AuditEvalResult(items=items, predicted=predicted, reasons=reasons, split_errors=split_errors,
                          seconds=seconds, n_documents=len(base.documents))
    for v in VERDICTS:
        tp = sum(1 for i in items if i.verdict == v and predicted[i.id] == v)
        called = sum(1 for i in items if predicted[i.id] == v)
        gold = sum(1 for i in items if i.verdict == v)
        res.per_verdict[v] = (tp / called if called else None, tp / gold if gold else None, called, gold)
    for i in items:
        if predicted[i.id] != i.verdict:
            logger.info("audit %s (%s): expected %s, got %s — %s", i.id, i.kind, i.verdict, predicted[i.id],
                        reasons[i.id][:200])
    return res


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def render(res: AuditEvalResult) -> str:
    rows = [(v, gold, called, _pct(p), _pct(r)) for v, (p, r, called, gold) in res.per_verdict.items()]
    kinds = Counter(i.kind for i in res.items)
    by_kind = []
    for kind, n in kinds.items():
        got = Counter(res.predicted[i.id] for i in res.items if i.kind == kind)
        by_kind.append((kind, n, ", ".join(f"{v} {c}" for v, c in got.most_common())))
    wrong = [(i.id, i.kind, i.verdict, res.predicted[i.id], res.reasons[i.id][:160].replace("|", "/"))
             for i in res.items if res.predicted[i.id] != i.verdict]
    parts = [
        f"{len(res.items)} labelled sentences (`eval/audit/labelled.yaml`) over {res.n_documents} documents "
        f"(corpus/ + eval/dev/docs/); {res.seconds:.1f} s for all of them "
        f"({1000 * res.seconds / max(1, len(res.items)):.0f} ms a sentence). Accuracy {res.accuracy:.0%}.",
        "",
        markdown_table(("verdict", "labelled", "called", "precision", "recall"), rows),
        "",
        f"- Sentences with an altered number called supported: **{len(res.altered_supported)}**"
        + (f" ({', '.join(res.altered_supported)})" if res.altered_supported else ""),
        f"- Precision of numbers-differ: **{_pct(res.precision('numbers-differ'))}**, of not-found: "
        f"**{_pct(res.precision('not-found'))}** (target: at least 90% each)",
        f"- Items not read as one sentence: {len(res.split_errors)}",
        "",
        "Verdicts by kind of sentence:",
        "",
        markdown_table(("kind", "sentences", "verdicts given"), by_kind),
    ]
    if wrong:
        parts += ["", "Disagreements with the labels:", "",
                  markdown_table(("id", "kind", "label", "verdict", "reason (start)"), wrong)]
    return "\n".join(parts)


SECTION_START = "<!-- audit-eval:start -->"
SECTION_END = "<!-- audit-eval:end -->"


def write(res: AuditEvalResult, doc: Path, header: str) -> None:
    """Replace the generated section of docs/AUDIT.md (the rest of the page is prose)."""
    replace_marked(doc, SECTION_START, SECTION_END, f"{header}\n\n{render(res)}", "Draft audit")
