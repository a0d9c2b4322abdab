"""A range for the total forecast that covers what a reader takes it to mean.

The per-customer CLV intervals (`clv.py`) cover the uncertainty of the model's parameters only.
Summed, they are not a range for the shop's total, and they leave out the larger part: that
customers buy at random even when the model is right.  `total_interval` simulates the total from
the model's own purchase process, with parameters drawn from their sampling distribution:

- BG/NBD and MBG/NBD: a customer still active (probability = their P(alive)) has a purchase
  rate drawn from its posterior Gamma(r + x, alpha + T) and a drop-out probability from
  Beta(a, b + x (+ 1 for MBG/NBD)); they buy at that rate over the horizon and, after each
  purchase, leave with that probability;
- Pareto/NBD: rate from Gamma(r + x, alpha + T), remaining lifetime exponential with a rate
  from Gamma(s, beta + T).

Each simulated purchase is worth the customer's expected spend x margin, discounted as in the
CLV (each customer's discounted-to-undiscounted ratio).  Spend per purchase is taken as known:
the range does not include how much a single order varies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clientfolio.scores.clv import DAYS_PER_MONTH, ClvSettings, _draw_models

MAX_DRAWS, MIN_DRAWS, BUDGET = 400, 50, 20_000_000  # simulated customer-horizons in all


def _simulate(model, x: np.ndarray, t_: np.ndarray, p_alive: np.ndarray, horizon: float,
              rng: np.random.Generator) -> np.ndarray:
    """Purchases of each customer in the next `horizon` periods, one draw."""
    p = model.params_
    alive = rng.random(len(x)) < np.nan_to_num(p_alive, nan=1.0)
    lam = rng.gamma(p["r"] + x, 1.0 / (p["alpha"] + t_))
    if "s" in p:  # Pareto/NBD
        mu = rng.gamma(p["s"], 1.0 / (p["beta"] + t_))
        life = rng.exponential(1.0 / np.maximum(mu, 1e-300))
        return np.where(alive, rng.poisson(lam * np.minimum(life, horizon)), 0)
    k = 1.0 if type(model).__name__ == "MBGNBD" else 0.0
    drop = rng.beta(p["a"], p["b"] + x + k)
    buys = rng.poisson(lam * horizon)
    before_leaving = rng.geometric(np.clip(drop, 1e-12, 1.0))  # the purchase after which they leave
    return np.where(alive, np.minimum(buys, before_leaving), 0)


def total_interval(scores: pd.DataFrame, model, settings: ClvSettings | None = None, seed: int = 0) -> dict | None:
    """The `settings.interval` range of the total CLV over the horizon, or None without a fitted model.

    `scores` is the scored customer table in weeks (frequency, T, p_alive, expected_purchases,
    clv).  Returns low, high, level, draws and what the range covers, in words.
    """
    s = settings or ClvSettings()
    if model is None or not hasattr(model, "params_") or not len(scores):
        return None
    x = scores["frequency"].to_numpy(dtype=float)
    t_ = scores["T"].to_numpy(dtype=float)
    p_alive = scores["p_alive"].to_numpy(dtype=float)
    expected = scores["expected_purchases"].to_numpy(dtype=float)
    clv = scores["clv"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_purchase = np.where(expected > 0, clv / expected, 0.0)  # discounted value of one purchase
    per_purchase = np.nan_to_num(per_purchase)
    horizon = s.horizon_months * DAYS_PER_MONTH / float(scores.attrs.get("unit_days", 7.0))
    n_draws = int(np.clip(BUDGET // max(len(x), 1), MIN_DRAWS, MAX_DRAWS))
    models = _draw_models(model, n_draws, seed) or [model] * n_draws
    rng = np.random.default_rng(seed)
    totals = np.array([per_purchase @ _simulate(m, x, t_, p_alive, horizon, rng) for m in models])
    lo, hi = np.quantile(totals, [0.5 - s.interval / 2, 0.5 + s.interval / 2])
    covers = ("the model's parameter uncertainty and the randomness of who buys how often; spend per order "
              "taken as known" if getattr(model, "covariance_", None) is not None
              else "the randomness of who buys how often, not the uncertainty of the model's parameters")
    return {"low": float(lo), "high": float(hi), "level": s.interval, "draws": len(totals), "covers": covers}
