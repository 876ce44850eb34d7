"""spark-submit entry point: silver.annotation_tasks + silver.page_labels of one day ->
gold.annotation_cost (per strategy and budget, against annotating every candidate).

    spark-submit jobs/annotation_cost.py --ds 2026-11-01
"""

from __future__ import annotations

import argparse
import logging
import sys

from smar.annotation.jobs import annotation_cost
from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the day")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with spark_session(args.engine, app_name=f"smar-annotation-cost-{args.ds}") as spark:
        rows = annotation_cost(spark, Lakehouse(spark, get_settings()), ds=args.ds)
    for row in rows:
        logging.info("%s b=%g: %d items for %d queries (%.2f/query), %.1f%% of full annotation (%d)",
                     row.strategy, row.budget, row.items_labelled, row.n_queries, row.judgements_per_query,
                     100 * row.fraction_of_full, row.full_annotation_items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
