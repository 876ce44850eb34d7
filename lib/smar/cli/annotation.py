"""The commands of step 2 (annotation):

smar build-tasks --ds 2026-11-01 --strategy top --budget 0.2
smar export-tasks --ds 2026-11-01 --strategy top --budget 0.2 --round 0
smar simulate-annotators --ds 2026-11-01 --tasks-file reports/annotation/.../tasks.json
smar import-labels --ds 2026-11-01 --path export.json
smar iso-label-round --ds 2026-11-01 --round 1
smar annotation-cost --ds 2026-11-01
smar annotation-round-trip --ds 2026-11-01 --strategy iso_label   (all of the above, simulated)

Through a Label Studio server (`server_commands`, mounted as the group `smar annotation`;
--url/--token default to $LABEL_STUDIO_URL/$LABEL_STUDIO_API_KEY; needs `make label-studio-sdk`):

smar annotation push --ds 2026-11-01 [--strategy top --budget 0.2 --round 0] [--predictions single_modal]
smar annotation simulate --ds 2026-11-01     (the simulated annotators, through the API)
smar annotation pull --ds 2026-11-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

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
    from smar.annotation.jobs import SliceLabeller

commands = typer.Typer()
server_commands = typer.Typer(
    no_args_is_help=True, help="Tasks to a Label Studio server and annotations back, through its API."
)
commands.add_typer(server_commands, name="annotation")

UrlOption = typer.Option(None, "--url", help="Label Studio server (default: $LABEL_STUDIO_URL)")
TokenOption = typer.Option(
    None, "--token", help="API token, legacy or personal access token (default: $LABEL_STUDIO_API_KEY)"
)
SelectStrategyOption = typer.Option(None, "--strategy", help="only this strategy (default: all of the day)")
SelectBudgetOption = typer.Option(None, "--budget", help="only this budget")
SelectRoundOption = typer.Option(None, "--round", help="only this round")
# The simulated annotators' noise model, the same for files, the round trip and a server.
NoiseOption = typer.Option(0.1, help="P(perceived grade is one step off the truth), per item")
DisagreementOption = typer.Option(0.1, help="P(another annotator moves it one step), per item")


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
    max_tasks: Optional[int] = typer.Option(
        None, help="export at most this many tasks (the first by task_id); only they are marked exported"
    ),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Write Label Studio tasks JSON, the labeling config XML and a plain CSV (streamed)."""
    from smar.annotation.jobs import export_annotation_tasks

    configure(warehouse, engine, verbose)
    with open_lakehouse("smar-export-tasks") as lake:
        summary = export_annotation_tasks(
            lake.session, lake, ds=ds, strategy=strategy, budget=budget,
            round_number=round_number, out_dir=out, max_tasks=max_tasks,
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
    noise: float = NoiseOption,
    disagreement: float = DisagreementOption,
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
        help="refuse the file (write only its rejects) above this fraction of refused rows (default: $SMAR_MAX_REJECT_FRACTION or 0.05)",
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
    noise: float = NoiseOption,
    disagreement: float = DisagreementOption,
    max_judgements_per_query: Optional[int] = typer.Option(None, help="iso_label: judgement cap"),
    seed: Optional[int] = SeedOption,
    label_studio: Optional[bool] = typer.Option(
        None,
        "--label-studio/--files",
        help="through a Label Studio server (default: when $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY are set)",
    ),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """build-tasks -> export-tasks -> simulate-annotators -> import-labels (iso_label: every
    round), then annotation-cost. With --label-studio (or $LABEL_STUDIO_URL and
    $LABEL_STUDIO_API_KEY set), through that server: annotation push -> simulate -> pull."""
    from smar.annotation.jobs import run_annotation_round_trip

    configure(warehouse, engine, verbose)
    labeller, through = server_labeller_or_files(label_studio, url, token)
    with (
        console.status(f"annotation round trip ({strategy}) for ds={ds} through {through}"),
        open_lakehouse("smar-annotation") as lake,
    ):
        summary = run_annotation_round_trip(
            lake.session, lake, ds=ds, strategy=strategy, budget=budget, seed=seed,
            n_annotators=annotators, noise=noise, disagreement=disagreement,
            max_judgements_per_query=max_judgements_per_query, labeller=labeller,
        )  # fmt: skip
    for exported in summary.exports:
        console.print(f"exported {exported.tasks} tasks to {exported.destination}")
    console.print(f"imported {summary.labels_accepted} labels, rejected {summary.labels_rejected}")
    print_cost(list(summary.cost))


# -- through a Label Studio server ------------------------------------------------------------------
def server_labeller_or_files(
    label_studio: Optional[bool], url: Optional[str], token: Optional[str]
) -> tuple[Optional[SliceLabeller], str]:
    """(labeller, what it goes through): a server's when asked (`--label-studio`), or by default
    when $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY are set (or --url given); files otherwise."""
    from smar.annotation import label_studio_api as api
    from smar.annotation.label_studio_jobs import server_labeller

    if label_studio is False or (label_studio is None and not (url or api.server_configured())):
        return None, "files"
    client, server = _connect(url, token)
    return server_labeller(client, server=server), f"Label Studio at {server}"


def _connect(url: Optional[str], token: Optional[str]) -> tuple[Any, str]:
    """An SDK client and the server's URL; a wrong URL or token fails here, before any write."""
    from smar.annotation import label_studio_api as api

    base_url, api_key = api.resolve_server(url, token)
    client = api.connect(base_url, api_key)
    api.server_version(client)
    return client, base_url


@server_commands.command(name="push")
def push(
    ds: str = typer.Option(callback=days_option, default=..., help="the day of the tasks"),
    strategy: Optional[str] = SelectStrategyOption,
    budget: Optional[float] = SelectBudgetOption,
    round_number: Optional[int] = SelectRoundOption,
    project: Optional[str] = typer.Option(
        None, help="one project for every slice (default: one per slice, 'smar <ds> <strategy>-b<budget>-r<round>')"
    ),
    overlap: Optional[int] = typer.Option(None, help="annotators per task (the project's maximum annotations)"),
    predictions: Optional[str] = typer.Option(
        None, help="pre-annotations: single_modal (never on the evaluation set; see docs/annotation.md)"
    ),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Send the day's tasks to Label Studio; pushing twice creates nothing.

    Creates or updates the project(s) with our labeling config, imports the tasks keyed on our
    task id, records the project and task ids in silver.annotation_tasks."""
    from smar.annotation.label_studio_jobs import push_annotation_tasks

    configure(warehouse, engine, verbose)
    client, server = _connect(url, token)
    with open_lakehouse("smar-annotation-push") as lake:
        summary = push_annotation_tasks(
            lake.session, lake, ds=ds, client=client, server=server, strategy=strategy, budget=budget,
            round_number=round_number, project=project, maximum_annotations=overlap, predictions=predictions,
        )  # fmt: skip
    for pushed in summary.projects:
        state = "created" if pushed.created else "config updated" if pushed.config_updated else "up to date"
        console.print(
            f"project {pushed.project_id} {pushed.title!r} ({state}): {pushed.tasks} tasks, "
            f"{pushed.tasks_created} new, {pushed.tasks_updated} updated, {pushed.tasks_unchanged} unchanged"
            + (f", {pushed.predictions_created + pushed.predictions_updated} predictions "
               f"{pushed.predictions_version}" if pushed.predictions_version else "")
        )  # fmt: skip
        if pushed.conflicts:
            console.print(
                f"  [yellow]{len(pushed.conflicts)} task(s) rebuilt since they were annotated were left as "
                f"they are on the server[/yellow], e.g. {pushed.conflicts[0]}"
            )
    console.print(f"{summary.ids_recorded} task ids recorded, {summary.tasks_marked_exported} tasks marked exported")


@server_commands.command(name="simulate")
def simulate_through_server(
    ds: str = typer.Option(callback=days_option, default=..., help="the day (its truth.relevance grades the items)"),
    strategy: Optional[str] = SelectStrategyOption,
    budget: Optional[float] = SelectBudgetOption,
    round_number: Optional[int] = SelectRoundOption,
    annotators: int = typer.Option(2, help="simulated annotators per task (one Label Studio user each)"),
    noise: float = NoiseOption,
    disagreement: float = DisagreementOption,
    seed: Optional[int] = SeedOption,
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """The simulated annotators grade the pushed tasks through the server's API (synthetic data)."""
    from smar.annotation.label_studio_jobs import simulate_server_annotators

    configure(warehouse, engine, verbose)
    client, server = _connect(url, token)
    with open_lakehouse("smar-annotation-simulate") as lake:
        summary = simulate_server_annotators(
            lake.session, lake, ds=ds, client=client, server=server, strategy=strategy, budget=budget,
            round_number=round_number, n_annotators=annotators, noise=noise, disagreement=disagreement, seed=seed,
        )  # fmt: skip
    console.print(
        f"{summary.labels} grades by {len(summary.annotators)} annotators on {summary.tasks} tasks in project(s) "
        f"{', '.join(map(str, summary.projects))}: {summary.annotations_created} annotations created, "
        f"{summary.annotations_updated} edited, {summary.annotations_unchanged} unchanged"
    )


@server_commands.command(name="pull")
def pull(
    ds: str = typer.Option(callback=days_option, default=..., help="the day of the tasks"),
    strategy: Optional[str] = SelectStrategyOption,
    budget: Optional[float] = SelectBudgetOption,
    round_number: Optional[int] = SelectRoundOption,
    max_reject_fraction: Optional[float] = typer.Option(
        None,
        help="refuse a project's export above this fraction of refused rows (default: $SMAR_MAX_REJECT_FRACTION or 0.05)",
    ),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Bring the pushed tasks' annotations into silver.page_labels; pulling twice changes nothing.

    Exports each project through the API into one file per project and imports it like
    import-labels: MERGE, rejects with reasons, the newest annotation wins."""
    from smar.annotation.label_studio_jobs import pull_annotations

    configure(warehouse, engine, verbose)
    client, server = _connect(url, token)
    with open_lakehouse("smar-annotation-pull") as lake:
        summary = pull_annotations(
            lake.session, lake, ds=ds, client=client, server=server, strategy=strategy, budget=budget,
            round_number=round_number, max_reject_fraction=max_reject_fraction,
        )  # fmt: skip
    for pulled in summary.projects:
        imported = pulled.imported
        console.print(
            f"project {pulled.project_id}: {pulled.annotations} annotations on {pulled.tasks} tasks -> "
            f"{pulled.export_file}\n  accepted {imported.accepted} (new {imported.inserted}, changed "
            f"{imported.updated}, unchanged {imported.unchanged}, older than the stored grade {imported.stale}), "
            f"rejected {imported.rejected}" + (f": {imported.reject_reasons}" if imported.reject_reasons else "")
        )
    if summary.not_pushed:
        console.print(f"[yellow]{summary.not_pushed} selected task(s) were never pushed[/yellow]")
