"""Ranges that cover what a reader takes them to mean: what a customer (or the shop) will be worth.

A range for the model's *expected* value (its parameter uncertainty only) is narrow and reads as
a range of the forecast, which it is not: customers buy at random even when the model is right,
and that is most of the uncertainty.  So the ranges here are simulated from the model's own
purchase process, with the parameters drawn from their sampling distribution (the fit's
covariance, on the log scale):

- BG/NBD and MBG/NBD: a customer still active (probability = their P(alive)) has a purchase
  rate drawn from its posterior Gamma(r + x, alpha + T) and a drop-out probability from
  Beta(a, b + x (+ 1 for MBG/NBD)); they buy at that rate over the horizon and, after each
  purchase, leave with that probability;
- Pareto/NBD: rate from Gamma(r + x, alpha + T), remaining lifetime exponential with a rate
  from Gamma(s, beta + T).

P(alive) is taken at the fitted parameters (recomputing it for every draw costs more than it
moves the ranges).  Each purchase is valued at the customer's discounted expected value of one
purchase (expected spend x margin x discounting, as in the CLV); how much a single order varies
is not included.  Big bases get fewer draws of the total (`BUDGET`), and its range is then the
normal one from the draws' mean and spread.  A customer buys in whole purchases, so a
customer's range is of whole purchases and covers *at least* the stated share; where the two
quantiles coincide (most likely: no purchase) the range is widened by one purchase rather than
shown with zero width.

Each customer's range is drawn from a random stream of its own history (frequency and T in whole
weeks), seeded from that history: a customer gets the same range scored alone after an event as
scored with the whole base.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri  # inverse normal CDF (scipy.stats costs ~1 s to import)

MAX_DRAWS, MIN_DRAWS, BUDGET = 200, 30, 2_000_000  # simulated customer-horizons for the total
CUSTOMER_DRAWS = 60  # per history, for each customer's range


def draw_models(model, n: int, seed: int) -> list:
    """Purchase models with parameters drawn from the fit's sampling distribution (log scale)."""
    cov = getattr(model, "covariance_", None)
    if cov is None or n <= 0:
        return []
    names = list(model.params_)
    theta = np.log([model.params_[k] for k in names])
    cov_log = cov.loc[names, names].to_numpy() / np.outer(np.exp(theta), np.exp(theta))
    if not np.all(np.isfinite(cov_log)):
        return []
    rng = np.random.default_rng(seed)
    out = []
    for d in rng.multivariate_normal(theta, cov_log, size=n, method="eigh"):
        try:
            out.append(type(model).from_params(dict(zip(names, np.exp(d)))))
        except ValueError:
            continue
    return out


def _simulate(model, x: np.ndarray, t_: np.ndarray, p_alive: np.ndarray, horizon: float,
              rng: np.random.Generator) -> np.ndarray:
    """Purchases of each row in the next `horizon` periods: one draw of the model's process."""
    p = model.params_
    out = np.zeros(len(x), dtype=np.int64)
    live = np.flatnonzero(rng.random(len(x)) < np.nan_to_num(p_alive, nan=1.0))  # only they can buy
    x, t_ = x[live], t_[live]
    lam = rng.gamma(p["r"] + x, 1.0 / (p["alpha"] + t_))
    if "s" in p:  # Pareto/NBD
        mu = rng.gamma(p["s"], 1.0 / (p["beta"] + t_))
        life = rng.exponential(1.0 / np.maximum(mu, 1e-300))
        out[live] = rng.poisson(lam * np.minimum(life, horizon))
        return out
    buys = rng.poisson(lam * horizon)
    some = np.flatnonzero(buys > 0)  # drop-out matters only for those who buy at all
    k = 1.0 if type(model).__name__ == "MBGNBD" else 0.0
    drop = rng.beta(p["a"], p["b"] + x[some] + k)
    buys[some] = np.minimum(buys[some], rng.geometric(np.clip(drop, 1e-12, 1.0)))  # leave after that purchase
    out[live] = buys
    return out


def _draws(model, n: int, seed: int) -> list:
    """The drawn models, kept on the fitted model: a one-customer update should not redraw them
    (a fitted model's parameters and covariance do not change)."""
    cache = model.__dict__.setdefault("_range_draws", {})
    key = (n, seed, tuple(sorted(model.params_.items())))
    if key not in cache:
        cache.clear()
        cache[key] = draw_models(model, n, seed) or [model] * n
    return cache[key]


