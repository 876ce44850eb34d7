"""spark-submit entry point: silver.annotation_tasks -> Label Studio tasks JSON, labeling config
XML and a plain CSV in a folder (default <reports>/annotation/<ds>/<strategy>-b<budget>-r<round>).

    spark-submit jobs/export_annotation_tasks.py --ds 2026-11-01 --strategy top --budget 0.2 --round 0
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from smar.annotation.jobs import export_annotation_tasks
from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the day of the tasks")
    parser.add_argument("--strategy", help="only this strategy (default: all)")
    parser.add_argument("--budget", type=float, help="only this budget")
    parser.add_argument("--round", type=int, dest="round_number", help="only this round")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with spark_session(args.engine, app_name=f"smar-export-annotation-tasks-{args.ds}") as spark:
            summary = export_annotation_tasks(
                spark, Lakehouse(spark, get_settings()), ds=args.ds, strategy=args.strategy,
                budget=args.budget, round_number=args.round_number, out_dir=args.out,
            )
    except (ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        return 2
    logging.info("exported %d tasks (%d items) to %s", summary.tasks, summary.items, summary.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
