"""Consent per purpose and channel, decided in one place for every path (exports, sends, triggers).

Privacy by default: a customer may be used for a purpose on a channel only when consent for
it is on record.  The record is the `consents` table (one row per customer, purpose and
channel; `any` covers every channel); the newest record wins, so a withdrawal for `any`
overrides an older grant for e-mail.  Where the customers table says a customer does not
accept e-mail marketing, no grant overrides it (the more restrictive source wins).  Without a
record, the customers table's
`consent_marketing` (Shopify's "Accepts Email Marketing", a customers file's column) counts
as consent to marketing by e-mail only, because that is what those exports mean; nothing
else is assumed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.schema import CHANNELS, PURPOSES

__all__ = ["ConsentError", "allowed_ids", "check_purpose", "consent_map", "consent_matrix", "consent_status"]

_DECIDE = """
WITH ids AS (SELECT DISTINCT unnest(CAST(? AS TEXT[])) AS customer_id),
rec AS (
  SELECT customer_id, granted, recorded_at, source, channel,
         row_number() OVER (PARTITION BY customer_id
                            ORDER BY recorded_at DESC, CASE WHEN channel = 'any' THEN 1 ELSE 0 END) AS k
  FROM consents WHERE purpose = ? AND channel IN (?, 'any')
    AND customer_id IN (SELECT customer_id FROM ids)
)
SELECT ids.customer_id, rec.granted, rec.recorded_at, rec.source, rec.channel, c.consent_marketing
FROM ids
LEFT JOIN rec ON rec.customer_id = ids.customer_id AND rec.k = 1
LEFT JOIN customers c ON c.customer_id = ids.customer_id
ORDER BY ids.customer_id
"""


class ConsentError(ClientfolioError):
    """A consent record that does not fit (unknown purpose or channel, missing customer)."""


def check_purpose(purpose: str, channel: str) -> None:
    """Refuse a purpose or channel clientfolio does not know, naming the ones it does."""
    if purpose not in PURPOSES:
        raise ConsentError(f"unknown consent purpose '{purpose}': use one of {', '.join(PURPOSES)}")
    if channel not in CHANNELS:
        raise ConsentError(f"unknown channel '{channel}': use one of {', '.join(CHANNELS)}")


def consent_status(store: Store, customer_ids: Sequence[str], purpose: str = "marketing",
                   channel: str = "email") -> pd.DataFrame:
    """Per customer: may they be used for `purpose` on `channel`, and why (or why not).

    Columns: customer_id, allowed (bool), basis (plain words: "granted 2024-03-01 (shopify)",
    "withdrawn ...", "customers file: accepts e-mail marketing", "no consent on record").
    """
    check_purpose(purpose, channel)
    ids = sorted({str(c) for c in customer_ids})
    if not ids:
        return pd.DataFrame({"customer_id": pd.Series([], dtype=object), "allowed": pd.Series([], dtype=bool),
                             "basis": pd.Series([], dtype=object)})
    df = store.query(_DECIDE, [ids, purpose, channel])
    n = len(df)
    email_marketing = purpose == "marketing" and channel in ("email", "any")
    has_record = df["granted"].notna().to_numpy()
    flag = df["consent_marketing"]
    has_flag = flag.notna().to_numpy() & email_marketing
    flag_yes = flag.astype(object).where(flag.notna(), False).astype(bool).to_numpy()
    # Without a record (most customers): the customers file's flag, or nothing -- decided column-wise.
    allowed = np.where(has_flag, flag_yes, False)
    basis = np.where(has_flag, np.where(flag_yes, "customers file: accepts e-mail marketing",
                                        "customers file: does not accept e-mail marketing"),
                     f"no consent on record for {purpose} by {channel}").astype(object)
    for i in np.flatnonzero(has_record):  # customers with a consent record: their newest record decides
        granted, at, source, ch = (df["granted"].iat[i], df["recorded_at"].iat[i], df["source"].iat[i],
                                   df["channel"].iat[i])
        if bool(granted) and has_flag[i] and not flag_yes[i]:
            allowed[i] = False  # two sources disagree: the more restrictive one wins
            basis[i] = (f"customers file does not accept e-mail marketing (overrides a grant of "
                        f"{pd.Timestamp(at):%Y-%m-%d})")
        else:
            word = "granted" if bool(granted) else "withdrawn"
            scope = "" if ch == channel else " for every channel"
            allowed[i] = bool(granted)
            basis[i] = f"{word}{scope} {pd.Timestamp(at):%Y-%m-%d} ({source})"
    return pd.DataFrame({"customer_id": df["customer_id"].astype(str).to_numpy(), "allowed": allowed.astype(bool),
                         "basis": basis if n else np.array([], dtype=object)})


_DECIDE_MANY = """
WITH ids AS (SELECT DISTINCT unnest(CAST(? AS TEXT[])) AS customer_id),
asked AS (SELECT unnest(CAST(? AS TEXT[])) AS channel),
rec AS (
  SELECT c.customer_id, a.channel AS asked, c.granted,
         row_number() OVER (PARTITION BY c.customer_id, a.channel
                            ORDER BY c.recorded_at DESC, CASE WHEN c.channel = 'any' THEN 1 ELSE 0 END) AS k
  FROM consents c JOIN asked a ON c.channel = a.channel OR c.channel = 'any'
  WHERE c.purpose = ? AND c.customer_id IN (SELECT customer_id FROM ids)
)
SELECT customer_id, asked, granted FROM rec WHERE k = 1
"""


def consent_matrix(store: Store, customer_ids: Sequence[str], purpose: str = "marketing",
                   channels: Sequence[str] = ("email",)) -> pd.DataFrame:
    """May each customer be used for `purpose` on each of `channels`: the `allowed` column of
    :func:`consent_status` for several channels at once (index: the distinct customer ids, sorted;
    one bool column per channel), from one read of the consent records and one of the customers file."""
    for ch in channels:
        check_purpose(purpose, ch)
    ids = sorted({str(c) for c in customer_ids})
    out = pd.DataFrame(index=pd.Index(ids, name="customer_id", dtype=object))
    if not ids:
        for ch in channels:
            out[ch] = pd.Series([], dtype=bool)
        return out
    flags = store.query("SELECT customer_id, consent_marketing FROM customers WHERE consent_marketing IS NOT NULL "
                        "AND customer_id IN (SELECT unnest(CAST(? AS TEXT[])))", [ids])
    flag = pd.Series(flags["consent_marketing"].astype(bool).to_numpy(),
                     index=flags["customer_id"].astype(str).to_numpy(dtype=object))
    flag = flag[~flag.index.duplicated()].reindex(out.index)
    has_flag, flag_yes = flag.notna().to_numpy(), flag.fillna(False).astype(bool).to_numpy()
    recs = store.query(_DECIDE_MANY, [ids, list(channels), purpose])
    pos = out.index.get_indexer(recs["customer_id"].astype(str).to_numpy(dtype=object))
    for ch in channels:
        email_marketing = purpose == "marketing" and ch in ("email", "any")
        # without a record: the customers file's flag (e-mail marketing only), or nothing
        allowed = (has_flag & flag_yes) if email_marketing else np.zeros(len(ids), dtype=bool)
        mine = (recs["asked"] == ch).to_numpy()
        rows, granted = pos[mine], recs["granted"].to_numpy()[mine].astype(bool)
        # with a record, the newest decides; a grant the customers file contradicts does not count
        veto = has_flag[rows] & ~flag_yes[rows] if email_marketing else np.zeros(len(rows), dtype=bool)
        allowed[rows] = granted & ~veto
        out[ch] = allowed
    return out


def allowed_ids(store: Store, customer_ids: Sequence[str], purpose: str = "marketing",
                channel: str = "email") -> set[str]:
    """The customers among `customer_ids` with consent for `purpose` on `channel`."""
    st = consent_status(store, customer_ids, purpose, channel)
    return set(st.loc[st["allowed"], "customer_id"])


def consent_map(store: Store, customer_ids: Sequence[str], purpose: str = "marketing",
                channel: str = "email") -> dict[str, bool]:
    """customer_id -> may they be used for `purpose` on `channel` (every id given is a key)."""
    st = consent_status(store, customer_ids, purpose, channel)
    return dict(zip(st["customer_id"], (bool(a) for a in st["allowed"])))
