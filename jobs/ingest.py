"""spark-submit entry point of `smar ingest`: raw input for one day -> bronze tables and bronze.rejects.

The same command as the CLI's, with the same options (`smar ingest --help`), so the two cannot
drift:

    spark-submit jobs/ingest.py --ds 2026-11-01 --source generator --size demo
    spark-submit jobs/ingest.py --ds 2026-11-01 --source files --path s3a://landing/search/2026-11-01/
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("ingest"))
