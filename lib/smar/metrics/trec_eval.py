"""trec_eval-style evaluation of a run file against a qrels file: what `smar eval` runs.

    smar eval --qrels qrels.txt --run run.txt -m ndcg_cut_10 -m map -q
    smar eval --qrels labels.csv --run scores.csv --gain exponential --format json
    smar eval --qrels clicks.tsv --compare baseline.txt new.txt -m ndcg_cut_10 -m recip_rank

Files are TREC (`qid 0 docid rel`, `qid Q0 docid rank score tag`) or CSV/TSV with a header
(`qid,pid,rel`, `qid,pid,score`), auto-detected; qrels may list only the relevant pairs
(`qid,pid`, or `qid docid` lines: grade 1), `smar.metrics.trec_files`. `--compare` prints per
measure both means, the paired difference B - A with its bootstrap interval and the paired
randomisation test's p-value (`smar.metrics.comparison`). Output lines are `measure<TAB>qid|all<TAB>value`
like trec_eval's; defaults are trec_eval's conventions (linear gain, ties by document id
descending, relevance threshold 1, queries without relevant documents left out unless -c).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from smar.errors import InputRefused
from smar.metrics.bootstrap import BootstrapConfig
from smar.metrics.comparison import RunComparison, compare_evaluations
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


@dataclass(frozen=True)
class CompareResult:
    """What `run_compare` produced: the rendered text, the warnings, and the comparison."""

    text: str
    warnings: tuple[str, ...]
    comparison: RunComparison


def render_comparison_trec(comparison: RunComparison, run_a: str, run_b: str, *, per_query: bool) -> str:
    """A header line, then per measure: mean A, mean B, delta B - A, its interval, p, queries (tabs)."""
    level = f"{comparison.confidence_level:.0%}"
    lines = [f"# A = {run_a}", f"# B = {run_b}", f"# delta = B - A; {level} paired bootstrap interval; "
             "p: two-sided paired randomisation test"]  # fmt: skip
    lines.append(f"{'measure':<22}\tA\tB\tdelta\tci_low\tci_high\tp\tqueries")
    for item in comparison.measures:
        lines.append(
            f"{item.measure:<22}\t{item.mean_a:.4f}\t{item.mean_b:.4f}\t{item.delta:+.4f}\t{item.ci_low:+.4f}\t"
            f"{item.ci_high:+.4f}\t{item.p_value:.4f}\t{item.n_queries}"
        )
    if per_query:
        for row in comparison.per_query.itertuples(index=False):
            lines.append(f"{row.measure:<22}\t{row.query_id}\t{row.a:.4f}\t{row.b:.4f}\t{row.delta:+.4f}")
    return "\n".join(lines) + "\n"


def render_comparison_json(comparison: RunComparison, run_a: str, run_b: str, *, per_query: bool) -> str:
    """JSON: {"run_a", "run_b", "confidence_level", "measures": {name: {...}}, "per_query"?, "warnings"}."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    document: dict[str, object] = {
        "run_a": run_a,
        "run_b": run_b,
        "confidence_level": comparison.confidence_level,
        "test": "paired randomisation (sign flip), two-sided",
        "measures": {
            item.measure: {
                "a": clean(item.mean_a),
                "b": clean(item.mean_b),
                "delta": clean(item.delta),
                "ci_low": clean(item.ci_low),
                "ci_high": clean(item.ci_high),
                "p_value": clean(item.p_value),
                "n_queries": item.n_queries,
            }  # fmt: skip
            for item in comparison.measures
        },
    }
    if per_query:
        document["per_query"] = [
            {"measure": row.measure, "query_id": str(row.query_id), "a": row.a, "b": row.b, "delta": row.delta}
            for row in comparison.per_query.itertuples(index=False)
        ]
    document["warnings"] = list(comparison.warnings)
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def run_compare(
    qrels_path: Path | str,
    run_a_path: Path | str,
    run_b_path: Path | str,
    *,
    measures: list[str] | None = None,
    per_query: bool = False,
    complete: bool = False,
    gain: Gain = "linear",
    ties: Ties = "doc_id_desc",
    relevance_level: float = 1,
    output_format: str = "trec",
    n_resamples: int = 10_000,
    confidence_level: float = 0.95,
    seed: int = 20251016,
) -> CompareResult:
    """Evaluate both runs against the qrels and compare them per measure (`compare_evaluations`)."""
    if output_format not in ("trec", "json"):
        raise InputRefused(f"output format must be 'trec' or 'json', got {output_format!r}")
    try:
        parse_measures(measures or list(DEFAULT_MEASURES))
    except ValueError as error:
        raise InputRefused(str(error)) from error
    if n_resamples < 100 or not 0 < confidence_level < 1:
        raise InputRefused(f"--resamples must be >= 100 and the confidence level in (0, 1); got {n_resamples}, "
                           f"{confidence_level}")  # fmt: skip
    config = BootstrapConfig(n_resamples=n_resamples, confidence_level=confidence_level, seed=seed)
    qrels = read_qrels(qrels_path)
    evaluations = []
    warnings = list(qrels.warnings)
    for name, path in (("A", run_a_path), ("B", run_b_path)):
        run = read_run(path)
        evaluation = evaluate_run(
            qrels.frame, run.frame, measures or list(DEFAULT_MEASURES), gain=gain, ties=ties,
            relevance_threshold=relevance_level, complete=complete,
        )  # fmt: skip
        if evaluation.per_query.empty:
            raise InputRefused(
                f"run {name} ({path}) has no query with qrels and a relevant document; nothing to compare"
            )
        warnings += [*run.warnings, *(f"run {name}: {warning}" for warning in evaluation.warnings)]
        evaluations.append(evaluation)
    comparison = compare_evaluations(evaluations[0], evaluations[1], config=config, n_resamples=n_resamples)
    if not comparison.measures:
        raise InputRefused("only count measures were asked for; --compare compares per-query measures (map, ndcg, ...)")
    comparison = RunComparison(comparison.measures, comparison.per_query, comparison.confidence_level,
                               (*warnings, *comparison.warnings))  # fmt: skip
    render = render_comparison_json if output_format == "json" else render_comparison_trec
    text = render(comparison, str(run_a_path), str(run_b_path), per_query=per_query)
    return CompareResult(text, comparison.warnings, comparison)
