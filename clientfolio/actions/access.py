"""Right of access (GDPR Art. 15): everything clientfolio holds about one customer, in two forms.

`access.json` is complete and machine-readable: every row of every table of the store's catalog
that belongs to or names the customer (see `clientfolio.actions.catalog`), plus the consent
decision per purpose and channel with its basis, and the files that hold them.  `access.html` is
the same for a person to read (a record that also concerns other people, such as an
approval of a batch, shows where the customer is named but withholds its text): profile, consents, orders, events, scores and segments with the
reasons they moved, corrections, experiments, contacts and files.  Everything shown is escaped.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from clientfolio.actions.catalog import Subject, customer_rows, find_subject, names_customer, store_tables, text_columns
from clientfolio.actions.consent import consent_status
from clientfolio.actions.customer_files import file_mentions
from clientfolio.actions.erasure import _files
from clientfolio.actions.outputs import record_output
from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.live import now_utc
from clientfolio.store.pseudonym import pseudonym_key, pseudonymise_id
from clientfolio.store.schema import CHANNELS, PURPOSES

# Sections of the readable page: (title, table, what it is), in the order a person asks about them.
SECTIONS = (
    ("Profile", "customers", "what your customer record says"),
    ("Consent records", "consents", "each consent you gave or withdrew, per purpose and channel"),
    ("Orders", "transactions", "every order line"),
    ("Activity", "events", "visits, e-mail opens, reviews and support tickets"),
    ("Scores and segments now", "customer_state", "the scores and segments calculated for you"),
    ("Segment history", "segment_memberships", "the segments you were in at each analysis"),
    ("Why you moved between segments", "segment_changes", "each move with its reason"),
    ("Messages queued for other tools", "outbox", "notifications of your segment moves to other tools"),
    ("Messages sent to other tools", "webhook_deliveries", "each notification sent (or not) to a connected tool"),
    ("Corrections", "corrections", "fields of your data that were corrected (when, not the old value)"),
    ("Experiments", "experiment_assignments", "tests you were part of, and in which group"),
    ("Contacts made", "contact_log", "messages sent to you"),
    ("Tags", "owner_tags", "notes the business keeps about you"),
)


WITHHELD = "[withheld: this record also concerns other people]"


class AccessError(ClientfolioError):
    """An access request that cannot be answered as asked."""


@dataclass
class AccessExport:
    """The two files written and what they cover."""

    json_path: Path
    html_path: Path
    tables: dict[str, int]
    files: list[str]


def _plain(v: object) -> object:
    """A value as JSON can hold it (times as ISO text, NaN as null)."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime, date)):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return _plain(v.item())
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _named_records(named: pd.DataFrame, text: list[str], subject: Subject) -> list[dict]:
    """Rows of other records (an approval, a batch) that name the customer: where they are named, and the
    row's plain fields; text fields are withheld, as they may hold other people's data."""
    out = []
    for r in _records(named):
        where = [c for c in text if isinstance(r.get(c), str) and names_customer(r[c], subject)]
        out.append({k: (v if k not in text else WITHHELD) for k, v in r.items()} | {"_names_you_in": where})
    return out


def collect(store: Store, customer_id: str) -> dict:
    """Everything held about `customer_id`, as one JSON-ready dict (raises AccessError when nothing is held)."""
    cid = str(customer_id).strip()
    subject = find_subject(store, cid)
    rows = customer_rows(store, subject, store_tables(store))
    pseudonym = pseudonymise_id(pseudonym_key(store), cid)
    files = []
    for p in _files(store):
        n = file_mentions(Path(p), subject, pseudonym) if Path(p).exists() else 0
        if n:
            files.append({"path": p, "rows": n})
    if not rows and not files:
        raise AccessError(f"nothing is held about customer '{cid}' (no table row, no file); check the id")
    tables = {}
    all_cols = store_tables(store)
    for t, (own, named) in rows.items():
        tables[t] = _records(own) + _named_records(named, text_columns(all_cols[t]), subject)
    consents = []
    for purpose in PURPOSES:
        for channel in CHANNELS:
            st = consent_status(store, [cid], purpose, channel).iloc[0]
            consents.append({"purpose": purpose, "channel": channel, "allowed": bool(st["allowed"]),
                             "basis": st["basis"]})
    return {"customer_id": cid, "emails": subject.emails, "generated_at": now_utc().isoformat(),
            "pseudonym_in_shared_files": pseudonym, "consent_decisions": consents, "tables": tables,
            "files": files}


def write_access_export(store: Store, customer_id: str, out: str | Path) -> AccessExport:
    """Write access.json and access.html for one customer into folder `out` (both recorded as outputs)."""
    data = collect(store, customer_id)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in data["customer_id"])[:60]
    jp, hp = d / f"access-{safe}.json", d / f"access-{safe}.html"
    for path, text in ((jp, json.dumps(data, indent=2, ensure_ascii=False, default=str)), (hp, render_page(data))):
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    n_rows = sum(len(v) for v in data["tables"].values())
    record_output(store, jp, "access", n_rows)
    record_output(store, hp, "access", n_rows)
    return AccessExport(jp, hp, {t: len(v) for t, v in data["tables"].items()}, [f["path"] for f in data["files"]])


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p class='muted'>Nothing held.</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def render_page(data: dict) -> str:
    """The readable page (self-contained HTML, every value escaped)."""
    e = html.escape
    t = data["tables"]
    parts = [f"<h1>What we hold about customer {e(data['customer_id'])}</h1>",
             f"<p>Written {e(data['generated_at'][:16].replace('T', ' '))} UTC. E-mail address(es): "
             f"{e(', '.join(data['emails']) or 'none')}. In files shared without names (pseudonymised) you appear as "
             f"<code>{e(data['pseudonym_in_shared_files'])}</code>.</p>"]
    allowed = [c for c in data["consent_decisions"] if c["allowed"]]
    parts.append("<h2>What you agreed to</h2>" + ("<ul>" + "".join(
        f"<li>{e(c['purpose'])} by {e(c['channel'])}: {e(c['basis'])}</li>" for c in allowed) + "</ul>"
        if allowed else "<p>No consent for any purpose on record: you are not contacted for marketing, "
                        "personalisation or nudges.</p>"))
    shown = set()
    for title, table, what in SECTIONS:
        shown.add(table)
        parts.append(f"<h2>{e(title)}</h2><p class='muted'>{e(what)}</p>{_table_html(t.get(table, []))}")
    for table in sorted(set(t) - shown):
        parts.append(f"<h2>Other records: {e(table)}</h2>{_table_html(t[table])}")
    files = data["files"]
    parts.append("<h2>Files that contain you</h2>" + ("<ul>" + "".join(
        f"<li>{e(f['path'])} ({f['rows']} row(s))</li>" for f in files) + "</ul>" if files
        else "<p>None.</p>"))
    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px;"
           "text-align:left}.scroll{overflow-x:auto}.muted{color:#666}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Your data</title>"
            f"<style>{css}</style></head><body>{''.join(parts)}</body></html>")
