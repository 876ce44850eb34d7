"""Page-reranker losses, checked against numbers worked out by hand with plain `math`."""

from __future__ import annotations

import math

import pytest
import torch

from smar.reranker.losses import (
    AnchorPairs,
    anchor_pairwise_hinge,
    intra_modal_list_mle,
    intra_modal_pairwise_hinge,
    lambda_loss_ndcg,
    list_mle,
    smar_loss,
    softmax_cross_entropy,
)

NAN = float("nan")


def _log_sum_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values))


def _plackett_luce_nll(scores_in_order: list[float]) -> float:
    # -log P(order) = sum_k [log sum_{j >= k} exp(s_j) - s_k]
    return sum(_log_sum_exp(scores_in_order[k:]) - scores_in_order[k] for k in range(len(scores_in_order)))


def _tensor(rows, dtype=torch.float64, requires_grad=False) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype, requires_grad=requires_grad)


# ---- ListMLE -----------------------------------------------------------------------------------


def test_list_mle_matches_hand_computation():
    # Given scores [1, 2, 0.5] and grades [2, 0, 1]: the true order is items 0, 2, 1
    scores = _tensor([[1.0, 2.0, 0.5]])
    relevance = _tensor([[2.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, True]])
    # When / Then the loss is -log P(0, 2, 1)
    expected = _plackett_luce_nll([1.0, 0.5, 2.0])
    assert list_mle(scores, relevance, mask).item() == pytest.approx(expected, rel=1e-12)


def test_list_mle_ignores_padding_and_pages_with_fewer_than_two_items():
    # Given page 1 as above plus a NaN-padded column, page 2 with one valid item, page 3 empty
    scores = _tensor([[1.0, 2.0, 0.5, NAN], [5.0, NAN, NAN, NAN], [NAN] * 4], requires_grad=True)
    relevance = _tensor([[2.0, 0.0, 1.0, NAN], [3.0, NAN, NAN, NAN], [NAN] * 4])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False], [False] * 4])
    # When
    loss = list_mle(scores, relevance, mask)
    loss.backward()
    # Then only page 1 counts (mean over one page, not three), and gradients are finite,
    # zero on padding and on the excluded pages
    assert loss.item() == pytest.approx(_plackett_luce_nll([1.0, 0.5, 2.0]), rel=1e-12)
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0, 3] == 0 and (scores.grad[1:] == 0).all()
    # And the best-graded item is pushed up, the worst down
    assert scores.grad[0, 0] < 0 < scores.grad[0, 1]


