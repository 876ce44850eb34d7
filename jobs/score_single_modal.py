"""spark-submit entry point of `smar score`: score one day's impressions with the single-modal rankers (the GPU stage).

The same command as the CLI's, with the same options (`smar score --help`), so the two cannot
drift:

    spark-submit jobs/score_single_modal.py --ds 2026-11-01 --gpu-batch-size 4096
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("score"))
