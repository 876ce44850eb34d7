"""`smar eval`: trec_eval-style evaluation of a run against qrels, usable on its own.

    smar eval --qrels qrels.txt --run run.txt -m ndcg_cut_10 -m map -q
    smar eval --qrels labels.csv --run scores.csv --gain exponential --format json

Files are TREC (`qid 0 docid rel`, `qid Q0 docid rank score tag`) or CSV with a header
(`qid,pid,rel`, `qid,pid,score`), auto-detected. Output lines are `measure<TAB>qid|all<TAB>value`
like trec_eval's; defaults are trec_eval's conventions (linear gain, ties by document id
descending, relevance threshold 1, queries without relevant documents left out unless -c).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from smar.metrics.conventions import Gain, Ties
from smar.metrics.evaluation import COUNT_MEASURES, DEFAULT_MEASURES, Evaluation, evaluate_run
from smar.trec_files import InputFileError, read_qrels, read_run


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


@dataclass(frozen=True)
class EvalResult:
    """What `run_eval` produced: the rendered text, the warnings, and the numbers behind them."""

    text: str
    warnings: tuple[str, ...]
    evaluation: Evaluation


def _format_value(measure: str, value: float) -> str:
    if math.isnan(value):
        return "nan"
    if measure in COUNT_MEASURES:
        return str(int(round(value)))
    return f"{value:.4f}"


def render_trec(evaluation: Evaluation, *, per_query: bool) -> str:
    """trec_eval's layout: `measure` padded to 22, a tab, query id or `all`, a tab, the value."""
    lines: list[str] = []
    if per_query:
        for query_id, row in evaluation.per_query.iterrows():
            for measure, value in row.items():
                if measure == "num_q":  # trec_eval prints num_q only for `all`
                    continue
                lines.append(f"{measure:<22}\t{query_id}\t{_format_value(str(measure), float(value))}")
    for measure, value in evaluation.overall.items():
        lines.append(f"{measure:<22}\tall\t{_format_value(measure, value)}")
    return "\n".join(lines) + "\n"


def render_json(evaluation: Evaluation, *, per_query: bool) -> str:
    """JSON: {"all": {measure: value}, "per_query": {qid: {...}} (with -q), "warnings": [...]}."""

    def clean(measure: str, value: float) -> float | int | None:
        if math.isnan(value):
            return None
        return int(round(value)) if measure in COUNT_MEASURES else float(value)

    document: dict[str, object] = {
        "all": {measure: clean(measure, value) for measure, value in evaluation.overall.items()}
    }
    if per_query:
        document["per_query"] = {
            str(query_id): {str(measure): clean(str(measure), float(value)) for measure, value in row.items()}
            for query_id, row in evaluation.per_query.iterrows()
        }
    document["warnings"] = list(evaluation.warnings)
    # allow_nan=False: inf (never produced by these measures) must not leak out as invalid JSON.
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def run_eval(
    qrels_path: Path | str,
    run_path: Path | str,
    *,
    measures: list[str] | None = None,
    per_query: bool = False,
    complete: bool = False,
    gain: Gain = "linear",
    ties: Ties = "doc_id_desc",
    relevance_level: float = 1,
    output_format: str = "trec",
) -> EvalResult:
    """Read both files, evaluate, render; raises InputFileError or ValueError on bad input."""
    if output_format not in ("trec", "json"):
        raise ValueError(f"output format must be 'trec' or 'json', got {output_format!r}")
    qrels = read_qrels(qrels_path)
    run = read_run(run_path)
    evaluation = evaluate_run(
        qrels.frame,
        run.frame,
        measures or list(DEFAULT_MEASURES),
        gain=gain,
        ties=ties,
        relevance_threshold=relevance_level,
        complete=complete,
    )
    warnings = (*qrels.warnings, *run.warnings, *evaluation.warnings)
    if evaluation.per_query.empty:
        raise ValueError(
            f"no query has both qrels ({qrels_path}) and results ({run_path}) "
            "with a relevant document; nothing to evaluate"
        )
    evaluation = Evaluation(evaluation.per_query, evaluation.overall, warnings)
    render = render_json if output_format == "json" else render_trec
    return EvalResult(render(evaluation, per_query=per_query), warnings, evaluation)


eval_app = typer.Typer(
    help="Evaluate a ranking run against relevance judgements, trec_eval style.",
    add_completion=False,
    no_args_is_help=True,
)


@eval_app.callback(invoke_without_command=True)
def eval_command(
    qrels: Annotated[
        Path, typer.Option("--qrels", help="Judgements: TREC `qid 0 docid rel` or CSV qid,pid,rel.")
    ],
    run: Annotated[
        Path, typer.Option("--run", help="Run: TREC `qid Q0 docid rank score tag` or CSV qid,pid,score.")
    ],
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "--measure", "-m", help="Measure, trec_eval names (ndcg_cut_10, map, P_5, P.5,10, err_10...)."
        ),
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
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="trec lines or JSON.")
    ] = OutputFormat.trec,
) -> None:
    """Print trec_eval-style lines `measure<TAB>qid|all<TAB>value` (or JSON) for a run."""
    try:
        result = run_eval(
            qrels,
            run,
            measures=measure,
            per_query=query,
            complete=complete,
            gain=gain.value,  # type: ignore[arg-type]
            ties=ties.value,  # type: ignore[arg-type]
            relevance_level=relevance_level,
            output_format=output_format.value,
        )
    except (InputFileError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(result.text, nl=False)
