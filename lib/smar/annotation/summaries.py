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
class RoundTripSummary:
    ds: str
    strategy: str
    budget: float
    built: BuildTasksSummary
    exports: tuple[ExportSummary, ...]
    simulations: tuple[SimulateSummary, ...]
    imports: tuple[IngestLabelsSummary, ...]
    iso_rounds: tuple[IsoLabelRoundSummary, ...] = field(default=())
    cost: tuple[AnnotationCostRow, ...] = field(default=())

    @property
    def labels_accepted(self) -> int:
        return sum(result.accepted for result in self.imports)

    @property
    def labels_rejected(self) -> int:
        return sum(result.rejected for result in self.imports)
