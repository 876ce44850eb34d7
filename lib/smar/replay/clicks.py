"""Counterfactual clicks@k of both arms of a replay: estimators, gates, power and the truth.

Input: the scope's impressions (one row per logged impression: ds, request_id, query_id,
item_id, position, clicked, control_rank, candidate_rank) and an examination curve fitted on
the randomised traffic of a documented window (`smar.propensities`, stored in
gold.click_propensities). Output: one summary row per (label source, k) in the shape of
gold.replay_metrics (metric `clicks`), with `reliable`, `unreliable_reason` and `mde`, and every
gate that decided `reliable` (`smar.replay.gates`).

| label_source | estimator | needs |
|---|---|---|
| `clicks_pbm_ips` | item-level PBM IPS (`estimators.pbm_ips_terms`) | the curve |
| `clicks_pbm_sn` | PBM IPS self-normalised by expected examinations (`estimators.pbm_ratio_terms`) | the curve |
| `clicks_iidr` | independent-item doubly robust (`estimators.independent_item_dr_terms`) | the curve, a click model fitted outside the scope, the mixture logging propensities |
| `clicks_dm` | the click model alone (`estimators.direct_method_terms`), off by default | as IIDR |
| `oracle_clicks` | the simulator's exact expected clicks (`smar.replay.oracle_clicks`) | truth.relevance and bronze.users (generator data only) |

Intervals: the paired query bootstrap, percentile, two-stage when the curve's bootstrap is
propagated (`ClickConfig.propagate_curve_uncertainty`): resample b evaluates its queries under
bootstrap curve b of the exploration fit, so the interval carries the propensity estimate's own
uncertainty. Docs: docs/replay.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import Field

from smar.config import FrozenConfig
from smar.metrics.bootstrap import BootstrapConfig, PairedDelta
from smar.propensities import ExaminationCurve, FitMethod
from smar.replay.estimators import (
    QueryAggregation,
    direct_method_terms,
    independent_item_dr_terms,
    pair_codes,
    paired_bootstrap_with_curves,
    pbm_ips_terms,
    pbm_ratio_terms,
    per_query_means,
    query_aggregation,
)
from smar.replay.gates import (
    GateResult,
    aa_gate,
    click_reliability,
    monotone_in_k_gate,
    propensity_gate,
    range_gate,
    self_normalisation_gate,
    support_gate,
)
from smar.replay.measures import ALL_SEGMENT, ARMS, CLICKS
from smar.replay.oracle_clicks import expected_clicks_at_k
from smar.replay.power import minimum_detectable_effect
from smar.vocabulary import CLICKS_DM, CLICKS_IIDR, CLICKS_PBM_IPS, CLICKS_PBM_SN, ORACLE_CLICKS

#: Columns of a click summary row: gold.replay_metrics' values plus the reliability columns.
CLICK_ROW_COLUMNS: tuple[str, ...] = (
    "metric", "segment", "k", "label_source", "control_value", "candidate_value", "delta", "ci_low", "ci_high",
    "n_queries", "reliable", "unreliable_reason", "mde",
)  # fmt: skip

#: Per-row terms of one estimator: (examination curve [R] or curves [B, R], the arm's ranks, k) -> [rows] or [B, rows].
Terms = Callable[[NDArray[np.float64], NDArray[np.int64], int], NDArray[np.float64]]


class ClickConfig(FrozenConfig):
    """How the replay estimates clicks: the propensity window, the gates' thresholds, power."""

    propensity_window_days: int = Field(
        default=28, ge=1, description="days of randomised traffic (every split) pooled for the curve, ending at ds_end"
    )
    propensity_method: FitMethod = Field(default="power_law", description="curve smoothing: power_law or isotonic")
    propensity_bootstrap: int = Field(default=2000, ge=100, description="bootstrap refits of the curve (its band)")
    propagate_curve_uncertainty: bool = Field(
        default=True, description="two-stage bootstrap: the click intervals carry the curve's uncertainty"
    )
    power: float = Field(default=0.8, gt=0.0, lt=1.0, description="power of the minimum detectable effect (mde)")
    normalisation_tolerance: float = Field(
        default=0.1, gt=0.0, description="self-normalising denominator must stay within 1 +/- this"
    )
    max_relative_band: float = Field(
        default=1.0, gt=0.0, description="without propagation: widest curve band, relative, at the deepest rank used"
    )
    min_gof_p_value: float = Field(
        default=0.001, ge=0.0, lt=1.0, description="the curve's goodness-of-fit test may not reject below this"
    )
    min_differing_queries: int = Field(
        default=20, ge=1, description="support gate: queries on whose pages the arms differ within the top k"
    )
    include_direct_method: bool = Field(
        default=False, description="also write clicks_dm (the click model alone; biased, for diagnostics)"
    )


