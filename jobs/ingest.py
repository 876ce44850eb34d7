"""spark-submit entry point: raw input for one day -> bronze tables and bronze.rejects.

    spark-submit jobs/ingest.py --ds 2026-11-01 --source generator --size demo
    spark-submit jobs/ingest.py --ds 2026-11-01 --source qilin --path /data/qilin
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from smar.config import get_settings
from smar.engine import spark_session
from smar.ingest import IngestRejectedError
from smar.lake import Lakehouse
from smar.pipeline import run_ingest
from smar.sources import SourceError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the day to ingest, YYYY-MM-DD")
    parser.add_argument("--source", choices=["generator", "qilin", "files"], default="generator")
    parser.add_argument("--path", type=Path, help="qilin folder, or a raw file or folder")
    parser.add_argument("--table", help="with a single file: the table it holds")
    parser.add_argument("--size", choices=["tiny", "demo", "large"], default="demo")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-reject-fraction", type=float)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with spark_session(args.engine, app_name=f"smar-ingest-{args.ds}") as spark:
            results = run_ingest(
                spark, Lakehouse(spark, get_settings()), ds=args.ds, source=args.source, path=args.path,
                table=args.table, size=args.size, seed=args.seed,
                max_reject_fraction=args.max_reject_fraction, run_quality_checks=not args.skip_quality,
            )
    except (IngestRejectedError, SourceError) as error:
        logging.error("%s", error)
        return 2
    for result in results:
        logging.info("%s: landed %d, accepted %d, rejected %d", result.table, result.landed, result.accepted, result.rejected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
