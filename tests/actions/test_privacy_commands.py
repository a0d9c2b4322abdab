"""Consent from the CLI and files, correction, event retention and pseudonymised sharing (small stores, fast)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from clientfolio.actions.consent import consent_status
from clientfolio.actions.correction import CorrectionError, correct_customer
from clientfolio.actions.pseudonym import pseudonymise_frame, pseudonymise_portfolio
from clientfolio.commands.common import app
from clientfolio.store import open_store
from clientfolio.store.live import now_utc
from clientfolio.store.pseudonym import pseudonym_key, pseudonymise_id

runner = CliRunner()


def _cli(*args: str):
    from clientfolio.cli import AREAS
    import importlib

    for area in AREAS:
        importlib.import_module(f"clientfolio.commands.{area}").register(app)
    r = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    r.text = r.output.replace("\n", " ")  # one line, whatever the console's wrapping
    return r


def _fill(store) -> None:
    now = now_utc()
    with store.transaction() as tx:
        tx.insert("customers", pd.DataFrame({"customer_id": ["a", "b"], "email": ["a@x.org", "b@x.org"],
                                             "region": ["South", "East"], "row_hash": "h", "import_id": 1}))
        tx.insert("transactions", pd.DataFrame({
            "source": "s", "order_id": ["1", "2", "3"], "line_key": "1", "customer_id": ["a", "a", "b"],
            "email": ["a@x.org", "a@x.org", "b@x.org"], "ts": [now] * 3, "amount": [1.0, 2.0, 3.0],
            "is_refund": False, "row_hash": "h", "import_id": 1}))
        tx.insert("events", pd.DataFrame({
            "event_id": ["e1", "e2", "e3"], "customer_id": ["a", "a", "b"],
            "ts": [now - pd.Timedelta(days=500), now - pd.Timedelta(days=10), now - pd.Timedelta(days=401)],
            "type": "page_view", "row_hash": "h", "import_id": 1}))


def test_correction_updates_customer_and_orders_and_records_only_field_and_time(store) -> None:
    _fill(store)
    c = correct_customer(store, "a", {"email": "A.New@X.org", "region": "North"})
    assert c.rows["transactions"] == 2
    cu = store.query("SELECT email, region FROM customers WHERE customer_id = 'a'").iloc[0]
    assert (cu["email"], cu["region"]) == ("a.new@x.org", "North")
    assert set(store.query("SELECT email FROM transactions WHERE customer_id = 'a'")["email"]) == {"a.new@x.org"}
    assert store.query("SELECT email FROM transactions WHERE customer_id = 'b'")["email"].tolist() == ["b@x.org"]
    rec = store.query("SELECT * FROM corrections ORDER BY field")
    assert rec["field"].tolist() == ["email", "region"]
    assert not rec.astype(str).apply(lambda col: col.str.contains("a@x.org|South")).any().any()  # no old values
    with pytest.raises(CorrectionError, match="cannot correct clv"):
        correct_customer(store, "a", {"clv": "1000"})
    with pytest.raises(CorrectionError, match="not an e-mail"):
        correct_customer(store, "a", {"email": "nope"})
    with pytest.raises(CorrectionError, match="no customer 'zz'"):
        correct_customer(store, "zz", {"region": "x"})


def test_consent_set_show_and_file_import_with_rejects(tmp_path) -> None:
    db = tmp_path / "s.duckdb"
    with open_store(db) as st:
        _fill(st)
    r = _cli("consent", "set", "a", "--purpose", "marketing", "--channel", "sms", "--grant", "--store", str(db))
    assert r.exit_code == 0 and "allowed" in r.output
    r = _cli("consent", "set", "zz", "--purpose", "marketing", "--channel", "sms", "--grant", "--store", str(db))
    assert r.exit_code == 1 and "no customer 'zz'" in r.text
    f = tmp_path / "consents.csv"
    f.write_text("customer_id,purpose,channel,granted,recorded_at\n"
                 "b,marketing,email,yes,2024-03-01\n"
                 "b,nudges,email,maybe,\n"
                 "a,spam,email,true,\n"
                 "a,marketing,push,1,03/04/2024\n"
                 "a,marketing,post,true,2999-01-01\n"
                 "x,marketing,email,true,\n")
    r = _cli("consent", "import", str(f), "--store", str(db))
    assert r.exit_code == 0, r.output
    assert "6 rows = recorded 1 + rejected 5" in r.text
    rej = pd.read_csv(tmp_path / "consents.csv.rejects.csv", dtype=str)
    assert rej["row"].tolist() == ["3", "4", "5", "6", "7"]
    assert rej["column"].tolist() == ["granted", "purpose", "recorded_at", "recorded_at", "customer_id"]
    assert rej["reason"].str.len().min() > 5
    with open_store(db) as st:
        assert consent_status(st, ["b"], "marketing", "email")["basis"].iloc[0].startswith("granted 2024-03-01")
        assert not consent_status(st, ["a"], "marketing", "push")["allowed"].iloc[0]  # 03/04 is not guessed
        assert st.query("SELECT kind FROM outputs")["kind"].tolist() == ["consent-rejects"]
    r = _cli("consent", "show", "a", "--store", str(db))
    assert r.exit_code == 0 and "sms" in r.output


def test_retention_deletes_old_events_now_and_at_each_import(tmp_path) -> None:
    db = tmp_path / "s.duckdb"
    with open_store(db) as st:
        _fill(st)
    r = _cli("retention", "--events", "400d", "--store", str(db))
    assert r.exit_code == 0 and "deleted 2 older event(s)" in r.text, r.output
    ev = tmp_path / "events.csv"
    old = (now_utc() - pd.Timedelta(days=450)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = (now_utc() - pd.Timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ev.write_text(f"customer_id,ts,type,properties\na,{old},page_view,{{}}\nb,{new},email_open,{{}}\n")
    r = _cli("import", str(ev), "--store", str(db), "--no-audit")
    assert r.exit_code == 0 and "deleted 1 events older" in r.text, r.output
    with open_store(db) as st:
        assert sorted(st.query("SELECT type FROM events")["type"]) == ["email_open", "page_view"]
        assert st.query("SELECT min(ts) AS t FROM events")["t"].iloc[0] > now_utc() - pd.Timedelta(days=400)
    assert _cli("retention", "--events", "soon", "--store", str(db)).exit_code == 1


def test_pseudonymised_frame_and_report_name_nobody(demo_analysed, tmp_path) -> None:
    db, pf = demo_analysed
    key = "ab" * 32
    frame = pseudonymise_frame(pf.customers.assign(email="x@y.org", phone="1"), key)
    assert "email" not in frame and "phone" not in frame
    assert frame["customer_id"].iloc[0] == pseudonymise_id(key, pf.customers["customer_id"].iloc[0])
    shared = pseudonymise_portfolio(pf, key)
    page = shared.report(tmp_path / "report.html").read_text()
    ids = set(pf.customers["customer_id"])
    assert not any(f">{c}<" in page or f'"{c}"' in page for c in ids)
    if pf.divestment is not None and len(pf.divestment.customers):
        assert set(shared.divestment.customers["customer_id"]).isdisjoint(ids)
    with open_store(tmp_path / "k.duckdb") as st:
        assert pseudonym_key(st) == pseudonym_key(st)  # created once, then the same
