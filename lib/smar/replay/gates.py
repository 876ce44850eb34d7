"""Sanity gates for click estimates: a failed gate marks the click rows unreliable, with the reason.

As counterfactual click evaluation of blended (vertical) pages is checked in practice (Li, Kim
and Zitouni 2015; Chen et al. 2012), three properties must hold before a click estimate may be
read at all:

* `self_normalisation_gate`: a self-normalised estimator divides by a weight sum whose
  expectation is known (1 per row or per position under the logging policy). A realised
  normaliser far from 1 means the weights do not mean what the estimator assumes (wrong
  propensities, or weights such as gamma_t / gamma_p that never averaged to 1: the old SNIPS).
  PASS iff |normaliser - 1| <= tolerance.
* `monotone_in_k_gate`: clicks@k is a sum of non-negative terms over ranks 1..k, so each arm's
  estimate must not decrease in k. PASS iff value(k_next) >= value(k) - tolerance for every arm
  and consecutive cutoffs. (IPS and the ratio estimator pass by construction; a doubly robust
  correction can break it.)
* `aa_gate`: the estimator run with candidate = control must give a delta of exactly 0 and the
  interval [0, 0]. Anything else is a bug (tie-breaking, a rank computed twice, float noise).
* `range_gate`: clicks@k per page lies in [0, k] for each arm (a page has at most k clicks in
  its top k), and the delta's interval is narrower than k. A doubly robust correction weighted
  by n / eps can break either: the estimate is then noise.
* `support_gate`: the arms must differ (an item at another rank within the top k) on the pages
  of at least `min_queries` queries. The paired query bootstrap treats queries as the
  independent units; when the difference rests on a handful of queries (e.g. a candidate equal
  to production that differs only on the randomised pages) the interval is too narrow: measured
  72.5% coverage of a true +0.023 that rested on about 10 queries.
* `propensity_gate`: the examination curve exists (a fit error is carried as its reason), its
  shape is not rejected by its goodness-of-fit test (p >= min_p_value), and, unless the band is
  propagated into the click intervals (the default), its band is not wider than
  `max_relative_band` at the deepest position the arms use.

`click_reliability` folds the gates into (reliable, reasons) for gold.replay_metrics' proposed
columns `reliable` and `unreliable_reason`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GateResult:
    """One gate: its name, PASS or FAIL, the measured value, the threshold, and a sentence."""

    name: str
    passed: bool
    value: float
    threshold: float
    reason: str


def self_normalisation_gate(name: str, normaliser: float, *, tolerance: float = 0.1) -> GateResult:
    """PASS iff |normaliser - 1| <= tolerance (normaliser = realised weight sum / its expectation)."""
    ok = math.isfinite(normaliser) and abs(normaliser - 1.0) <= tolerance
    verdict = "within" if ok else "outside"
    return GateResult(
        f"self_normalisation[{name}]", ok, float(normaliser), tolerance,
        f"{name}: self-normalising denominator {normaliser:.3f}, {verdict} 1 +/- {tolerance:g}",
    )  # fmt: skip


def monotone_in_k_gate(name: str, values: Mapping[str, Mapping[int, float]], *, tolerance: float = 1e-9) -> GateResult:
    """PASS iff for every arm the clicks@k values (k -> value) do not decrease in k."""
    worst, where = 0.0, ""
    for arm, by_k in values.items():
        cutoffs = sorted(by_k)
        for low, high in itertools.pairwise(cutoffs):
            drop = by_k[low] - by_k[high]
            if not (math.isfinite(drop)) or drop > worst:
                worst, where = (
                    (drop if math.isfinite(drop) else math.inf),
                    f"{arm}: clicks@{low} {by_k[low]:.4f} > clicks@{high} {by_k[high]:.4f}",
                )
    ok = worst <= tolerance
    reason = f"{name}: clicks@k non-decreasing in k" if ok else f"{name}: clicks@k decreases in k ({where})"
    return GateResult(f"monotone_in_k[{name}]", ok, float(worst), tolerance, reason)


def aa_gate(name: str, delta: float, ci_low: float, ci_high: float) -> GateResult:
    """PASS iff the A/A replay (candidate = control) gives delta == 0 and interval [0, 0] exactly."""
    ok = delta == 0.0 and ci_low == 0.0 and ci_high == 0.0
    reason = (f"{name}: A/A replay gives exactly 0" if ok
              else f"{name}: A/A replay gives {delta:+.3g} [{ci_low:+.3g}, {ci_high:+.3g}], not exactly 0")  # fmt: skip
    return GateResult(f"aa[{name}]", ok, float(abs(delta)), 0.0, reason)


def range_gate(
    name: str, values: Mapping[str, Mapping[int, float]], intervals: Mapping[int, tuple[float, float]] | None = None
) -> GateResult:
    """PASS iff every arm's clicks@k per page is in [0, k] and the delta's interval (k -> (low, high)) is narrower than k."""
    outside = [f"{arm}: clicks@{k} = {value:.3f}" for arm, by_k in values.items() for k, value in sorted(by_k.items())
               if not (math.isfinite(value) and 0.0 <= value <= k)]  # fmt: skip
    for k, (low, high) in sorted((intervals or {}).items()):
        if math.isfinite(low) and math.isfinite(high) and high - low > k:
            outside.append(f"delta clicks@{k} interval [{low:+.2f}, {high:+.2f}] wider than the metric's range {k}")
    reason = (f"{name}: clicks@k of both arms within [0, k]" if not outside
              else f"{name}: estimate outside [0, k] ({'; '.join(outside)})")  # fmt: skip
    return GateResult(f"range[{name}]", not outside, float(len(outside)), 0.0, reason)


def support_gate(name: str, differing_queries: int, *, min_queries: int = 20) -> GateResult:
    """PASS iff the arms differ within the top k on the pages of at least `min_queries` queries."""
    ok = differing_queries >= min_queries
    reason = (f"{name}: the arms differ on {differing_queries} queries" if ok else
              f"{name}: the arms differ within the top k on only {differing_queries} queries (min {min_queries}); "
              "the query bootstrap interval is not trustworthy on so few")  # fmt: skip
    return GateResult(f"support[{name}]", ok, float(differing_queries), float(min_queries), reason)


def propensity_gate(
    *,
    fit_error: str | None,
    gof_p_value: float = float("nan"),
    relative_band: float = float("nan"),
    min_p_value: float = 0.001,
    max_relative_band: float = 1.0,
    band_propagated: bool = False,
) -> GateResult:
    """PASS iff the curve was fitted, its goodness-of-fit p >= min_p_value and (ci_high - ci_low) / gamma <= max.

    With `band_propagated` (the click intervals already carry the curve's bootstrap, two-stage)
    a wide band only widens the interval, honestly, and is not a failure: it is reported.
    """
    if fit_error is not None:
        return GateResult(
            "propensity", False, float("nan"), min_p_value, f"examination curve not estimated: {fit_error}"
        )
    if math.isfinite(gof_p_value) and gof_p_value < min_p_value:
        return GateResult("propensity", False, gof_p_value, min_p_value,
                          f"the examination curve's shape is rejected by its goodness-of-fit test (p={gof_p_value:.2g} "
                          f"< {min_p_value:g}): use another smoothing method")  # fmt: skip
    if not band_propagated and (not math.isfinite(relative_band) or relative_band > max_relative_band):
        return GateResult("propensity", False, relative_band, max_relative_band,
                          f"the examination curve's band is {relative_band:.0%} of its value at the deepest position used "
                          f"(max {max_relative_band:.0%}): widen the exploration window")  # fmt: skip
    return GateResult("propensity", True, gof_p_value, min_p_value,
                      f"examination curve fitted (goodness-of-fit p={gof_p_value:.2g}, band {relative_band:.0%} "
                      "of the value at the deepest position used"
                      + (", propagated into the click intervals)" if band_propagated else ")"))  # fmt: skip


def click_reliability(gates: Sequence[GateResult]) -> tuple[bool, list[str]]:
    """(all passed, the reasons of the failed ones)."""
    failed = [gate.reason for gate in gates if not gate.passed]
    return not failed, failed