def test_list_mle_averages_over_eligible_pages():
    scores = _tensor([[1.0, 2.0, 0.5], [0.0, 3.0, NAN]])
    relevance = _tensor([[2.0, 0.0, 1.0], [1.0, 0.0, NAN]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected = (_plackett_luce_nll([1.0, 0.5, 2.0]) + _plackett_luce_nll([0.0, 3.0])) / 2
    assert list_mle(scores, relevance, mask).item() == pytest.approx(expected, rel=1e-12)


def test_list_mle_stable_ties_keep_slate_order():
    # Given grades [1, 1, 0] tied on the first two, and scores favouring item 1
    scores = _tensor([[0.0, 2.0, 1.0]])
    relevance = _tensor([[1.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    # Then the stable order is 0, 1, 2 (not 1, 0, 2)
    loss = list_mle(scores, relevance, mask, tie_break="stable").item()
    assert loss == pytest.approx(_plackett_luce_nll([0.0, 2.0, 1.0]), rel=1e-12)
    assert loss != pytest.approx(_plackett_luce_nll([2.0, 0.0, 1.0]), rel=1e-6)


def test_list_mle_random_ties_use_both_orders_and_the_generator():
    scores = _tensor([[0.0, 2.0, 1.0]])
    relevance = _tensor([[1.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    either = {
        round(_plackett_luce_nll([0.0, 2.0, 1.0]), 9),
        round(_plackett_luce_nll([2.0, 0.0, 1.0]), 9),
    }
    seen = set()
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        value = list_mle(scores, relevance, mask, tie_break="random", generator=generator).item()
        seen.add(round(value, 9))
    assert seen == either
    # And one seed gives one answer
    first = list_mle(scores, relevance, mask, tie_break="random", generator=torch.Generator().manual_seed(3))
    again = list_mle(scores, relevance, mask, tie_break="random", generator=torch.Generator().manual_seed(3))
    assert first.item() == again.item()


def test_list_mle_squash_applies_tanh_first():
    scores = _tensor([[1.0, 2.0, 0.5]])
    relevance = _tensor([[2.0, 0.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    expected = _plackett_luce_nll([math.tanh(1.0), math.tanh(0.5), math.tanh(2.0)])
    assert list_mle(scores, relevance, mask, squash=True).item() == pytest.approx(expected)


def test_list_mle_is_stable_for_large_scores_in_float32():
    # Given scores far beyond exp()'s float32 range
    scores = torch.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    relevance = torch.tensor([[0.0, 1.0, 2.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss = list_mle(scores, relevance, mask)
    loss.backward()
    # Then -log P(2, 1, 0) = (1000 - (-1000)) + (1000 - 0) + 0, up to exp(-1000) terms
    assert loss.item() == pytest.approx(3000.0, rel=1e-6)
    assert torch.isfinite(scores.grad).all()


def test_list_mle_without_eligible_pages_is_an_attached_zero():
    scores = _tensor([[1.0, NAN]], requires_grad=True)
    loss = list_mle(scores, _tensor([[1.0, NAN]]), torch.tensor([[True, False]]))
    loss.backward()
    assert loss.item() == 0.0
    assert (scores.grad == 0).all()


# ---- ListNet top-one -------------------------------------------------------------------------


def test_softmax_cross_entropy_matches_hand_computation_and_masks_padding():
    scores = _tensor([[1.0, 2.0, 0.0, NAN]], requires_grad=True)
    relevance = _tensor([[2.0, 0.0, 1.0, NAN]])
    mask = torch.tensor([[True, True, True, False]])
    target_norm = _log_sum_exp([2.0, 0.0, 1.0])
    score_norm = _log_sum_exp([1.0, 2.0, 0.0])
    expected = -sum(
        math.exp(grade - target_norm) * (score - score_norm) for grade, score in [(2.0, 1.0), (0.0, 2.0), (1.0, 0.0)]
    )
    loss = softmax_cross_entropy(scores, relevance, mask)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 3] == 0
    # Gradient of ListNet is softmax(scores) - softmax(relevance)
    expected_grad_0 = math.exp(1.0 - score_norm) - math.exp(2.0 - target_norm)
    assert scores.grad[0, 0].item() == pytest.approx(expected_grad_0, rel=1e-12)


# ---- LambdaRank-weighted NDCG loss ---------------------------------------------------------------


def _lambda_expected(scores, grades, gain) -> float:
    # Ranks by score (descending), gains, ideal DCG, then the weighted pairwise logistic loss.
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    rank = {item: position + 1 for position, item in enumerate(order)}
    gains = [gain(grade) for grade in grades]
    discount = {item: 1 / math.log2(1 + rank[item]) for item in rank}
    ideal = sum(g / math.log2(2 + k) for k, g in enumerate(sorted(gains, reverse=True)))
    total = 0.0
    for i in range(len(scores)):
        for j in range(len(scores)):
            if grades[i] > grades[j]:
                weight = abs(gains[i] - gains[j]) * abs(discount[i] - discount[j]) / ideal
                total += weight * math.log(1 + math.exp(-(scores[i] - scores[j])))
    return total


@pytest.mark.parametrize(
    ("gain_name", "gain"),
    [("exponential", lambda grade: 2**grade - 1), ("linear", lambda grade: grade)],
)
def test_lambda_loss_matches_hand_computation(gain_name, gain):
    # Given scores [0.5, 2, 1] (ranks 3, 1, 2) and grades [2, 0, 1], plus a padded column
    scores = _tensor([[0.5, 2.0, 1.0, NAN]], requires_grad=True)
    relevance = _tensor([[2.0, 0.0, 1.0, NAN]])
    mask = torch.tensor([[True, True, True, False]])
    loss = lambda_loss_ndcg(scores, relevance, mask, gain=gain_name)
    assert loss.item() == pytest.approx(_lambda_expected([0.5, 2.0, 1.0], [2, 0, 1], gain), rel=1e-12)
    loss.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 3] == 0
    assert scores.grad[0, 0] < 0 < scores.grad[0, 1]


def test_lambda_loss_skips_pages_with_one_grade_only():
    # Given page 1 as above and page 2 whose items all share one grade (no pair)
    scores = _tensor([[0.5, 2.0, 1.0], [3.0, 1.0, 2.0]])
    relevance = _tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    expected = _lambda_expected([0.5, 2.0, 1.0], [2, 0, 1], lambda grade: 2**grade - 1)
    assert lambda_loss_ndcg(scores, relevance, mask).item() == pytest.approx(expected, rel=1e-12)


# ---- intra-modal consistency -----------------------------------------------------------------


def _intra_fixture(requires_grad: bool = False):
    # Page 1: items 0, 1 of modality 0 and 2, 3 of modality 1, one padded column.
    # Page 2: items 0, 1, 2 of modality 0 (items 0 and 1 tied in g), two padded columns.
    scores = _tensor([[0.2, 0.5, 1.0, 0.0, NAN], [3.0, 0.0, 0.0, NAN, NAN]], requires_grad=requires_grad)
    single_modal = _tensor([[0.9, 0.1, 0.3, 0.8, NAN], [0.5, 0.5, 0.2, NAN, NAN]])
    modality_ids = torch.tensor([[0, 0, 1, 1, -1], [0, 0, 0, -1, -1]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    weights = _tensor([0.5, 2.0, 1.0])  # modality 2 has no items
    return scores, single_modal, modality_ids, mask, weights


def test_intra_modal_pairwise_hinge_matches_hand_computation():
    scores, single_modal, modality_ids, mask, weights = _intra_fixture(requires_grad=True)
    result = intra_modal_pairwise_hinge(scores, single_modal, modality_ids, mask, margin=1.0, modality_weights=weights)
    # Modality 0 pairs: page 1 (0 over 1): max(0, 1 - (0.2 - 0.5)) = 1.3;
    # page 2 (0 over 2): max(0, 1 - 3) = 0, (1 over 2): max(0, 1 - 0) = 1; the tie 0~1 gives none.
    modality_0 = (1.3 + 0.0 + 1.0) / 3
    # Modality 1: page 1 (3 over 2): max(0, 1 - (0 - 1)) = 2.
    modality_1 = 2.0
    assert result.by_modality.tolist() == pytest.approx([modality_0, modality_1, 0.0])
    assert result.total.item() == pytest.approx(0.5 * modality_0 + 2.0 * modality_1)
    result.total.backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0, 4] == 0 and scores.grad[1, 3] == 0 and scores.grad[1, 4] == 0
    # The satisfied pair (page 2: 0 over 2) adds no gradient to item 0 of page 2
    assert scores.grad[1, 0] == 0


def test_intra_modal_pairwise_hinge_margin_changes_the_value():
    scores, single_modal, modality_ids, mask, weights = _intra_fixture()
    result = intra_modal_pairwise_hinge(scores, single_modal, modality_ids, mask, margin=0.0, modality_weights=weights)
    # With margin 0 only violated pairs count: 0.3 (page 1, modality 0) and 1.0 (modality 1)
    assert result.by_modality.tolist() == pytest.approx([0.3 / 3, 1.0, 0.0])


def test_intra_modal_list_mle_matches_hand_computation():
    scores, single_modal, modality_ids, mask, weights = _intra_fixture(requires_grad=True)
    result = intra_modal_list_mle(scores, single_modal, modality_ids, mask, modality_weights=weights)
    # Modality 0: page 1 order (0, 1) -> f [0.2, 0.5]; page 2 order (0, 1, 2), tie by slate order
    modality_0 = (_plackett_luce_nll([0.2, 0.5]) + _plackett_luce_nll([3.0, 0.0, 0.0])) / 2
    # Modality 1: page 1 order (3, 2) -> f [0.0, 1.0]; page 2 has none, so it is not averaged in
    modality_1 = _plackett_luce_nll([0.0, 1.0])
    assert result.by_modality.tolist() == pytest.approx([modality_0, modality_1, 0.0])
    assert result.total.item() == pytest.approx(0.5 * modality_0 + 2.0 * modality_1)
    result.total.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 4] == 0


def test_intra_modal_refuses_modality_ids_out_of_range():
    scores, single_modal, modality_ids, mask, _ = _intra_fixture()
    with pytest.raises(ValueError, match="modality ids"):
        intra_modal_pairwise_hinge(scores, single_modal, modality_ids, mask, modality_weights=_tensor([1.0]))


# ---- anchors and the combined loss ----------------------------------------------------------


def test_anchor_pairwise_hinge_matches_hand_computation():
    scores = _tensor([[1.0, 0.5, 3.0]], requires_grad=True)
    preferred = torch.tensor([[0, 2, 1]])
    other = torch.tensor([[1, 0, 0]])
    pair_mask = torch.tensor([[True, True, False]])
    # max(0, 1 - (1 - 0.5)) = 0.5 and max(0, 1 - (3 - 1)) = 0; the masked pair is ignored
    loss = anchor_pairwise_hinge(scores, preferred, other, pair_mask, margin=1.0)
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert scores.grad[0].tolist() == pytest.approx([-0.5, 0.5, 0.0])
    # And no pair at all gives an attached zero
    empty = anchor_pairwise_hinge(scores, preferred, other, torch.zeros(1, 3, dtype=torch.bool))
    assert empty.item() == 0.0


@pytest.mark.parametrize("intra_loss", ["pairwise_hinge", "list_mle"])
def test_smar_loss_adds_its_parts(intra_loss):
    # Given the intra-modal fixture, page grades on three items of page 1 and two of page 2
    scores, single_modal, modality_ids, item_mask, weights = _intra_fixture(requires_grad=True)
    page_relevance = _tensor([[2.0, NAN, 1.0, 0.0, NAN], [1.0, 0.0, NAN, NAN, NAN]])
    page_mask = torch.tensor([[True, False, True, True, False], [True, True, False, False, False]])
    anchors = AnchorPairs(
        torch.tensor([[2, 0], [0, 0]]),
        torch.tensor([[1, 0], [2, 0]]),
        torch.tensor([[True, False], [True, False]]),
    )
    # When
    parts = smar_loss(
        scores,
        page_relevance,
        page_mask,
        single_modal,
        modality_ids,
        item_mask,
        modality_weights=weights,
        intra_weight=0.3,
        intra_loss=intra_loss,
        anchor_pairs=anchors,
        anchor_weight=2.0,
    )
    # Then page = ListMLE over page 1 order (0, 2, 3) and page 2 order (0, 1)
    page = (_plackett_luce_nll([0.2, 1.0, 0.0]) + _plackett_luce_nll([3.0, 0.0])) / 2
    # anchor = mean(max(0, 1 - (1.0 - 0.5)), max(0, 1 - (3 - 0))) = 0.25
    anchor = 0.25
    if intra_loss == "pairwise_hinge":
        intra = 0.5 * (1.3 + 0.0 + 1.0) / 3 + 2.0 * 2.0
    else:
        intra = 0.5 * (
            (_plackett_luce_nll([0.2, 0.5]) + _plackett_luce_nll([3.0, 0.0, 0.0])) / 2
        ) + 2.0 * _plackett_luce_nll([0.0, 1.0])
    assert parts.page.item() == pytest.approx(page)
    assert parts.intra.item() == pytest.approx(intra)
    assert parts.anchor.item() == pytest.approx(anchor)
    assert parts.total.item() == pytest.approx(page + 0.3 * intra + 2.0 * anchor)
    assert parts.intra_by_modality.shape == (3,)
    parts.total.backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0, 4] == 0 and scores.grad[1, 4] == 0


@pytest.mark.parametrize("page_loss", ["softmax_cross_entropy", "lambda_loss_ndcg"])
def test_smar_loss_selects_the_page_loss(page_loss):
    scores, single_modal, modality_ids, item_mask, weights = _intra_fixture()
    page_relevance = _tensor([[2.0, 0.0, 1.0, 0.0, NAN], [1.0, 0.0, 2.0, NAN, NAN]])
    parts = smar_loss(
        scores,
        page_relevance,
        item_mask,
        single_modal,
        modality_ids,
        item_mask,
        modality_weights=weights,
        intra_weight=0.0,
        page_loss=page_loss,
    )
    direct = (softmax_cross_entropy if page_loss == "softmax_cross_entropy" else lambda_loss_ndcg)(
        scores, page_relevance, item_mask
    )
    assert parts.total.item() == pytest.approx(direct.item())
    assert parts.anchor.item() == 0.0
