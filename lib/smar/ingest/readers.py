"""Raw input read by Spark: files on the executors, the generator's rows through the landing area.

**Files** (`ingest --source files`): Spark reads every input file (`binaryFile`, so on the
executors, wherever the file lives: local disk, `s3://`, ...) and a `mapInArrow` function runs the
parsers of `smar.ingest.sources` on each file's bytes. Nothing passes through the driver and no
landing copy is written. Why `binaryFile` and not `spark.read.text` / `spark.read.parquet`
(measured on pysail 0.7.2, the embedded engine): a text read of a file with one invalid UTF-8
line fails the whole read ("Encountered invalid UTF-8 data"), so that line could not reach
`bronze.rejects` with its reason; and neither engine says where a row was in its file
(`input_file_name` is unsupported on pysail, and pysail's partitions of one Parquet file are not
in file order), which "the first duplicate in source order wins" needs. Parsing each file whole
keeps every reason and the exact source order: file name order, then line (or row) offset. One
file is one task: split a large day into part files (`search_logs.part0.jsonl`, ...), each under
2 GB (Spark's binaryFile limit).

Row numbers run on across a table's files, as before: a small job counts each file's rows first
(only one count per file reaches the driver), then each row's number is its offset in its file plus
the rows of the files before it.

**Generator and Qilin rows** exist only on the driver (they are made or parsed there); they are
written once as Parquet under `<warehouse>/_landing/<ds>/<source>/<run>/` through the filesystem
layer (so an executor on another host reads them from the warehouse's store) and read back with
`spark.read.parquet`. The run removes its folder when it ends; `Lakehouse.expire_leftovers`
removes what a killed run left.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from smar.contracts import load_contract
from smar.errors import SourceError
from smar.ingest.validation import MISSING_COLUMNS, PARSE_ERROR, RAW_PAYLOAD, ROW_NUMBER, TYPE_ERRORS
from smar.storage import files
from smar.storage.uris import display, engine_location, is_local, join, local_path

FILE_INDEX = "_file_index"
FILE_ERROR = "_file_error"


@dataclass(frozen=True)
class LandedTable:
    """One table's landed rows: frames for `validate_rows` and how many rows they hold."""

    frames: list[DataFrame]
    landed: int