def _draws_and_params(model, n: int, seed: int) -> tuple[list, dict[str, np.ndarray]]:
    """`_draws` and their `_params`, both kept on the fitted model (made once, not per call)."""
    draws = _draws(model, n, seed)
    cache = model.__dict__.setdefault("_range_params", {})
    got = cache.get(id(draws))
    if got is None or got[0] is not draws:
        cache.clear()
        got = cache[id(draws)] = (draws, _params(draws))
    return draws, got[1]


def _params(models: list) -> dict[str, np.ndarray]:
    """The drawn models' parameters as arrays (one value per draw), to simulate all draws at once."""
    return {k: np.array([m.params_[k] for m in models], dtype=float) for k in models[0].params_}


def _history_seed(seed: int, x: float, t_: float) -> list[int]:
    """Entropy for one history's random stream: the seed and the exact bits of (frequency, T).

    A stream per history, not per call, makes a customer's range the same whether they are
    scored alone after an event or with the whole base (the batch and one-event paths agree).
    """
    bits = np.array([x, t_], dtype=np.float64).view(np.uint64)
    return [int(seed), int(bits[0]), int(bits[1])]


def _conditional_buys(model, p: dict[str, np.ndarray], x: float, t_: float, horizon: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Purchases in `horizon` of one history if still active, one value per drawn model (same process
    as `_simulate`)."""
    lam = rng.gamma(p["r"] + x, 1.0 / (p["alpha"] + t_))
    if "s" in p:  # Pareto/NBD
        mu = rng.gamma(p["s"], 1.0 / (p["beta"] + t_))
        life = rng.exponential(1.0 / np.maximum(mu, 1e-300))
        return rng.poisson(lam * np.minimum(life, horizon))
    buys = rng.poisson(lam * horizon)
    k = 1.0 if type(model).__name__ == "MBGNBD" else 0.0
    drop = rng.beta(p["a"], p["b"] + x + k)
    return np.where(buys > 0, np.minimum(buys, rng.geometric(np.clip(drop, 1e-12, 1.0))), 0)


def _history_draws(model, p: dict[str, np.ndarray], seed: int, x: float, t_: float, horizon: float, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One history's draws, from its own stream: (uniforms deciding whether it is still active, purchases if it is),
    one per drawn model."""
    rng = np.random.default_rng(_history_seed(seed, x, t_))
    return rng.random(n), _conditional_buys(model, p, x, t_, horizon, rng)


KEPT_HISTORIES = 20_000  # histories whose draws a fitted model keeps for per-event updates (~1 KB each)


def _kept_draws(model, p: dict[str, np.ndarray], seed: int, x: float, t_: float, horizon: float, n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """`_history_draws`, kept on the fitted model by history: customers share histories (a frequency and a whole
    number of weeks), so per-event updates mostly find theirs drawn already.  A function of its key alone, so a
    kept draw is the one a fresh stream gives."""
    owner, cache = model.__dict__.get("_history_draws", (None, None))
    if owner is not p:  # other drawn parameters (their dict is kept with the draws): start afresh
        cache = {}
        model.__dict__["_history_draws"] = (p, cache)
    key = (seed, x, t_, horizon, n)
    got = cache.get(key)
    if got is None:
        if len(cache) >= KEPT_HISTORIES:
            cache.clear()
        got = cache[key] = _history_draws(model, p, seed, x, t_, horizon, n)
    return got


def purchase_ranges(model, data: pd.DataFrame, p_alive: np.ndarray, horizon: float, level: float = 0.8,
                    n_draws: int = CUSTOMER_DRAWS, seed: int = 0,
                    week: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) whole purchases in the next `horizon` periods for each row of `data`.

    ``data`` has frequency, recency and T in the model's unit; `p_alive` is each row's P(alive)
    at the fitted parameters.  Covers at least `level`; never zero-width.

    Each history (frequency, and T rounded to whole `week`s when given: a range of whole
    purchases barely moves within a week) has its own random stream, seeded from `seed` and the
    history itself: the draws of whether it is still active and of what it buys then.  A row's
    range therefore depends only on its own history and P(alive), never on which other rows are
    scored in the same call.
    """
    x = np.asarray(data["frequency"], dtype=float)  # a frame or a dict of arrays
    t_ = np.asarray(data["T"], dtype=float)
    if week:
        t_ = np.round(t_ / week) * week
    alive = np.asarray(p_alive, dtype=float)
    alive = np.where(np.isnan(alive), 1.0, alive)  # unknown P(alive): as if active
    if not len(x):
        return np.zeros(0), np.ones(0)
    models, p = _draws_and_params(model, n_draws, seed)
    if len(x) <= 16:  # a few rows (a per-event update): each row its own stream, no grouping
        uniq, idx = list(zip(x.tolist(), t_.tolist())), np.arange(len(x))
    else:
        uniq, idx = np.unique(np.column_stack([x, t_]), axis=0, return_inverse=True)
        idx = np.asarray(idx).reshape(-1)
    u = np.empty((len(uniq), len(models)))
    buys = np.empty((len(uniq), len(models)), dtype=np.int64)
    if isinstance(uniq, list):  # a few rows: each history's draws kept on the model (the same draws every time)
        for i, (xi, ti) in enumerate(uniq):
            u[i], buys[i] = _kept_draws(model, p, seed, xi, ti, horizon, len(models))
    else:
        for i, (xi, ti) in enumerate(uniq.tolist()):
            u[i], buys[i] = _history_draws(model, p, seed, xi, ti, horizon, len(models))
    sims = np.where(u[idx] < alive[:, None], buys[idx], 0)  # only those still active buy
    # np.quantile's "lower" and "higher" order statistics, taken from one sort of each row (its positions are
    # the ones np.quantile picks: worked out once per number of draws and level)
    k_lo, k_hi = _quantile_positions(sims.shape[1], level)
    ordered = np.sort(sims, axis=1)
    lo = ordered[:, k_lo].astype(float)
    hi = ordered[:, k_hi].astype(float)
    return lo, np.maximum(hi, lo + 1)


_POSITIONS: dict[tuple[int, float], tuple[int, int]] = {}


def _quantile_positions(n: int, level: float) -> tuple[int, int]:
    """Which order statistics (0-based) of `n` values ``np.quantile`` takes for the range's ends: ``method=
    "lower"`` at ``0.5 - level / 2`` and ``method="higher"`` at ``0.5 + level / 2`` (read from np.quantile of
    0..n-1 itself, so the very same rounding of its virtual index)."""
    key = (n, level)
    if key not in _POSITIONS:
        ranks = np.arange(n)
        _POSITIONS[key] = (int(np.quantile(ranks, 0.5 - level / 2, method="lower")),
                           int(np.quantile(ranks, 0.5 + level / 2, method="higher")))
    return _POSITIONS[key]


def total_interval(data: pd.DataFrame, model, value_per_purchase: np.ndarray, horizon: float, level: float = 0.8,
                   seed: int = 0) -> dict | None:
    """The `level` range of the shop's total over `horizon` periods (one row of `data` per customer).

    `data` has frequency, recency, T (model unit) and p_alive; `value_per_purchase` is each
    customer's discounted value of one purchase.  Returns low, high, level, draws and, in words,
    what the range covers.
    """
    if model is None or not hasattr(model, "params_") or not len(data):
        return None
    x, t_ = (data[c].to_numpy(dtype=float) for c in ("frequency", "T"))
    p_alive = data["p_alive"].to_numpy(dtype=float)
    value = np.nan_to_num(np.asarray(value_per_purchase, dtype=float))
    n_draws = int(np.clip(BUDGET // max(len(x), 1), MIN_DRAWS, MAX_DRAWS))
    rng = np.random.default_rng(seed)
    totals = np.array([value @ _simulate(m, x, t_, p_alive, horizon, rng).astype(float)  # float @ float: fast
                       for m in _draws(model, n_draws, seed)])
    if len(totals) >= MAX_DRAWS:
        lo, hi = np.quantile(totals, [0.5 - level / 2, 0.5 + level / 2])
    else:  # big bases get fewer draws: their total is a sum over many customers, close to normal
        z = float(ndtri(0.5 + level / 2))
        lo, hi = max(totals.mean() - z * totals.std(ddof=1), 0.0), totals.mean() + z * totals.std(ddof=1)
    covers = ("the model's parameter uncertainty and the randomness of who buys how often; spend per order "
              "taken as known" if getattr(model, "covariance_", None) is not None
              else "the randomness of who buys how often, not the uncertainty of the model's parameters")
    return {"low": float(lo), "high": float(hi), "level": level, "draws": len(totals), "covers": covers}
