"""spark-submit entry point of `smar build-tasks`: budgeted candidate pages -> silver.annotation_tasks.

The same command as the CLI's, with the same options (`smar build-tasks --help`), so the two cannot
drift:

    spark-submit jobs/build_annotation_tasks.py --ds 2026-11-01 --strategy top --budget 0.2
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("build-tasks"))
