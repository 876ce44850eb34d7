"""A small PySpark job that tests/integration/test_cluster.py submits to the local standalone
cluster with `spark-submit --master spark://...`: Delta on S3 through delta-spark and S3A
(write, `replaceWhere` overwrite of one partition, SQL `MERGE INTO`), and a pandas UDF that
reports from each executor what it can see.

    cluster_job.py --table s3://lake/... --driver-file /local/path --out /local/result.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import pandas as pd  # at module level: pandas_udf resolves the 'pd.Series' hints from globals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True, help="Delta table URI (s3://bucket/...)")
    parser.add_argument("--driver-file", required=True, help="a file only the driver's disk has")
    parser.add_argument("--out", required=True, help="where the driver writes its JSON result")
    args = parser.parse_args()

    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    import smar
    from smar.engine import start_engine

    engine = start_engine("cluster", app_name="smar-cluster-infra-check")
    spark = engine.spark
    result: dict = {"driver_smar": smar.__file__, "spark_version": spark.version}
    try:
        table = args.table
        rows = [(i, "2026-11-01" if i % 2 else "2026-11-02", f"v{i}") for i in range(8)]
        frame = spark.createDataFrame(rows, "id long, ds string, value string")
        frame.write.format("delta").partitionBy("ds").mode("overwrite").save(table)

        # Replace one partition in one atomic commit.
        replacement = spark.createDataFrame(
            [(100, "2026-11-02", "new"), (101, "2026-11-02", "new")], "id long, ds string, value string"
        )
        (replacement.write.format("delta").mode("overwrite").option("replaceWhere", "ds = '2026-11-02'").save(table))

        # MERGE INTO by path, the form the jobs use on both engines.
        updates = spark.createDataFrame(
            [(1, "2026-11-01", "merged"), (200, "2026-11-01", "inserted")],
            "id long, ds string, value string",
        )
        updates.createOrReplaceTempView("updates")
        spark.sql(
            f"""MERGE INTO delta.`{table}` AS t USING updates AS s
                ON t.id = s.id AND t.ds = s.ds
                WHEN MATCHED THEN UPDATE SET value = s.value
                WHEN NOT MATCHED THEN INSERT *"""
        )
        back = spark.read.format("delta").load(table)
        result["rows"] = sorted([row.asDict() for row in back.collect()], key=lambda r: (r["ds"], r["id"]))

        driver_file = args.driver_file

        @pandas_udf("string")
        def where_am_i(ids: pd.Series) -> pd.Series:
            import smar as executor_smar  # must come from --py-files on every executor

            time.sleep(0.2)  # keep tasks long enough to land on both executors
            info = json.dumps(
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "mnt_ns": os.readlink("/proc/self/ns/mnt"),
                    "sees_driver_file": os.path.exists(driver_file),
                    "smar": executor_smar.__file__,
                    "python": sys.executable,
                    "cwd": os.getcwd(),
                }
            )
            return pd.Series([info] * len(ids))

        seen = spark.range(0, 64, numPartitions=16).select(where_am_i(F.col("id")).alias("info")).distinct().collect()
        result["executors"] = [json.loads(row.info) for row in seen]
        result["driver_mnt_ns"] = os.readlink("/proc/self/ns/mnt")
    finally:
        engine.stop()
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
