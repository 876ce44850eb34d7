"""The calibrated merge: a whole-page scorer that is monotone in each modality's single-modal
score by construction, so every single-modal order is kept exactly and the page labels only
have to teach the cross-modal calibration (where each modality's k-th item belongs), conditioned
on the query and the page.

Shapes: a batch is `[pages, items]` (`PageBatch`); K = `N_BASIS` monotone basis functions.

Per item i of modality m on page p, a basis of K transforms of the single-modal score s_i, each
non-decreasing in s_i among the items of (p, m) (the other items of the page are fixed):

    t_i = [ z_i,                           global per-modality standardised raw score
            relu(z_i - kappa_m1), ...,      hinge ramps at the per-modality quartiles kappa_m
            zpage_i,                        z-score within (page, modality)
            pct_i,                          percentile within (page, modality), in [0, 1]
            -log(rank_i) ]                  rank within (page, modality), 1 = best   -> [pages, items, K]

A page context c_p (query embedding, user features, and per-modality summaries of the page's
single-modal scores: mean, max and count of z per modality) goes through a small MLP:

    h_p = MLP([W_q q_p, W_u u_p, stats_p])                      -> [pages, D]
    a_pm  = A_m + (V_a h_p)_m                                   -> [pages, M]      intercepts
    w_pmk = softplus(B_mk + (V_w h_p)_mk) + eps_k               -> [pages, M, K]   slopes >= 0

and the score is

    f_i = a_{p, m_i} + sum_k w_{p, m_i, k} * t_ik,

a non-negative combination of non-decreasing transforms plus a per-(page, modality) constant:
f is non-decreasing in s within every (page, modality), and strictly increasing along the
single-modal rank because eps > 0 on the -log(rank) term (ties in s are broken by rank, as the
single-modal order does). Nothing item-level other than s enters, so no label can reorder a
modality's own list.

Initialisation: A = 0, V = 0 and B such that w = 1 on z and ~0 elsewhere, i.e. the model starts
as the z-score fusion; weight decay pulls the context-dependent parts back towards it, which is
the prior that a few labels only correct.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pydantic import model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from smar.config import FrozenConfig
from smar.reranker.dataset import PageBatch
from smar.reranker.model import PageReranker, RerankerConfig
from smar.reranker.store import NUMERIC_FEATURE_NAMES, PageStore
from smar.vocabulary import MODALITIES

SCORE_COLUMN = NUMERIC_FEATURE_NAMES.index("single_modal_score")
PERCENTILE_COLUMN = NUMERIC_FEATURE_NAMES.index("score_percentile_in_modality")
ZSCORE_COLUMN = NUMERIC_FEATURE_NAMES.index("score_zscore_in_modality")
RECIPROCAL_RANK_COLUMN = NUMERIC_FEATURE_NAMES.index("reciprocal_rank_in_modality")
N_KNOTS = 3
#: z, N_KNOTS ramps, page z-score, percentile, -log(rank) (plus `rank_steps` indicators)
N_BASIS = 1 + N_KNOTS + 3
#: smallest slope of -log(rank), the last basis function (the others may reach 0)
MIN_RANK_SLOPE = 1e-3
N_PAGE_STATS = 3  # per modality: mean z, max z, item count / 10
N_COSINE_STATS = 2  # per modality: mean and max query-item cosine (page_stats="cosine" on)
COSINE_COLUMN = NUMERIC_FEATURE_NAMES.index("query_item_cosine")


class CalibratedMergeConfig(FrozenConfig):
    """Architecture of `CalibratedMerge`; stored in the artifact's `config.json` (under "model").
    `modalities` records what the modality ids mean (loading refuses another order)."""

    numeric_dim: int
    text_dim: int
    user_dim: int
    visual_dim: int = 0  # unused (kept so an artifact records the store's widths)
    n_modalities: int = 4
    context_dim: int = 32
    dropout: float = 0.1
    use_query: bool = True
    use_user: bool = True
    use_page_stats: bool = True
    use_cosine_stats: bool = False
    #: extra basis functions [rank <= r] for r = 1..rank_steps: with non-negative weights, a
    #: free non-increasing step function of the single-modal rank
    rank_steps: int = 0
    modalities: tuple[str, ...] = MODALITIES

    @model_validator(mode="after")
    def _check(self) -> CalibratedMergeConfig:
        if self.numeric_dim != len(NUMERIC_FEATURE_NAMES):
            raise ValueError(f"numeric_dim {self.numeric_dim} != {len(NUMERIC_FEATURE_NAMES)} features")
        if min(self.context_dim, self.n_modalities) < 1 or min(self.text_dim, self.user_dim, self.rank_steps) < 0:
            raise ValueError(f"impossible widths: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(self.modalities) != self.n_modalities:
            raise ValueError(f"n_modalities {self.n_modalities} != len(modalities) {len(self.modalities)}")
        return self

    @property
    def n_basis(self) -> int:
        return N_BASIS + self.rank_steps

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CalibratedMergeConfig:
        return cls.model_validate(values)

    @classmethod
    def for_store(cls, store: PageStore, **overrides: Any) -> CalibratedMergeConfig:
        """A config whose input widths fit `store`."""
        return cls(
            numeric_dim=store.numeric.shape[1],
            text_dim=store.text_dim,
            user_dim=store.user_dim,
            visual_dim=store.visual_dim,
            **overrides,
        )


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class CalibratedMerge(nn.Module):
    """f(u, q, i) = a(context, m_i) + sum_k w_k(context, m_i) * t_k(s_i); see the module docstring."""

    def __init__(self, config: CalibratedMergeConfig) -> None:
        super().__init__()
        self.config = config
        modalities, dim = config.n_modalities, config.context_dim
        self.query_projection = nn.Linear(config.text_dim, dim) if config.text_dim and config.use_query else None
        self.user_projection = nn.Linear(config.user_dim, dim) if config.user_dim and config.use_user else None
        stats_width = (modalities * N_PAGE_STATS if config.use_page_stats else 0) + (
            modalities * N_COSINE_STATS if config.use_cosine_stats else 0
        )
        self.stats_projection = nn.Linear(stats_width, dim) if stats_width else None
        self.context = nn.Sequential(nn.GELU(), nn.Dropout(config.dropout), nn.Linear(dim, dim), nn.GELU())
        self.intercept_head = nn.Linear(dim, modalities)
        self.slope_head = nn.Linear(dim, modalities * config.n_basis)
        nn.init.zeros_(self.intercept_head.weight)
        nn.init.zeros_(self.intercept_head.bias)
        nn.init.zeros_(self.slope_head.weight)
        nn.init.zeros_(self.slope_head.bias)
        self.intercept = nn.Parameter(torch.zeros(modalities))
        base = torch.full((modalities, config.n_basis), _inverse_softplus(1e-2))
        base[:, 0] = _inverse_softplus(1.0)
        self.slope_base = nn.Parameter(base)
        min_slope = torch.zeros(config.n_basis)
        min_slope[-1] = MIN_RANK_SLOPE
        self.min_slope: Tensor
        self.score_mean: Tensor
        self.score_std: Tensor
        self.knots: Tensor
        self.register_buffer("min_slope", min_slope)
        self.register_buffer("score_mean", torch.zeros(modalities))
        self.register_buffer("score_std", torch.ones(modalities))
        self.register_buffer("knots", torch.zeros(modalities, N_KNOTS))

    @torch.no_grad()
    def fit_standardization(self, store: PageStore) -> None:
        """Per-modality mean, std and quartile knots of the raw single-modal score over `store`."""
        for modality in range(self.config.n_modalities):
            values = store.single_modal_score[store.modality_id == modality].astype(np.float64)
            if len(values) == 0:
                continue
            std = float(values.std())
            self.score_mean[modality] = float(values.mean())
            self.score_std[modality] = std if std > 1e-6 else 1.0
            standardised = (values - values.mean()) / (std if std > 1e-6 else 1.0)
            self.knots[modality] = torch.from_numpy(
                np.quantile(standardised, np.linspace(0, 1, N_KNOTS + 2)[1:-1]).astype(np.float32)
            )

    def basis(self, batch: PageBatch) -> Tensor:
        """The monotone transforms t `[pages, items, K]` (0 on padding)."""
        modality = batch.modality_id.clamp(0, self.config.n_modalities - 1)
        z = (batch.single_modal_score - self.score_mean[modality]) / self.score_std[modality]
        ramps = F.relu(z[..., None] - self.knots[modality])
        page_z = batch.numeric[..., ZSCORE_COLUMN]
        percentile = batch.numeric[..., PERCENTILE_COLUMN]
        reciprocal = batch.numeric[..., RECIPROCAL_RANK_COLUMN].clamp(min=1e-6)
        log_rank = torch.log(reciprocal)  # = -log(rank)
        parts = [z[..., None], ramps, page_z[..., None], percentile[..., None]]
        if self.config.rank_steps:
            rank = torch.round(1.0 / reciprocal)
            steps = torch.arange(1, self.config.rank_steps + 1, device=rank.device, dtype=rank.dtype)
            parts.append((rank[..., None] <= steps).to(z.dtype))
        basis = torch.cat([*parts, log_rank[..., None]], dim=-1)
        return basis.masked_fill(~batch.item_mask[..., None], 0.0)

    def page_stats(self, batch: PageBatch, basis: Tensor) -> Tensor:
        """Per page and modality: mean z, max z and item count / 10 (`use_page_stats`), then mean
        and max query-item cosine (`use_cosine_stats`), flattened `[pages, M * (3 + 2)]`."""
        modality = batch.modality_id.clamp(0, self.config.n_modalities - 1)
        one_hot = F.one_hot(modality, self.config.n_modalities).to(basis.dtype) * batch.item_mask[..., None]
        z = basis[..., 0]
        count = one_hot.sum(1)  # [pages, M]
        mean = (one_hot * z[..., None]).sum(1) / count.clamp(min=1)
        very_negative = torch.finfo(z.dtype).min / 4
        maximum = torch.where(one_hot.bool(), z[..., None], torch.full_like(one_hot, very_negative)).amax(1)
        maximum = torch.where(count > 0, maximum, torch.zeros_like(maximum))
        parts = [mean, maximum, count / 10.0] if self.config.use_page_stats else []
        if self.config.use_cosine_stats:
            cosine = batch.numeric[..., COSINE_COLUMN]
            cosine_mean = (one_hot * cosine[..., None]).sum(1) / count.clamp(min=1)
            cosine_max = torch.where(one_hot.bool(), cosine[..., None], torch.full_like(one_hot, very_negative)).amax(1)
            parts += [cosine_mean, torch.where(count > 0, cosine_max, torch.zeros_like(cosine_max))]
        return torch.cat(parts, dim=-1)

    def calibration(self, batch: PageBatch, basis: Tensor) -> tuple[Tensor, Tensor]:
        """(intercepts a `[pages, M]`, slopes w `[pages, M, K]`) of each page's context."""
        pages = batch.modality_id.shape[0]
        hidden = basis.new_zeros((pages, self.config.context_dim))
        if self.query_projection is not None:
            hidden = hidden + self.query_projection(batch.query_embedding)
        if self.user_projection is not None:
            hidden = hidden + self.user_projection(batch.user_features)
        if self.stats_projection is not None:
            hidden = hidden + self.stats_projection(self.page_stats(batch, basis))
        hidden = self.context(hidden)
        intercepts = self.intercept + self.intercept_head(hidden)
        raw = self.slope_base + self.slope_head(hidden).view(pages, self.config.n_modalities, self.config.n_basis)
        return intercepts, F.softplus(raw) + self.min_slope

    def forward(self, batch: PageBatch) -> Tensor:
        """Scores `[pages, items]`; padded positions are 0."""
        basis = self.basis(batch)
        intercepts, slopes = self.calibration(batch, basis)
        modality = batch.modality_id.clamp(0, self.config.n_modalities - 1)
        item_slopes = slopes.gather(1, modality[..., None].expand(-1, -1, self.config.n_basis))  # [pages, items, K]
        scores = intercepts.gather(1, modality) + (item_slopes * basis).sum(-1)
        return scores.masked_fill(~batch.item_mask, 0.0)


