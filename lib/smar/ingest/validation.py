"""Row-level validation of landed rows against a table contract, Spark-native.

Input: a landing DataFrame with (some of) the contract's columns, typed or as strings, plus the
bookkeeping columns of `LANDING_COLUMNS`. Output: the accepted rows conformed to the contract, and
the refused rows shaped like `bronze.rejects`, each with every reason that applies (a line that
could not be parsed at all has that one reason). Nothing is dropped: `accepted + rejected == landed`.

Casts are exact or refused, the same for every format (`typed_value`): text is parsed only when it
spells a value of the contract type exactly (`"2"` or `"2.0"` into an int, never `"1.9"`); a
fractional number becomes an integer only when it has no fraction; a number or a boolean is never
silently turned into text. NaN and infinities are refused in float columns (and inside float
arrays) unless the contract's `allow_non_finite` says otherwise, and required text may not be empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from smar.contracts import Column as ContractColumn
from smar.contracts import Contract, load_contract

ROW_NUMBER = "_row_number"  # 0-based position in the source, for reasons and stable order
RAW_PAYLOAD = "_raw_payload"  # the raw line when the source had one (JSON lines, CSV)
PARSE_ERROR = "_parse_error"  # set by the reader when a line could not be parsed at all
MISSING_COLUMNS = "_missing_columns"  # comma-separated contract columns absent from the row
TYPE_ERRORS = "_type_errors"  # "; "-joined values the reader saw with the wrong type (JSON number for text)
LANDING_COLUMNS = (ROW_NUMBER, RAW_PAYLOAD, PARSE_ERROR, MISSING_COLUMNS, TYPE_ERRORS)
_INTEGRAL = frozenset({"int", "integer", "long", "bigint", "short", "smallint", "tinyint", "byte"})
_FRACTIONAL = frozenset({"double", "float"})
# Text that spells an integer exactly; a zero fraction ("2.0") is the same integer, as JSON writes it.
_INTEGER_TEXT = r"^[+-]?[0-9]+(\.0*)?$"
_NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(NaN|Infinity|inf)$"
_INFINITY = float("inf")
_COMPLEX_PREFIXES = ("array<", "struct<", "map<")
_REASONS = "_reasons"


@dataclass(frozen=True)
class ValidatedRows:
    """The two outputs of `validate_rows`."""

    accepted: DataFrame
    rejected: DataFrame
    cached: DataFrame | None = None  # the persisted checked rows (`persist=True`)

    def release(self) -> None:
        """Drop the cache `persist=True` made (nothing otherwise)."""
        if self.cached is not None:
            self.cached.unpersist()


def _is_complex(type_name: str) -> bool:
    return type_name.lower().startswith(_COMPLEX_PREFIXES)


def typed_value(frame: DataFrame, column: ContractColumn) -> Column:
    """The column cast to its contract type exactly; null where the raw value is not one.

    Strings holding JSON are parsed for complex types (as JSON lines deliver them).
    """
    source_type = frame.schema[column.name].dataType
    raw = F.col(column.name)
    target = column.type.strip().lower()
    is_text = isinstance(source_type, T.StringType)
    if _is_complex(target):
        return F.from_json(raw, column.type) if is_text else raw.try_cast(column.type)
    if target == "string":
        # A number or a boolean where text is required is refused, not turned into its digits.
        return raw if is_text else F.lit(None).cast("string")
    if isinstance(source_type, T.BooleanType) and target != "boolean":
        return F.lit(None).cast(column.type)
    if target in _INTEGRAL:
        if is_text:
            text = F.trim(raw)
            return F.when(text.rlike(_INTEGER_TEXT), F.regexp_replace(text, r"\.0*$", "").try_cast(column.type))
        if isinstance(source_type, (T.FloatType, T.DoubleType, T.DecimalType)):
            whole = raw.try_cast(column.type)
            # 1.9 would truncate to 1: only a number without a fraction becomes an integer.
            return F.when(whole.cast("double") == raw.cast("double"), whole)
        return raw.try_cast(column.type)
    if target in _FRACTIONAL and is_text:
        text = F.trim(raw)
        return F.when(text.rlike(_NUMBER_TEXT), text.try_cast(column.type))
    if target == "boolean":
        if is_text:
            text = F.lower(F.trim(raw))
            return F.when(text == "true", F.lit(True)).when(text == "false", F.lit(False))
        return raw if isinstance(source_type, T.BooleanType) else F.lit(None).cast("boolean")
    return raw.try_cast(column.type)


def _non_finite(typed: Column, column: ContractColumn) -> Column | None:
    """True where a float value (or an element of a float array) is NaN or infinite."""
    target = column.type.strip().lower()

    def bad(value: Column) -> Column:
        return F.isnan(value) | (F.abs(value) == F.lit(_INFINITY))

    if target in _FRACTIONAL:
        return bad(typed)
    if target in ("array<float>", "array<double>"):
        return F.exists(typed, bad)
    return None


def _raw_text(column_name: str) -> Column:
    return F.coalesce(F.col(column_name).cast("string"), F.lit("<complex value>"))


def _value_reasons(frame: DataFrame, column: ContractColumn, typed: Column) -> list[Column]:
    """`when(...)` reasons for one contract column, evaluated on the raw and typed values."""
    name = column.name
    reasons: list[Column] = []
    raw = F.col(name)
    source_type = frame.schema[name].dataType
    given = "" if isinstance(source_type, T.StringType) else f" ({source_type.simpleString()} given)"
    reasons.append(
        F.when(
            raw.isNotNull() & typed.isNull(),
            F.concat(
                F.lit(f"column '{name}': value '"), _raw_text(name), F.lit(f"'{given} is not a valid {column.type}")
            ),
        )
    )
    if column.required:
        # A column already reported as missing is not reported again as null.
        reported_missing = F.array_contains(F.split(F.coalesce(F.col(MISSING_COLUMNS), F.lit("")), ","), name)
        reasons.append(F.when(raw.isNull() & ~reported_missing, F.lit(f"column '{name}' is null but required")))
        if column.type.strip().lower() == "string":
            reasons.append(F.when(F.trim(typed) == "", F.lit(f"column '{name}' is empty but required")))
    checks = column.checks
    non_finite = None if checks.allow_non_finite else _non_finite(typed, column)
    if non_finite is not None:
        reasons.append(
            F.when(typed.isNotNull() & non_finite, F.lit(f"column '{name}': NaN or infinite value is not allowed"))
        )
    if checks.allowed is not None:
        allowed = ", ".join(str(value) for value in checks.allowed)
        reasons.append(
            F.when(
                typed.isNotNull() & ~typed.isin(checks.allowed),
                F.concat(F.lit(f"column '{name}': value '"), typed.cast("string"), F.lit(f"' not in [{allowed}]")),
            )
        )
    if checks.min is not None:
        reasons.append(
            F.when(
                typed < F.lit(checks.min),
                F.concat(
                    F.lit(f"column '{name}': value "), typed.cast("string"), F.lit(f" below minimum {checks.min:g}")
                ),
            )
        )
    if checks.max is not None:
        reasons.append(
            F.when(
                typed > F.lit(checks.max),
                F.concat(
                    F.lit(f"column '{name}': value "), typed.cast("string"), F.lit(f" above maximum {checks.max:g}")
                ),
            )
        )
    if checks.regex is not None:
        reasons.append(
            F.when(
                typed.isNotNull() & ~typed.rlike(checks.regex),
                F.concat(F.lit(f"column '{name}': value '"), typed, F.lit(f"' does not match {checks.regex}")),
            )
        )
    if checks.length is not None:
        reasons.append(
            F.when(
                typed.isNotNull() & (F.size(typed) != checks.length),
                F.concat(
                    F.lit(f"column '{name}': length "), F.size(typed).cast("string"), F.lit(f" != {checks.length}")
                ),
            )
        )
    return reasons


def add_missing_landing_columns(frame: DataFrame, contract: Contract) -> DataFrame:
    """Give a landing frame every contract and bookkeeping column, recording absent contract columns."""
    present = set(frame.columns)
    # Only required columns count as missing; absent optional columns are simply null.
    absent = [column.name for column in contract.columns if column.name not in present and column.required]
    for column in contract.columns:
        if column.name not in present:
            frame = frame.withColumn(column.name, F.lit(None).cast("string"))
    if ROW_NUMBER not in present:
        raise ValueError(f"landing frame for {contract.table} needs a {ROW_NUMBER} column")
    for bookkeeping in (RAW_PAYLOAD, PARSE_ERROR, TYPE_ERRORS):
        if bookkeeping not in present:
            frame = frame.withColumn(bookkeeping, F.lit(None).cast("string"))
    absent_text = F.lit(",".join(absent)) if absent else F.lit(None).cast("string")
    if MISSING_COLUMNS in present:
        combined = F.concat_ws(",", F.col(MISSING_COLUMNS), absent_text)
        frame = frame.withColumn(MISSING_COLUMNS, F.when(combined != "", combined))
    else:
        frame = frame.withColumn(MISSING_COLUMNS, absent_text)
    return frame


def _checked_rows(landed: DataFrame, contract: Contract, ds: str) -> DataFrame:
    """One landed frame with its values cast to the contract and every reason that applies."""
    frame = add_missing_landing_columns(landed, contract)
    typed = {column.name: typed_value(frame, column) for column in contract.columns}
    reasons: list[Column] = [
        F.when(F.col(MISSING_COLUMNS).isNotNull(), F.concat(F.lit("missing column(s): "), F.col(MISSING_COLUMNS))),
        F.when(F.col(TYPE_ERRORS).isNotNull(), F.col(TYPE_ERRORS)),
    ]
    for column in contract.columns:
        reasons += _value_reasons(frame, column, typed[column.name])
    if "ds" in typed:
        reasons.append(
            F.when(
                typed["ds"].isNotNull() & (typed["ds"] != F.lit(ds)),
                F.concat(F.lit("column 'ds': row is for '"), typed["ds"], F.lit(f"' but this run ingests '{ds}'")),
            )
        )

    checked = frame.select(
        *[typed[name].alias(name) for name in contract.column_names],
        F.col(ROW_NUMBER),
        F.col(RAW_PAYLOAD),
        # A line that could not be parsed has that one reason, not one per column it lacks.
        F.when(F.col(PARSE_ERROR).isNotNull(), F.array(F.col(PARSE_ERROR)))
        .otherwise(F.filter(F.array(*reasons), lambda reason: reason.isNotNull()))
        .alias(_REASONS),
        # Raw (pre-cast) values: a refused row is kept as it was received.
        F.to_json(F.struct(*[F.col(name) for name in contract.column_names])).alias("_row_as_json"),
    )
    return checked


def validate_rows(
    landed: DataFrame | Sequence[DataFrame],
    table: str,
    *,
    ds: str,
    job: str,
    source: str,
    existing_keys: DataFrame | None = None,
    persist: bool = False,
) -> ValidatedRows:
    """Split landed rows into accepted (conformed to `table`'s contract) and rejected rows.

    Reasons: unparseable line (then the only reason); missing required column; wrong type
    (inexact cast, or a value the reader saw with another type); null or empty required value;
    NaN or infinity; value outside its allowed set or range or pattern; `ds` other than the
    ingested day; duplicate key (the first occurrence in source order is kept, later ones refused).

    With `persist`, the checked rows are cached (memory, then the executors' disks) so that the
    counts, the rejects and the writes that follow read them once, not once each: for classic
    Spark, where each action would re-read and re-validate the input; `unpersist` them after.
    """
    contract = load_contract(table)
    frames = [landed] if isinstance(landed, DataFrame) else list(landed)
    if not frames:
        raise ValueError(f"validate_rows needs at least one landed frame for {table}")
    # Each file is checked against its own (typed or text) schema, then the checked rows, all of the
    # contract's types now, are put together: duplicate keys are found across files.
    checked = reduce(DataFrame.unionByName, [_checked_rows(frame, contract, ds) for frame in frames])

    if contract.keys and contract.unique_keys:
        keys_present = F.lit(True)
        for key in contract.keys:
            keys_present = keys_present & F.col(key).isNotNull()
        key_window = (
            Window.partitionBy(*contract.keys)
            .orderBy(F.col(ROW_NUMBER).asc())
            .rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        first_window = (
            Window.partitionBy(*contract.keys)
            .orderBy(F.col(ROW_NUMBER).asc())
            .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        )
        key_text = F.concat_ws(", ", *[F.col(key).cast("string") for key in contract.keys])
        duplicate_reason = F.when(
            keys_present & (F.count(F.lit(1)).over(key_window) > 1),
            F.concat(
                F.lit(f"duplicate key ({', '.join(contract.keys)}) = ("),
                key_text,
                F.lit("), first seen at row "),
                F.first(F.col(ROW_NUMBER)).over(first_window).cast("string"),
            ),
        )
        checked = checked.withColumn(
            _REASONS,
            F.filter(F.concat(F.col(_REASONS), F.array(duplicate_reason)), lambda reason: reason.isNotNull()),
        )

    if existing_keys is not None and contract.keys:
        # A key another source already wrote for the day would be counted twice downstream.
        other = [column for column in existing_keys.columns if column not in contract.keys]
        if len(other) != 1:
            raise ValueError(f"existing_keys needs the key columns {contract.keys} and one source column")
        checked = checked.join(existing_keys, on=list(contract.keys), how="left")
        key_text = F.concat_ws(", ", *[F.col(key).cast("string") for key in contract.keys])
        already = F.when(
            F.col(other[0]).isNotNull(),
            F.concat(
                F.lit(f"duplicate key ({', '.join(contract.keys)}) = ("),
                key_text,
                F.lit(f"): already in {table} for ds {ds} from source '"),
                F.col(other[0]),
                F.lit("'"),
            ),
        )
        checked = checked.withColumn(
            _REASONS, F.filter(F.concat(F.col(_REASONS), F.array(already)), lambda reason: reason.isNotNull())
        ).drop(other[0])

    if persist:
        from pyspark import StorageLevel

        checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    is_rejected = F.size(F.col(_REASONS)) > 0
    accepted = checked.where(~is_rejected).select(*[F.col(name) for name in contract.column_names])
    rejected = checked.where(is_rejected).select(
        F.lit(ds).alias("ds"),
        F.lit(job).alias("job"),
        F.lit(table).alias("target_table"),
        F.lit(source).alias("source"),
        F.col(ROW_NUMBER).cast("long").alias("row_number"),
        F.array_join(F.col(_REASONS), "; ").alias("reason"),
        F.coalesce(F.col(RAW_PAYLOAD), F.col("_row_as_json")).alias("raw_payload"),
        F.current_timestamp().alias("rejected_at"),
    )
    return ValidatedRows(accepted=accepted, rejected=rejected, cached=checked if persist else None)
