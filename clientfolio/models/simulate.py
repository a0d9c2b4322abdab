"""Simulate customer summaries from each model, with known parameters.

Used to check that fits recover the parameters, to benchmark, and to explore
what a model implies.  Every function takes a ``seed`` and returns the same
columns the matching model's ``fit`` expects.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _on_grid(
    recency: np.ndarray, T: np.ndarray, resolution: float | None, rng: np.random.Generator
) -> np.ndarray:
    """Record purchase times as whole periods of ``resolution`` (e.g. days in weeks).

    The first purchase happens at a uniform time within its day, so the day
    count of a later purchase is ``floor(u + t / resolution)``: unbiased, as
    with real timestamps truncated to dates.
    """
    if resolution is None:
        return recency
    offset = rng.random(recency.shape)
    return np.minimum(np.floor(offset + recency / resolution) * resolution, T)


def simulate_bgnbd(
    params: Mapping[str, float],
    T: ArrayLike,
    *,
    seed: int | np.random.Generator | None = None,
    dropout_at_zero: bool = False,
    resolution: float | None = None,
) -> pd.DataFrame:
    """BG/NBD (or MBG/NBD with ``dropout_at_zero=True``) customers observed for ``T``.

    One customer per value of ``T``.  ``resolution`` records purchase times
    on a grid (e.g. ``1/7`` for daily timestamps measured in weeks); ``T``
    should then lie on that grid too.
    """
    rng = _rng(seed)
    t_obs = np.asarray(T, dtype=float)
    n = t_obs.size
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    purchases = rng.poisson(lam * t_obs)
    # repeat purchases made before dropping out (after the K-th one)
    k = rng.geometric(p) - (1 if dropout_at_zero else 0)
    x = np.minimum(purchases, k)
    # the x-th of `purchases` uniform arrival times on (0, T)
    rec = np.where(x > 0, t_obs * rng.beta(np.maximum(x, 1), purchases - x + 1.0), 0.0)
    rec = np.where(x > 0, _on_grid(rec, t_obs, resolution, rng), 0.0)
    return pd.DataFrame({"frequency": x.astype(float), "recency": rec, "T": t_obs})


def simulate_paretonbd(
    params: Mapping[str, float],
    T: ArrayLike,
    *,
    seed: int | np.random.Generator | None = None,
    resolution: float | None = None,
) -> pd.DataFrame:
    """Pareto/NBD customers observed for ``T`` (one customer per value)."""
    rng = _rng(seed)
    t_obs = np.asarray(T, dtype=float)
    n = t_obs.size
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    mu = rng.gamma(params["s"], 1.0 / params["beta"], n)
    life = rng.exponential(1.0, n) / mu
    horizon = np.minimum(life, t_obs)
    x = rng.poisson(lam * horizon)
    rec = np.where(x > 0, horizon * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    rec = np.where(x > 0, _on_grid(rec, t_obs, resolution, rng), 0.0)
    return pd.DataFrame({"frequency": x.astype(float), "recency": rec, "T": t_obs})


def simulate_bgbb(
    params: Mapping[str, float],
    n_customers: int,
    n_periods: int,
    *,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """BG/BB customers with ``n_periods`` transaction opportunities each."""
    rng = _rng(seed)
    p = rng.beta(params["alpha"], params["beta"], n_customers)
    theta = rng.beta(params["gamma"], params["delta"], n_customers)
    alive_periods = rng.geometric(theta) - 1          # periods survived
    period = np.arange(1, n_periods + 1)
    buys = (rng.random((n_customers, n_periods)) < p[:, None]) & (period[None, :] <= alive_periods[:, None])
    x = buys.sum(axis=1)
    last = np.where(x > 0, n_periods - np.argmax(buys[:, ::-1], axis=1), 0)
    return pd.DataFrame(
        {"frequency": x.astype(float), "recency": last.astype(float), "n_periods": float(n_periods)}
    )


def simulate_sbg(
    params: Mapping[str, float],
    n_customers: int,
    n_periods: int,
    *,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """sBG subscribers observed for ``n_periods`` periods: ``tenure, churned``."""
    rng = _rng(seed)
    theta = rng.beta(params["alpha"], params["beta"], n_customers)
    life = rng.geometric(theta)
    churned = life <= n_periods
    tenure = np.where(churned, life, n_periods)
    return pd.DataFrame({"tenure": tenure.astype(float), "churned": churned})


def simulate_gammagamma(
    params: Mapping[str, float],
    frequency: ArrayLike,
    *,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Mean repeat spend for customers with the given ``frequency`` (0 where none)."""
    rng = _rng(seed)
    x = np.asarray(frequency, dtype=float)
    nu = rng.gamma(params["q"], 1.0 / params["gamma"], x.size)
    pos = x > 0
    z = np.zeros_like(x)
    z[pos] = rng.gamma(params["p"] * x[pos], 1.0 / (nu[pos] * x[pos]))
    return pd.DataFrame({"frequency": x, "monetary": z})


