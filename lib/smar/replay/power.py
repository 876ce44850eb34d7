"""Minimum detectable effects of the replay's metrics, and how much traffic a target effect needs.

For a delta estimated with a (roughly normal) standard error SE, a two-sided test at level
alpha detects a true effect d with probability `power` when

    |d| >= MDE = (z_{1 - alpha/2} + z_{power}) * SE          (e.g. 2.80 * SE at alpha 0.05, power 0.8)

(the usual normal-approximation sample-size formula; Kohavi, Tang and Xu 2020, chapter 17).
The replay reports bootstrap intervals, not SEs, so SE is read back from the interval's width:
SE = (ci_high - ci_low) / (2 z_{1 - alpha/2}).

Traffic: the delta is a mean over queries, so SE shrinks like 1 / sqrt(n) with n the replayed
units (days of logs at a fixed share of traffic). From a replay over n0 units,
MDE(n) = MDE(n0) * sqrt(n0 / n), and the units needed for a target effect d are
n = n0 * (MDE(n0) / d)^2, rounded up. This is an extrapolation: `units_needed` states it as
such, and the measurement over growing windows (benchmarks/replay_power.py) checks it.
"""

from __future__ import annotations

import math

from scipy import stats


def standard_error_from_interval(ci_low: float, ci_high: float, *, confidence_level: float = 0.95) -> float:
    """SE = (ci_high - ci_low) / (2 z_{1 - alpha/2}); NaN for an undefined interval."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)) or ci_high < ci_low:
        return float("nan")
    z = float(stats.norm.ppf(1 - (1 - confidence_level) / 2))
    return (ci_high - ci_low) / (2 * z)


def minimum_detectable_effect(
    ci_low: float, ci_high: float, *, confidence_level: float = 0.95, power: float = 0.8
) -> float:
    """MDE = (z_{1 - alpha/2} + z_power) * SE, SE from the interval width (alpha = 1 - confidence_level)."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    se = standard_error_from_interval(ci_low, ci_high, confidence_level=confidence_level)
    z_alpha = float(stats.norm.ppf(1 - (1 - confidence_level) / 2))
    return (z_alpha + float(stats.norm.ppf(power))) * se


def units_needed(mde: float, units: float, effect: float) -> int:
    """Units n with MDE(n) <= |effect|, from MDE(units) = mde and MDE ~ 1 / sqrt(n): ceil(units (mde / effect)^2)."""
    if effect == 0 or not math.isfinite(mde) or mde <= 0 or units <= 0:
        raise ValueError("need a nonzero effect, a positive finite MDE and positive units")
    return max(1, math.ceil(units * (mde / abs(effect)) ** 2 - 1e-9))
