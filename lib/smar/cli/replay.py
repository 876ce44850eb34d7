"""The command of step 4, `smar replay`: offline replay of a candidate ranking against a control."""

from __future__ import annotations

from typing import Optional

import typer

from smar.cli.common import (
    EngineOption,
    VerboseOption,
    WarehouseOption,
    configure,
    console,
    days_option,
    open_lakehouse,
    run_id_option,
)
from smar.storage.uris import display

commands = typer.Typer()


@commands.command(name="replay")
def replay(
    candidate: str = typer.Option(..., help="candidate ranking: run:<run_id> (gold.reranker_runs) or production"),
    control: str = typer.Option("production", help="control ranking: production (the logged order) or run:<run_id>"),
    ds_start: str = typer.Option(callback=days_option, default=..., help="first log day replayed, YYYY-MM-DD"),
    ds_end: Optional[str] = typer.Option(
        callback=days_option, default=None, help="last log day replayed (default: ds_start)"
    ),
    run_id: Optional[str] = typer.Option(
        callback=run_id_option, default=None, help="replay run id (default: derived from the inputs)"
    ),
    split: Optional[list[str]] = typer.Option(None, "--split", help="query split(s) replayed (default: test)"),
    min_queries: Optional[int] = typer.Option(None, help="queries needed for a decision (default 30)"),
    max_modality_ndcg_drop: Optional[float] = typer.Option(None, help="per-modality NDCG guardrail (default 0.02)"),
    max_exposure_shift: Optional[float] = typer.Option(None, help="exposure share guardrail (default 0.10)"),
    bootstrap_method: Optional[str] = typer.Option(None, help="percentile (default), BCa or basic"),
    n_resamples: Optional[int] = typer.Option(None, help="bootstrap resamples (default 2000)"),
    propensity_window_days: Optional[int] = typer.Option(
        None, help="days of randomised traffic pooled for the click examination curve, ending at ds_end (default 28)"
    ),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Replay held-out logged pages under control and candidate orders; write metrics, decision, report."""
    from rich.markup import escape
    from rich.table import Table

    from smar.replay.inputs import ranking_name
    from smar.replay.jobs import replay_config, replay_evaluate

    configure(warehouse, engine, verbose)
    # Refuse bad sources and settings before starting an engine.
    ranking_name(candidate)
    ranking_name(control)
    config = replay_config(
        query_splits=tuple(split) if split else None, min_queries=min_queries,
        max_modality_ndcg_drop=max_modality_ndcg_drop, max_exposure_shift=max_exposure_shift,
        bootstrap_method=bootstrap_method, n_resamples=n_resamples, propensity_window_days=propensity_window_days,
    )  # fmt: skip
    with console.status(f"replaying {candidate} vs {control}"), open_lakehouse("smar-replay") as lake:
        summary = replay_evaluate(
            lake.session, lake, control=control, candidate=candidate,
            ds_start=ds_start, ds_end=ds_end or ds_start, run_id=run_id, config=config,
        )  # fmt: skip
    color = {"SHIP": "green", "NO_SHIP": "red"}.get(summary.decision, "yellow")
    table = Table(title=f"replay {summary.run_id}: {summary.candidate} vs {summary.control}")
    table.add_column("")
    table.add_column("")
    table.add_row("decision", f"[{color}]{summary.decision}[/{color}]")
    table.add_row("pages / queries", f"{summary.n_pages} / {summary.n_queries}")
    table.add_row("label sources", ", ".join(summary.label_sources) or "-")
    table.add_row("metric rows", str(summary.metric_rows))
    table.add_row("report", display(summary.report_html))
    console.print(table)
    for reason in summary.reasons:
        console.print(f"- {escape(reason)}")  # reasons name label sources in [brackets]: not markup
