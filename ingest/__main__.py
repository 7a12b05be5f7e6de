"""CLI: python -m ingest [--corpus DIR] [--index DIR] [--force] [--ray]"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kb.config import get_settings
from kb.errors import KBError


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=settings.corpus_dir, help="source folder")
    parser.add_argument("--index", type=Path, default=settings.index_dir, help="index location")
    parser.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--ray", action="store_true",
                        help="embed on Ray Data (RAY_ADDRESS, or a local Ray); needs requirements-ray.txt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ingest.build import ingest_corpus

    try:
        embedder = None
        if args.ray:
            from ingest.ray_embed import RayEmbedder

            embedder = RayEmbedder  # a factory: Ray starts only if something needs embedding
        report = ingest_corpus(args.corpus, args.index, embedder=embedder, force=args.force,
                               show_progress=not args.quiet)
    except KBError as e:
        print(f"ingest: {e}", file=sys.stderr)
        return 1
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
