"""CLI: python -m kb ask [--index DIR] [--json] QUESTION [QUESTION ...]
         python -m kb search [--index DIR] [-k N] QUERY"""
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from kb.api import open_kb

    try:
        base = open_kb(args.index)  # one model load for all the questions
    except KBError as e:
        print(f"kb: {e}", file=sys.stderr)
        return 2
    if args.command == "search":
        for hit in base.search(args.query, k=args.k):
            c = hit.chunk
            print(f"{hit.rank}. {hit.score:.4f} {c.source} [{c.start}:{c.end}] {c.section}")
            print("   " + " ".join(c.text.split())[:300])
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
