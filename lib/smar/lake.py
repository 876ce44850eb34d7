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
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Union

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.schema import Field as DeltaField
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.config import SmarSettings, get_settings
from smar.contracts import all_tables, load_contract
from smar.errors import ConcurrentWriteError, MissingInput
from smar.frames import conform
from smar.predicates import changed_condition, predicate, sql_literal
from smar.storage import files
from smar.storage.settings import storage_settings_from_env
from smar.storage.uris import engine_location, is_local, join, local_path

REJECTS_TABLE = "bronze.rejects"
STAGING_FOLDER = "_staging"
LANDING_FOLDER = "_landing"
#: A commit that loses a race against another writer is tried this many times in all.
COMMIT_ATTEMPTS = 6
COMMIT_BACKOFF_SECONDS = 0.5
# How each engine says "someone else committed this version first": pysail/delta-rs and delta-spark.
_COMMIT_CONFLICT = re.compile(
    r"Failed to commit transaction|Concurrent\w*Exception|ProtocolChangedException|MetadataChangedException"
    r"|version \d+ already exists|Transaction conflict|CommitFailed",
    re.IGNORECASE,
)
#: What a write accepts: a Spark frame, a pandas frame, or Python rows (mappings keyed by column).
Rows = Union[DataFrame, pd.DataFrame, Sequence[Mapping[str, Any]]]

log = logging.getLogger(__name__)


def remove_run_folder(folder: str, root: str) -> None:
    """Remove one run's scratch `folder` (a URI) and the local parents it leaves empty, `root`
    included (an object store has no empty folders)."""
    files.remove_tree(folder)
    if is_local(folder):
        files.remove_empty_parents(folder.rpartition("/")[0], root)


def storage_options(uri: str) -> dict[str, str] | None:
    """delta-rs `storage_options` for a table at `uri` (from the standard variables,
    `smar.storage.settings`); None on local disk, where delta-rs needs none."""
    return None if is_local(uri) else storage_settings_from_env().delta_rs_storage_options()


def open_delta_table(uri: str, version: int | None = None) -> DeltaTable:
    """The one place a Delta table is opened with delta-rs: the location and storage options
    delta-rs needs for `uri` (a table URI), optionally at a version."""
    return DeltaTable(engine_location(uri), version=version, storage_options=storage_options(uri))


def delta_table(name: str, version: int | None = None, *, settings: SmarSettings | None = None) -> DeltaTable:
    """Table `layer.name` of the warehouse through delta-rs (for analysts, DAG tasks, trainers)."""
    return open_delta_table((settings or get_settings()).table_uri(name), version)


def read_delta(
    name: str, version: int | None = None, *, settings: SmarSettings | None = None,
    columns: list[str] | None = None, filters: Any = None,
) -> pa.Table:  # fmt: skip
    """Rows of table `layer.name` through delta-rs, read with a native pyarrow filesystem
    (`files.table_filesystem`: delta-rs's own handler aborts scripts at exit)."""
    uri = (settings or get_settings()).table_uri(name)
    return open_delta_table(uri, version).to_pyarrow_table(
        columns=columns, filters=filters, filesystem=files.table_filesystem(uri)
    )


