"""DataFrame helpers below the lakehouse: conforming a frame to its table's contract, collecting a
small frame as pandas, and fingerprinting what a run read."""

from __future__ import annotations

import hashlib

import pandas as pd
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smar.contracts import Contract


def content_fingerprint(*frames: pd.DataFrame) -> str:
    """sha256 of the frames' rows (column names and values, in the given order): what a run
    read, independent of Delta versions, which every rewrite bumps even with the same rows."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(repr(list(frame.columns)).encode("utf-8"))
        digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """`frame` collected as pandas: for per-query or per-page aggregates, never a day of rows."""
    collected: pd.DataFrame = frame.toPandas()
    return collected


def conform(frame: DataFrame, contract: Contract) -> DataFrame:
    """Select exactly the contract's columns, in its order, cast to its types.

    Missing optional columns become typed nulls; a missing required column is an error, because a
    writer that forgets a key is a bug, not bad input.
    """
    present = set(frame.columns)
    types = {field.name: field.dataType.simpleString() for field in frame.schema.fields}
    selected: list[SparkColumn] = []
    for column in contract.columns:
        if column.name in present and types[column.name] == _spark_type_string(column.type):
            # Already the contract's type: a no-op cast would still stamp field metadata on nested
            # types, which the embedded engine then refuses to union with the table's own schema.
            selected.append(F.col(column.name).alias(column.name))
        elif column.name in present:
            selected.append(F.col(column.name).cast(column.type).alias(column.name))
        elif column.required:
            raise ValueError(
                f"cannot write {contract.table}: required column {column.name!r} is missing "
                f"(frame has {sorted(present)})"
            )
        else:
            selected.append(F.lit(None).cast(column.type).alias(column.name))
    return frame.select(*selected)


def _spark_type_string(contract_type: str) -> str:
    """A contract type in Spark's `simpleString` spelling (long -> bigint, integer -> int, ...)."""
    from pyspark.sql.types import _parse_datatype_string

    return str(_parse_datatype_string(contract_type).simpleString())
