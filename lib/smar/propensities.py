"""The examination curve P(examined | position), estimated from randomised exploration traffic.

Why randomised traffic: on production pages a (query, item) pair always sits at the same
position, so position and relevance are confounded and a click model fitted on them (the EM of
`smar.replay.ope`, which the replay used to fit on its own scope) is not identified. On an exploration page the order is a uniformly random
permutation of the page's items, independent of the user and of relevance. Under the
position-based model P(click at r) = gamma_r * alpha_item, the expected clicks at position r
over n_r exploration pages are therefore

    E[C_r] = n_r * gamma_r * a,        a = mean attractiveness of a page's items (same for every r),

so the position CTR ratio C_r / n_r divided by C_1 / n_1 estimates gamma_r / gamma_1 without any
attractiveness model (Joachims, Swaminathan and Schnabel 2017, "Unbiased learning-to-rank with
biased feedback", section 5; Wang et al. 2016, "Learning to rank with selection bias").

Which pages are exploration pages (`identify_exploration_pages`; in Spark
`smar.replay.click_inputs.exploration_pages`): a page is production-ordered iff, within each
modality, its items appear in non-increasing `production_score` (the blender fills each
modality's slots from that modality's production order, so every production page passes); any
inversion marks the page as randomised. On generator data this is exact up to a uniformly random
page that happens to keep every modality's order (probability 1 / (16! 8! 6! 2!) on demo pages).
Logs without production_score cannot be classified; a logged `is_exploration` flag (the serving
system knows which requests it randomised) would be the better source, and is not in the
bronze.search_logs contract yet.

Smoothing (`fit_examination_curve`, `method`):

* `power_law` (the default): gamma_r = r^-eta, fitted by Poisson maximum likelihood on the
  per-position counts, log E[C_r] = log n_r + b - eta * log r (b = log a; Newton's method on
  the concave log-likelihood). Two parameters, so stable on a few hundred pages; a Pearson
  chi-square goodness-of-fit statistic against the per-position counts (R - 2 degrees of
  freedom) says whether the shape is plausible;
* `isotonic`: the position CTRs C_r / n_r fitted by weighted isotonic regression (non-increasing,
  weights n_r; the pool-adjacent-violators algorithm), divided by the fitted value at r = 1. No
  shape assumption, noisier at deep positions; a zero fitted value is a degenerate fit.

Either way gamma_1 = 1 (only ratios gamma_t / gamma_p enter the estimators). The confidence band
is a bootstrap over exploration pages (pages resampled with replacement, the curve refitted on
each resample; percentile band per position); the replicates are kept so the click intervals
can carry the curve's uncertainty (`smar.replay.estimators.paired_bootstrap_with_curves`).

A fit that does not converge, or is degenerate (no clicks, clicks at one position only, a
non-positive exponent, a zero examination at a needed position), raises `PropensityFitError`
with the reason; it never returns a number.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from smar.errors import InputRefused
from smar.vocabulary import EXPLORATION_BY_ORDER, PROPENSITY_METHODS, content_id

FitMethod = Literal["power_law", "isotonic"]  # smar.vocabulary.PROPENSITY_METHODS
EXPLORATION_FLAG = "is_exploration"


class PropensityFitError(InputRefused):
    """The examination curve could not be estimated from the logs; the message says why.

    Bad input (too little randomised traffic, a degenerate shape), not a bug: the replay turns it
    into unreliable click rows with this reason, never into a number.
    """


@dataclass(frozen=True)
class PositionCounts:
    """Per position r = 1..R over the exploration pages: pages with an item at r and clicks at r.

    `page_clicks` and `page_shown` ([n_pages, R]) keep the per-page rows for the bootstrap.
    """

    impressions: NDArray[np.float64]  # n_r
    clicks: NDArray[np.float64]  # C_r
    page_clicks: NDArray[np.float64]
    page_shown: NDArray[np.float64]

    @property
    def n_pages(self) -> int:
        return int(self.page_clicks.shape[0])

    @property
    def max_position(self) -> int:
        return int(self.impressions.shape[0])

    def fingerprint(self) -> str:
        """sha256 of the per-page rows: what a fit (and its bootstrap) is a function of."""
        digest = hashlib.sha256()
        for array in (self.page_shown, self.page_clicks):
            digest.update(repr(array.shape).encode("utf-8"))
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class ExaminationCurve:
    """A fitted examination curve with its bootstrap band. `examination[r - 1]` is gamma_r, gamma_1 = 1."""

    method: str
    examination: NDArray[np.float64]  # [R]
    ci_low: NDArray[np.float64]  # [R], percentile band
    ci_high: NDArray[np.float64]
    replicates: NDArray[np.float64]  # [B, R] bootstrap curves (each with gamma_1 = 1)
    confidence_level: float
    exponent: float | None  # eta of the power law; None for isotonic
    exponent_ci: tuple[float, float] | None
    iterations: int
    converged: bool
    gof_statistic: float  # Pearson chi-square of the fitted counts vs the per-position counts
    gof_dof: int
    gof_p_value: float
    counts: PositionCounts

    @property
    def max_position(self) -> int:
        return int(self.examination.shape[0])

    def as_rows(self) -> pd.DataFrame:
        """One row per position: the part of a gold.click_propensities row that the fit determines."""
        return pd.DataFrame(
            {
                "position": np.arange(1, self.max_position + 1, dtype=np.int32),
                "examination": self.examination,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
                "exploration_impressions": self.counts.impressions.astype(np.int64),
                "exploration_clicks": self.counts.clicks.astype(np.int64),
            }
        )


# -- which pages were randomised ------------------------------------------------------------------
def identify_exploration_pages(logs: pd.DataFrame, *, tolerance: float = 1e-9) -> tuple[pd.DataFrame, str]:
    """(pages, how): one row per (ds, request_id) with booleans `is_exploration` and `undecided`.

    A page is exploration iff some modality has an inversion: two items m, m' of one modality
    with position(m) < position(m') and production_score(m) < production_score(m') - tolerance.
    Pages whose rows lack a production_score cannot be decided: `is_exploration = False`,
    `undecided = True` (never used as randomised traffic). The pandas reference of
    `smar.replay.click_inputs.exploration_pages` (Spark), used on simulated logs.
    """
    required = {"ds", "request_id", "modality", "position", "production_score"}
    missing = required - set(logs.columns)
    if missing:
        raise ValueError(f"identify_exploration_pages needs columns {sorted(required)}; missing {sorted(missing)}")
    keys = ["ds", "request_id"]
    frame = logs[["ds", "request_id", "modality", "position", "production_score"]].sort_values(
        ["ds", "request_id", "modality", "position"], kind="stable"
    )
    undecided = frame["production_score"].isna().groupby([frame["ds"], frame["request_id"]], sort=True).any()
    score = frame["production_score"].to_numpy(dtype=np.float64)
    group = pd.MultiIndex.from_frame(frame[["ds", "request_id", "modality"]]).factorize()[0]
    # Sorted by position inside (page, modality): an increase of the score is an inversion.
    inversion = np.zeros(len(frame), dtype=bool)
    inversion[1:] = (group[1:] == group[:-1]) & (score[1:] > score[:-1] + tolerance)
    inverted = pd.Series(inversion, index=frame.index).groupby([frame["ds"], frame["request_id"]], sort=True).any()
    out = pd.DataFrame({EXPLORATION_FLAG: inverted & ~undecided, "undecided": undecided})
    out.index.names = keys
    return out.reset_index(), EXPLORATION_BY_ORDER


def position_counts(exploration_logs: pd.DataFrame) -> PositionCounts:
    """Per-page click and shown indicators by position ([n_pages, R]) and their sums, from exploration rows.

    `exploration_logs`: rows (ds, request_id, position, clicked) of exploration pages only.
    """
    if exploration_logs.empty:
        raise PropensityFitError("no exploration pages in the window: the examination curve cannot be estimated")
    # Pages in (ds, request_id) order, whatever order the rows came in: the bootstrap draws pages by index.
    page_index, _ = pd.MultiIndex.from_frame(exploration_logs[["ds", "request_id"]]).factorize(sort=True)
    position = exploration_logs["position"].to_numpy(dtype=np.int64)
    if position.min() < 1:
        raise ValueError("positions are 1-based")
    n_pages, n_positions = int(page_index.max()) + 1, int(position.max())
    shown = np.zeros((n_pages, n_positions))
    clicks = np.zeros((n_pages, n_positions))
    shown[page_index, position - 1] = 1.0
    clicks[page_index, position - 1] = exploration_logs["clicked"].to_numpy(dtype=np.float64)
    return PositionCounts(shown.sum(axis=0), clicks.sum(axis=0), clicks, shown)


# -- fits -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PowerLawFit:
    log_scale: NDArray[np.float64]  # [B]
    exponent: NDArray[np.float64]  # [B]
    converged: NDArray[np.bool_]
    iterations: int


def _fit_power_law_batch(
    impressions: NDArray[np.float64],
    clicks: NDArray[np.float64],
    *,
    max_iterations: int = 100,
    tolerance: float = 1e-10,
) -> _PowerLawFit:
    """Poisson MLE of log mu_r = log n_r + b - eta log r for B count vectors at once ([B, R] inputs).

    Score: d/db = sum(C - mu), d/deta = -sum(log r (C - mu)); Hessian -sum(mu [[1, -log r], [-log r, log^2 r]]).
    Newton steps with step halving until the step is below `tolerance`.
    """
    log_r = np.log(np.arange(1, impressions.shape[1] + 1, dtype=np.float64))
    total_clicks = clicks.sum(axis=1)
    total_impressions = impressions.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.log(total_clicks / total_impressions)
    eta = np.full(impressions.shape[0], 0.5)
    converged = np.zeros(impressions.shape[0], dtype=bool)
    usable = np.isfinite(b)
    b = np.where(usable, b, 0.0)

    def log_likelihood(b_: NDArray[np.float64], eta_: NDArray[np.float64]) -> NDArray[np.float64]:
        log_mu = b_[:, None] - eta_[:, None] * log_r[None, :]
        return np.sum(clicks * log_mu - impressions * np.exp(log_mu), axis=1)

    iterations = 0
    for _ in range(max_iterations):
        iterations += 1
        mu = impressions * np.exp(b[:, None] - eta[:, None] * log_r[None, :])
        residual = clicks - mu
        g_b = residual.sum(axis=1)
        g_eta = -(residual * log_r).sum(axis=1)
        h_bb = mu.sum(axis=1)
        h_be = -(mu * log_r).sum(axis=1)
        h_ee = (mu * log_r**2).sum(axis=1)
        det = h_bb * h_ee - h_be**2
        with np.errstate(divide="ignore", invalid="ignore"):
            step_b = (h_ee * g_b - h_be * g_eta) / det
            step_eta = (-h_be * g_b + h_bb * g_eta) / det
        bad = ~np.isfinite(step_b) | ~np.isfinite(step_eta)
        step_b = np.where(bad, 0.0, step_b)
        step_eta = np.where(bad, 0.0, step_eta)
        usable &= ~bad
        base = log_likelihood(b, eta)
        scale = np.ones_like(b)
        for _ in range(30):  # step halving keeps every accepted step an ascent step
            better = log_likelihood(b + scale * step_b, eta + scale * step_eta) >= base - 1e-12
            if better.all():
                break
            scale = np.where(better, scale, scale / 2)
        b, eta = b + scale * step_b, eta + scale * step_eta
        done = (np.abs(scale * step_b) < tolerance) & (np.abs(scale * step_eta) < tolerance)
        converged |= done & usable
        if (converged | ~usable).all():
            break
    return _PowerLawFit(b, eta, converged & usable & np.isfinite(eta), iterations)


def _pava_decreasing(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Weighted least-squares non-increasing fit (pool adjacent violators).

    Points with weight 0 carry no information: they take the fitted value of the nearest
    weighted point before them (after them for leading ones).
    """
    observed = weights > 0
    fitted = np.full(values.shape, np.nan)
    if not observed.any():
        return fitted
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values[observed].tolist(), weights[observed].tolist()):
        blocks.append([value, weight, 1.0])
        while len(blocks) > 1 and blocks[-1][0] > blocks[-2][0]:
            last = blocks.pop()
            total = blocks[-1][1] + last[1]
            blocks[-1] = [(blocks[-1][0] * blocks[-1][1] + last[0] * last[1]) / total, total, blocks[-1][2] + last[2]]
    fitted[observed] = np.concatenate([np.full(int(count), mean) for mean, _, count in blocks])
    filled = pd.Series(fitted).ffill().bfill().to_numpy()
    return filled