def is_commit_conflict(error: BaseException) -> bool:
    """Whether `error` is a lost race for a Delta commit (worth a retry), not a real failure."""
    return bool(_COMMIT_CONFLICT.search(f"{type(error).__name__}: {error}"))


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
    def table_uri(self, table: str) -> str:
        """URI of `layer.name` under the warehouse root (what tables and logs record)."""
        return self.settings.table_uri(table)

    def uri(self, table: str) -> str:
        """Where the engines and delta-rs find `layer.name`: the local path on local disk (as
        before locations were URIs), the URI on an object store."""
        return engine_location(self.table_uri(table))

    def exists(self, table: str) -> bool:
        uri = self.table_uri(table)
        return bool(DeltaTable.is_deltatable(engine_location(uri), storage_options=storage_options(uri)))

    def delta_table(self, table: str, version: int | None = None) -> DeltaTable:
        """`table` through delta-rs (history, versions, pinned reads), with the storage options."""
        return open_delta_table(self.table_uri(table), version)

    def dataset(self, table: str, version: int | None = None) -> Any:
        """`table` as a pyarrow dataset through delta-rs, on a native pyarrow filesystem
        (`files.table_filesystem` says why)."""
        return self.delta_table(table, version).to_pyarrow_dataset(
            filesystem=files.table_filesystem(self.table_uri(table))
        )

    def ensure_table(self, table: str) -> None:
        """Create an empty Delta table from the contract if it does not exist yet; add to an
        existing one the optional columns its contract gained since (`add_missing_columns`).

        The embedded engine cannot `replaceWhere` into a table that has no commit yet, and an
        empty first write must still leave a readable table with the right schema.
        """
        if self.exists(table):
            self.add_missing_columns(table)
            return
        contract = load_contract(table)
        if is_local(self.table_uri(table)):
            local_path(self.table_uri(table)).parent.mkdir(parents=True, exist_ok=True)
        # Created through the engine (not delta-rs) so nested types get the engine's own field
        # names; the embedded engine refuses to union list<element> with list<item> later.
        spark = self.session
        writer = spark.createDataFrame([], contract.ddl()).write.format("delta").mode("overwrite")
        if contract.partition_by:
            writer = writer.partitionBy(*contract.partition_by)
        writer.save(self.uri(table))
        log.info("created %s at %s", table, self.uri(table))

    def add_missing_columns(self, table: str) -> list[str]:
        """Add the contract's optional columns that the existing table lacks; return their names.

        A contract may gain optional (nullable) columns, e.g. gold.replay_metrics' `reliable`;
        a warehouse written before would then refuse every write of the new rows. The columns are
        added as nulls for the old rows (one delta-rs metadata commit, readable by both engines),
        so users never have to drop a table. A missing *required* column is refused: old rows
        cannot satisfy it, so that needs a migration.
        """
        delta_table = DeltaTable(self.uri(table))
        present = {field.name for field in delta_table.schema().fields}
        contract = load_contract(table)
        missing = [column for column in contract.columns if column.name not in present]
        if not missing:
            return []
        required = [column.name for column in missing if column.required]
        if required:
            raise ValueError(
                f"{table} at {self.uri(table)} lacks required column(s) {required} of its contract; "
                "existing rows cannot have them: migrate the table"
            )
        arrow = contract.arrow_schema()
        delta_table.alter.add_columns([DeltaField.from_arrow(arrow.field(column.name)) for column in missing])
        names = [column.name for column in missing]
        log.info("%s: added the contract's new column(s) %s to the existing table", table, names)
        return names

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
        """The table through delta-rs (no Spark), optionally at a version: for trainers and analysts.

        Columns in one order whichever engine wrote the table (pysail stores the partition columns
        last, delta-spark in the contract's order): the contract's, partition columns last, then
        any others, so that fingerprints of what a run read agree across engines."""
        data = self.delta_table(table, version).to_pyarrow_table(
            filters=filters, filesystem=files.table_filesystem(self.table_uri(table))
        )
        contract = load_contract(table)
        order = [column.name for column in contract.columns if column.name not in contract.partition_by]
        order += list(contract.partition_by)
        present = set(data.column_names)
        return data.select(
            [name for name in order if name in present] + [n for n in data.column_names if n not in order]
        )

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
        """Replace exactly the rows of `slice_values` (e.g. {"ds": "2026-11-01"}) with `rows`, in
        one atomic commit: a reader sees the old slice or the new one, never a mix or nothing.

        Rows outside the slice are an error (Delta refuses them), so a job cannot clobber another
        day by accident. Rerunning with the same rows gives the same table. A commit that loses a
        race against another writer is retried (`COMMIT_ATTEMPTS`), then `ConcurrentWriteError`.
        """
        contract = load_contract(table)
        self.ensure_table(table)
        conformed = conform(self.frame(rows, table), contract)
        for column, value in slice_values.items():
            # Stamp the slice columns so the frame always satisfies the replaceWhere predicate.
            conformed = conformed.withColumn(column, F.lit(value).cast(contract.column(column).type))
        if self.is_connect_session() and contract.has_nested_columns:
            self._replace_staged(conformed, table, slice_values)
            return
        self._commit(
            table,
            lambda: (
                conformed.write.format("delta")
                .mode("overwrite")
                .option("replaceWhere", predicate(slice_values))
                .save(self.uri(table))
            ),
        )

    def _replace_staged(self, conformed: DataFrame, table: str, slice_values: dict[str, Any]) -> None:
        """replaceWhere through a staging Delta table, for the embedded engine and nested columns.

        pysail 0.7.2 cannot union a frame whose nested types differ from the table's in Arrow
        details (list field names "item" / "element", struct field metadata) inside replaceWhere.
        Appended to a staging table created with the target's own schema and read back, the rows
        carry exactly that schema, and the slice is replaced in one commit.
        Staging also materialises a plan that reads the very slice it replaces. A crash leaves the
        target at its previous version; `expire_leftovers` removes the orphaned staging table.
        """
        spark = self.session
        staging_uri = join(self.settings.warehouse, STAGING_FOLDER, table, uuid.uuid4().hex)
        staging = engine_location(staging_uri)
        try:
            # An empty copy of the table's own schema first, then the rows appended to it: the
            # engine fits appended rows to a table's schema, nested field names and metadata included.
            target_schema = spark.read.format("delta").load(self.uri(table)).schema
            spark.createDataFrame([], target_schema).write.format("delta").save(staging)
            conformed.write.format("delta").mode("append").save(staging)
            staged = spark.read.format("delta").load(staging)
            self._commit(
                table,
                lambda: (
                    staged.write.format("delta")
                    .mode("overwrite")
                    .option("replaceWhere", predicate(slice_values))
                    .save(self.uri(table))
                ),
            )
        finally:
            remove_run_folder(staging_uri, join(self.settings.warehouse, STAGING_FOLDER))

    def _commit(self, table: str, write: Callable[[], object]) -> None:
        """Run one Delta commit, retrying when another writer committed first."""
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                write()
                return
            except Exception as error:
                if not is_commit_conflict(error):
                    raise
                if attempt == COMMIT_ATTEMPTS:
                    raise ConcurrentWriteError(
                        f"{table}: another run kept committing to the same table; gave up after {attempt} "
                        f"attempts ({str(error).splitlines()[0][:200]}). Rerun the job."
                    ) from error
                # Jittered exponential backoff: two writers that collided do not collide again in step.
                pause = COMMIT_BACKOFF_SECONDS * (2 ** (attempt - 1)) * (1 + random.random())
                log.warning("%s: commit conflict (attempt %d), retrying in %.1fs", table, attempt, pause)
                time.sleep(pause)

    def is_connect_session(self) -> bool:
        """Whether this lakehouse writes through a Spark Connect session (the embedded engine)."""
        return type(self.session).__module__.startswith("pyspark.sql.connect")

    def append(self, rows: Rows, table: str) -> None:
        """Append rows (for tables whose writers guarantee unique runs, e.g. a new run_id)."""
        contract = load_contract(table)
        self.ensure_table(table)
        conformed = conform(self.frame(rows, table), contract)
        self._commit(table, lambda: conformed.write.format("delta").mode("append").save(self.uri(table)))

    def write_rejects(self, rejects: Rows, *, ds: str, job: str, source: str | None = None) -> None:
        """Replace the `bronze.rejects` slice (ds, job[, source]) with `rejects` (empty: clear it).

        Nothing is committed when the slice already holds exactly these rejects (their time
        aside): a rerun that refuses the same rows adds no Delta version."""
        slice_values = {"ds": ds, "job": job}
        if source is not None:
            slice_values["source"] = source
        contract = load_contract(REJECTS_TABLE)
        incoming = conform(self.frame(rejects, REJECTS_TABLE), contract)
        for column, value in slice_values.items():
            incoming = incoming.withColumn(column, F.lit(value).cast(contract.column(column).type))
        if self.exists(REJECTS_TABLE):
            stored = self.read(REJECTS_TABLE).where(predicate(slice_values)).drop("rejected_at")
            fresh = incoming.drop("rejected_at")
            if not fresh.exceptAll(stored).limit(1).collect() and not stored.exceptAll(fresh).limit(1).collect():
                return
        self.overwrite_slice(incoming, REJECTS_TABLE, slice_values)

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
            statement = (
                f"UPDATE delta.`{self.uri(table)}` SET {assignments} "
                f"WHERE ({predicate(dict(where))}) AND ({changed_condition(values)})"
            )
            self._commit(table, lambda: spark.sql(statement).collect())
            return to_change
        view = f"set_values_keys_{uuid.uuid4().hex[:12]}"
        keys.dropDuplicates().createOrReplaceTempView(view)
        on = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in key_columns)
        within = " AND ".join(f"target.`{column}` = {sql_literal(value)}" for column, value in where.items())
        statement = (
            f"MERGE INTO delta.`{self.uri(table)}` AS target USING {view} AS source "
            f"ON {on}{' AND ' + within if within else ''} "
            f"WHEN MATCHED AND ({changed_condition(values, alias='target')}) THEN UPDATE SET {assignments}"
        )
        self._commit(table, lambda: spark.sql(statement).collect())
        return to_change

    def update_columns(
        self,
        rows: Sequence[Mapping[str, Any]],
        table: str,
        *,
        columns: Sequence[str],
        where: Mapping[str, Any],
        keys: Sequence[str] | None = None,
    ) -> int:
        """Set `columns` of the rows matching `where` to the values `rows` (mappings holding the
        keys and `columns`) give for their keys (default: the contract's keys): a per-row
        `set_values`. Rows of `rows` without a match are ignored (nothing is inserted). Only rows
        where some value differs are rewritten, and nothing is committed when none does (a rerun
        adds no Delta version). Returns how many rows changed."""
        contract = load_contract(table)
        key_columns = list(keys or contract.keys)
        if not columns or not key_columns:
            raise ValueError(f"update_columns on {table} needs columns and keys")
        if not rows:
            return 0
        names = [*key_columns, *[column for column in columns if column not in key_columns]]
        spark = self.session
        source = spark.createDataFrame(
            [tuple(_plain(row.get(name)) for name in names) for row in rows],
            ", ".join(f"`{name}` {contract.column(name).type}" for name in names),
        ).dropDuplicates(key_columns)
        differs = " OR ".join(f"NOT (target.`{column}` <=> source.`{column}`)" for column in columns)
        changing = (
            self.read(table)
            .where(predicate(dict(where)))
            .alias("target")
            .join(source.alias("source"), on=[F.col(f"target.{key}") == F.col(f"source.{key}") for key in key_columns])
            .where(differs)
        )
        to_change = changing.count()
        if not to_change:
            return 0
        view = f"update_columns_{uuid.uuid4().hex[:12]}"
        source.createOrReplaceTempView(view)
        on = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in key_columns)
        within = " AND ".join(f"target.`{column}` = {sql_literal(value)}" for column, value in where.items())
        assignments = ", ".join(f"`{column}` = source.`{column}`" for column in columns)
        statement = (
            f"MERGE INTO delta.`{self.uri(table)}` AS target USING {view} AS source "
            f"ON {on}{' AND ' + within if within else ''} "
            f"WHEN MATCHED AND ({differs}) THEN UPDATE SET {assignments}"
        )
        self._commit(table, lambda: spark.sql(statement).collect())
        return to_change

    def merge(
        self,
        rows: Rows,
        table: str,
        keys: list[str] | None = None,
        *,
        update_when_changed: list[str] | None = None,
        newest_by: str | None = None,
    ) -> None:
        """Upsert `rows` into `table` on `keys` (default: the contract's keys) with SQL MERGE INTO.

        With `update_when_changed`, a matched row is only rewritten when one of those columns
        differs, so re-merging the same data adds no rewrite of unchanged rows. With `newest_by`
        (a timestamp column), a matched row is only rewritten by a source row at least as new:
        an older value never overwrites a newer one (it stays only in the source's history).
        """
        contract = load_contract(table)
        keys = keys or contract.keys
        if not keys:
            raise ValueError(f"{table}: MERGE needs keys and the contract declares none")
        self.ensure_table(table)
        spark = self.session
        view = f"merge_source_{contract.table.replace('.', '_')}_{uuid.uuid4().hex[:12]}"
        conform(self.frame(rows, table), contract).createOrReplaceTempView(view)
        on = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in keys)
        conditions = []
        if update_when_changed:
            conditions.append(
                " OR ".join(f"NOT (target.`{column}` <=> source.`{column}`)" for column in update_when_changed)
            )
        if newest_by:
            conditions.append(f"target.`{newest_by}` IS NULL OR source.`{newest_by}` >= target.`{newest_by}`")
        matched = "WHEN MATCHED" + "".join(f" AND ({condition})" for condition in conditions)
        statement = (
            f"MERGE INTO delta.`{self.uri(table)}` AS target USING {view} AS source ON {on} "
            f"{matched} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        )
        self._commit(table, lambda: spark.sql(statement).collect())

    # -- housekeeping -----------------------------------------------------------------------------
    def expire_leftovers(self, *, now: float | None = None) -> list[str]:
        """Remove what killed runs left under the warehouse: landing copies of raw rows
        (`_landing/<ds>/<source>/<run>/`) and staging tables (`_staging/<table>/<run>/`) older
        than `settings.leftover_retention_hours`. Raw logs are personal data: they must not stay
        behind forever. A finished run removes its own at once. Returns the URIs removed.

        A run folder's age is its own mtime on local disk, and its newest object's on an object
        store (where a prefix has no time of its own)."""
        cutoff = (time.time() if now is None else now) - 3600.0 * self.settings.leftover_retention_hours
        removed: list[str] = []
        # _landing/<ds>/<source>/<run>/ and _staging/<table>/<run>/
        for folder, depth in ((LANDING_FOLDER, 3), (STAGING_FOLDER, 2)):
            root = join(self.settings.warehouse, folder)
            runs = [root]
            for _ in range(depth):
                runs = [child for run in runs for child in files.list_dirs(run)]
            for run in runs:
                if _age_of(run) < cutoff:
                    files.remove_tree(run)
                    removed.append(run)
            if is_local(root):
                base = local_path(root)
                for empty in [*sorted(base.rglob("*"), reverse=True), base] if base.is_dir() else []:
                    if empty.is_dir() and not any(empty.iterdir()):
                        empty.rmdir()
        if removed:
            log.info("removed %d leftover landing/staging folders older than %gh", len(removed),
                     self.settings.leftover_retention_hours)  # fmt: skip
        return removed

    # -- metadata (delta-rs) --------------------------------------------------------------------
    def version(self, table: str) -> int:
        """Current Delta version of the table."""
        return int(self.delta_table(table).version())

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commit history, newest first (operation, timestamp, parameters, metrics)."""
        history: list[dict[str, Any]] = self.delta_table(table).history(limit)
        return history

    def row_count(self, table: str, *, version: int | None = None) -> int:
        return int(self.dataset(table, version).count_rows())

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
            delta_table = self.delta_table(name)
            last = delta_table.history(1)[0]
            modified = datetime.fromtimestamp(last["timestamp"] / 1000, tz=UTC)
            infos.append(
                TableInfo(
                    name,
                    self.uri(name),
                    True,
                    delta_table.version(),
                    delta_table.to_pyarrow_dataset(
                        filesystem=files.table_filesystem(self.table_uri(name))
                    ).count_rows(),
                    tuple(contract.partition_by),
                    last.get("operation"),
                    modified,
                )
            )
        return infos


def _age_of(run: str) -> float:
    """Seconds since the epoch a run folder was last touched (see `expire_leftovers`)."""
    if is_local(run):
        return local_path(run).stat().st_mtime
    times = [entry.mtime for entry in files.list_files(run) if entry.mtime is not None]
    return max(times) if times else 0.0


def _plain(value: Any) -> Any:
    # Python rows may carry numpy scalars (from pandas or numpy maths); Spark wants Python values.
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        return value.item()
    return value