@dataclass
class ClickReplay:
    """Summary rows (`CLICK_ROW_COLUMNS`), per-query values (long) and every gate."""

    rows: pd.DataFrame
    per_query: pd.DataFrame
    gates: list[GateResult] = field(default_factory=list)


def _page_keys(impressions: pd.DataFrame) -> NDArray[np.object_]:
    return (impressions["ds"].astype(str) + "\u001f" + impressions["request_id"].astype(str)).to_numpy()


def _relative_band(curve: ExaminationCurve, deepest: int) -> float:
    index = min(deepest, curve.max_position) - 1
    return float((curve.ci_high[index] - curve.ci_low[index]) / curve.examination[index])


def _chunked(
    terms: Terms, curves: NDArray[np.float64], ranks: NDArray[np.int64], k: int, aggregation: QueryAggregation,
    chunk: int = 100,
) -> NDArray[np.float64]:  # fmt: skip
    """Per-query means under each bootstrap curve, `chunk` curves at a time (bounded memory on long windows)."""
    parts = [per_query_means(terms(curves[start : start + chunk], ranks, k), aggregation)
             for start in range(0, len(curves), chunk)]  # fmt: skip
    return np.vstack(parts)


def _expected_weight_normaliser(
    query_ids: NDArray[np.object_], item_ids: NDArray[np.object_], logged: NDArray[np.int64], gamma: NDArray[np.float64]
) -> float:
    """Mean of u_j = gamma_{p_j} / mean(gamma_p over the rows of (q, i)): 1 when the ratio estimator's
    normalising weights are what it assumes (a broken aggregation would move it)."""
    frame = pd.DataFrame({"query_id": query_ids, "item_id": item_ids, "gamma": gamma[logged - 1]})
    weights = frame["gamma"] / frame.groupby(["query_id", "item_id"])["gamma"].transform("mean")
    return float(weights.mean())


