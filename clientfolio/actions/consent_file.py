"""Consent records from a CSV file: every row recorded or rejected with its reason, never re-interpreted.

Columns: customer_id, purpose, channel, granted (required); recorded_at, source (optional).  A
value that is not one of the documented ones is rejected, not guessed: `granted` is one of
true/false, yes/no, 1/0, granted/withdrawn; `recorded_at` an ISO date or time (UTC unless it
says otherwise), not in the future.  Rejected rows go to `<file>.rejects.csv` next to the file,
with file, row, customer_id, column, value and reason (recorded as an output, so erasure finds it).  Rows of customers erased on request are counted and
skipped, and not written to the rejects file (that would keep their data again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from clientfolio.actions.consent import record_consent
from clientfolio.actions.outputs import record_output
from clientfolio.core.errors import ClientfolioError
from clientfolio.core.safecsv import write_frame
from clientfolio.store.base import Store
from clientfolio.store.live import now_utc
from clientfolio.store.pseudonym import erased_values
from clientfolio.store.schema import CHANNELS, PURPOSES

REQUIRED = ("customer_id", "purpose", "channel", "granted")
OPTIONAL = ("recorded_at", "source")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?")
GRANTED = {"true": True, "yes": True, "1": True, "granted": True,
           "false": False, "no": False, "0": False, "withdrawn": False}


@dataclass
class ConsentImport:
    """rows_in == recorded + rejected + erased, always."""

    path: Path
    rows_in: int = 0
    recorded: int = 0
    rejected: int = 0
    erased: int = 0
    rejects_path: Path | None = None
    reasons: dict[str, int] = field(default_factory=dict)


def import_consent_file(store: Store, path: str | Path) -> ConsentImport:
    """Record the consent rows of a CSV file; reject the bad ones into a rejects file next to it."""
    p = Path(path)
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ClientfolioError(f"{p}: cannot read it as a CSV file ({exc}); save it as UTF-8 CSV") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ClientfolioError(f"{p}: missing column(s) {', '.join(missing)}; a consent file needs "
                               f"{', '.join(REQUIRED)} (and may have {', '.join(OPTIONAL)})")
    res = ConsentImport(p, rows_in=len(raw))
    rejects: list[tuple] = []
    erased = erased_values(store, raw["customer_id"].str.strip())
    known = set(store.query("SELECT customer_id FROM customers WHERE customer_id IN (SELECT unnest(CAST(? AS TEXT[])))"
                            if store.kind == "duckdb" else
                            "SELECT customer_id FROM customers WHERE customer_id = ANY(?)",
                            [sorted(set(raw["customer_id"].str.strip()))])["customer_id"])
    now = now_utc()
    good: list[dict] = []
    seen: dict[tuple, tuple[int, bool]] = {}
    for i, r in enumerate(raw.to_dict("records")):
        row = i + 2  # the header is row 1, as a spreadsheet shows it
        cid = r["customer_id"].strip()
        if cid in erased:
            res.erased += 1
            continue
        problem = _check(r, cid, known, now)
        if problem is None:
            key = (cid, r["purpose"].strip(), r["channel"].strip(), r.get("recorded_at", "").strip())
            granted = GRANTED[r["granted"].strip().lower()]
            if key in seen and seen[key][1] != granted:
                problem = ("granted", r["granted"], f"contradicts row {seen[key][0]} (same customer, purpose, "
                                                     "channel and time); neither is guessed right: fix the file")
            else:
                seen[key] = (row, granted)
        if problem is not None:
            col, value, reason = problem
            rejects.append((str(p), row, cid, col, value, reason))
            res.reasons[reason] = res.reasons.get(reason, 0) + 1
            continue
        rec = {"customer_id": cid, "purpose": r["purpose"].strip(), "channel": r["channel"].strip(),
               "granted": GRANTED[r["granted"].strip().lower()],
               "recorded_at": _when(r.get("recorded_at", "")) or now,
               "source": (r.get("source") or "").strip() or f"file {p.name}"}
        good.append(rec | {"_row": row})
    # a contradiction found late also takes back the row it contradicts
    bad_rows = {int(reason.split("row ")[1].split(" ")[0]) for (*_, reason) in rejects
                if reason.startswith("contradicts row")}
    for g in [g for g in good if g["_row"] in bad_rows]:
        good.remove(g)
        rejects.append((str(p), g["_row"], g["customer_id"], "granted", str(g["granted"]).lower(),
                        "contradicted by a later row (same customer, purpose, channel and time)"))
    res.rejected = len(rejects)
    if good:
        res.recorded = len(good)
        record_consent(store, pd.DataFrame(good).drop(columns="_row"))
    if rejects:
        res.rejects_path = p.with_name(p.name + ".rejects.csv")
        write_frame(pd.DataFrame(sorted(rejects, key=lambda x: x[1]),
                                 columns=["file", "row", "customer_id", "column", "value", "reason"]), res.rejects_path)
        record_output(store, res.rejects_path, "consent-rejects", len(rejects))
    assert res.rows_in == res.recorded + res.rejected + res.erased
    return res


def _when(text: str) -> pd.Timestamp | None:
    text = (text or "").strip()
    if not text:
        return None
    ts = pd.Timestamp(text)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _check(r: dict, cid: str, known: set[str], now: object) -> tuple[str, str, str] | None:
    """(column, value, reason) of the first problem of a row, or None when it is good."""
    if not cid:
        return "customer_id", "", "no customer id"
    if cid not in known:
        return "customer_id", cid, "no such customer in the store (import the customers first)"
    purpose, channel, granted = r["purpose"].strip(), r["channel"].strip(), r["granted"].strip()
    if purpose not in PURPOSES:
        return "purpose", purpose, f"unknown purpose: use one of {', '.join(PURPOSES)}"
    if channel not in CHANNELS:
        return "channel", channel, f"unknown channel: use one of {', '.join(CHANNELS)}"
    if granted.lower() not in GRANTED:
        return "granted", granted, "not a consent value: use true/false, yes/no, 1/0 or granted/withdrawn"
    at = (r.get("recorded_at") or "").strip()
    if at:
        if not ISO_TIME.fullmatch(at):
            return "recorded_at", at, "not an ISO date or time: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        try:
            when = _when(at)
        except (ValueError, TypeError):
            return "recorded_at", at, "not a date or time: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        if when is None or pd.isna(when):
            return "recorded_at", at, "not a date or time: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        if when > pd.Timestamp(now):
            return "recorded_at", at, "in the future"
    return None
