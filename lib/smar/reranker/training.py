"""Training of the whole-page reranker: SMAR (page loss + intra-modal consistency) or the page
loss alone, with early stopping on validation NDCG@10, checkpoint/resume and AMP on CUDA.

Loss (`smar.reranker.losses.smar_loss`), with the defaults of `TrainingConfig`:

    L = L_page + lambda * sum_m beta_m * L_intra_m  (+ anchor_weight * L_anchor when anchors on)

* L_page (`page_loss`, default "list_mle"): ListMLE over the page-labelled items ordered by
  grade; "softmax_cross_entropy" (ListNet) and "lambda_loss_ndcg" are the alternatives.
* L_intra_m (`intra_loss`, default "pairwise_hinge"): for i, j of modality m on one page with
  g_m(i) > g_m(j), max(0, gamma - (f(i) - f(j))); "list_mle" is ListMLE of f over the g_m order.
* gamma (`margin`) = 1.0, the authors' margin; beta_m (`modality_weights`) = 1.0 for every
  modality; lambda (`intra_weight`) = `DEFAULT_INTRA_WEIGHT[intra_loss]`, chosen on validation
  queries (docs/reranker.md).

tanh squash inside ListMLE: NOT kept (`squash=False`). The authors' code applies tanh to the
scores before ListMLE. tanh caps every score in (-1, 1), so two items can differ by at most 2 and
the Plackett-Luce probability of the labelled order can never approach 1: the loss keeps pushing
already saturated scores, and the gradient vanishes exactly for the items that are most clearly
ordered. It also fights the hinge term, whose margin gamma = 1 would need half the whole tanh
range per pair. We serve and evaluate raw scores, so we train on raw scores; `squash=True`
restores the authors' behaviour for comparison.

Determinism: the page order depends on (seed, epoch) only (`PageDataset`), and torch's RNG
(dropout) is re-seeded from (seed, epoch) at the start of every epoch inside a forked RNG
context, so resuming from the checkpoint of epoch e replays epochs e+1... exactly as an
uninterrupted run does (on CPU; CUDA kernels may differ in the last bits).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import Field, model_validator
from torch import Tensor
from tqdm.auto import tqdm

from smar.config import FrozenConfig
from smar.errors import ArtifactError
from smar.metrics import mean_over_queries, ndcg_at
from smar.reranker.calibrated_merge import (
    CalibratedMerge,
    CalibratedMergeConfig,
    ResidualMerge,
    ResidualMergeConfig,
)
from smar.reranker.dataset import PageBatch, collate_pages, page_loader
from smar.reranker.losses import (
    AnchorPairs,
    IntraLoss,
    PageLoss,
    lambda_loss_ndcg,
    list_mle,
    smar_loss,
    softmax_cross_entropy,
)
from smar.reranker.model import PageReranker, RerankerConfig
from smar.reranker.store import PageStore
from smar.single_modal.rankers.device import select_device
from smar.single_modal.rankers.encoder import autocast_on_cuda
from smar.vocabulary import MODALITIES

log = logging.getLogger(__name__)

Objective = Literal["smar", "page_loss_only"]
#: The scorer a run trains: `PageReranker` (free-form), `CalibratedMerge` (monotone in every
#: single-modal score by construction) or `ResidualMerge` (the merge plus a scaled PageReranker).
ModelKind = Literal["page_reranker", "calibrated_merge", "residual_merge"]
MergeContext = Literal["query", "user", "page_stats", "cosine_stats"]
Architecture = RerankerConfig | CalibratedMergeConfig | ResidualMergeConfig
Scorer = PageReranker | CalibratedMerge | ResidualMerge
CHECKPOINT_FILE = "checkpoint.pt"
STATE_DICT_FILE = "state_dict.pt"
CONFIG_FILE = "config.json"


#: Default lambda per intra-modal loss. The two losses live on different scales (the hinge is a
#: mean over pairs, at most gamma + |f(i) - f(j)|; ListMLE sums one log-term per item of the
#: modality's list), so each has its own default, chosen on validation queries (docs/reranker.md).
DEFAULT_INTRA_WEIGHT: dict[str, float] = {"pairwise_hinge": 0.3, "list_mle": 0.01}


class TrainingConfig(FrozenConfig):
    """Hyper-parameters of one reranker training run (all JSON-serialisable).

    objective: "smar" (L_page + lambda * sum_m beta_m L_intra_m) or "page_loss_only" (L_page).
    page_loss / intra_loss: see the module docstring. margin = gamma, intra_weight = lambda,
    modality_weights = beta_m by modality name; intra_weight None = the intra loss's default. anchors: add the iso-label anchor hinge.
    Early stopping: stop after `patience` epochs without a better validation NDCG@10 and keep
    the best epoch's weights. device: "auto" (`select_device`), "cpu", "cuda[:N]".
    """

    objective: Objective = "smar"
    page_loss: PageLoss = "list_mle"
    intra_loss: IntraLoss = "pairwise_hinge"
    margin: float = 1.0
    intra_weight: float | None = None
    modality_weights: dict[str, float] = Field(default_factory=lambda: {str(name): 1.0 for name in MODALITIES})
    squash: bool = False
    anchors: bool = False
    anchor_weight: float = 1.0
    epochs: int = 40
    patience: int = 8
    batch_pages: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    gradient_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    evaluation_k: int = 10
    model_dim: int = 64
    attention_layers: int = 2
    attention_heads: int = 4
    feedforward_dim: int = 128
    dropout: float = 0.1
    self_attention: bool = True
    #: std of Gaussian noise on the standardised numeric inputs of `PageReranker` in training
    #: (the ICLR 2021 recipe for neural rankers on tabular features; 0 = off)
    input_noise: float = 0.0
    model_kind: ModelKind = "page_reranker"
    #: calibrated / residual merge: width of the page-context MLP, and what it reads
    context_dim: int = 32
    merge_context: tuple[MergeContext, ...] = ("query", "user", "page_stats")
    #: calibrated merge: extra [rank <= r] basis functions for r = 1..rank_steps
    rank_steps: int = 0
    #: residual merge: the free-form residual's scale (its output is added to the merge)
    residual_scale: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.objective not in ("smar", "page_loss_only"):
            raise ValueError(f"objective must be 'smar' or 'page_loss_only', got {self.objective!r}")
        if self.page_loss not in ("list_mle", "softmax_cross_entropy", "lambda_loss_ndcg"):
            raise ValueError(f"unknown page_loss {self.page_loss!r}")
        if self.intra_loss not in ("pairwise_hinge", "list_mle"):
            raise ValueError(f"unknown intra_loss {self.intra_loss!r}")
        if self.epochs < 1 or self.batch_pages < 1 or self.patience < 1:
            raise ValueError("epochs, batch_pages and patience must be >= 1")
        unknown = set(self.modality_weights) - set(MODALITIES)
        if unknown:
            raise ValueError(f"modality_weights names unknown modalities {sorted(unknown)}")
        return self

    def architecture(self, store: PageStore) -> Architecture:
        """The architecture of `model_kind` for `store`'s input widths."""
        if self.model_kind == "residual_merge":
            return ResidualMergeConfig(
                merge=self._merge_architecture(store),
                residual=self._reranker_architecture(store),
                residual_scale=self.residual_scale,
            )
        if self.model_kind == "calibrated_merge":
            return self._merge_architecture(store)
        return self._reranker_architecture(store)

    def _merge_architecture(self, store: PageStore) -> CalibratedMergeConfig:
        return CalibratedMergeConfig.for_store(
            store,
            context_dim=self.context_dim,
            dropout=self.dropout,
            n_modalities=len(MODALITIES),
            use_query="query" in self.merge_context,
            use_user="user" in self.merge_context,
            use_page_stats="page_stats" in self.merge_context,
            use_cosine_stats="cosine_stats" in self.merge_context,
            rank_steps=self.rank_steps,
        )

    def _reranker_architecture(self, store: PageStore) -> RerankerConfig:
        return RerankerConfig.for_store(
            store,
            model_dim=self.model_dim,
            attention_layers=self.attention_layers,
            attention_heads=self.attention_heads,
            feedforward_dim=self.feedforward_dim,
            dropout=self.dropout,
            self_attention=self.self_attention,
            input_noise=self.input_noise,
            n_modalities=len(MODALITIES),
        )

    def lambda_weight(self) -> float:
        """lambda: `intra_weight`, or the default of the chosen `intra_loss`
        (`DEFAULT_INTRA_WEIGHT`)."""
        return DEFAULT_INTRA_WEIGHT[self.intra_loss] if self.intra_weight is None else float(self.intra_weight)

    def beta(self) -> Tensor:
        """beta_m as a `[n_modalities]` tensor in `MODALITIES` order (missing names: 1.0)."""
        return torch.tensor([float(self.modality_weights.get(name, 1.0)) for name in MODALITIES])

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        return cls.model_validate(values)


