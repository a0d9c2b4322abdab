"""The strategic portfolio: current value x growth potential, concentration, and what to divest.

- Quadrants: current value = gross profit in the last 12 months before the cut-off (revenue
  where there is no cost data); growth potential = predicted CLV over the horizon.  Each is
  split at its median among active customers: Stars (high, high), Develop (low now, high
  potential), Maintain (high now, low potential: protect), Review (low, low).
- Concentration: the Pareto curve of revenue over customers and the top-20% share.
- Divestment candidates: customers whose gross profit does not cover their cost to serve,
  and segments that lose money in total, each with the numbers that put them there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clientfolio.core.arrays import nan_to
from clientfolio.core.money import money_key
from clientfolio.segments._membership import as_of_of, membership

QUADRANTS = ("Stars", "Develop", "Maintain", "Review")
MIN_CUSTOMERS_FOR_SHARES = 10


def quadrant_splits(customers: pd.DataFrame, current: str = "value_12m", potential: str = "clv") -> dict[str, float]:
    """The fitted part of the quadrants: the medians of current value and growth potential."""
    return {"current": float(np.median(customers[current].astype(float).fillna(0.0))),
            "potential": float(np.median(customers[potential].astype(float).fillna(0.0)))}


def portfolio_quadrants(customers: pd.DataFrame, as_of=None, current: str = "value_12m",
                        potential: str = "clv", splits: dict[str, float] | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quadrant per customer with the two coordinates and the split points used (`splits` from
    :func:`quadrant_splits`; by default fitted on these customers)."""
    splits = splits or quadrant_splits(customers, current, potential)
    cx, cy = splits["current"], splits["potential"]
    cur, pot, quad = quadrant_arrays(customers[current], customers[potential], splits)
    table = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), "current_value": cur,
                          "growth_potential": pot, "quadrant": quad})
    table.attrs.update({"current_split": cx, "potential_split": cy})
    return table, membership(table["customer_id"], "portfolio", table["quadrant"], as_of_of(customers, as_of))



def quadrant_arrays(current, potential, splits: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(current value, growth potential, quadrant) per customer from arrays, against fitted `splits`."""
    cur = nan_to(_floats(current), 0.0, keep_inf=True)
    pot = nan_to(_floats(potential), 0.0, keep_inf=True)
    hi_c = money_key(cur) > money_key(splits["current"])  # a sum of money, compared at money precision
    hi_p = pot > splits["potential"]
    quad = np.select([hi_c & hi_p, ~hi_c & hi_p, hi_c & ~hi_p], QUADRANTS[:3], default=QUADRANTS[3])
    return cur, pot, quad


def portfolio_arrays(cols, splits: dict[str, float], current: str = "value_12m",
                     potential: str = "clv") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`quadrant_arrays` of columns (a frame or a dict of arrays)."""
    return quadrant_arrays(cols[current], cols[potential], splits)


def _floats(col) -> np.ndarray:
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)


def concentration(revenue: pd.Series, points: int = 101) -> tuple[pd.DataFrame, float]:
    """Pareto curve (share of customers -> share of revenue, best customers first) and top-20% share.

    The top-20% share is NaN below 10 customers: a fifth of fewer than two customers is a fraction
    of a person, and the number would describe the interpolation, not the shop.
    """
    r = np.sort(np.clip(revenue.astype(float).fillna(0.0).to_numpy(), 0, None))[::-1]
    total = r.sum()
    if len(r) == 0 or total <= 0:
        return pd.DataFrame({"customer_share": [0.0, 1.0], "revenue_share": [0.0, 1.0]}), float("nan")
    cum = np.concatenate([[0.0], np.cumsum(r) / total])
    x = np.linspace(0, 1, points)
    y = np.interp(x * len(r), np.arange(len(r) + 1), cum)
    top20 = float(np.interp(0.2 * len(r), np.arange(len(r) + 1), cum)) if len(r) >= MIN_CUSTOMERS_FOR_SHARES \
        else float("nan")
    return pd.DataFrame({"customer_share": x, "revenue_share": y}), top20


@dataclass
class Divestment:
    customers: pd.DataFrame  # customer_id, revenue, gross_profit, cost_to_serve, profit, clv, evidence
    segments: pd.DataFrame  # segment_kind, segment, customers, profit, evidence


def divestment_candidates(customers: pd.DataFrame, memberships: pd.DataFrame, currency: str = "") -> Divestment:
    """Customers and segments unprofitable after cost to serve, with the evidence in words."""
    need = {"customer_id", "revenue", "gross_profit", "cost_to_serve", "profit"}
    if not need <= set(customers):
        return Divestment(pd.DataFrame(columns=sorted(need) + ["clv", "evidence"]), pd.DataFrame())
    c = customers
    losers = c[(c["profit"] < 0) & (c["cost_to_serve"] > 0)].copy()
    clv = losers["clv"] if "clv" in losers else pd.Series(np.nan, index=losers.index)
    money = lambda v: f"-{currency}{-v:,.2f}" if v < 0 else f"{currency}{v:,.2f}"  # noqa: E731
    losers["evidence"] = [
        f"revenue {money(r)} over {int(o)} order{'s' if int(o) != 1 else ''} leaves gross profit {money(g)}, "
        f"but serving them cost "
        f"{money(s)}: a loss of {money(-p)}" + (f"; predicted CLV {money(v)}" if np.isfinite(v) else "")
        for r, o, g, s, p, v in zip(losers["revenue"], losers.get("orders", pd.Series(0, index=losers.index)),
                                    losers["gross_profit"], losers["cost_to_serve"], losers["profit"], clv)]
    cols = ["customer_id", "revenue", "gross_profit", "cost_to_serve", "profit"] + (["clv"] if "clv" in c else [])
    losers = losers[cols + ["evidence"]].sort_values("profit")
    seg = memberships.merge(c[["customer_id", "profit", "revenue"]], on="customer_id")
    by = seg.groupby(["segment_kind", "segment"]).agg(customers=("customer_id", "size"), profit=("profit", "sum"),
                                                      revenue=("revenue", "sum")).reset_index()
    bad = by[by["profit"] < 0].copy()
    bad["evidence"] = [f"{n:,} customers bring revenue {money(r)} but cost {money(r - p)} to supply and serve: "
                       f"a loss of {money(-p)}" for n, r, p in zip(bad["customers"], bad["revenue"], bad["profit"])]
    return Divestment(losers.reset_index(drop=True), bad.sort_values("profit").reset_index(drop=True))
