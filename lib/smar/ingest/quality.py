"""Great Expectations suites derived from the table contracts, and a validator for pandas frames.

The suite of a table comes from its contract alone (`schemas/<layer>/<name>.yaml`):

| contract                          | expectation                                              |
|-----------------------------------|----------------------------------------------------------|
| the column list                   | `expect_table_columns_to_match_set` (exact, any order)   |
| `required: true`                  | `expect_column_values_to_not_be_null`                    |
| `checks.allowed`                  | `expect_column_values_to_be_in_set`                      |
| `checks.min` / `checks.max`       | `expect_column_values_to_be_between` (bounds inclusive)  |
| `checks.regex`                    | `expect_column_values_to_match_regex`                    |
| `checks.length`                   | `expect_column_array_lengths_to_equal` (defined here)    |
| `keys` with `unique_keys: true`   | `expect_column_values_to_be_unique` for one key,         |
|                                   | `expect_compound_columns_to_be_unique` for several       |

Value checks skip nulls (GX's convention for column-map expectations), so an optional column may
be null; only `required` makes null a failure, exactly as the ingest rules read the contract.

`validate_frame` runs the suite through a *file* Data Context rooted at `reports_dir/gx`, so the
validation result JSON and the Data Docs HTML site persist there. When `reports_dir` is on an
object store, GX (which writes only to local disk) runs on a fresh local context in a temporary
folder, and its results and Data Docs pages are then published under `reports_dir/gx/` through the
filesystem layer (`smar.storage.files`); the site's index there lists the latest run. GX's usage statistics are
switched off (environment and context config) so that nothing tries the network.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlparse

import pandas as pd

# Set before GX is imported, for GX builds whose contexts start an analytics client (the 1.24.1
# wheel installed here ships none); each context's config switches it off as well.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context import FileDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from smar.contracts import Contract
from smar.storage import files
from smar.storage.uris import is_local, join, local_path, normalize_location

DATA_SOURCE_NAME = "smar_frames"
BATCH_DEFINITION_NAME = "whole_frame"
DATA_DOCS_SITE = "local_site"
# How many offending values a failure message (and the stored result) quotes.
EXAMPLES_PER_FAILURE = 5


class ColumnValuesArrayLengthEquals(ColumnMapMetricProvider):
    """Row-wise metric: the array in the cell holds exactly `value` elements (pandas only)."""

    condition_metric_name = "column_values.array_length.equals"
    condition_value_keys = ("value",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, value: int, **kwargs: Any) -> pd.Series:
        # Nulls never reach here: map metrics filter them out first.
        return column.map(len) == value


class ExpectColumnArrayLengthsToEqual(ColumnMapExpectation):
    """Expect every non-null array (list or numpy array) in the column to hold `value` elements.

    GX's own `expect_column_value_lengths_to_equal` measures `str(cell)` on pandas, so on an
    array column it counts characters of the printed list, not elements.
    """

    value: int
    map_metric: ClassVar[str] = "column_values.array_length.equals"
    success_keys: ClassVar[tuple[str, ...]] = ("value", "mostly")
    args_keys: ClassVar[tuple[str, ...]] = ("column", "value")


@dataclass(frozen=True)
class ValidationSummary:
    """What a caller needs from one validation run; the full result lives at `result_path`."""

    table: str
    success: bool
    evaluated: int
    successful: int
    failed: list[str]
    result_path: str  # URIs: on an object store, where the files were published
    data_docs_index: str


def expectation_suite(contract: Contract) -> gx.ExpectationSuite:
    """The GX suite of a table, derived from its contract alone; named after the table."""
    expectations: list[Any] = [gxe.ExpectTableColumnsToMatchSet(column_set=contract.column_names, exact_match=True)]
    for column in contract.columns:
        checks = column.checks
        if column.required:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column.name))
        if checks.allowed is not None:
            expectations.append(gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=checks.allowed))
        if checks.min is not None or checks.max is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeBetween(column=column.name, min_value=checks.min, max_value=checks.max)
            )
        if checks.regex is not None:
            expectations.append(gxe.ExpectColumnValuesToMatchRegex(column=column.name, regex=checks.regex))
        if checks.length is not None:
            expectations.append(ExpectColumnArrayLengthsToEqual(column=column.name, value=checks.length))
    if contract.keys and contract.unique_keys:
        if len(contract.keys) == 1:
            expectations.append(gxe.ExpectColumnValuesToBeUnique(column=contract.keys[0]))
        else:
            expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=contract.keys))
    return gx.ExpectationSuite(
        name=contract.table,
        expectations=expectations,
        meta={"derived_from": f"schemas/{contract.layer}/{contract.table.split('.', 1)[1]}.yaml"},
    )


def validate_frame(
    frame: pd.DataFrame,
    contract: Contract,
    *,
    reports_dir: str | Path,
    run_name: str,
) -> ValidationSummary:
    """Validate `frame` against the contract's suite; persist the result and Data Docs.

    Everything lives in a file Data Context at `reports_dir/gx`. A rerun with the same `run_name`
    replaces that run's stored result and its Data Docs page (the data source, asset, suite,
    validation definition and checkpoint are got-or-added / updated), so reruns are idempotent.
    Runs of several processes are serialised on a lock file next to the context: GX rewrites
    the context's files on every run, and two writers at once leave it corrupt.
    The whole frame is validated: 1,000,000 bronze.search_logs rows take about 5-7 s here.
    """
    reports = normalize_location(reports_dir, what="reports")
    if is_local(reports):
        with _context_lock(local_path(reports)):
            return _validate_frame_locked(frame, contract, reports_dir=local_path(reports), run_name=run_name)
    # An object store has no file lock and GX writes only local files: a private local context,
    # then its files published below the reports URI.
    with tempfile.TemporaryDirectory(prefix="smar-gx-") as temporary:
        summary = _validate_frame_locked(frame, contract, reports_dir=Path(temporary), run_name=run_name)
        context_root = Path(temporary) / "gx"
        files.upload_tree(context_root, join(reports, "gx"))

    def published(local: str) -> str:
        return join(reports, "gx", local_path(local).relative_to(context_root).as_posix())

    return ValidationSummary(
        summary.table, summary.success, summary.evaluated, summary.successful, summary.failed,
        published(summary.result_path), published(summary.data_docs_index),
    )  # fmt: skip


@contextlib.contextmanager
def _context_lock(reports_dir: Path) -> Iterator[None]:
    """An exclusive lock (flock) on `reports_dir/gx/.smar.lock`, released on exit."""
    lock_path = reports_dir / "gx" / ".smar.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _validate_frame_locked(
    frame: pd.DataFrame, contract: Contract, *, reports_dir: Path, run_name: str
) -> ValidationSummary:
    context = _file_context(reports_dir)
    batch_definition = _whole_frame_batch_definition(context, contract.table)
    suite = context.suites.add_or_update(expectation_suite(contract))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=contract.table, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=contract.table,
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DATA_DOCS_SITE])],
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": EXAMPLES_PER_FAILURE,
            },
        )
    )
    _forget_run(context, suite_name=contract.table, run_name=run_name)
    # An explicit run time: given none, GX parses a date-like run name ("2025-10-16") as the time.
    run_id = gx.RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    checkpoint_result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)

    ((result_identifier, result),) = checkpoint_result.run_results.items()
    store_backend = context.validation_results_store.store_backend
    result_path = _path_of_file_url(store_backend.get_url_for_key(result_identifier.to_tuple()))
    statistics = result.statistics
    return ValidationSummary(
        table=contract.table,
        success=bool(result.success),
        evaluated=int(statistics["evaluated_expectations"]),
        successful=int(statistics["successful_expectations"]),
        failed=[_describe_failure(r) for r in result.results if not r.success],
        result_path=result_path.as_uri(),
        data_docs_index=_data_docs_index(context).as_uri(),
    )


def _file_context(reports_dir: Path) -> FileDataContext:
    """The file Data Context at `reports_dir/gx`: created on first use, reopened afterwards."""
    context = gx.get_context(mode="file", project_root_dir=Path(reports_dir))
    variables = context.variables
    progress_bars = variables.progress_bars
    bars_on = progress_bars is None or bool(
        progress_bars["globally"] if isinstance(progress_bars, dict) else progress_bars.globally
    )
    if variables.analytics_enabled is not False or bars_on:
        # Written once into great_expectations.yml. Job logs want no tqdm bars either.
        variables.analytics_enabled = False
        variables.progress_bars = ProgressBarsConfig(globally=False)
        variables.save()
    return context


def _whole_frame_batch_definition(context: FileDataContext, asset_name: str) -> BatchDefinition:
    """Get or add the pandas data source, the table's dataframe asset and its batch definition."""
    try:
        data_source = context.data_sources.get(DATA_SOURCE_NAME)
    except KeyError:
        data_source = context.data_sources.add_pandas(DATA_SOURCE_NAME)
    try:
        asset = data_source.get_asset(asset_name)
    except LookupError:
        asset = data_source.add_dataframe_asset(asset_name)  # type: ignore[attr-defined]
    try:
        return asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)


