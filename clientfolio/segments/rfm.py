"""RFM scores (store-relative quintiles) and the named RFM segments.

R, F and M are scored 1..5 with 5 = best (most recent, most frequent, highest spend), by the
quintile cut points of the values (see `quintile_score`): customers with equal values get equal
scores, so a score holds about a fifth of the customers, less or more where many tie.  FM = (F + M) / 2 rounded
half up; the named segment comes from the R x FM grid in REFERENCE.md, which any caller
can replace (every cell must name exactly one segment).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.core.money import money_key
from clientfolio.segments._membership import as_of_of, membership

# R (rows 5..1) x FM (columns 1..5): the default grid of REFERENCE.md.
DEFAULT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New Customers", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal Customers", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "At Risk", "Can't Lose Them", "Can't Lose Them"),
}


def quintile_cuts(values: pd.Series | np.ndarray) -> list[float] | None:
    """The 20/40/60/80% quantiles of the non-missing values (None when there are none): what RFM fits."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    return np.quantile(finite, [0.2, 0.4, 0.6, 0.8]).tolist() if len(finite) else None


def score_by_cuts(values: pd.Series | np.ndarray, cuts: list[float] | None, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1..5 against fitted cut points: bin = 1 + cut points strictly below the value; missing scores 1."""
    v = np.asarray(values, dtype=float)
    if cuts is None:
        return np.ones(len(v), dtype=np.int64)
    bins = 1 + np.searchsorted(np.asarray(cuts, dtype=float), v, side="left")
    score = bins if higher_is_better else 6 - bins
    return np.where(np.isfinite(v), score, 1).astype(np.int64)


def quintile_score(values: pd.Series, ids: pd.Series | None = None, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1..5 by the quintile cut points of the values themselves: equal values, equal scores.

    The cut points are the 20/40/60/80% quantiles of the (non-missing) values; a value's bin is
    1 + the number of cut points strictly below it (bins closed on the right, in the measure's
    own units: days, orders, money).  The score is the bin, or 6 - bin where lower is better
    (days since the last purchase).  A tie is never split by an arbitrary order, so a block of
    equal values can make a score hold more or fewer than a fifth of the customers -- when every
    customer bought on the cut-off day, all get R = 5.  Missing values score 1.  (`ids` is
    accepted for compatibility; the order of customers plays no part.)
    """
    return score_by_cuts(values, quintile_cuts(values), higher_is_better)


def _rfm_inputs(customers, as_of) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(days since the last purchase, orders, revenue) -- or their fallbacks -- of each customer, as float arrays
    (from a frame or a dict of arrays)."""
    if "days_since_last" in customers:
        since = _floats(customers["days_since_last"])
    elif "last_purchase" in customers and (as_of is not None or hasattr(customers, "attrs")):
        as_of = as_of_of(customers, as_of) if hasattr(customers, "attrs") else as_of
        if as_of is None:
            raise SchemaError("rfm_scores needs 'days_since_last', or 'last_purchase' and an as_of date")
        last = np.asarray(customers["last_purchase"], dtype="datetime64[us]")
        gap = (np.datetime64(pd.Timestamp(as_of).to_datetime64(), "us") - last).astype("int64").astype(float)
        since = np.where(np.isnat(last), np.nan, np.floor(gap / 86_400e6))  # whole days, as Timedelta.days
    else:
        raise SchemaError("rfm_scores needs 'days_since_last', or 'last_purchase' and an as_of date")
    freq = customers["orders"] if "orders" in customers else (customers["frequency"] if "frequency" in customers
                                                               else None)
    money = customers["revenue"] if "revenue" in customers else (customers["monetary"] if "monetary" in customers
                                                                 else None)
    if freq is None or money is None:
        raise SchemaError("rfm_scores needs 'orders' (or 'frequency') and 'revenue' (or 'monetary') columns")
    return since, _floats(freq), _floats(money)


def _floats(col) -> np.ndarray:
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)


def rfm_cuts(customers: pd.DataFrame, as_of=None) -> dict[str, list[float] | None]:
    """The fitted part of RFM: quintile cut points of days since the last order, orders and revenue."""
    since, freq, money = _rfm_inputs(customers, as_of)
    return {"recency": quintile_cuts(since), "orders": quintile_cuts(freq), "revenue": quintile_cuts(money)}


def rfm_scores(customers: pd.DataFrame, as_of=None, cuts: dict[str, list[float] | None] | None = None) -> pd.DataFrame:
    """R, F, M (1..5) and FM for each customer, against `cuts` (default: fitted on these customers).

    Needs ``customer_id`` and either ``days_since_last`` or ``last_purchase`` (with an
    as-of date), ``orders`` or ``frequency``, and ``revenue`` or ``monetary``.
    """
    since, freq, money = _rfm_inputs(customers, as_of)
    cuts = cuts if cuts is not None else rfm_cuts(customers, as_of)
    return pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), **rfm_arrays(since, freq, money, cuts)})


def score_grid(since, freq, money, cuts: dict[str, list[float] | None]) -> tuple[np.ndarray, ...]:
    """(R, F, M, FM) scores 1-5 from days since the last order, orders and revenue (arrays), against `cuts`."""
    r = score_by_cuts(since, cuts["recency"], higher_is_better=False)  # fewer days since last purchase is better
    f = score_by_cuts(freq, cuts["orders"])
    m_cuts = cuts["revenue"]  # revenue is a sum of money: compared with its cuts at money precision
    m = score_by_cuts(money_key(money), None if m_cuts is None else money_key(m_cuts).tolist())
    return r, f, m, np.floor((f + m) / 2 + 0.5).astype(np.int64)


def rfm_arrays(since, freq, money, cuts: dict[str, list[float] | None]) -> dict[str, np.ndarray]:
    """R, F, M, FM and the RFM code from days since the last order, orders and revenue (arrays), against `cuts`."""
    r, f, m, fm = score_grid(since, freq, money, cuts)
    return {"R": r, "F": f, "M": m, "FM": fm, "RFM": [f"{a}{b}{c}" for a, b, c in zip(r.tolist(), f.tolist(),
                                                                                       m.tolist())]}


def rfm_names(r, fm, grid: dict[int, tuple[str, ...]] | None = None) -> np.ndarray:
    """The named RFM segment of each (R, FM) pair in `grid` (default: REFERENCE.md's)."""
    grid = grid or DEFAULT_GRID
    return np.array([grid[a][b - 1] for a, b in zip(np.asarray(r).tolist(), np.asarray(fm).tolist())], dtype=object)


def check_grid(grid: dict[int, tuple[str, ...]]) -> None:
    """A grid must name a segment for every R (1..5) and FM (1..5) cell."""
    if sorted(grid) != [1, 2, 3, 4, 5] or any(len(row) != 5 or not all(row) for row in grid.values()):
        raise SchemaError("an RFM grid needs rows R=5..1, each with 5 segment names for FM=1..5")


def rfm_segments(customers: pd.DataFrame, as_of=None, grid: dict[int, tuple[str, ...]] | None = None,
                 cuts: dict[str, list[float] | None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores table, membership table) with the named RFM segment of every customer.

    `cuts` (from :func:`rfm_cuts`) scores against cut points fitted elsewhere; by default they
    are fitted on these customers."""
    grid = grid or DEFAULT_GRID
    check_grid(grid)
    scores = rfm_scores(customers, as_of, cuts)
    scores["rfm_segment"] = rfm_names(scores["R"].to_numpy(), scores["FM"].to_numpy(), grid)
    return scores, membership(scores["customer_id"], "rfm", scores["rfm_segment"], as_of_of(customers, as_of))
