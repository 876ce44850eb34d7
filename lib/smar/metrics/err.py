"""Expected reciprocal rank (Chapelle, Metzler, Zhang and Grinspan, CIKM 2009)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smar.metrics.conventions import (
    Ties,
    as_float_array,
    cutoff_mask,
    empty_value,
    ranked_grades,
    refuse_average_ties,
)

#: gdeval.pl (TREC Web track) fixes the top grade at 4, which is also this project's label scale.
DEFAULT_MAX_GRADE = 4.0


def expected_reciprocal_rank(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int | None = None,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
    max_grade: float = DEFAULT_MAX_GRADE,
    empty: float | None = None,
    judged_relevance: ArrayLike | None = None,
) -> float:
    """ERR@k = sum over r <= k of (1/r) * R_r * prod over i < r of (1 - R_i).

    R = (2^g - 1) / 2^max_grade is the probability that a user stops at a document of grade g
    (negative grades count as 0; grades above `max_grade` are refused). A query with no judged
    document of positive grade (`judged_relevance`, default the retrieved grades) gets `empty`
    (None gives NaN: left out of means). ties="average" is refused.
    """
    refuse_average_ties(ties, "expected_reciprocal_rank")
    judged = as_float_array(relevance if judged_relevance is None else judged_relevance, "judged_relevance")
    if judged.size and judged.max() > max_grade:
        raise ValueError(f"grade {judged.max()} exceeds max_grade={max_grade}")
    if not (judged > 0).any():
        return empty_value(empty)
    grades, _ = ranked_grades(relevance, scores, doc_ids=doc_ids, ties=ties)
    stop_probability = (np.exp2(np.clip(grades, 0.0, None)) - 1.0) / np.exp2(max_grade)
    stop_probability = stop_probability * cutoff_mask(len(grades), k)
    # Probability that the user is still looking when reaching each rank.
    still_looking = np.concatenate(([1.0], np.cumprod(1.0 - stop_probability)[:-1]))
    ranks = np.arange(1, len(grades) + 1, dtype=np.float64)
    return float(np.sum(still_looking * stop_probability / ranks))
