"""Right to rectification (GDPR Art. 16): correct a customer's stored data, and record that it happened.

Only fields a customer can ask to correct are accepted (their contact and profile fields); scores
and segments are calculated, not stored facts, and change at the next update or analysis.  The
corrections table keeps which field was corrected and when, never the old value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.live import BUMP_VERSION, now_utc

# field -> what it is, in words for the help and messages
CORRECTABLE = {
    "email": "e-mail address (also on their orders and events)",
    "region": "region",
    "country": "country",
    "industry": "industry (business customers)",
    "size": "company size (business customers)",
    "acquisition_channel": "how they first came to the shop",
}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class CorrectionError(ClientfolioError):
    """A correction that cannot be made (unknown customer, a field that is not correctable, a bad value)."""


@dataclass
class Correction:
    customer_id: str
    fields: list[str]
    rows: dict[str, int]  # rows changed per table


def parse_assignments(items: list[str]) -> dict[str, str]:
    """'field=value' pairs from the command line, checked against the correctable fields."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CorrectionError(f"--set {item!r}: write it as FIELD=VALUE, e.g. --set email=new@example.org")
        out[name] = value.strip()
    return out


def correct_customer(store: Store, customer_id: str, values: dict[str, str], source: str = "request") -> Correction:
    """Set the given fields of one customer (empty value: remove it), in one transaction with the record."""
    cid = str(customer_id).strip()
    bad = sorted(set(values) - set(CORRECTABLE))
    if bad:
        raise CorrectionError(f"cannot correct {', '.join(bad)}: the correctable fields are "
                              f"{', '.join(CORRECTABLE)}; scores and segments are recalculated by "
                              "`clientfolio update` or `analyze`, and consent is changed with `clientfolio consent set`")
    if not values:
        raise CorrectionError("nothing to correct: give at least one --set FIELD=VALUE")
    clean = {k: (v if v != "" else None) for k, v in values.items()}
    if clean.get("email") is not None:
        clean["email"] = clean["email"].strip().casefold()
        if not _EMAIL.fullmatch(clean["email"]):
            raise CorrectionError(f"email {values['email']!r} is not an e-mail address (name@domain.tld)")
    if store.query("SELECT count(*) AS n FROM customers WHERE customer_id = ?", [cid])["n"].iloc[0] == 0:
        raise CorrectionError(f"no customer '{cid}' in the store; check the id (`clientfolio access {cid}` "
                              "shows what is held)")
    now = now_utc()
    rows: dict[str, int] = {}
    with store.transaction() as tx:
        sets = ", ".join(f"{k} = ?" for k in clean)
        tx.execute(f"UPDATE customers SET {sets} WHERE customer_id = ?", [*clean.values(), cid])
        tx.execute(BUMP_VERSION)  # a buffered live update keeps customers' attributes in memory
        rows["customers"] = 1
        if "email" in clean:
            for t in ("transactions", "events"):
                n = int(tx.execute(f"SELECT count(*) FROM {t} WHERE customer_id = ?", [cid])[0][0])
                tx.execute(f"UPDATE {t} SET email = ? WHERE customer_id = ?", [clean["email"], cid])
                rows[t] = n
        tx.insert("corrections", pd.DataFrame({"customer_id": cid, "field": sorted(clean), "corrected_at": now,
                                               "source": source}))
    return Correction(cid, sorted(clean), rows)
