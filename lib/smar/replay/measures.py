"""What the replay measures: metric and label-source names, the per-query and summary row
shapes, and `MetricConfig`.

The scope is the held-out queries (split `test` by default, `smar.splits`) of a `ds` range in
bronze.search_logs. Each page (one request) is re-ordered by the control and by the candidate;
both orders are then measured on the same pages:

* against page labels (label source `page_labels`): the consensus grade of (query, item), i.e.
  the mean grade over annotators and rounds in silver.page_labels;
* against the generator's hidden grades (label source `oracle`): truth.relevance, which exists on
  synthetic data only. Never a training signal; reported so demo runs can be checked;
* counterfactual click estimates of clicks@k (`clicks_pbm_ips`, `clicks_pbm_sn`, `clicks_iidr`,
  and the simulator's exact `oracle_clicks` on synthetic data): see `smar.replay.clicks`;
* label-free page shape (`none`): modality exposure share in the top k and modality share at
  each position.

Label metrics use condensed lists: items without a grade are removed before ranking, so an
unjudged item is neither rewarded nor punished (Sakai 2007). Ties in score are broken by item id
descending (trec_eval), NDCG uses `MetricConfig.gain`, and a page whose judged items all have
grade 0 has no NDCG (left out, like trec_eval without -c). A query's value is the mean over its
pages; queries are the unit of the bootstrap (`smar.metrics.bootstrap`).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from smar.config import FrozenConfig
from smar.metrics.conventions import Gain
from smar.vocabulary import ORACLE, PAGE_LABELS, SPLITS

ARMS: tuple[str, str] = ("control", "candidate")
ALL_SEGMENT = "all"

#: Label sources measured against grades, and the replay frame column holding each one's grade.
GRADE_COLUMNS: dict[str, str] = {PAGE_LABELS: "page_label_grade", ORACLE: "oracle_grade"}

# metric values in gold.replay_metrics
NDCG = "ndcg"
CROSS_MODAL_PNR = "cross_modal_pnr"
CROSS_MODAL_PAIR_ACCURACY = "cross_modal_pair_accuracy"
EXPOSURE_SHARE = "exposure_share"
POSITION_SHARE = "position_share"
CLICKS = "clicks"

#: Columns of the per-query long table (`per_query_metrics`), before the bootstrap.
PER_QUERY_COLUMNS: tuple[str, ...] = (
    "metric", "segment", "k", "label_source", "query_id",
    "control_numerator", "control_denominator", "candidate_numerator", "candidate_denominator",
)  # fmt: skip
#: Columns of the summary rows (one per metric, segment, k, label source): gold.replay_metrics' values.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "metric", "segment", "k", "label_source",
    "control_value", "candidate_value", "delta", "ci_low", "ci_high", "n_queries",
)  # fmt: skip


class MetricConfig(FrozenConfig):
    """What the replay measures. Defaults are the team's standard replay."""

    query_splits: tuple[str, ...] = Field(
        default=("test",), description="query splits replayed (smar.splits); held-out `test` by default"
    )
    cutoffs: tuple[int, ...] = Field(default=(1, 3, 5, 10), description="k of page-level NDCG@k")
    gain: Gain = Field(
        default="exponential",
        description="NDCG gain: exponential 2^grade - 1 (web-search convention, LightGBM's default), or linear",
    )
    per_modality_k: int = Field(
        default=10, ge=1, description="k of per-modality NDCG@k (positions inside the modality)"
    )
    exposure_k: int = Field(default=10, ge=1, description="top-k window of modality exposure share and position shares")
    click_cutoffs: tuple[int, ...] = Field(default=(5, 10), description="k of the clicks@k estimates")
    max_unscored_page_fraction: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="pages where a ranking leaves an impression unscored are dropped (and counted); "
        "above this fraction of the scope the replay fails instead",
    )

    @model_validator(mode="after")
    def _check(self) -> MetricConfig:
        unknown = set(self.query_splits) - set(SPLITS)
        if unknown or not self.query_splits:
            raise ValueError(f"query_splits must be a non-empty subset of {SPLITS}, got {self.query_splits}")
        for name in ("cutoffs", "click_cutoffs"):
            values = getattr(self, name)
            if not values or any(k < 1 for k in values):
                raise ValueError(f"{name} must be positive integers, got {values}")
        return self