class ResidualMergeConfig(FrozenConfig):
    """`ResidualMerge`: a calibrated merge plus a free-form `PageReranker` residual scaled by
    `residual_scale`. Stored under "model" as {"merge": ..., "residual": ..., "residual_scale"}."""

    merge: CalibratedMergeConfig
    residual: RerankerConfig
    residual_scale: float = 1.0

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.merge.modalities

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ResidualMergeConfig:
        return cls.model_validate(values)


class ResidualMerge(nn.Module):
    """f_i = merge_i + residual_scale * r_i, shapes `[pages, items]`: the calibrated merge carries
    the page; the residual r (a `PageReranker` over every item feature) may correct it where the
    labels ask, and the intra-modal consistency term of the SMAR loss is what keeps r from
    reordering a modality's own list without evidence. Exactly order-keeping only when r = 0."""

    def __init__(self, config: ResidualMergeConfig) -> None:
        super().__init__()
        self.config = config
        self.merge = CalibratedMerge(config.merge)
        self.residual = PageReranker(config.residual)

    @torch.no_grad()
    def fit_standardization(self, store: PageStore) -> None:
        self.merge.fit_standardization(store)
        self.residual.fit_standardization(store)

    def forward(self, batch: PageBatch) -> Tensor:
        """Scores `[pages, items]`; padded positions are 0."""
        return self.merge(batch) + self.config.residual_scale * self.residual(batch)
