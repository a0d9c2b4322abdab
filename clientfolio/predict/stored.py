"""Churn risk and next order in the store: the `predictions` table (schema version 7).

Predictions belong to the fit they were made at: every row carries ``as_of`` (the last day of the
data the models saw) and ``state_id`` (the fitted portfolio state current when they were written,
NULL when the store has none).  `clientfolio predict --store` and `clientfolio analyze --predict` on a
kept store write them; each such write replaces the whole table in one transaction, so re-running gives
the same table and a failure leaves the previous one.  The fitted state keeps the models
(:mod:`clientfolio.predict.applied`); a live update (`clientfolio update`, events through the service)
applies them -- not retrains them -- to the customers it touches and replaces their rows in the same
commit (:mod:`clientfolio.live.predictions`), so each row's ``as_of`` is the day it was last scored.
Customers no event touched keep the day of the fit: the time sweep does not rescore predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clientfolio.store import Store
from clientfolio.store.live import now_utc

TABLE = "predictions"
COLUMNS = ["customer_id", "churn_risk", "churn_source", "next_order_days", "next_order_low", "next_order_high",
           "next_order_source", "horizon_days", "reason", "as_of", "state_id", "made_at"]
STALE_NOTE = ("as of the day shown: live updates rescore a customer they touch with the fitted state's models "
              "(kept by analyze --predict and refit); others keep the day they were last scored")


def current_state_id(store: Store) -> int | None:
    """The id of the store's current fitted state (None when there is none)."""
    df = store.query("SELECT state_id FROM portfolio_states WHERE is_current ORDER BY state_id DESC LIMIT 1")
    return None if df.empty else int(df["state_id"].iloc[0])


def prediction_rows(result: Any, state_id: int | None) -> pd.DataFrame:
    """The table's rows from a :class:`~clientfolio.predict.evaluation.ShopPredictions`."""
    c = result.customers
    as_of = pd.Timestamp(c.attrs.get("as_of") if c.attrs.get("as_of") is not None else result.churn.cutoff)
    return rows_of(c, as_of, int(result.horizon_days), state_id)


def rows_of(c: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int, state_id: int | None) -> pd.DataFrame:
    """The table's rows from per-customer predictions `c` (a ``customer_id`` column and the scores) made at `as_of`."""
    out = pd.DataFrame({k: c[k] for k in COLUMNS if k in c.columns})
    out["customer_id"] = out["customer_id"].astype(str)
    out["horizon_days"] = int(horizon_days)
    as_of = pd.Timestamp(as_of)
    out["as_of"] = as_of.tz_localize(None) if as_of.tzinfo is not None else as_of
    out["state_id"] = pd.array([state_id] * len(out), dtype="Int64")
    out["made_at"] = pd.Timestamp(now_utc())
    for col in ("churn_risk", "next_order_days", "next_order_low", "next_order_high"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["churn_risk"] = out["churn_risk"].clip(0.0, 1.0)
    return out[COLUMNS]


def save_predictions(store: Store, result: Any, state_id: int | None = None) -> int:
    """Replace the store's predictions by `result`'s, atomically; returns the rows written.

    `state_id` defaults to the store's current fitted state.
    """
    rows = prediction_rows(result, current_state_id(store) if state_id is None else state_id)
    with store.transaction() as tx:
        tx.execute(f"DELETE FROM {TABLE}")
        n = tx.insert(TABLE, rows)
    return n


def read_predictions(store: Store, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """The stored predictions (of the given customers), ordered by customer_id; empty when none were made."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
    params: list[Any] = []
    if customer_ids is not None:
        if not customer_ids:
            return pd.DataFrame(columns=COLUMNS)
        sql += f" WHERE customer_id IN ({', '.join('?' * len(customer_ids))})"
        params = [str(c) for c in customer_ids]
    return store.query(sql + " ORDER BY customer_id", params)


def customer_prediction(store: Store, customer_id: str) -> dict[str, Any] | None:
    """One customer's stored prediction as plain values with its ``as_of`` and what that means; None if none."""
    try:
        df = read_predictions(store, [customer_id])
    except Exception:  # noqa: BLE001 - a store from before schema version 7 has no table
        return None
    if df.empty:
        return None
    row = df.iloc[0].to_dict()
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "customer_id":
            continue
        if isinstance(v, (pd.Timestamp, np.datetime64)):
            v = pd.Timestamp(v).isoformat()
        elif isinstance(v, (np.floating, float)):
            v = None if not np.isfinite(v) else float(v)
        elif isinstance(v, np.integer):
            v = int(v)
        elif v is pd.NA or v is None:
            v = None
        out[k] = v
    out["interval"] = "80% (10% to 90% quantile)" if out.get("next_order_low") is not None else None
    out["note"] = STALE_NOTE
    return out
