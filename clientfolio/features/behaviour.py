"""Per-customer behaviour up to a cut-off: what, when and how customers buy, and how they engage.

Computed in SQL on the store (DuckDB or PostgreSQL).  Columns appear only where the data
has what they need; `behaviour_features` returns notes saying what was skipped and why.

- category shares: ``share_<category>`` = share of the customer's spend per product
  category (the 8 largest categories by revenue), and ``top_category``;
- ``weekend_share`` (share of purchase days on Saturday/Sunday), ``december_share``
  (share of spend in December, a seasonal/gift signal), ``gift_share`` (share of spend on
  lines flagged as gifts or in a 'gift' category);
- ``discount_share`` (share of spend on discounted lines), ``top_channel``;
- ``orders_per_month``;
- events: ``email_opens``, ``email_clicks``, ``email_click_rate`` (clicks / opens),
  ``page_views``, ``cart_abandons``, ``support_tickets``, ``reviews``, ``avg_rating``,
  ``nps`` (mean survey score) where events exist.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

from clientfolio.core.notes import Note
from clientfolio.features.summary import _date_lit


def _json_field(kind: str, col: str, key: str) -> str:
    if kind == "postgresql":
        return f"NULLIF(({col})::json->>'{key}', '')"
    return f"json_extract_string({col}, '$.{key}')"


def _slug(text: str) -> str:
    return _slug_text(str(text))


@functools.lru_cache(maxsize=4096)
def _slug_text(text: str) -> str:
    """A category or channel name as a column suffix (kept: a shop has few names, an update asks each time)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "other"


def top_share(shares: np.ndarray, labels: list[str]) -> pd.Series:
    """Per row, the label of the largest positive share (None if none is positive).

    Shares equal but for rounding (124.35 summed in two orders) are a tie and the first label
    wins, so the answer does not depend on the order an engine happened to add the amounts in.
    """
    return pd.Series(top_share_array(shares, labels), dtype="str")


def top_share_array(shares: np.ndarray, labels: list[str]) -> np.ndarray:
    """:func:`top_share` as an object array (None where no share is positive), row by row."""
    if not labels:
        return np.full(len(shares), None, dtype=object)
    shares = shares.reshape(len(shares), len(labels))
    best = shares.max(axis=1, initial=0.0)
    first = np.argmax(shares >= (best - 1e-9 * np.abs(best))[:, None], axis=1)
    return np.where(best > 0, np.array(labels, dtype=object)[first], None)


