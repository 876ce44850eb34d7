"""The click model of the independent-item doubly robust estimator, and its features.

The direct method of `smar.replay.estimators.independent_item_dr_terms` needs ahat, a predicted
attractiveness per impression, from a model fitted *outside* the replay scope (the other query
splits of the window), so that the scope's own clicks enter only through the correction term:

* `fit_attractiveness_model`: P(click) = gamma_p * sigmoid(x . beta + b0), maximum likelihood with
  gamma from the exploration curve (`smar.propensities`);
* `attractiveness_features`: per impression, features that do not depend on the logged position:
  modality one-hot, the item's rank by production_score inside its modality on the page scaled to
  (0, 1], the user's affinity for the item's modality (bronze.users dense_features[0:4], the
  generator's layout; 0.25 when absent), and the item's smoothed historical CTR
  log((clicks + 1) / (impressions + 10)) (bronze.items).

The logging propensities of the correction term come from `smar.replay.click_inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize

from smar.replay.oracle_clicks import user_affinity_by_modality
from smar.vocabulary import MODALITIES


@dataclass(frozen=True)
class AttractivenessModel:
    """P(attractive | x) = sigmoid(x . coef + intercept), fitted with P(click) = gamma_p * that."""

    coef: NDArray[np.float64]
    intercept: float
    feature_names: tuple[str, ...]
    n_rows: int
    converged: bool

    def predict(self, features: ArrayLike) -> NDArray[np.float64]:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.coef):
            raise ValueError(f"features must be [n, {len(self.coef)}] ({', '.join(self.feature_names)})")
        return 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))


def fit_attractiveness_model(
    features: ArrayLike,
    clicked: ArrayLike,
    logged_examination: ArrayLike,
    *,
    feature_names: tuple[str, ...] | None = None,
    l2: float = 1e-3,
) -> AttractivenessModel:
    """Maximum likelihood of c ~ Bernoulli(gamma_p * sigmoid(x beta + b0)) with a small L2 penalty on beta.

    Negative log-likelihood per row: -(c log(g s) + (1 - c) log(1 - g s)), s = sigmoid(z);
    gradient in z: s (1 - s) (g (1 - c) / (1 - g s) - c / s). Fitted by L-BFGS on impressions
    outside the replay scope (other queries), with gamma from the exploration curve.
    """
    x = np.asarray(features, dtype=np.float64)
    c = np.asarray(clicked, dtype=np.float64)
    g = np.asarray(logged_examination, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(c) or len(c) != len(g) or len(c) == 0:
        raise ValueError("features [n, d], clicked [n] and logged_examination [n] must align and be non-empty")
    if not np.isfinite(x).all():
        raise ValueError("features must be finite")
    names = feature_names or tuple(f"x{index}" for index in range(x.shape[1]))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z_x = (x - mean) / scale

    def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        z = z_x @ theta[1:] + theta[0]
        s = np.clip(1.0 / (1.0 + np.exp(-z)), 1e-12, 1 - 1e-12)
        p = np.clip(g * s, 1e-12, 1 - 1e-12)
        loss = -np.sum(c * np.log(p) + (1 - c) * np.log(1 - p)) / len(c) + l2 * np.sum(theta[1:] ** 2)
        dz = s * (1 - s) * (g * (1 - c) / (1 - p) - c / s) / len(c)
        gradient = np.concatenate([[dz.sum()], z_x.T @ dz + 2 * l2 * theta[1:]])
        return float(loss), gradient

    result = optimize.minimize(objective, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                               options={"maxiter": 500})  # fmt: skip
    coef = result.x[1:] / scale
    intercept = float(result.x[0] - np.dot(coef, mean))
    return AttractivenessModel(coef, intercept, tuple(names), len(c), bool(result.success))


FEATURE_NAMES: tuple[str, ...] = (
    *(f"is_{name}" for name in MODALITIES), "modality_rank_scaled", "user_modality_affinity", "log_item_ctr",
)  # fmt: skip


def attractiveness_features(impressions: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    """[rows, len(FEATURE_NAMES)] features of `impressions` (ds, request_id, user_id, item_id, modality, production_score)."""
    frame = impressions[["ds", "request_id", "user_id", "item_id", "modality", "production_score"]].copy()
    frame["_row"] = np.arange(len(frame))
    rank = frame.groupby(["ds", "request_id", "modality"])["production_score"].rank(ascending=False, method="first")
    size = frame.groupby(["ds", "request_id", "modality"])["production_score"].transform("size")
    frame["modality_rank_scaled"] = rank / size
    affinity = user_affinity_by_modality(users).drop_duplicates(["ds", "user_id", "modality"])
    frame = frame.merge(affinity, on=["ds", "user_id", "modality"], how="left")
    counters = items.drop_duplicates(["ds", "item_id"])[["ds", "item_id", "impression_count", "click_count"]]
    frame = frame.merge(counters, on=["ds", "item_id"], how="left")
    frame["log_item_ctr"] = np.log(
        (frame["click_count"].fillna(0) + 1.0) / (frame["impression_count"].fillna(0) + 10.0)
    )
    frame["user_modality_affinity"] = frame["affinity"].fillna(0.25)
    frame = frame.sort_values("_row")
    one_hot = np.column_stack([(frame["modality"] == name).to_numpy(float) for name in MODALITIES])
    rest = frame[["modality_rank_scaled", "user_modality_affinity", "log_item_ctr"]].to_numpy(float)
    return np.column_stack([one_hot, rest])
