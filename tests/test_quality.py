"""Great Expectations suites derived from table contracts, run on pandas frames for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smar.contracts import Contract, load_contract
from smar.ingest.quality import ValidationSummary, expectation_suite, validate_frame
from smar.storage.uris import local_path

SEARCH_LOGS = "bronze.search_logs"


def _pairs(suite) -> set[tuple[str, str]]:
    """(expectation type, column or comma-joined columns or '') of every expectation."""
    pairs = set()
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        subject = kwargs.get("column") or ",".join(kwargs.get("column_list", []))
        pairs.add((expectation.expectation_type, subject))
    return pairs


def _kwargs(suite, expectation_type: str, subject: str) -> dict:
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        if expectation.expectation_type == expectation_type and (
            kwargs.get("column") == subject or ",".join(kwargs.get("column_list", [])) == subject
        ):
            return dict(kwargs)
    raise AssertionError(f"no {expectation_type} on {subject!r}")


def _valid_search_logs() -> pd.DataFrame:
    """Three impressions of two pages; every contract rule holds, optional columns have nulls."""
    return pd.DataFrame(
        {
            "ds": ["2025-10-16", "2025-10-16", "2025-10-16"],
            "request_id": ["r1", "r1", "r2"],
            "query_id": ["q1", "q1", "q2"],
            "query_text": ["red shoes", "red shoes", "cats"],
            "user_id": ["u1", "u1", None],
            "request_ts": pd.to_datetime(["2025-10-16T08:00:00Z"] * 2 + ["2025-10-16T09:30:00Z"]),
            "item_id": ["w1", "i7", "a3"],
            "modality": ["web", "image", "answer"],
            "position": pd.Series([1, 2, 1], dtype="int32"),
            "production_score": [2.5, 0.7, None],
            "clicked": pd.Series([1, 0, 0], dtype="int32"),
            "dwell_seconds": [31.0, None, None],
            "logging_propensity": [0.9, 0.1, None],
            "source": ["generator", "generator", "generator"],
        }
    )


def _validate(frame: pd.DataFrame, reports_dir: Path, run_name: str = "test") -> ValidationSummary:
    return validate_frame(frame, load_contract(SEARCH_LOGS), reports_dir=reports_dir, run_name=run_name)


def test_search_logs_suite_holds_the_contract_rules_per_column():
    # Given the bronze.search_logs contract / When deriving its suite
    contract = load_contract(SEARCH_LOGS)
    suite = expectation_suite(contract)
    pairs = _pairs(suite)

    # Then it is named after the table and holds exactly these rules
    assert suite.name == SEARCH_LOGS
    required = ["ds", "request_id", "query_id", "query_text", "item_id", "modality", "position"]
    required += ["clicked", "source"]
    not_null = {column for kind, column in pairs if kind == "expect_column_values_to_not_be_null"}
    assert not_null == set(required)
    assert ("expect_table_columns_to_match_set", "") in pairs
    assert ("expect_column_values_to_match_regex", "ds") in pairs
    assert ("expect_column_values_to_be_in_set", "modality") in pairs
    assert ("expect_column_values_to_be_in_set", "clicked") in pairs
    assert ("expect_column_values_to_be_between", "position") in pairs
    assert ("expect_column_values_to_be_between", "dwell_seconds") in pairs
    assert ("expect_column_values_to_be_between", "logging_propensity") in pairs
    assert ("expect_compound_columns_to_be_unique", "request_id,position") in pairs
    assert len(suite.expectations) == 1 + len(required) + 1 + 2 + 3 + 1

    # And the parameters are the contract's
    columns = _kwargs(suite, "expect_table_columns_to_match_set", "")
    assert sorted(columns["column_set"]) == sorted(contract.column_names)
    assert columns.get("exact_match", True) is True
    assert _kwargs(suite, "expect_column_values_to_be_in_set", "modality")["value_set"] == [
        "web",
        "image",
        "video",
        "answer",
    ]
    assert _kwargs(suite, "expect_column_values_to_be_in_set", "clicked")["value_set"] == [0, 1]
    position = _kwargs(suite, "expect_column_values_to_be_between", "position")
    assert position["min_value"] == 1 and position.get("max_value") is None
    propensity = _kwargs(suite, "expect_column_values_to_be_between", "logging_propensity")
    assert (propensity["min_value"], propensity["max_value"]) == (0, 1)
    assert _kwargs(suite, "expect_column_values_to_match_regex", "ds")["regex"] == (r"^\d{4}-\d{2}-\d{2}$")


def _toy_contract(*, keys: list[str], unique_keys: bool) -> Contract:
    return Contract.model_validate(
        {
            "table": "silver.toy",
            "layer": "silver",
            "description": "toy table for the quality tests",
            "keys": keys,
            "unique_keys": unique_keys,
            "columns": [
                {"name": "item_id", "type": "string", "required": True},
                {"name": "embedding", "type": "array<float>", "checks": {"length": 2}},
            ],
        }
    )


def test_single_key_gets_column_uniqueness_and_non_unique_keys_get_none():
    # Given one key, unique / When deriving / Then a single-column uniqueness expectation
    single = _pairs(expectation_suite(_toy_contract(keys=["item_id"], unique_keys=True)))
    assert ("expect_column_values_to_be_unique", "item_id") in single
    # Given keys that need not be unique / Then no uniqueness expectation at all
    free = _pairs(expectation_suite(_toy_contract(keys=["item_id"], unique_keys=False)))
    assert not {kind for kind, _ in free} & {
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
    }


def test_array_length_check_counts_elements_not_characters(tmp_path):
    # Given an array column that must hold 2 elements, as lists and numpy arrays, one null
    contract = _toy_contract(keys=["item_id"], unique_keys=True)
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "embedding": [[0.25, 1.5], np.array([1.0, 2.0], dtype="float32"), None, [3.0]],
        }
    )
    # When validating
    summary = validate_frame(frame, contract, reports_dir=tmp_path, run_name="lengths")
    # Then only the one-element array fails ("[0.25, 1.5]" has 11 characters but 2 elements)
    assert summary.failed == ["expect_column_array_lengths_to_equal(embedding): 1 unexpected, e.g. [[3.0]]"]


def test_valid_frame_passes_and_persists_its_result(tmp_path):
    # Given a frame that satisfies the contract / When validating
    summary = _validate(_valid_search_logs(), tmp_path, run_name="2025-10-16")

    # Then every expectation passes
    suite_size = len(expectation_suite(load_contract(SEARCH_LOGS)).expectations)
    assert summary.success is True
    assert summary.failed == []
    assert summary.evaluated == summary.successful == suite_size
    assert summary.table == SEARCH_LOGS
    # And the validation result JSON is stored in the file context under reports_dir/gx
    result_path = local_path(summary.result_path)
    assert result_path.is_file()
    assert result_path.is_relative_to(tmp_path / "gx")
    stored = json.loads(result_path.read_text())
    assert stored["success"] is True
    assert len(stored["results"]) == suite_size


def _null_key(frame: pd.DataFrame) -> None:
    frame.loc[2, "request_id"] = None


def _unknown_modality(frame: pd.DataFrame) -> None:
    frame.loc[1, "modality"] = "audio"


def _clicked_two(frame: pd.DataFrame) -> None:
    frame.loc[0, "clicked"] = 2


def _negative_dwell(frame: pd.DataFrame) -> None:
    frame.loc[0, "dwell_seconds"] = -4.0


def _duplicate_key(frame: pd.DataFrame) -> None:
    frame.loc[2, "request_id"] = "r1"  # (r1, 1) is now shown twice


@pytest.mark.parametrize(
    ("break_frame", "expected_failure"),
    [
        (_null_key, "expect_column_values_to_not_be_null(request_id): 1 unexpected, e.g. [None]"),
        (
            _unknown_modality,
            "expect_column_values_to_be_in_set(modality): 1 unexpected, e.g. ['audio']",
        ),
        (_clicked_two, "expect_column_values_to_be_in_set(clicked): 1 unexpected, e.g. [2]"),
        (
            _negative_dwell,
            "expect_column_values_to_be_between(dwell_seconds): 1 unexpected, e.g. [-4.0]",
        ),
        (
            _duplicate_key,
            "expect_compound_columns_to_be_unique(request_id, position): 2 unexpected, "
            "e.g. [{'request_id': 'r1', 'position': 1}]",
        ),
    ],
)
def test_one_broken_rule_fails_naming_its_column(
    tmp_path, break_frame: Callable[[pd.DataFrame], None], expected_failure: str
):
    # Given a valid frame with exactly one rule broken
    frame = _valid_search_logs()
    break_frame(frame)
    # When validating
    summary = _validate(frame, tmp_path)
    # Then the run fails on that rule alone, and the message names the column and the values
    assert summary.success is False
    assert summary.failed == [expected_failure]
    assert summary.successful == summary.evaluated - 1


def test_missing_column_fails_naming_the_column(tmp_path):
    # Given a frame without the modality column
    frame = _valid_search_logs().drop(columns=["modality"])
    # When validating
    summary = _validate(frame, tmp_path)
    # Then the column-set check names it, and the rules on it report that it is absent
    assert summary.success is False
    column_set_failure = "expect_table_columns_to_match_set: missing columns ['modality'], unexpected columns []"
    assert column_set_failure in summary.failed
    about_modality = [line for line in summary.failed if "(modality)" in line]
    assert len(about_modality) == 2  # not-null and in-set
    assert all("could not be evaluated" in line and "modality" in line for line in about_modality)


def test_data_docs_index_is_built_and_names_the_suite(tmp_path):
    # Given / When a validation run
    summary = _validate(_valid_search_logs(), tmp_path, run_name="docs")
    # Then the local Data Docs site has an index under reports_dir/gx that lists the suite
    index = local_path(summary.data_docs_index)
    assert index.name == "index.html"
    assert index.is_file()
    assert index.is_relative_to(tmp_path / "gx")
    assert SEARCH_LOGS in index.read_text(encoding="utf-8")


def test_rerun_with_same_run_name_replaces_the_earlier_result(tmp_path):
    # Given a failing run named 2025-10-16
    broken = _valid_search_logs()
    _unknown_modality(broken)
    first = _validate(broken, tmp_path, run_name="2025-10-16")
    assert first.success is False

    # When the same run name is validated again, now on fixed data
    second = _validate(_valid_search_logs(), tmp_path, run_name="2025-10-16")

    # Then it succeeds, and only the new result of that run remains (in the store and the docs)
    assert second.success is True
    run_folder = local_path(second.result_path).parent.parent
    assert [path.name for path in run_folder.rglob("*.json")] == [local_path(second.result_path).name]
    assert not local_path(first.result_path).exists()
    index = local_path(second.data_docs_index).read_text(encoding="utf-8")
    assert index.count("validations/bronze/search_logs/2025-10-16/") == 1
    assert json.loads(local_path(second.result_path).read_text())["success"] is True
