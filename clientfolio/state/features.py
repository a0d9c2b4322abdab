"""Every customer's features at a date, read from a store: what a portfolio state is fitted on and applied to.

One row per customer who bought up to the date: the purchase summary (in days), behaviour and
engagement, the customer's own attributes, and the last 12 months' value.  Known customers
without a purchase come back separately as prospects.
"""

from __future__ import annotations

import pandas as pd

from clientfolio.features import behaviour_features, rfm_summary
from clientfolio.store import IDS_IN, Store

ATTRIBUTES_SQL = ("SELECT customer_id, region, country AS customer_country, industry, size, acquisition_channel, "
                  "acquisition_cost, consent_marketing, first_seen FROM customers")
def value_12m(store: Store, as_of: pd.Timestamp, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """Revenue and gross profit of the 12 months up to `as_of` (refunds included), per customer."""
    end = f"DATE '{pd.Timestamp(as_of).date().isoformat()}'"
    only, params = "", []
    if customer_ids is not None:
        only = f" AND {IDS_IN}" if customer_ids else " AND FALSE"
        params = [[str(c) for c in customer_ids]] if customer_ids else []
    return store.query(f"""SELECT customer_id, sum(amount) AS revenue_12m,
                                  sum(amount) - coalesce(sum(cost), 0) AS value_12m
                           FROM transactions WHERE customer_id IS NOT NULL
                             AND ts >= CAST({end} - 365 AS TIMESTAMP) AND ts < CAST({end} + 1 AS TIMESTAMP){only}
                           GROUP BY customer_id""", params)


def customer_features(store: Store, as_of: pd.Timestamp) -> tuple[pd.DataFrame, list, pd.Series]:
    """(features of every customer with purchases up to `as_of`, notes on what was skipped, prospects)."""
    as_of = pd.Timestamp(as_of).normalize()
    summary = rfm_summary(store, cutoff=as_of, unit="D")
    beh, notes = behaviour_features(store, as_of, summary=summary)
    attrs = store.query(ATTRIBUTES_SQL)
    features = (summary.merge(beh, on="customer_id", how="left")
                .merge(attrs, on="customer_id", how="left")
                .merge(value_12m(store, as_of), on="customer_id", how="left"))
    features[["value_12m", "revenue_12m"]] = features[["value_12m", "revenue_12m"]].fillna(0.0)
    features = with_sentiment(store, features, as_of)
    features.attrs.update({"cutoff": as_of, "unit": "D", "unit_days": 1.0})
    # as objects: pandas 3's isin on a string column took over a second for 100k customers
    buyers = set(summary["customer_id"].astype(object))
    prospects = attrs.loc[~attrs["customer_id"].astype(object).isin(buyers), "customer_id"]
    return features, notes, prospects


TEXT_EVENTS_SQL = ("SELECT customer_id, ts, type, properties FROM events WHERE type IN ('review', 'support_ticket') "
                   "AND customer_id IS NOT NULL")


def with_sentiment(store: Store, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """`features` plus each customer's sentiment (``mean_sentiment``, ``negative_share``, ``texts_scored``:
    :func:`clientfolio.predict.sentiment.sentiment_features`) from their reviews and tickets up to `as_of`,
    when the store holds any scored text; unchanged otherwise.  Missing mean and share for customers
    without a scored text (never 0 as neutral); rules, segments and the value score read them."""
    from clientfolio.predict.sentiment import FEATURES, scored_texts, sentiment_features

    end = f"CAST(DATE '{pd.Timestamp(as_of).date().isoformat()}' + 1 AS TIMESTAMP)"
    ev = store.query(f"{TEXT_EVENTS_SQL} AND ts < {end}")
    if ev.empty:
        return features
    texts = scored_texts(ev)
    if not texts["scored"].any():
        return features
    s = sentiment_features(texts)
    out = features.merge(s, left_on=features["customer_id"].astype(str), right_index=True, how="left")
    out = out.drop(columns="key_0", errors="ignore")
    out["texts_scored"] = out["texts_scored"].fillna(0.0)
    out.attrs.update(features.attrs)
    return out[[*features.columns, *FEATURES]]


def rule_transactions(store: Store) -> pd.DataFrame:
    """The transaction columns windowed rules read ("orders in the last 30 days")."""
    return store.query("SELECT customer_id, source, order_id, ts, amount, is_refund FROM transactions "
                       "WHERE customer_id IS NOT NULL")
