"""Churn risk and next order kept current by live updates, for the customers an update touches.

The fitted state keeps the churn and next-order models (:class:`~clientfolio.predict.applied.PredictionModels`,
fitted by `analyze --predict` or a refit of a state that had them).  A live update reads the touched
customers' own rows (a few index lookups), adds what the update itself writes, computes their
prediction features at the update's day with the same code as the batch and applies the same
models: a customer gets what a batch ``PredictionModels.predict(store, day)`` gives them after the
commit.  The rows go into the same commit as the customer's state (:func:`prediction_update` gives
the keyword arguments of ``commit_live``).

The time sweep rescores the customers it applies (those due to move), in its commit too.  With no
prediction models in the state this costs one attribute lookup.  What is not recomputed: customers
neither an event nor the sweep touches keep the day of their last score (as their other scores do;
their ``as_of`` says how old they are), and the models themselves are refitted only by
`analyze --predict` or `clientfolio refit`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import pandas as pd

from clientfolio.store import Store

TX_COLUMNS = ["source", "order_id", "line_key", "customer_id", "ts", "amount", "is_refund", "category", "channel",
              "discount"]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def customer_tables(store: Store, ids: list[str], tx: pd.DataFrame | None = None, ev: pd.DataFrame | None = None,
                    drop: Sequence[tuple[str, str]] = ()) -> dict[str, pd.DataFrame]:
    """The rows of customers `ids` as they will be after a commit that deletes the orders `drop`, then writes
    the order lines `tx` and events `ev` (a stored line or event with the same key is replaced, as
    ``commit_live`` does); `tx` / `ev` None when the update's rows are already stored (an import)."""
    marks = _marks(len(ids))
    stored = store.query(f"SELECT {', '.join(TX_COLUMNS)} FROM transactions WHERE customer_id IN ({marks})", ids)
    if len(stored) and drop:
        gone = pd.MultiIndex.from_tuples([(str(s), str(o)) for s, o in drop])
        stored = stored[~pd.MultiIndex.from_arrays([stored["source"].astype(str),
                                                    stored["order_id"].astype(str)]).isin(gone)]
    if tx is not None and len(tx):
        new = tx[tx["customer_id"].astype(str).isin(ids)]
        if len(new) and len(stored):
            key = ["source", "order_id", "line_key"]
            stored = stored[~pd.MultiIndex.from_frame(stored[key].astype(str)).isin(
                pd.MultiIndex.from_frame(new[key].astype(str)))]
        new = new[[c for c in TX_COLUMNS if c in new.columns]]
        stored = pd.concat([stored, new], ignore_index=True) if len(stored) else new.reset_index(drop=True)
    events = store.query(f"SELECT event_id, customer_id, ts, type, properties FROM events WHERE customer_id IN ({marks})",
                         ids)
    if ev is not None and len(ev):
        new = ev[ev["customer_id"].astype(str).isin(ids)]
        new = new[[c for c in ("event_id", "customer_id", "ts", "type", "properties") if c in new.columns]]
        if len(new):
            events = events[~events["event_id"].astype(str).isin(new["event_id"].astype(str))]
            events = pd.concat([events, new], ignore_index=True) if len(events) else new.reset_index(drop=True)
    customers = store.query(f"SELECT customer_id, acquisition_channel, region FROM customers "
                            f"WHERE customer_id IN ({marks})", ids)
    return {"transactions": stored, "events": events, "customers": customers}


def prediction_update(store: Store, state: Any, ids: list[str], day: pd.Timestamp, state_id: int | None,
                      tx: pd.DataFrame | None = None, ev: pd.DataFrame | None = None,
                      drop: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The ``commit_live`` keyword arguments that replace the predictions of customers `ids` by their
    scores at `day`; empty when the state has no (readable) prediction models.

    A customer with no purchase left by `day` loses their row (as in a batch, which scores only
    customers with a purchase).  `tx`, `ev`, `drop`: what the update writes and deletes (see
    :func:`customer_tables`).
    """
    models = getattr(state, "prediction_models_", None)
    if models is None or not ids or not models.usable:
        return {}
    from clientfolio.predict.stored import rows_of
    from clientfolio.predict.training import load_tables

    ids = sorted({str(c) for c in ids})
    day = pd.Timestamp(day).normalize()
    out = {"predictions_for": ids, "predictions": None}
    try:
        tables = customer_tables(store, ids, tx, ev, drop)
        if not (tables["transactions"]["customer_id"].notna()).any():
            return out  # no order left among them: their rows go, as a batch scores only customers with one
        t = load_tables(tables)
        t = type(t)(t.transactions[t.transactions["ts"] < day + pd.Timedelta(days=1)], t.events, t.customers,
                    t.subscriptions)
        if not (~t.transactions["is_refund"]).any():
            return out
        scored = models.apply(models.features(t, day)).reset_index()
    except Exception as exc:  # noqa: BLE001 - the update itself must go through; their rows keep their as_of
        warnings.warn(f"churn risk and next order of {len(ids)} customer(s) were not rescored ({exc}); their "
                      "stored ones keep the day they are as of", RuntimeWarning, stacklevel=2)
        return {}
    out["predictions"] = rows_of(scored, day, models.horizon_days, state_id)
    return out
