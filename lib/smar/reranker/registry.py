"""The model registry `gold.reranker_runs`: one row per trained reranker or baseline run.

A row records what was trained (method, strategy, budget, seed, hyper-parameters), on what
(the Delta version of every input table, the days), how well it did (validation and test
metrics as JSON, plus the two NDCG@10 headline columns), where the artifact is
(a URI, `<settings.artifacts>/rerankers/<run_id>`: state_dict + config JSON, or the baseline's
files; a registered model loads from any host), and from which code (`git rev-parse HEAD`, "unknown" outside a checkout).

Rows are written with MERGE by run_id, so registering a run again replaces its row. A run_id is
derived from the run's definition (`make_run_id`), so retraining the same thing on the same
inputs replaces rather than duplicates.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from smar.config import SmarSettings
from smar.lake import Lakehouse
from smar.storage.uris import join
from smar.vocabulary import canonical_json, content_hash

RUNS_TABLE = "gold.reranker_runs"


@dataclass(frozen=True)
class RunRecord:
    """One registry row (JSON columns as Python dicts)."""

    run_id: str
    method: str
    strategy: str | None
    budget: float | None
    seed: int
    hyperparameters: dict[str, Any]
    input_versions: dict[str, int]
    train_ds: tuple[str, ...]
    validation_metrics: dict[str, Any]
    test_metrics: dict[str, Any]
    validation_ndcg_at_10: float | None
    test_ndcg_at_10: float | None
    artifact_path: str
    git_commit: str = field(default_factory=lambda: git_commit())
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_row(self) -> dict[str, Any]:
        """The row as the contract's columns (JSON columns serialised, sorted keys)."""
        return {
            "run_id": self.run_id,
            "method": self.method,
            "strategy": self.strategy,
            "budget": None if self.budget is None else float(self.budget),
            "seed": int(self.seed),
            "hyperparameters": canonical_json(self.hyperparameters),
            "input_versions": canonical_json(self.input_versions),
            "train_ds": ",".join(self.train_ds),
            "validation_metrics": canonical_json(self.validation_metrics),
            "test_metrics": canonical_json(self.test_metrics),
            "validation_ndcg_at_10": _finite_or_none(self.validation_ndcg_at_10),
            "test_ndcg_at_10": _finite_or_none(self.test_ndcg_at_10),
            "artifact_path": self.artifact_path,
            "git_commit": self.git_commit,
            "created_at": self.created_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        """Inverse of `to_row`."""
        return cls(
            run_id=row["run_id"],
            method=row["method"],
            strategy=row["strategy"],
            budget=row["budget"],
            seed=int(row["seed"]) if row["seed"] is not None else 0,
            hyperparameters=json.loads(row["hyperparameters"] or "{}"),
            input_versions={k: int(v) for k, v in json.loads(row["input_versions"] or "{}").items()},
            train_ds=tuple(part for part in (row["train_ds"] or "").split(",") if part),
            validation_metrics=json.loads(row["validation_metrics"] or "{}"),
            test_metrics=json.loads(row["test_metrics"] or "{}"),
            validation_ndcg_at_10=row["validation_ndcg_at_10"],
            test_ndcg_at_10=row["test_ndcg_at_10"],
            artifact_path=row["artifact_path"],
            git_commit=row["git_commit"],
            created_at=row["created_at"],
        )


def _finite_or_none(value: float | None) -> float | None:
    if value is None or value != value:  # NaN
        return None
    return float(value)


def git_commit(directory: Path | None = None) -> str:
    """The commit stamped into the wheel at package time (`smar/_commit.txt`, written by
    scripts/package.sh), else `git rev-parse HEAD` of the checkout holding this code (or
    `directory`); "unknown" when there is neither."""
    if directory is None:
        try:  # importlib.resources reads it from a zipped wheel on --py-files too
            stamped = resources.files("smar").joinpath("_commit.txt").read_text().strip()
        except (FileNotFoundError, OSError, NotADirectoryError):
            stamped = ""
        if stamped and stamped != "unknown":
            return stamped
    where = directory or Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else "unknown"


def make_run_id(
    method: str,
    *,
    strategy: str | None,
    budget: float | None,
    seed: int,
    hyperparameters: dict[str, Any],
    inputs: str,
    train_ds: Sequence[str],
) -> str:
    """`<method>-b<budget%>-s<seed>-<12 hex>`: the hex is a hash of everything that defines the
    run, `inputs` being the content fingerprint of what it read (not table versions, which every
    rewrite bumps): the same definition on the same data always gets the same id."""
    digest = content_hash(
        {"method": method, "strategy": strategy, "budget": budget, "seed": seed,
         "hyperparameters": hyperparameters, "inputs": inputs, "train_ds": list(train_ds)}
    )  # fmt: skip
    budget_part = "na" if budget is None else f"{round(100 * budget):03d}"
    return f"{method}-b{budget_part}-s{seed}-{digest}"


def artifact_directory(settings: SmarSettings, run_id: str) -> str:
    """Where run `run_id` keeps its artifact files (a URI)."""
    return join(settings.artifacts, "rerankers", run_id)


def register_runs(lake: Lakehouse, records: Sequence[RunRecord]) -> None:
    """MERGE the rows of `records` into `gold.reranker_runs` by run_id (one commit)."""
    if not records:
        return
    lake.merge([record.to_row() for record in records], RUNS_TABLE, ["run_id"])


def register_run(lake: Lakehouse, record: RunRecord) -> None:
    """MERGE one run's row (see `register_runs`)."""
    register_runs(lake, [record])


def load_run(lake: Lakehouse, run_id: str, *, version: int | None = None) -> RunRecord:
    """The registry row of `run_id` (KeyError naming the run when absent)."""
    if not lake.exists(RUNS_TABLE):
        raise KeyError(f"run {run_id!r}: {RUNS_TABLE} does not exist yet")
    table = lake.read_arrow(RUNS_TABLE, version=version, filters=None)
    rows = table.filter(pc.equal(table["run_id"], run_id)).to_pylist()
    if not rows:
        raise KeyError(f"run {run_id!r} is not in {RUNS_TABLE}")
    return RunRecord.from_row(rows[0])
