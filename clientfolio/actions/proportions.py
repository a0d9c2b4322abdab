"""Comparing two proportions honestly: intervals, tests, strata and many comparisons at once.

Small pure functions on counts, used by the fairness audit, experiment read-outs and the customer profile:

- :func:`wilson` — the Wilson score interval of one proportion (Wilson 1927), good at small
  counts and at rates near 0 or 1, where the textbook normal interval fails.
- :func:`newcombe` — the interval of a difference of two independent proportions from their
  Wilson intervals (Newcombe 1998, method 10, "hybrid score").
- :func:`two_by_two_p` — a two-sided p-value: Pearson's chi-square (no continuity correction)
  when every expected count is at least 5, else Fisher's exact test.
- :func:`mantel_haenszel_rd` — the Mantel–Haenszel risk difference across strata with the
  Sato (1989) variance, which stays valid with many small strata.
- :func:`holm` — Holm's step-down adjustment: the chance of any false finding among all
  comparisons stays at most alpha, whatever the dependence between them.
- :func:`benjamini_hochberg` — adjusted p-values that keep the expected share of false findings
  among those reported at most alpha (for screening many candidates, as the customer profile does).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def wilson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for x successes in n trials (NaN, NaN when n == 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    p = x / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if x == 0 else max(0.0, mid - half)  # exact ends: no rounding residue at 0 or n successes
    return low, (1.0 if x == n else min(1.0, mid + half))


def newcombe(x1: int, n1: int, x2: int, n2: int, level: float = 0.95) -> tuple[float, float]:
    """Interval of p1 - p2 (Newcombe's hybrid score method, from the two Wilson intervals)."""
    if n1 <= 0 or n2 <= 0:
        return float("nan"), float("nan")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, level)
    l2, u2 = wilson(x2, n2, level)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def two_by_two_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value for 'the two proportions are equal' (chi-square, or Fisher when counts are small)."""
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]], dtype=float)
    if table.sum(axis=0).min() == 0:
        return 1.0  # nobody (or everybody) has the outcome: no difference to test
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() >= 5:
        return float(stats.chi2_contingency(table, correction=False)[1])
    return float(stats.fisher_exact(table.astype(int))[1])


def mantel_haenszel_rd(x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray,
                       level: float = 0.95) -> tuple[float, float, float]:
    """Mantel–Haenszel risk difference (group 1 minus group 0) over strata, with its interval.

    Arrays hold one stratum each; strata where either group is empty carry no weight.  Returns
    (difference, low, high); NaNs when no stratum holds both groups.
    """
    x1, n1, x0, n0 = (np.asarray(a, dtype=float) for a in (x1, n1, x0, n0))
    keep = (n1 > 0) & (n0 > 0)
    x1, n1, x0, n0 = x1[keep], n1[keep], x0[keep], n0[keep]
    if not len(n1):
        return float("nan"), float("nan"), float("nan")
    big_n = n1 + n0
    w = n1 * n0 / big_n
    rd = float(np.sum(w * (x1 / n1 - x0 / n0)) / np.sum(w))
    # Sato (1989): Var = (RD * P + Q) / W^2
    p = np.sum((n1 ** 2 * x0 - n0 ** 2 * x1 + n1 * n0 * (n0 - n1) / 2) / big_n ** 2)
    q = np.sum((x1 * (n0 - x0) + x0 * (n1 - x1)) / (2 * big_n))
    var = (rd * p + q) / np.sum(w) ** 2
    half = stats.norm.ppf(0.5 + level / 2) * math.sqrt(max(var, 0.0))
    return rd, rd - half, rd + half


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (compare each with alpha); NaNs stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    if not m:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out
