"""Contact pressure on both stores: every origin counts, the rolling windows' edges are exact."""

from __future__ import annotations

import pandas as pd
import pytest

from clientfolio.actions.pressure import (
    DEFAULT_CAPS, ContactCapError, contact_pressure, get_caps, log_contacts, over_cap, parse_caps, set_caps,
)

AT = pd.Timestamp("2024-03-31 12:00")


def _log(store, customer: str, ago: list[pd.Timedelta], origins: list[str], purpose: str = "marketing") -> None:
    log_contacts(store, pd.DataFrame({
        "customer_id": customer, "channel": [["email", "sms", "post", "push"][i % 4] for i in range(len(ago))],
        "purpose": purpose, "origin": origins, "ref": [f"r{i}" for i in range(len(ago))],
        "contacted_at": [AT - a for a in ago]}))


def test_counts_across_origins_and_window_edges(store) -> None:
    d, s = pd.Timedelta(days=1), pd.Timedelta(seconds=1)
    # a: two contacts from different origins inside 7 days -> at the 7-day cap
    _log(store, "a", [1 * d, 6 * d], ["export", "webhook"])
    # b: one contact exactly 7 days old (left the window) and one a second younger (still in)
    _log(store, "b", [7 * d, 7 * d - s], ["export", "playbook"])
    # c: six contacts inside 30 days, none in the last 7 -> the 30-day cap; one exactly 30 days old does not count
    _log(store, "c", [8 * d, 10 * d, 12 * d, 20 * d, 29 * d, 30 * d - s, 30 * d],
         ["export", "webhook", "playbook", "export", "webhook", "playbook", "export"])
    # d: service-only contacts (personalisation) never count; e: a contact in the future of `at` does not count
    _log(store, "d", [1 * d, 2 * d, 3 * d], ["export", "export2", "export3"], purpose="personalisation")
    _log(store, "e", [-1 * d, 1 * d], ["export", "webhook"])
    blocked = over_cap(store, ["a", "b", "c", "d", "e", "nobody"], at=AT)
    assert set(blocked) == {"a", "c"}
    assert blocked["a"] == "already contacted 2 times in the last 7 days (cap 2)"
    assert blocked["c"] == "already contacted 6 times in the last 30 days (cap 6)"
    p = contact_pressure(store, at=AT).set_index("customer_id")
    assert p.loc["b", "contacts_7d"] == 1 and p.loc["b", "contacts_30d"] == 2
    assert p.loc["c", "contacts_7d"] == 0 and p.loc["c", "contacts_30d"] == 6
    assert p.loc["e", "contacts_7d"] == 1 and "d" not in p.index
    # a frees up when its older contact leaves the 7-day window: 6 days ago + 7 days
    assert p.loc["a", "next_allowed"] == AT + 1 * d
    # at that moment exactly, a is below the cap again; a second before, not yet
    assert "a" not in over_cap(store, ["a"], at=AT + 1 * d)
    assert "a" in over_cap(store, ["a"], at=AT + 1 * d - s)
    # logging the same send again (same origin and ref) is a retry, not a new contact
    log_contacts(store, pd.DataFrame({"customer_id": ["b"], "channel": ["email"], "purpose": ["marketing"],
                                      "origin": ["playbook"], "ref": ["r1"], "contacted_at": [AT - 7 * d + s]}))
    assert store.query("SELECT count(*) AS n FROM contact_log WHERE customer_id = 'b'")["n"].iloc[0] == 2


def test_caps_are_a_setting(store) -> None:
    assert get_caps(store) == DEFAULT_CAPS == {"7d": 2, "30d": 6}
    assert set_caps(store, parse_caps(["30d=3", "24h=1"])) == {"1d": 1, "30d": 3}
    assert get_caps(store) == {"1d": 1, "30d": 3}
    _log(store, "a", [pd.Timedelta(hours=23)], ["export"])
    assert over_cap(store, ["a", "b"], at=AT) == {"a": "already contacted 1 time in the last 1 day (cap 1)"}
    # a cap of 0 stops every contact, including to customers never contacted
    assert over_cap(store, ["b"], at=AT, caps={"7d": 0}) == {"b": "no contacts allowed: the cap for 7 days is 0"}
    for bad in (["7d"], ["7x=2"], ["7d=-1"], ["0d=2"]):
        with pytest.raises(ContactCapError):
            parse_caps(bad)
    with pytest.raises(ContactCapError, match="whole number"):
        set_caps(store, {"7d": 2.5})
    with pytest.raises(ContactCapError, match="unknown channel 'fax'"):
        log_contacts(store, pd.DataFrame({"customer_id": ["a"], "channel": ["fax"], "purpose": ["marketing"],
                                          "origin": ["export"], "ref": ["x"]}))
    with pytest.raises(ContactCapError, match="missing: ref"):
        log_contacts(store, pd.DataFrame({"customer_id": ["a"], "channel": ["email"], "purpose": ["marketing"],
                                          "origin": ["export"]}))


def test_cli_sets_cap_and_shows_a_customer(demo_store_path) -> None:
    from clientfolio.store import open_store
    from tests.test_cli import run

    db = str(demo_store_path)
    out = run("contacts", "--store", db, "--cap", "7d=1", "--cap", "30d=4", cwd=demo_store_path.parent)
    assert out.returncode == 0, out.stderr
    assert "contact cap set: at most 1 in 7 days and at most 4 in 30 days" in out.stdout
    with open_store(db) as st:
        assert get_caps(st) == {"7d": 1, "30d": 4}
        log_contacts(st, pd.DataFrame({"customer_id": ["C00001"], "channel": ["email"], "purpose": ["marketing"],
                                       "origin": ["export"], "ref": ["klaviyo-1"]}))
    out = run("contacts", "--store", db, "--customer", "C00001", cwd=demo_store_path.parent)
    assert "may not be contacted now: already contacted 1 time in the last 7 days (cap 1)" in out.stdout
    out = run("contacts", "--store", db, "--kind", "lifecycle", cwd=demo_store_path.parent)
    assert out.returncode == 0 and "at risk" in out.stdout
    out = run("contacts", "--store", db, "--cap", "week=2", cwd=demo_store_path.parent)
    assert out.returncode == 1 and "is not a length" in out.stderr
