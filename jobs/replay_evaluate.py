"""spark-submit entry point: offline replay of a candidate ranking against a control.

    spark-submit jobs/replay_evaluate.py --candidate run:smar-0123 --ds-start 2026-11-01 --ds-end 2026-11-03
    spark-submit jobs/replay_evaluate.py --control run:lgbm-01 --candidate run:smar-0123 --ds-start 2026-11-01

Writes gold.replay_metrics, gold.ab_decisions and the HTML/Markdown report (idempotent per run id).
"""

from __future__ import annotations

import argparse
import logging
import sys

from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse
from smar.replay.jobs import replay_config, replay_evaluate


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", required=True, help="run:<run_id> or production")
    parser.add_argument("--control", default="production", help="production (logged order) or run:<run_id>")
    parser.add_argument("--ds-start", required=True, help="first log day, YYYY-MM-DD")
    parser.add_argument("--ds-end", help="last log day (default: --ds-start)")
    parser.add_argument("--run-id", help="default: derived from the inputs")
    parser.add_argument("--split", action="append", help="query split(s) replayed (default: test)")
    parser.add_argument("--min-queries", type=int)
    parser.add_argument("--max-modality-ndcg-drop", type=float)
    parser.add_argument("--max-exposure-shift", type=float)
    parser.add_argument("--bootstrap-method", choices=["percentile", "BCa", "basic"])
    parser.add_argument("--n-resamples", type=int)
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = replay_config(
        query_splits=tuple(args.split) if args.split else None, min_queries=args.min_queries,
        max_modality_ndcg_drop=args.max_modality_ndcg_drop, max_exposure_shift=args.max_exposure_shift,
        bootstrap_method=args.bootstrap_method, n_resamples=args.n_resamples,
    )  # fmt: skip
    try:
        with spark_session(args.engine, app_name=f"smar-replay-{args.ds_start}") as spark:
            summary = replay_evaluate(
                spark, Lakehouse(spark, get_settings()), control=args.control, candidate=args.candidate,
                ds_start=args.ds_start, ds_end=args.ds_end or args.ds_start, run_id=args.run_id, config=config,
            )  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        return 2
    logging.info("replay %s: %s; report %s", summary.run_id, summary.decision, summary.report_html)
    for reason in summary.reasons:
        logging.info("  %s", reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
