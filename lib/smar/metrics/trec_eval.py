"""trec_eval-style evaluation of a run file against a qrels file: what `smar eval` runs.

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
from pathlib import Path

from smar.errors import InputRefused
from smar.metrics.conventions import Gain, Ties
from smar.metrics.evaluation import COUNT_MEASURES, DEFAULT_MEASURES, Evaluation, evaluate_run, parse_measures
from smar.metrics.trec_files import read_qrels, read_run


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
    """Read both files, evaluate, render; raises `InputRefused` (an `InputFileError` for a malformed
    file) on bad input."""
    if output_format not in ("trec", "json"):
        raise InputRefused(f"output format must be 'trec' or 'json', got {output_format!r}")
    try:
        parse_measures(measures or list(DEFAULT_MEASURES))
    except ValueError as error:
        raise InputRefused(str(error)) from error
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
        raise InputRefused(
            f"no query has both qrels ({qrels_path}) and results ({run_path}) "
            "with a relevant document; nothing to evaluate"
        )
    evaluation = Evaluation(evaluation.per_query, evaluation.overall, warnings)
    render = render_json if output_format == "json" else render_trec
    return EvalResult(render(evaluation, per_query=per_query), warnings, evaluation)
