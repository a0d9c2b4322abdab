"""Where a customer can be in the store, read from the database's own catalog (never a fixed list).

Erasure and access both start here: every table the store has (information_schema, the same on
DuckDB and PostgreSQL), and how each table's rows are tied to one customer -- by `customer_id`,
by `email`, by the keys of their orders and events (`applied_events`), or only by mention in a text
column (a JSON payload, a free-text note).  A table added later is covered without a change here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pandas as pd

from clientfolio.store.base import Store

TEXT_TYPES = ("VARCHAR", "TEXT", "CHARACTER VARYING")
# Tables that never hold customer data: the schema's own bookkeeping, and the tombstones
# (pseudonyms by design) that keep an erased customer from coming back.
NOT_CUSTOMER_DATA = ("schema_version", "erasures")


@dataclass
class Subject:
    """One customer as the store knows them: the id, their e-mail addresses, their order and event keys."""

    customer_id: str
    emails: list[str] = field(default_factory=list)
    event_keys: list[str] = field(default_factory=list)

    @property
    def needles(self) -> list[str]:
        """Every value that names the customer (id and e-mail addresses)."""
        return [self.customer_id, *self.emails]


def store_tables(store: Store) -> dict[str, dict[str, str]]:
    """Every base table of the store's schema: {table: {column: data type}} (catalog order)."""
    df = store.query(
        "SELECT c.table_name, c.column_name, upper(c.data_type) AS data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema "
        "AND t.table_catalog = c.table_catalog "
        "WHERE c.table_schema = current_schema() AND c.table_catalog = current_database() "
        "AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position")
    out: dict[str, dict[str, str]] = {}
    for t, c, ty in zip(df["table_name"], df["column_name"], df["data_type"]):
        out.setdefault(str(t), {})[str(c)] = str(ty)
    return out


def text_columns(cols: dict[str, str]) -> list[str]:
    return [c for c, t in cols.items() if t.startswith(TEXT_TYPES)]


def find_subject(store: Store, customer_id: str) -> Subject:
    """The customer's e-mail addresses (from every table with customer_id and email) and event keys."""
    tables = store_tables(store)
    emails: set[str] = set()
    for t, cols in tables.items():
        if "customer_id" in cols and "email" in cols:
            df = store.query(f"SELECT DISTINCT email FROM {t} WHERE customer_id = ? AND email IS NOT NULL",
                             [customer_id])
            emails.update(str(e) for e in df["email"] if str(e).strip())
    if "@" in customer_id:
        emails.add(customer_id)  # rows keyed by e-mail (an import without customer ids) use it as the id
    keys: list[str] = []
    if "transactions" in tables:
        tx = store.query("SELECT DISTINCT source, order_id FROM transactions WHERE customer_id = ?", [customer_id])
        for src, oid in zip(tx["source"], tx["order_id"]):
            keys += [f"order:{src}:{oid}", f"cancel:{src}:{oid}"]
    if "events" in tables:
        ev = store.query("SELECT event_id FROM events WHERE customer_id = ?", [customer_id])
        keys += [f"event:{e}" for e in ev["event_id"]]
    return Subject(customer_id, sorted(emails), keys)


def row_filter(table: str, cols: dict[str, str], subject: Subject) -> tuple[str, list] | None:
    """SQL condition (and parameters) selecting the rows of `table` that belong to the customer.

    None when the table has no column that ties a row to one customer; such a table can still
    mention the customer in its text (see `mention_filter`).
    """
    conds, params = [], []
    if "customer_id" in cols:
        conds.append("customer_id = ?")
        params.append(subject.customer_id)
    if "email" in cols and subject.emails:
        # rows keyed by the e-mail alone (no customer id, or the e-mail as id); another customer who
        # shares the address keeps their own rows
        own = " AND (customer_id IS NULL OR customer_id = email)" if "customer_id" in cols else ""
        conds.append(f"lower(email) IN ({', '.join('?' * len(subject.emails))}){own}")
        params += [e.lower() for e in subject.emails]
    if table == "applied_events" and subject.event_keys:
        conds.append(f"event_key IN ({', '.join('?' * len(subject.event_keys))})")
        params += subject.event_keys
    if not conds:
        return None
    return " OR ".join(f"({c})" for c in conds), params


