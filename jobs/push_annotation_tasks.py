"""spark-submit entry point of `smar annotation push`: the day's annotation tasks to a Label Studio server.

The same command as the CLI's, with the same options (`smar annotation push --help`), so the two cannot
drift. The server and token come from --url/--token or $LABEL_STUDIO_URL/$LABEL_STUDIO_API_KEY:

    spark-submit jobs/push_annotation_tasks.py --ds 2026-11-01
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("annotation push"))
