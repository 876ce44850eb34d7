"""The commands of step 2 (annotation):

smar build-tasks --ds 2026-11-01 --strategy top --budget 0.2
smar export-tasks --ds 2026-11-01 --strategy top --budget 0.2 --round 0
smar simulate-annotators --ds 2026-11-01 --tasks-file reports/annotation/.../tasks.json
smar import-labels --ds 2026-11-01 --path export.json
smar iso-label-round --ds 2026-11-01 --round 1
smar annotation-cost --ds 2026-11-01
smar annotation-round-trip --ds 2026-11-01 --strategy iso_label   (all of the above, simulated)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from smar.cli.common import (
    EngineOption,
    SeedOption,
    VerboseOption,
    WarehouseOption,
    configure,
    console,
    days_option,
    open_lakehouse,
    split_values,
)
from smar.storage.uris import display
from smar.vocabulary import ANNOTATED_SPLITS, EVALUATION_SPLITS, FULL

SplitsOption = typer.Option(
    list(ANNOTATED_SPLITS), "--split", "--splits", help="query splits to annotate (repeat, or comma-separated)"
)
EvalSplitsOption = typer.Option(
    list(EVALUATION_SPLITS),
    "--eval-split",
    "--eval-splits",
    help="splits fully labelled for evaluation (repeat, or comma-separated)",
)
NO_EVAL_OPTION = typer.Option(False, "--no-eval", help="build no evaluation tasks")
if TYPE_CHECKING:
    from smar.annotation.cost import AnnotationCostRow

commands = typer.Typer()


def print_cost(rows: Sequence[AnnotationCostRow]) -> None:
    """The cost table, as people read it."""
    table = Table(title="annotation cost (against annotating every candidate of the same pages)")
    for column in ("strategy", "budget", "queries", "rounds", "items labelled", "judgements/query",
                   "full/query", "fraction of full", "labels (all annotators)"):  # fmt: skip
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in rows:
        table.add_row(
            row.strategy, f"{row.budget:g}", str(row.n_queries), str(row.n_rounds), str(row.items_labelled),
            f"{row.judgements_per_query:.2f}", f"{row.full_judgements_per_query:.2f}",
            f"{row.fraction_of_full:.1%}", str(row.labels_received),
        )  # fmt: skip
    console.print(table)


@commands.command(name="build-tasks")
def build_tasks(
    ds: str = typer.Option(callback=days_option, default=..., help="the scored day, YYYY-MM-DD"),
    strategy: str = typer.Option("top", help="top | slice | random | stratified | iso_label | full"),
    budget: float = typer.Option(0.2, help="fraction of each modality's candidates to label"),
    seed: Optional[int] = SeedOption,
    split: list[str] = SplitsOption,
    eval_split: list[str] = EvalSplitsOption,
    eval_strategy: str = typer.Option(FULL, help="strategy of the evaluation set"),
    no_eval: bool = NO_EVAL_OPTION,
    band_index: int = typer.Option(1, help="slice: which band (1 = the second, as the paper)"),
    max_judgements_per_query: Optional[int] = typer.Option(None, help="iso_label: judgement cap"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Write silver.annotation_tasks: budgeted candidate pages (+ the fully labelled eval set)."""
    from smar.annotation.jobs import build_annotation_tasks

    configure(warehouse, engine, verbose)
    with console.status(f"building {strategy} tasks for ds={ds}"), open_lakehouse("smar-build-tasks") as lake:
        summary = build_annotation_tasks(
            lake.session, lake, ds=ds, strategy=strategy, budget=budget,
            seed=seed, splits=split_values(split), eval_splits=() if no_eval else split_values(eval_split),
            eval_strategy=eval_strategy, band_index=band_index,
            max_judgements_per_query=max_judgements_per_query,
        )  # fmt: skip
    table = Table(title=f"silver.annotation_tasks ds={ds}")
    for column in ("strategy", "budget", "round", "tasks", "items shown", "candidates"):
        table.add_column(column)
    for written in summary.slices:
        table.add_row(written.strategy, f"{written.budget:g}", str(written.round), str(written.tasks),
                      str(written.items_shown), str(written.candidates))  # fmt: skip
    console.print(table)


