"""When will time alone next move a customer?  So a daily sweep touches only the customers who are due.

With no new order or event, only the calendar moves a customer's features: days since the last
order, T and tenure grow by one a day, orders per month thin out (after the first month), and
orders leave the last-12-months window.  Everything else a segment reads is fixed.

The *time-moving kinds* and why each moves one way only (its membership, once changed, never comes
back), which makes "has this kind changed since today?" monotone in the day:

- ``rfm``: R falls as days since the last order pass the fitted recency cut points; F and M are fixed.
- ``lifecycle``: "new" and "reactivated" can only stop holding, "at risk" / "lapsed" / "churned" can
  only start (day counts grow; P(alive) falls -- see below), and the first that holds wins.
- ``value_tier`` and ``portfolio``: CLV falls with silence, and the 12-month value falls as orders
  leave the window (each customer's order days in the window are read, so their value is known on
  every later day; see :class:`Window`).
- ``frequency_tier``: orders per month only fall.
- ``cluster`` (k-means, or nearest group mean): only orders per month moves, monotonically, along
  one axis of the scaled space; a line leaves a convex Voronoi cell once and never re-enters.

P(alive) and CLV fall monotonically with silence (T grows, x and t_x fixed) for BG/NBD,
MBG/NBD and Pareto/NBD, and for the one-time-buyer model (tested in tests/live/test_timing.py).
So the first day a customer's memberships differ from today's is found *exactly* by one bisection
over all customers at once (about nine evaluations of the time-moving kinds -- scores and the
segmenters above, not the whole `apply` -- on ever fewer customers).

Not monotone, handled otherwise:

- Gaussian-mixture clusters: cells need not be convex, so a customer could leave a group and come
  back.  Their group is scanned day by day (exact, slower; only stores whose clusters are a mixture).
- Rule segments that read a time-moving field, a date, or a transaction window ("orders in the last
  30 days"): any rule can switch back and forth, so those customers are re-checked every day
  (conservative: next change = tomorrow).
- A refund leaving the 12-month window raises the 12-month value (not monotone): a customer with a
  refund in the window is re-checked on the day their oldest order there leaves it (conservative:
  the sweep re-applies them and plans again).  A customer nothing moves for a year is re-checked
  after ``RECHECK_DAYS``.

A conservative date is never later than the true change: the customer is swept on it, nothing (or
the right thing) moves, and a new date is planned from there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clientfolio.scores import ClvSettings
from clientfolio.segments import lifecycle, portfolio, rfm, value

RECHECK_DAYS = 366  # nothing moves within a year: look again after it
MONTH = 30.4375  # days in the orders-per-month denominator (as derive_features)
#: What moves with the calendar alone (features, scores and segments); a rule reading one is time-dependent.
TIME_FIELDS = frozenset({
    "T", "tenure", "orders_per_month", "days_since_last", "p_alive", "churn_risk", "expected_purchases", "clv",
    "clv_low", "clv_high", "next_order_date", "value_score", "economic", "engagement", "advocacy", "strategic",
    "R", "FM", "RFM", "rfm_segment", "lifecycle", "quadrant", "value_tier", "frequency_tier", "cluster",
    "value_12m", "revenue_12m", "current_value", "growth_potential", "rhythm_days"})
TIME_KINDS = ("rfm", "value_tier", "frequency_tier", "lifecycle", "portfolio", "cluster")
ALL_KINDS = (*TIME_KINDS, "rules")
# The default RFM grid as an array: [R - 1, FM - 1] -> name (the state scores RFM on the default grid).
_GRID = np.array([list(rfm.DEFAULT_GRID[r]) for r in range(1, 6)], dtype=object)


def rules_move_with_time(state: Any) -> bool:
    """Can the state's rule segments change with the calendar alone (windows, dates, time-moving fields)?"""
    rules = getattr(state, "rules_", None)
    if rules is None:
        return False
    if rules.windows:
        return True
    schema = rules.schema or {}
    return any(f in TIME_FIELDS or str(schema.get(f, "")).startswith("date") for f in rules.fields)


def shift(base: pd.DataFrame, days: np.ndarray, window: Window | None = None,
          at: np.ndarray | None = None) -> pd.DataFrame:
    """Features (in days, as `derive_features` gives them at one date) moved `days[i]` days later per customer.

    Exactly as :func:`clientfolio.features.incremental.features_at` moves them, but each customer
    by their own number of days; ``days_since_last`` is added (RFM reads it, as T - recency).
    """
    t = base["T"].to_numpy(dtype=float) + np.asarray(days, dtype=float)
    out = base.copy(deep=False)
    out["T"] = t
    out["tenure"] = t
    out["orders_per_month"] = base["orders"].to_numpy(dtype="int64") * MONTH / np.maximum(t, MONTH)
    out["days_since_last"] = t - base["recency"].to_numpy(dtype=float)
    if window is not None:  # `at`: the rows' positions in the window's customers
        pos = np.arange(len(base)) if at is None else np.asarray(at)
        now = base["value_12m"].astype(float).fillna(0.0).to_numpy()
        out["value_12m"] = window.value_at(pos, np.asarray(days, dtype=np.int64), now)
    return out


