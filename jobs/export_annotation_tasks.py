"""spark-submit entry point of `smar export-tasks`: Label Studio tasks, labeling config and CSV for annotators.

The same command as the CLI's, with the same options (`smar export-tasks --help`), so the two cannot
drift:

    spark-submit jobs/export_annotation_tasks.py --ds 2026-11-01
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("export-tasks"))
