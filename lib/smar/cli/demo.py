"""`smar demo`: the whole pipeline end to end on the embedded engine, printing what it wrote."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from smar.cli.annotation import print_cost, server_labeller_or_files
from smar.cli.common import (
    EngineOption,
    VerboseOption,
    WarehouseOption,
    configure,
    console,
    days_option,
    open_lakehouse,
)
from smar.cli.ingest import print_ingest
from smar.cli.lakehouse import print_tables
from smar.cli.single_modal import print_ranker_evaluations
from smar.config import get_settings
from smar.storage.uris import display, join
from smar.vocabulary import (
    CLICKS_PBM_IPS,
    CLICKS_PBM_SN,
    DEFAULT_RERANKER_METHOD,
    ORACLE_CLICKS,
    days_ending,
)

if TYPE_CHECKING:
    import pandas as pd

commands = typer.Typer()

#: The demo trains the single-modal rankers on this many days ending on `--ds`.
TRAINING_DAYS = 3
#: ...and scores and replays the same days: one day of demo traffic is too little to detect a true
#: +0.3 clicks@5 per page, three are enough (docs/replay.md, "Power").
REPLAY_DAYS = 3


def print_click_estimates(metrics: pd.DataFrame, k: int = 5) -> None:
    """One line per click estimate of clicks@k: delta, interval, MDE, reliable (the truth first)."""
    rows = metrics[(metrics["metric"] == "clicks") & (metrics["k"] == k)]
    order = {ORACLE_CLICKS: 0, CLICKS_PBM_IPS: 1, CLICKS_PBM_SN: 2}
    for _, row in rows.sort_values("label_source", key=lambda sources: sources.map(order).fillna(9)).iterrows():
        state = "the truth" if row["label_source"] == ORACLE_CLICKS else (
            "reliable" if row["reliable"] else "unreliable: a sanity gate failed")  # fmt: skip
        console.print(
            f"  clicks@{k} \\[{row['label_source']}]: delta {row['delta']:+.3f}, "
            f"95% CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], MDE {row['mde']:.3f} ({state})"
        )


@commands.command()
def demo(
    ds: str = typer.Option(callback=days_option, default="2026-11-01", help="the demo day"),
    size: str = typer.Option("demo", help="tiny | demo | large"),
    strategy: str = typer.Option("top", help="annotation strategy: top | slice | random | stratified"),
    budget: float = typer.Option(0.2, help="fraction of each modality's candidates given a page label"),
    label_studio: Optional[bool] = typer.Option(
        None,
        "--label-studio/--files",
        help="annotate through a Label Studio server (default: when $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY are set)",
    ),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Run the pipeline end to end on the embedded engine and print what it wrote; step 2 goes
    through a Label Studio server when one is configured, through files otherwise."""
    import torch

    from smar.annotation.jobs import run_annotation_round_trip
    from smar.ingest.jobs import run_ingest
    from smar.replay.jobs import read_replay_metrics, replay_evaluate
    from smar.reranker.jobs import train_page_reranker
    from smar.single_modal.jobs import score_single_modal, train_single_modal

    configure(warehouse, engine or "embedded", verbose)
    settings = get_settings()
    console.rule(f"SMAR demo: size={size}, ds={ds}, warehouse={display(settings.warehouse)}")
    # Small torch models train many times faster single-threaded on a busy 2-core machine.
    torch.set_num_threads(1)

    labeller, through = server_labeller_or_files(label_studio, None, None)
    training_days = days_ending(ds, TRAINING_DAYS)
    with open_lakehouse("smar-demo") as lake:
        spark = lake.session
        for training_day in training_days:
            with console.status(
                f"step 0: generate synthetic search logs of {training_day} and ingest them into bronze"
            ):
                results = run_ingest(spark, lake, ds=training_day, source="generator", size=size)  # type: ignore[arg-type]
            print_ingest(results, training_day)
        with console.status(f"step 1: train the single-modal rankers from clicks of {', '.join(training_days)}"):
            summary = train_single_modal(lake, ds_list=training_days, seed=settings.seed)
        print_ranker_evaluations(summary)
        replay_days = days_ending(ds, REPLAY_DAYS)
        for replay_day in replay_days:
            with console.status(f"step 1: score every impression of {replay_day} through pandas UDFs"):
                scoring = score_single_modal(spark, lake, ds=replay_day)
            console.print(
                f"scored {scoring.scored} impressions of {replay_day} ({scoring.unique_query_texts} query texts and "
                f"{scoring.unique_item_texts} item texts encoded once each); rejected {scoring.rejected}"
            )

        with console.status(f"step 2: budgeted annotation round trip ({strategy}, budget {budget:g}) for {ds}"):
            round_trip = run_annotation_round_trip(
                spark, lake, ds=ds, strategy=strategy, budget=budget, seed=settings.seed, noise=0.1,
                disagreement=0.1, labeller=labeller,
            )  # fmt: skip
        source = "simulated Label Studio exports" if labeller is None else f"simulated annotators through {through}"
        console.print(f"annotation: {round_trip.labels_accepted} page labels imported from {source}")
        print_cost(list(round_trip.cost))

        with console.status(f"step 3: train the SMAR page reranker on {ds}'s page labels"):
            trained = train_page_reranker(
                spark, lake, ds_start=ds, ds_end=ds, method=DEFAULT_RERANKER_METHOD, strategy=strategy,
                seed=settings.seed, progress=False,
            )  # fmt: skip
        console.print(
            f"registered reranker run {trained.run_id}: {trained.train_pages} train / {trained.validation_pages} "
            f"validation / {trained.test_pages} test pages; test NDCG@10 vs page labels {trained.test_ndcg_at_10:.4f}"
        )

        with console.status(
            f"step 4: replay the reranker against the production order on held-out queries of "
            f"{replay_days[0]}..{replay_days[-1]}"
        ):
            replay = replay_evaluate(
                spark, lake, control="production", candidate=f"run:{trained.run_id}",
                ds_start=replay_days[0], ds_end=replay_days[-1],
            )  # fmt: skip
        console.print(
            f"[bold]decision {replay.decision}[/bold] for run:{trained.run_id} vs production (replay {replay.run_id})"
        )
        for reason in replay.reasons:
            console.print(f"  - {escape(reason)}")  # reasons name label sources in [brackets]: not markup
        print_click_estimates(read_replay_metrics(lake, replay.run_id))
        console.print(f"report: {display(replay.report_html)}")
    print_tables()
    console.print(f"Great Expectations Data Docs: {display(join(settings.reports, 'gx'))}")
