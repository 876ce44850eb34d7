"""Training and batch scoring of the single-modal rankers from click logs.

Loss: pairwise hinge with margin 1, as for the paper's single-modal rankers,
    L = mean over pairs (i preferred to j) of max(0, 1 - (g(i) - g(j))),
on pairs inside one (request, modality): only items shown together on one page are compared,
so position and page effects shared by both sides cancel.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from smar.single_modal.rankers.device import select_device
from smar.single_modal.rankers.encoder import autocast_on_cuda
from smar.single_modal.rankers.features import ENGAGEMENT, modality_kind
from smar.single_modal.rankers.models import RankerConfig, SingleModalRanker, build_ranker, default_config

logger = logging.getLogger(__name__)

#: Dwell (seconds) from which a click counts as a satisfied, "long" click.
DEFAULT_LONG_DWELL_SECONDS = 30.0
#: The largest inverse-propensity weight of a pair (`inverse_propensity_weights`).
DEFAULT_PROPENSITY_CLIP = 10.0


class ValidationData(NamedTuple):
    """Held-out rows of one modality: features, their group (request) ids and graded labels."""

    features: Mapping[str, NDArray[np.float32]]
    group_ids: ArrayLike
    grades: ArrayLike


def preference_labels(
    frame: pd.DataFrame, *, long_dwell_seconds: float = DEFAULT_LONG_DWELL_SECONDS
) -> NDArray[np.float64]:
    """Preference value of each impression from `clicked` and `dwell_seconds`:

        not clicked: 0
        clicked:     1 + [dwell >= long_dwell_seconds] + dwell / (dwell + long_dwell_seconds)

    so a long click (in [2.5, 3)) > a short click (in [1, 1.5)) > no click, and among clicks of
    one tier a longer dwell wins. A click with null dwell counts as dwell 0; the dwell of a row
    that was not clicked is ignored.
    """
    if long_dwell_seconds <= 0:
        raise ValueError(f"long_dwell_seconds must be > 0, got {long_dwell_seconds}")
    clicked = frame["clicked"].to_numpy(dtype=np.float64, na_value=np.nan)
    not_binary = ~np.isin(clicked, (0.0, 1.0))  # NaN (a null click) is refused too
    if not_binary.any():
        row = int(np.flatnonzero(not_binary)[0])
        raise ValueError(f"row {row}: column 'clicked' must be 0 or 1, got {clicked[row]}")
    dwell = frame["dwell_seconds"].to_numpy(dtype=np.float64, na_value=np.nan)
    dwell = np.where(np.isnan(dwell), 0.0, dwell)
    if (dwell < 0).any():
        row = int(np.flatnonzero(dwell < 0)[0])
        raise ValueError(f"row {row}: column 'dwell_seconds' is negative ({dwell[row]})")
    long_click = (dwell >= long_dwell_seconds).astype(np.float64)
    click_value = 1.0 + long_click + dwell / (dwell + long_dwell_seconds)
    return np.where(clicked == 1.0, click_value, 0.0)


def make_pairs(
    group_ids: ArrayLike,
    labels: ArrayLike,
    max_pairs_per_group: int | None,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """[P, 2] row indices (preferred, other) with labels[preferred] > labels[other] and both rows
    in one group. Groups with more pairs than `max_pairs_per_group` keep a uniform sample of that
    many (drawn with `rng`); None keeps all. Equal labels make no pair."""
    groups = np.asarray(group_ids)
    values = np.asarray(labels, dtype=np.float64)
    if groups.shape != values.shape or values.ndim != 1:
        raise ValueError(f"group_ids {groups.shape} and labels {values.shape} must be equal 1-d")
    if max_pairs_per_group is not None and max_pairs_per_group < 1:
        raise ValueError(f"max_pairs_per_group must be >= 1 or None, got {max_pairs_per_group}")
    if len(values) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    _, group_codes = np.unique(groups, return_inverse=True)
    order = np.argsort(group_codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(group_codes[order])) + 1
    chunks: list[NDArray[np.int64]] = []
    for members in np.split(order, boundaries):
        member_labels = values[members]
        preferred, other = np.nonzero(member_labels[:, None] > member_labels[None, :])
        if len(preferred) == 0:
            continue
        pairs = np.stack([members[preferred], members[other]], axis=1)
        if max_pairs_per_group is not None and len(pairs) > max_pairs_per_group:
            keep = rng.choice(len(pairs), size=max_pairs_per_group, replace=False)
            pairs = pairs[np.sort(keep)]
        chunks.append(pairs)
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(chunks).astype(np.int64)


def pairwise_hinge_loss(
    preferred_scores: Tensor, other_scores: Tensor, *, margin: float = 1.0, weights: Tensor | None = None
) -> Tensor:
    """mean(max(0, margin - (preferred - other))) over pairs; both inputs are [P]. With `weights`
    [P], the weighted mean sum(w * hinge) / sum(w)."""
    hinge = torch.clamp(margin - (preferred_scores - other_scores), min=0.0)
    if weights is None:
        return hinge.mean()
    return (weights * hinge).sum() / weights.sum().clamp_min(1e-12)


def inverse_propensity_weights(
    positions: ArrayLike, examination: ArrayLike, *, clip: float = DEFAULT_PROPENSITY_CLIP
) -> NDArray[np.float64]:
    """1 / P(examined | position) per row, capped at `clip`: the weight of a pair whose preferred
    item was clicked at that position (Joachims, Swaminathan and Schnabel 2017, propensity-weighted
    ranking SVM). Under the position-based model a click at a rarely examined position stands for
    many unseen ones; without the weight, pairs teach the production order (clicks pile up on the
    top slots whatever the item). `examination[r - 1]` is gamma_r (smar.propensities);
    positions past its end take its last value. The cap bounds the variance of the deep slots."""
    gamma = np.asarray(examination, dtype=np.float64)
    rows = np.asarray(positions, dtype=np.int64)
    if gamma.ndim != 1 or len(gamma) == 0 or (gamma <= 0).any():
        raise ValueError("examination must be a non-empty 1-d array of positive probabilities")
    if (rows < 1).any():
        raise ValueError("positions are 1-based")
    if clip < 1:
        raise ValueError(f"clip must be >= 1, got {clip}")
    return np.minimum(1.0 / gamma[np.minimum(rows, len(gamma)) - 1], clip)


def _ndcg_at_k(scores: ArrayLike, grades: ArrayLike, group_ids: ArrayLike, *, k: int) -> float:
    """Mean NDCG@k over groups, computed by the project's metrics module (`smar.metrics.ndcg_at`):
    gain = grade (linear), discount 1 / log2(rank + 1); ties in score keep input order; groups
    whose ideal DCG is 0 are left out of the mean; NaN if no group is left."""
    from smar.metrics import ndcg_at

    score_values = np.asarray(scores, dtype=np.float64)
    grade_values = np.asarray(grades, dtype=np.float64)
    groups = np.asarray(group_ids)
    if not score_values.shape == grade_values.shape == groups.shape:
        raise ValueError("scores, grades and group_ids must have the same length")
    if len(score_values) == 0:
        return math.nan
    _, group_codes = np.unique(groups, return_inverse=True)
    order = np.argsort(group_codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(group_codes[order])) + 1
    per_group = [
        ndcg_at(grade_values[members], score_values[members], k=k, gain="linear", ties="input_order", empty=None)
        for members in np.split(order, boundaries)
    ]
    kept = [value for value in per_group if not math.isnan(value)]
    return float(np.mean(kept)) if kept else math.nan


def ndcg_at_10_within_groups(scores: ArrayLike, grades: ArrayLike, group_ids: ArrayLike) -> float:
    """Mean NDCG@10 over groups (e.g. requests of one modality); conventions of `_ndcg_at_k`."""
    return _ndcg_at_k(scores, grades, group_ids, k=10)


def _to_tensors(features: Mapping[str, ArrayLike], keys: tuple[str, ...]) -> dict[str, Tensor]:
    """float32 CPU tensors of the needed feature arrays, checked for one common row count."""
    missing = [key for key in keys if key not in features]
    if missing:
        raise KeyError(f"features lack {missing}; this ranker reads {list(keys)}")
    tensors = {key: torch.as_tensor(np.asarray(features[key], dtype=np.float32)) for key in keys}
    rows = {key: tensor.shape[0] for key, tensor in tensors.items()}
    if len(set(rows.values())) != 1:
        raise ValueError(f"feature arrays have different row counts: {rows}")
    return tensors


def _row_count(tensors: dict[str, Tensor]) -> int:
    return next(iter(tensors.values())).shape[0]


def score_frame(
    model: SingleModalRanker,
    features: Mapping[str, ArrayLike],
    batch_size: int = 4096,
    device: str | torch.device | None = None,
) -> NDArray[np.float32]:
    """Scores [N] float32 of all rows, in `batch_size` chunks of rows (independent of any Arrow
    batch size), in eval mode without gradients, with AMP on CUDA. The model is moved to
    `device` (None: `select_device("auto")`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    resolved = select_device("auto" if device is None else device)
    tensors = _to_tensors(features, model.config.feature_keys)
    model = model.to(resolved).eval()
    outputs: list[Tensor] = []
    with torch.inference_mode(), autocast_on_cuda(resolved):
        for start in range(0, _row_count(tensors), batch_size):
            batch = {
                key: tensor[start : start + batch_size].to(resolved, non_blocking=True)
                for key, tensor in tensors.items()
            }
            outputs.append(model(batch).float().cpu())
    if not outputs:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(outputs).numpy().astype(np.float32)


def train_ranker(
    modality: str,
    features: Mapping[str, ArrayLike],
    request_ids: ArrayLike,
    labels: ArrayLike,
    *,
    config: RankerConfig | None = None,
    seed: int = 0,
    epochs: int = 10,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    validation: ValidationData | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    max_pairs_per_group: int | None = 64,
    margin: float = 1.0,
    row_weights: ArrayLike | None = None,
) -> tuple[SingleModalRanker, list[dict[str, Any]]]:
    """Train one modality's ranker with the pairwise hinge loss on pairs inside each request.

    `features` holds one modality's rows; `labels` are preference values (`preference_labels`).
    `batch_size` counts pairs. Pairs are re-sampled every epoch (up to `max_pairs_per_group` per
    request). With `validation`, NDCG@10 is logged per epoch and the best epoch's weights are
    returned. `row_weights` [N] (e.g. `inverse_propensity_weights`) weighs each pair by the
    weight of its preferred row. Deterministic for a given seed on CPU. Training stays in float32
    (the head is small; AMP would only add loss scaling). Returns (model in eval mode on `device`, history: one dict
    per epoch with epoch, pairs, train_loss and, with validation, validation_ndcg_at_10).
    """
    kind = modality_kind(modality)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    resolved = select_device("auto" if device is None else device)
    if config is None:
        visual_dim = None
        if kind == "visual":
            visual_dim = int(np.asarray(features["visual_embedding"]).shape[1])
        config = default_config(modality, visual_dim=visual_dim)
    tensors = _to_tensors(features, config.feature_keys)
    label_values = np.asarray(labels, dtype=np.float64)
    groups = np.asarray(request_ids)
    if not len(label_values) == len(groups) == _row_count(tensors):
        raise ValueError(
            f"rows differ: features {_row_count(tensors)}, request_ids {len(groups)}, labels {len(label_values)}"
        )

    weights = None
    if row_weights is not None:
        weight_values = np.asarray(row_weights, dtype=np.float32)
        if weight_values.shape != label_values.shape or not (np.isfinite(weight_values) & (weight_values > 0)).all():
            raise ValueError("row_weights must be one positive finite weight per row")
        weights = torch.as_tensor(weight_values)

    torch.manual_seed(seed)
    pair_rng = np.random.default_rng(seed)
    shuffle_generator = torch.Generator().manual_seed(seed)
    model = build_ranker(modality, config)
    model.set_engagement_standardization(tensors[ENGAGEMENT])
    model = model.to(resolved)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)

    history: list[dict[str, Any]] = []
    best_ndcg = -math.inf
    best_state: dict[str, Tensor] | None = None
    for epoch in range(1, epochs + 1):
        pairs = make_pairs(groups, label_values, max_pairs_per_group, pair_rng)
        if len(pairs) == 0:
            raise ValueError(f"no training pairs for modality {modality!r}: every request has equal labels")
        pairs_tensor = torch.as_tensor(pairs)
        permutation = torch.randperm(len(pairs), generator=shuffle_generator)
        model.train()
        loss_sum = 0.0
        for start in range(0, len(pairs), batch_size):
            batch_pairs = pairs_tensor[permutation[start : start + batch_size]]
            # One forward over preferred and other rows together: [2P] -> split into two [P].
            rows = torch.cat([batch_pairs[:, 0], batch_pairs[:, 1]])
            batch = {key: tensor[rows].to(resolved) for key, tensor in tensors.items()}
            scores = model(batch)
            preferred_scores, other_scores = scores.split(len(batch_pairs))
            pair_weights = None if weights is None else weights[batch_pairs[:, 0]].to(resolved)
            loss = pairwise_hinge_loss(preferred_scores, other_scores, margin=margin, weights=pair_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(batch_pairs)
        record: dict[str, Any] = {
            "epoch": epoch,
            "pairs": len(pairs),
            "train_loss": loss_sum / len(pairs),
        }
        if validation is not None:
            validation_scores = score_frame(model, validation.features, device=resolved)
            ndcg = ndcg_at_10_within_groups(validation_scores, validation.grades, validation.group_ids)
            record["validation_ndcg_at_10"] = ndcg
            if not math.isnan(ndcg) and ndcg > best_ndcg:
                best_ndcg = ndcg
                best_state = copy.deepcopy(model.state_dict())
        history.append(record)
        logger.info("train_ranker %s %s", modality, record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history
