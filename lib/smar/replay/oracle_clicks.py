"""The simulator's exact expected clicks of any ordering of a logged page (label source `oracle_clicks`).

The generator (`smar.ingest.generator`, frozen) draws each click from a position-based model:

    P(click | item at rank r) = examination(r) * attractiveness
    examination(r)            = r^-0.8                                   (EXAMINATION_EXPONENT)
    attractiveness            = min(0.95, A[grade] * exp(0.6 * (affinity[user, modality] - 0.25)))
    A                         = (0.03, 0.10, 0.25, 0.50, 0.75)           (ATTRACTIVENESS_BY_GRADE)

with `grade` the hidden grade of (query, item) in truth.relevance and `affinity` the user's
Dirichlet modality affinity, stored as the first four `dense_features` of bronze.users (in
MODALITIES order web, image, video, answer; float32 there, so a probability read back from the
tables differs from the generator's float64 one by less than 1e-6). Clicks are independent
given the page, so the expected clicks@k of an ordering that puts item i at rank t_i is exactly

    clicks@k = sum_i [t_i <= k] * t_i^-0.8 * attractiveness_i.

For a logged page this is the truth the replay's click estimators estimate: the
`oracle_clicks` rows of both arms (`smar.replay.clicks`) are these numbers, averaged like the
estimators (mean over a query's pages, then over queries). Synthetic data only: real logs have no truth.relevance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from smar.errors import InputRefused
from smar.ingest.generator import ATTRACTIVENESS_BY_GRADE, examination_probability
from smar.vocabulary import MODALITIES

#: The generator's attractiveness cap and affinity slope/centre (literals in `generate_day`;
#: tests/test_replay_oracle_clicks.py replays its random draws to prove they still agree).
ATTRACTIVENESS_CAP = 0.95
AFFINITY_SLOPE = 0.6
AFFINITY_CENTRE = 0.25


def true_examination(ranks: ArrayLike) -> NDArray[np.float64]:
    """The generator's examination probability r^-0.8 of 1-based ranks."""
    array = np.asarray(ranks, dtype=np.float64)
    if array.size and array.min() < 1:
        raise ValueError("ranks are 1-based")
    return examination_probability(array)


def true_attractiveness(grades: ArrayLike, affinity: ArrayLike) -> NDArray[np.float64]:
    """min(0.95, A[grade] * exp(0.6 * (affinity - 0.25))) per impression; grade 0-4, affinity in [0, 1]."""
    grade = np.asarray(grades)
    if grade.size and (np.isnan(grade.astype(np.float64)).any() or grade.min() < 0 or grade.max() > 4):
        raise ValueError("grades must be whole numbers 0-4 without gaps (every impression needs its truth grade)")
    table = np.asarray(ATTRACTIVENESS_BY_GRADE, dtype=np.float64)
    value = table[grade.astype(np.int64)] * np.exp(
        AFFINITY_SLOPE * (np.asarray(affinity, dtype=np.float64) - AFFINITY_CENTRE)
    )
    return np.minimum(value, ATTRACTIVENESS_CAP)


def expected_clicks_at_k(attractiveness: ArrayLike, ranks: ArrayLike, k: int) -> NDArray[np.float64]:
    """Per impression: [rank <= k] * rank^-0.8 * attractiveness (sum a page's rows for its clicks@k)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rank = np.asarray(ranks, dtype=np.float64)
    return np.where(rank <= k, true_examination(rank), 0.0) * np.asarray(attractiveness, dtype=np.float64)


def user_affinity_by_modality(users: pd.DataFrame) -> pd.DataFrame:
    """(ds, user_id, modality, affinity) from bronze.users rows: dense_features[0:4] in MODALITIES order
    (the generator's layout). Users without four dense features are left out (their affinity is unknown)."""
    features = users["dense_features"].map(lambda values: [] if values is None else list(values)[: len(MODALITIES)])
    known = features.map(len) == len(MODALITIES)
    users, features = users[known], features[known]
    if users.empty:
        return pd.DataFrame({"ds": [], "user_id": [], "modality": [], "affinity": []})
    matrix = np.vstack(features.to_numpy()).astype(np.float64)
    frames = [
        pd.DataFrame({"ds": users["ds"].to_numpy(), "user_id": users["user_id"].to_numpy(), "modality": name,
                      "affinity": matrix[:, index]})
        for index, name in enumerate(MODALITIES)
    ]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def attach_true_attractiveness(impressions: pd.DataFrame, relevance: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """`impressions` (ds, query_id, item_id, user_id, modality, ...) with `true_attractiveness` added.

    `relevance`: truth.relevance rows (ds, query_id, item_id, grade); `users`: bronze.users rows.
    Raises InputRefused when an impression has no truth grade or no user affinity.
    """
    grades = relevance.groupby(["ds", "query_id", "item_id"], as_index=False)["grade"].max()
    joined = impressions.merge(grades, on=["ds", "query_id", "item_id"], how="left", validate="many_to_one")
    affinity = user_affinity_by_modality(users).drop_duplicates(["ds", "user_id", "modality"])
    joined = joined.merge(affinity, on=["ds", "user_id", "modality"], how="left", validate="many_to_one")
    for column, table in (("grade", "truth.relevance"), ("affinity", "bronze.users")):
        missing = int(joined[column].isna().sum())
        if missing:
            raise InputRefused(f"{missing} impressions have no {column} in {table}: oracle clicks need both")
    joined["true_attractiveness"] = true_attractiveness(joined["grade"].to_numpy(np.int64), joined["affinity"])
    return joined.drop(columns=["grade", "affinity"])
