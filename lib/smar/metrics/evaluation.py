"""Evaluate a whole run against qrels, measure names and query rules as trec_eval has them.

Measures are named like trec_eval's: `ndcg`, `ndcg_cut_10`, `map`, `map_cut_10`, `recip_rank`,
`P_5`, `recall_10`, `success_10`, `num_q`, `num_ret`, `num_rel`, `num_rel_ret`; plus `err_10`
(ERR@10; `err` uncut) and `recip_rank_cut_10` (MRR@10), which trec_eval lacks. trec_eval's
parameter form is accepted too: `P.5,10` means `P_5` and `P_10`.

Which queries count (trec_eval): those in both the qrels and the run. A query without any
document at or above the relevance threshold is left out (`empty=None`) unless `complete`
(trec_eval -c), which instead averages over every query of the qrels, scoring queries missing
from the run, or without relevant documents, as 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from smar.metrics.average_precision import average_precision
from smar.metrics.conventions import (
    DEFAULT_RELEVANCE_THRESHOLD,
    Gain,
    Ties,
    check_conventions,
    mean_over_queries,
)
from smar.metrics.err import DEFAULT_MAX_GRADE, expected_reciprocal_rank
from smar.metrics.ndcg import ndcg_at
from smar.metrics.precision_recall import precision_at, recall_at
from smar.metrics.reciprocal_rank import reciprocal_rank

#: Measures reported when none is asked for.
DEFAULT_MEASURES: tuple[str, ...] = (
    "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "recip_rank",
    "P_5", "P_10", "ndcg", "ndcg_cut_5", "ndcg_cut_10", "ndcg_cut_20",
)  # fmt: skip

#: Count measures: integers, summed (not averaged) over queries, as trec_eval prints them.
COUNT_MEASURES = frozenset({"num_q", "num_ret", "num_rel", "num_rel_ret"})
_UNCUT = frozenset({"map", "recip_rank", "ndcg", "err"}) | COUNT_MEASURES
_WITH_CUTOFF = re.compile(r"^(P|recall|success|ndcg_cut|map_cut|err|recip_rank_cut)_(\d+)$")
_PARAMETER_FORM = re.compile(r"^(P|recall|success|ndcg_cut|map_cut|err|recip_rank_cut)\.([\d,]+)$")


@dataclass(frozen=True)
class Measure:
    """A parsed measure name: its family (e.g. "ndcg_cut") and cutoff k (None when uncut)."""

    name: str
    family: str
    k: int | None


def parse_measures(names: Sequence[str]) -> list[Measure]:
    """Parse measure names (trec_eval spelling), expanding `P.5,10`; ValueError on unknown ones."""
    parsed: list[Measure] = []
    for raw in names:
        name = raw.strip()
        expanded: list[str]
        parameter_form = _PARAMETER_FORM.match(name)
        if parameter_form:
            family, cutoffs = parameter_form.groups()
            expanded = [f"{family}_{cutoff}" for cutoff in cutoffs.split(",") if cutoff]
        else:
            expanded = [name]
        for single in expanded:
            with_cutoff = _WITH_CUTOFF.match(single)
            if single in _UNCUT:
                measure = Measure(single, single, None)
            elif with_cutoff and int(with_cutoff.group(2)) > 0:
                measure = Measure(single, with_cutoff.group(1), int(with_cutoff.group(2)))
            else:
                raise ValueError(
                    f"unknown measure {single!r}; known: {', '.join(sorted(_UNCUT))}, and "
                    "P_k, recall_k, success_k, ndcg_cut_k, map_cut_k, err_k, recip_rank_cut_k (k >= 1)"
                )
            if measure not in parsed:
                parsed.append(measure)
    return parsed


@dataclass(frozen=True)
class Evaluation:
    """Per-query values (index: query id, sorted; one column per measure) and their aggregate."""

    per_query: pd.DataFrame
    overall: dict[str, float]
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _QueryInput:
    ranked_grades: NDArray[np.float64]  # grades of retrieved docs in rank order; -1 = unjudged
    ranked_scores: NDArray[np.float64]
    judged_grades: NDArray[np.float64]  # every judged doc of the query


def _measure_function(
    measure: Measure,
    *,
    gain: Gain,
    ties: Ties,
    relevance_threshold: float,
    max_grade: float,
) -> Callable[[_QueryInput, float | None], float]:
    # The run is sorted once (score, then the tie rule), so every metric sees ranked input and
    # only needs "input_order"; "average" still needs the scores to find tie groups.
    order_rule: Ties = "average" if ties == "average" else "input_order"
    family, k = measure.family, measure.k

    def call(query: _QueryInput, empty: float | None) -> float:
        grades, scores, judged = query.ranked_grades, query.ranked_scores, query.judged_grades
        threshold = relevance_threshold
        if family == "num_q":
            return 1.0
        if family == "num_ret":
            return float(len(grades))
        if family == "num_rel":
            return float((judged >= threshold).sum())
        if family == "num_rel_ret":
            return float((grades >= threshold).sum())
        if family in ("ndcg", "ndcg_cut"):
            return ndcg_at(grades, scores, k=k, gain=gain, ties=order_rule, empty=empty, judged_relevance=judged)
        if family == "err":
            return expected_reciprocal_rank(
                grades, scores, k=k, max_grade=max_grade, ties=order_rule, empty=empty, judged_relevance=judged
            )
        if family in ("map", "map_cut"):
            return average_precision(
                grades, scores, k=k, ties=order_rule, relevance_threshold=threshold, empty=empty,
                judged_relevance=judged,
            )  # fmt: skip
        if family in ("recip_rank", "recip_rank_cut", "success"):
            value = reciprocal_rank(
                grades, scores, k=k, ties=order_rule, relevance_threshold=threshold, empty=empty,
                judged_relevance=judged,
            )  # fmt: skip
            # success_k: 1 when a relevant document is in the top k (trec_eval).
            return float(value > 0) if family == "success" and not np.isnan(value) else value
        if family in ("P", "recall"):
            assert k is not None  # parse_measures gives P and recall a cutoff
            metric = precision_at if family == "P" else recall_at
            return metric(
                grades, scores, k=k, ties=order_rule, relevance_threshold=threshold, empty=empty,
                judged_relevance=judged,
            )  # fmt: skip
        raise AssertionError(f"unhandled measure family {family!r}")

    return call


def evaluate_run(
    qrels: pd.DataFrame,
    run: pd.DataFrame,
    measures: Sequence[str] = DEFAULT_MEASURES,
    *,
    gain: Gain = "linear",
    ties: Ties = "doc_id_desc",
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    complete: bool = False,
    empty: float | None = None,
    max_grade: float = DEFAULT_MAX_GRADE,
) -> Evaluation:
    """Per-query and overall values of `measures` for `run` (query_id, doc_id, score) against
    `qrels` (query_id, doc_id, relevance); duplicates must have been refused by the reader.

    Conventions as in `smar.metrics.conventions`; defaults are trec_eval's. Retrieved documents
    missing from the qrels count as non-relevant (gain 0). Overall: the mean over counted
    queries (NaN values left out), except count measures, which are summed (num_q counts).
    `complete` (trec_eval -c) scores qrels queries missing from the run, and queries without
    relevant documents, as 0 unless `empty` says otherwise.
    """
    check_conventions(gain=gain, ties=ties)
    parsed = parse_measures(measures)
    warnings: list[str] = []
    qrels_frame = qrels.assign(query_id=qrels["query_id"].astype(str), doc_id=qrels["doc_id"].astype(str))
    run_frame = run.assign(query_id=run["query_id"].astype(str), doc_id=run["doc_id"].astype(str))

    qrels_queries = set(qrels_frame["query_id"].unique())
    run_queries = set(run_frame["query_id"].unique())
    only_in_run = run_queries - qrels_queries
    only_in_qrels = qrels_queries - run_queries
    if only_in_run:
        warnings.append(
            f"{len(only_in_run)} run queries have no qrels and are ignored (e.g. {sorted(only_in_run)[:3]})"
        )
    if only_in_qrels:
        treatment = "scored 0 (complete)" if complete else "ignored (use -c to score them 0)"
        warnings.append(
            f"{len(only_in_qrels)} qrels queries are missing from the run and are {treatment} "
            f"(e.g. {sorted(only_in_qrels)[:3]})"
        )

    # One sort for the whole run: score descending, then the tie rule.
    by_doc_desc = ties == "doc_id_desc"
    ranked = run_frame[run_frame["query_id"].isin(qrels_queries)].merge(
        qrels_frame[["query_id", "doc_id", "relevance"]], on=["query_id", "doc_id"], how="left"
    )
    ranked["relevance"] = ranked["relevance"].astype(np.float64).fillna(-1.0)
    if by_doc_desc:
        ranked = ranked.sort_values(["query_id", "score", "doc_id"], ascending=[True, False, False], kind="mergesort")
    else:
        ranked = ranked.sort_values(["query_id", "score"], ascending=[True, False], kind="mergesort")
    ranked_by_query = {
        query_id: (group["relevance"].to_numpy(np.float64), group["score"].to_numpy(np.float64))
        for query_id, group in ranked.groupby("query_id", sort=False)
    }
    judged_by_query = {
        query_id: group.to_numpy(np.float64)
        for query_id, group in qrels_frame.groupby("query_id", sort=False)["relevance"]
    }

    query_ids = sorted(qrels_queries if complete else qrels_queries & run_queries)
    measure_functions = {
        measure.name: _measure_function(
            measure, gain=gain, ties=ties, relevance_threshold=relevance_threshold, max_grade=max_grade
        )
        for measure in parsed
    }
    rows: dict[str, dict[str, float]] = {}
    skipped_without_relevant = 0
    no_documents = np.empty(0, dtype=np.float64)
    for query_id in query_ids:
        judged = judged_by_query[query_id]
        query_empty = empty
        if not (judged >= relevance_threshold).any():
            if complete:
                query_empty = 0.0 if empty is None else empty
            elif empty is None:
                skipped_without_relevant += 1
                continue
        grades, scores = ranked_by_query.get(query_id, (no_documents, no_documents))
        query = _QueryInput(grades, scores, judged)
        rows[query_id] = {name: function(query, query_empty) for name, function in measure_functions.items()}
    if skipped_without_relevant:
        warnings.append(
            f"{skipped_without_relevant} queries have no document with relevance >= "
            f"{relevance_threshold} and are left out of the averages (use -c to score them 0)"
        )
    per_query = pd.DataFrame.from_dict(rows, orient="index", columns=[m.name for m in parsed])
    per_query.index.name = "query_id"
    overall = {
        measure.name: (
            float(per_query[measure.name].sum())
            if measure.family in COUNT_MEASURES
            else mean_over_queries(per_query[measure.name].to_numpy())
        )
        for measure in parsed
    }
    return Evaluation(per_query=per_query, overall=overall, warnings=tuple(warnings))