def build_model(architecture: Architecture) -> Scorer:
    """The untrained module of `architecture`."""
    if isinstance(architecture, ResidualMergeConfig):
        return ResidualMerge(architecture)
    if isinstance(architecture, CalibratedMergeConfig):
        return CalibratedMerge(architecture)
    return PageReranker(architecture)


@dataclass
class TrainingResult:
    """The best model (eval mode, CPU), its epoch, and one history record per epoch run."""

    model: Scorer
    history: list[dict[str, Any]]
    best_epoch: int
    best_validation_ndcg: float
    stopped_early: bool

    @property
    def epochs_run(self) -> int:
        return len(self.history)


# ------------------------------------------------------------------------------- evaluation


def score_store(
    model: Scorer, store: PageStore, *, device: torch.device | str = "cpu", batch_pages: int = 64
) -> NDArray[np.float32]:
    """[N] scores of every item of `store`, in store order (eval mode, no gradients)."""
    resolved = torch.device(device)
    model = model.to(resolved).eval()
    scores = np.zeros(store.n_items, dtype=np.float32)
    with torch.inference_mode(), autocast_on_cuda(resolved):
        for start in range(0, store.n_pages, batch_pages):
            indices = range(start, min(start + batch_pages, store.n_pages))
            batch = collate_pages([store.page(index) for index in indices]).to(resolved)
            output = model(batch).float().cpu().numpy()
            for row, index in enumerate(indices):
                first, last = int(store.offsets[index]), int(store.offsets[index + 1])
                scores[first:last] = output[row, : last - first]
    return scores


