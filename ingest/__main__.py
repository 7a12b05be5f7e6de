"""CLI: python -m ingest [--corpus DIR] [--index DIR] [--force] [--ray] [--wait S | --no-wait]
       python -m ingest pubmed QUERY [--max N] [--since YEAR] [--pmids FILE]"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from kb.config import get_settings
from kb.errors import KBError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pubmed"]:
        return pubmed_main(argv[1:])
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=settings.corpus_dir, help="source folder")
    parser.add_argument("--index", type=Path, default=settings.index_dir, help="index location")
    parser.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--ray", action="store_true",
                        help="embed on Ray Data (RAY_ADDRESS, or a local Ray); needs requirements-ray.txt")
    waiting = parser.add_mutually_exclusive_group()
    waiting.add_argument("--wait", type=float, default=settings.index_lock_wait_s, metavar="SECONDS",
                         help="while another ingest writes the index, wait this long for it, then stop "
                              f"naming it (default {settings.index_lock_wait_s:g})")
    waiting.add_argument("--no-wait", action="store_const", const=0.0, dest="wait",
                         help="stop at once if another ingest is writing the index")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ingest.build import ingest_corpus

    try:
        embedder = None
        if args.ray:
            from ingest.ray_embed import RayEmbedder

            embedder = RayEmbedder  # a factory: Ray starts only if something needs embedding
        report = ingest_corpus(args.corpus, args.index, embedder=embedder, force=args.force,
                               show_progress=not args.quiet, wait_s=args.wait)
    except KBError as e:
        print(f"ingest: {e}", file=sys.stderr)
        return 1
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(report.summary())
    return 0


def pubmed_main(argv: list[str]) -> int:
    """Import PubMed records (NCBI E-utilities), then update the index."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m ingest pubmed",
        description="Search PubMed and add each record as corpus/pubmed/<PMID>.xml, then update the "
                    "index. Needs the network; set NCBI_API_KEY for 10 requests/s instead of 3, and "
                    "FSGS_KB_NCBI_EMAIL to give NCBI a contact address.")
    parser.add_argument("query", nargs="?", default="", help="PubMed search, e.g. 'FSGS AND rituximab'")
    parser.add_argument("--max", type=int, default=100, dest="max_records", help="records to consider (default 100)")
    parser.add_argument("--since", type=int, default=None, help="publication year from which to search")
    parser.add_argument("--pmids", type=Path, default=None, help="file of PMIDs to fetch instead of searching")
    parser.add_argument("--corpus", type=Path, default=settings.corpus_dir, help="source folder")
    parser.add_argument("--index", type=Path, default=settings.index_dir, help="index location")
    parser.add_argument("--no-ingest", action="store_true", help="store the records, do not update the index")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.query.strip() and args.pmids is None:
        parser.error("give a QUERY or --pmids FILE")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ingest.pubmed import import_pubmed, read_pmid_file

    settings = replace(settings, corpus_dir=args.corpus, index_dir=args.index)
    try:
        pmids = read_pmid_file(args.pmids) if args.pmids is not None else None
        report = import_pubmed(args.query, pmids=pmids, max_records=args.max_records, since=args.since,
                               settings=settings, ingest=not args.no_ingest, show_progress=not args.quiet)
    except KBError as e:
        print(f"ingest pubmed: {e}", file=sys.stderr)
        return 1
    if report.ingest is not None:
        for w in report.ingest.warnings:
            print(f"warning: {w}", file=sys.stderr)
    print(report.summary())
    return 1 if report.ingest_error else 0


if __name__ == "__main__":
    sys.exit(main())
