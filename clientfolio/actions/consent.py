"""Consent per purpose and channel: who may be contacted, for what, and on what basis.

The decision itself lives in :mod:`clientfolio.store.consent` (so the living portfolio's outbox
uses the same one); this module re-exports it and records consent.

See :mod:`clientfolio.store.consent` for the rules (privacy by default; the newest record
wins; the more restrictive source wins).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from clientfolio.store.base import Store
from clientfolio.store.consent import ConsentError, allowed_ids, check_purpose, consent_map, consent_status
from clientfolio.store.live import now_utc

__all__ = ["ConsentError", "allowed_ids", "check_purpose", "consent_map", "consent_status", "record_consent"]


def record_consent(store: Store, records: pd.DataFrame, source: str = "manual",
                   at: datetime | None = None) -> int:
    """Store consent decisions (customer_id, purpose, channel, granted; optional recorded_at, source).

    A newer record for the same customer, purpose and channel replaces the older one; all rows
    are written in one transaction or none is.
    """
    need = {"customer_id", "purpose", "channel", "granted"}
    missing = need - set(records.columns)
    if missing:
        raise ConsentError(f"consent records need the columns {', '.join(sorted(need))}; "
                           f"missing: {', '.join(sorted(missing))}")
    rows = records.copy()
    for i, (p, c) in enumerate(zip(rows["purpose"], rows["channel"])):
        try:
            check_purpose(str(p), str(c))
        except ConsentError as exc:
            raise ConsentError(f"consent record {i + 1}: {exc}") from None
    if rows["customer_id"].isna().any() or rows["granted"].isna().any():
        raise ConsentError("every consent record needs a customer_id and granted (true/false)")
    if "recorded_at" not in rows:
        rows["recorded_at"] = at or now_utc()
    if "source" not in rows:
        rows["source"] = source
    rows = rows[["customer_id", "purpose", "channel", "granted", "recorded_at", "source"]]
    rows = rows.sort_values("recorded_at").drop_duplicates(["customer_id", "purpose", "channel"], keep="last")
    with store.transaction() as tx:
        tx.executemany("DELETE FROM consents WHERE customer_id = ? AND purpose = ? AND channel = ?",
                       list(zip(rows["customer_id"].astype(str), rows["purpose"], rows["channel"])))
        return tx.insert("consents", rows)
