"""spark-submit entry point of `smar train-single-modal`: train the four single-modal rankers from clicks.

The same command as the CLI's, with the same options (`smar train-single-modal --help`), so the two cannot
drift:

    spark-submit jobs/train_single_modal.py --ds 2026-10-30 --ds 2026-10-31 --ds 2026-11-01
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("train-single-modal"))