def _isotonic_curve(impressions: NDArray[np.float64], clicks: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr = np.where(impressions > 0, clicks / impressions, 0.0)
    fitted = _pava_decreasing(ctr, impressions)
    if not fitted[0] > 0:
        return np.full_like(fitted, np.nan)
    return fitted / fitted[0]


def _check_counts(counts: PositionCounts, min_pages: int, min_clicks: int) -> int:
    """The number of positions R to fit; PropensityFitError when the counts cannot identify a curve."""
    n_positions = counts.max_position
    if counts.n_pages < min_pages:
        raise PropensityFitError(
            f"only {counts.n_pages} exploration pages in the window (min_pages={min_pages}); widen the window"
        )
    total = float(counts.clicks.sum())
    if total == 0:
        raise PropensityFitError(
            "no clicks on exploration pages in the window: the examination curve is not identified"
        )
    if total < min_clicks:
        raise PropensityFitError(
            f"only {total:.0f} clicks on exploration pages in the window (min_clicks={min_clicks}); widen the window"
        )
    if (counts.impressions == 0).any():
        unseen = [r + 1 for r in range(n_positions) if counts.impressions[r] == 0]
        raise PropensityFitError(f"positions {unseen[:10]} were never shown on an exploration page")
    if int((counts.clicks > 0).sum()) < 2:
        raise PropensityFitError(
            "exploration clicks fall on fewer than two positions: the curve's slope is not identified"
        )
    return n_positions


def fit_examination_curve(
    counts: PositionCounts,
    *,
    method: FitMethod = "power_law",
    n_bootstrap: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 20251016,
    min_pages: int = 50,
    min_clicks: int = 30,
    max_failed_replicates: float = 0.01,
) -> ExaminationCurve:
    """Fit gamma_r (r = 1..R, gamma_1 = 1) to exploration counts and bootstrap its band over pages.

    power_law: gamma_r = r^-eta with eta the Poisson MLE of C_r ~ Poisson(n_r * a * r^-eta).
    isotonic: gamma_r = f_r / f_1, f the non-increasing weighted (n_r) least-squares fit of C_r / n_r.
    Band: percentile interval over `n_bootstrap` refits on exploration pages resampled with
    replacement (seeded). Goodness of fit: X^2 = sum_r (C_r - mu_r)^2 / mu_r with mu_r the fitted
    expected counts (power law: R - 2 dof, p-value from chi2; isotonic: R - 1 dof, approximate).
    Raises PropensityFitError when the data are too thin, the fit does not converge or is
    degenerate (eta <= 0, a non-positive gamma), or more than `max_failed_replicates` of the
    bootstrap refits fail.
    """
    if method not in PROPENSITY_METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(PROPENSITY_METHODS)}")
    if not 0 < confidence_level < 1 or n_bootstrap < 100:
        raise ValueError("confidence_level must be in (0, 1) and n_bootstrap >= 100")
    n_positions = _check_counts(counts, min_pages, min_clicks)
    ranks = np.arange(1, n_positions + 1, dtype=np.float64)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(counts.n_pages, np.full(counts.n_pages, 1.0 / counts.n_pages), size=n_bootstrap).astype(
        np.float64
    )
    boot_impressions = weights @ counts.page_shown
    boot_clicks = weights @ counts.page_clicks
    alpha = 1.0 - confidence_level

    if method == "power_law":
        fit = _fit_power_law_batch(counts.impressions[None, :], counts.clicks[None, :])
        eta, b = float(fit.exponent[0]), float(fit.log_scale[0])
        if not fit.converged[0]:
            raise PropensityFitError(f"the power-law fit did not converge after {fit.iterations} Newton iterations")
        if not (math.isfinite(eta) and eta > 0):
            raise PropensityFitError(
                f"degenerate power-law fit: exponent {eta:.4g} (examination must decrease with position)"
            )
        examination = ranks**-eta
        expected = counts.impressions * math.exp(b) * examination
        dof = n_positions - 2
        boot = _fit_power_law_batch(boot_impressions, boot_clicks)
        ok = boot.converged & (boot.exponent > 0)
        replicates = ranks[None, :] ** -boot.exponent[ok, None]
        exponent_ci = (
            float(np.quantile(boot.exponent[ok], alpha / 2)),
            float(np.quantile(boot.exponent[ok], 1 - alpha / 2)),
        )
        iterations, exponent = fit.iterations, eta
    else:
        examination = _isotonic_curve(counts.impressions, counts.clicks)
        if not np.isfinite(examination).all() or not (examination > 0).all():
            zero = [int(r) for r in ranks[~(examination > 0)]][:10]
            raise PropensityFitError(f"degenerate isotonic fit: zero examination at positions {zero}")
        scale = counts.clicks.sum() / float(np.dot(counts.impressions, examination))
        expected = counts.impressions * scale * examination
        dof = n_positions - 1
        curves = np.array([_isotonic_curve(n, c) for n, c in zip(boot_impressions, boot_clicks)])
        ok = np.isfinite(curves).all(axis=1) & (curves > 0).all(axis=1)
        replicates = curves[ok]
        exponent_ci, iterations, exponent = None, 1, None

    failed = 1.0 - float(ok.mean())
    if failed > max_failed_replicates:
        raise PropensityFitError(
            f"{failed:.1%} of the {n_bootstrap} bootstrap refits failed (max {max_failed_replicates:.1%}): "
            "the exploration data are too thin for a stable curve; widen the window"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(np.sum(np.where(expected > 0, (counts.clicks - expected) ** 2 / expected, 0.0)))
    p_value = float(stats.chi2.sf(statistic, dof)) if dof > 0 else float("nan")
    return ExaminationCurve(
        method=method,
        examination=examination,
        ci_low=np.quantile(replicates, alpha / 2, axis=0),
        ci_high=np.quantile(replicates, 1 - alpha / 2, axis=0),
        replicates=replicates,
        confidence_level=confidence_level,
        exponent=exponent,
        exponent_ci=exponent_ci,
        iterations=iterations,
        converged=True,
        gof_statistic=statistic,
        gof_dof=dof,
        gof_p_value=p_value,
        counts=counts,
    )


def exploration_rows(logs: pd.DataFrame, pages: pd.DataFrame) -> pd.DataFrame:
    """The rows of `logs` on the pages `identify_exploration_pages` marked as randomised."""
    explore = pages[pages[EXPLORATION_FLAG]][["ds", "request_id"]]
    return logs.merge(explore, on=["ds", "request_id"], how="inner")


def estimate_examination_curve(
    logs: pd.DataFrame, *, method: FitMethod = "power_law", n_bootstrap: int = 2000, seed: int = 20251016
) -> tuple[ExaminationCurve, pd.DataFrame, str]:
    """Identify the exploration pages of `logs` (the whole window, every split) and fit the curve.

    Returns (curve, pages, how): `pages` as `identify_exploration_pages` returns it.
    """
    pages, how = identify_exploration_pages(logs)
    counts = position_counts(exploration_rows(logs, pages))
    curve = fit_examination_curve(counts, method=method, n_bootstrap=n_bootstrap, seed=seed)
    return curve, pages, how


def curve_version(
    *, ds_start: str, ds_end: str, method: str, identification: str, n_bootstrap: int, seed: int,
    inputs: str | None = None,
) -> str:  # fmt: skip
    """`prop-<16 hex>`, named by what determines the curve: window, method, identification,
    bootstrap settings and `inputs` (a fingerprint of the exploration counts it was fitted on)."""
    definition = {
        "ds_start": ds_start, "ds_end": ds_end, "method": method, "identification": identification,
        "n_bootstrap": n_bootstrap, "seed": seed, "inputs": inputs,
    }  # fmt: skip
    return content_id("prop", definition, length=16)
