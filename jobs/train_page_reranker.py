"""spark-submit entry point of `smar train-reranker`: annotated pages -> a trained, registered page reranker.

The same command as the CLI's, with the same options (`smar train-reranker --help`), so the two cannot
drift:

    spark-submit jobs/train_page_reranker.py --ds-start 2026-11-01 --ds-end 2026-11-03 --method smar_merge
"""

import sys

from smar.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("train-reranker"))
