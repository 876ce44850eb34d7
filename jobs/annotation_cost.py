"""spark-submit entry point of `smar annotation-cost`: gold.annotation_cost of one day.

The same command as the CLI's, with the same options (`smar annotation-cost --help`), so the two cannot
drift:

    spark-submit jobs/annotation_cost.py --ds 2026-11-01
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("annotation-cost"))