class _Summaries:
    """Collects the summary and per-query rows of every (label source, k) as they are estimated."""

    def __init__(self, aggregation: QueryAggregation, bootstrap: BootstrapConfig, power: float) -> None:
        self.aggregation, self.bootstrap, self.power = aggregation, bootstrap, power
        self.rows: list[dict[str, object]] = []
        self.per_query: list[pd.DataFrame] = []

    def add(
        self, label_source: str, k: int, values: dict[str, NDArray[np.float64]],
        replicates: dict[str, NDArray[np.float64]] | None,
    ) -> PairedDelta:  # fmt: skip
        estimate = paired_bootstrap_with_curves(
            values["control"], values["candidate"],
            None if replicates is None else replicates["control"],
            None if replicates is None else replicates["candidate"],
            n_resamples=self.bootstrap.n_resamples, confidence_level=self.bootstrap.confidence_level,
            seed=self.bootstrap.seed,
        )  # fmt: skip
        mde = minimum_detectable_effect(
            estimate.ci_low, estimate.ci_high, confidence_level=self.bootstrap.confidence_level, power=self.power
        )
        self.rows.append({
            "metric": CLICKS, "segment": ALL_SEGMENT, "k": k, "label_source": label_source,
            "control_value": estimate.control_value, "candidate_value": estimate.candidate_value,
            "delta": estimate.delta, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
            "n_queries": estimate.n_queries, "mde": mde,
        })  # fmt: skip
        self.per_query.append(pd.DataFrame({
            "label_source": label_source, "k": k, "query_id": self.aggregation.query_ids,
            "control": values["control"], "candidate": values["candidate"],
        }))  # fmt: skip
        return estimate

    def finish(self, gates_by_source: dict[str, list[GateResult]], fallback: list[GateResult]) -> pd.DataFrame:
        """The rows with `reliable` and `unreliable_reason`; the truth is always reliable, an
        estimator without gates of its own is judged by `fallback` (the propensity gate)."""
        frame = pd.DataFrame(
            self.rows, columns=[c for c in CLICK_ROW_COLUMNS if c not in ("reliable", "unreliable_reason")]
        )
        reliable, reasons = [], []
        for source in frame["label_source"]:
            ok, failed = (
                (True, []) if source == ORACLE_CLICKS else click_reliability(gates_by_source.get(source, fallback))
            )
            reliable.append(ok)
            reasons.append("; ".join(failed) if failed else None)
        frame["reliable"] = pd.Series(reliable, index=frame.index, dtype=bool)
        frame["unreliable_reason"] = pd.Series(reasons, index=frame.index, dtype=object)
        return frame[list(CLICK_ROW_COLUMNS)]

    def per_query_frame(self) -> pd.DataFrame:
        return pd.concat(self.per_query, ignore_index=True) if self.per_query else pd.DataFrame()


