"""spark-submit entry point of `smar simulate-annotators`: grade exported tasks from the hidden truth (synthetic data).

The same command as the CLI's, with the same options (`smar simulate-annotators --help`), so the two cannot
drift:

    spark-submit jobs/simulate_annotators.py --ds 2026-11-01 --tasks-file reports/annotation/2026-11-01/all-ball-rall/tasks.json
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("simulate-annotators"))