def _path_key(location: str) -> str:
    """A file's path without scheme, bucket-relative prefix or leading slashes, for matching what
    Spark reports as a row's `path` (`file:/x`, `x`, `s3://b/x` or `b/x`) to the input's URI."""
    text = unquote(location)
    for prefix in ("file://", "file:", "s3a://", "s3://", "gs://", "abfss://", "abfs://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return text.lstrip("/")


def _file_index_of(reported: str, keys: Sequence[tuple[int, str]]) -> int:
    key = _path_key(reported)
    for index, candidate in keys:
        if key == candidate or key.endswith("/" + candidate) or candidate.endswith("/" + key):
            return index
    raise RuntimeError(f"Spark read {reported!r}, which is none of the input files {[k for _, k in keys]}")


def _json_schema(table: str) -> T.StructType:
    contract = load_contract(table)
    fields = [T.StructField(name, T.StringType()) for name in contract.column_names]
    fields.append(T.StructField(ROW_NUMBER, T.LongType()))
    fields += [T.StructField(name, T.StringType()) for name in (RAW_PAYLOAD, PARSE_ERROR, MISSING_COLUMNS, TYPE_ERRORS)]
    return T.StructType(
        [*fields, T.StructField(FILE_INDEX, T.IntegerType()), T.StructField(FILE_ERROR, T.StringType())]
    )


def _json_lines_frame(
    spark: SparkSession, table: str, indexed: Sequence[tuple[int, str]], *, labelled: bool
) -> DataFrame:
    """The JSON lines files (index, URI) of `table` parsed on the executors (one file per row of
    binaryFile); a blank file becomes one marker row carrying `_file_error`."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = _json_schema(table)
    arrow_schema = to_arrow_schema(schema)
    keys = [(index, _path_key(engine_location(uri))) for index, uri in indexed]
    labels = {index: unquote(uri.rpartition("/")[2]) for index, uri in indexed}
    shown = {index: display(uri) for index, uri in indexed}

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from smar.ingest.sources import is_nonblank, parse_json_lines

        for batch in batches:
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                index = _file_index_of(path, keys)
                if not is_nonblank(content):
                    yield _marker_batch(arrow_schema, index, f"{shown[index]}: file is empty")
                    continue
                parsed = parse_json_lines(content, table, label=labels[index] if labelled else None)
                parsed = parsed.append_column(FILE_INDEX, pa.array([index] * parsed.num_rows, pa.int32()))
                parsed = parsed.append_column(FILE_ERROR, pa.nulls(parsed.num_rows, pa.string()))
                yield from parsed.select(arrow_schema.names).cast(arrow_schema).to_batches(max_chunksize=8192)

    raw = spark.read.format("binaryFile").load([engine_location(uri) for _, uri in indexed])
    return raw.select("path", "content").mapInArrow(parse, schema)


def _marker_batch(schema: pa.Schema, index: int, error: str) -> pa.RecordBatch:
    columns = {field.name: pa.nulls(1, field.type) for field in schema}
    columns[FILE_INDEX] = pa.array([index], pa.int32())
    columns[FILE_ERROR] = pa.array([error], pa.string())
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def _parquet_frame(spark: SparkSession, uri: str, index: int) -> DataFrame:
    """One Parquet file read on an executor, numbered in file order; its schema from the footer."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    try:
        with files.open_input(uri) as source:
            file_schema = pq.read_schema(source)
    except (OSError, pa.ArrowInvalid) as error:
        raise SourceError(f"{display(uri)}: not a readable Parquet file or folder ({error})") from error
    if ROW_NUMBER in file_schema.names:
        file_schema = file_schema.remove(file_schema.get_field_index(ROW_NUMBER))
    schema = from_arrow_schema(file_schema, prefer_timestamp_ntz=False)
    schema = T.StructType(
        [
            *schema.fields,
            T.StructField(ROW_NUMBER, T.LongType()),
            T.StructField(FILE_INDEX, T.IntegerType()),
            T.StructField(FILE_ERROR, T.StringType()),
        ]  # fmt: skip
    )
    arrow_schema = to_arrow_schema(schema, timezone="UTC")

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from smar.ingest.sources import with_row_numbers

        for batch in batches:
            for content in batch.column("content").to_pylist():
                table = pq.read_table(io.BytesIO(content))
                if ROW_NUMBER in table.column_names:
                    table = table.drop_columns([ROW_NUMBER])
                table = with_row_numbers(table)
                table = table.append_column(FILE_INDEX, pa.array([index] * table.num_rows, pa.int32()))
                table = table.append_column(FILE_ERROR, pa.nulls(table.num_rows, pa.string()))
                yield from table.select(arrow_schema.names).cast(arrow_schema).to_batches(max_chunksize=8192)

    raw = spark.read.format("binaryFile").load(engine_location(uri))
    return raw.select("content").mapInArrow(parse, schema)


def read_input_files(spark: SparkSession, table: str, inputs: Sequence[object]) -> LandedTable:
    """Every input file of `table` (`smar.ingest.sources.InputFile`, in name order) as landing
    frames with row numbers running on across files; a file with no rows is refused."""
    from smar.ingest.sources import InputFile

    input_list = [item for item in inputs if isinstance(item, InputFile)]
    for item in input_list:
        if item.file_format == "json" and item.size == 0:  # Spark reads no row at all for it
            raise SourceError(f"{display(item.uri)}: file is empty")
    # Each file's index is its place in name order; all JSON lines files share one frame.
    frames: list[DataFrame] = []
    json_files = [(index, item.uri) for index, item in enumerate(input_list) if item.file_format == "json"]
    if json_files:
        frames.append(_json_lines_frame(spark, table, json_files, labelled=len(input_list) > 1))
    for index, item in enumerate(input_list):
        if item.file_format == "parquet":
            frames.append(_parquet_frame(spark, item.uri, index))
    counts: dict[int, int] = {}
    for frame in frames:
        per_file = frame.groupBy(FILE_INDEX).agg(
            F.count(F.when(F.col(FILE_ERROR).isNull(), 1)).alias("rows"), F.max(FILE_ERROR).alias("error")
        )
        for row in per_file.collect():
            if row["error"]:
                raise SourceError(str(row["error"]))
            counts[int(row[FILE_INDEX])] = int(row["rows"])
    offsets = []
    running = 0
    for index in range(len(input_list)):
        offsets.append(running)
        running += counts.get(index, 0)
    offset_of = F.element_at(F.array(*[F.lit(offset).cast("long") for offset in offsets]), F.col(FILE_INDEX) + 1)
    numbered = [
        frame.where(F.col(FILE_ERROR).isNull())
        .withColumn(ROW_NUMBER, F.col(ROW_NUMBER) + offset_of)
        .drop(FILE_INDEX, FILE_ERROR)
        for frame in frames
    ]
    return LandedTable(numbered, running)


def land_driver_rows(spark: SparkSession, folder: str, parts: Sequence[pa.Table], *, table: str) -> LandedTable:
    """Rows made on the driver (generator, Qilin) written once under the run's landing `folder`
    (a URI) through the filesystem layer and read back by Spark."""
    frames = []
    for number, part in enumerate(parts):
        uri = join(folder, table, f"part-{number:04d}.parquet")
        filesystem, path = files.resolve(uri)
        if is_local(uri):
            local_path(uri).parent.mkdir(parents=True, exist_ok=True)
        # Non-compliant nested names ("item") match what the engine itself writes for arrays.
        pq.write_table(part, path, filesystem=filesystem, use_compliant_nested_type=False)
        frames.append(spark.read.parquet(engine_location(uri)))
    return LandedTable(frames, sum(part.num_rows for part in parts))
