"""The vocabulary module agrees with the table contracts, and its helpers do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smar import vocabulary
from smar.contracts import all_tables, load_contract
from smar.ingest.generator import generate_day

LIB = Path(__file__).resolve().parents[1] / "lib" / "smar"


def allowed(table: str, column: str) -> list[object]:
    values = load_contract(table).column(column).checks.allowed
    assert values is not None, f"{table}.{column} has no allowed list"
    return values


def test_every_modality_column_allows_exactly_the_vocabulary_in_its_order() -> None:
    # Given every contract with a modality column
    tables = [name for name in all_tables() if "modality" in load_contract(name).column_names]
    assert len(tables) >= 5
    # Then each allows the vocabulary's modalities, in the same order
    for table in tables:
        assert allowed(table, "modality") == list(vocabulary.MODALITIES), table


def test_strategies_statuses_decisions_and_label_sources_match_the_contracts() -> None:
    assert allowed("silver.annotation_tasks", "strategy") == list(vocabulary.TASK_STRATEGIES)
    assert allowed("gold.annotation_cost", "strategy") == list(vocabulary.TASK_STRATEGIES)
    assert allowed("silver.annotation_tasks", "status") == list(vocabulary.TASK_STATUSES)
    assert allowed("gold.ab_decisions", "decision") == list(vocabulary.DECISIONS)
    assert allowed("gold.budget_sweep", "label_source") == list(vocabulary.SWEEP_LABEL_SOURCES)
    assert allowed("gold.replay_metrics", "label_source") == list(vocabulary.REPLAY_LABEL_SOURCES)
    assert allowed("gold.click_propensities", "method") == list(vocabulary.PROPENSITY_METHODS)
    assert allowed("gold.click_propensities", "identification") == list(vocabulary.EXPLORATION_IDENTIFICATIONS)


def test_grade_range_matches_the_page_labels_contract_and_the_rubric() -> None:
    grade = load_contract("silver.page_labels").column("grade").checks
    assert (grade.min, grade.max) == (vocabulary.MIN_GRADE, vocabulary.MAX_GRADE)
    assert sorted(vocabulary.GRADE_RUBRIC) == list(vocabulary.GRADES)


def test_the_generator_writes_the_modalities_in_the_vocabulary_order() -> None:
    # The order is the generator's: the synthetic data must not change with the vocabulary.
    day = generate_day("2026-11-01", size="tiny", seed=1)
    modalities = day.items.column("modality").to_pylist()
    first_seen = list(dict.fromkeys(modalities))
    assert set(first_seen) == set(vocabulary.MODALITIES)


def test_no_module_redefines_the_vocabulary() -> None:
    # Given every module of the package except the vocabulary itself
    redefinition = re.compile(
        r"^(MODALITIES|MIN_GRADE|MAX_GRADE|STRATEGIES|TASK_STRATEGIES|FUSION_METHODS|SPLITS)\s*[:=]", re.MULTILINE
    )
    offenders = [
        str(path.relative_to(LIB))
        for path in LIB.rglob("*.py")
        if path.name != "vocabulary.py" and redefinition.search(path.read_text(encoding="utf-8"))
    ]
    # Then none defines these names again
    assert offenders == []


def test_content_ids_depend_on_the_definition_only() -> None:
    first = vocabulary.content_id("sm", {"b": [1, 2], "a": "x"})
    assert first == vocabulary.content_id("sm", {"a": "x", "b": (1, 2)})
    assert first != vocabulary.content_id("sm", {"a": "y", "b": [1, 2]})
    assert re.fullmatch(r"sm-[0-9a-f]{12}", first)
    assert len(vocabulary.content_id("replay", {}, length=16)) == len("replay-") + 16


def test_days() -> None:
    assert vocabulary.day_range("2026-10-30", "2026-11-01") == ["2026-10-30", "2026-10-31", "2026-11-01"]
    assert vocabulary.days_ending("2026-11-01", 2) == ["2026-10-31", "2026-11-01"]
    for bad in ("2026-13-01", "../../x", "2026-1-1", ""):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            vocabulary.parse_day(bad)
    with pytest.raises(ValueError, match="before"):
        vocabulary.day_range("2026-11-02", "2026-11-01")