def simulate_with_covariates(
    model: str,
    params: Mapping[str, float],
    coefficients: Mapping[str, ArrayLike],
    covariates: ArrayLike,
    T: ArrayLike,
    *,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Customers of BG/NBD or Pareto/NBD with time-invariant covariates (Fader & Hardie 2007, note 019).

    ``model`` is ``"bgnbd"`` (``params`` r, alpha0, a0, b0; ``coefficients`` ``purchase``,
    ``dropout_a``, ``dropout_b``) or ``"paretonbd"`` (r, alpha0, s, beta0; ``purchase``, ``dropout``).
    ``covariates`` is an (n, k) numeric matrix shared by both processes; each coefficient vector has k
    entries (missing ones are 0).  Customer i has ``alpha_i = alpha0 exp(-purchase' x_i)`` and, for
    Pareto/NBD, ``beta_i = beta0 exp(-dropout' x_i)``; for BG/NBD ``a_i = a0 exp(dropout_a' x_i)``,
    ``b_i = b0 exp(dropout_b' x_i)``.  Returns ``frequency, recency, T`` and ``x0..x{k-1}``.
    """
    rng = _rng(seed)
    x = np.atleast_2d(np.asarray(covariates, dtype=float))
    if x.shape[0] == 1 and np.ndim(covariates) == 1:
        x = x.T
    n, k = x.shape
    t_obs = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()

    def eff(name: str) -> np.ndarray:
        g = np.asarray(coefficients.get(name, np.zeros(k)), dtype=float).reshape(k)
        return x @ g

    alpha = params["alpha0"] * np.exp(-eff("purchase"))
    lam = rng.gamma(params["r"], 1.0 / alpha)
    if model == "bgnbd":
        a = params["a0"] * np.exp(eff("dropout_a"))
        b = params["b0"] * np.exp(eff("dropout_b"))
        p = rng.beta(a, b)
        purchases = rng.poisson(lam * t_obs)
        kmax = rng.geometric(p)
        freq = np.minimum(purchases, kmax)
        rec = np.where(freq > 0, t_obs * rng.beta(np.maximum(freq, 1), purchases - freq + 1.0), 0.0)
    elif model == "paretonbd":
        beta = params["beta0"] * np.exp(-eff("dropout"))
        mu = rng.gamma(params["s"], 1.0 / beta)
        horizon = np.minimum(rng.exponential(1.0, n) / mu, t_obs)
        freq = rng.poisson(lam * horizon)
        rec = np.where(freq > 0, horizon * rng.beta(np.maximum(freq, 1), 1.0), 0.0)
    else:
        raise ValueError(f"simulate_with_covariates: model must be 'bgnbd' or 'paretonbd', got {model!r}")
    out = pd.DataFrame({"frequency": freq.astype(float), "recency": rec, "T": t_obs})
    for j in range(k):
        out[f"x{j}"] = x[:, j]
    return out
