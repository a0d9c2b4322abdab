"""Contact pressure: a cap on how often any customer is contacted, across every playbook, export and trigger.

How caps and windows are judged is :mod:`clientfolio.store.contacts` (re-exported here); this
module writes the contact log and reads pressure per customer and per segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from clientfolio.store.base import Store
from clientfolio.store.consent import ConsentError, check_purpose
from clientfolio.store.contacts import (CAPPED_PURPOSES, CAPS_KEY, DEFAULT_CAPS, ContactCapError, _utc,
                                        _window_words, check_caps, contact_allowance, contact_pressure, get_caps,
                                        over_cap, parse_caps, set_caps, window_length)

__all__ = ["CAPPED_PURPOSES", "CAPS_KEY", "DEFAULT_CAPS", "ContactCapError", "check_caps", "contact_allowance",
           "contact_history", "contact_pressure", "get_caps", "log_contacts", "over_cap", "parse_caps",
           "pressure_by_segment", "set_caps", "window_length", "_window_words"]

_LOG_COLUMNS = ["customer_id", "channel", "purpose", "origin", "ref", "contacted_at"]


def log_contacts(store: Store, frame: pd.DataFrame, at: datetime | str | None = None) -> int:
    """Record contacts (customer_id, channel, purpose, origin, ref; optional contacted_at, default `at` or now).

    `origin` says what sent it (export, webhook, playbook, ...), `ref` which send (an export file,
    an approval or message id); logging the same customer, origin and ref again replaces the row,
    so a retried delivery is counted once.  All rows are written in one transaction or none is.
    """
    need = set(_LOG_COLUMNS) - {"contacted_at"}
    missing = need - set(frame.columns)
    if missing:
        raise ContactCapError(f"contacts to log need the columns {', '.join(sorted(need))} (contacted_at optional); "
                              f"missing: {', '.join(sorted(missing))}")
    rows = frame.copy()
    if rows[list(need)].isna().any().any():
        raise ContactCapError("every contact to log needs a customer_id, channel, purpose, origin and ref")
    for i, (p, c) in enumerate(zip(rows["purpose"], rows["channel"])):
        try:
            check_purpose(str(p), str(c))
        except ConsentError as exc:
            raise ContactCapError(f"contact {i + 1}: {exc}") from None
    if "contacted_at" not in rows:
        rows["contacted_at"] = _utc(at)
    rows["contacted_at"] = [_utc(t) for t in rows["contacted_at"]]
    for c in ("customer_id", "origin", "ref"):
        rows[c] = rows[c].astype(str)
    rows = rows[_LOG_COLUMNS].drop_duplicates(["customer_id", "origin", "ref"], keep="last")
    with store.transaction() as tx:
        tx.executemany("DELETE FROM contact_log WHERE customer_id = ? AND origin = ? AND ref = ?",
                       list(zip(rows["customer_id"], rows["origin"], rows["ref"])))
        return tx.insert("contact_log", rows)


def pressure_by_segment(store: Store, kind: str = "lifecycle", at: datetime | str | None = None,
                        caps: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Contact pressure per segment of one kind (from the analysed customers in customer_state).

    Columns: segment, customers, contacted (customers with a capped contact in the longest window), one
    ``contacts_<window>`` per window (contacts per customer, mean), at_cap (customers who may not be
    contacted now), at_cap_share.
    """
    caps = check_caps(caps) if caps is not None else get_caps(store)
    col = f"seg_{kind}"
    if col not in store.customer_state_columns():
        raise ContactCapError(f"no segments of kind '{kind}' in the store: analyse it first (`clientfolio analyze "
                              f"--store ...`), or choose a kind it has (e.g. lifecycle, value_tier, rfm)")
    members = store.query(f"SELECT customer_id, {col} AS segment FROM customer_state")
    members["customer_id"] = members["customer_id"].astype(str)
    members["segment"] = members["segment"].fillna("(none)").astype(str)
    p = contact_pressure(store, None, at, caps)
    m = members.merge(p, on="customer_id", how="left")
    windows = [f"contacts_{w}" for w in caps]
    m[windows] = m[windows].fillna(0)
    m["contacted"] = m[windows[-1]] > 0
    m["at_cap"] = m["at_cap"].astype("boolean").fillna(False).astype(bool)
    if any(n == 0 for n in caps.values()):
        m["at_cap"] = True
    out = m.groupby("segment").agg(customers=("customer_id", "size"), contacted=("contacted", "sum"), **{w: (w, "mean") for w in windows},
                                   at_cap=("at_cap", "sum")).reset_index()
    out["at_cap_share"] = out["at_cap"] / out["customers"]
    return out.sort_values("customers", ascending=False).reset_index(drop=True)


def contact_history(store: Store, customer_id: str, limit: int = 50) -> pd.DataFrame:
    """One customer's logged contacts, newest first (every purpose, not only the capped ones)."""
    return store.query("SELECT contacted_at, channel, purpose, origin, ref FROM contact_log WHERE customer_id = ? "
                       f"ORDER BY contacted_at DESC LIMIT {int(limit)}", [str(customer_id)])
