"""A Label Studio server through its REST API, with the official `label-studio-sdk`: plain
functions over plain Python data (no Spark), for `smar annotation push` / `pull` / `simulate`
(`smar.annotation.label_studio_jobs`). Annotations and predictions: `label_studio_annotations`.

    client = connect()                                   # LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY
    project = ensure_project(client, "smar 2026-11-01 top-b0.2-r0")
    pushed = push_tasks(client, project.id, tasks)        # tasks from label_studio.build_task
    payload = export_annotations(client, project.id)      # bytes: Label Studio JSON export
    rows, rejected = parse_export(payload)                # smar.annotation.label_studio

The SDK is the optional extra `smar[label-studio]` (`make label-studio-sdk`); only `connect`
imports it, so everything else runs against any object with the SDK client's shape (the tests'
in-memory stand-in). What the pinned server (label-studio 1.23.2, SDK 2.0.19) really does:

* **Task identity.** Label Studio numbers tasks itself and has no upsert, so `push_tasks` lists
  the project's tasks and keys them on our `data.task_id`: a task already there is not imported
  again (pushing twice creates nothing), one whose data changed is updated in place while it has
  no annotation, and is reported as a conflict (left alone) once it has one, because the
  annotations' `grade_<index>` results point at positions in `data.items`.
* **Exports.** The quick export (`GET /api/projects/{id}/export`, the UI's Export button) writes
  `completed_by` as a bare user id and `predictions` as ids. The export snapshot
  (`POST /api/projects/{id}/exports`) with the serialization options `annotations__completed_by`
  and `predictions` set to `only_id = false` writes the user object (id, email, names) and whole
  predictions; `export_annotations` uses it, so annotators are named by email, as in the
  simulated exports. Drafts (unsubmitted work) are in `drafts`, never in `annotations`.
* **Choices in a Repeater.** Results land in every export format as `from_name` `grade_<idx>`,
  `to_name` `item_<idx>`, `value.choices = ["<alias>"]`. The server does not validate results
  against the labeling config (a misspelt `from_name` is stored as sent), so the parser refuses
  unknown controls.
* **Edits.** Updating an annotation keeps its id and moves its `updated_at`; the export then holds
  only the new result, and the import's "newest annotation time wins" keeps it.

Errors: the server refusing a request (HTTP 4xx: a wrong token, an unknown project, a config it
will not take), no server configured, or an ambiguous project raise `LabelStudioConfigError`
(refused input, exit 2); a server that cannot be reached, fails (5xx) or answers what it should not
raises `LabelStudioApiError` (`ServiceError`, exit 69: retry once it is back).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smar.annotation.label_studio import _check_grade, labeling_config
from smar.errors import InputRefused, MissingDependency, ServiceError

log = logging.getLogger(__name__)

URL_VARIABLE = "LABEL_STUDIO_URL"
TOKEN_VARIABLE = "LABEL_STUDIO_API_KEY"
PAGE_SIZE = 500
EXPORT_TIMEOUT_S = 300.0
SDK_VERSION = "2.0.19"
INSTALL_COMMAND = "make label-studio-sdk  (or: pip install 'smar[label-studio]' -c constraints.txt)"
#: The export snapshot's options that name annotators by email and keep whole predictions.
SNAPSHOT_OPTIONS: dict[str, Any] = {"annotations__completed_by": {"only_id": False}, "predictions": {"only_id": False}}


class LabelStudioConfigError(InputRefused):
    """No server configured, the server refused the request (wrong token, unknown project, a
    config or task it will not take), a project title held by several projects, or tasks that
    were never pushed: the input is wrong, nothing of ours changed."""


class LabelStudioApiError(ServiceError):
    """The server cannot be reached, failed (HTTP 5xx) or answered something it should not; the
    message names the call, the HTTP status and the body."""


# -- connection -----------------------------------------------------------------------------------
def resolve_server(url: str | None = None, token: str | None = None) -> tuple[str, str]:
    """(url, token): the arguments, else $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY."""
    url = url or os.environ.get(URL_VARIABLE)
    token = token or os.environ.get(TOKEN_VARIABLE)
    missing = [name for name, value in ((URL_VARIABLE, url), (TOKEN_VARIABLE, token)) if not value]
    if missing:
        raise LabelStudioConfigError(
            f"no Label Studio server configured: pass --url/--token or set {' and '.join(missing)}"
        )
    return str(url).rstrip("/"), str(token)


def server_configured() -> bool:
    """Whether $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY are both set (the demo's switch)."""
    return bool(os.environ.get(URL_VARIABLE) and os.environ.get(TOKEN_VARIABLE))


def connect(url: str | None = None, token: str | None = None, *, timeout_s: float = 60.0) -> Any:
    """An SDK client (`label_studio_sdk.LabelStudio`) for `url` with the API token `token` (a
    legacy token or a personal access token); see `resolve_server`. Checks nothing yet."""
    base_url, api_key = resolve_server(url, token)
    try:
        from label_studio_sdk import LabelStudio
    except ImportError as error:
        raise MissingDependency(
            f"the Label Studio client (label-studio-sdk=={SDK_VERSION}) is not installed: run {INSTALL_COMMAND}"
        ) from error
    return LabelStudio(base_url=base_url, api_key=api_key, timeout=timeout_s)


def _api_error_types() -> tuple[type[BaseException], ...]:
    try:
        from label_studio_sdk.core.api_error import ApiError
    except ImportError:  # a stand-in client without the SDK installed (tests)
        return ()
    return (ApiError,)


def call(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` (a pager read to the end), with the SDK's and httpx's errors
    turned into ours: HTTP 4xx -> LabelStudioConfigError, 5xx or no answer -> LabelStudioApiError."""
    import httpx

    try:
        result = function(*args, **kwargs)
        if hasattr(result, "iter_pages") or (hasattr(result, "__next__") and not isinstance(result, Mapping)):
            result = list(result)  # every page fetched here, inside the error handling
        return result
    except _api_error_types() as error:
        status = getattr(error, "status_code", None)
        raw = getattr(error, "body", None)
        body = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        message = f"Label Studio {what}: HTTP {status}: {body[:2000]}"
        if isinstance(status, int) and 400 <= status < 500:
            hint = " (check --token / $LABEL_STUDIO_API_KEY)" if status in (401, 403) else ""
            raise LabelStudioConfigError(message + hint) from error
        raise LabelStudioApiError(message) from error
    except httpx.TransportError as error:
        raise LabelStudioApiError(f"Label Studio {what}: no answer: {type(error).__name__}: {error}") from error


def server_version(client: Any) -> str:
    """The server's version string (e.g. "1.23.2"); also a cheap check that the token works."""
    version = call("version", client.versions.get)
    release = getattr(version, "release", None)
    if release is None and isinstance(version, Mapping):
        release = version.get("release")
    return str(release or version)


def as_plain(value: Any) -> Any:
    """SDK models (pydantic) as plain dicts; anything else unchanged. The SDK 2.0.19 types some
    counters as strings that the 1.23.2 server sends as integers (`queue_total`, ...); its own
    serializer then warns whatever `warnings=` says, so the warnings are silenced here."""
    if hasattr(value, "model_dump"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return value.model_dump(mode="json", by_alias=True, warnings=False)
    return value


# -- projects -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectRef:
    id: int
    title: str
    created: bool
    config_updated: bool
    settings_updated: tuple[str, ...] = ()


def find_projects(client: Any, title: str) -> list[dict[str, Any]]:
    """The projects whose title is exactly `title` (the server's filter also matches substrings)."""
    found = call("list projects", client.projects.list, title=title, page_size=PAGE_SIZE)
    return [as_plain(project) for project in found if getattr(project, "title", None) == title]


def ensure_project(
    client: Any,
    title: str,
    *,
    label_config: str | None = None,
    description: str | None = None,
    maximum_annotations: int | None = None,
) -> ProjectRef:
    """The project called `title`, created when absent, with our labeling config (and the other
    settings given) written when they differ. Two projects with that title raise
    LabelStudioConfigError: which one holds the tasks is not ours to guess.

    `maximum_annotations` is how many annotators must submit a task before Label Studio stops
    handing it out (its "overlap"); None keeps the server's setting (1 on a new project)."""
    config = label_config if label_config is not None else labeling_config()
    wanted: dict[str, Any] = {"label_config": config}
    if description is not None:
        wanted["description"] = description
    if maximum_annotations is not None:
        wanted["maximum_annotations"] = int(maximum_annotations)
    existing = find_projects(client, title)
    if len(existing) > 1:
        raise LabelStudioConfigError(
            f"{len(existing)} Label Studio projects are titled {title!r} "
            f"(ids {', '.join(str(project['id']) for project in existing)}); rename or delete all but one"
        )
    if not existing:
        created = call("create project", client.projects.create, title=title, **wanted)
        log.info("created Label Studio project %s %r", created.id, title)
        return ProjectRef(int(created.id), title, created=True, config_updated=False)
    project = existing[0]

    def differs(key: str, value: Any) -> bool:
        if key == "label_config":
            return str(project.get(key) or "").strip() != str(value).strip()
        return bool(project.get(key) != value)

    changed = {key: value for key, value in wanted.items() if differs(key, value)}
    if changed:
        call("update project", client.projects.update, int(project["id"]), **changed)
        log.info("updated Label Studio project %s: %s", project["id"], ", ".join(sorted(changed)))
    return ProjectRef(
        int(project["id"]),
        title,
        created=False,
        config_updated="label_config" in changed,
        settings_updated=tuple(sorted(key for key in changed if key != "label_config")),
    )


def project_settings(client: Any, project_id: int) -> dict[str, Any]:
    """The project as the server returns it (title, label_config, model_version, ...)."""
    settings: dict[str, Any] = as_plain(call(f"get project {project_id}", client.projects.get, id=project_id))
    return settings


# -- tasks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerTask:
    """One task on the server: its Label Studio id and what it holds."""

    id: int
    task_id: str
    data: dict[str, Any]
    meta: dict[str, Any]
    total_annotations: int


def list_tasks(client: Any, project_id: int) -> list[ServerTask]:
    """Every task of the project that carries our `data.task_id`, in Label Studio id order."""
    tasks = []
    for task in call(f"list tasks of project {project_id}", client.tasks.list, project=project_id, page_size=PAGE_SIZE):
        data = as_plain(task.data) or {}
        if not isinstance(data, Mapping) or data.get("task_id") in (None, ""):
            continue
        tasks.append(
            ServerTask(
                id=int(task.id),
                task_id=str(data["task_id"]),
                data=dict(data),
                meta=dict(as_plain(getattr(task, "meta", None)) or {}),
                total_annotations=int(getattr(task, "total_annotations", 0) or 0),
            )
        )
    return sorted(tasks, key=lambda task: task.id)


def task_id_map(client: Any, project_id: int) -> dict[str, int]:
    """Our task id -> Label Studio task id (the smallest, if a task was imported twice by hand)."""
    mapping: dict[str, int] = {}
    for task in list_tasks(client, project_id):
        mapping.setdefault(task.task_id, task.id)
    return mapping


@dataclass(frozen=True)
class TaskPush:
    """What `push_tasks` did: `task_ids` maps every pushed task id to its Label Studio id."""

    project_id: int
    task_ids: dict[str, int]
    created: tuple[str, ...]
    unchanged: tuple[str, ...]
    updated: tuple[str, ...]
    conflicts: tuple[str, ...] = ()  # data changed but the task is annotated: left as it is
    duplicates: tuple[str, ...] = ()  # our task id held by several server tasks (imported by hand)


def _same(left: Any, right: Any) -> bool:
    return json.dumps(left, sort_keys=True, default=str) == json.dumps(right, sort_keys=True, default=str)


def push_tasks(client: Any, project_id: int, tasks: Sequence[Mapping[str, Any]], *, batch_size: int = 1000) -> TaskPush:
    """Import `tasks` (from `label_studio.build_task`) into the project, idempotently, keyed on
    `data.task_id`: absent tasks are imported, present ones left alone (or updated in place if
    their data changed and nobody annotated them yet). Predictions are pushed separately
    (`label_studio_annotations.push_predictions`)."""
    seen: set[str] = set()
    for task in tasks:
        task_id = str(task["data"]["task_id"])
        if task_id in seen:
            raise ValueError(f"task {task_id} is pushed twice in one call")
        seen.add(task_id)
    present: dict[str, ServerTask] = {}
    duplicates: set[str] = set()
    for listed in list_tasks(client, project_id):
        if listed.task_id in present:
            duplicates.add(listed.task_id)
            continue
        present[listed.task_id] = listed

    to_create: list[dict[str, Any]] = []
    unchanged: list[str] = []
    updated: list[str] = []
    conflicts: list[str] = []
    for task in tasks:
        task_id = str(task["data"]["task_id"])
        payload = {"data": dict(task["data"]), "meta": dict(task.get("meta") or {})}
        server_task = present.get(task_id)
        if server_task is None:
            to_create.append(payload)
        elif _same(server_task.data, payload["data"]) and _same(server_task.meta, payload["meta"]):
            unchanged.append(task_id)
        elif server_task.total_annotations:
            conflicts.append(task_id)
        else:
            call(f"update task {server_task.id}", client.tasks.update, str(server_task.id), **payload)
            updated.append(task_id)
    for start in range(0, len(to_create), batch_size):
        batch = to_create[start : start + batch_size]
        response = call(
            "import tasks", client.projects.import_tasks, id=project_id, request=batch, return_task_ids=True
        )
        if int(getattr(response, "task_count", len(batch)) or 0) != len(batch):
            raise LabelStudioApiError(
                f"Label Studio imported {getattr(response, 'task_count', None)} of {len(batch)} tasks "
                f"into project {project_id}"
            )
    mapping = task_id_map(client, project_id) if to_create else {key: value.id for key, value in present.items()}
    missing = sorted(seen - mapping.keys())
    if missing:
        raise LabelStudioApiError(f"tasks not found on the server after the import: {missing[:5]}")
    if conflicts:
        log.warning(
            "%d annotated task(s) changed since they were pushed and were left as they are: %s",
            len(conflicts),
            conflicts[:5],
        )
    return TaskPush(
        project_id=project_id,
        task_ids={task_id: mapping[task_id] for task_id in sorted(seen)},
        created=tuple(sorted(str(task["data"]["task_id"]) for task in to_create)),
        unchanged=tuple(sorted(unchanged)),
        updated=tuple(sorted(updated)),
        conflicts=tuple(sorted(conflicts)),
        duplicates=tuple(sorted(duplicates & seen)),
    )


# -- results --------------------------------------------------------------------------------------
def grade_results(task: Mapping[str, Any], grades: Mapping[str, int]) -> list[dict[str, Any]]:
    """The `result` list of one annotation or prediction of `task` (from `build_task`): one
    `choices` result per graded item, `grades[item_id]`, in the task's item order. What the
    labeling UI writes for our config (the Choice alias is the bare grade)."""
    positions = {str(item["item_id"]): position for position, item in enumerate(task["data"]["items"])}
    unknown = sorted(set(map(str, grades)) - positions.keys())
    if unknown:
        raise ValueError(f"task {task['data']['task_id']}: items {unknown[:5]} are not shown")
    return [
        {
            "id": f"grade_{position}",
            "from_name": f"grade_{position}",
            "to_name": f"item_{position}",
            "type": "choices",
            "origin": "manual",
            "value": {"choices": [str(_check_grade(grades[item_id]))]},
        }
        for item_id, position in sorted(positions.items(), key=lambda pair: pair[1])
        if item_id in grades
    ]


def result_grades(result: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """from_name -> choice, the part of a result that matters when comparing two of them."""
    return {
        str(entry.get("from_name")): json.dumps((entry.get("value") or {}).get("choices"))
        for entry in result or []
        if isinstance(entry, Mapping)
    }


# -- users ----------------------------------------------------------------------------------------
def user_emails(client: Any) -> dict[int, str]:
    """Label Studio user id -> email, to name annotators in a quick export (ids only)."""
    return {int(user.id): str(user.email) for user in call("list users", client.users.list) if user.email}


def ensure_users(client: Any, emails: Sequence[str]) -> dict[str, int]:
    """email -> user id, creating the users that do not exist yet (no password: they cannot log
    in; they stand for annotators whose work is entered through the API)."""
    known = {email: user_id for user_id, email in user_emails(client).items()}
    for email in emails:
        if email not in known:
            user = call(f"create user {email}", client.users.create, email=email, username=email.split("@")[0])
            known[email] = int(user.id)
    return {email: known[email] for email in emails}


def task_annotations(client: Any, ls_task_id: int) -> list[dict[str, Any]]:
    """The task's submitted annotations (not drafts), as dicts, oldest first."""
    found = call(f"list annotations of task {ls_task_id}", client.annotations.list, id=ls_task_id)
    return sorted((as_plain(annotation) for annotation in found), key=lambda annotation: annotation["id"])


# -- export ---------------------------------------------------------------------------------------
def export_annotations(
    client: Any, project_id: int, *, timeout_s: float = EXPORT_TIMEOUT_S, keep_snapshot: bool = False
) -> bytes:
    """The project's Label Studio JSON export (all tasks, annotated or not), as bytes for
    `label_studio.parse_export`, through an export snapshot whose annotations name their
    annotator (`completed_by` = {id, email, first_name, last_name}) and whose predictions are
    whole objects. The snapshot is deleted from the server afterwards unless `keep_snapshot`."""
    exports = client.projects.exports
    snapshot = call(
        f"create export of project {project_id}",
        exports.create,
        project_id,
        title="smar annotation pull",
        serialization_options=SNAPSHOT_OPTIONS,
    )
    deadline = time.monotonic() + timeout_s
    status = getattr(snapshot, "status", None)
    while status != "completed":
        if status == "failed":
            raise LabelStudioApiError(f"Label Studio export {snapshot.id} of project {project_id} failed")
        if time.monotonic() > deadline:
            raise LabelStudioApiError(
                f"Label Studio export {snapshot.id} of project {project_id} not done after {timeout_s:.0f} s "
                f"(status {status})"
            )
        time.sleep(0.5)
        current = call("get export", exports.get, project_id, export_pk=snapshot.id)
        status = getattr(current, "status", None)
    try:
        chunks = call("download export", lambda: list(exports.download(project_id, snapshot.id, export_type="JSON")))
        payload = b"".join(chunks)
    finally:
        if not keep_snapshot:
            call("delete export", exports.delete, project_id, export_pk=snapshot.id)
    try:
        json.loads(payload)  # a truncated download fails here, not in the parser
    except ValueError as error:
        raise LabelStudioApiError(f"Label Studio export of project {project_id} is not JSON: {error}") from error
    return payload
