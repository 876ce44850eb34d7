"""spark-submit entry point of `smar annotation pull`: a Label Studio server's annotations into silver.page_labels.

The same command as the CLI's, with the same options (`smar annotation pull --help`), so the two cannot
drift. The server and token come from --url/--token or $LABEL_STUDIO_URL/$LABEL_STUDIO_API_KEY:

    spark-submit jobs/pull_annotations.py --ds 2026-11-01
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("annotation pull"))
