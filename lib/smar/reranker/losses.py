"""Training losses of the whole-page reranker f (SMAR, arXiv 2510.16803):

    L = L_page + lambda * sum_m beta_m * L_intra_m  (+ anchor_weight * L_anchor, optional)

Shapes: a batch is a padded slate tensor `[pages, items]`. `mask` is True on real entries; padded
entries may hold anything (NaN included) and never reach a loss value or a gradient. The page
losses use the page-label mask (only annotated items carry a grade); the intra-modal losses use
the mask of all real items (every item has its single-modal score g_m).

Conventions shared by all losses here:
- higher score = ranked higher; higher relevance = better (grades 0..4);
- a page (or a modality's sub-list) with fewer than 2 usable items contributes 0 and is left
  out of the mean; when nothing is usable the loss is a zero that is still attached to the graph,
  so `backward()` works and yields zero gradients;
- log-sum-exps are computed with torch's stable primitives (logcumsumexp, logsumexp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

TieBreak = Literal["stable", "random"]
PageLoss = Literal["list_mle", "softmax_cross_entropy", "lambda_loss_ndcg"]
IntraLoss = Literal["pairwise_hinge", "list_mle"]


class ModalityLosses(NamedTuple):
    """`total` = sum_m beta_m * L_m (scalar); `by_modality` = unweighted L_m, `[n_modalities]`."""

    total: Tensor
    by_modality: Tensor


class AnchorPairs(NamedTuple):
    """Cross-modal anchor pairs, each `[pages, pairs]`: item `preferred_index` should outrank item
    `other_index` of the same page where `pair_mask` is True."""

    preferred_index: Tensor
    other_index: Tensor
    pair_mask: Tensor


@dataclass(frozen=True)
class SmarLossParts:
    """The parts of the SMAR loss; `total` is the one to call backward() on."""

    total: Tensor
    page: Tensor
    intra: Tensor
    intra_by_modality: Tensor
    anchor: Tensor


def _very_negative(tensor: Tensor) -> float:
    # A finite stand-in for -inf: exp() of it underflows to exactly 0, yet differences of two of
    # them stay finite, so padded entries produce no NaN in the forward or the backward pass.
    return torch.finfo(tensor.dtype).min / 4


def _zero_like_graph(scores: Tensor) -> Tensor:
    # Not scores.sum() * 0: padded entries may be NaN, and NaN * 0 is NaN.
    return scores.masked_fill(torch.ones_like(scores, dtype=torch.bool), 0.0).sum()


def _check_shapes(scores: Tensor, *others: Tensor) -> None:
    if scores.dim() != 2:
        raise ValueError(f"scores must be [pages, items], got shape {tuple(scores.shape)}")
    for other in others:
        if other.shape != scores.shape:
            raise ValueError(f"shape mismatch: scores {tuple(scores.shape)} vs {tuple(other.shape)}")


def _mean_over(per_page: Tensor, eligible: Tensor, scores: Tensor) -> Tensor:
    if not bool(eligible.any()):
        return _zero_like_graph(scores)
    return per_page[eligible].mean()


def _list_mle_per_page(
    scores: Tensor,
    relevance: Tensor,
    mask: Tensor,
    *,
    tie_break: TieBreak = "stable",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-page ListMLE negative log-likelihood `[pages]` and which pages count (>= 2 items)."""
    mask = mask.bool()
    pages, items = scores.shape
    column_order = torch.arange(items, device=scores.device).expand(pages, items)
    if tie_break == "random":
        # Shuffle first, then sort stably by relevance: ties end up in a random order.
        column_order = torch.argsort(torch.rand(pages, items, generator=generator, device=scores.device), dim=-1)
    elif tie_break != "stable":
        raise ValueError(f"tie_break must be 'stable' or 'random', got {tie_break!r}")
    sort_key = relevance.masked_fill(~mask, float("-inf")).gather(-1, column_order)
    by_relevance = torch.sort(sort_key, dim=-1, descending=True, stable=True).indices
    order = column_order.gather(-1, by_relevance)

    sorted_mask = mask.gather(-1, order)
    sorted_scores = scores.gather(-1, order).masked_fill(~sorted_mask, _very_negative(scores))
    # log sum_{j >= k} exp(s_j): a cumulative logsumexp taken from the tail.
    tail_log_sum = torch.logcumsumexp(sorted_scores.flip(-1), dim=-1).flip(-1)
    per_position = (tail_log_sum - sorted_scores) * sorted_mask
    return per_position.sum(-1), sorted_mask.sum(-1) >= 2


