"""Reciprocal rank of the first relevant document (MRR when averaged over queries)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smar.metrics.conventions import (
    DEFAULT_RELEVANCE_THRESHOLD,
    Ties,
    count_relevant,
    cutoff_mask,
    empty_value,
    ranked_grades,
    refuse_average_ties,
)


def reciprocal_rank(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int | None = None,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    empty: float | None = None,
    judged_relevance: ArrayLike | None = None,
) -> float:
    """RR@k = 1 / rank of the first document with grade >= threshold within ranks 1..k, else 0.

    trec_eval's `recip_rank` is k=None with threshold 1 (-l changes it). A query with no judged
    document at or above the threshold (counted over `judged_relevance`, default the retrieved
    grades) gets `empty` (None gives NaN: left out of means). ties="average" is refused.
    """
    refuse_average_ties(ties, "reciprocal_rank")
    judged = relevance if judged_relevance is None else judged_relevance
    if count_relevant(judged, relevance_threshold) == 0:
        return empty_value(empty)
    grades, _ = ranked_grades(relevance, scores, doc_ids=doc_ids, ties=ties)
    hits = (grades >= relevance_threshold) & (cutoff_mask(len(grades), k) > 0)
    if not hits.any():
        return 0.0
    return 1.0 / (int(np.argmax(hits)) + 1)
