"""spark-submit entry point: annotated pages -> a trained page reranker, its artifact and its
`gold.reranker_runs` row.

    spark-submit jobs/train_page_reranker.py --ds-start 2026-11-01 --ds-end 2026-11-03
    spark-submit jobs/train_page_reranker.py --ds-start 2026-11-01 --method sft --device cuda
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse
from smar.reranker.jobs import METHODS, train_page_reranker
from smar.reranker.training import TrainingConfig


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds-start", required=True, help="first day of annotated pages, YYYY-MM-DD")
    parser.add_argument("--ds-end", help="last day (default: --ds-start)")
    parser.add_argument("--method", choices=METHODS, default="smar_pairwise")
    parser.add_argument("--budget", type=float, help="emulate this label budget (default: labels as annotated)")
    parser.add_argument("--strategy", default="top", choices=["top", "slice", "random", "stratified"])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--intra-weight", type=float, help="lambda")
    parser.add_argument("--margin", type=float, help="gamma")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--anchors", action="store_true", help="add iso-label anchor pairs")
    parser.add_argument("--annotator", action="append", help="only these annotators' labels")
    parser.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    overrides = {name: value for name, value in (("epochs", args.epochs), ("intra_weight", args.intra_weight),
                                                 ("margin", args.margin)) if value is not None}
    config = replace(TrainingConfig(device=args.device, anchors=args.anchors), **overrides)
    with spark_session(args.engine, app_name=f"smar-train-reranker-{args.ds_start}") as spark:
        summary = train_page_reranker(
            spark, Lakehouse(spark, get_settings()), ds_start=args.ds_start, ds_end=args.ds_end or args.ds_start,
            method=args.method, strategy=args.strategy, budget=args.budget, seed=args.seed, config=config,
            annotators=tuple(args.annotator) if args.annotator else None, resume=args.resume, progress=False,
        )
    logging.info("registered %s: validation NDCG@10 %s, test NDCG@10 %s, artifact %s", summary.run_id,
                 summary.validation_ndcg_at_10, summary.test_ndcg_at_10, summary.artifact_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