def list_mle(
    scores: Tensor,
    relevance: Tensor,
    mask: Tensor,
    *,
    tie_break: TieBreak = "stable",
    squash: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ListMLE (Xia et al. 2008), mean over pages with >= 2 valid items.

    scores, relevance, mask: `[pages, items]`. With the valid items sorted by relevance
    (descending) into pi, a page's loss is

        -log P(pi | s) = sum_k [ log sum_{j >= k} exp(s_pi(j)) - s_pi(k) ].

    Ties in relevance: `stable` keeps slate order (the earlier item counts as the better one;
    our slates are shown in random order, so this adds no systematic bias); `random` orders tied
    items by a random permutation drawn from `generator` each call.

    `squash=True` applies tanh to the scores first, as the SMAR authors' code does. Default False:
    tanh caps score gaps at 2, so the Plackett-Luce probabilities can never get sharp and the loss
    keeps pushing saturated scores; the reranker is served on raw scores, so we train on them.
    """
    _check_shapes(scores, relevance, mask)
    if squash:
        scores = torch.tanh(scores)
    per_page, eligible = _list_mle_per_page(scores, relevance, mask, tie_break=tie_break, generator=generator)
    return _mean_over(per_page, eligible, scores)


def softmax_cross_entropy(scores: Tensor, relevance: Tensor, mask: Tensor) -> Tensor:
    """ListNet top-one loss (Cao et al. 2007), mean over pages with >= 2 valid items.

    scores, relevance, mask: `[pages, items]`. Over a page's valid items,
    loss = -sum_i softmax(relevance)_i * log softmax(scores)_i.
    """
    _check_shapes(scores, relevance, mask)
    mask = mask.bool()
    very_negative = _very_negative(scores)
    target = torch.softmax(relevance.masked_fill(~mask, very_negative), dim=-1) * mask
    log_predicted = torch.log_softmax(scores.masked_fill(~mask, very_negative), dim=-1)
    per_page = -(target * log_predicted).sum(-1)
    return _mean_over(per_page, mask.sum(-1) >= 2, scores)


def lambda_loss_ndcg(
    scores: Tensor,
    relevance: Tensor,
    mask: Tensor,
    *,
    gain: Literal["exponential", "linear"] = "exponential",
) -> Tensor:
    """LambdaRank-weighted pairwise logistic loss (LambdaLoss's "lambdaRank" scheme, Wang et al.
    2018; not NDCG-Loss2++), mean over pages with at least one pair of different grades.

    scores, relevance, mask: `[pages, items]`. Per page,

        loss = sum_{i, j valid, rel_i > rel_j} |delta NDCG_ij| * log(1 + exp(-(s_i - s_j)))
        |delta NDCG_ij| = |G_i - G_j| * |1/log2(1 + r_i) - 1/log2(1 + r_j)| / IDCG

    with gain G = 2^rel - 1 (`exponential`) or rel (`linear`), r the 1-based rank by the current
    scores among the page's valid items (ties by slate order), IDCG the DCG of the ideal order.
    The weights are constants (no gradient flows through ranks).
    """
    _check_shapes(scores, relevance, mask)
    mask = mask.bool()
    relevance = relevance.masked_fill(~mask, 0.0)
    gains = (torch.pow(2.0, relevance) - 1.0 if gain == "exponential" else relevance) * mask
    with torch.no_grad():
        order = torch.sort(
            scores.detach().masked_fill(~mask, float("-inf")), dim=-1, descending=True, stable=True
        ).indices
        ranks = torch.argsort(order, dim=-1) + 1
        discounts = 1.0 / torch.log2(1.0 + ranks.to(scores.dtype))
        ideal_gains = torch.sort(gains, dim=-1, descending=True).values
        positions = torch.arange(1, scores.shape[-1] + 1, device=scores.device, dtype=scores.dtype)
        ideal_dcg = (ideal_gains / torch.log2(1.0 + positions)).sum(-1)
        weights = (
            (gains[:, :, None] - gains[:, None, :]).abs()
            * (discounts[:, :, None] - discounts[:, None, :]).abs()
            / ideal_dcg.clamp(min=torch.finfo(scores.dtype).tiny)[:, None, None]
        )
    pairs = mask[:, :, None] & mask[:, None, :] & (relevance[:, :, None] > relevance[:, None, :])
    safe_scores = scores.masked_fill(~mask, 0.0)
    differences = safe_scores[:, :, None] - safe_scores[:, None, :]
    per_pair = F.softplus(-differences) * weights * pairs
    per_page = per_pair.sum(dim=(-1, -2))
    return _mean_over(per_page, pairs.any(-1).any(-1) & (ideal_dcg > 0), scores)


def _check_modalities(modality_ids: Tensor, mask: Tensor, n_modalities: int) -> None:
    used = modality_ids[mask.bool()]
    if used.numel() and (int(used.min()) < 0 or int(used.max()) >= n_modalities):
        raise ValueError(
            f"modality ids of valid items must lie in 0..{n_modalities - 1}, got {int(used.min())}..{int(used.max())}"
        )


def intra_modal_pairwise_hinge(
    scores: Tensor,
    single_modal_scores: Tensor,
    modality_ids: Tensor,
    mask: Tensor,
    *,
    margin: float = 1.0,
    modality_weights: Tensor,
) -> ModalityLosses:
    """Intra-modal consistency, pairwise: keep each single-modal ranker's order inside its modality.

    scores f, single_modal_scores g, modality_ids (long, 0..n_modalities-1), mask:
    `[pages, items]`; modality_weights beta: `[n_modalities]`. For modality m,

        L_m = mean over pairs (i, j) of the same page, both valid and of modality m, with
              g(i) > g(j) (ties in g give no pair), of max(0, margin - (f(i) - f(j)))

    pooled over all pages of the batch; L_m = 0 where modality m has no pair. Returns
    total = sum_m beta_m * L_m and the unweighted L_m.
    """
    _check_shapes(scores, single_modal_scores, modality_ids, mask)
    mask = mask.bool()
    n_modalities = modality_weights.shape[0]
    _check_modalities(modality_ids, mask, n_modalities)
    safe_scores = scores.masked_fill(~mask, 0.0)
    safe_single = single_modal_scores.masked_fill(~mask, 0.0)
    pairs = (
        mask[:, :, None]
        & mask[:, None, :]
        & (modality_ids[:, :, None] == modality_ids[:, None, :])
        & (safe_single[:, :, None] > safe_single[:, None, :])
    )
    hinge = torch.relu(margin - (safe_scores[:, :, None] - safe_scores[:, None, :]))
    by_modality = []
    for modality in range(n_modalities):
        selected = pairs & (modality_ids == modality)[:, :, None]
        count = selected.sum()
        if int(count) == 0:
            by_modality.append(_zero_like_graph(scores))
        else:
            by_modality.append((hinge * selected).sum() / count)
    stacked = torch.stack(by_modality)
    return ModalityLosses((modality_weights.to(stacked) * stacked).sum(), stacked)


def intra_modal_list_mle(
    scores: Tensor,
    single_modal_scores: Tensor,
    modality_ids: Tensor,
    mask: Tensor,
    *,
    modality_weights: Tensor,
    squash: bool = False,
) -> ModalityLosses:
    """Intra-modal consistency, listwise: for modality m, L_m = ListMLE of f over the g order of
    the page's modality-m items (see `list_mle`; ties in g by slate order), mean over pages with
    >= 2 such items, 0 where there are none. Shapes as in `intra_modal_pairwise_hinge`."""
    _check_shapes(scores, single_modal_scores, modality_ids, mask)
    mask = mask.bool()
    n_modalities = modality_weights.shape[0]
    _check_modalities(modality_ids, mask, n_modalities)
    if squash:
        scores = torch.tanh(scores)
    by_modality = []
    for modality in range(n_modalities):
        per_page, eligible = _list_mle_per_page(scores, single_modal_scores, mask & (modality_ids == modality))
        by_modality.append(_mean_over(per_page, eligible, scores))
    stacked = torch.stack(by_modality)
    return ModalityLosses((modality_weights.to(stacked) * stacked).sum(), stacked)


def anchor_pairwise_hinge(
    scores: Tensor,
    preferred_index: Tensor,
    other_index: Tensor,
    pair_mask: Tensor,
    margin: float = 1.0,
) -> Tensor:
    """Cross-modal iso-label anchor pairs: mean over valid pairs of
    max(0, margin - (f(preferred) - f(other))); 0 when there is none.

    scores: `[pages, items]`; preferred_index, other_index (long item indices), pair_mask:
    `[pages, pairs]`. Indices of masked-out pairs may be anything in range, e.g. 0.
    """
    if preferred_index.shape != other_index.shape or preferred_index.shape != pair_mask.shape:
        raise ValueError("preferred_index, other_index and pair_mask must share one shape")
    pair_mask = pair_mask.bool()
    if not bool(pair_mask.any()):
        return _zero_like_graph(scores)
    preferred = scores.gather(-1, preferred_index.masked_fill(~pair_mask, 0))
    other = scores.gather(-1, other_index.masked_fill(~pair_mask, 0))
    hinge = torch.relu(margin - (preferred - other))
    return hinge[pair_mask].mean()


def smar_loss(
    scores: Tensor,
    page_relevance: Tensor,
    page_mask: Tensor,
    single_modal_scores: Tensor,
    modality_ids: Tensor,
    item_mask: Tensor,
    *,
    modality_weights: Tensor,
    intra_weight: float = 1.0,
    page_loss: PageLoss = "list_mle",
    intra_loss: IntraLoss = "pairwise_hinge",
    margin: float = 1.0,
    squash: bool = False,
    anchor_pairs: AnchorPairs | None = None,
    anchor_weight: float = 1.0,
) -> SmarLossParts:
    """L = L_page + intra_weight * sum_m beta_m * L_intra_m + anchor_weight * L_anchor.

    All tensors `[pages, items]` except modality_weights beta `[n_modalities]`. `page_mask` marks
    the items with a page-level grade in `page_relevance`; `item_mask` marks every real item
    (each has its single-modal score). L_anchor is 0 without `anchor_pairs`.
    """
    if page_loss == "list_mle":
        page = list_mle(scores, page_relevance, page_mask, squash=squash)
    elif page_loss == "softmax_cross_entropy":
        page = softmax_cross_entropy(scores, page_relevance, page_mask)
    elif page_loss == "lambda_loss_ndcg":
        page = lambda_loss_ndcg(scores, page_relevance, page_mask)
    else:
        raise ValueError(f"unknown page_loss {page_loss!r}")

    if intra_loss == "pairwise_hinge":
        intra = intra_modal_pairwise_hinge(
            scores,
            single_modal_scores,
            modality_ids,
            item_mask,
            margin=margin,
            modality_weights=modality_weights,
        )
    elif intra_loss == "list_mle":
        intra = intra_modal_list_mle(
            scores,
            single_modal_scores,
            modality_ids,
            item_mask,
            modality_weights=modality_weights,
            squash=squash,
        )
    else:
        raise ValueError(f"unknown intra_loss {intra_loss!r}")

    anchor = (
        anchor_pairwise_hinge(scores, *anchor_pairs, margin=margin)
        if anchor_pairs is not None
        else _zero_like_graph(scores)
    )
    total = page + intra_weight * intra.total + anchor_weight * anchor
    return SmarLossParts(total, page, intra.total, intra.by_modality, anchor)
