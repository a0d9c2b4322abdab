"""Value segments: value tiers, frequency tiers, profitability, and a multi-dimensional value score.

Value has several dimensions (economic, engagement, advocacy, strategic); the score
combines them with weights the user sets, or a sector preset.  Each dimension is the mean
percentile (0-100) of the inputs the data has; a dimension without inputs is left out and
its weight shared among the others (the returned notes say so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.segments._membership import as_of_of, membership

VALUE_TIER_NAMES = ("High-Value Regulars", "Medium-Value Occasionals", "Low-Value One-Timers")
PRESETS: dict[str, dict[str, float]] = {
    "retail": {"economic": 0.5, "engagement": 0.2, "advocacy": 0.2, "strategic": 0.1},
    "services": {"economic": 0.4, "engagement": 0.2, "advocacy": 0.3, "strategic": 0.1},
    "b2b": {"economic": 0.5, "engagement": 0.1, "advocacy": 0.1, "strategic": 0.3},
    "subscription": {"economic": 0.5, "engagement": 0.3, "advocacy": 0.1, "strategic": 0.1},
    "non-profit": {"economic": 0.3, "engagement": 0.3, "advocacy": 0.3, "strategic": 0.1},
}
DIMENSIONS = {
    "economic": ("clv", "revenue", "margin"),
    "engagement": ("email_click_rate", "email_opens", "page_views", "orders_per_month"),
    "advocacy": ("reviews", "avg_rating", "nps", "referrals"),
    "strategic": ("strategic",),
}


def _tiers(values: pd.Series, shares: tuple[float, float], names: tuple[str, str, str]) -> np.ndarray:
    """Tier by cut points on the values: above the (1 - top share) quantile, above the (1 - top - next)
    quantile, the rest.  Equal values share a tier (a tie at a cut point goes to the lower tier),
    so the tiers hold about, not exactly, the stated shares.  Missing values are in the last tier."""
    v = values.to_numpy(dtype=float)
    finite = v[np.isfinite(v)]
    if not len(finite):
        return np.full(len(v), names[2], dtype=object)
    hi, mid = np.quantile(finite, [1 - shares[0], 1 - shares[0] - shares[1]])
    ok = np.isfinite(v)
    return np.where(ok & (v > hi), names[0], np.where(ok & (v > mid), names[1], names[2]))


def value_tiers(customers: pd.DataFrame, as_of=None, column: str = "clv", shares: tuple[float, float] = (0.2, 0.3),
                names: tuple[str, str, str] = VALUE_TIER_NAMES, kind: str = "value_tier") -> pd.DataFrame:
    """Top `shares[0]` / next `shares[1]` / rest of customers by `column` (predicted CLV by default).

    Cut points are on the values, so customers with equal values are always in the same tier.
    """
    if column not in customers:
        raise SchemaError(f"value_tiers: no {column!r} column; score customers first (clientfolio.scores)")
    if not (0 < shares[0] < 1 and 0 < shares[1] < 1 and sum(shares) < 1):
        raise SchemaError(f"value_tiers: shares must be two fractions summing below 1, got {shares}")
    tier = _tiers(customers[column], shares, names)
    return membership(customers["customer_id"], kind, pd.Series(tier), as_of_of(customers, as_of))


def frequency_tiers(customers: pd.DataFrame, as_of=None) -> pd.DataFrame:
    """One-time (a single order), frequent (top third of repeat buyers by orders per month), occasional."""
    orders = customers["orders"].to_numpy()
    rate = customers["orders_per_month"] if "orders_per_month" in customers else customers["frequency"]
    repeat = orders > 1
    cut = np.quantile(rate[repeat], 2 / 3) if repeat.any() else np.inf
    tier = np.where(~repeat, "One-time", np.where(rate.to_numpy() >= cut, "Frequent", "Occasional"))
    return membership(customers["customer_id"], "frequency_tier", pd.Series(tier), as_of_of(customers, as_of))


def profitability(customers: pd.DataFrame, default_margin: float = 1.0, as_of=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Profit after cost of goods and cost-to-serve, per customer; tiers Profitable / Break-even / Unprofitable.

    Cost of goods comes from the data where present, else revenue x (1 - default_margin);
    cost-to-serve (delivery, payment, service costs) from the data where present, else 0.
    """
    rev = customers["revenue"].astype(float)
    cost = customers["cost"].astype(float) if "cost" in customers else pd.Series(np.nan, index=customers.index)
    cogs = cost.where(cost.notna(), rev * (1 - default_margin))
    cts = customers["cost_to_serve"].astype(float).fillna(0.0) if "cost_to_serve" in customers else 0.0 * rev
    profit = rev - cogs - cts
    band = 0.02 * rev.abs().clip(lower=1.0)
    tier = np.where(profit > band, "Profitable", np.where(profit < -band, "Unprofitable", "Break-even"))
    table = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), "gross_profit": (rev - cogs).to_numpy(),
                          "cost_to_serve": cts.to_numpy(), "profit": profit.to_numpy(), "profitability": tier})
    return table, membership(customers["customer_id"], "profitability", pd.Series(tier), as_of_of(customers, as_of))


@dataclass
class ValueScore:
    scores: pd.DataFrame  # customer_id, economic, engagement, advocacy, strategic, value_score
    weights: dict[str, float]
    notes: list[str]


def value_score(customers: pd.DataFrame, weights: dict[str, float] | str = "retail") -> ValueScore:
    """Multi-dimensional value score 0-100 with user weights or a sector preset."""
    if isinstance(weights, str):
        if weights not in PRESETS:
            raise SchemaError(f"unknown sector preset {weights!r}; use one of {sorted(PRESETS)} or a dict of weights")
        weights = PRESETS[weights]
    bad = set(weights) - set(DIMENSIONS)
    if bad or any(w < 0 for w in weights.values()) or not sum(weights.values()):
        raise SchemaError(f"value weights must be non-negative numbers for {sorted(DIMENSIONS)}, got {weights}")
    out = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy()})
    used, notes = {}, []
    for dim, cols in DIMENSIONS.items():
        have = [c for c in cols if c in customers and customers[c].notna().any()]
        if not have or not weights.get(dim):
            if weights.get(dim):
                notes.append(f"no {dim} data ({', '.join(cols)}): its weight is shared among the other dimensions")
            continue
        pct = [customers[c].astype(float).rank(pct=True).fillna(0.0).to_numpy() * 100 for c in have]
        out[dim] = np.mean(pct, axis=0)
        used[dim] = weights[dim]
    total = sum(used.values())
    if not total:
        raise SchemaError("value_score: none of the value dimensions has data")
    norm = {d: w / total for d, w in used.items()}
    out["value_score"] = sum(out[d] * w for d, w in norm.items())
    return ValueScore(out, norm, notes)
