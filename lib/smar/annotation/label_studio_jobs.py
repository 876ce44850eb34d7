"""Job bodies of the round trip through a Label Studio server (`smar annotation push`, `simulate`,
`pull`): the same tasks, import path and simulated team as the file round trip
(`smar.annotation.jobs`), with the server's API in place of files handed around.

| job | reads | writes |
|---|---|---|
| push_annotation_tasks | silver.annotation_tasks (a selection of ds) | Label Studio projects and tasks (+ predictions); silver.annotation_tasks: `label_studio_project_id`, `label_studio_task_id`, status open -> exported |
| simulate_server_annotators | silver.annotation_tasks, truth.relevance | annotations on the server |
| pull_annotations | the server's export of each project | `<reports>/annotation/<ds>/<selection>/annotations_label_studio_project_<id>.json`, then `ingest_page_labels`: silver.page_labels (MERGE), bronze.rejects, status -> labelled |

Every write is idempotent: pushing twice creates no task and, like pulling twice, commits no Delta
version (ids and statuses are only rewritten where they differ, the MERGE only where a grade
changed, the rejects only when they changed). The one file this module writes is the pulled
export (`write_export_file`), kept stable across pulls (tasks sorted by our task id, annotations
by id) so that the rejects slice it names stays the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smar.annotation import label_studio_annotations as ls_annotations
from smar.annotation import label_studio_api as api
from smar.annotation.export import label_studio_task, selection, selection_name
from smar.annotation.jobs import TASKS_TABLE, SliceLabeller, day_truth, ingest_page_labels
from smar.annotation.summaries import (
    PulledProject,
    PullSummary,
    PushedProject,
    PushTasksSummary,
    ServerSimulateSummary,
)
from smar.errors import InputRefused, MissingInput
from smar.lake import Lakehouse
from smar.predicates import predicate
from smar.storage import files
from smar.storage.uris import join
from smar.vocabulary import FULL, MAX_GRADE, MIN_GRADE

log = logging.getLogger(__name__)

PROJECT_COLUMN = "label_studio_project_id"
TASK_COLUMN = "label_studio_task_id"
#: Pre-annotations from the single-modal rankers (`--predictions single_modal`).
SINGLE_MODAL_PREDICTIONS = "single_modal"
SliceKey = tuple[str, float, int]


def project_title(ds: str, strategy: str, budget: float, round_number: int) -> str:
    """The default project of one task slice: `smar <ds> <strategy>-b<budget>-r<round>`."""
    return f"smar {ds} {selection_name(strategy, budget, round_number)}"


def pulled_export_path(
    reports: str, ds: str, strategy: str | None, budget: float | None, round_number: int | None, project_id: int
) -> str:
    """Where `pull_annotations` keeps a project's export of one selection (a URI): beside the file
    round trip's exports (`<reports>/annotation/<ds>/<selection>/`), matched by the page_labels
    sensor's `annotations*.json`."""
    folder = join(reports, "annotation", ds, selection_name(strategy, budget, round_number))
    return join(folder, f"annotations_label_studio_project_{project_id}.json")


def write_export_file(uri: str, text: str) -> bool:
    """Publish `text` at `uri` whole through the filesystem layer (a sensor never sees half a
    file), only when it differs. Returns whether the file changed. The only file write of the
    server round trip."""
    if files.is_file(uri) and files.read_text(uri) == text:
        return False
    files.write_text(uri, text)
    return True


def _selected_rows(
    lake: Lakehouse, ds: str, strategy: str | None, budget: float | None, round_number: int | None
) -> list[dict[str, Any]]:
    chosen = selection(ds, strategy, budget, round_number)
    if not lake.exists(TASKS_TABLE):
        raise MissingInput(f"{TASKS_TABLE} does not exist; run build-tasks for ds={ds} first")
    rows = lake.read(TASKS_TABLE).where(predicate(chosen)).orderBy("task_id").collect()
    if not rows:
        raise InputRefused(f"no annotation tasks match {predicate(chosen)}; run build-tasks first")
    return [row.asDict(recursive=True) for row in rows]


def _by_slice(rows: Sequence[Mapping[str, Any]]) -> dict[SliceKey, list[Mapping[str, Any]]]:
    slices: dict[SliceKey, list[Mapping[str, Any]]] = {}
    for row in rows:
        slices.setdefault((str(row["strategy"]), float(row["budget"]), int(row["round"])), []).append(row)
    return dict(sorted(slices.items()))


def _pushed_by_project(rows: Sequence[Mapping[str, Any]], ds: str) -> dict[int, list[Mapping[str, Any]]]:
    projects: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get(PROJECT_COLUMN) is not None and row.get(TASK_COLUMN) is not None:
            projects.setdefault(int(row[PROJECT_COLUMN]), []).append(row)
    if not projects:
        raise InputRefused(
            f"no selected annotation task of ds={ds} was pushed to Label Studio; run smar annotation push first"
        )
    return dict(sorted(projects.items()))


