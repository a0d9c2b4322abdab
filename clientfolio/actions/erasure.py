"""Erasure on request (GDPR Art. 17): a customer taken out of every table and every file clientfolio wrote.

What is covered, found rather than listed (see `clientfolio.actions.catalog`):

- every table of the store's catalog: rows keyed by the customer's id, rows keyed by their e-mail
  alone, the applied-event keys of their orders and events; rows of other tables whose text
  names them (a JSON payload, a note) lose the mention;
- every file recorded in `outputs` (exports, customers files, reports, access exports) and the
  rejects file of every import: tables rewritten without the customer's rows, documents naming
  them deleted (see `clientfolio.actions.customer_files`).

What remains is a tombstone in `erasures`: the customer's pseudonym (an HMAC under the store's
secret), when, and counts per table and file -- no personal data.  Imports skip an erased customer
(`clientfolio.ingest.erased`).  Not covered, and said so to the owner: the source exports they
imported (their own files), backups, and what was already sent to other tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from clientfolio.actions.catalog import (
    NOT_CUSTOMER_DATA, Subject, customer_rows, find_subject, names_customer, row_filter, scrub_text, store_tables, text_columns,
)
from clientfolio.actions.customer_files import FileOutcome, file_mentions, remove_customer
from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.live import BUMP_VERSION, now_utc
from clientfolio.store.pseudonym import email_pseudonym, pseudonym_key, pseudonymise_id

PLACEHOLDER = "[erased]"


class ErasureError(ClientfolioError):
    """An erasure that cannot be done as asked (e.g. nobody with that id is held)."""


@dataclass
class ErasurePlan:
    """What an erasure will remove: rows per table, rows whose text names the customer, files naming them."""

    customer_id: str
    subject: Subject
    pseudonym: str
    rows: dict[str, int] = field(default_factory=dict)
    mentions: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)  # path -> rows (1 for a document) naming the customer

    @property
    def empty(self) -> bool:
        return not (self.rows or self.mentions or self.files)


@dataclass
class ErasureResult:
    """What an erasure did; `detail` is what the tombstone keeps (counts and paths, no personal data)."""

    pseudonym: str
    erased_at: datetime
    rows: dict[str, int]
    mentions: dict[str, int]
    files: list[FileOutcome]
    notes: list[str] = field(default_factory=list)

    @property
    def detail(self) -> dict:
        return {"tables": self.rows, "mentions_removed": self.mentions,
                "files": [{"path": f.path, "action": f.action, "rows_removed": f.rows_removed} for f in self.files]}


def _files(store: Store) -> list[str]:
    """Every file clientfolio wrote that may hold customers: recorded outputs and imports' rejects files."""
    out = store.query("SELECT path FROM outputs ORDER BY path")["path"].tolist()
    rej = store.query("SELECT DISTINCT rejects_path FROM imports WHERE rejects_path IS NOT NULL")["rejects_path"]
    return list(dict.fromkeys([str(p) for p in out] + sorted(str(p) for p in rej)))


def plan_erasure(store: Store, customer_id: str) -> ErasurePlan:
    """What erasing `customer_id` would remove, without changing anything."""
    cid = str(customer_id).strip()
    if not cid:
        raise ErasureError("give the id of the customer to erase (as in the customers file)")
    subject = find_subject(store, cid)
    key = pseudonym_key(store)
    plan = ErasurePlan(cid, subject, pseudonymise_id(key, cid))
    for t, (own, named) in customer_rows(store, subject).items():
        if len(own):
            plan.rows[t] = len(own)
        if len(named):
            plan.mentions[t] = len(named)
    for p in _files(store):
        n = file_mentions(Path(p), subject, plan.pseudonym) if Path(p).exists() else 0
        if n:
            plan.files[p] = n
    return plan


