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

from clientfolio.core.notes import Note
from clientfolio.segments._membership import as_of_of, membership


def behaviour_segments(customers: pd.DataFrame, as_of=None) -> tuple[pd.DataFrame, list[str]]:
    """Membership rows for every behaviour kind the data supports, and notes on the rest."""
    as_of = as_of_of(customers, as_of)
    ids = customers["customer_id"]
    parts, notes = [], []

    def add(kind: str, values) -> None:
        parts.append(membership(ids, kind, pd.Series(values, index=customers.index), as_of))

    if "top_category" in customers:
        shares = customers[[c for c in customers if c.startswith("share_")]].max(axis=1)
        label = customers["top_category"].fillna("").str.replace("_", " ").str.capitalize() + " lovers"
        # rounded: a share of exactly one half is a favourite however its sums were added up (a batch
        # and an order-by-order update add the same amounts in another order)
        add("category_preference", np.where(shares.round(9) >= 0.5, label, "Mixed basket"))
    else:
        notes.append(Note("category preference skipped: no product categories", topic="no categories"))
    if "top_channel" in customers:
        add("channel_preference", customers["top_channel"].fillna("unknown").str.replace("_", " "))
    else:
        notes.append(Note("channel preference skipped: no sales channel", topic="no channels"))
    if "discount_share" in customers:
        add("discount_reliance", np.where(customers["discount_share"].fillna(0) >= 0.3, "Value seekers", "Full price"))
    else:
        notes.append(Note("discount reliance skipped: no discount column", topic="no discounts"))
    if "gift_share" in customers or "december_share" in customers:
        occasion = np.maximum(customers.get("gift_share", 0).fillna(0), customers.get("december_share", 0).fillna(0))
        add("occasions", np.where(occasion >= 0.5, "Gift & seasonal buyers", "Everyday buyers"))
    if "cart_abandons" in customers:
        add("cart_abandoners", np.where(customers["cart_abandons"] >= 2, "Cart abandoners", "Completes carts"))
        tickets = customers["support_tickets"]
        heavy = (tickets >= 2) & (tickets >= customers["orders"] / 5)
        add("support", np.where(heavy, "Support-heavy", "Low support"))
    else:
        notes.append(Note("cart-abandon and support segments skipped: no events", topic="no events"))
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), notes
