"""spark-submit entry point of `smar import-labels`: MERGE a Label Studio export or label CSV into silver.page_labels.

The same command as the CLI's, with the same options (`smar import-labels --help`), so the two cannot
drift:

    spark-submit jobs/ingest_page_labels.py --ds 2026-11-01 --path export.json
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("import-labels"))
