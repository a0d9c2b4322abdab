"""RFM scores (store-relative quintiles) and the named RFM segments.

R, F and M are scored 1..5 with 5 = best (most recent, most frequent, highest spend).
Quintiles are taken over ranks, so ties are broken deterministically (by value, then by
customer id) and every score holds a fifth of the customers.  FM = (F + M) / 2 rounded
half up; the named segment comes from the R x FM grid in REFERENCE.md, which any caller
can replace (every cell must name exactly one segment).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.segments._membership import as_of_of, membership

# R (rows 5..1) x FM (columns 1..5): the default grid of REFERENCE.md.
DEFAULT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New Customers", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal Customers", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "At Risk", "Can't Lose Them", "Can't Lose Them"),
}


def quintile_score(values: pd.Series, ids: pd.Series, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1..5 by quintile of rank; ties ordered by customer id so the result is stable."""
    order = pd.DataFrame({"v": values.to_numpy(dtype=float), "id": ids.astype(str).to_numpy()})
    order["v"] = order["v"].fillna(-np.inf if higher_is_better else np.inf)
    ranked = order.sort_values(["v", "id"], ascending=[higher_is_better, True], kind="mergesort").index
    rank = np.empty(len(order), dtype=np.int64)
    rank[ranked] = np.arange(len(order))
    return (1 + (rank * 5) // max(len(order), 1)).astype(np.int64)


def rfm_scores(customers: pd.DataFrame, as_of=None) -> pd.DataFrame:
    """R, F, M (1..5) and FM for each customer.

    Needs ``customer_id`` and either ``days_since_last`` or ``last_purchase`` (with an
    as-of date), ``orders`` or ``frequency``, and ``revenue`` or ``monetary``.
    """
    as_of = as_of_of(customers, as_of)
    if "days_since_last" in customers:
        since = customers["days_since_last"]
    elif "last_purchase" in customers and as_of is not None:
        since = (pd.Timestamp(as_of) - pd.to_datetime(customers["last_purchase"])).dt.days
    else:
        raise SchemaError("rfm_scores needs 'days_since_last', or 'last_purchase' and an as_of date")
    freq = customers["orders"] if "orders" in customers else customers.get("frequency")
    money = customers["revenue"] if "revenue" in customers else customers.get("monetary")
    if freq is None or money is None:
        raise SchemaError("rfm_scores needs 'orders' (or 'frequency') and 'revenue' (or 'monetary') columns")
    ids = customers["customer_id"]
    r = quintile_score(-since.astype(float), ids)  # fewer days since last purchase is better
    f = quintile_score(freq.astype(float), ids)
    m = quintile_score(money.astype(float), ids)
    fm = np.floor((f + m) / 2 + 0.5).astype(np.int64)
    return pd.DataFrame({"customer_id": ids.to_numpy(), "R": r, "F": f, "M": m, "FM": fm,
                         "RFM": [f"{a}{b}{c}" for a, b, c in zip(r, f, m)]})


def check_grid(grid: dict[int, tuple[str, ...]]) -> None:
    """A grid must name a segment for every R (1..5) and FM (1..5) cell."""
    if sorted(grid) != [1, 2, 3, 4, 5] or any(len(row) != 5 or not all(row) for row in grid.values()):
        raise SchemaError("an RFM grid needs rows R=5..1, each with 5 segment names for FM=1..5")


def rfm_segments(customers: pd.DataFrame, as_of=None, grid: dict[int, tuple[str, ...]] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores table, membership table) with the named RFM segment of every customer."""
    grid = grid or DEFAULT_GRID
    check_grid(grid)
    scores = rfm_scores(customers, as_of)
    names = np.array([grid[r][fm - 1] for r, fm in zip(scores["R"], scores["FM"])], dtype=object)
    scores["rfm_segment"] = names
    return scores, membership(scores["customer_id"], "rfm", scores["rfm_segment"], as_of_of(customers, as_of))