# -- predictions ----------------------------------------------------------------------------------
def single_modal_predictions(
    lake: Lakehouse, ds: str, rows: Sequence[Mapping[str, Any]]
) -> tuple[str, dict[str, dict[str, int]]]:
    """(model_version, grades[task_id][item_id]): each shown item's single-modal percentile
    within its modality's list, spread over the grade scale (best 4, worst 0). A prior from the
    ranking, not a calibrated grade; the model version is the scores'."""
    scores = lake.read("silver.single_modal_scores").where(F.col("ds") == ds)
    pages = lake.session.createDataFrame([(str(row["page_id"]),) for row in rows], "request_id string")
    found = (
        scores.join(pages.dropDuplicates(), on="request_id", how="inner")
        .select("request_id", "item_id", "score_percentile_in_modality", "model_version")
        .collect()
    )
    percentile = {(row["request_id"], row["item_id"]): float(row["score_percentile_in_modality"]) for row in found}
    versions = sorted({str(row["model_version"]) for row in found})
    if not versions:
        raise MissingInput(f"silver.single_modal_scores holds no scores of the tasks' pages for ds={ds}")
    span = MAX_GRADE - MIN_GRADE
    grades: dict[str, dict[str, int]] = {}
    for row in rows:
        for item in row["items"]:
            key = (str(row["page_id"]), str(item["item_id"]))
            if key in percentile:
                grade = MIN_GRADE + int(round(span * percentile[key]))
                grades.setdefault(str(row["task_id"]), {})[str(item["item_id"])] = grade
    return "+".join(versions), grades


# -- push -----------------------------------------------------------------------------------------
def push_annotation_tasks(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    client: Any,
    server: str = "",
    strategy: str | None = None,
    budget: float | None = None,
    round_number: int | None = None,
    project: str | None = None,
    maximum_annotations: int | None = None,
    predictions: str | None = None,
) -> PushTasksSummary:
    """Push the selected tasks of `ds` to Label Studio: one project per task slice, titled
    `project_title(...)` unless `project` names one for all, created or updated with our labeling
    config; tasks imported idempotently (`label_studio_api.push_tasks`); their project and task
    ids recorded in silver.annotation_tasks; open tasks marked exported. `predictions =
    "single_modal"` also sends the single-modal ranks as pre-annotations (model_version = the
    scores' version). The evaluation set (strategy `full`) never gets predictions."""
    if predictions not in (None, SINGLE_MODAL_PREDICTIONS):
        raise InputRefused(f"unknown predictions source {predictions!r}; use {SINGLE_MODAL_PREDICTIONS}")
    rows = _selected_rows(lake, ds, strategy, budget, round_number)
    projects: list[PushedProject] = []
    recorded: list[dict[str, Any]] = []
    for (slice_strategy, slice_budget, slice_round), slice_rows in _by_slice(rows).items():
        title = project or project_title(ds, slice_strategy, slice_budget, slice_round)
        ref = api.ensure_project(client, title, maximum_annotations=maximum_annotations)
        tasks = [label_studio_task(row) for row in slice_rows]
        pushed = api.push_tasks(client, ref.id, tasks)
        recorded += [
            {"task_id": task_id, PROJECT_COLUMN: ref.id, TASK_COLUMN: ls_task_id}
            for task_id, ls_task_id in pushed.task_ids.items()
        ]
        version, created, updated = None, 0, 0
        if predictions == SINGLE_MODAL_PREDICTIONS and slice_strategy != FULL:
            version, grades = single_modal_predictions(lake, ds, slice_rows)
            sent = ls_annotations.push_predictions(
                client, ref.id, tasks, grades, model_version=version, task_ids=pushed.task_ids
            )
            created, updated = sent.created, sent.updated
        projects.append(
            PushedProject(
                project_id=ref.id, title=title, created=ref.created, config_updated=ref.config_updated,
                tasks=len(tasks), tasks_created=len(pushed.created), tasks_unchanged=len(pushed.unchanged),
                tasks_updated=len(pushed.updated), conflicts=pushed.conflicts, predictions_version=version,
                predictions_created=created, predictions_updated=updated,
            )
        )  # fmt: skip
    ids_recorded = lake.update_columns(recorded, TASKS_TABLE, columns=[PROJECT_COLUMN, TASK_COLUMN], where={"ds": ds})
    chosen = selection(ds, strategy, budget, round_number)
    marked = lake.set_values(TASKS_TABLE, {"status": "exported"}, where={**chosen, "status": "open"})
    summary = PushTasksSummary(ds, server, tuple(projects), ids_recorded, marked)
    log.info("pushed %d tasks of ds=%s to %s", summary.tasks, ds, summary.destination)
    return summary