@commands.command(name="export-tasks")
def export_tasks(
    ds: str = typer.Option(callback=days_option, default=..., help="the day of the tasks"),
    strategy: Optional[str] = typer.Option(None, help="only this strategy"),
    budget: Optional[float] = typer.Option(None, help="only this budget"),
    round_number: Optional[int] = typer.Option(None, "--round", help="only this round"),
    out: Optional[str] = typer.Option(None, help="folder, a path or a URI (default: <reports>/annotation/<ds>/...)"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Write Label Studio tasks JSON, the labeling config XML and a plain CSV."""
    from smar.annotation.jobs import export_annotation_tasks

    configure(warehouse, engine, verbose)
    with open_lakehouse("smar-export-tasks") as lake:
        summary = export_annotation_tasks(
            lake.session, lake, ds=ds, strategy=strategy, budget=budget,
            round_number=round_number, out_dir=out,
        )  # fmt: skip
    console.print(f"exported {summary.tasks} tasks ({summary.items} items) to {display(summary.folder)}")
    for path in (summary.tasks_json, summary.labeling_config, summary.tasks_csv):
        console.print(f"  {display(path)}")


@commands.command(name="simulate-annotators")
def simulate(
    ds: str = typer.Option(callback=days_option, default=..., help="the day (its truth.relevance grades the items)"),
    tasks_file: str = typer.Option(..., help="tasks.json written by export-tasks (a path or a URI)"),
    out: Optional[str] = typer.Option(None, help="export file (default: next to tasks.json)"),
    annotators: int = typer.Option(2, help="simulated annotators per task"),
    noise: float = typer.Option(0.1, help="P(perceived grade is one step off the truth), per item"),
    disagreement: float = typer.Option(0.1, help="P(another annotator moves it one step), per item"),
    seed: Optional[int] = SeedOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Grade exported tasks from the hidden truth; writes a real Label Studio JSON export."""
    from smar.annotation.jobs import simulate_annotators

    configure(warehouse, engine, verbose)
    with open_lakehouse("smar-simulate-annotators") as lake:
        summary = simulate_annotators(
            lake.session, lake, ds=ds, tasks_file=tasks_file, out_path=out,
            n_annotators=annotators, noise=noise, disagreement=disagreement, seed=seed,
        )  # fmt: skip
    console.print(
        f"{summary.labels} grades by {len(summary.annotators)} annotators on {summary.tasks} tasks "
        f"({summary.noisy_items} noisy items, {summary.disagreements} disagreements) -> {display(summary.export_file)}"
    )


@commands.command(name="import-labels")
def import_labels(
    ds: str = typer.Option(callback=days_option, default=..., help="the day of the tasks the labels answer"),
    path: str = typer.Option(
        ..., help="Label Studio JSON export, or CSV task_id,item_id,grade,annotator (a path or a URI)"
    ),
    file_format: Optional[str] = typer.Option(None, "--format", help="json | csv (default: from the suffix)"),
    max_reject_fraction: Optional[float] = typer.Option(
        None,
        help="refuse the file (write only its rejects) above this fraction of refused rows [default: $SMAR_MAX_REJECT_FRACTION or 0.05]",
    ),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """MERGE page-level grades into silver.page_labels; refused rows go to bronze.rejects."""
    from smar.annotation.jobs import ingest_page_labels

    configure(warehouse, engine, verbose)
    with open_lakehouse("smar-import-labels") as lake:
        summary = ingest_page_labels(
            lake.session, lake, ds=ds, path=path, file_format=file_format, max_reject_fraction=max_reject_fraction
        )
    console.print(
        f"accepted {summary.accepted} (new {summary.inserted}, changed {summary.updated}, "
        f"unchanged {summary.unchanged}, older than the stored grade {summary.stale}, "
        f"superseded in the file {summary.superseded_in_file}), rejected {summary.rejected}"
        + (f": {summary.reject_reasons}" if summary.reject_reasons else "")
    )


@commands.command(name="iso-label-round")
def iso_label_round(
    ds: str = typer.Option(callback=days_option, default=..., help="the scored day"),
    round_number: int = typer.Option(..., "--round", help="0 starts; r uses the labels of rounds < r"),
    max_judgements_per_query: Optional[int] = typer.Option(None, help="judgement cap per query"),
    seed: Optional[int] = SeedOption,
    split: list[str] = SplitsOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Write round r's iso-label tasks and the anchors found so far; exit 3 when all are done."""
    from smar.annotation.jobs import run_iso_label_round

    configure(warehouse, engine, verbose)
    with open_lakehouse("smar-iso-label-round") as lake:
        summary = run_iso_label_round(
            lake.session, lake, ds=ds, round_number=round_number, seed=seed,
            splits=split_values(split), max_judgements_per_query=max_judgements_per_query,
        )  # fmt: skip
    console.print(
        f"round {summary.round}: {summary.tasks_written} tasks ({summary.items_to_judge} items), "
        f"{summary.pages_done}/{summary.pages} pages done, {summary.anchors_written} anchor rows, "
        f"{summary.inconsistencies} inconsistent judgements"
    )
    if summary.done:
        console.print("every page is done: no further round needed")
        # A distinct exit code lets a scheduler loop "until done" without parsing text.
        raise typer.Exit(code=3)


@commands.command(name="annotation-cost")
def cost(
    ds: str = typer.Option(callback=days_option, default=..., help="the day"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Write and print gold.annotation_cost: labels per strategy and budget vs full annotation."""
    from smar.annotation.jobs import annotation_cost

    configure(warehouse, engine, verbose)
    with open_lakehouse("smar-annotation-cost") as lake:
        rows = annotation_cost(lake.session, lake, ds=ds)
    print_cost(rows)


@commands.command(name="annotation-round-trip")
def round_trip(
    ds: str = typer.Option(callback=days_option, default=..., help="the scored day"),
    strategy: str = typer.Option("top", help="top | slice | random | stratified | iso_label"),
    budget: float = typer.Option(0.2, help="fraction of each modality's candidates to label"),
    annotators: int = typer.Option(2),
    noise: float = typer.Option(0.1),
    disagreement: float = typer.Option(0.1),
    max_judgements_per_query: Optional[int] = typer.Option(None, help="iso_label: judgement cap"),
    seed: Optional[int] = SeedOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """build-tasks -> export-tasks -> simulate-annotators -> import-labels (iso_label: every
    round), then annotation-cost."""
    from smar.annotation.jobs import run_annotation_round_trip

    configure(warehouse, engine, verbose)
    with console.status(f"annotation round trip ({strategy}) for ds={ds}"), open_lakehouse("smar-annotation") as lake:
        summary = run_annotation_round_trip(
            lake.session, lake, ds=ds, strategy=strategy, budget=budget, seed=seed,
            n_annotators=annotators, noise=noise, disagreement=disagreement,
            max_judgements_per_query=max_judgements_per_query,
        )  # fmt: skip
    for exported in summary.exports:
        console.print(f"exported {exported.tasks} tasks to {exported.folder}")
    console.print(f"imported {summary.labels_accepted} labels, rejected {summary.labels_rejected}")
    print_cost(list(summary.cost))
