"""Pseudonymised customers, segments and reports for sharing (e.g. with an agency).

Customer ids become keyed pseudonyms (HMAC under the store's secret, see
`clientfolio.store.pseudonym`: the same customer has the same pseudonym in every shared file of one
store); contact and identity columns (e-mail, names, phone, address, birthday...) are dropped.
What is left is still personal data in law (scores and segments of a pseudonymous person; a rare
region and spend could single someone out) -- share it under an agreement, not publicly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from clientfolio.store.pseudonym import pseudonym_key, pseudonymise_id

__all__ = ["PII_COLUMNS", "pseudonym_key", "pseudonymise_id", "pseudonymise_frame", "pseudonymise_portfolio"]

# Column names (case-insensitive) that identify or contact a person: dropped, never hashed.
PII_COLUMNS = ("email", "e-mail", "name", "first_name", "last_name", "full_name", "company", "phone", "mobile",
               "address", "address1", "address2", "street", "postcode", "zip", "postal_code", "ip", "ip_address",
               "birthday", "birthday_month", "date_of_birth", "dob")
ID_COLUMNS = ("customer_id",)


def pseudonymise_frame(df: pd.DataFrame, key: str, id_columns: tuple[str, ...] = ID_COLUMNS) -> pd.DataFrame:
    """A copy with customer ids as pseudonyms and identifying columns (PII_COLUMNS) dropped."""
    drop = [c for c in df.columns if str(c).casefold() in PII_COLUMNS]
    out = df.drop(columns=drop).copy()
    for c in id_columns:
        if c in out.columns:
            out[c] = [None if pd.isna(v) else pseudonymise_id(key, v) for v in out[c]]
    return out


def pseudonymise_portfolio(p: Any, key: str) -> Any:
    """A Portfolio whose every customer-level table names customers by pseudonym only.

    Covers what the report and customers file show per customer: customers, segments (now and at
    the previous analysis), the change log examples, the divestment list and the predictions.
    """
    def frame(df: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if df is None else pseudonymise_frame(df, key)

    changes = {}
    if getattr(p, "divestment", None) is not None:
        changes["divestment"] = dataclasses.replace(p.divestment, customers=frame(p.divestment.customers))
    predictions = getattr(p, "predictions", None)
    if predictions is not None and not isinstance(predictions, str):  # churn risk and next order per customer
        scored = frame(predictions.customers)
        scored.attrs = dict(predictions.customers.attrs)
        changes["predictions"] = dataclasses.replace(predictions, customers=scored)
    customers = frame(p.customers)
    customers.attrs = dict(p.customers.attrs)
    return dataclasses.replace(p, customers=customers, segments=frame(p.segments),
                               previous_segments=frame(p.previous_segments), changes=frame(p.changes), **changes)
