"""Behaviour segments from what customers buy and do: each a segment kind of its own.

Every kind is skipped, with a note, when the columns it needs are missing.
Thresholds are stated here and in the report:

- category_preference: "<category> lovers" when one category is at least half of the
  customer's spend, else "Mixed basket";
- channel_preference: the channel most of the customer's orders go through;
- discount_reliance: "Value seekers" when at least 30% of spend is on discounted lines;
- occasions: "Gift & seasonal buyers" when at least half of spend is gifts or in December;
- cart_abandoners: "Cart abandoners" with 2 or more abandoned carts;
- support: "Support-heavy" with 2 or more tickets and at least one per 5 orders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clientfolio.core.arrays import nan_to
from clientfolio.core.notes import Note
from clientfolio.segments._membership import as_of_of, membership


def behaviour_segments(customers: pd.DataFrame, as_of=None) -> tuple[pd.DataFrame, list[str]]:
    """Membership rows for every behaviour kind the data supports, and notes on the rest."""
    as_of = as_of_of(customers, as_of)
    ids = customers["customer_id"]
    kinds, notes = behaviour_arrays(customers)
    parts = [membership(ids, kind, pd.Series(values, index=customers.index), as_of) for kind, values in kinds]
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), notes


def _floats(col) -> np.ndarray:
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)


def _texts(col) -> list:
    """Text values as a list, every missing value None."""
    vals = col.tolist() if hasattr(col, "tolist") else list(col)
    return [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v for v in vals]


def behaviour_arrays(cols) -> tuple[list[tuple[str, np.ndarray]], list]:
    """(kind, segment per customer) for every behaviour kind the columns support (a frame or a dict of
    arrays), and notes on the rest; row by row, so a customer alone gets what they get in the whole base."""
    parts: list[tuple[str, np.ndarray]] = []
    notes: list = []
    n = len(cols["customer_id"])
    if "top_category" in cols:
        share_cols = [c for c in cols if str(c).startswith("share_")]
        with np.errstate(invalid="ignore"):
            shares = (np.fmax.reduce([_floats(cols[c]) for c in share_cols], axis=0) if share_cols
                      else np.full(n, np.nan))
        label = np.array([("" if v is None else str(v)).replace("_", " ").capitalize() + " lovers"
                          for v in _texts(cols["top_category"])], dtype=object)
        # rounded: a share of exactly one half is a favourite however its sums were added up (a batch
        # and an order-by-order update add the same amounts in another order)
        parts.append(("category_preference", np.where(np.round(shares, 9) >= 0.5, label, "Mixed basket")))
    else:
        notes.append(Note("category preference skipped: no product categories", topic="no categories"))
    if "top_channel" in cols:
        parts.append(("channel_preference", np.array([("unknown" if v is None else str(v)).replace("_", " ")
                                                      for v in _texts(cols["top_channel"])], dtype=object)))
    else:
        notes.append(Note("channel preference skipped: no sales channel", topic="no channels"))
    with np.errstate(invalid="ignore"):
        if "discount_share" in cols:
            share = nan_to(_floats(cols["discount_share"]), 0.0, keep_inf=True)
            # shares of summed money, compared as the category shares are (at 1e-9): the same sums added in
            # another order (DuckDB's threads, PostgreSQL, a live update) must not move a customer at the line
            parts.append(("discount_reliance", np.where(np.round(share, 9) >= 0.3, "Value seekers", "Full price")))
        else:
            notes.append(Note("discount reliance skipped: no discount column", topic="no discounts"))
        if "gift_share" in cols or "december_share" in cols:
            zero = np.zeros(n)
            gift = nan_to(_floats(cols["gift_share"]), 0.0, keep_inf=True) \
                if "gift_share" in cols else zero
            dec = nan_to(_floats(cols["december_share"]), 0.0, keep_inf=True) \
                if "december_share" in cols else zero
            parts.append(("occasions", np.where(np.round(np.maximum(gift, dec), 9) >= 0.5, "Gift & seasonal buyers",
                                                "Everyday buyers")))
        if "cart_abandons" in cols:
            parts.append(("cart_abandoners", np.where(_floats(cols["cart_abandons"]) >= 2, "Cart abandoners",
                                                      "Completes carts")))
            tickets = _floats(cols["support_tickets"])
            heavy = (tickets >= 2) & (tickets >= _floats(cols["orders"]) / 5)
            parts.append(("support", np.where(heavy, "Support-heavy", "Low support")))
        else:
            notes.append(Note("cart-abandon and support segments skipped: no events", topic="no events"))
    return parts, notes