def ndcg_per_page(
    store: PageStore, scores: NDArray[np.floating], grades: NDArray[np.floating], *, k: int = 10
) -> NDArray[np.float64]:
    """[P] NDCG@k of each page over its graded items (NaN grades left out: a partially labelled
    page is ranked among its labelled items only). Linear gain, ties by item id descending
    (trec_eval, `smar.metrics`); NaN for a page with nothing relevant (left out of means)."""
    values = np.full(store.n_pages, np.nan)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        page_grades = grades[start:stop]
        graded = ~np.isnan(page_grades)
        if not graded.any():
            continue
        values[page] = ndcg_at(
            page_grades[graded],
            np.asarray(scores[start:stop], dtype=np.float64)[graded],
            k=k,
            doc_ids=store.item_id[start:stop][graded],
            gain="linear",
            ties="doc_id_desc",
        )
    return values


def mean_ndcg(store: PageStore, scores: NDArray[np.floating], grades: NDArray[np.floating], *, k: int = 10) -> float:
    """Mean over pages of `ndcg_per_page` (pages without a relevant item left out)."""
    return mean_over_queries(ndcg_per_page(store, scores, grades, k=k))


# ------------------------------------------------------------------------------- the trainer


def _page_loss(config: TrainingConfig, scores: Tensor, batch: PageBatch) -> Tensor:
    if config.page_loss == "list_mle":
        return list_mle(scores, batch.labels, batch.label_mask, squash=config.squash)
    if config.page_loss == "softmax_cross_entropy":
        return softmax_cross_entropy(scores, batch.labels, batch.label_mask)
    return lambda_loss_ndcg(scores, batch.labels, batch.label_mask)


def batch_loss(
    config: TrainingConfig, scores: Tensor, batch: PageBatch, anchor_pairs: AnchorPairs | None = None
) -> Tensor:
    """The training objective of `config` on one batch (scores `[pages, items]`, float32)."""
    if config.objective == "page_loss_only":
        return _page_loss(config, scores, batch)
    parts = smar_loss(
        scores,
        batch.labels,
        batch.label_mask,
        batch.single_modal_score,
        batch.modality_id,
        batch.item_mask,
        modality_weights=config.beta().to(scores.device),
        intra_weight=config.lambda_weight(),
        page_loss=config.page_loss,
        intra_loss=config.intra_loss,
        margin=config.margin,
        squash=config.squash,
        anchor_pairs=anchor_pairs if config.anchors else None,
        anchor_weight=config.anchor_weight,
    )
    return parts.total


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch, 7]).integers(0, 2**62))


