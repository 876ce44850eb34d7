"""Replays on simulated logs whose clicks can be redrawn from the generator's true click model.

Used by the coverage test (tests/test_replay_coverage.py) and the power benchmark
(benchmarks/bench_replay_power.py). Pages, users and orders come from `smar.ingest.generator`
(`build_world` + `generate_day`, frozen defaults, any `GeneratorConfig`); for every impression
the true click probability examination(position) * attractiveness is known exactly
(`smar.replay.oracle_clicks`), so clicks can be redrawn many times on the same pages and the
estimand (the exact expected clicks@k of each arm on these pages) stays fixed. Everything here is
pandas on purpose: thousands of redraws, no tables.

A replay here mirrors the warehouse one: the scope is the `test` split; control is the logged
order (rank = logged position, as the `production` ranking source); the examination curve is
refitted on every draw from the exploration pages of the whole window (every split), as the
replay job does on bronze.search_logs (`smar.replay.click_inputs`, the Spark form of the same rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smar.ingest.generator import GeneratorConfig, SizeName, build_world, generate_day
from smar.metrics.bootstrap import BootstrapConfig
from smar.propensities import (
    PropensityFitError,
    exploration_rows,
    fit_examination_curve,
    identify_exploration_pages,
    position_counts,
)
from smar.replay.clicks import ClickConfig, replay_clicks
from smar.replay.oracle_clicks import true_attractiveness, true_examination
from smar.splits import query_split
from smar.vocabulary import CLICKS_PBM_IPS, CLICKS_PBM_SN, MODALITIES, ORACLE_CLICKS


@dataclass
class SimulatedLogs:
    """The window's impressions (bronze.search_logs columns, all splits) with the truth per row."""

    logs: pd.DataFrame  # + columns grade, true_attractiveness, production_rank, is_test, page
    click_probability: np.ndarray  # [rows] examination(position) * attractiveness

    def redraw(self, rng: np.random.Generator) -> np.ndarray:
        """New clicks for every impression, independent Bernoulli(click_probability)."""
        return (rng.random(len(self.click_probability)) < self.click_probability).astype(np.int64)


def simulate_logs(size: SizeName, days: list[str], *, seed: int = 20251016) -> SimulatedLogs:
    """Generate `days` of the `size` world and attach each impression's grade, true attractiveness and production rank."""
    world = build_world(GeneratorConfig.preset(size), seed)
    logs = pd.concat([generate_day(ds, size=size, seed=seed, world=world).search_logs.to_pandas() for ds in days],
                     ignore_index=True)  # fmt: skip
    query_index = pd.Series(np.arange(len(world.query_ids)), index=world.query_ids)
    item_index = pd.Series(np.arange(len(world.item_ids)), index=world.item_ids)
    user_index = pd.Series(np.arange(len(world.user_ids)), index=world.user_ids)
    q = query_index[logs["query_id"]].to_numpy()
    item = item_index[logs["item_id"]].to_numpy()
    production_items = world.page_item[q]  # [rows, page] production order of the row's query
    production_rank = np.argmax(production_items == item[:, None], axis=1) + 1
    grade = world.page_grade[q, production_rank - 1]
    modality = pd.Series(np.arange(len(MODALITIES)), index=list(MODALITIES))[logs["modality"]].to_numpy()
    affinity = world.user_affinity[user_index[logs["user_id"]].to_numpy(), modality]
    attractiveness = true_attractiveness(grade, affinity)
    logs["grade"] = grade
    logs["true_attractiveness"] = attractiveness
    logs["production_rank"] = production_rank
    logs["is_test"] = logs["query_id"].map(query_split).eq("test").to_numpy()
    logs["page"] = logs["ds"].astype(str) + "\u001f" + logs["request_id"].astype(str)
    probability = true_examination(logs["position"].to_numpy()) * attractiveness
    return SimulatedLogs(logs, probability)


def ranks_by_score(pages: np.ndarray, item_ids: np.ndarray, score: np.ndarray) -> np.ndarray:
    """1-based rank of each row inside its page by score descending, ties by item id descending (as the replay)."""
    frame = pd.DataFrame({"page": pages, "item": item_ids, "score": score, "row": np.arange(len(pages))})
    frame = frame.sort_values(["page", "score", "item"], ascending=[True, False, False], kind="stable")
    frame["rank"] = frame.groupby("page").cumcount() + 1
    return frame.sort_values("row")["rank"].to_numpy()


