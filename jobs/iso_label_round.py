"""spark-submit entry point of `smar iso-label-round`: one round of the iso-label boundary search (exit 3 once every page is done).

The same command as the CLI's, with the same options (`smar iso-label-round --help`), so the two cannot
drift:

    spark-submit jobs/iso_label_round.py --ds 2026-11-01 --round 1
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("iso-label-round"))
