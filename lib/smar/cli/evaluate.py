"""`smar eval`: trec_eval-style evaluation of a run against qrels, usable on its own.

    smar eval --qrels qrels.txt --run run.txt -m ndcg_cut_10 -m map -q
    smar eval --qrels labels.csv --run scores.csv --gain exponential --format json
    smar eval --qrels clicks.tsv --compare baseline.txt new.txt -m ndcg_cut_10 -m recip_rank

Files are TREC (`qid 0 docid rel`, `qid Q0 docid rank score tag`) or CSV/TSV with a header
(`qid,pid,rel`, `qid,pid,score`), auto-detected; qrels that only list relevant pairs (`qid,pid`
or `qid docid` lines) give each pair grade 1. Output lines are `measure<TAB>qid|all<TAB>value`
like trec_eval's; defaults are trec_eval's conventions (linear gain, ties by document id
descending, relevance threshold 1, queries without relevant documents left out unless -c).
`--compare RUN_A RUN_B` prints, per measure, both means, the paired difference B - A with its
paired bootstrap interval and the two-sided paired randomisation test's p-value.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from smar.errors import InputRefused
from smar.metrics.trec_eval import run_compare, run_eval


class OutputFormat(str, Enum):
    """How `smar eval` prints its result."""

    trec = "trec"
    json = "json"


class GainOption(str, Enum):
    """Gain of a grade: linear (trec_eval) or exponential 2^rel - 1."""

    linear = "linear"
    exponential = "exponential"


class TiesOption(str, Enum):
    """Tie rule for equal scores (see smar.metrics.conventions)."""

    doc_id_desc = "doc_id_desc"
    input_order = "input_order"
    average = "average"


eval_app = typer.Typer(
    help="Evaluate a ranking run against relevance judgements, trec_eval style.",
    add_completion=False,
    no_args_is_help=True,
)


@eval_app.callback(invoke_without_command=True)
def eval_command(
    qrels: Annotated[Path, typer.Option("--qrels", help="Judgements: TREC `qid 0 docid rel` or CSV qid,pid,rel.")],
    run: Annotated[
        Path | None, typer.Option("--run", help="Run: TREC `qid Q0 docid rank score tag` or CSV qid,pid,score.")
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            "--compare",
            help="Compare two runs, RUN_A RUN_B: per measure the paired difference B - A, its bootstrap interval "
            "and a paired randomisation test.",
        ),
    ] = None,
    measure: Annotated[
        list[str] | None,
        typer.Option("--measure", "-m", help="Measure, trec_eval names (ndcg_cut_10, map, P_5, P.5,10, err_10...)."),
    ] = None,
    query: Annotated[bool, typer.Option("--query", "-q", help="Also print one line per query and measure.")] = False,
    complete: Annotated[
        bool, typer.Option("--complete", "-c", help="Average over all qrels queries; missing ones score 0.")
    ] = False,
    relevance_level: Annotated[
        int,
        typer.Option("--relevance-level", "-l", help="Lowest grade that counts as relevant (binary measures)."),
    ] = 1,
    gain: Annotated[GainOption, typer.Option("--gain", help="Gain of a grade in DCG.")] = GainOption.linear,
    ties: Annotated[TiesOption, typer.Option("--ties", help="Rule for equal scores.")] = TiesOption.doc_id_desc,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="trec lines or JSON.")] = OutputFormat.trec,
    resamples: Annotated[
        int, typer.Option("--resamples", help="--compare: bootstrap resamples and random sign flips.")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="--compare: seed of the resampling.")] = 20251016,
) -> None:
    """Print trec_eval-style lines `measure<TAB>qid|all<TAB>value` (or JSON) for a run, or compare two."""
    if (run is None) == (compare is None):
        raise InputRefused("give either --run RUN or --compare RUN_A RUN_B")
    if compare is not None:
        compared = run_compare(
            qrels, compare[0], compare[1], measures=measure, per_query=query, complete=complete, gain=gain.value,
            ties=ties.value, relevance_level=relevance_level, output_format=output_format.value,
            n_resamples=resamples, seed=seed,
        )  # fmt: skip
        for warning in compared.warnings:
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(compared.text, nl=False)
        return
    assert run is not None
    result = run_eval(
        qrels,
        run,
        measures=measure,
        per_query=query,
        complete=complete,
        gain=gain.value,
        ties=ties.value,
        relevance_level=relevance_level,
        output_format=output_format.value,
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(result.text, nl=False)
