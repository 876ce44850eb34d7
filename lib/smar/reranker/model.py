"""The whole-page reranker f(u, q, i): a list-aware scorer over all candidates of one page.

Shapes: a batch holds `pages` pages padded to `items` candidates (`PageBatch`).

    per item  x_i = [ modality embedding (E)                      ]
                    [ standardised numeric features (F)             ]
                    [ W_text  * item text embedding (T -> D)        ]
                    [ W_vis   * visual embedding (V -> D)           ]
                    [ W_query * query embedding (T -> D), per page  ]
                    [ W_user  * user features (U -> D), per page    ]   -> [pages, items, E+F+4D]
    h_i = MLP(x_i)                                                     -> [pages, items, D]
    c = TransformerEncoder(h, key_padding_mask = ~item_mask)           -> [pages, items, D]
    f_i = head([h_i, c_i])                                             -> [pages, items]

Self-attention lets an item's score depend on the rest of the page (which modalities are
present, how strong the other candidates are), which a pointwise scorer cannot express. Padded
items are masked out of the attention, and their scores are set to 0 (the losses and metrics
ignore them through the masks).

Numeric features are standardised per modality with statistics of the training pages
(`fit_standardization`), stored as buffers so an artifact scores new pages identically: raw
single-modal scores live on very different scales per modality (BM25-like, probabilities,
logits, 0-100 confidences).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from pydantic import model_validator
from torch import Tensor, nn

from smar.config import FrozenConfig
from smar.reranker.dataset import PageBatch
from smar.reranker.store import PageStore
from smar.vocabulary import MODALITIES


class RerankerConfig(FrozenConfig):
    """Architecture of `PageReranker`; stored as the artifact's `config.json` (under "model").

    `modalities` records the modality ids' meaning (index in this tuple): an artifact trained with
    another order cannot be read correctly, and loading refuses it."""

    numeric_dim: int
    text_dim: int
    visual_dim: int
    user_dim: int
    n_modalities: int = 4
    modality_embedding_dim: int = 16
    model_dim: int = 64
    attention_heads: int = 4
    attention_layers: int = 2
    feedforward_dim: int = 128
    dropout: float = 0.1
    self_attention: bool = True
    #: std of Gaussian noise added to the standardised numeric features in training mode (the
    #: ICLR 2021 recipe for neural rankers on tabular features; 0 = off)
    input_noise: float = 0.0
    modalities: tuple[str, ...] = MODALITIES

    @model_validator(mode="after")
    def _check(self) -> RerankerConfig:
        if min(self.numeric_dim, self.n_modalities, self.model_dim) < 1:
            raise ValueError(f"numeric_dim, n_modalities and model_dim must be >= 1: {self}")
        if min(self.text_dim, self.visual_dim, self.user_dim) < 0:
            raise ValueError(f"dimensions must be >= 0: {self}")
        if self.model_dim % self.attention_heads:
            raise ValueError(f"model_dim {self.model_dim} must be divisible by attention_heads {self.attention_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(self.modalities) != self.n_modalities:
            raise ValueError(f"n_modalities {self.n_modalities} != len(modalities) {len(self.modalities)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RerankerConfig:
        return cls.model_validate(values)

    @classmethod
    def for_store(cls, store: PageStore, **overrides: Any) -> RerankerConfig:
        """A config whose input widths fit `store`."""
        return cls(
            numeric_dim=store.numeric.shape[1],
            text_dim=store.text_dim,
            visual_dim=store.visual_dim,
            user_dim=store.user_dim,
            **overrides,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


class _OptionalProjection(nn.Module):
    """Linear projection of a `[..., in]` input to `[..., out]`; zeros when `in` is 0."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.linear = nn.Linear(in_features, out_features) if in_features > 0 else None

    def forward(self, values: Tensor) -> Tensor:
        if self.linear is None:
            return values.new_zeros((*values.shape[:-1], self.out_features))
        return self.linear(values)


class PageReranker(nn.Module):
    """f(u, q, i) over one page's candidates; see the module docstring for the architecture."""

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.model_dim
        self.modality_embedding = nn.Embedding(config.n_modalities, config.modality_embedding_dim)
        self.text_projection = _OptionalProjection(config.text_dim, dim)
        self.visual_projection = _OptionalProjection(config.visual_dim, dim)
        self.query_projection = _OptionalProjection(config.text_dim, dim)
        self.user_projection = _OptionalProjection(config.user_dim, dim)
        input_width = config.modality_embedding_dim + config.numeric_dim + 4 * dim
        self.item_encoder = nn.Sequential(
            nn.Linear(input_width, dim), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(dim, dim)
        )
        if config.self_attention:
            layer = nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=config.attention_heads,
                dim_feedforward=config.feedforward_dim,
                dropout=config.dropout,
                batch_first=True,
                norm_first=True,
            )
            # enable_nested_tensor=False: the nested-tensor fast path is inference-only and
            # gives slightly different numbers than training; keep one code path.
            self.page_encoder: nn.Module | None = nn.TransformerEncoder(
                layer, num_layers=config.attention_layers, enable_nested_tensor=False
            )
        else:
            self.page_encoder = None
        self.head = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self.numeric_mean: Tensor
        self.numeric_std: Tensor
        self.register_buffer("numeric_mean", torch.zeros(config.n_modalities, config.numeric_dim))
        self.register_buffer("numeric_std", torch.ones(config.n_modalities, config.numeric_dim))

    @torch.no_grad()
    def fit_standardization(self, store: PageStore) -> None:
        """Per-modality mean and std of each numeric feature over `store`'s items (std < 1e-6 -> 1;
        a modality absent from the store keeps mean 0, std 1)."""
        mean = torch.zeros_like(self.numeric_mean)
        std = torch.ones_like(self.numeric_std)
        for modality in range(self.config.n_modalities):
            rows = store.numeric[store.modality_id == modality]
            if len(rows) == 0:
                continue
            mean[modality] = torch.from_numpy(rows.mean(axis=0).astype(np.float32))
            spread = torch.from_numpy(rows.std(axis=0).astype(np.float32))
            std[modality] = torch.where(spread < 1e-6, torch.ones_like(spread), spread)
        self.numeric_mean.copy_(mean)
        self.numeric_std.copy_(std)

    def forward(self, batch: PageBatch) -> Tensor:
        """Scores `[pages, items]`; padded positions are 0."""
        modality = batch.modality_id.clamp(0, self.config.n_modalities - 1)
        numeric = (batch.numeric - self.numeric_mean[modality]) / self.numeric_std[modality]
        if self.training and self.config.input_noise > 0:
            numeric = numeric + self.config.input_noise * torch.randn_like(numeric)
        items = batch.modality_id.shape[1]
        query = self.query_projection(batch.query_embedding)[:, None, :].expand(-1, items, -1)
        user = self.user_projection(batch.user_features)[:, None, :].expand(-1, items, -1)
        inputs = torch.cat(
            [
                self.modality_embedding(modality),
                numeric,
                self.text_projection(batch.text_embedding),
                self.visual_projection(batch.visual_embedding),
                query,
                user,
            ],
            dim=-1,
        )
        hidden = self.item_encoder(inputs)
        if self.page_encoder is not None:
            contextual = self.page_encoder(hidden, src_key_padding_mask=~batch.item_mask)
        else:
            contextual = hidden
        scores = self.head(torch.cat([hidden, contextual], dim=-1)).squeeze(-1)
        return scores.masked_fill(~batch.item_mask, 0.0)
