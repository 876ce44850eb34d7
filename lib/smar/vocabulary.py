"""The project's vocabulary, defined once: the words every step, table and command shares.

| name | what it is | where it shows |
|---|---|---|
| `MODALITIES` | the four kinds of result, in one fixed order | contracts' `modality`, the reranker's modality ids (index in this tuple) |
| `MIN_GRADE`..`MAX_GRADE` | the page-level grade scale and its rubric | annotation, labels, metrics |
| `SPLITS` | the query splits (`smar.splits` holds their hash rule) | every step |
| `BUDGET_STRATEGIES`, `TASK_STRATEGIES` | how a budget picks items; every strategy a task slice may have | annotation, reranker, contracts |
| `TASK_STATUSES` | open -> exported -> labelled | `silver.annotation_tasks.status` |
| `RERANKER_METHODS` | what `train-reranker` and the sweep can train (`DEFAULT_RERANKER_METHOD` first) | `gold.reranker_runs.method` |
| `SWEEP_LABEL_SOURCES`, `REPLAY_LABEL_SOURCES` | what a metric was measured against | `gold.budget_sweep`, `gold.replay_metrics` |
| `PROPENSITY_METHODS`, `EXPLORATION_IDENTIFICATIONS` | how a click examination curve was fitted | `gold.click_propensities` |
| `DECISIONS` | the replay's verdict | `gold.ab_decisions.decision` |
| `content_id` | the one way to name something by what defines it | model versions, run ids, sweep ids, replay ids |
| `day_range`, `days_ending`, `parse_day` | the one way to spell days | every `--ds` |

`tests/test_vocabulary.py` checks every list against the contracts' `allowed` lists.
This module imports only `smar.errors`, so every other module may import it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final, Literal, get_args

from smar.errors import InputRefused

# -- modalities ------------------------------------------------------------------------------------

Modality = Literal["web", "image", "video", "answer"]
#: The order is fixed: it is the generator's order (changing it would change the synthetic data)
#: and the reranker's modality ids are indexes into it (stored with every reranker artifact).
MODALITIES: Final[tuple[Modality, ...]] = get_args(Modality)
#: Modalities whose items carry a visual embedding next to their caption.
VISUAL_MODALITIES: Final[frozenset[str]] = frozenset({"image", "video"})

# -- grades ----------------------------------------------------------------------------------------

MIN_GRADE: Final = 0
MAX_GRADE: Final = 4
GRADES: Final[tuple[int, ...]] = tuple(range(MIN_GRADE, MAX_GRADE + 1))
#: What each page-level grade means (the annotators' rubric; the labeling config shows it).
GRADE_RUBRIC: Final[dict[int, str]] = {
    0: "0 fails to meet the need",
    1: "1 barely meets the need",
    2: "2 partially meets the need",
    3: "3 largely meets the need",
    4: "4 fully meets the need",
}

# -- query splits ----------------------------------------------------------------------------------

Split = Literal["single_modal_train", "page_train", "page_valid", "test"]
SPLITS: Final[tuple[Split, ...]] = get_args(Split)
#: Splits whose pages are annotated at a budget (train the page reranker, stop it early).
ANNOTATED_SPLITS: Final[tuple[Split, ...]] = ("page_train", "page_valid")
#: Splits held out and fully labelled: the evaluation set and the replay's scope.
EVALUATION_SPLITS: Final[tuple[Split, ...]] = ("test",)

# -- annotation ------------------------------------------------------------------------------------

BudgetStrategy = Literal["top", "slice", "random", "stratified"]
#: Strategies that pick a fixed budget of each modality's ranked list.
BUDGET_STRATEGIES: Final[tuple[BudgetStrategy, ...]] = get_args(BudgetStrategy)
ISO_LABEL: Final = "iso_label"  # binary search of grade boundaries, round by round
FULL: Final = "full"  # every candidate: the evaluation set
ISO_LABEL_BUDGET: Final = 0.0  # the budget column of iso_label slices (the search sets its own size)
TASK_STRATEGIES: Final[tuple[str, ...]] = (*BUDGET_STRATEGIES, ISO_LABEL, FULL)
DEFAULT_BUDGET: Final = 0.2

TaskStatus = Literal["open", "exported", "labelled"]
TASK_STATUSES: Final[tuple[TaskStatus, ...]] = get_args(TaskStatus)

# -- the page reranker -----------------------------------------------------------------------------

#: SMAR methods (page labels + single-modal supervision). smar_merge, the default: a calibrated
#: merge of the single-modal orders (it self-trains a residual merge below half the labels);
#: smar_pairwise / smar_listwise: the free-form reranker with the intra-modal consistency term.
SMAR_METHODS: Final[tuple[str, ...]] = ("smar_merge", "smar_pairwise", "smar_listwise")
DEFAULT_RERANKER_METHOD: Final = "smar_merge"
NEURAL_METHODS: Final[tuple[str, ...]] = (*SMAR_METHODS, "page_loss_only", "sft")
#: Gradient-boosted trees: LightGBM lambdarank, and LightGBM with a SMAR objective.
GBDT_METHODS: Final[tuple[str, ...]] = ("lightgbm", "gbdt_smar")
FUSION_METHODS: Final[tuple[str, ...]] = ("fusion_raw", "fusion_zscore", "fusion_interleave")
RERANKER_METHODS: Final[tuple[str, ...]] = (*NEURAL_METHODS, *GBDT_METHODS, *FUSION_METHODS)

# -- what a metric is measured against -------------------------------------------------------------

ORACLE: Final = "oracle"  # the generator's hidden grades (truth.relevance): synthetic data only
PAGE_LABELS: Final = "page_labels"  # annotators' grades (silver.page_labels)
# Counterfactual clicks@k of the replay (docs/replay.md), each an estimator of the same quantity.
CLICKS_PBM_IPS: Final = "clicks_pbm_ips"  # item-level position-based-model IPS
CLICKS_PBM_SN: Final = "clicks_pbm_sn"  # the same, self-normalised by each item's expected examinations
CLICKS_IIDR: Final = "clicks_iidr"  # independent-item doubly robust (a click model + logging propensities)
CLICKS_DM: Final = "clicks_dm"  # the click model alone (direct method): a diagnostic, off by default
ORACLE_CLICKS: Final = "oracle_clicks"  # the generator's exact expected clicks: synthetic data only
CLICK_LABEL_SOURCES: Final[tuple[str, ...]] = (CLICKS_PBM_IPS, CLICKS_PBM_SN, CLICKS_IIDR, CLICKS_DM, ORACLE_CLICKS)
NO_LABELS: Final = "none"  # label-free page shape (exposure)
SWEEP_LABEL_SOURCES: Final[tuple[str, ...]] = (ORACLE, PAGE_LABELS)
REPLAY_LABEL_SOURCES: Final[tuple[str, ...]] = (PAGE_LABELS, ORACLE, *CLICK_LABEL_SOURCES, NO_LABELS)

# -- click propensities (gold.click_propensities) --------------------------------------------------

#: How the examination curve is smoothed: a power law r^-eta, or a non-increasing (isotonic) fit.
PROPENSITY_METHODS: Final[tuple[str, ...]] = ("power_law", "isotonic")
#: How randomised (exploration) pages are told apart: an inversion of production_score order
#: inside a modality (a logged flag would be the next one: docs/replay.md).
EXPLORATION_BY_ORDER: Final = "production_score_order"
EXPLORATION_IDENTIFICATIONS: Final[tuple[str, ...]] = (EXPLORATION_BY_ORDER,)

Decision = Literal["SHIP", "NO_SHIP", "INCONCLUSIVE"]
DECISIONS: Final[tuple[Decision, ...]] = get_args(Decision)

# -- content ids -----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, set):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def canonical_json(definition: Any) -> str:
    """`definition` as JSON with sorted keys: equal definitions always give equal text."""
    return json.dumps(definition, sort_keys=True, default=_json_default)


def content_hash(definition: Any, *, length: int = 12) -> str:
    """The first `length` hex digits of sha256(canonical_json(definition))."""
    if not 1 <= length <= 64:
        raise ValueError(f"length must be 1..64, got {length}")
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()[:length]


def content_id(prefix: str, definition: Any, *, length: int = 12) -> str:
    """`<prefix>-<hex>`, named by what defines it: the same definition always gets the same id."""
    return f"{prefix}-{content_hash(definition, length=length)}"


# -- days ------------------------------------------------------------------------------------------


def parse_day(text: str, *, name: str = "ds") -> date:
    """A `YYYY-MM-DD` day; `InputRefused` naming `name` otherwise (exit 2). Days become folder
    names and partition values, so nothing but a real day gets through (`../../x` neither)."""
    if not isinstance(text, str) or len(text) != 10 or not _DAY.fullmatch(text):
        raise InputRefused(f"{name} must be a day YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputRefused(f"{name} must be a day YYYY-MM-DD, got {text!r}") from None


def check_run_id(text: str, *, name: str = "run_id") -> str:
    """`text` if it is a usable run id (letters, digits, `._-`, 1-128 characters, not starting
    with a dot); `InputRefused` otherwise. Run ids become folder names and table slices."""
    if not isinstance(text, str) or not _RUN_ID.fullmatch(text):
        raise InputRefused(f"{name} must be 1-128 characters of letters, digits, '.', '_' or '-', got {text!r}")
    return text


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def day_range(ds_start: str, ds_end: str) -> list[str]:
    """Every day from ds_start to ds_end, both included, as YYYY-MM-DD."""
    first, last = parse_day(ds_start, name="ds_start"), parse_day(ds_end, name="ds_end")
    if last < first:
        raise InputRefused(f"ds_end {ds_end} is before ds_start {ds_start}")
    return [(first + timedelta(days=offset)).isoformat() for offset in range((last - first).days + 1)]


def days_ending(ds: str, count: int) -> list[str]:
    """The `count` days ending on `ds` (included), oldest first."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    last = parse_day(ds)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(count - 1, -1, -1)]


def check_fraction(value: float, *, name: str, allow_zero: bool = False) -> float:
    """`value` if it is a fraction in (0, 1] ([0, 1] with `allow_zero`); ValueError otherwise."""
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (low_ok and value <= 1.0):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must be a fraction in {interval}, got {value}")
    return float(value)


def require_one_of(value: str, allowed: Sequence[str], *, name: str) -> str:
    """`value` if it is one of `allowed`; ValueError listing them otherwise."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value
