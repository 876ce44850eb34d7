"""Two runs compared on the same queries: per-measure paired differences, a paired test and an interval.

For each measure, with a_q and b_q the per-query values of run A and run B (trec_eval
conventions, `smar.metrics.evaluation`) on the queries both are evaluated on:

* delta = mean_q (b_q - a_q), the paired difference (B minus A);
* its interval: the paired bootstrap over queries, percentile (`smar.metrics.bootstrap`,
  queries resampled with their two values kept together);
* its p-value: the two-sided paired randomisation test (Fisher's sign-flip test), as Smucker,
  Allan and Carterette (CIKM 2007) recommend for IR evaluation. Under the null hypothesis that
  the two runs are exchangeable on every query, each difference d_q is as likely to be -d_q, so

      p = #{s in {-1, +1}^n : |mean_q(s_q d_q)| >= |mean_q(d_q)|} / 2^n,

  computed exactly by enumerating every sign vector for up to `MAX_EXACT_QUERIES` = 16 queries
  (65,536 vectors), and otherwise estimated from `n_resamples` random sign vectors as
  (1 + #{as extreme}) / (1 + n_resamples) (Phipson and Smyth 2010: never exactly 0). A tolerance
  of 1e-12 absorbs float noise in the comparison with the observed mean.

No correction for testing several measures is applied: the p-values are per measure. Count
measures (num_q, num_ret, ...) are totals, not means over queries, and are not compared.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from smar.metrics.bootstrap import BootstrapConfig, paired_delta
from smar.metrics.evaluation import COUNT_MEASURES, Evaluation

#: Comparisons with at most this many queries enumerate every sign vector (2^16 = 65536).
MAX_EXACT_QUERIES = 16
_TOLERANCE = 1e-12


def paired_randomisation_test(differences: ArrayLike, *, n_resamples: int = 10_000, seed: int = 20251016) -> float:
    """Two-sided p-value of mean(differences) = 0 by sign flipping (module docstring); 1.0 for no query."""
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError("differences must be a finite 1-dimensional array, one value per query")
    n = len(values)
    if n == 0:
        return 1.0
    observed = abs(float(values.mean()))
    if n <= MAX_EXACT_QUERIES:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = np.abs(signs @ values) / n
        return float(np.mean(means >= observed - _TOLERANCE))
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([1.0, -1.0]), size=(n_resamples, n))
    extreme = int(np.sum(np.abs(signs @ values) / n >= observed - _TOLERANCE))
    return (1 + extreme) / (1 + n_resamples)


@dataclass(frozen=True)
class MeasureComparison:
    """One measure, run B against run A, on `n_queries` paired queries."""

    measure: str
    n_queries: int
    mean_a: float
    mean_b: float
    delta: float  # mean over queries of (b - a)
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class RunComparison:
    """Every measure compared, the paired per-query values (index: query id), and warnings."""

    measures: list[MeasureComparison]
    per_query: pd.DataFrame  # columns (measure, query_id, a, b, delta)
    confidence_level: float
    warnings: tuple[str, ...] = field(default=())


def compare_evaluations(
    run_a: Evaluation, run_b: Evaluation, *, config: BootstrapConfig | None = None, n_resamples: int = 10_000
) -> RunComparison:
    """Compare two evaluations of the same qrels measure by measure, on the queries both have.

    `config` sets the bootstrap interval; `n_resamples` the randomisation test (the same seed).
    """
    config = config or BootstrapConfig()
    warnings: list[str] = []
    common = run_a.per_query.index.intersection(run_b.per_query.index).sort_values()
    only = {"A": run_a.per_query.index.difference(common), "B": run_b.per_query.index.difference(common)}
    for name, queries in only.items():
        if len(queries):
            warnings.append(
                f"{len(queries)} queries are evaluated for run {name} only and left out of the comparison "
                f"(e.g. {sorted(queries)[:3]}; use -c to score missing queries 0 in both)"
            )
    measures = [name for name in run_a.per_query.columns if name in run_b.per_query.columns]
    skipped = [name for name in measures if name in COUNT_MEASURES]
    if skipped:
        warnings.append(f"count measures {skipped} are totals, not compared")
    results: list[MeasureComparison] = []
    per_query: list[pd.DataFrame] = []
    for measure in (name for name in measures if name not in COUNT_MEASURES):
        a = run_a.per_query.loc[common, measure].to_numpy(np.float64)
        b = run_b.per_query.loc[common, measure].to_numpy(np.float64)
        defined = np.isfinite(a) & np.isfinite(b)
        if not defined.all():
            warnings.append(f"{measure}: {int((~defined).sum())} queries without a value in one run are left out")
        a, b = a[defined], b[defined]
        interval = paired_delta(a, b, config=config)
        p_value = paired_randomisation_test(b - a, n_resamples=n_resamples, seed=config.seed)
        mean_a = float(a.mean()) if len(a) else math.nan
        mean_b = float(b.mean()) if len(b) else math.nan
        results.append(MeasureComparison(measure, len(a), mean_a, mean_b, mean_b - mean_a, interval.ci_low,
                                         interval.ci_high, p_value))  # fmt: skip
        per_query.append(
            pd.DataFrame({"measure": measure, "query_id": np.asarray(common)[defined], "a": a, "b": b, "delta": b - a})
        )
    frame = pd.concat(per_query, ignore_index=True) if per_query else _empty_per_query()
    return RunComparison(results, frame, config.confidence_level, tuple(warnings))


def _empty_per_query() -> pd.DataFrame:
    columns: dict[str, NDArray[np.float64] | list[str]] = {"measure": [], "query_id": []}
    columns.update({name: np.zeros(0) for name in ("a", "b", "delta")})
    return pd.DataFrame(columns)