def _summary_rows(ids: pd.Series, summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's rows in the order of `ids` (both come ordered by customer id: then no join)."""
    if len(summary) == len(ids) and np.array_equal(summary["customer_id"].to_numpy(), ids.to_numpy()):
        return summary
    return pd.DataFrame({"customer_id": ids}).merge(summary, on="customer_id", how="left")


def _orders_per_month(rows: pd.DataFrame, cutoff) -> np.ndarray:
    """Orders per month from the summary's orders and first purchase day: orders * 30.4375 / max(days from
    the first purchase to the cut-off, 30.4375), as the SQL computes it."""
    first = pd.to_datetime(rows["first_purchase"]).to_numpy("datetime64[D]")
    days = (np.datetime64(pd.Timestamp(cutoff).date(), "D") - first).astype("float64")
    return rows["orders"].to_numpy("float64") * 30.4375 / np.maximum(days, 30.4375)


def behaviour_features(store, cutoff, max_categories: int = 8,
                       summary: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per customer with purchases up to `cutoff`; and notes on what was skipped.

    `summary`: ``rfm_summary(store, cutoff=cutoff)`` when the caller has it: its ``orders`` and
    ``first_purchase`` give ``orders_per_month``, and its purchase days (``frequency`` + 1) the
    denominator of ``weekend_share`` (the same counts and day), so neither is counted again here
    (distinct counts, the query's dearest parts)."""
    kind = getattr(store, "kind", "duckdb")
    end = f"CAST({_date_lit(cutoff)} + 1 AS TIMESTAMP)"
    notes: list[str] = []
    has = store.query(f"""SELECT count(category) AS cat, count(discount) AS disc, count(channel) AS chan,
                                 count(attributes) AS attrs, count(*) AS n
                          FROM transactions WHERE customer_id IS NOT NULL AND ts < {end}""").iloc[0]
    cats: list[str] = []
    if has["cat"]:
        top = store.query(f"""SELECT category, sum(amount) AS s FROM transactions
                              WHERE customer_id IS NOT NULL AND ts < {end} AND category IS NOT NULL
                              GROUP BY category ORDER BY s DESC LIMIT {int(max_categories)}""")
        cats = [c for c in top["category"] if c is not None]
    else:
        notes.append(Note("no product categories in the data: category preference skipped", topic="no categories"))
    lit = lambda v: "'" + str(v).replace("'", "''") + "'"  # noqa: E731 - values come from the data itself
    share_cols = "".join(
        f", coalesce(sum(amount) FILTER (WHERE category = {lit(c)}), 0) / nullif(sum(amount) FILTER (WHERE amount > 0), 0) "
        f"AS share_{_slug(c)}" for c in cats)
    gift = _json_field(kind, "attributes", "gift")
    gift_expr = (f"lower(coalesce({gift}, '')) IN ('true', '1', 'yes') OR lower(coalesce(category, '')) = 'gift'"
                 if has["attrs"] else "lower(coalesce(category, '')) = 'gift'")
    disc_col = (", coalesce(sum(amount) FILTER (WHERE discount > 0), 0) "
                "/ nullif(sum(amount) FILTER (WHERE amount > 0), 0) AS discount_share") if has["disc"] else ""
    if not has["disc"]:
        notes.append(Note("no discount column: discount reliance skipped", topic="no discounts"))
    dow = "extract(dow FROM ts)"
    weekend = (f"count(DISTINCT CAST(ts AS DATE)) FILTER (WHERE {dow} IN (0, 6)) AS weekend_days"
               if summary is not None else
               f"count(DISTINCT CAST(ts AS DATE)) FILTER (WHERE {dow} IN (0, 6)) * 1.0 "
               "/ count(DISTINCT CAST(ts AS DATE)) AS weekend_share")
    opm = "" if summary is not None else f""",
               count(DISTINCT source || '|' || order_id) * 30.4375
                   / greatest(CAST({_date_lit(cutoff)} - CAST(min(ts) AS DATE) AS DOUBLE PRECISION), 30.4375)
                   AS orders_per_month"""
    df = store.query(f"""
        WITH tx AS (SELECT * FROM transactions WHERE customer_id IS NOT NULL AND ts < {end} AND NOT is_refund)
        SELECT customer_id,
               {weekend},
               coalesce(sum(amount) FILTER (WHERE extract(month FROM ts) = 12), 0) / nullif(sum(amount), 0)
                   AS december_share,
               coalesce(sum(amount) FILTER (WHERE {gift_expr}), 0) / nullif(sum(amount), 0) AS gift_share
               {disc_col}{share_cols}{opm}
        FROM tx GROUP BY customer_id ORDER BY customer_id""")
    if summary is not None:
        rows = _summary_rows(df["customer_id"], summary)
        df.insert(1, "weekend_share", df.pop("weekend_days").to_numpy("float64")
                  / (rows["frequency"].to_numpy("float64") + 1.0))
        df["orders_per_month"] = _orders_per_month(rows, cutoff)
    if cats:
        share_names = [f"share_{_slug(c)}" for c in cats]
        df[share_names] = df[share_names].astype(float).fillna(0.0)
        df["top_category"] = top_share(df[share_names].to_numpy(dtype=float), [_slug(c) for c in cats])
    if has["chan"]:
        ch = store.query(f"""
            SELECT customer_id, channel FROM (
              SELECT customer_id, channel, row_number() OVER (PARTITION BY customer_id
                     ORDER BY count(*) DESC, channel) AS k
              FROM transactions WHERE customer_id IS NOT NULL AND ts < {end} AND channel IS NOT NULL
              GROUP BY customer_id, channel) c WHERE k = 1""")
        df = df.merge(ch.rename(columns={"channel": "top_channel"}), on="customer_id", how="left")
    else:
        notes.append(Note("no sales channel column: channel preference skipped", topic="no channels"))
    ev = store.query(f"SELECT count(*) AS n FROM events WHERE ts < {end}")["n"].iloc[0]
    if ev:
        rating = _json_field(kind, "properties", "rating")
        nps = _json_field(kind, "properties", "nps")
        e = store.query(f"""
            SELECT customer_id,
                   count(*) FILTER (WHERE type = 'email_open') AS email_opens,
                   count(*) FILTER (WHERE type = 'email_click') AS email_clicks,
                   count(*) FILTER (WHERE type = 'page_view') AS page_views,
                   count(*) FILTER (WHERE type = 'cart_abandon') AS cart_abandons,
                   count(*) FILTER (WHERE type = 'support_ticket') AS support_tickets,
                   count(*) FILTER (WHERE type = 'review') AS reviews,
                   avg(CAST({rating} AS DOUBLE PRECISION)) FILTER (WHERE type = 'review') AS avg_rating,
                   avg(CAST({nps} AS DOUBLE PRECISION)) FILTER (WHERE type = 'survey') AS nps
            FROM events WHERE customer_id IS NOT NULL AND ts < {end} GROUP BY customer_id""")
        df = df.merge(e, on="customer_id", how="left")
        counts = ["email_opens", "email_clicks", "page_views", "cart_abandons", "support_tickets", "reviews"]
        df[counts] = df[counts].fillna(0).astype("int64")
        df["email_click_rate"] = (df["email_clicks"] / df["email_opens"].where(df["email_opens"] > 0)).astype(float)
    else:
        notes.append(Note("no events: engagement, advocacy, cart-abandon and support segments skipped",
                          topic="no events"))
    num = [c for c in df.columns if c not in ("customer_id", "top_category", "top_channel")]
    df[num] = df[num].astype(float)
    return df, notes
