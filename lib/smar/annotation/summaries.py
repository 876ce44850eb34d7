"""What each annotation job did: the small summaries the CLI prints and the DAGs and tests read."""

from __future__ import annotations

from dataclasses import dataclass, field

from smar.annotation.cost import AnnotationCostRow


@dataclass(frozen=True)
class TaskSliceSummary:
    """One written slice of silver.annotation_tasks."""

    strategy: str
    budget: float
    round: int
    tasks: int
    items_shown: int
    candidates: int


@dataclass(frozen=True)
class BuildTasksSummary:
    ds: str
    slices: tuple[TaskSliceSummary, ...]


@dataclass(frozen=True)
class IsoLabelRoundSummary:
    ds: str
    round: int
    tasks_written: int
    items_to_judge: int
    pages: int
    pages_done: int
    anchors_written: int
    inconsistencies: int

    @property
    def done(self) -> bool:
        """True when no page needs another round (every boundary found or every cap spent)."""
        return self.tasks_written == 0


@dataclass(frozen=True)
class ExportSummary:
    ds: str
    folder: str  # URIs: the export lives wherever the reports do
    tasks_json: str
    tasks_csv: str
    labeling_config: str
    tasks: int
    items: int

    @property
    def destination(self) -> str:
        return str(self.folder)


@dataclass(frozen=True)
class SimulateSummary:
    ds: str
    export_file: str  # URI
    tasks: int
    items_graded: int
    labels: int
    annotators: tuple[str, ...]
    noisy_items: int
    disagreements: int


@dataclass(frozen=True)
class IngestLabelsSummary:
    ds: str
    source: str
    accepted: int
    inserted: int
    updated: int
    unchanged: int
    stale: int  # older than the grade already stored: kept only in the export
    superseded_in_file: int
    rejected: int
    reject_reasons: dict[str, int]
    tasks_marked_labelled: int


@dataclass(frozen=True)
class PushedProject:
    """One Label Studio project `smar annotation push` wrote to, and what went into it."""

    project_id: int
    title: str
    created: bool
    config_updated: bool
    tasks: int
    tasks_created: int
    tasks_unchanged: int
    tasks_updated: int
    conflicts: tuple[str, ...]  # annotated on the server but rebuilt here since: left as they are
    predictions_version: str | None = None
    predictions_created: int = 0
    predictions_updated: int = 0


@dataclass(frozen=True)
class PushTasksSummary:
    ds: str
    server: str
    projects: tuple[PushedProject, ...]
    ids_recorded: int  # rows of silver.annotation_tasks whose Label Studio ids changed
    tasks_marked_exported: int

    @property
    def tasks(self) -> int:
        return sum(project.tasks for project in self.projects)

    @property
    def destination(self) -> str:
        ids = ", ".join(str(project.project_id) for project in self.projects)
        return f"Label Studio {self.server} project {ids}"


@dataclass(frozen=True)
class ServerSimulateSummary:
    """What the simulated team did through the server, per project."""

    ds: str
    server: str
    projects: tuple[int, ...]
    tasks: int
    labels: int
    annotations_created: int
    annotations_updated: int
    annotations_unchanged: int
    annotators: tuple[str, ...]
    noisy_items: int
    disagreements: int


@dataclass(frozen=True)
class PulledProject:
    project_id: int
    export_file: str  # a URI
    tasks: int  # tasks of the selection found in the project's export
    annotations: int
    imported: IngestLabelsSummary


@dataclass(frozen=True)
class PullSummary:
    ds: str
    server: str
    projects: tuple[PulledProject, ...]
    not_pushed: int  # tasks of the selection that were never pushed (nothing to pull)

    @property
    def accepted(self) -> int:
        return sum(project.imported.accepted for project in self.projects)

    @property
    def rejected(self) -> int:
        return sum(project.imported.rejected for project in self.projects)


@dataclass(frozen=True)
class RoundTripSummary:
    ds: str
    strategy: str
    budget: float
    built: BuildTasksSummary
    exports: tuple[ExportSummary | PushTasksSummary, ...]
    simulations: tuple[SimulateSummary | ServerSimulateSummary, ...]
    imports: tuple[IngestLabelsSummary, ...]
    iso_rounds: tuple[IsoLabelRoundSummary, ...] = field(default=())
    cost: tuple[AnnotationCostRow, ...] = field(default=())

    @property
    def labels_accepted(self) -> int:
        return sum(result.accepted for result in self.imports)

    @property
    def labels_rejected(self) -> int:
        return sum(result.rejected for result in self.imports)