def erase_customer(store: Store, customer_id: str) -> ErasureResult:
    """Erase one customer from every table and every file clientfolio wrote, and leave a tombstone.

    Files first (each rewritten atomically), then every table in one transaction with the
    tombstone, so a failure leaves the store as it was and running the erasure again finishes it.
    Raises ErasureError when the store and its files hold nothing about the customer.
    """
    plan = plan_erasure(store, customer_id)
    key = pseudonym_key(store)
    if plan.empty:
        done = store.query("SELECT erased_at FROM erasures WHERE subject = ?", [plan.pseudonym])
        if len(done):
            raise ErasureError(f"customer '{plan.customer_id}' was already erased on "
                               f"{pd.Timestamp(done['erased_at'].iloc[0]):%Y-%m-%d %H:%M} UTC; nothing is left to erase")
        raise ErasureError(f"no customer '{plan.customer_id}' in the store or in the files it wrote; check the id "
                           "(it is the customer_id of the customers file, e.g. from `clientfolio changes`)")
    files = [remove_customer(p, plan.subject, plan.pseudonym) for p in plan.files]
    tables = store_tables(store)
    rows: dict[str, int] = {}
    mentions: dict[str, int] = {}
    now = now_utc()
    with store.transaction() as tx:
        tx.execute(BUMP_VERSION)  # a buffered live update keeps customers' rows in memory
        for t, cols in tables.items():
            if t in NOT_CUSTOMER_DATA:
                continue
            f = row_filter(t, cols, plan.subject)
            if f is not None and plan.rows.get(t):
                n = int(tx.execute(f"SELECT count(*) FROM {t} WHERE {f[0]}", f[1])[0][0])
                tx.execute(f"DELETE FROM {t} WHERE {f[0]}", f[1])
                rows[t] = n
        for t in plan.mentions:
            if _scrub_table(tx, t, tables[t], plan.subject):
                mentions[t] = plan.mentions[t]  # rows (a row may name them in several columns)
        for fo in files:
            if fo.action == "deleted":
                tx.execute("DELETE FROM outputs WHERE path = ?", [fo.path])
            elif fo.action == "rewritten":
                tx.execute("UPDATE outputs SET rows = rows - ? WHERE path = ? AND rows IS NOT NULL",
                           [fo.rows_removed, fo.path])
        result = ErasureResult(plan.pseudonym, now, rows, mentions, files)
        detail = dict(result.detail)
        for f in detail["files"]:  # an access export's name holds the customer id: not in the tombstone
            for n in plan.subject.needles:
                f["path"] = f["path"].replace(n, PLACEHOLDER)
        detail = dict(detail, email_subjects=sorted({email_pseudonym(key, e) for e in plan.subject.emails}))
        tx.execute("DELETE FROM erasures WHERE subject = ?", [plan.pseudonym])
        tx.execute("INSERT INTO erasures (subject, erased_at, detail) VALUES (?, ?, ?)",
                   [plan.pseudonym, now, json.dumps(detail, sort_keys=True)])
    if store.kind == "duckdb":
        store.con.execute("CHECKPOINT")  # type: ignore[attr-defined]  # deleted rows leave the write-ahead log
    result.notes = _notes(store, result)
    return result


def _scrub_table(tx: object, table: str, cols: dict[str, str], subject: Subject) -> int:
    """Replace the customer's mentions in the text columns of rows that belong to others; cells changed."""
    changed = 0
    for c in text_columns(cols):
        vals = tx.execute(f"SELECT DISTINCT {c} FROM {table} WHERE "  # type: ignore[attr-defined]
                          + " OR ".join(f"strpos({c}, ?) > 0" for _ in subject.needles), subject.needles)
        for (old,) in vals:
            if not isinstance(old, str) or not names_customer(old, subject):
                continue
            new = scrub_text(old, subject, PLACEHOLDER)
            if new != old:
                n = tx.execute(f"SELECT count(*) FROM {table} WHERE {c} = ?", [old])[0][0]  # type: ignore[attr-defined]
                tx.execute(f"UPDATE {table} SET {c} = ? WHERE {c} = ?", [new, old])  # type: ignore[attr-defined]
                changed += int(n)
    return changed


def _notes(store: Store, result: ErasureResult) -> list[str]:
    """What the owner still has to do by hand, in plain words."""
    notes = []
    srcs = store.query("SELECT DISTINCT file FROM imports ORDER BY file")["file"].tolist()
    if srcs:
        notes.append(f"the {len(srcs)} export file(s) you imported are your own files and were not changed: delete "
                     "the customer there too (or in the shop system), e.g. " + ", ".join(srcs[:3]))
    if any(f.action == "deleted" for f in result.files):
        notes.append("reports that named the customer were deleted; run the command that wrote them again "
                     "(e.g. `clientfolio analyze --store ...`) for a new one without them")
    if any(f.action == "unreadable" for f in result.files):
        notes.append("some recorded files could not be read; check them by hand (listed above)")
    notes.append("anything already sent to other tools (e-mail, CRM, webhooks) and backups of the store are "
                 "outside clientfolio: ask those tools to erase the customer as well")
    return notes
