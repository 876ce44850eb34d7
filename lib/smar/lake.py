"""Lakehouse I/O: logical table names -> Delta tables under the warehouse root.

Writes go through the engine (Spark DataFrame API, SQL `MERGE INTO`); history, versions and
row counts come from `deltalake` (delta-rs), because `DESCRIBE HISTORY` is not available on the
embedded engine (DESIGN.md §4). Every write conforms the frame to the table's contract first, so
column order and types are stated once, in `schemas/`.

Idempotency: jobs overwrite their own slice (`replaceWhere` on the partition or run columns),
never rely on `txnAppId`.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.config import SmarSettings, get_settings
from smar.contracts import Contract, all_tables, load_contract

log = logging.getLogger(__name__)


def sql_literal(value: Any) -> str:
    """A SQL literal for a predicate value (strings quoted and escaped)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"unsupported literal type {type(value).__name__} for {value!r}")


def predicate(slice_values: dict[str, Any]) -> str:
    """`a = 'x' AND b = 2` for a table slice."""
    if not slice_values:
        raise ValueError("a slice needs at least one column = value")
    return " AND ".join(f"`{column}` = {sql_literal(value)}" for column, value in slice_values.items())


def conform(frame: DataFrame, contract: Contract) -> DataFrame:
    """Select exactly the contract's columns, in its order, cast to its types.

    Missing optional columns become typed nulls; a missing required column is an error, because a
    writer that forgets a key is a bug, not bad input.
    """
    present = set(frame.columns)
    selected: list[SparkColumn] = []
    for column in contract.columns:
        if column.name in present:
            selected.append(F.col(column.name).cast(column.type).alias(column.name))
        elif column.required:
            raise ValueError(
                f"cannot write {contract.table}: required column {column.name!r} is missing "
                f"(frame has {sorted(present)})"
            )
        else:
            selected.append(F.lit(None).cast(column.type).alias(column.name))
    return frame.select(*selected)


@dataclass(frozen=True)
class TableInfo:
    """What `list_tables` reports for one table."""

    name: str
    path: str
    exists: bool
    version: int | None
    row_count: int | None
    partition_by: tuple[str, ...]
    last_operation: str | None
    last_modified: datetime | None


