"""spark-submit entry point: score one day's impressions with the single-modal rankers.

    spark-submit --conf spark.executor.resource.gpu.amount=1 --conf spark.task.resource.gpu.amount=0.25 \\
        jobs/score_single_modal.py --ds 2026-11-01 --gpu-batch-size 4096

Each pandas UDF worker loads the rankers and the MiniLM encoder once, on the GPU its task was
given (TaskContext resources), else CUDA if present, else CPU.
"""

from __future__ import annotations

import argparse
import logging
import sys

from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse
from smar.single_modal import score_single_modal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True)
    parser.add_argument("--model-version", help="default: the CURRENT registered version")
    parser.add_argument("--gpu-batch-size", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with spark_session(args.engine, app_name=f"smar-score-{args.ds}") as spark:
        summary = score_single_modal(spark, Lakehouse(spark, get_settings()), ds=args.ds, model_version=args.model_version,
                                     gpu_batch_size=args.gpu_batch_size, device=args.device)
    logging.info("%s", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
