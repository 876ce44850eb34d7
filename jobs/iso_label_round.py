"""spark-submit entry point: one iso-label round. Round r replays the labels of rounds < r from
silver.page_labels, writes round r's tasks and the anchors found so far (silver.iso_label_anchors).
Exit 0: tasks written (export, annotate, import, then run r + 1); exit 3: every page is done.

    spark-submit jobs/iso_label_round.py --ds 2026-11-01 --round 1
"""

from __future__ import annotations

import argparse
import logging
import sys

from smar.annotation.jobs import run_iso_label_round
from smar.annotation.tasks import DEFAULT_PAGE_SPLITS
from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse

EXIT_DONE = 3


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the scored day")
    parser.add_argument("--round", type=int, required=True, dest="round_number")
    parser.add_argument("--max-judgements-per-query", type=int, help="judgement cap per query")
    parser.add_argument("--splits", default=",".join(DEFAULT_PAGE_SPLITS), help="comma-separated query splits")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with spark_session(args.engine, app_name=f"smar-iso-label-round-{args.ds}-{args.round_number}") as spark:
            summary = run_iso_label_round(
                spark, Lakehouse(spark, get_settings()), ds=args.ds, round_number=args.round_number,
                seed=args.seed, splits=tuple(s for s in args.splits.split(",") if s),
                max_judgements_per_query=args.max_judgements_per_query,
            )
    except ValueError as error:
        logging.error("%s", error)
        return 2
    logging.info("%s", summary)
    return EXIT_DONE if summary.done else 0


if __name__ == "__main__":
    sys.exit(main())
