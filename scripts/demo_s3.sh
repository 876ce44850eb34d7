#!/usr/bin/env bash
# `make demo-s3`, inside `servers.py with-s3` (which exports AWS_ENDPOINT_URL, the keys, AWS_REGION,
# AWS_ALLOW_HTTP and SMAR_S3_BUCKET): the whole demo into the bucket, nothing on local disk, then the
# analysts' read of gold.ab_decisions through delta-rs with the documented storage options.
set -euo pipefail
bucket="${SMAR_S3_BUCKET:?run me through tests/integration/servers.py with-s3}"
export SMAR_WAREHOUSE="s3://$bucket/warehouse" SMAR_ARTIFACTS="s3://$bucket/artifacts" SMAR_REPORTS="s3://$bucket/reports"
start=$(date +%s)
smar demo --size "${SIZE:-tiny}" --ds "${DS:-2026-11-01}"
echo "demo-s3: the demo took $(( $(date +%s) - start )) s; every table, artifact and report is under s3://$bucket/"
python - <<'PY'
# What docs/analysts.md shows: delta-rs with the storage options of the standard AWS_* variables.
import os
import sys

from deltalake import DeltaTable

options = {
    "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
    "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
    "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    "AWS_REGION": os.environ["AWS_REGION"],
    "AWS_ALLOW_HTTP": "true",
}
uri = os.environ["SMAR_WAREHOUSE"] + "/gold/ab_decisions"
# pyarrow's own S3 filesystem (from the same AWS_* variables) for the read: delta-rs's default
# handler makes deltalake 1.6.6 abort scripts at exit (docs/analysts.md).
import pyarrow.fs as pafs

s3, path = pafs.FileSystem.from_uri(uri)
decisions = DeltaTable(uri, storage_options=options).to_pandas(filesystem=pafs.SubTreeFileSystem(path, s3))
for row in decisions.itertuples():
    print(f"demo-s3: gold.ab_decisions read back with delta-rs: {row.candidate} {row.decision} ({row.report_path})")

# What the bucket holds, through the filesystem layer, and that nothing landed on local disk.
from pathlib import Path

from smar.storage import files

bucket = os.environ["SMAR_S3_BUCKET"]
for prefix in ("warehouse", "artifacts", "reports"):
    print(f"demo-s3: s3://{bucket}/{prefix}/: {len(files.list_files(f's3://{bucket}/{prefix}'))} objects")
mangled = [str(p) for p in Path.cwd().rglob("*") if p.is_dir() and p.name.lower() in ("s3:", "s3a:", "gs:", "abfss:")]
if mangled:
    raise SystemExit(f"demo-s3: local folders named after a scheme were made: {mangled}")
print(f"demo-s3: no local folder named after a scheme under {Path.cwd()}")
PY