class Lakehouse:
    """The table registry and its operations, bound to one warehouse root and one session."""

    def __init__(self, spark: SparkSession | None, settings: SmarSettings | None = None) -> None:
        self.spark = spark
        self.settings = settings or get_settings()

    # -- registry -------------------------------------------------------------------------------
    def path(self, table: str) -> Path:
        """Absolute path of `layer.name` under the warehouse root."""
        return self.settings.table_path(table)

    def uri(self, table: str) -> str:
        return str(self.path(table))

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.uri(table))

    def ensure_table(self, table: str) -> None:
        """Create an empty Delta table from the contract if it does not exist yet.

        The embedded engine cannot `replaceWhere` into a table that has no commit yet, and an
        empty first write must still leave a readable table with the right schema.
        """
        if self.exists(table):
            return
        contract = load_contract(table)
        self.path(table).parent.mkdir(parents=True, exist_ok=True)
        # Created through the engine (not delta-rs) so nested types get the engine's own field
        # names; the embedded engine refuses to union list<element> with list<item> later.
        spark = self._require_spark()
        writer = spark.createDataFrame([], contract.ddl()).write.format("delta").mode("overwrite")
        if contract.partition_by:
            writer = writer.partitionBy(*contract.partition_by)
        writer.save(self.uri(table))
        log.info("created %s at %s", table, self.uri(table))

    def _require_spark(self) -> SparkSession:
        if self.spark is None:
            raise RuntimeError("this Lakehouse was opened without a Spark session")
        return self.spark

    # -- reads ----------------------------------------------------------------------------------
    def read(self, table: str, *, version: int | None = None) -> DataFrame:
        """The table as a Spark DataFrame (optionally at a Delta version), in contract order."""
        if not self.exists(table):
            raise FileNotFoundError(
                f"table {table} does not exist at {self.uri(table)}; run the job that writes it first"
            )
        reader = self._require_spark().read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        frame = reader.load(self.uri(table))
        contract = load_contract(table)
        return frame.select(*[F.col(name) for name in contract.column_names])

    def read_arrow(self, table: str, *, version: int | None = None, filters: Any = None) -> pa.Table:
        """The table through delta-rs (no Spark), optionally at a version: for trainers and analysts."""
        delta_table = DeltaTable(self.uri(table), version=version)
        return delta_table.to_pyarrow_table(filters=filters)

    # -- writes ---------------------------------------------------------------------------------
    def overwrite_slice(self, frame: DataFrame, table: str, slice_values: dict[str, Any]) -> None:
        """Replace exactly the rows of `slice_values` (e.g. {"ds": "2026-11-01"}) with `frame`.

        Rows of `frame` outside the slice are an error (Delta refuses them), so a job cannot
        clobber another day by accident. Rerunning with the same frame gives the same table.
        """
        contract = load_contract(table)
        self.ensure_table(table)
        conformed = conform(frame, contract)
        for column, value in slice_values.items():
            # Stamp the slice columns so the frame always satisfies the replaceWhere predicate.
            conformed = conformed.withColumn(column, F.lit(value).cast(contract.column(column).type))
        if self._is_connect_session() and contract.has_nested_columns:
            self._delete_then_append(conformed, table, slice_values)
            return
        (
            conformed.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate(slice_values))
            .save(self.uri(table))
        )

    def _delete_then_append(self, conformed: DataFrame, table: str, slice_values: dict[str, Any]) -> None:
        """Replace a slice with DELETE + append (two commits, same rows as replaceWhere).

        pysail 0.7.2 cannot union a list<item> frame with the table's list<element> data inside
        replaceWhere. The frame is staged to Parquet first: it may read the very slice that the
        DELETE removes (a lazy plan over the same table).
        """
        spark = self._require_spark()
        staging = self.settings.warehouse.resolve() / "_staging" / table / uuid.uuid4().hex
        try:
            conformed.write.mode("overwrite").parquet(str(staging))
            # The explicit schema also reads back an empty staging folder (an empty slice rewrite).
            staged = spark.read.schema(conformed.schema).parquet(str(staging))
            spark.sql(f"DELETE FROM delta.`{self.uri(table)}` WHERE {predicate(slice_values)}").collect()
            staged.write.format("delta").mode("append").save(self.uri(table))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _is_connect_session(self) -> bool:
        return type(self._require_spark()).__module__.startswith("pyspark.sql.connect")

    def append(self, frame: DataFrame, table: str) -> None:
        """Append rows (for tables whose writers guarantee unique runs, e.g. a new run_id)."""
        contract = load_contract(table)
        self.ensure_table(table)
        conform(frame, contract).write.format("delta").mode("append").save(self.uri(table))

    def merge(
        self,
        frame: DataFrame,
        table: str,
        keys: list[str] | None = None,
        *,
        update_when_changed: list[str] | None = None,
    ) -> None:
        """Upsert `frame` into `table` on `keys` (default: the contract's keys) with SQL MERGE INTO.

        With `update_when_changed`, a matched row is only rewritten when one of those columns
        differs, so re-merging the same data adds no rewrite of unchanged rows.
        """
        contract = load_contract(table)
        keys = keys or contract.keys
        if not keys:
            raise ValueError(f"{table}: MERGE needs keys and the contract declares none")
        self.ensure_table(table)
        spark = self._require_spark()
        view = f"merge_source_{contract.table.replace('.', '_')}"
        conform(frame, contract).createOrReplaceTempView(view)
        on = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in keys)
        matched = "WHEN MATCHED"
        if update_when_changed:
            changed = " OR ".join(
                f"NOT (target.`{column}` <=> source.`{column}`)" for column in update_when_changed
            )
            matched += f" AND ({changed})"
        spark.sql(
            f"MERGE INTO delta.`{self.uri(table)}` AS target USING {view} AS source ON {on} "
            f"{matched} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        ).collect()

    # -- metadata (delta-rs) --------------------------------------------------------------------
    def version(self, table: str) -> int:
        """Current Delta version of the table."""
        return DeltaTable(self.uri(table)).version()

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commit history, newest first (operation, timestamp, parameters, metrics)."""
        return DeltaTable(self.uri(table)).history(limit)

    def row_count(self, table: str, *, version: int | None = None) -> int:
        delta_table = DeltaTable(self.uri(table), version=version)
        return delta_table.to_pyarrow_dataset().count_rows()

    def list_tables(self) -> list[TableInfo]:
        """Every contracted table with its version and row count (absent tables included)."""
        infos = []
        for name in all_tables():
            contract = load_contract(name)
            if not self.exists(name):
                infos.append(
                    TableInfo(name, self.uri(name), False, None, None, tuple(contract.partition_by), None, None)
                )
                continue
            delta_table = DeltaTable(self.uri(name))
            last = delta_table.history(1)[0]
            modified = datetime.fromtimestamp(last["timestamp"] / 1000, tz=timezone.utc)
            infos.append(
                TableInfo(
                    name,
                    self.uri(name),
                    True,
                    delta_table.version(),
                    delta_table.to_pyarrow_dataset().count_rows(),
                    tuple(contract.partition_by),
                    last.get("operation"),
                    modified,
                )
            )
        return infos
