"""A simulated annotation team for the demo and the tests: grades pages from the generator's hidden
truth and answers in Label Studio's own export format, so the real import path runs.

Noise model, per shown item (both draws seeded by (seed, task_id), so reruns are identical):

* `noise`: with this probability the grade the team perceives is the true grade moved by one
  step, up or down with equal chance (down when already 4, up when 0). Every annotator of the
  task sees the same perceived grade: it stands for what the page context hides or suggests.
* `disagreement`: with this probability an annotator other than the first moves the perceived
  grade by one step of their own. The first annotator always gives the perceived grade.

With noise = disagreement = 0 every annotator returns the true grade exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smar.annotation.label_studio import MAX_GRADE, MIN_GRADE, annotations_export
from smar.storage import files
from smar.storage.uris import normalize_location

ANNOTATOR_NAME = "simulated-annotator-{number}@example.org"


@dataclass(frozen=True)
class SimulatedGrades:
    """What the simulated team returned: grades[(task_id, item_id, annotator)] and counts."""

    grades: dict[tuple[str, str, str], int]
    annotators: tuple[str, ...]
    items_graded: int
    noisy_items: int
    disagreements: int


def annotator_names(n_annotators: int) -> tuple[str, ...]:
    """The simulated annotators' names (what Label Studio's export shows as their email)."""
    if n_annotators < 1:
        raise ValueError(f"n_annotators must be >= 1, got {n_annotators}")
    return tuple(ANNOTATOR_NAME.format(number=number) for number in range(1, n_annotators + 1))


def _one_step(grade: int, rng: np.random.Generator) -> int:
    """`grade` moved one step up or down at random, turned back inside 0..4 at the ends."""
    step = 1 if rng.random() < 0.5 else -1
    moved = grade + step
    return grade - step if not MIN_GRADE <= moved <= MAX_GRADE else moved


def _task_rng(seed: int, task_id: str) -> np.random.Generator:
    task_hash = int(hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:16], 16)
    return np.random.default_rng(np.random.SeedSequence([seed, task_hash]))


def simulate_grades(
    tasks: Sequence[Mapping[str, Any]],
    truth: Mapping[tuple[str, str], int],
    *,
    n_annotators: int = 2,
    noise: float = 0.0,
    disagreement: float = 0.0,
    seed: int = 0,
) -> SimulatedGrades:
    """Grade every item of every Label Studio task (from `build_task`) from `truth[(query_id,
    item_id)]` under the module's noise model. An item without a true grade raises ValueError."""
    for name, probability in (("noise", noise), ("disagreement", disagreement)):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {probability}")
    annotators = annotator_names(n_annotators)
    missing = [
        (task["data"]["query_id"], item["item_id"])
        for task in tasks
        for item in task["data"]["items"]
        if (task["data"]["query_id"], item["item_id"]) not in truth
    ]
    if missing:
        raise ValueError(
            f"{len(missing)} shown item(s) have no true grade in truth.relevance, e.g. "
            f"(query_id, item_id) = {missing[:3]}; the simulated annotator needs generator data"
        )
    grades: dict[tuple[str, str, str], int] = {}
    items_graded = noisy_items = disagreements = 0
    for task in tasks:
        data = task["data"]
        rng = _task_rng(seed, str(data["task_id"]))
        for item in data["items"]:
            items_graded += 1
            perceived = int(truth[(data["query_id"], item["item_id"])])
            if rng.random() < noise:
                perceived = _one_step(perceived, rng)
                noisy_items += 1
            for number, annotator in enumerate(annotators):
                grade = perceived
                if number > 0 and rng.random() < disagreement:
                    grade = _one_step(perceived, rng)
                    disagreements += 1
                grades[(str(data["task_id"]), str(item["item_id"]), annotator)] = grade
    return SimulatedGrades(grades, annotators, items_graded, noisy_items, disagreements)


def write_simulated_export(tasks: Sequence[Mapping[str, Any]], simulated: SimulatedGrades, path: str | Path) -> str:
    """Write the grades as a Label Studio JSON export (`annotations_export`) to location `path`;
    returns its URI."""
    export = annotations_export(tasks, simulated.grades)
    text = json.dumps(export, indent=1, ensure_ascii=False) + "\n"
    return files.write_text(normalize_location(path, what="simulated export"), text)
