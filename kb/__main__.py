"""CLI: python -m kb ask [--index DIR] [--json] QUESTION [QUESTION ...]
         python -m kb search [--index DIR] [-k N] QUERY
         python -m kb audit [--index DIR] [--json] [--csv OUT] [--markdown OUT] FILE"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kb.errors import KBError
from kb.types import Answer

if TYPE_CHECKING:
    from kb.api import KnowledgeBase
    from kb.embed import Embedder


def _hook_embedder() -> "Embedder | None":
    """The embedder the FSGS_KB_EMBEDDER test hook names (kb.embed.embedder_factory), or None:
    then the model the index records is loaded."""
    from kb.config import get_settings
    from kb.embed import embedder_factory

    spec = get_settings().embedder_factory
    return embedder_factory(spec)() if spec else None


def _render(answer: Answer) -> str:
    from kb.render import to_cli

    return to_cli(answer)


def _audit(base, draft: str, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from kb import audit_export
    from kb.audit import audit_text
    from kb.audit_types import VERDICTS

    report = audit_text(base, draft, name="" if args.file == "-" else Path(args.file).name)
    if args.csv:
        args.csv.write_text(audit_export.to_csv(report), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(audit_export.to_markdown(report), encoding="utf-8")
    if args.json:
        sys.stdout.write(audit_export.to_jsonl(report))
        return 0
    for s in report.sentences:
        print(f"{s.index + 1}. [{s.verdict}] {' '.join(s.text.split())}")
        for c in s.citations:
            print(f"   citation {c.text}: " + (", ".join(c.sources) if c.sources else "not resolved")
                  + (f" — {c.note}" if c.note else ""))
        print(f"   {s.reason}")
        for e in s.evidence[:1]:
            print(f"   evidence: {e.source} chars {e.start}-{e.end}: \"{' '.join(e.quote.split())}\"")
        print()
    print("Verdicts: " + ", ".join(f"{VERDICTS[v][0]}: {n}" for v, n in report.counts().items() if n))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb", description="Ask the FSGS knowledge base.")
    sub = parser.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer questions with cited passages")
    ask.add_argument("--index", type=Path, default=None, help="index folder (default: the one `make ingest` builds)")
    ask.add_argument("--json", action="store_true", help="one JSON object per question, one per line")
    ask.add_argument("questions", nargs="+", metavar="QUESTION")
    search = sub.add_parser("search", help="show the passages retrieved for a query")
    search.add_argument("--index", type=Path, default=None)
    search.add_argument("-k", type=int, default=5)
    search.add_argument("query")
    audit = sub.add_parser("audit", help="check each sentence of a draft (.txt, .md, .docx; - = stdin) against the corpus")
    audit.add_argument("--index", type=Path, default=None)
    audit.add_argument("--json", action="store_true", help="one JSON object per sentence, one per line")
    audit.add_argument("--csv", type=Path, default=None, metavar="OUT", help="also write the audit as CSV")
    audit.add_argument("--markdown", type=Path, default=None, metavar="OUT", help="also write it as Markdown")
    audit.add_argument("file", metavar="FILE")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # a character the terminal cannot take must not end the run
        sys.stdout.reconfigure(errors="backslashreplace")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from kb.api import open_kb

    draft = ""
    if args.command == "audit":
        from kb.audit_input import check_draft, read_draft
        from kb.config import get_settings

        limit = get_settings().audit.max_draft_chars
        try:
            # stdin as bytes: an invalid byte becomes U+FFFD, as in a question, not a crash
            draft = check_draft("stdin", sys.stdin.buffer.read().decode("utf-8", "replace"), limit) \
                if args.file == "-" else \
                read_draft(args.file, Path(args.file).read_bytes(), limit)
        except OSError as e:
            print(f"kb: {args.file}: cannot read it ({e.strerror or e})", file=sys.stderr)
            return 2
        except KBError as e:
            print(f"kb: {e}", file=sys.stderr)
            return 2
    try:
        base = open_kb(args.index, embedder=_hook_embedder())  # one model load for all the questions
    except KBError as e:
        print(f"kb: {e}", file=sys.stderr)
        return 2
    if args.command == "audit":
        return _audit(base, draft, args)
    if args.command == "search":
        hits = base.search(args.query, k=args.k)
        if not hits:
            from kb.question_input import clean_question, has_words

            why = "" if has_words(clean_question(args.query)) else " (the query has no letters or digits)"
            print(f"kb: no passages found{why}", file=sys.stderr)
        for hit in hits:
            c = hit.chunk
            print(f"{hit.rank}. {hit.score:.4f} {c.source} [{c.start}:{c.end}] {c.section}")
            print("   " + " ".join(c.text.split())[:300])
            for warning in base.warnings_for(c):
                print(f"   ⚠ {warning}")
        return 0
    return _ask_all(base, args.questions, as_json=args.json)


def _ask_all(base: "KnowledgeBase", questions: list[str], *, as_json: bool) -> int:
    """Answer each question in turn. One that fails is reported on stderr (and, with --json,
    as an object with "error") and the later ones are still answered; 1 if any failed."""
    from kb.question_input import clean_question

    failed = 0
    for i, q in enumerate(questions, 1):
        try:
            answer = base.ask(q)
        except Exception as e:  # noqa: BLE001 - one question must not cost the others their answers
            failed += 1
            # stderr escapes what it cannot encode; the question is shown as it was given
            print(f"kb: question {i} ({q!r}) failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            answer = Answer(question=clean_question(q), text="", error=clean_question(f"{type(e).__name__}: {e}"))
            if not as_json:
                continue
        if as_json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(_render(answer), end="\n\n", flush=True)
    if failed:
        print(f"kb: {failed} of {len(questions)} questions failed (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
