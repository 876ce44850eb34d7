"""spark-submit entry point of `smar demo`: the whole pipeline end to end in one driver.

The same command as the CLI's (`smar demo --help`); on a cluster pass `--engine cluster` (the demo
defaults to the embedded engine). The cluster lane of `.ci/run` submits it once instead of one
spark-submit per job (`scripts/cluster_demo.py --mode single`):

    spark-submit jobs/demo.py --size tiny --ds 2026-11-01 --engine cluster
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("demo"))
