"""Annotations and predictions on a Label Studio server (`label_studio_api` for the connection,
projects, tasks and exports): the simulated annotation team working through the API, and
pre-annotations with a `model_version`.

* **The simulated team.** `simulate_annotations` grades the pushed tasks with the file
  simulator's noise model and seeds (`smar.annotation.simulate.simulate_grades`, so both give the
  same grades), one Label Studio user per annotator, one annotation per (task, annotator).
  Rerunning creates nothing; another seed edits the annotations (same id, later `updated_at`).
* **Predictions and `model_version`.** The labeling stream shows a task's predictions only when
  the project's `show_collab_predictions` is on, and then only those whose `model_version` equals
  the project's `model_version`. That setting starts as "" and is set only by the first import of
  tasks that carry predictions, never by `POST /api/predictions`: predictions posted the plain way
  are silently not shown (what users report as pre-annotations that vanish). `push_predictions`
  sets both project settings to the version it pushes.
* **Anchoring.** A pre-annotation fills in every choice; whatever the annotator leaves alone is
  the model's grade (`origin: "prediction"` in the export). Labels collected that way lean towards
  the model that made the predictions (docs/annotation.md, "Pre-annotations").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smar.annotation.label_studio_api import (
    LabelStudioConfigError,
    as_plain,
    call,
    ensure_users,
    grade_results,
    project_settings,
    result_grades,
    task_annotations,
    task_id_map,
)
from smar.annotation.simulate import simulate_grades


def create_annotation(
    client: Any,
    ls_task_id: int,
    result: Sequence[Mapping[str, Any]],
    *,
    completed_by: int | None = None,
    lead_time_s: float | None = None,
) -> dict[str, Any]:
    """Submit one annotation of a task, as the user `completed_by` (default: the token's user)."""
    extra: dict[str, Any] = {}
    if completed_by is not None:
        extra["completed_by"] = int(completed_by)
    if lead_time_s is not None:
        extra["lead_time"] = float(lead_time_s)
    created = call(
        f"annotate task {ls_task_id}",
        client.annotations.create,
        id=ls_task_id,
        result=[dict(entry) for entry in result],
        **extra,
    )
    annotation: dict[str, Any] = as_plain(created)
    return annotation


def update_annotation(client: Any, annotation_id: int, result: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Replace an annotation's result (an annotator's edit): same id, later `updated_at`."""
    updated = call(
        f"update annotation {annotation_id}",
        client.annotations.update,
        id=annotation_id,
        result=[dict(entry) for entry in result],
    )
    annotation: dict[str, Any] = as_plain(updated)
    return annotation


def _user_id(completed_by: Any) -> int | None:
    if isinstance(completed_by, Mapping):
        completed_by = completed_by.get("id")
    return int(completed_by) if isinstance(completed_by, int) and not isinstance(completed_by, bool) else None


@dataclass(frozen=True)
class ServerSimulation:
    """What `simulate_annotations` sent: annotations created, edited and left as they were."""

    project_id: int
    annotators: dict[str, int]  # email -> Label Studio user id
    tasks: int
    items_graded: int
    labels: int
    created: int
    updated: int
    unchanged: int
    noisy_items: int
    disagreements: int
    annotation_ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (task_id, annotator)


def simulate_annotations(
    client: Any,
    project_id: int,
    tasks: Sequence[Mapping[str, Any]],
    truth: Mapping[tuple[str, str], int],
    *,
    n_annotators: int = 2,
    noise: float = 0.0,
    disagreement: float = 0.0,
    seed: int = 0,
    task_ids: Mapping[str, int] | None = None,
) -> ServerSimulation:
    """The simulated annotation team annotating `tasks` through the server (see the module
    docstring): an annotator's existing annotation is left alone when it holds the same grades and
    edited when they differ. A task that is not on the server raises LabelStudioConfigError."""
    simulated = simulate_grades(
        tasks, truth, n_annotators=n_annotators, noise=noise, disagreement=disagreement, seed=seed
    )
    users = ensure_users(client, list(simulated.annotators))
    task_ids = dict(task_ids) if task_ids is not None else task_id_map(client, project_id)
    by_task_annotator: dict[tuple[str, str], dict[str, int]] = {}
    for (task_id, item_id, annotator), grade in simulated.grades.items():
        by_task_annotator.setdefault((task_id, annotator), {})[item_id] = grade
    created = updated = unchanged = 0
    annotation_ids: dict[tuple[str, str], int] = {}
    for task in tasks:
        task_id = str(task["data"]["task_id"])
        if task_id not in task_ids:
            raise LabelStudioConfigError(f"task {task_id} is not in Label Studio project {project_id}: push it first")
        ls_task_id = task_ids[task_id]
        existing: dict[int, dict[str, Any]] = {}
        for annotation in task_annotations(client, ls_task_id):
            user_id = _user_id(annotation.get("completed_by"))
            if not annotation.get("was_cancelled") and user_id is not None:
                existing[user_id] = annotation  # the newest per user (sorted by id)
        for annotator in simulated.annotators:
            result = grade_results(task, by_task_annotator.get((task_id, annotator), {}))
            previous = existing.get(users[annotator])
            if previous is None:
                annotation = create_annotation(client, ls_task_id, result, completed_by=users[annotator])
                created += 1
            elif result_grades(previous.get("result")) != result_grades(result):
                annotation = update_annotation(client, int(previous["id"]), result)
                updated += 1
            else:
                annotation = previous
                unchanged += 1
            annotation_ids[(task_id, annotator)] = int(annotation["id"])
    return ServerSimulation(
        project_id=project_id,
        annotators=users,
        tasks=len(tasks),
        items_graded=simulated.items_graded,
        labels=len(simulated.grades),
        created=created,
        updated=updated,
        unchanged=unchanged,
        noisy_items=simulated.noisy_items,
        disagreements=simulated.disagreements,
        annotation_ids=annotation_ids,
    )


@dataclass(frozen=True)
class PredictionPush:
    project_id: int
    model_version: str
    created: int
    updated: int
    unchanged: int


def push_predictions(
    client: Any,
    project_id: int,
    tasks: Sequence[Mapping[str, Any]],
    grades: Mapping[str, Mapping[str, int]],
    *,
    model_version: str,
    scores: Mapping[str, float] | None = None,
    task_ids: Mapping[str, int] | None = None,
) -> PredictionPush:
    """Pre-annotations: for each task (from `build_task`) in `grades`, `grades[task_id][item_id]`
    as one prediction tagged `model_version` (an existing one of that version is updated when its
    grades differ), then the project set to show predictions of exactly this version."""
    if not model_version:
        raise ValueError("predictions need a non-empty model_version")
    task_ids = dict(task_ids) if task_ids is not None else task_id_map(client, project_id)
    existing: dict[int, dict[str, Any]] = {}
    for prediction in call("list predictions", client.predictions.list, project=project_id):
        plain = as_plain(prediction)
        if plain.get("model_version") == model_version:
            existing.setdefault(int(plain["task"]), plain)
    created = updated = unchanged = 0
    for task in tasks:
        task_id = str(task["data"]["task_id"])
        if task_id not in grades:
            continue
        if task_id not in task_ids:
            raise LabelStudioConfigError(f"task {task_id} is not in Label Studio project {project_id}: push it first")
        ls_task_id = task_ids[task_id]
        result = grade_results(task, grades[task_id])
        score = None if scores is None or task_id not in scores else float(scores[task_id])
        extra = {} if score is None else {"score": score}
        previous = existing.get(ls_task_id)
        if previous is None:
            call(
                f"predict task {ls_task_id}",
                client.predictions.create,
                task=ls_task_id,
                result=result,
                model_version=model_version,
                **extra,
            )
            created += 1
        elif result_grades(previous.get("result")) != result_grades(result) or (
            score is not None and previous.get("score") != score
        ):
            call(
                f"update prediction {previous['id']}",
                client.predictions.update,
                id=int(previous["id"]),
                result=result,
                model_version=model_version,
                **extra,
            )
            updated += 1
        else:
            unchanged += 1
    project = project_settings(client, project_id)
    if project.get("model_version") != model_version or not project.get("show_collab_predictions"):
        call(
            "update project",
            client.projects.update,
            project_id,
            model_version=model_version,
            show_collab_predictions=True,
        )
    return PredictionPush(project_id, model_version, created, updated, unchanged)
