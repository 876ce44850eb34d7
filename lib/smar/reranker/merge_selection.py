"""`smar_merge`: a self-trained residual merge while page labels are few, the residual merge
once they are plentiful; the switch is the share of training candidates that carry a page label.

Below the switch (`self_trained_residual`): a calibrated merge (the teacher) is trained on the
budgeted labels; it grades every unlabelled training candidate, through an isotonic map of its
score onto the labelled grades (`isotonic_fit`, pooled adjacent violators); the residual merge
(the student) then trains on the real labels plus these pseudo-grades. The teacher carries the
page (its calibration is learnable from few labels and keeps every single-modal order); the
student adds the item-level evidence without overfitting the top-of-list labels, because every
candidate now has a target. Validation NDCG@10 (2 seeds): 0.884 / 0.881 / 0.890 at 10 / 20 /
30%, against the teacher alone 0.879 / 0.874 / 0.880 and the residual merge on the budgeted
labels alone 0.850 / 0.862 / 0.882.

Why two regimes (measured on validation queries, docs/reranker.md "levers"): the calibrated
merge (`CalibratedMerge`) keeps every single-modal order exactly and only learns the
cross-modal calibration; it is as good at 10% of the labels as at 100% (validation NDCG@10
0.879 / 0.874 / 0.880 / 0.873 at 10 / 20 / 30 / 100%): its form limits it, not the labels. The
residual merge (`ResidualMerge`: the same merge plus a free-form `PageReranker` residual, trained
with the SMAR loss, page loss + lambda * the intra-modal hinge over every candidate) can use
every item feature: 0.850 / 0.862 / 0.882 / 0.911, so it overfits the few top-of-list labels
of small budgets and wins with full labels.

Choosing per run from the budgeted validation labels was tried and dropped: with `top` labels
those sit on the first items of each list only, and they preferred the residual merge at 10%
(0.968 vs 0.963 on the labelled items) where it is 0.03 worse on the whole page. So the switch
is the labelled share of the training candidates, with the threshold `RESIDUAL_FROM` chosen on
validation queries (any value in (0.3, 1.0] separates the measured budgets; 0.5 is used).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smar.reranker.store import PageStore
from smar.reranker.training import TrainingConfig, TrainingResult, score_store, train_reranker

log = logging.getLogger(__name__)

#: The models smar_merge trains: overrides of TrainingConfig.
MERGE_CANDIDATES: dict[str, dict[str, Any]] = {
    "calibrated_merge": {"model_kind": "calibrated_merge", "objective": "page_loss_only"},
    "residual_merge": {
        "model_kind": "residual_merge",
        "objective": "smar",
        "intra_loss": "pairwise_hinge",
        "intra_weight": 0.3,
        "residual_scale": 0.1,
    },
}
#: The merge's context (query, user, page-modality score and cosine summaries).
MERGE_CONTEXT: tuple[str, ...] = ("query", "user", "page_stats", "cosine_stats")


#: The residual merge is used when at least this share of the training candidates is labelled.
RESIDUAL_FROM = 0.5


@dataclass
class SelectedMerge:
    """The chosen candidate's training result and config, and why it was chosen."""

    name: str
    result: TrainingResult
    config: TrainingConfig
    labelled_fraction: float

    def describe(self) -> dict[str, Any]:
        """What a registry row records about the choice (`validation_metrics`)."""
        return {
            "merge_candidate": self.name,
            "merge_labelled_fraction": self.labelled_fraction,
            "merge_residual_from": RESIDUAL_FROM,
        }


def merge_config(base: TrainingConfig, candidate: str) -> TrainingConfig:
    """`base` with candidate `candidate`'s overrides and the merge context."""
    return base.replace(merge_context=MERGE_CONTEXT, **MERGE_CANDIDATES[candidate])


SELF_TRAINED = "self_trained_residual"


def choose_candidate(labelled_fraction: float, *, residual_from: float = RESIDUAL_FROM) -> str:
    """ "residual_merge" when `labelled_fraction` >= `residual_from`, else
    "self_trained_residual" (calibrated-merge teacher, residual-merge student)."""
    return "residual_merge" if labelled_fraction >= residual_from else SELF_TRAINED


def isotonic_fit(x: NDArray[np.floating], y: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The non-decreasing least-squares fit of y on x (pooled adjacent violators): returns the
    sorted x [n] and the fitted values [n]; predict with `np.interp` (clipped at the ends)."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, np.float64)[order], np.asarray(y, np.float64)[order]
    values: list[float] = []
    weights: list[float] = []
    for value in ys:
        values.append(float(value))
        weights.append(1.0)
        while len(values) > 1 and values[-2] > values[-1]:
            weight = weights[-2] + weights[-1]
            merged = (values[-2] * weights[-2] + values[-1] * weights[-1]) / weight
            values[-2:], weights[-2:] = [merged], [weight]
    fitted = np.repeat(values, np.asarray(weights, dtype=np.int64))
    return xs, fitted


def pseudo_labelled(train: PageStore, teacher_scores: NDArray[np.floating]) -> PageStore:
    """`train` with every unlabelled candidate graded by the teacher: the isotonic map of the
    teacher's score [N] onto the grades of the labelled candidates. Real labels are kept."""
    mask = train.label_mask
    xs, fitted = isotonic_fit(teacher_scores[mask], train.labels[mask])
    pseudo = np.interp(np.asarray(teacher_scores, np.float64), xs, fitted)
    return train.with_labels(np.where(mask, train.labels, pseudo).astype(np.float32))


def train_selected_merge(
    train: PageStore,
    validation: PageStore,
    base: TrainingConfig,
    *,
    residual_from: float = RESIDUAL_FROM,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    anchors: Sequence[np.ndarray] | None = None,
) -> SelectedMerge:
    """Train the candidate `choose_candidate` picks for `train`'s labelled share of candidates
    (early stopping on `validation`'s page labels, as every neural method)."""
    fraction = float(train.label_mask.mean()) if train.n_items else 0.0
    name = choose_candidate(fraction, residual_from=residual_from)
    resumable = resume and checkpoint_dir is not None and (checkpoint_dir / "checkpoint.pt").is_file()
    if name == SELF_TRAINED:
        teacher_directory = checkpoint_dir / "teacher" if checkpoint_dir is not None else None
        teacher = train_reranker(
            train,
            validation,
            merge_config(base, "calibrated_merge"),
            checkpoint_dir=teacher_directory,
            resume=resume and teacher_directory is not None and (teacher_directory / "checkpoint.pt").is_file(),
            progress=progress,
            anchors=anchors,
        )
        train = pseudo_labelled(train, score_store(teacher.model, train))
        config = merge_config(base, "residual_merge")
    else:
        config = merge_config(base, name)
    result = train_reranker(
        train, validation, config, checkpoint_dir=checkpoint_dir, resume=resumable, progress=progress, anchors=anchors
    )
    log.info("smar_merge: %.0f%% of the training candidates labelled -> %s", 100 * fraction, name)
    return SelectedMerge(name, result, config, fraction)


def merge_hyperparameters(base: TrainingConfig) -> dict[str, Any]:
    """What defines a smar_merge run of `base`: both models' configs and the switch."""
    return {
        "teacher": merge_config(base, "calibrated_merge").to_dict(),
        "student": merge_config(base, "residual_merge").to_dict(),
        "residual_from": RESIDUAL_FROM,
    }
