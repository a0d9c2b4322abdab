"""When will time alone next move a customer?  So a daily sweep touches only the customers who are due.

With no new order, a customer's features still change with the calendar: days since the last
order grow, P(alive) and predicted value fall, orders per month thin out, old orders leave the
last-12-months window.  Each customer's *next change date* is found by applying the state at
future dates (1, 3, 7, 14, ... 240 and 365 days ahead, on the customers not yet moved) and taking the
day after the last date at which nothing had moved yet.  That is a lower bound: the sweep on that
day re-applies the customer, and if nothing moved yet it looks again from there with finer steps,
so a change is found within days of when it happens -- and in practice on the day itself, since the
steps restart at one day.  The day an order leaves the 12-month window is added exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

PROBE_DAYS = (1, 3, 7, 14, 30, 60, 120, 240, 365)
RECHECK_DAYS = 366  # nothing moves within a year: look again after it


def next_change_dates(segments_at: Callable[[pd.Timestamp, pd.Index], pd.DataFrame], now: pd.DataFrame,
                      as_of: pd.Timestamp, window_exit: pd.Series | None = None) -> pd.Series:
    """Per customer (the index of `now`): the first day on which a segment may have moved by time alone.

    `segments_at(date, ids)` gives the segment columns of customers `ids` at `date` (same
    columns as `now`, indexed by customer_id); `window_exit` the day each customer's oldest
    order of the last 12 months leaves the window (NaT: none).
    """
    as_of = pd.Timestamp(as_of).normalize()
    nxt = pd.Series(as_of + pd.Timedelta(days=RECHECK_DAYS), index=now.index)
    todo = now.index
    last_still = 0
    for days in PROBE_DAYS:
        if not len(todo):
            break
        later = segments_at(as_of + pd.Timedelta(days=days), todo).reindex(todo)
        before = now.loc[todo, later.columns]
        same = (later.astype(str).to_numpy() == before.astype(str).to_numpy()).all(axis=1)
        moved = todo[~same]
        nxt.loc[moved] = as_of + pd.Timedelta(days=last_still + 1)
        todo = todo[same]
        last_still = days
    if window_exit is not None:
        exit_ = pd.to_datetime(window_exit.reindex(nxt.index))
        nxt = pd.Series(np.where(exit_.notna() & (exit_ < nxt), exit_, nxt), index=nxt.index)
    return pd.to_datetime(nxt)
