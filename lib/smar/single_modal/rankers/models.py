"""Single-modal rankers g_m(q, i) (step 1 of SMAR): one torch module per modality, one interface.

`forward(batch)` takes the feature dict of `smar.single_modal.rankers.features` as tensors and returns
scores [batch]; higher means "rank higher". Scores are comparable only inside one modality.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import torch
from pydantic import model_validator
from torch import Tensor, nn

from smar.config import FrozenConfig
from smar.single_modal.rankers.encoder import TEXT_EMBEDDING_DIM
from smar.single_modal.rankers.features import (
    ENGAGEMENT,
    ENGAGEMENT_DIM,
    FEATURE_KEYS,
    ITEM_TEXT_EMBEDDING,
    QUERY_EMBEDDING,
    VISUAL_EMBEDDING,
    modality_kind,
)


class RankerConfig(FrozenConfig):
    """Everything needed to rebuild a ranker's architecture; stored as `config.json`."""

    modality: str
    kind: Literal["text", "visual"]
    query_dim: int = TEXT_EMBEDDING_DIM
    item_dim: int = TEXT_EMBEDDING_DIM  # text: MiniLM width; visual: visual embedding width
    caption_dim: int = TEXT_EMBEDDING_DIM  # visual only: MiniLM width of the item's caption
    engagement_dim: int = ENGAGEMENT_DIM
    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.1

    @model_validator(mode="after")
    def _check(self) -> RankerConfig:
        expected_kind = modality_kind(self.modality)
        if self.kind != expected_kind:
            raise ValueError(f"modality {self.modality!r} needs kind {expected_kind!r}, got {self.kind!r}")
        if self.kind == "text" and self.item_dim != self.query_dim:
            raise ValueError(
                f"text rankers compare query and item embeddings of one encoder: "
                f"query_dim {self.query_dim} != item_dim {self.item_dim}"
            )
        if self.kind == "visual" and self.caption_dim != self.query_dim:
            raise ValueError(
                f"visual rankers compare the query with the caption in one encoder's space: "
                f"query_dim {self.query_dim} != caption_dim {self.caption_dim}"
            )
        if min(self.query_dim, self.item_dim, self.caption_dim, self.engagement_dim) < 1:
            raise ValueError(f"dimensions must be >= 1: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RankerConfig:
        """Inverse of `to_dict`; ValueError on unknown or invalid fields."""
        return cls.model_validate(values)

    @property
    def feature_keys(self) -> tuple[str, ...]:
        """The feature arrays this ranker reads."""
        return FEATURE_KEYS[self.kind]


def default_config(modality: str, *, visual_dim: int | None = None, **overrides: Any) -> RankerConfig:
    """The default config of a modality; visual modalities need `visual_dim` (read it from the
    data, e.g. `features["visual_embedding"].shape[1]`)."""
    kind = modality_kind(modality)
    if kind == "visual":
        if visual_dim is None:
            raise ValueError(f"modality {modality!r} needs visual_dim (the embedding width)")
        overrides.setdefault("item_dim", visual_dim)
    return RankerConfig(modality=modality, kind=kind, **overrides)


def _mlp(input_dim: int, hidden_sizes: tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear-ReLU-Dropout blocks ending in one output unit."""
    layers: list[nn.Module] = []
    width = input_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class SingleModalRanker(nn.Module):
    """Base class: holds the config and the engagement standardisation.

    The engagement statistics (log counts, rates) live on very different scales, so they are
    standardised with a mean and standard deviation fitted on the training rows. Those are
    buffers, not parameters: saved in the state_dict, untouched by the optimiser.
    """

    def __init__(self, config: RankerConfig) -> None:
        super().__init__()
        self.config = config
        self.engagement_mean: Tensor
        self.engagement_std: Tensor
        self.register_buffer("engagement_mean", torch.zeros(config.engagement_dim))
        self.register_buffer("engagement_std", torch.ones(config.engagement_dim))

    def set_engagement_standardization(self, engagement: Tensor) -> None:
        """Fit the standardisation on training rows `engagement` [N, S] (std floored at 1e-6)."""
        engagement = engagement.to(self.engagement_mean.device, torch.float32)
        self.engagement_mean.copy_(engagement.mean(dim=0))
        self.engagement_std.copy_(engagement.std(dim=0, unbiased=False).clamp_min(1e-6))

    def standardized_engagement(self, batch: dict[str, Tensor]) -> Tensor:
        """[B, S] standardised engagement statistics."""
        return (batch[ENGAGEMENT] - self.engagement_mean) / self.engagement_std

    def forward(self, batch: dict[str, Tensor]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class TextRanker(SingleModalRanker):
    """Web and answer ranker: a small head over frozen MiniLM embeddings.

    Input: query embedding q [B, 384], item text embedding d [B, 384], engagement [B, S]. The
    head is an MLP over [cos(q, d), q * d, |q - d|, standardised engagement] -> score [B].

    Why the encoder is frozen: the machine has 2 CPU cores, and fine-tuning MiniLM would cost a
    transformer forward and backward pass per training pair. Frozen, every distinct query and
    item text is encoded exactly once and cached, and scoring a (query, item) pair is a few
    small matrix products; that dedupe-and-cache scoring is only valid while the encoder
    does not change. The learned head adapts the generic similarity to the clicks.
    """

    def __init__(self, config: RankerConfig) -> None:
        super().__init__(config)
        input_dim = 1 + 2 * config.query_dim + config.engagement_dim
        self.head = _mlp(input_dim, config.hidden_sizes, config.dropout)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Scores [B] from q = batch["query_embedding"], d = batch["item_text_embedding"]."""
        inputs = torch.cat(
            [_text_match(batch[QUERY_EMBEDDING], batch[ITEM_TEXT_EMBEDDING]), self.standardized_engagement(batch)],
            dim=1,
        )
        return self.head(inputs).squeeze(1)


def _text_match(query: Tensor, text: Tensor) -> Tensor:
    """[B, 1 + 2E]: cos(q, t), q * t and |q - t| of two embeddings of one encoder."""
    cosine = nn.functional.cosine_similarity(query, text, dim=1, eps=1e-8).unsqueeze(1)
    return torch.cat([cosine, query * text, (query - text).abs()], dim=1)


class VisualRanker(SingleModalRanker):
    """Image and video ranker: an MLP over the query embedding, the item's visual embedding, the
    query's match with the item's caption, and engagement.

    The visual embedding is L2-normalised first, so the ranker does not depend on how the
    upstream image model scales its vectors. The query (MiniLM) and the visual embedding live in
    different spaces, and an MLP over their concatenation needs a lot of data to learn their
    multiplicative match, so the MLP also gets (W q) * v, a learned low-rank bilinear term with
    W: query space -> visual space.

    Why the caption too: a visual embedding says what an image looks like (its topic, its
    quality), not which of the query's words it is about, and image search has always also
    matched the text shown with an image. Without the caption the rankers lost to the logged
    production order on image and video, whose scores do see the query's words.
    """

    def __init__(self, config: RankerConfig) -> None:
        super().__init__(config)
        self.query_to_visual = nn.Linear(config.query_dim, config.item_dim, bias=False)
        input_dim = config.query_dim + 2 * config.item_dim + 1 + 2 * config.caption_dim + config.engagement_dim
        self.head = _mlp(input_dim, config.hidden_sizes, config.dropout)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Scores [B] from batch["query_embedding"], batch["item_text_embedding"] (the caption)
        and batch["visual_embedding"]."""
        query = batch[QUERY_EMBEDDING]
        visual = nn.functional.normalize(batch[VISUAL_EMBEDDING], dim=1, eps=1e-8)
        interaction = self.query_to_visual(query) * visual
        inputs = torch.cat(
            [
                query,
                visual,
                interaction,
                _text_match(query, batch[ITEM_TEXT_EMBEDDING]),
                self.standardized_engagement(batch),
            ],
            dim=1,
        )
        return self.head(inputs).squeeze(1)


def build_ranker(modality: str, config: RankerConfig | None = None) -> SingleModalRanker:
    """The ranker for `modality` (TextRanker for web/answer, VisualRanker for image/video).
    `config` defaults to `default_config(modality)` (text only); its modality must match."""
    if config is None:
        config = default_config(modality)
    if config.modality != modality:
        raise ValueError(f"config is for modality {config.modality!r}, not {modality!r}")
    return TextRanker(config) if config.kind == "text" else VisualRanker(config)
