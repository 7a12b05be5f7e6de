"""CLI: python -m kb ask [--index DIR] [--json] QUESTION [QUESTION ...]
         python -m kb search [--index DIR] [-k N] QUERY
         python -m kb audit [--index DIR] [--json] [--csv OUT] [--markdown OUT] FILE"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from kb.errors import KBError
from kb.types import Answer


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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from kb.api import open_kb

    draft = ""
    if args.command == "audit":
        from kb.audit_input import check_draft, read_draft
        from kb.config import get_settings

        limit = get_settings().audit.max_draft_chars
        try:
            draft = check_draft("stdin", sys.stdin.read(), limit) if args.file == "-" else \
                read_draft(args.file, Path(args.file).read_bytes(), limit)
        except OSError as e:
            print(f"kb: {args.file}: cannot read it ({e.strerror or e})", file=sys.stderr)
            return 2
        except KBError as e:
            print(f"kb: {e}", file=sys.stderr)
            return 2
    try:
        base = open_kb(args.index)  # one model load for all the questions
    except KBError as e:
        print(f"kb: {e}", file=sys.stderr)
        return 2
    if args.command == "audit":
        return _audit(base, draft, args)
    if args.command == "search":
        for hit in base.search(args.query, k=args.k):
            c = hit.chunk
            print(f"{hit.rank}. {hit.score:.4f} {c.source} [{c.start}:{c.end}] {c.section}")
            print("   " + " ".join(c.text.split())[:300])
            for warning in base.warnings_for(c):
                print(f"   ⚠ {warning}")
        return 0
    for q in args.questions:
        answer = base.ask(q)
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(_render(answer), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
