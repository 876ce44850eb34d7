"""oracle_clicks reproduces the generator's click probabilities exactly, from the tables it writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smar.errors import InputRefused
from smar.ingest.generator import GeneratorConfig, _stable_int, build_world, generate_day
from smar.replay.oracle_clicks import (
    attach_true_attractiveness,
    expected_clicks_at_k,
    true_attractiveness,
    true_examination,
)

DS = "2026-11-01"
SEED = 20251016


def _generator_uniforms(config: GeneratorConfig, world, n_rows: int) -> np.ndarray:
    """The uniforms generate_day compares with P(click): its RNG calls replayed in order."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 2, _stable_int(DS) % (2**32)]))
    n = config.requests_per_day
    rng.choice(config.n_queries, size=n, p=world.query_popularity)
    rng.choice(config.n_users, size=n, p=world.user_weight)
    rng.integers(0, 86_400, size=n)
    explore = rng.random(n) < config.exploration_fraction
    if explore.any():
        rng.random((int(explore.sum()), config.page_length))
    return rng.random((n, config.page_length)).ravel()[:n_rows]


def test_oracle_probability_is_the_generators() -> None:
    config = GeneratorConfig.preset("tiny")
    world = build_world(config, SEED)
    day = generate_day(DS, size="tiny", seed=SEED, world=world)
    logs = day.search_logs.to_pandas()
    scored = attach_true_attractiveness(logs, day.relevance.to_pandas(), day.users.to_pandas())
    probability = true_examination(scored["position"]) * scored["true_attractiveness"].to_numpy()
    uniforms = _generator_uniforms(config, world, len(logs))
    # every logged click is exactly (u < P(click)): the formula, the grades and the affinities are the generator's
    assert ((uniforms < probability).astype(int) == scored["clicked"].to_numpy()).all()
    # float32 affinities in bronze.users: within 1e-6 of the float64 truth
    user = pd.Series(np.arange(len(world.user_ids)), index=world.user_ids)[logs["user_id"]].to_numpy()
    modality = pd.Series(range(4), index=["web", "image", "video", "answer"])[logs["modality"]].to_numpy()
    exact = true_attractiveness(_grades(logs, day), world.user_affinity[user, modality])
    assert np.abs(exact - scored["true_attractiveness"].to_numpy()).max() < 1e-6


def _grades(logs: pd.DataFrame, day) -> np.ndarray:
    truth = day.relevance.to_pandas()
    return logs.merge(truth, on=["ds", "query_id", "item_id"], how="left")["grade"].to_numpy()


def test_expected_clicks_by_hand() -> None:
    # grade 4 at affinity 0.25: 0.75; grade 2: 0.25; capped at 0.95 for grade 4 with affinity 1: 0.75 e^0.45 = 1.18
    assert true_attractiveness([4, 2, 4], [0.25, 0.25, 1.0]).tolist() == pytest.approx([0.75, 0.25, 0.95])
    # clicks@2 of ranks 1, 2, 3: 0.75 * 1 + 0.25 * 2^-0.8 + 0
    assert expected_clicks_at_k([0.75, 0.25, 0.95], [1, 2, 3], 2).sum() == pytest.approx(0.75 + 0.25 * 2**-0.8)


def test_missing_truth_is_an_error() -> None:
    rows = pd.DataFrame({"ds": ["d"], "query_id": ["q"], "item_id": ["i"], "user_id": ["u"], "modality": ["web"]})
    users = pd.DataFrame({"ds": ["d"], "user_id": ["u"], "dense_features": [[0.1, 0.2, 0.3, 0.4, 1.0]]})
    with pytest.raises(InputRefused, match="no grade"):
        attach_true_attractiveness(rows, pd.DataFrame({"ds": [], "query_id": [], "item_id": [], "grade": []}), users)
    # a user without the generator's four affinities has no affinity: refused too, with the table named
    no_affinity = pd.DataFrame({"ds": ["d"], "user_id": ["u"], "dense_features": [None]})
    truth = pd.DataFrame({"ds": ["d"], "query_id": ["q"], "item_id": ["i"], "grade": [2]})
    with pytest.raises(InputRefused, match="no affinity in bronze.users"):
        attach_true_attractiveness(rows, truth, no_affinity)