def replay_clicks(
    impressions: pd.DataFrame,
    curve: ExaminationCurve | None,
    *,
    cutoffs: tuple[int, ...],
    bootstrap: BootstrapConfig | None = None,
    config: ClickConfig | None = None,
    curve_error: str | None = None,
    predicted_attractiveness: NDArray[np.float64] | None = None,
    logging_propensity: NDArray[np.float64] | None = None,
    true_attractiveness: NDArray[np.float64] | None = None,
) -> ClickReplay:
    """Every click estimate of both arms with intervals, gates, reliability and MDE (module docstring).

    `predicted_attractiveness` and `logging_propensity` ([rows]) enable `clicks_iidr`;
    `true_attractiveness` ([rows]) enables `oracle_clicks`. With `curve` None no estimator row is
    written and `curve_error` is the reason, carried by the failed propensity gate.
    """
    bootstrap = bootstrap or BootstrapConfig()
    config = config or ClickConfig()
    aggregation = query_aggregation(impressions["query_id"].to_numpy(), _page_keys(impressions))
    clicked = impressions["clicked"].to_numpy(np.float64)
    logged = impressions["position"].to_numpy(np.int64)
    ranks = {arm: impressions[f"{arm}_rank"].to_numpy(np.int64) for arm in ARMS}
    summaries = _Summaries(aggregation, bootstrap, config.power)

    if true_attractiveness is not None:
        truth = np.asarray(true_attractiveness, dtype=np.float64)
        for k in cutoffs:
            values = {arm: per_query_means(expected_clicks_at_k(truth, ranks[arm], k), aggregation) for arm in ARMS}
            summaries.add(ORACLE_CLICKS, k, values, None)

    deepest = int(max(logged.max(), *(rank.max() for rank in ranks.values()))) if len(logged) else 1
    if curve is not None and deepest > curve.max_position:
        curve_error = f"the scope uses position {deepest}; the examination curve covers 1-{curve.max_position}"
        curve = None
    propagated = config.propagate_curve_uncertainty and curve is not None
    curve_gate = propensity_gate(
        fit_error=(curve_error or "no examination curve") if curve is None else None,
        gof_p_value=curve.gof_p_value if curve is not None else float("nan"),
        relative_band=_relative_band(curve, deepest) if curve is not None else float("nan"),
        min_p_value=config.min_gof_p_value, max_relative_band=config.max_relative_band, band_propagated=propagated,
    )  # fmt: skip
    if curve is None:
        return ClickReplay(summaries.finish({}, [curve_gate]), summaries.per_query_frame(), [curve_gate])

    gamma = curve.examination
    # Only as many bootstrap curves as resamples are used (resample b uses curve b).
    curves = curve.replicates[: bootstrap.n_resamples] if propagated else None
    query_ids, item_ids = impressions["query_id"].to_numpy(), impressions["item_id"].to_numpy()
    pairs = pair_codes(query_ids, item_ids)  # once, not once per bootstrap curve
    estimators: dict[str, Terms] = {
        CLICKS_PBM_IPS: lambda g, target, k: pbm_ips_terms(clicked, logged, target, g, k=k),
        CLICKS_PBM_SN: lambda g, target, k: pbm_ratio_terms(
            query_ids, item_ids, clicked, logged, target, g, k=k, pairs=pairs
        ),
    }
    if predicted_attractiveness is not None and logging_propensity is not None:
        ahat, propensity = predicted_attractiveness, logging_propensity
        estimators[CLICKS_IIDR] = lambda g, target, k: independent_item_dr_terms(
            clicked, logged, target, g, ahat, propensity, k=k
        )
        if config.include_direct_method:
            estimators[CLICKS_DM] = lambda g, target, k: direct_method_terms(target, g, ahat, k=k)

    # Support: queries with an item whose rank differs between the arms, inside either arm's top k.
    differing = {
        k: int(impressions.loc[((ranks["control"] <= k) | (ranks["candidate"] <= k))
                               & (ranks["control"] != ranks["candidate"]), "query_id"].nunique())
        for k in cutoffs
    }  # fmt: skip
    gates: list[GateResult] = [curve_gate]
    gates_by_source: dict[str, list[GateResult]] = {}
    for label_source, terms in estimators.items():
        own: list[GateResult] = [curve_gate]
        by_k: dict[str, dict[int, float]] = {arm: {} for arm in ARMS}
        intervals: dict[int, tuple[float, float]] = {}
        for k in cutoffs:
            values = {arm: per_query_means(terms(gamma, ranks[arm], k), aggregation) for arm in ARMS}
            replicates = (
                {arm: _chunked(terms, curves, ranks[arm], k, aggregation) for arm in ARMS}
                if curves is not None
                else None
            )
            estimate = summaries.add(label_source, k, values, replicates)
            intervals[k] = (estimate.ci_low, estimate.ci_high)
            for arm in ARMS:
                by_k[arm][k] = float(values[arm].mean())
            # A/A: the candidate replaced by the control's ranks, through the same code path.
            same = per_query_means(terms(gamma, ranks["control"].copy(), k), aggregation)
            aa = paired_bootstrap_with_curves(values["control"], same, n_resamples=bootstrap.n_resamples,
                                              confidence_level=bootstrap.confidence_level, seed=bootstrap.seed)  # fmt: skip
            own.append(aa_gate(f"{label_source}@{k}", aa.delta, aa.ci_low, aa.ci_high))
            own.append(support_gate(f"{label_source}@{k}", differing[k], min_queries=config.min_differing_queries))
        own.append(monotone_in_k_gate(label_source, by_k))
        own.append(range_gate(label_source, by_k, intervals))
        if label_source == CLICKS_PBM_SN:
            normaliser = _expected_weight_normaliser(query_ids, item_ids, logged, gamma)
            own.append(self_normalisation_gate(label_source, normaliser, tolerance=config.normalisation_tolerance))
        gates_by_source[label_source] = own
        gates.extend(own[1:])
    return ClickReplay(summaries.finish(gates_by_source, [curve_gate]), summaries.per_query_frame(), gates)
