"""Sentiment features kept current by live updates: each new review or ticket folded into the customer's row.

analyze derives ``mean_sentiment``, ``negative_share`` and ``texts_scored`` from every customer's
texts (:func:`clientfolio.state.features.with_sentiment`); they are a function of the customer's own
texts only and do not change with time, so a live update keeps them with the customer's other
statistics in customer_state and folds in the texts it brings
(:func:`clientfolio.predict.sentiment.fold_sentiment`): the same numbers as the batch, up to the
last digit of a float.  Nothing here runs when the fitted state has no sentiment features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.predict.sentiment import FEATURES, fold_sentiment, score_texts, texts_from_events
from clientfolio.store import Store

TEXT_TYPES = ("review", "support_ticket")


def new_scores(events: pd.DataFrame | list[dict] | None) -> dict[str, list[float]]:
    """The sentiment of each scored text among these events, per customer, in time order (empty without texts)."""
    if events is None or len(events) == 0:
        return {}
    ev = pd.DataFrame(events) if isinstance(events, list) else events
    ev = ev[ev["type"].isin(TEXT_TYPES)]
    if ev.empty or "properties" not in ev:
        return {}
    t = texts_from_events(ev[["customer_id", "ts", "type", "properties"]])
    t = t[t["text"].notna()]
    if t.empty:
        return {}
    s = score_texts(t["text"].tolist())
    out: dict[str, list[float]] = {}
    for cid, score, ok in zip(t["customer_id"].astype(str), s["sentiment"], s["scored"]):
        if ok:
            out.setdefault(cid, []).append(float(score))
    return out


def kept_sentiment(rec: Mapping[str, Any] | None) -> tuple[float, float, float] | None:
    """The kept (mean, share, count) of a customer_state record; None when it keeps none (no row yet, or a
    row written without sentiment: a customer who had no purchase)."""
    if rec is None:
        return None
    vals = [rec.get(c) for c in FEATURES]
    mean, share, n = (np.nan if v is None or v is pd.NA else float(v) for v in vals)
    return None if n != n else (mean, share, n)


def read_stored(store: Store, ids: list[str]) -> dict[str, tuple[float, float, float]]:
    """(mean, share, count) of customers `ids` from their texts in the store (a small query by customer_id)."""
    from clientfolio.predict.sentiment import scored_texts, sentiment_features
    from clientfolio.state.features import TEXT_EVENTS_SQL

    out = {cid: (np.nan, np.nan, 0.0) for cid in ids}
    if not ids:
        return out
    ev = store.query(f"{TEXT_EVENTS_SQL} AND customer_id IN ({', '.join('?' * len(ids))})", ids)
    if ev.empty:
        return out
    s = sentiment_features(scored_texts(ev))
    for cid, mean, share, n in zip(s.index.astype(str), s["mean_sentiment"], s["negative_share"], s["texts_scored"]):
        out[cid] = (float(mean), float(share), float(n))
    return out


def folded(store: Store, ids: list[str], old: Mapping[str, Mapping[str, Any]], scores: Mapping[str, list[float]],
           stored: bool = False) -> dict[str, np.ndarray]:
    """The sentiment columns of customers `ids`: what their rows keep (`old`: customer_state records by id)
    with the newly scored texts (`scores`, from :func:`new_scores`) folded in.  Customers whose row keeps
    none are read from their stored texts first (a prospect who wrote before buying); `stored`: the
    update's events are already in the store (an import), so those customers' new texts are not added twice."""
    kept = {cid: kept_sentiment(old.get(cid)) for cid in ids}
    read = read_stored(store, [cid for cid, k in kept.items() if k is None])
    cols: dict[str, list[float]] = {c: [] for c in FEATURES}
    for cid in ids:
        base = kept[cid]
        new = scores.get(cid, [])
        if base is None:
            base = read[cid]
            new = [] if stored else new
        for c, v in zip(FEATURES, fold_sentiment(*base, new)):
            cols[c].append(v)
    return {c: np.asarray(v, dtype=float) for c, v in cols.items()}


def with_folded(store: Store, stats: pd.DataFrame, old: pd.DataFrame, events: pd.DataFrame | None,
                stored: bool = False) -> pd.DataFrame:
    """`stats` (one row per customer) with the sentiment columns, from `old` (customer_state rows indexed by
    customer_id) and the texts among `events` (see :func:`folded`)."""
    ids = stats["customer_id"].astype(str).tolist()
    have = [c for c in FEATURES if c in old.columns]
    recs = old[have].to_dict("index") if len(have) == len(FEATURES) and len(old) else {}
    out = stats.copy()
    for c, v in folded(store, ids, recs, new_scores(events), stored).items():
        out[c] = v
    return out


def carried(features: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """`features` with the sentiment columns of `stats` (missing: no scored text, a count of 0)."""
    out = features
    by = stats.set_index(stats["customer_id"].astype(str)) if len(stats) else None
    ids = features["customer_id"].astype(str)
    for c in FEATURES:
        vals = (by[c].reindex(ids).to_numpy(dtype=float) if by is not None and c in by.columns
                else np.full(len(features), np.nan))
        out[c] = np.where(np.isnan(vals), 0.0, vals) if c == "texts_scored" else vals
    return out