def mention_filter(cols: dict[str, str], subject: Subject) -> tuple[str, list] | None:
    """SQL condition for rows whose text columns contain the customer's id or e-mail anywhere."""
    conds, params = [], []
    for c in text_columns(cols):
        for n in subject.needles:
            conds.append(f"strpos({c}, ?) > 0")
            params.append(n)
    return (" OR ".join(conds), params) if conds else None


def names_customer(text: str, subject: Subject) -> bool:
    """Does this text name the customer: as a JSON string or key, or as a word of its own?

    A plain substring is not enough: customer "12" is not named by an amount of 0.125, nor by the
    number 12 inside a JSON document.
    """
    data = _json(text)
    if data is not None:
        return _json_names(data, subject.needles)
    return any(_token(n).search(text) for n in subject.needles)


def _json(text: str) -> dict | list | None:
    if not text or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, (dict, list)) else None


def _json_names(obj: object, needles: list[str]) -> bool:
    if isinstance(obj, list):
        return any(_json_names(x, needles) for x in obj)
    if isinstance(obj, dict):
        return any(k in needles or _json_names(v, needles) for k, v in obj.items())
    if isinstance(obj, str):
        return any(_token(n).search(obj) for n in needles)
    return False


def _token(needle: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.@+-])" + re.escape(needle) + r"(?![\w@]|[.-]\w)")


def scrub_text(text: str, subject: Subject, placeholder: str) -> str:
    """`text` without the customer: JSON loses their entries, other text has them replaced by `placeholder`."""
    data = _json(text)
    if data is not None:
        return json.dumps(_scrub_json(data, subject.needles, placeholder))
    return _replace(text, subject.needles, placeholder)


def _replace(text: str, needles: list[str], placeholder: str) -> str:
    for n in needles:
        text = _token(n).sub(placeholder, text)
    return text


def _scrub_json(obj: object, needles: list[str], placeholder: str) -> object:
    """Drop list items that are (or describe) the customer and keys named after them; replace other mentions."""
    if isinstance(obj, list):
        return [_scrub_json(x, needles, placeholder) for x in obj if not _is_subject(x, needles)]
    if isinstance(obj, dict):
        return {k: _scrub_json(v, needles, placeholder) for k, v in obj.items() if k not in needles}
    if isinstance(obj, str):
        return _replace(obj, needles, placeholder)
    return obj


def _is_subject(x: object, needles: list[str]) -> bool:
    if isinstance(x, str):
        return x in needles
    if isinstance(x, dict):
        return any(str(x.get(k)) in needles for k in ("customer_id", "email") if x.get(k) is not None)
    return False


def customer_rows(store: Store, subject: Subject,
                  tables: dict[str, dict[str, str]] | None = None) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per table, (rows that belong to the customer, other rows whose text names them); tables with none left out."""
    tables = tables if tables is not None else store_tables(store)
    out: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for t, cols in tables.items():
        if t in NOT_CUSTOMER_DATA:
            continue
        own = pd.DataFrame()
        f = row_filter(t, cols, subject)
        if f is not None:
            own = store.query(f"SELECT * FROM {t} WHERE {f[0]}", f[1])
        named = pd.DataFrame()
        m = mention_filter(cols, subject)
        if m is not None:
            where, params = m
            if f is not None:
                where, params = f"({where}) AND NOT coalesce(({f[0]}), FALSE)", params + f[1]
            named = store.query(f"SELECT * FROM {t} WHERE {where}", params)
            if len(named):
                txt = text_columns(cols)
                keep = [any(isinstance(r[c], str) and names_customer(r[c], subject) for c in txt)
                        for _, r in named.iterrows()]
                named = named[keep].reset_index(drop=True)
        if len(own) or len(named):
            out[t] = (own, named)
    return out
