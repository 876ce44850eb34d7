"""Row-level validation of landed rows against a table contract, Spark-native.

Input: a landing DataFrame with (some of) the contract's columns, typed or as strings, plus the
bookkeeping columns of `LANDING_COLUMNS`. Output: the accepted rows conformed to the contract, and
the refused rows shaped like `bronze.rejects`, each with every reason that applies. Nothing is
dropped: `accepted + rejected == landed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from smar.contracts import Column as ContractColumn
from smar.contracts import Contract, load_contract

ROW_NUMBER = "_row_number"  # 0-based position in the source, for reasons and stable order
RAW_PAYLOAD = "_raw_payload"  # the raw line when the source had one (JSON lines, CSV)
PARSE_ERROR = "_parse_error"  # set by the reader when a line could not be parsed at all
MISSING_COLUMNS = "_missing_columns"  # comma-separated contract columns absent from the row
LANDING_COLUMNS = (ROW_NUMBER, RAW_PAYLOAD, PARSE_ERROR, MISSING_COLUMNS)
_COMPLEX_PREFIXES = ("array<", "struct<", "map<")
_REASONS = "_reasons"


@dataclass(frozen=True)
class ValidatedRows:
    """The two outputs of `validate_rows`."""

    accepted: DataFrame
    rejected: DataFrame


def _is_complex(type_name: str) -> bool:
    return type_name.lower().startswith(_COMPLEX_PREFIXES)


def typed_value(frame: DataFrame, column: ContractColumn) -> Column:
    """The column cast to its contract type; null where the raw value does not parse.

    Strings holding JSON are parsed for complex types (as JSON lines deliver them).
    """
    source_type = frame.schema[column.name].dataType
    raw = F.col(column.name)
    if _is_complex(column.type) and isinstance(source_type, T.StringType):
        return F.from_json(raw, column.type)
    return raw.try_cast(column.type)


def _raw_text(column_name: str) -> Column:
    return F.coalesce(F.col(column_name).cast("string"), F.lit("<complex value>"))


def _value_reasons(frame: DataFrame, column: ContractColumn, typed: Column) -> list[Column]:
    """`when(...)` reasons for one contract column, evaluated on the raw and typed values."""
    name = column.name
    reasons: list[Column] = []
    raw = F.col(name)
    reasons.append(
        F.when(
            raw.isNotNull() & typed.isNull(),
            F.concat(F.lit(f"column '{name}': value '"), _raw_text(name), F.lit(f"' is not a valid {column.type}")),
        )
    )
    if column.required:
        # A column already reported as missing is not reported again as null.
        reported_missing = F.array_contains(F.split(F.coalesce(F.col(MISSING_COLUMNS), F.lit("")), ","), name)
        reasons.append(F.when(raw.isNull() & ~reported_missing, F.lit(f"column '{name}' is null but required")))
    checks = column.checks
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
    for bookkeeping in (RAW_PAYLOAD, PARSE_ERROR):
        if bookkeeping not in present:
            frame = frame.withColumn(bookkeeping, F.lit(None).cast("string"))
    absent_text = F.lit(",".join(absent)) if absent else F.lit(None).cast("string")
    if MISSING_COLUMNS in present:
        combined = F.concat_ws(",", F.col(MISSING_COLUMNS), absent_text)
        frame = frame.withColumn(MISSING_COLUMNS, F.when(combined != "", combined))
    else:
        frame = frame.withColumn(MISSING_COLUMNS, absent_text)
    return frame


def validate_rows(
    landed: DataFrame,
    table: str,
    *,
    ds: str,
    job: str,
    source: str,
) -> ValidatedRows:
    """Split landed rows into accepted (conformed to `table`'s contract) and rejected rows.

    Reasons: unparseable line; missing required column; wrong type; null required value;
    value outside its allowed set or range or pattern; `ds` other than the ingested day;
    duplicate key (the first occurrence in source order is kept, later ones refused).
    """
    contract = load_contract(table)
    frame = add_missing_landing_columns(landed, contract)
    typed = {column.name: typed_value(frame, column) for column in contract.columns}

    reasons: list[Column] = [
        F.when(F.col(PARSE_ERROR).isNotNull(), F.col(PARSE_ERROR)),
        F.when(F.col(MISSING_COLUMNS).isNotNull(), F.concat(F.lit("missing column(s): "), F.col(MISSING_COLUMNS))),
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
        F.filter(F.array(*reasons), lambda reason: reason.isNotNull()).alias(_REASONS),
        # Raw (pre-cast) values: a refused row is kept as it was received.
        F.to_json(F.struct(*[F.col(name) for name in contract.column_names])).alias("_row_as_json"),
    )

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
    return ValidatedRows(accepted=accepted, rejected=rejected)
