"""spark-submit entry point: train the single-modal rankers (step 1) from click logs.

    spark-submit jobs/train_single_modal.py --ds 2026-10-30 --ds 2026-10-31 --ds 2026-11-01

Reads bronze tables at pinned Delta versions through delta-rs (the driver needs no executors
for this step); writes artifacts under $SMAR_ARTIFACTS/single_modal/<model_version>/<modality>/.
"""

from __future__ import annotations

import argparse
import logging
import sys

from smar.config import get_settings
from smar.lake import Lakehouse
from smar.single_modal import train_single_modal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", action="append", required=True, help="training day; repeat for several")
    parser.add_argument("--epochs", type=int, help="maximum epochs per ranker (default: smar.single_modal.DEFAULT_EPOCHS)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"], help="unused: this step reads with delta-rs")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    summary = train_single_modal(Lakehouse(None, settings), ds_list=args.ds, epochs=args.epochs,
                                 seed=settings.seed if args.seed is None else args.seed, device=args.device)
    for evaluation in summary.evaluations:
        logging.info("%s", evaluation)
    logging.info("registered single-modal rankers %s at %s", summary.model_version, summary.artifact_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
