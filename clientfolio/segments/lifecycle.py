"""Lifecycle stage of each customer, judged against the customer's own purchase rhythm.

A daily coffee regular who has not come for three weeks is at risk; a once-a-quarter
cake buyer is not.  So the thresholds are multiples of a *rhythm*:

- customers with repeat purchases: their own mean time between purchases;
- one-time buyers: the shop's return window, the time within which 75% of the customers
  who came back made their second purchase.

P(alive) from the purchase model confirms or overrides the day counts.  First match wins:

1. prospect: known customer (customers table) without a purchase;
2. new: one purchase so far, made within the return window;
3. reactivated: came back within the last 2 rhythms after a gap of more than 4 rhythms;
4. churned: P(alive) < 0.10, or no purchase for more than 8 rhythms;
5. lapsed: P(alive) < 0.30, or no purchase for more than 4 rhythms;
6. at risk: P(alive) < 0.70, or no purchase for more than 2 rhythms;
7. active: everyone else.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clientfolio.segments._membership import as_of_of, membership

STAGES = ("prospect", "new", "active", "at risk", "lapsed", "churned", "reactivated")


DEFAULT_WINDOW = 30.0  # days: the return window of a shop where nobody has come back yet
P_ALIVE_LINES = {"churned": 0.10, "lapsed": 0.30, "at risk": 0.70}
RHYTHMS = {"churned": 8, "lapsed": 4, "at risk": 2}


def return_window(customers: pd.DataFrame, unit_days: float | None = None) -> float:
    """The fitted part of lifecycle: days within which 75% of returning customers made their second purchase."""
    u = unit_days or customers.attrs.get("unit_days", 1.0)
    gaps = customers["first_gap"] if "first_gap" in customers else customers["ipt_mean"]
    gaps = (gaps.astype(float) * u)[customers["frequency"] >= 1].dropna()
    window = float(np.quantile(gaps, 0.75)) if len(gaps) else DEFAULT_WINDOW
    return window if np.isfinite(window) and window > 0 else DEFAULT_WINDOW


def lifecycle(customers: pd.DataFrame, as_of=None, prospects: pd.Series | None = None,
              unit_days: float | None = None, window: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-customer table with rhythm and stage, membership).

    `customers` is a summary from `rfm_summary` (+ ``p_alive`` if scored); `prospects` are
    ids of known customers without purchases; `window` is the shop's return window in days
    (from :func:`return_window`; by default fitted on these customers).
    """
    as_of = as_of_of(customers, as_of)
    u = unit_days or customers.attrs.get("unit_days", 1.0)
    window = return_window(customers, u) if window is None else window
    cols = lifecycle_arrays(customers, u, window)
    table = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), **cols})
    if prospects is not None and len(prospects):
        extra = pd.Series(sorted(set(prospects) - set(table["customer_id"])), dtype=object)
        table = pd.concat([table, pd.DataFrame({"customer_id": extra, "days_since_last": np.nan,
                                                "rhythm_days": np.nan, "lifecycle": "prospect"})],
                          ignore_index=True)
    return table, membership(table["customer_id"], "lifecycle", table["lifecycle"], as_of)


def _floats(col) -> np.ndarray:
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)


def lifecycle_arrays(cols, unit_days: float, window: float) -> dict[str, np.ndarray]:
    """days_since_last, rhythm_days and the stage from columns as arrays (a frame or a dict), with the shop's
    return window in days; row by row, so a customer alone gets what they get in the whole base."""
    u = unit_days
    n = len(cols["T"])
    nan = np.full(n, np.nan)
    to_days = lambda col: _floats(cols[col]) * u  # noqa: E731
    t_days = to_days("T")
    since = t_days - to_days("recency")
    own = to_days("ipt_mean")
    freq = np.asarray(cols["frequency"])
    with np.errstate(invalid="ignore"):
        rhythm = np.where((freq >= 1) & (own > 0), own, window)
        before = to_days("ipt_mean_before_last") if "ipt_mean_before_last" in cols else own
        rhythm_before = np.where(before > 0, before, window)
        rhythm_before = np.where(np.isnan(rhythm_before), window, rhythm_before)
        p = _floats(cols["p_alive"]) if "p_alive" in cols else nan
        last_gap = to_days("last_gap") if "last_gap" in cols else nan
        conds = [
            (freq == 0) & (t_days <= window),
            (freq >= 1) & (last_gap > 4 * rhythm_before) & (since <= 2 * rhythm),
            *((p < P_ALIVE_LINES[s]) | (since > RHYTHMS[s] * rhythm) for s in ("churned", "lapsed", "at risk")),
        ]
    # np.select's first true condition, written as np.where from the last one back (the same strings, less overhead)
    stage = np.full(n, "active", dtype="<U11")
    for cond, name in zip(conds[::-1], ["new", "reactivated", "churned", "lapsed", "at risk"][::-1]):
        stage = np.where(cond, name, stage)
    return {"days_since_last": since, "rhythm_days": rhythm, "lifecycle": stage}
