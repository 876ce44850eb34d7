"""spark-submit entry point: an exported tasks.json + truth.relevance -> a simulated Label Studio
JSON export (annotations_simulated.json next to it), for the demo and tests.

    spark-submit jobs/simulate_annotators.py --ds 2026-11-01 --tasks-file reports/annotation/2026-11-01/top-b0.2-r0/tasks.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from smar.annotation.jobs import simulate_annotators
from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the day whose truth.relevance grades the items")
    parser.add_argument("--tasks-file", type=Path, required=True, help="tasks.json from export_annotation_tasks")
    parser.add_argument("--out", type=Path, help="export file (default: next to tasks.json)")
    parser.add_argument("--annotators", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.1, help="P(perceived grade one step off), per item")
    parser.add_argument("--disagreement", type=float, default=0.1, help="P(another annotator differs by one)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with spark_session(args.engine, app_name=f"smar-simulate-annotators-{args.ds}") as spark:
        summary = simulate_annotators(
            spark, Lakehouse(spark, get_settings()), ds=args.ds, tasks_file=args.tasks_file, out_path=args.out,
            n_annotators=args.annotators, noise=args.noise, disagreement=args.disagreement, seed=args.seed,
        )
    logging.info("%d grades on %d tasks -> %s", summary.labels, summary.tasks, summary.export_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
