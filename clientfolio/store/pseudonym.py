"""Keyed pseudonyms of customer ids, and the tombstones erasure leaves behind.

A pseudonym is an HMAC-SHA256 of the customer id under a secret kept in the store (live_meta key
`pseudonym_key`, made with `secrets.token_hex` the first time it is needed).  The same id gives
the same pseudonym in every file written from one store, so an agency can join two pseudonymised
files, but nobody without the store's key can go back from a pseudonym to the id, or test a guessed
id.  Whoever holds the store can: pseudonyms protect what leaves the store, not the store itself.

Erasure keeps one row per erased customer in `erasures` (subject = the pseudonym of the id; the
detail holds the pseudonyms of their e-mail addresses too), so a later import can recognise the
customer without keeping who they were.  The functions live here, in the store stage, because
ingest (left of actions) needs them; `clientfolio.actions.pseudonym` re-exports them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable

import pandas as pd

from clientfolio.store.base import Store

KEY_NAME = "pseudonym_key"
PSEUDONYM_HEX = 24  # 96 bits: no two customers of any shop share one


def pseudonym_key(store: Store) -> str:
    """The store's pseudonym secret (hex), created on first use; every caller gets the same one."""
    key = store.get_meta(KEY_NAME)
    if key is not None:
        return key
    with store.transaction() as tx:  # two processes racing: the first insert wins, both read it back
        tx.execute("INSERT INTO live_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                   [KEY_NAME, secrets.token_hex(32)])
    key = store.get_meta(KEY_NAME)
    assert key is not None
    return key


def pseudonymise_id(key: str, customer_id: object) -> str:
    """The pseudonym of one customer id (or e-mail) under `key`: 'p_' and 24 hex digits."""
    digest = hmac.new(bytes.fromhex(key), str(customer_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return "p_" + digest[:PSEUDONYM_HEX]


def email_pseudonym(key: str, email: str) -> str:
    """The pseudonym of an e-mail address, case and surrounding blanks ignored (as imports store them)."""
    return pseudonymise_id(key, "email:" + email.strip().casefold())


def tombstones(store: Store) -> set[str]:
    """Pseudonyms of every erased customer id and e-mail address (empty when nobody was erased)."""
    df = store.query("SELECT subject, detail FROM erasures")
    out: set[str] = set()
    for subject, detail in zip(df["subject"], df["detail"]):
        out.add(str(subject))
        try:
            out.update(json.loads(detail).get("email_subjects", []))
        except (ValueError, AttributeError):
            pass
    return out


def erased_values(store: Store, values: Iterable[object]) -> set[str]:
    """Which of these customer ids or e-mail addresses belong to an erased customer."""
    dead = tombstones(store)
    if not dead:
        return set()
    key = pseudonym_key(store)
    hit = set()
    for v in {str(v) for v in values if v is not None and not (isinstance(v, float) and v != v)}:
        if pseudonymise_id(key, v) in dead or ("@" in v and email_pseudonym(key, v) in dead):
            hit.add(v)
    return hit


def erasure_check(store: Store) -> pd.DataFrame:
    """Erased customers who are back in the store (table, customers): empty when every erasure holds.

    An import skips erased customers, but rows written another way (the Python API's live
    update, a database tool) could bring one back; `clientfolio audit` reports it.
    """
    if store.query("SELECT count(*) AS n FROM erasures")["n"].iloc[0] == 0:
        return pd.DataFrame({"table": pd.Series([], dtype=object), "customers": pd.Series([], dtype="int64")})
    found = []
    for table in ("customers", "transactions", "events", "customer_state", "consents"):
        has_email = table in ("customers", "transactions", "events")
        cols = "customer_id, email" if has_email else "customer_id, NULL AS email"
        df = store.query(f"SELECT DISTINCT {cols} FROM {table}")
        back = erased_values(store, list(df["customer_id"]) + list(df["email"]))
        if back:
            hit = df[df["customer_id"].isin(back) | df["email"].isin(back)]
            found.append((table, int(hit["customer_id"].nunique())))
    return pd.DataFrame(found, columns=["table", "customers"])
