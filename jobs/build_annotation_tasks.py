"""spark-submit entry point: silver.single_modal_scores of one day -> silver.annotation_tasks.

    spark-submit jobs/build_annotation_tasks.py --ds 2026-11-01 --strategy top --budget 0.2
    spark-submit jobs/build_annotation_tasks.py --ds 2026-11-01 --strategy iso_label   (round 0)
"""

from __future__ import annotations

import argparse
import logging
import sys

from smar.annotation.jobs import build_annotation_tasks
from smar.annotation.tasks import DEFAULT_EVAL_SPLITS, DEFAULT_PAGE_SPLITS, FULL_STRATEGY, TASK_STRATEGIES
from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the scored day, YYYY-MM-DD")
    parser.add_argument("--strategy", choices=TASK_STRATEGIES, default="top")
    parser.add_argument("--budget", type=float, default=0.2, help="fraction of each modality's candidates")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--splits", default=",".join(DEFAULT_PAGE_SPLITS), help="comma-separated query splits")
    parser.add_argument("--eval-splits", default=",".join(DEFAULT_EVAL_SPLITS), help="comma-separated; '' for none")
    parser.add_argument("--eval-strategy", default=FULL_STRATEGY)
    parser.add_argument("--band-index", type=int, default=1, help="slice: which band (1 = the second)")
    parser.add_argument("--max-judgements-per-query", type=int, help="iso_label: judgement cap")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with spark_session(args.engine, app_name=f"smar-build-annotation-tasks-{args.ds}") as spark:
        summary = build_annotation_tasks(
            spark, Lakehouse(spark, get_settings()), ds=args.ds, strategy=args.strategy, budget=args.budget,
            seed=args.seed, splits=tuple(s for s in args.splits.split(",") if s),
            eval_splits=tuple(s for s in args.eval_splits.split(",") if s), eval_strategy=args.eval_strategy,
            band_index=args.band_index, max_judgements_per_query=args.max_judgements_per_query,
        )
    for written in summary.slices:
        logging.info("%s b=%g r=%d: %d tasks, %d items shown of %d candidates", written.strategy,
                     written.budget, written.round, written.tasks, written.items_shown, written.candidates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
