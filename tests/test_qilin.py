"""Qilin-format ingest on the real toy rows in tests/data/qilin_toy."""

from __future__ import annotations

import csv

import pytest

from smar.ingest.qilin import land_qilin, parse_numpy_vector, parse_qilin_details

DS = "2026-11-01"


def test_details_and_vectors_parse_from_numpy_printouts():
    details = parse_qilin_details(
        "[{'click': 1.0, 'note_idx': 5, 'page_time': 5.9, 'position': 1.0}\n {'click': 0.0, 'note_idx': 7, 'page_time': nan, 'position': 2.0}]"
    )
    assert details == [
        {"click": 1.0, "note_idx": 5, "page_time": 5.9, "position": 1.0},
        {"click": 0.0, "note_idx": 7, "page_time": None, "position": 2.0},
    ]
    assert parse_numpy_vector("[ 1.0e-01 -2.5e+00\n  3.0e+00]") == pytest.approx([0.1, -2.5, 3.0])


def test_landing_maps_impressions_modality_and_features(sample_data):
    folder = sample_data / "qilin_toy"
    landed = land_qilin(folder, DS)
    csv.field_size_limit(1 << 30)
    expected_impressions = 0
    for name in ("search_train.csv", "search_test.csv"):
        with (folder / name).open(encoding="utf-8") as handle:
            expected_impressions += sum(
                len(parse_qilin_details(row["search_result_details_with_idx"])) for row in csv.DictReader(handle)
            )
    logs = landed["bronze.search_logs"].to_pandas()
    assert len(logs) == expected_impressions > 0
    items = landed["bronze.items"].to_pandas()
    assert len(items) == 10
    with (folder / "notes.csv").open(encoding="utf-8") as handle:
        note_types = [int(float(row["note_type"])) for row in csv.DictReader(handle)]
    assert items.modality.tolist() == [{1: "image", 2: "video"}[t] for t in note_types]
    users = landed["bronze.users"].to_pandas()
    assert len(users) == 10 and users.dense_features.map(lambda text: len(eval(text))).eq(42).all()


def test_ingest_keeps_items_and_users_and_refuses_impressions_of_unknown_notes(spark, lake, sample_data):
    from smar.ingest.jobs import run_ingest

    # The toy's impressions point at notes outside the 10-row notes sample, so their modality is
    # unknown: every impression is refused with that reason, never dropped or guessed.
    results = {
        r.table: r
        for r in run_ingest(
            spark,
            lake,
            ds=DS,
            source="qilin",
            path=sample_data / "qilin_toy",
            max_reject_fraction=1.0,
            run_quality_checks=False,
        )
    }
    assert results["bronze.items"].accepted == 10 and results["bronze.users"].accepted == 10
    logs = results["bronze.search_logs"]
    assert logs.rejected == logs.landed > 0
    reasons = {row.reason for row in lake.read("bronze.rejects").where("target_table = 'bronze.search_logs'").collect()}
    assert all("not in notes.csv: modality unknown" in reason for reason in reasons)
    items = lake.read("bronze.items").collect()
    assert {row.source for row in items} == {"qilin"}
    assert all(row.visual_embedding is not None and len(row.visual_embedding) > 0 for row in items)