def noisy_oracle_candidate(sim: SimulatedLogs, *, strength: float, noise: float = 1.0, seed: int = 7) -> np.ndarray:
    """Ranks of a synthetic candidate: score = -production_rank + strength * (grade + N(0, noise^2)) per (query, item).

    strength 0 is production; larger moves graded items up. The noise is drawn once per
    (query, item), so the candidate is a deterministic function of the page like a real reranker.
    Negative strength demotes relevant items (a worse candidate).
    """
    logs = sim.logs
    pair_codes, n_pairs = pd.factorize(logs["query_id"] + "\u001f" + logs["item_id"])
    jitter = np.random.default_rng(seed).normal(scale=noise, size=len(n_pairs))[pair_codes]
    score = -logs["production_rank"].to_numpy(float) + strength * (logs["grade"].to_numpy(float) + jitter)
    return ranks_by_score(logs["page"].to_numpy(), logs["item_id"].to_numpy(), score)


@dataclass(frozen=True)
class SimulatedReplay:
    """What a simulated replay measures: its cutoffs, intervals and click settings."""

    cutoffs: tuple[int, ...] = (5, 10)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    clicks: ClickConfig = field(default_factory=ClickConfig)


@dataclass(frozen=True)
class DrawResult:
    """One redraw of the clicks: the estimates of every estimator and the fixed truth."""

    label_source: str
    k: int
    delta: float
    ci_low: float
    ci_high: float
    true_delta: float
    reliable: bool = True
    unreliable_reason: str | None = None


def replay_draw(sim: SimulatedLogs, clicks: np.ndarray, candidate_rank: np.ndarray, *,
                replay: SimulatedReplay) -> list[DrawResult]:  # fmt: skip
    """Fit the curve on this draw's exploration clicks (whole window) and replay the test split."""
    logs = sim.logs.assign(clicked=clicks)
    pages, _ = identify_exploration_pages(logs)
    try:
        curve = fit_examination_curve(
            position_counts(exploration_rows(logs, pages)), method=replay.clicks.propensity_method,
            n_bootstrap=replay.clicks.propensity_bootstrap, seed=replay.bootstrap.seed,
        )  # fmt: skip
        error = None
    except PropensityFitError as exc:
        curve, error = None, str(exc)
    test = logs["is_test"].to_numpy()
    scope = logs[test].assign(control_rank=logs["position"].to_numpy()[test], candidate_rank=candidate_rank[test])
    result = replay_clicks(
        scope, curve, cutoffs=replay.cutoffs, bootstrap=replay.bootstrap, config=replay.clicks, curve_error=error,
        true_attractiveness=scope["true_attractiveness"].to_numpy(),
    )  # fmt: skip
    rows = result.rows.set_index(["label_source", "k"])
    out = []
    for k in replay.cutoffs:
        truth = float(rows.loc[(ORACLE_CLICKS, k), "delta"])
        for source in (CLICKS_PBM_IPS, CLICKS_PBM_SN):
            if (source, k) not in rows.index:
                out.append(DrawResult(source, k, np.nan, np.nan, np.nan, truth, False, error))
                continue
            row = rows.loc[(source, k)]
            out.append(DrawResult(source, k, float(row["delta"]), float(row["ci_low"]), float(row["ci_high"]), truth,
                                  bool(row["reliable"]), row["unreliable_reason"]))  # fmt: skip
    return out


def coverage_experiment(
    sim: SimulatedLogs, candidate_rank: np.ndarray, *, n_draws: int, replay: SimulatedReplay, seed: int = 11
) -> pd.DataFrame:
    """Redraw every click `n_draws` times; one row per (draw, estimator, k) with covered and sign columns."""
    rng = np.random.default_rng(seed)
    records = []
    for draw in range(n_draws):
        for result in replay_draw(sim, sim.redraw(rng), candidate_rank, replay=replay):
            records.append({"draw": draw, **result.__dict__})
    frame = pd.DataFrame(records)
    frame["covered"] = (frame["ci_low"] <= frame["true_delta"]) & (frame["true_delta"] <= frame["ci_high"])
    frame["sign_agrees"] = np.sign(frame["delta"]) == np.sign(frame["true_delta"])
    frame["wrong_side"] = np.where(frame["true_delta"] > 0, frame["ci_high"] < 0, frame["ci_low"] > 0)
    return frame