def _anchor_batch(anchors: Sequence[np.ndarray] | None, batch: PageBatch) -> AnchorPairs | None:
    """Anchor pairs of the batch's pages: `anchors[page]` is an [A, 2] array of (preferred,
    other) item offsets within that page."""
    if anchors is None:
        return None
    chosen = [anchors[int(index)] for index in batch.page_index]
    longest = max((len(pairs) for pairs in chosen), default=0)
    if longest == 0:
        return None
    preferred = torch.zeros(len(chosen), longest, dtype=torch.long)
    other = torch.zeros_like(preferred)
    mask = torch.zeros(len(chosen), longest, dtype=torch.bool)
    for row, pairs in enumerate(chosen):
        if len(pairs):
            preferred[row, : len(pairs)] = torch.as_tensor(pairs[:, 0])
            other[row, : len(pairs)] = torch.as_tensor(pairs[:, 1])
            mask[row, : len(pairs)] = True
    device = batch.item_mask.device
    return AnchorPairs(preferred.to(device), other.to(device), mask.to(device))


def train_reranker(
    train: PageStore,
    validation: PageStore | None,
    config: TrainingConfig,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    anchors: Sequence[np.ndarray] | None = None,
) -> TrainingResult:
    """Train on `train`'s page labels; early stopping on `validation`'s page labels (NDCG@k).

    With `checkpoint_dir`, a checkpoint (weights, optimizer, best weights, early-stopping state,
    history) is written after every epoch; `resume=True` continues from it, identically to an
    uninterrupted run. `stop_after_epoch` ends the run after that epoch (as if interrupted).
    `anchors[page]`: [A, 2] (preferred, other) item offsets of that page (used when
    `config.anchors`). Pages without any page label still feed the intra-modal term.
    """
    if train.n_pages == 0:
        raise ValueError("no training pages")
    device = select_device(config.device)
    use_amp = config.amp and device.type == "cuda"
    checkpoint_path = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir is not None else None
    validation_grades = validation.labels if validation is not None else None
    has_validation = validation is not None and validation.n_pages > 0 and bool(validation.label_mask.any())

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        model = build_model(config.architecture(train))
        model.fit_standardization(train)
        model = model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        history: list[dict[str, Any]] = []
        best_ndcg, best_epoch, stale_epochs = -math.inf, 0, 0
        best_state: dict[str, Tensor] = copy.deepcopy(model.state_dict())
        start_epoch = 1
        if resume:
            if checkpoint_path is None or not checkpoint_path.is_file():
                raise FileNotFoundError(f"resume=True but no checkpoint at {checkpoint_path}")
            # weights_only: a checkpoint holds tensors, numbers and strings; loading must not run code.
            state = torch.load(checkpoint_path, map_location=device, weights_only=True)
            if state["config"] != config.to_dict():
                raise ValueError("the checkpoint was written with another TrainingConfig; refusing to resume")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            best_state = state["best_state"]
            best_ndcg, best_epoch, stale_epochs = state["best_ndcg"], state["best_epoch"], state["stale_epochs"]
            history = state["history"]
            start_epoch = state["epoch"] + 1
            log.info("resuming from %s after epoch %d", checkpoint_path, state["epoch"])

        loader = page_loader(
            train,
            batch_pages=config.batch_pages,
            seed=config.seed,
            shuffle=True,
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
        )
        stopped_early = bool(history) and stale_epochs >= config.patience
        epochs = range(start_epoch, config.epochs + 1)
        bar = tqdm(epochs, desc=f"train {config.objective}", disable=not progress, leave=False)
        for epoch in bar:
            if stopped_early:
                break
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            loader.dataset.set_epoch(epoch)  # type: ignore[attr-defined]  # a PageDataset
            loader.generator.manual_seed(_epoch_seed(config.seed, epoch))
            model.train()
            epoch_started = time.perf_counter()
            data_wait, loss_sum, pages_seen, batches = 0.0, 0.0, 0, 0
            iterator = iter(loader)
            while True:
                waited = time.perf_counter()
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                batch = batch.to(device, non_blocking=True)
                data_wait += time.perf_counter() - waited
                with autocast_on_cuda(device) if use_amp else contextlib.nullcontext():
                    scores = model(batch)
                loss = batch_loss(config, scores.float(), batch, _anchor_batch(anchors, batch))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.gradient_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
                optimizer.step()
                loss_sum += float(loss.detach()) * len(batch.page_index)
                pages_seen += len(batch.page_index)
                batches += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            record: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": loss_sum / max(pages_seen, 1),
                "pages": pages_seen,
                "batches": batches,
                "epoch_seconds": time.perf_counter() - epoch_started,
                "data_wait_seconds": data_wait,
            }
            if has_validation:
                assert validation is not None and validation_grades is not None
                validation_scores = score_store(model, validation, device=device)
                ndcg = mean_ndcg(validation, validation_scores, validation_grades, k=config.evaluation_k)
                record[f"validation_ndcg_at_{config.evaluation_k}"] = ndcg
                if not math.isnan(ndcg) and ndcg > best_ndcg + 1e-9:
                    best_ndcg, best_epoch, stale_epochs = ndcg, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    stale_epochs += 1
                stopped_early = stale_epochs >= config.patience
            else:
                best_epoch, best_state = epoch, copy.deepcopy(model.state_dict())
            history.append(record)
            bar.set_postfix(
                loss=f"{record['train_loss']:.3f}",
                ndcg=f"{record.get(f'validation_ndcg_at_{config.evaluation_k}', float('nan')):.3f}",
            )
            if checkpoint_path is not None:
                _write_checkpoint(
                    checkpoint_path,
                    {
                        "epoch": epoch,
                        "config": config.to_dict(),
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "best_state": best_state,
                        "best_ndcg": best_ndcg,
                        "best_epoch": best_epoch,
                        "stale_epochs": stale_epochs,
                        "history": history,
                    },
                )
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
        bar.close()
    model.load_state_dict(best_state)
    return TrainingResult(
        model=model.cpu().eval(),
        history=history,
        best_epoch=best_epoch,
        best_validation_ndcg=best_ndcg if has_validation else math.nan,
        stopped_early=stopped_early,
    )


