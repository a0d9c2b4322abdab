"""Consent per purpose and channel, on both stores; and the store's transaction for the actions tables."""

from __future__ import annotations

import pandas as pd
import pytest

from clientfolio.actions.consent import ConsentError, allowed_ids, consent_status, record_consent
from clientfolio.core.errors import StoreError


def _customers(store, flags: dict[str, bool | None]) -> None:
    rows = pd.DataFrame({"customer_id": list(flags), "consent_marketing": list(flags.values()),
                         "row_hash": "h", "import_id": 1})
    with store.transaction() as tx:
        tx.insert("customers", rows)


def test_newest_record_wins_and_restrictive_source_beats_grant(store) -> None:
    _customers(store, {"a": True, "b": False, "c": None, "d": None, "e": True})
    record_consent(store, pd.DataFrame({
        "customer_id": ["b", "c", "d", "d", "e"],
        "purpose": ["marketing", "marketing", "marketing", "marketing", "marketing"],
        "channel": ["email", "sms", "email", "any", "any"],
        "granted": [True, True, True, False, False],
        "recorded_at": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01", "2024-02-01", "2024-03-01"]),
    }), source="test")
    st = consent_status(store, ["a", "b", "c", "d", "e", "zz"], "marketing", "email").set_index("customer_id")
    assert st["allowed"].to_dict() == {"a": True, "b": False, "c": False, "d": False, "e": False, "zz": False}
    assert "overrides a grant" in st.loc["b", "basis"]           # the shop's "no" beats an older grant
    assert st.loc["d", "basis"].startswith("withdrawn for every channel 2024-02-01")
    assert st.loc["zz", "basis"] == "no consent on record for marketing by email"
    # SMS is its own consent: the customers file's flag says nothing about it
    assert allowed_ids(store, ["a", "c"], "marketing", "sms") == {"c"}
    # other purposes are never assumed
    assert allowed_ids(store, ["a"], "personalisation", "email") == set()


def test_record_replaces_and_refuses_unknown_values(store) -> None:
    _customers(store, {"a": None})
    rec = pd.DataFrame({"customer_id": ["a"], "purpose": ["nudges"], "channel": ["email"], "granted": [True]})
    record_consent(store, rec)
    record_consent(store, rec.assign(granted=False))
    assert store.query("SELECT count(*) AS n FROM consents")["n"].iloc[0] == 1
    assert allowed_ids(store, ["a"], "nudges", "email") == set()
    with pytest.raises(ConsentError, match="unknown consent purpose 'spam'"):
        record_consent(store, rec.assign(purpose="spam"))


def test_transaction_rolls_back_on_refusal(store) -> None:
    with pytest.raises(StoreError, match="nothing was written"):
        with store.transaction() as tx:
            tx.insert("owner_tags", pd.DataFrame({"customer_id": ["a"], "tag": ["key_account"], "value": ["yes"],
                                                  "set_at": [pd.Timestamp("2024-01-01")]}))
            tx.execute("INSERT INTO experiment_assignments VALUES (?, ?, ?, ?)",
                       ["x", "a", "both", pd.Timestamp("2024-01-01").to_pydatetime()])  # arm check fails
    assert store.query("SELECT count(*) AS n FROM owner_tags")["n"].iloc[0] == 0


def test_consent_matrix_is_consent_status_for_every_channel_at_once(store) -> None:
    """The action plan's reach reads every channel in one query: it must decide as consent_status does."""
    from clientfolio.actions.plan import CONSENT_CHANNELS
    from clientfolio.store.consent import consent_matrix

    _customers(store, {"a": True, "b": False, "c": None, "d": None, "e": True, "f": False, "g": True})
    record_consent(store, pd.DataFrame({
        "customer_id": ["b", "c", "d", "d", "e", "f", "g", "g", "a"],
        "purpose": ["marketing"] * 8 + ["personalisation"],
        "channel": ["email", "sms", "email", "any", "any", "sms", "sms", "push", "email"],
        "granted": [True, True, True, False, False, True, True, False, False],
        "recorded_at": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01", "2024-02-01", "2024-03-01",
                                       "2024-01-05", "2024-04-01", "2024-04-02", "2024-05-01"]),
    }), source="test")
    ids = ["a", "b", "c", "d", "e", "f", "g", "zz", "a"]
    for purpose in ("marketing", "personalisation"):
        got = consent_matrix(store, ids, purpose, CONSENT_CHANNELS)
        assert list(got.index) == sorted(set(ids))
        for ch in CONSENT_CHANNELS:
            want = consent_status(store, ids, purpose, ch).set_index("customer_id")["allowed"]
            assert got[ch].to_dict() == want.to_dict(), (purpose, ch)
    assert consent_matrix(store, [], "marketing", CONSENT_CHANNELS).empty
