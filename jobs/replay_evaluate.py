"""spark-submit entry point of `smar replay`: replay a candidate against a control; metrics, decision, report.

The same command as the CLI's, with the same options (`smar replay --help`), so the two cannot
drift:

    spark-submit jobs/replay_evaluate.py --candidate run:<run_id> --control production --ds-start 2026-11-01
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("replay"))
