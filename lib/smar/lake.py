"""Lakehouse I/O: logical table names -> Delta tables under the warehouse root.

Writes go through the engine (Spark DataFrame API, SQL `MERGE INTO`); history, versions and
row counts come from `deltalake` (delta-rs), because `DESCRIBE HISTORY` is not available on the
embedded engine (docs/architecture.md, "Engines"). Every write conforms the frame to the table's contract first, so
column order and types are stated once, in `schemas/`.

Idempotency: jobs overwrite their own slice (`replaceWhere` on the partition or run columns),
never rely on `txnAppId`.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Union

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.config import SmarSettings, get_settings
from smar.contracts import Contract, all_tables, load_contract
from smar.errors import MissingInput

REJECTS_TABLE = "bronze.rejects"
#: What a write accepts: a Spark frame, a pandas frame, or Python rows (mappings keyed by column).
Rows = Union[DataFrame, pd.DataFrame, Sequence[Mapping[str, Any]]]

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


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """`frame` collected as pandas: for per-query or per-page aggregates, never a day of rows."""
    collected: pd.DataFrame = frame.toPandas()
    return collected


def changed_condition(values: Mapping[str, Any], *, alias: str = "") -> str:
    """SQL that is true where some column differs from its value (null-safe): `NOT (a <=> 'x') OR ...`."""
    prefix = f"{alias}." if alias else ""
    return " OR ".join(f"NOT ({prefix}`{column}` <=> {sql_literal(value)})" for column, value in values.items())


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
        spark = self.session
        writer = spark.createDataFrame([], contract.ddl()).write.format("delta").mode("overwrite")
        if contract.partition_by:
            writer = writer.partitionBy(*contract.partition_by)
        writer.save(self.uri(table))
        log.info("created %s at %s", table, self.uri(table))

    @property
    def session(self) -> SparkSession:
        """The Spark session this lakehouse writes through (an error when opened without one)."""
        if self.spark is None:
            raise RuntimeError("this Lakehouse was opened without a Spark session")
        return self.spark

    # -- reads ----------------------------------------------------------------------------------
    def read(self, table: str, *, version: int | None = None) -> DataFrame:
        """The table as a Spark DataFrame (optionally at a Delta version), in contract order."""
        if not self.exists(table):
            raise MissingInput(f"table {table} does not exist at {self.uri(table)}; run the job that writes it first")
        reader = self.session.read.format("delta")
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
    def frame(self, rows: Rows, table: str) -> DataFrame:
        """`rows` as a Spark frame typed by `table`'s contract (absent optional columns null).

        The one way Python rows or a pandas frame become a frame for a write: the schema comes
        from the contract, never from a DDL string built by hand.
        """
        if isinstance(rows, DataFrame):
            return rows
        if isinstance(rows, Mapping):
            raise TypeError(f"rows for {table} must be a sequence of mappings, not one mapping")
        contract = load_contract(table)
        columns = list(rows.columns) if isinstance(rows, pd.DataFrame) else sorted({key for row in rows for key in row})
        unknown = sorted(set(columns) - set(contract.column_names))
        if unknown:
            raise ValueError(f"cannot write {table}: rows have columns {unknown} that its contract lacks")
        missing = [column.name for column in contract.columns if column.required and column.name not in columns]
        if missing and len(rows):
            raise ValueError(f"cannot write {table}: required column(s) {missing} missing from the rows")
        spark = self.session
        if isinstance(rows, pd.DataFrame):
            # Through Arrow: pandas' NaN/NaT become nulls, numpy scalars their Spark types.
            typed = rows.reindex(columns=contract.column_names)
            for absent in set(contract.column_names) - set(columns):
                # reindex fills absent columns with float NaN, which Arrow cannot cast to, say, a timestamp.
                typed[absent] = pd.Series([None] * len(typed), index=typed.index, dtype=object)
            return spark.createDataFrame(typed, contract.ddl())
        ordered = [tuple(_plain(row.get(name)) for name in contract.column_names) for row in rows]
        return spark.createDataFrame(ordered, contract.ddl())

    def overwrite_slice(self, rows: Rows, table: str, slice_values: dict[str, Any]) -> None:
        """Replace exactly the rows of `slice_values` (e.g. {"ds": "2026-11-01"}) with `rows`.

        Rows outside the slice are an error (Delta refuses them), so a job cannot clobber another
        day by accident. Rerunning with the same rows gives the same table.
        """
        contract = load_contract(table)
        self.ensure_table(table)
        conformed = conform(self.frame(rows, table), contract)
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
        spark = self.session
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
        return type(self.session).__module__.startswith("pyspark.sql.connect")

    def append(self, rows: Rows, table: str) -> None:
        """Append rows (for tables whose writers guarantee unique runs, e.g. a new run_id)."""
        contract = load_contract(table)
        self.ensure_table(table)
        conform(self.frame(rows, table), contract).write.format("delta").mode("append").save(self.uri(table))

    def write_rejects(self, rejects: Rows, *, ds: str, job: str, source: str | None = None) -> None:
        """Replace the `bronze.rejects` slice (ds, job[, source]) with `rejects` (empty: clear it)."""
        slice_values = {"ds": ds, "job": job}
        if source is not None:
            slice_values["source"] = source
        self.overwrite_slice(rejects, REJECTS_TABLE, slice_values)

    def set_values(
        self,
        table: str,
        values: Mapping[str, Any],
        *,
        where: Mapping[str, Any],
        keys: DataFrame | None = None,
    ) -> int:
        """Set `values` (column -> literal) on the rows matching `where` (column -> value) and,
        when `keys` is given, whose key columns appear in that frame. Only rows where some value
        differs are rewritten, and nothing is committed when none does (a rerun adds no Delta
        version). Returns how many rows changed."""
        spark = self.session
        if not values:
            raise ValueError("set_values needs at least one column = value")
        changing = self.read(table).where(f"({predicate(dict(where))}) AND ({changed_condition(values)})")
        key_columns = list(keys.columns) if keys is not None else []
        if keys is not None:
            changing = changing.join(keys.dropDuplicates(), on=key_columns, how="inner")
        to_change = changing.count()
        if not to_change:
            return 0
        assignments = ", ".join(f"`{column}` = {sql_literal(value)}" for column, value in values.items())
        if keys is None:
            spark.sql(
                f"UPDATE delta.`{self.uri(table)}` SET {assignments} "
                f"WHERE ({predicate(dict(where))}) AND ({changed_condition(values)})"
            ).collect()
            return to_change
        view = f"set_values_keys_{uuid.uuid4().hex[:12]}"
        keys.dropDuplicates().createOrReplaceTempView(view)
        on = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in key_columns)
        within = " AND ".join(f"target.`{column}` = {sql_literal(value)}" for column, value in where.items())
        spark.sql(
            f"MERGE INTO delta.`{self.uri(table)}` AS target USING {view} AS source "
            f"ON {on}{' AND ' + within if within else ''} "
            f"WHEN MATCHED AND ({changed_condition(values, alias='target')}) THEN UPDATE SET "
            + ", ".join(f"`{column}` = {sql_literal(value)}" for column, value in values.items())
        ).collect()
        return to_change

    def merge(
        self,
        rows: Rows,
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
        spark = self.session
        view = f"merge_source_{contract.table.replace('.', '_')}"
        conform(self.frame(rows, table), contract).createOrReplaceTempView(view)
        on = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in keys)
        matched = "WHEN MATCHED"
        if update_when_changed:
            changed = " OR ".join(f"NOT (target.`{column}` <=> source.`{column}`)" for column in update_when_changed)
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
        return int(delta_table.to_pyarrow_dataset().count_rows())

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
            modified = datetime.fromtimestamp(last["timestamp"] / 1000, tz=UTC)
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


def _plain(value: Any) -> Any:
    # Python rows may carry numpy scalars (from pandas or numpy maths); Spark wants Python values.
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        return value.item()
    return value
