"""spark-submit entry point: a Label Studio JSON export (or a CSV task_id,item_id,grade,annotator)
-> silver.page_labels by MERGE; refused rows -> bronze.rejects. Malformed files fail (exit 2) and
write nothing.

    spark-submit jobs/ingest_page_labels.py --ds 2026-11-01 --path export.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from smar.annotation.jobs import ingest_page_labels
from smar.annotation.label_studio import LabelImportError
from smar.config import get_settings
from smar.engine import spark_session
from smar.lake import Lakehouse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", required=True, help="the day of the tasks the labels answer")
    parser.add_argument("--path", type=Path, required=True, help="the label file")
    parser.add_argument("--format", choices=["json", "csv"], dest="file_format", help="default: from the suffix")
    parser.add_argument("--engine", choices=["auto", "embedded", "cluster"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with spark_session(args.engine, app_name=f"smar-ingest-page-labels-{args.ds}") as spark:
            summary = ingest_page_labels(
                spark, Lakehouse(spark, get_settings()), ds=args.ds, path=args.path, file_format=args.file_format
            )
    except (LabelImportError, FileNotFoundError) as error:
        logging.error("%s", error)
        return 2
    logging.info("accepted %d (new %d, changed %d, unchanged %d), rejected %d %s", summary.accepted,
                 summary.inserted, summary.updated, summary.unchanged, summary.rejected, summary.reject_reasons)
    return 0


if __name__ == "__main__":
    sys.exit(main())