def _write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, temporary)
    os.replace(temporary, path)


# -------------------------------------------------------------------------------- artifacts


def save_reranker(
    model: Scorer, config: TrainingConfig, directory: Path, *, extra: dict[str, Any] | None = None
) -> Path:
    """Write `state_dict.pt` and `config.json` ({"kind": "neural", "model_kind": ..., "model":
    ..., "training": ..., **extra}) into `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, directory / STATE_DICT_FILE)
    document = {
        "kind": "neural",
        "model_kind": config.model_kind,
        "model": model.config.to_dict(),
        "training": config.to_dict(),
        **(extra or {}),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
    return directory


def load_reranker(directory: Path) -> tuple[Scorer, dict[str, Any]]:
    """The model of an artifact written by `save_reranker` (eval mode, CPU) and its config JSON."""
    document = json.loads((directory / CONFIG_FILE).read_text())
    if document.get("kind") != "neural":
        raise ArtifactError(f"{directory} holds a {document.get('kind')!r} artifact, not a neural reranker")
    # Modality ids are indexes into the modality order the model was trained with; an artifact
    # that does not record it predates the one vocabulary (ids web, answer, image, video).
    kind = document.get("model_kind", "page_reranker")
    recorded = document["model"]["merge"] if kind == "residual_merge" else document["model"]
    trained_order = tuple(recorded.get("modalities", ()))
    if trained_order != tuple(MODALITIES):
        raise ArtifactError(
            f"{directory}: reranker trained with modality order {list(trained_order) or 'unrecorded'}, "
            f"this code uses {list(MODALITIES)}; retrain the run"
        )
    architecture: Architecture
    if kind == "residual_merge":
        architecture = ResidualMergeConfig.from_dict(document["model"])
    elif kind == "calibrated_merge":
        architecture = CalibratedMergeConfig.from_dict(document["model"])
    elif kind == "page_reranker":
        architecture = RerankerConfig.from_dict(document["model"])
    else:
        raise ArtifactError(f"{directory}: unknown model_kind {kind!r}")
    model = build_model(architecture)
    model.load_state_dict(torch.load(directory / STATE_DICT_FILE, map_location="cpu", weights_only=True))
    return model.eval(), document
