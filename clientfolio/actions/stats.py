"""The statistics behind experiment read-outs and sample-size advice (pure functions, numpy/scipy only).

- Two proportions (conversion, retention): the difference with Newcombe's hybrid score interval
  (Newcombe 1998, method 10: Wilson intervals of each arm combined), which keeps its coverage
  near the stated level for small groups and rates near 0 or 1 where the simple Wald interval
  does not; the two-sided pooled two-proportion z-test (the chi-square test of a 2x2 table
  without continuity correction) for the p-value.
- Means of skewed, zero-heavy amounts (revenue per customer): Welch's t-test (no equal-variance
  assumption: a treatment changes the spread of spending as well as its level) for the p-value,
  and a percentile bootstrap interval of the difference of means, which follows the skew of the
  amounts instead of assuming a symmetric normal interval.
- Sample size for two proportions with unequal groups (normal approximation, as in Fleiss,
  Levin & Paik, *Statistical Methods for Rates and Proportions*, 3rd ed., eq. 4.14, optionally
  with their continuity correction, eq. 4.15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri, stdtr

from clientfolio.actions.proportions import newcombe


@dataclass(frozen=True)
class Comparison:
    """Treatment minus holdout for one metric, with its interval and test."""

    treatment: float  # the treatment arm's rate or mean
    holdout: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # what the p-value and interval come from, in words


def significant(c: Comparison, alpha: float) -> bool:
    """The read-out's rule: the test's p-value is below alpha AND the interval excludes zero."""
    return bool(c.p_value < alpha and (c.ci_low > 0 or c.ci_high < 0))


def two_proportions(x_t: int, n_t: int, x_h: int, n_h: int, alpha: float = 0.05) -> Comparison:
    """Difference of two proportions (treatment - holdout): Newcombe interval, pooled z-test."""
    if n_t <= 0 or n_h <= 0:
        return Comparison(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, "no customers in an arm")
    p1, p2 = x_t / n_t, x_h / n_h
    d = p1 - p2
    low, high = newcombe(x_t, n_t, x_h, n_h, level=1 - alpha)
    pool = (x_t + x_h) / (n_t + n_h)
    se = math.sqrt(pool * (1 - pool) * (1 / n_t + 1 / n_h))
    p_value = 1.0 if se == 0 else float(2 * ndtr(-abs(d) / se))
    return Comparison(p1, p2, d, low, high, p_value, "Newcombe score interval, two-proportion z-test")


def two_proportions_p(x_t: np.ndarray, n_t: np.ndarray, x_h: np.ndarray, n_h: np.ndarray) -> np.ndarray:
    """Vectorised two-sided p-values of the pooled z-test (the same test as `two_proportions`)."""
    x_t, n_t, x_h, n_h = (np.asarray(a, dtype=float) for a in (x_t, n_t, x_h, n_h))
    pool = (x_t + x_h) / (n_t + n_h)
    se = np.sqrt(pool * (1 - pool) * (1 / n_t + 1 / n_h))
    d = x_t / n_t - x_h / n_h
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * ndtr(-np.abs(d) / se)
    return np.where(se > 0, p, 1.0)


def welch_bootstrap(treatment: np.ndarray, holdout: np.ndarray, alpha: float = 0.05, resamples: int = 2000,
                    seed: int = 0) -> Comparison:
    """Difference of means (treatment - holdout): Welch's t-test, percentile bootstrap interval.

    The bootstrap resamples each arm with replacement (`resamples` times, seeded, so a read-out
    is the same every time it is run).
    """
    a, b = np.asarray(treatment, dtype=float), np.asarray(holdout, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return Comparison(float(a.mean()) if len(a) else math.nan, float(b.mean()) if len(b) else math.nan,
                          math.nan, math.nan, math.nan, math.nan, "too few customers for a test")
    ma, mb = float(a.mean()), float(b.mean())
    va, vb = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        p_value = 1.0 if ma == mb else 0.0
    else:
        df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0.0) + (vb ** 2 / (len(b) - 1) if vb else 0.0))
        p_value = float(2 * stdtr(df, -abs(ma - mb) / se))
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, 4_000_000 // max(len(a), len(b)))  # bounded memory for big segments
    for s in range(0, resamples, chunk):
        k = min(chunk, resamples - s)
        diffs[s:s + k] = (a[rng.integers(0, len(a), (k, len(a)))].mean(axis=1)
                          - b[rng.integers(0, len(b), (k, len(b)))].mean(axis=1))
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return Comparison(ma, mb, ma - mb, float(low), float(high), p_value,
                      f"Welch's t-test, percentile bootstrap interval ({resamples:,} resamples)")


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(ndtri(1 - alpha / 2)), float(ndtri(power))


def holdout_size(baseline: float, effect: float, alpha: float, power: float, holdout_share: float,
                 continuity_correction: bool = False) -> float:
    """Customers needed in the holdout (not rounded) to detect `baseline` -> `baseline + effect`.

    Unequal groups: treatment = r x holdout with r = (1 - holdout_share) / holdout_share.  Under
    the null both arms share the pooled rate; the continuity correction is Fleiss's.
    """
    p1, p2 = baseline, baseline + effect  # holdout, treatment
    r = (1 - holdout_share) / holdout_share
    za, zb = _z(alpha, power)
    pbar = (p1 + r * p2) / (1 + r)
    num = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / r)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / r)
    n = num ** 2 / effect ** 2
    if continuity_correction:
        n = n / 4 * (1 + math.sqrt(1 + 2 * (r + 1) / (n * r * abs(effect)))) ** 2
    return n


def detectable_lift(total: int, baseline: float, alpha: float, power: float, holdout_share: float,
                    continuity_correction: bool = False) -> float:
    """The smallest absolute rise in the rate a test on `total` customers detects (NaN: none up to 100%)."""
    top = 1 - baseline - 1e-9
    if total <= 0 or top <= 0:
        return math.nan

    def gap(d: float) -> float:
        n_h = holdout_size(baseline, d, alpha, power, holdout_share, continuity_correction)
        return n_h / holdout_share - total

    if gap(top) > 0:
        return math.nan
    return float(brentq(gap, 1e-6, top, xtol=1e-7))