def _forget_run(context: FileDataContext, *, suite_name: str, run_name: str) -> None:
    """Remove an earlier run of this name: its stored results and their Data Docs pages."""
    store = context.validation_results_store
    keys: list[Any] = list(store.list_keys())  # ValidationResultIdentifier objects
    for key in keys:
        if key.expectation_suite_identifier.name != suite_name or key.run_id.run_name != run_name:
            continue
        files = [_path_of_file_url(store.store_backend.get_url_for_key(key.to_tuple()))]
        for site in context.get_docs_sites_urls(resource_identifier=key, site_name=DATA_DOCS_SITE):
            site_url = site.get("site_url")
            if site_url:
                files.append(_path_of_file_url(site_url))
        store.remove_key(key)
        for file in files:
            file.unlink(missing_ok=True)
            # Each result sits alone in a folder named after its run time; drop that folder too.
            if file.parent.is_dir() and not any(file.parent.iterdir()):
                file.parent.rmdir()


def _data_docs_index(context: FileDataContext) -> Path:
    sites = context.get_docs_sites_urls(site_name=DATA_DOCS_SITE)
    site_url = sites[0]["site_url"] if sites else None
    if not site_url:
        raise RuntimeError(f"GX built no Data Docs site {DATA_DOCS_SITE!r} under {context.root_directory}")
    return _path_of_file_url(site_url)


