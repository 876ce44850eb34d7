"""Table contracts: the single source of truth for every table's shape.

Each table has one YAML file under the repository's `schemas/<layer>/<name>.yaml` (shipped inside
the wheel as `smar/_contracts`). From it we derive the Arrow schema, the Spark `StructType`, the
DDL string, the conforming `select` of a writer, and the Great Expectations suite.

Types use Spark SQL spelling: `string`, `long`, `int`, `double`, `float`, `boolean`,
`timestamp`, `date`, `array<T>`, `struct<a:T,b:U>`, `map<K,V>`.

`required: true` is a *logical* rule (ingest refuses rows where it is null); the physical Delta
column stays nullable so that tables written by delta-rs, Spark and the embedded engine stay
readable by each other (docs/architecture.md, "Engines").
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml
from pydantic import BaseModel, Field, model_validator

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "binary": pa.binary(),
}


def _split_top_level(text: str, separator: str = ",") -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current).strip())
    return parts


def arrow_type(spark_type: str) -> pa.DataType:
    """Arrow type of a Spark SQL type string, e.g. `array<struct<item_id:string,rank:int>>`."""
    text = spark_type.strip()
    lowered = text.lower()
    if lowered in _PRIMITIVES:
        return _PRIMITIVES[lowered]
    if lowered.startswith("array<") and text.endswith(">"):
        return pa.list_(arrow_type(text[6:-1]))
    if lowered.startswith("map<") and text.endswith(">"):
        key, value = _split_top_level(text[4:-1])
        return pa.map_(arrow_type(key), arrow_type(value))
    if lowered.startswith("struct<") and text.endswith(">"):
        fields = []
        for part in _split_top_level(text[7:-1]):
            field_name, _, field_type = part.partition(":")
            fields.append(pa.field(field_name.strip(), arrow_type(field_type), nullable=True))
        return pa.struct(fields)
    raise ValueError(f"unsupported type in contract: {spark_type!r}")


class ColumnChecks(BaseModel):
    """Value rules a column must satisfy; each becomes a GX expectation and an ingest rule."""

    model_config = {"extra": "forbid"}

    allowed: list[Any] | None = Field(default=None, description="closed set of values")
    min: float | None = None
    max: float | None = None
    regex: str | None = None
    length: int | None = Field(default=None, description="exact length of an array column")
    allow_non_finite: bool = Field(
        default=False, description="float columns (and float arrays): accept NaN and infinities"
    )


class Column(BaseModel):
    model_config = {"extra": "forbid"}

    name: str
    type: str
    required: bool = False
    description: str = ""
    checks: ColumnChecks = Field(default_factory=ColumnChecks)

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.type)


class Contract(BaseModel):
    """One table's contract."""

    model_config = {"extra": "forbid"}

    table: str
    description: str
    layer: Literal["bronze", "truth", "silver", "gold"]
    columns: list[Column]
    partition_by: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list, description="columns that identify a row")
    unique_keys: bool = Field(default=True, description="whether `keys` must be unique (validated at ingest and by GX)")

    @model_validator(mode="after")
    def _check_references(self) -> Contract:
        names = {column.name for column in self.columns}
        for listed in (*self.partition_by, *self.keys):
            if listed not in names:
                raise ValueError(f"{self.table}: {listed!r} is not a column of the contract")
        if not self.table.startswith(f"{self.layer}."):
            raise ValueError(f"{self.table}: table name must start with its layer {self.layer!r}")
        return self

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.table} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema; every field nullable (see module docstring)."""
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=True) for c in self.columns])

    def spark_schema(self) -> Any:
        """Spark `StructType`, derived from the Arrow schema; every field nullable."""
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self.arrow_schema())

    def ddl(self) -> str:
        """A DDL string (`a string, b long`) usable by `createDataFrame` on both engines."""
        return ", ".join(f"`{c.name}` {c.type}" for c in self.columns)

    @property
    def has_nested_columns(self) -> bool:
        """Whether any column is an array, struct or map."""
        return any(pa.types.is_nested(column.arrow_type) for column in self.columns)

    def empty_table(self) -> pa.Table:
        return self.arrow_schema().empty_table()


def contracts_dir() -> Traversable:
    """Where the YAML contracts are: inside the installed package (also a zipped wheel on
    spark-submit --py-files, hence importlib.resources), else the repository's `schemas/`."""
    packaged = resources.files("smar") / "_contracts"
    if packaged.is_dir():
        return packaged
    repository = Path(__file__).resolve().parents[2] / "schemas"
    if repository.is_dir():
        return repository
    raise FileNotFoundError(
        f"table contracts not found in {packaged} nor {repository}; install the smar wheel or run from a checkout"
    )


@cache
def load_contract(table: str) -> Contract:
    """The contract of `layer.name`, read from `schemas/<layer>/<name>.yaml`."""
    layer, _, name = table.partition(".")
    path = contracts_dir() / layer / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"no contract for table {table!r} (looked for {path})")
    with path.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    contract = Contract.model_validate(raw)
    if contract.table != table:
        raise ValueError(f"{path} declares table {contract.table!r}, expected {table!r}")
    return contract


def all_tables() -> list[str]:
    """Every table with a contract, as `layer.name`, sorted."""
    root = contracts_dir()
    return sorted(
        f"{layer.name}.{entry.name.removesuffix('.yaml')}"
        for layer in root.iterdir()
        if layer.is_dir()
        for entry in layer.iterdir()
        if entry.name.endswith(".yaml")
    )