class Window:
    """Each customer's orders of the last 12 months, to give their 12-month value on any later day.

    `lines`: customer_id, day (the order day), value (amount - cost that day), for the days in the
    window at `as_of`.  An order of day t counts up to day t + 365 and leaves on t + 366.  The value
    of the remaining orders is exact when none left yet (the value read with the features) or all
    did (0); in between it is a sum of the remaining days (to float rounding).
    """

    def __init__(self, ids: pd.Index, lines: pd.DataFrame, as_of: pd.Timestamp) -> None:
        pos = ids.get_indexer(pd.Index(lines["customer_id"].astype(str)))
        keep = pos >= 0
        day = ((pd.to_datetime(lines["day"]).to_numpy(dtype="datetime64[ns]") - np.datetime64(as_of, "ns"))
               // np.timedelta64(1, "D")).astype(np.int64)
        pos, day, val = pos[keep], day[keep], lines["value"].to_numpy(dtype=float)[keep]
        order = np.lexsort((day, pos))
        self.pos, self.day, val = pos[order], day[order], val[order]
        n = len(ids)
        self.start = np.searchsorted(self.pos, np.arange(n), side="left")
        self.end = np.searchsorted(self.pos, np.arange(n), side="right")
        # value of lines j.. to the customer's last, summed within each customer (a running sum over all
        # customers would carry the whole base's total into every difference, and its rounding with it)
        self.tail = np.concatenate([pd.Series(val[::-1]).groupby(self.pos[::-1], sort=False).cumsum()
                                    .to_numpy(dtype=float)[::-1], [0.0]])
        # Refunds leaving the window raise the value: not monotone, so those customers are re-checked on
        # the day their first order leaves (as before).
        neg = np.zeros(n, dtype=bool)
        np.logical_or.at(neg, self.pos, val < 0)
        self.negative = neg
        self.first_exit = np.where(self.end > self.start, self.day[np.minimum(self.start, len(self.day) - 1)] + 366,
                                   np.iinfo(np.int64).max) if len(self.day) else np.full(n, np.iinfo(np.int64).max)

    def value_at(self, at: np.ndarray, days: np.ndarray, now: np.ndarray) -> np.ndarray:
        """12-month value of customers at positions `at`, `days` later (`now`: their value at as_of)."""
        start, end = self.start[at], self.end[at]
        key = self.pos.astype(np.int64) * 10_000 + (self.day + 5_000)
        left = np.searchsorted(key, at.astype(np.int64) * 10_000 + (np.asarray(days, dtype=np.int64) - 365 + 5_000),
                               side="left") - start  # lines with day < as_of + days - 365
        left = np.clip(left, 0, end - start)
        rest = self.tail[np.minimum(start + left, len(self.tail) - 1)]
        return np.where(left == 0, now, np.where(left == end - start, 0.0, rest))


class TimeKinds:
    """The time-moving segment kinds of a fitted state, evaluated cheaply on features at any days ahead.

    The same segmenters and fitted lines :meth:`PortfolioState.apply` uses, without the kinds time
    cannot move (profitability, behaviour, past-spend tier), the value score and the CAC.
    """

    def __init__(self, state: Any, as_of: pd.Timestamp, kinds: tuple[str, ...] = TIME_KINDS) -> None:
        self.state = state
        self.only = frozenset(kinds)
        self.as_of = pd.Timestamp(as_of).normalize()
        s = state.settings
        self.settings = ClvSettings(horizon_months=s.horizon_months, discount_rate=s.discount_rate, margin=s.margin,
                                    interval=s.interval, intervals=False, next_order=False)
        assigner = state.cluster_assigner_
        self.assigner = assigner
        self.mixture = (assigner is not None and "cluster" in self.only and assigner.method == "gmm"
                        and bool(assigner.precisions_chol))
        forecasts = state.support_.forecasts
        #: the kinds evaluated, in the order of `memberships`' columns
        self.kinds = tuple(k for k in TIME_KINDS if k in self.only and (forecasts or k not in ("value_tier", "portfolio"))
                           and (k != "cluster" or assigner is not None))

    def memberships(self, features: pd.DataFrame, with_cluster: bool = True) -> np.ndarray:
        """One row per customer, one column per time-moving kind: the segment names (as text)."""
        st, as_of = self.state, self.as_of
        c = st._score(features, as_of, self.settings, fit=False)
        cols = []
        want = self.only
        if "rfm" in want:  # as rfm.rfm_segments, in NumPy: R, F, M against the fitted cuts, then the grid
            r, _, _, fm = rfm.score_grid(*rfm._rfm_inputs(c, as_of), st.rfm_cuts_)
            cols.append(_GRID[r - 1, fm - 1])
        forecasts = st.support_.forecasts
        if forecasts and "value_tier" in want:
            cols.append(value.tiers_by_cuts(c["clv"], st.value_tier_cuts_, value.VALUE_TIER_NAMES))
        if "frequency_tier" in want:  # as value.frequency_tiers
            cols.append(value.frequency_tier_array(c["orders"].to_numpy(), value._tier_rate(c), st.frequency_cut_))
        if "lifecycle" in want:
            life, _ = lifecycle.lifecycle(c, as_of, unit_days=1.0, window=st.return_window_)
            cols.append(life["lifecycle"].to_numpy(dtype=object))
        if forecasts and "portfolio" in want:  # as portfolio.portfolio_quadrants
            splits = st.quadrant_splits_ or portfolio.quadrant_splits(c)
            cols.append(portfolio.portfolio_arrays(c, splits)[2])
        if with_cluster and self.assigner is not None and "cluster" in want:
            cols.append(self.assigner.assign(c))
        if not cols:
            return np.empty((len(features), 0), dtype=object)
        return np.column_stack([np.asarray(col, dtype=object) for col in cols])

    def cluster_at(self, features: pd.DataFrame) -> np.ndarray:
        """Each customer's group (index) on these features."""
        return self.assigner.predict(features)


def change_days(kinds: TimeKinds, base: pd.DataFrame, cap: np.ndarray, window: Window | None = None) -> np.ndarray:
    """Days ahead (1..cap[i]) of each customer's first membership change by time alone; cap[i] where none comes sooner.

    Exact for every monotone kind by bisection over all customers at once (see the module text);
    mixture clusters by a day-by-day scan.  `base`: features at ``kinds.as_of``.
    """
    n = len(base)
    cap = np.clip(np.asarray(cap, dtype=np.int64), 1, RECHECK_DAYS)
    out = cap.copy()
    if not n:
        return out
    monotone_cluster = not kinds.mixture
    now = kinds.memberships(shift(base, np.zeros(n, dtype=np.int64), window), with_cluster=monotone_cluster)

    def moved(idx: np.ndarray, days: np.ndarray) -> np.ndarray:
        later = kinds.memberships(shift(base.iloc[idx], days, window, idx), with_cluster=monotone_cluster)
        return (later != now[idx]).any(axis=1)

    # Has anything moved by the last day before the cap?  Only those customers are bisected.
    last = cap - 1
    idx = np.flatnonzero(last >= 1)
    hit = moved(idx, last[idx]) if len(idx) else np.zeros(0, dtype=bool)
    idx = idx[hit]
    lo = np.zeros(len(idx), dtype=np.int64)  # nothing moved yet on day lo
    hi = last[idx].copy()  # moved by day hi
    while len(idx):
        open_ = hi - lo > 1
        if not open_.any():
            break
        which = np.flatnonzero(open_)
        mid = (lo[which] + hi[which]) // 2
        m = moved(idx[which], mid)
        hi[which[m]] = mid[m]
        lo[which[~m]] = mid[~m]
    out[idx] = hi
    if kinds.mixture:
        out = np.minimum(out, _scan_clusters(kinds, base, out))
    return out


def _scan_clusters(kinds: TimeKinds, base: pd.DataFrame, upto: np.ndarray) -> np.ndarray:
    """First day (< upto[i]) a mixture assigns another group, scanned day by day; upto[i] where none."""
    n = len(base)
    out = np.asarray(upto, dtype=np.int64).copy()
    now = kinds.cluster_at(shift(base, np.zeros(n)))
    todo = np.flatnonzero(out > 1)
    day = 1
    while len(todo):
        todo = todo[out[todo] > day]
        if not len(todo):
            break
        g = kinds.cluster_at(shift(base.iloc[todo], np.full(len(todo), day)))
        moved = g != now[todo]
        out[todo[moved]] = day
        todo = todo[~moved]
        day += 1
    return out


def next_change_dates(state: Any, base: pd.DataFrame, as_of: pd.Timestamp, window: pd.DataFrame | None = None,
                      kinds: tuple[str, ...] = ALL_KINDS) -> pd.Series:
    """Per customer of `base` (features at `as_of`, from ``LivePortfolio.features``): the next day time moves them.

    `window`: the customers' orders of the last 12 months at `as_of` (customer_id, day, value), so
    their 12-month value is known on every later day; without it, the day their oldest such order
    leaves the window cannot be foreseen and nothing is read from it (only for callers that know
    the kinds evaluated do not read it).  `kinds`: only these time-moving kinds (tests look at one
    at a time).  Indexed by customer_id (text).
    """
    as_of = pd.Timestamp(as_of).normalize()
    base = base.reset_index(drop=True)
    ids = pd.Index(base["customer_id"].astype(str), name="customer_id")
    cap = np.full(len(ids), RECHECK_DAYS, dtype=np.int64)
    win = Window(ids, window, as_of) if window is not None and len(ids) else None
    if win is not None:
        # Refunds leaving the window would raise the 12-month value: re-check on the first exit day.
        neg = win.negative
        cap[neg] = np.minimum(cap[neg], np.maximum(win.first_exit[neg], 1))
    if rules_move_with_time(state) and "rules" in kinds:
        cap[:] = 1  # a rule can switch back and forth with the calendar: look again tomorrow
    days = change_days(TimeKinds(state, as_of, kinds), base, cap, win) if len(ids) else cap
    return pd.Series(as_of + pd.to_timedelta(days, unit="D"), index=ids)