def _path_of_file_url(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def _describe_failure(expectation_result: Any) -> str:
    """One line per failed expectation, e.g. `expect_column_values_to_be_in_set(modality): 3
    unexpected, e.g. ['audio']`."""
    configuration = expectation_result.expectation_config
    kwargs = configuration.kwargs
    if "column" in kwargs:
        subject = kwargs["column"]
    elif "column_list" in kwargs:
        subject = ", ".join(kwargs["column_list"])
    else:
        subject = None  # a table-level expectation
    label = configuration.type if subject is None else f"{configuration.type}({subject})"
    error = _exception_message(expectation_result.exception_info or {})
    if error is not None:
        return f"{label}: could not be evaluated: {error}"
    details = expectation_result.result or {}
    mismatched = (details.get("details") or {}).get("mismatched")
    if mismatched is not None:
        # expect_table_columns_to_match_set: name what is missing and what is extra.
        missing = sorted(mismatched.get("missing") or [])
        unexpected = sorted(mismatched.get("unexpected") or [])
        return f"{label}: missing columns {missing}, unexpected columns {unexpected}"
    if "unexpected_count" in details:
        examples = _distinct(details.get("partial_unexpected_list") or [])
        return f"{label}: {details['unexpected_count']} unexpected, e.g. {examples}"
    return f"{label}: failed, observed {details.get('observed_value')!r}"


def _exception_message(exception_info: dict[str, Any]) -> str | None:
    """The first error GX caught while evaluating an expectation, e.g. a missing column."""
    # GX reports either one flat record, or one record per metric that failed to compute.
    records = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    for record in records:
        if isinstance(record, dict) and record.get("exception_message"):
            return str(record["exception_message"])
    return None


def _distinct(values: list[Any]) -> list[Any]:
    """Values in first-seen order without repeats; compared by repr, as rows come as dicts."""
    seen: set[str] = set()
    distinct = []
    for value in values:
        # numpy arrays (array columns) print as `array([...], dtype=...)`; show a plain list.
        value = value.tolist() if hasattr(value, "tolist") else value
        if repr(value) not in seen:
            seen.add(repr(value))
            distinct.append(value)
    return distinct
