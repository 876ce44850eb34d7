"""NumPy reference metrics on tiny hand-computed fixtures, one convention at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smar.metrics import (
    average_precision,
    cross_modal_pair_counts,
    cross_modal_pnr,
    dcg_at,
    expected_reciprocal_rank,
    gain_values,
    mean_over_queries,
    modality_exposure_share,
    ndcg_at,
    parse_measures,
    per_modality_ndcg,
    precision_at,
    ranking_order,
    recall_at,
    reciprocal_rank,
)

# Four documents; d2 (grade 2) and d3 (grade 0) tie at 0.8, so the tie rule decides the order.
RELEVANCE = [3, 2, 0, 1]
SCORES = [0.9, 0.8, 0.8, 0.1]
DOC_IDS = ["d1", "d2", "d3", "d4"]
IDEAL_LINEAR = 3 + 2 / math.log2(3) + 1 / math.log2(4)


def test_ranking_order_breaks_ties_by_doc_id_descending() -> None:
    # Given equal scores for "d10", "d9", "d2" (string order d9 > d2 > d10)
    # When ranking with the trec_eval rule
    order = ranking_order([1.0, 1.0, 1.0, 2.0], doc_ids=["d10", "d9", "d2", "a"], ties="doc_id_desc")
    # Then the higher score comes first, then ties in descending string order
    assert order.tolist() == [3, 1, 2, 0]


def test_ranking_order_input_order_is_stable() -> None:
    # Given ties, when ranking in input order, then the given order is kept among them
    assert ranking_order([0.5, 0.7, 0.5, 0.5], ties="input_order").tolist() == [1, 0, 2, 3]


def test_ranking_order_refuses_nan_and_missing_doc_ids() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ranking_order([0.1, float("nan")], ties="input_order")
    with pytest.raises(ValueError, match="doc_ids"):
        ranking_order([0.1, 0.2], ties="doc_id_desc")


def test_gain_values_linear_exponential_and_negative_grades() -> None:
    # Given grades including trec_eval's -1 (unjudged in pool)
    grades = [-1, 0, 1, 3]
    # Then negative grades give no gain under both gains
    assert gain_values(grades, "linear").tolist() == [0, 0, 1, 3]
    assert gain_values(grades, "exponential").tolist() == [0, 0, 1, 7]
    with pytest.raises(ValueError, match="gain"):
        gain_values(grades, "quadratic")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ties", "expected_dcg"),
    [
        # d1, d3, d2, d4
        ("doc_id_desc", 3 + 0 + 2 / math.log2(4) + 1 / math.log2(5)),
        # d1, d2, d3, d4
        ("input_order", 3 + 2 / math.log2(3) + 0 + 1 / math.log2(5)),
        # d2 and d3 share the mean discount of ranks 2 and 3
        ("average", 3 + 2 * (1 / math.log2(3) + 1 / math.log2(4)) / 2 + 1 / math.log2(5)),
    ],
)
def test_ndcg_tie_rules(ties: str, expected_dcg: float) -> None:
    # When NDCG is computed with each tie rule
    value = ndcg_at(RELEVANCE, SCORES, doc_ids=DOC_IDS, ties=ties)  # type: ignore[arg-type]
    # Then DCG follows that rule and the ideal DCG is the sorted grades'
    assert value == pytest.approx(expected_dcg / IDEAL_LINEAR)


def test_ndcg_average_ties_matches_scikit_learn() -> None:
    # Given scikit-learn's tie-averaged NDCG as an independent oracle (linear gain)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    grades = rng.integers(0, 4, size=12)
    scores = rng.integers(0, 4, size=12).astype(float)  # many ties
    for k in (None, 3, 7):
        expected = sklearn_metrics.ndcg_score([grades], [scores], k=k, ignore_ties=False)
        # Then ours agrees at every cutoff
        assert ndcg_at(grades, scores, k=k, ties="average") == pytest.approx(expected)


def test_ndcg_exponential_gain_and_cutoff() -> None:
    # Given exponential gains 7, 3, 0, 1 and input-order ties
    value = ndcg_at(RELEVANCE, SCORES, gain="exponential", ties="input_order")
    ideal = 7 + 3 / math.log2(3) + 1 / math.log2(4)
    assert value == pytest.approx((7 + 3 / math.log2(3) + 1 / math.log2(5)) / ideal)
    # And with k=2 (trec rule: d1 then d3) both DCG and ideal DCG are cut at 2
    at_two = ndcg_at(RELEVANCE, SCORES, k=2, doc_ids=DOC_IDS)
    assert at_two == pytest.approx(3 / (3 + 2 / math.log2(3)))


def test_ndcg_ideal_over_judged_documents_not_retrieved() -> None:
    # Given one retrieved relevant doc, and a second relevant judged doc that was not retrieved
    value = ndcg_at([1, 0], [0.9, 0.1], ties="input_order", judged_relevance=[1, 0, 1])
    # Then the ideal ranking includes the unretrieved one (trec_eval)
    assert value == pytest.approx(1 / (1 + 1 / math.log2(3)))


@pytest.mark.parametrize(("empty", "expected"), [(0.0, 0.0), (1.0, 1.0)])
def test_empty_query_value(empty: float, expected: float) -> None:
    # Given a query with nothing relevant, then every metric returns the chosen empty value
    grades, scores = [0, 0], [0.3, 0.2]
    common = {"ties": "input_order", "empty": empty}
    assert ndcg_at(grades, scores, **common) == expected  # type: ignore[arg-type]
    assert reciprocal_rank(grades, scores, **common) == expected  # type: ignore[arg-type]
    assert average_precision(grades, scores, **common) == expected  # type: ignore[arg-type]
    assert precision_at(grades, scores, k=1, **common) == expected  # type: ignore[arg-type]
    assert expected_reciprocal_rank(grades, scores, **common) == expected  # type: ignore[arg-type]


def test_empty_none_is_nan_and_left_out_of_means() -> None:
    # Given two queries, one without relevant documents and empty=None
    values = [
        ndcg_at([1, 0], [0.2, 0.1], ties="input_order"),
        ndcg_at([0, 0], [0.2, 0.1], ties="input_order"),
    ]
    # Then the empty one is NaN and the mean is over the other only
    assert math.isnan(values[1])
    assert mean_over_queries(values) == 1.0
    assert math.isnan(mean_over_queries([float("nan")]))


def test_dcg_refuses_bad_cutoff_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="cutoff"):
        dcg_at([1, 0], [0.2, 0.1], k=0, ties="input_order")
    with pytest.raises(ValueError, match="same length"):
        dcg_at([1, 0, 1], [0.2, 0.1], ties="input_order")


def test_reciprocal_rank_with_and_without_cutoff() -> None:
    # Given the first relevant document at rank 3
    grades, scores = [0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]
    assert reciprocal_rank(grades, scores, ties="input_order") == pytest.approx(1 / 3)
    # Then a cutoff above it finds nothing
    assert reciprocal_rank(grades, scores, k=2, ties="input_order") == 0.0
    # And a threshold of 2 makes grade-1 documents non-relevant (empty query)
    assert reciprocal_rank(grades, scores, ties="input_order", relevance_threshold=2, empty=0.0) == 0.0


def test_average_ties_refused_where_undefined() -> None:
    with pytest.raises(ValueError, match="average"):
        reciprocal_rank([1], [0.1], ties="average")
    with pytest.raises(ValueError, match="average"):
        average_precision([1], [0.1], ties="average")


def test_average_precision_counts_unretrieved_relevant() -> None:
    # Given relevant docs at ranks 1 and 3, and a third relevant doc never retrieved
    value = average_precision([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], ties="input_order", judged_relevance=[1, 0, 1, 0, 1])
    # Then AP = (P@1 + P@3) / 3
    assert value == pytest.approx((1 / 1 + 2 / 3) / 3)
    # And AP@2 keeps the denominator of all relevant documents
    cut = average_precision(
        [1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], k=2, ties="input_order", judged_relevance=[1, 0, 1, 0, 1]
    )
    assert cut == pytest.approx(1 / 3)


def test_precision_and_recall_at_k() -> None:
    grades, scores = [1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1]
    assert precision_at(grades, scores, k=3, ties="input_order") == pytest.approx(2 / 3)
    # trec_eval divides by k even past the end of the list
    assert precision_at(grades, scores, k=10, ties="input_order") == pytest.approx(2 / 10)
    assert recall_at(grades, scores, k=1, ties="input_order", judged_relevance=[1, 0, 1, 0, 1]) == pytest.approx(1 / 3)


def test_precision_average_ties_is_expectation() -> None:
    # Given a relevant and a non-relevant document tied across the cutoff k=1
    value = precision_at([0, 1], [0.5, 0.5], k=1, ties="average")
    # Then half a relevant document is expected in the top 1
    assert value == pytest.approx(0.5)


def test_expected_reciprocal_rank() -> None:
    # Given grades 2, 0, 1 with max grade 4: stop probabilities 3/16, 0, 1/16
    value = expected_reciprocal_rank([2, 0, 1], [0.3, 0.2, 0.1], ties="input_order")
    expected = 3 / 16 + (1 - 3 / 16) * 0 / 2 + (1 - 3 / 16) * 1 * (1 / 16) / 3
    assert value == pytest.approx(expected)
    assert expected_reciprocal_rank([2, 0, 1], [0.3, 0.2, 0.1], k=1, ties="input_order") == pytest.approx(3 / 16)
    with pytest.raises(ValueError, match="max_grade"):
        expected_reciprocal_rank([5], [0.1], ties="input_order")


def test_per_modality_ndcg_scores_each_sub_list() -> None:
    # Given web items in the wrong order and a single image item
    grades = [0, 2, 1, 0]
    scores = [0.9, 0.5, 0.7, 0.2]
    modalities = ["web", "web", "image", "video"]
    result = per_modality_ndcg(grades, scores, modalities, ties="input_order", empty=None)
    # Then web's NDCG is that of its own sub-list, image is perfect, video has nothing relevant
    assert result["web"] == pytest.approx((2 / math.log2(3)) / 2)
    assert result["image"] == pytest.approx(1.0)
    assert math.isnan(result["video"])


def test_cross_modal_pnr_counts_only_cross_modal_pairs() -> None:
    # Given a page: w1 (3, .9), i1 (2, .95), w2 (1, .5), i2 (0, .4), v1 (2, .5)
    grades = [3, 2, 1, 0, 2]
    scores = [0.9, 0.95, 0.5, 0.4, 0.5]
    modalities = ["web", "image", "web", "image", "video"]
    counts = cross_modal_pair_counts(grades, scores, modalities)
    # Then w1<i1 is mis-ordered, v1=w2 is a score tie, five more pairs are right;
    # same-modality pairs (w1-w2, i1-i2) and equal grades (i1-v1) are not counted
    assert (counts.concordant, counts.discordant, counts.tied) == (5, 1, 1)
    assert cross_modal_pnr(grades, scores, modalities) == pytest.approx(5.5 / 1.5)


def test_cross_modal_pnr_edge_cases() -> None:
    # A single modality has no cross-modal pair: NaN; all pairs right: inf
    assert math.isnan(cross_modal_pnr([1, 0], [0.2, 0.1], ["web", "web"]))
    assert math.isinf(cross_modal_pnr([1, 0], [0.2, 0.1], ["web", "image"]))


def test_modality_exposure_share() -> None:
    scores = [0.9, 0.7, 0.5, 0.1]
    modalities = ["web", "image", "web", "video"]
    top_two = modality_exposure_share(scores, modalities, k=2, ties="input_order")
    # Then the top 2 holds one web and one image item; video is listed with 0
    assert top_two == {"image": 0.5, "video": 0.0, "web": 0.5}
    # And k beyond the page uses the whole page
    everything = modality_exposure_share(scores, modalities, k=10, ties="input_order")
    assert everything == pytest.approx({"image": 0.25, "video": 0.25, "web": 0.5})


def test_parse_measures_names_and_parameter_form() -> None:
    parsed = parse_measures(["ndcg", "P.5,10", "ndcg_cut_10", "err_20", "P_5"])
    # Then the parameter form expands and duplicates are dropped
    assert [m.name for m in parsed] == ["ndcg", "P_5", "P_10", "ndcg_cut_10", "err_20"]
    assert parsed[3].family == "ndcg_cut" and parsed[3].k == 10
    with pytest.raises(ValueError, match="unknown measure"):
        parse_measures(["bpref"])
    with pytest.raises(ValueError, match="unknown measure"):
        parse_measures(["P_0"])
