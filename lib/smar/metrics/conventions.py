"""The conventions every ranking metric states explicitly: gain, tie rule, empty-query value.

Tools disagree on these, so the same run gets different NDCG from trec_eval, LightGBM and
scikit-learn. Each metric here takes them as keyword arguments instead of picking one silently:

* gain: "linear" (gain = grade, trec_eval) or "exponential" (gain = 2^grade - 1, Burges et al.,
  LightGBM's default label_gain). Negative grades (trec_eval: "judged unjudged", e.g. -1 in
  qrels.rel_level) always give gain 0.
* ties (documents with equal score):
  - "doc_id_desc": trec_eval; ties broken by document id in descending string order.
  - "input_order": LightGBM; stable sort, so ties keep the order in which they were given.
  - "average": scikit-learn / torchmetrics; every document of a tie group gets the mean of the
    discounts of the positions the group occupies (the expectation over random tie breaking).
* empty: the value of a query that has nothing relevant (ideal DCG 0, or no document at or
  above the relevance threshold): 0.0, 1.0, or None, which returns NaN so that the query is
  left out of means (`mean_over_queries`). trec_eval leaves such queries out unless -c.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Gain = Literal["linear", "exponential"]
Ties = Literal["doc_id_desc", "input_order", "average"]
GAINS: tuple[str, ...] = ("linear", "exponential")
TIES: tuple[str, ...] = ("doc_id_desc", "input_order", "average")

#: trec_eval's default: a document is relevant for binary measures when its grade is >= 1 (-l1).
DEFAULT_RELEVANCE_THRESHOLD = 1


def as_float_array(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """A 1-d float64 copy of `values`; refuses other shapes with a message naming `name`."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
    return array


def check_same_length(**arrays: Sequence[object] | NDArray[np.generic] | None) -> int:
    """The common length of the given arrays (None ones are skipped); ValueError if they differ."""
    lengths = {name: len(array) for name, array in arrays.items() if array is not None}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"arrays must have the same length, got {described}")
    return next(iter(lengths.values()), 0)


def check_conventions(*, gain: str | None = None, ties: str | None = None) -> None:
    """ValueError naming the allowed values when `gain` or `ties` is not one of them."""
    if gain is not None and gain not in GAINS:
        raise ValueError(f"gain must be one of {GAINS}, got {gain!r}")
    if ties is not None and ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")


def gain_values(relevance: ArrayLike, gain: Gain = "linear") -> NDArray[np.float64]:
    """Gain per document: linear max(rel, 0), or exponential 2^max(rel, 0) - 1."""
    check_conventions(gain=gain)
    # trec_eval gives negative grades (unjudged in pool) no gain; clipping keeps 2^rel - 1 >= 0.
    grades = np.clip(as_float_array(relevance, "relevance"), 0.0, None)
    if gain == "linear":
        return grades
    return np.exp2(grades) - 1.0


def position_discounts(length: int) -> NDArray[np.float64]:
    """Discount of ranks 1..length: 1 / log2(rank + 1)."""
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def ranking_order(
    scores: ArrayLike,
    *,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
) -> NDArray[np.intp]:
    """Indices of the documents from rank 1 down: score descending, ties by the `ties` rule.

    For "doc_id_desc" the ids are compared as strings (trec_eval's strcmp: byte order, which for
    UTF-8 text is code point order, i.e. Python's str order). "average" orders ties by input
    order; the averaging itself happens in `tie_averaged_discounts`.
    """
    check_conventions(ties=ties)
    score_array = as_float_array(scores, "scores")
    if np.isnan(score_array).any():
        raise ValueError("scores contain NaN; a NaN score cannot be ranked")
    if ties == "doc_id_desc":
        if doc_ids is None:
            raise ValueError('ties="doc_id_desc" needs doc_ids')
        ids = np.asarray([str(doc_id) for doc_id in doc_ids], dtype=object)
        check_same_length(scores=score_array, doc_ids=ids)
        # np.lexsort sorts by the last key first and is stable; ranking the ids once turns the
        # string order into integers so that both keys can be negated for descending order.
        _, id_rank = np.unique(ids, return_inverse=True)
        return np.lexsort((-id_rank.astype(np.int64), -score_array))
    return np.argsort(-score_array, kind="stable")


def tie_averaged_discounts(sorted_scores: NDArray[np.float64], discounts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per rank, the mean of `discounts` over the rank's tie group (scores sorted descending).

    `discounts` may hold zeros past a cutoff, which then spread over a group straddling it.
    """
    length = len(sorted_scores)
    if length == 0:
        return discounts[:0]
    starts_group = np.empty(length, dtype=bool)
    starts_group[0] = True
    starts_group[1:] = sorted_scores[1:] != sorted_scores[:-1]
    group_of_rank = np.cumsum(starts_group) - 1
    group_sums = np.bincount(group_of_rank, weights=discounts[:length])
    group_sizes = np.bincount(group_of_rank)
    averaged: NDArray[np.float64] = (group_sums / group_sizes)[group_of_rank]
    return averaged


def empty_value(empty: float | None) -> float:
    """The value returned for a query with nothing relevant: `empty`, or NaN when None."""
    return float("nan") if empty is None else float(empty)


def mean_over_queries(values: ArrayLike) -> float:
    """Mean of per-query values, leaving out NaN (queries skipped by `empty=None`); NaN if none."""
    array = as_float_array(values, "values")
    kept = array[~np.isnan(array)]
    return float(kept.mean()) if kept.size else float("nan")


def ranked_grades(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(grades, scores) of the retrieved documents in rank order, rank 1 first."""
    grades = as_float_array(relevance, "relevance")
    score_array = as_float_array(scores, "scores")
    check_same_length(relevance=grades, scores=score_array, doc_ids=doc_ids)
    order = ranking_order(score_array, doc_ids=doc_ids, ties=ties)
    return grades[order], score_array[order]


def cutoff_mask(length: int, k: int | None) -> NDArray[np.float64]:
    """1.0 for ranks 1..k and 0.0 after (all ones when k is None); ValueError for k < 1."""
    if k is not None and k < 1:
        raise ValueError(f"cutoff k must be a positive integer or None, got {k!r}")
    mask = np.ones(length, dtype=np.float64)
    if k is not None:
        mask[k:] = 0.0
    return mask


def count_relevant(judged_relevance: ArrayLike, relevance_threshold: float) -> int:
    """Number of judged documents with grade >= `relevance_threshold` (trec_eval's num_rel)."""
    return int((as_float_array(judged_relevance, "judged_relevance") >= relevance_threshold).sum())


def refuse_average_ties(ties: str, metric: str) -> None:
    """ValueError: `metric` is not linear in per-rank weights, so tie averaging is undefined."""
    if ties == "average":
        raise ValueError(
            f'{metric} does not support ties="average" (it is defined for position-weighted sums '
            'such as DCG, P@k and recall@k); use "doc_id_desc" or "input_order"'
        )