# -- the simulated team, through the server ---------------------------------------------------------
def simulate_server_annotators(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    client: Any,
    server: str = "",
    strategy: str | None = None,
    budget: float | None = None,
    round_number: int | None = None,
    n_annotators: int = 2,
    noise: float = 0.0,
    disagreement: float = 0.0,
    seed: int | None = None,
) -> ServerSimulateSummary:
    """The simulated annotators (`smar.annotation.simulate`'s noise model and seeds) grading the
    pushed tasks of the selection through the server's API, from truth.relevance."""
    rows = _selected_rows(lake, ds, strategy, budget, round_number)
    truth = day_truth(lake, ds)
    seed = lake.settings.seed if seed is None else int(seed)
    results = []
    for project_id, project_rows in _pushed_by_project(rows, ds).items():
        results.append(
            ls_annotations.simulate_annotations(
                client, project_id, [label_studio_task(row) for row in project_rows], truth,
                n_annotators=n_annotators, noise=noise, disagreement=disagreement, seed=seed,
                task_ids={str(row["task_id"]): int(row[TASK_COLUMN]) for row in project_rows},
            )
        )  # fmt: skip
    return ServerSimulateSummary(
        ds=ds, server=server, projects=tuple(result.project_id for result in results),
        tasks=sum(result.tasks for result in results), labels=sum(result.labels for result in results),
        annotations_created=sum(result.created for result in results),
        annotations_updated=sum(result.updated for result in results),
        annotations_unchanged=sum(result.unchanged for result in results),
        annotators=tuple(sorted({name for result in results for name in result.annotators})),
        noisy_items=sum(result.noisy_items for result in results),
        disagreements=sum(result.disagreements for result in results),
    )  # fmt: skip


# -- pull -----------------------------------------------------------------------------------------
def stable_export(payload: bytes, task_ids: set[str]) -> tuple[str, int, int]:
    """(text, tasks, annotations): the export's tasks whose `data.task_id` is in `task_ids`,
    sorted by it, each task's annotations by id, as JSON with sorted keys, so that pulling an
    unchanged project writes the same bytes (and the rejects' row numbers stay put)."""
    kept = []
    for task in json.loads(payload):
        data = task.get("data") if isinstance(task, Mapping) else None
        if isinstance(data, Mapping) and str(data.get("task_id")) in task_ids:
            task = dict(task)
            task["annotations"] = sorted(task.get("annotations") or [], key=lambda item: str(item.get("id")))
            kept.append(task)
    kept.sort(key=lambda task: str(task["data"]["task_id"]))
    text = json.dumps(kept, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return text, len(kept), sum(len(task["annotations"]) for task in kept)


def pull_annotations(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    client: Any,
    server: str = "",
    strategy: str | None = None,
    budget: float | None = None,
    round_number: int | None = None,
    max_reject_fraction: float | None = None,
) -> PullSummary:
    """Export each Label Studio project holding pushed tasks of the selection through the API,
    keep the selection's tasks in one stable file per project (`pulled_export_path`), and import
    it through `ingest_page_labels`: MERGE, rejects with reasons, the newest annotation wins,
    labelled tasks marked. Pulling an unchanged server again commits nothing."""
    rows = _selected_rows(lake, ds, strategy, budget, round_number)
    by_project = _pushed_by_project(rows, ds)
    pulled: list[PulledProject] = []
    for project_id, project_rows in by_project.items():
        payload = api.export_annotations(client, project_id)
        text, n_tasks, n_annotations = stable_export(payload, {str(row["task_id"]) for row in project_rows})
        path = pulled_export_path(lake.settings.reports, ds, strategy, budget, round_number, project_id)
        write_export_file(path, text)
        imported = ingest_page_labels(spark, lake, ds=ds, path=path, max_reject_fraction=max_reject_fraction)
        pulled.append(PulledProject(project_id, path, n_tasks, n_annotations, imported))
    not_pushed = len(rows) - sum(len(project_rows) for project_rows in by_project.values())
    summary = PullSummary(ds, server, tuple(pulled), not_pushed)
    log.info("pulled %d labels of ds=%s from %s", summary.accepted, ds, server or "Label Studio")
    return summary


# -- the round trip through a server --------------------------------------------------------------
def server_labeller(
    client: Any, *, server: str = "", project: str | None = None, predictions: str | None = None
) -> SliceLabeller:
    """A `jobs.SliceLabeller` for `run_annotation_round_trip`: push the slice, have the simulated
    team annotate it through the server (each task handed to that many annotators), pull it."""

    def label(
        spark: SparkSession, lake: Lakehouse, *, ds: str, strategy: str, budget: float, round_number: int,
        out_root: str | Path | None, n_annotators: int, noise: float, disagreement: float, seed: int,
    ) -> tuple[PushTasksSummary, ServerSimulateSummary, tuple[Any, ...]]:  # fmt: skip
        pushed = push_annotation_tasks(
            spark, lake, ds=ds, client=client, server=server, strategy=strategy, budget=budget,
            round_number=round_number, project=project, maximum_annotations=n_annotators, predictions=predictions,
        )  # fmt: skip
        simulated = simulate_server_annotators(
            spark, lake, ds=ds, client=client, server=server, strategy=strategy, budget=budget,
            round_number=round_number, n_annotators=n_annotators, noise=noise, disagreement=disagreement, seed=seed,
        )  # fmt: skip
        pulled = pull_annotations(
            spark,
            lake,
            ds=ds,
            client=client,
            server=server,
            strategy=strategy,
            budget=budget,
            round_number=round_number,
        )
        return pushed, simulated, tuple(pulled_project.imported for pulled_project in pulled.projects)

    return label
