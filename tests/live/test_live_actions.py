"""Living portfolio edges on a real DuckDB store: kill -9, subscriptions, cancellations, refits, the commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clientfolio
from clientfolio.features.incremental import customer_stats
from clientfolio.live import LivePortfolio
from clientfolio.live.portfolio import STAT
from clientfolio.pipeline import refit
from clientfolio.store import open_store
from tests.live.shops import held_back_store

D0 = pd.Timestamp("2024-12-10")
TRIGGERS = """
- segment_kind: lifecycle
  segment: at risk
  on: entered
  action: winback_email
- segment_kind: value_tier
  segment: High-Value Regulars
  on: both
  action: crm_vip_task
  only_with_consent: false
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The demo shop up to 10 Dec 2024, analysed; the rest held back.  A copy of the file per test."""
    path = tmp_path_factory.mktemp("fitted") / "shop.duckdb"
    tx, ev = held_back_store(str(path), D0)
    return path, tx, ev


@pytest.fixture
def shop(fitted, tmp_path):
    path, tx, ev = fitted
    copy = tmp_path / "shop.duckdb"
    copy.write_bytes(path.read_bytes())
    return copy, tx, ev


KILLER = """
import sys, pandas as pd
from clientfolio.store import open_store
from tests.live.shops import held_back_store
from clientfolio.live import LivePortfolio
tx = pd.read_parquet(sys.argv[2])
with open_store(sys.argv[1]) as st:
    live = LivePortfolio(st)
    print("ready", flush=True)
    live.update(tx)
print("done", flush=True)
"""


def _snapshot(path: Path) -> tuple[int, int, int, float]:
    with open_store(path) as st:
        keys = int(st.query("SELECT count(*) AS n FROM applied_events")["n"].iloc[0])
        rows = int(st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0])
        changes = int(st.query("SELECT count(*) AS n FROM segment_changes")["n"].iloc[0])
        revenue = float(st.query("SELECT sum(stat_revenue) AS r FROM customer_state")["r"].iloc[0])
    return keys, rows, changes, revenue


def test_kill_9_mid_update_leaves_the_state_before_or_after(shop, tmp_path):
    path, tx, _ = shop
    batch = tmp_path / "batch.parquet"
    tx.to_parquet(batch)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    before = _snapshot(path)
    outcomes = set()
    for delay in (0.5, 1.5, 3.0, 6.0):
        work = tmp_path / f"work{delay}.duckdb"
        work.write_bytes(path.read_bytes())
        proc = subprocess.Popen([sys.executable, str(script), str(work), str(batch)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        keys, rows, changes, revenue = _snapshot(work)
        orders = tx.groupby(["source", "order_id"]).ngroups
        if keys == before[0]:
            assert (rows, changes) == before[1:3] and revenue == pytest.approx(before[3]), "half an update landed"
            outcomes.add("before")
        else:
            assert keys == before[0] + orders and rows == before[1] + len(tx), "half an update landed"
            assert revenue == pytest.approx(before[3] + tx["amount"].sum())
            outcomes.add("after")
    assert outcomes  # at least one kill happened somewhere; each one left a whole state


def test_subscriptions_write_outbox_rows_with_the_changes(shop):
    path, tx, ev = shop
    with open_store(path) as st:
        live = LivePortfolio(st, triggers=TRIGGERS)
        live.update(tx[tx["ts"] < D0 + pd.Timedelta(days=8)])
        live.sweep(D0 + pd.Timedelta(days=30))
        out = st.read_outbox()
        log = st.read_changes()
        consent = st.query("SELECT customer_id, consent_marketing FROM customers").set_index("customer_id")
    assert len(out) > 0 and set(out["action"]) <= {"winback_email", "crm_vip_task"}
    winback = out[out["action"] == "winback_email"]
    assert len(winback) > 0
    assert consent.loc[winback["customer_id"], "consent_marketing"].fillna(False).astype(bool).all()
    entered_risk = log[(log["segment_kind"] == "lifecycle") & (log["to_segment"] == "at risk")]
    consenting = consent.loc[entered_risk["customer_id"], "consent_marketing"].fillna(False).astype(bool)
    assert len(winback) == int(consenting.sum())  # one message per consenting entry, none for the others
    payload = json.loads(winback["payload"].iloc[0])
    assert payload["segment"] == "at risk" and payload["transition"] == "entered" and payload["reason"]
    assert set(out["change_id"]) <= set(log["change_id"])


def test_cancelled_and_back_dated_orders_rescan_only_that_customer(shop):
    path, tx, _ = shop
    with open_store(path) as st:
        live = LivePortfolio(st)
        first = tx[tx["ts"] < D0 + pd.Timedelta(days=5)]
        live.update(first)
        order = first.groupby(["source", "order_id"]).first().reset_index().iloc[0]
        r = live.update(cancellations=[(order["source"], order["order_id"])])
        assert r.rescanned == 1 and r.customers_touched == 1
        back = pd.DataFrame({"customer_id": [order["customer_id"]], "order_id": ["late-1"],
                             "ts": [D0 - pd.Timedelta(days=40)], "amount": [19.5], "category": ["cake"]})
        r2 = live.update(back)
        assert r2.rescanned == 1
        rows = st.read_customer_state([order["customer_id"]]).set_index("customer_id")
        full = customer_stats(st).set_index("customer_id").loc[[order["customer_id"]]]
    for col in ("n_days", "orders", "revenue", "day_value_total", "sumsq_gap"):
        assert float(rows[STAT + col].iloc[0]) == pytest.approx(float(full[col].iloc[0])), col


def test_refit_moves_are_recorded_apart_and_a_second_analyze_reports_them(shop, tmp_path):
    path, tx, ev = shop
    half = D0 + pd.Timedelta(days=10)
    with open_store(path) as st:
        LivePortfolio(st).update(tx[tx["ts"] < half], ev[ev["ts"] < half])
    result = refit(path)
    assert "refit" in set(result.changes["cause"])
    with open_store(path) as st:
        states = st.list_states()
        log = st.read_changes()
        LivePortfolio(st).update(tx[tx["ts"] >= half], ev[ev["ts"] >= half])
    assert len(states) == 2 and states["is_current"].sum() == 1
    assert set(log.loc[log["cause"] == "refit", "state_id"]) == {int(states["state_id"].max())}
    pf = clientfolio.analyze(store=path)
    # Since the refit: the second half's orders moved customers (behaviour), and time under the old state.
    assert pf.changes is not None and "behaviour" in set(pf.changes["cause"])
    assert pf.changes["changed_at"].min() >= half - pd.Timedelta(days=1)
    html = pf.report(tmp_path / "report.html").read_text()
    assert "What changed since last time" in html and "segment changes for" in html


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clientfolio.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd()), "COLUMNS": "200"})


def test_update_sweep_changes_status_as_a_user_runs_them(shop, tmp_path):
    path, tx, _ = shop
    orders = tmp_path / "new_orders.csv"
    day = tx[tx["ts"] < D0 + pd.Timedelta(days=3)]
    pd.DataFrame({"customer_id": day["customer_id"], "order_id": day["order_id"], "date": day["ts"].dt.strftime(
        "%Y-%m-%d %H:%M:%S"), "amount": day["amount"], "category": day["category"]}).to_csv(orders, index=False)
    first = run("update", str(orders), "--store", str(path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "segment change" in first.stdout and "stored" in first.stdout
    again = run("update", str(orders), "--store", str(path), cwd=tmp_path)
    assert again.returncode == 0 and "update: 0 segment changes" in again.stdout, again.stdout
    swept = run("sweep", "--as-of", "2025-01-20", "--store", str(path), cwd=tmp_path)
    assert swept.returncode == 0 and "sweep to 20 Jan 2025" in swept.stdout, swept.stdout + swept.stderr
    ch = run("changes", "--store", str(path), "--kind", "lifecycle", "--out", str(tmp_path / "ch.csv"), cwd=tmp_path)
    assert ch.returncode == 0 and "entered" in ch.stdout
    saved = pd.read_csv(tmp_path / "ch.csv")
    assert set(saved["segment_kind"]) == {"lifecycle"} and saved["reason"].notna().all()
    first_buyer = saved.loc[saved["from_segment"].isna(), "customer_id"].iloc[0]  # their first move has no "from"
    one = run("changes", "--store", str(path), "--customer", str(first_buyer), cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "why" in one.stdout and "lifecycle" in one.stdout and "new" in one.stdout
    risk = run("changes", "--store", str(path), "--kind", "lifecycle", "--segment", "At Risk", "--entered",
               "--out", str(tmp_path / "r.csv"), cwd=tmp_path)
    assert risk.returncode == 0, risk.stderr
    entered = pd.read_csv(tmp_path / "r.csv")
    assert len(entered) > 0 and set(entered["to_segment"]) == {"at risk"}
    status = run("status", "--store", str(path), cwd=tmp_path)
    assert status.returncode == 0 and "fitted at 10 Dec 2024" in status.stdout, status.stdout
    bad = run("sweep", "--as-of", "31/02/2025", "--store", str(path), cwd=tmp_path)
    assert bad.returncode != 0 and "--as-of" in (bad.stdout + bad.stderr)
    none = run("sweep", "--as-of", "2025-01-01", "--store", str(tmp_path / "missing.duckdb"), cwd=tmp_path)
    assert none.returncode != 0


def test_a_store_without_a_fitted_state_says_what_to_run(tmp_path):
    with open_store(tmp_path / "empty.duckdb") as st, pytest.raises(clientfolio.core.errors.ClientfolioError,
                                                                    match="clientfolio analyze --store"):
        LivePortfolio(st)


def test_health_advises_a_refit_when_the_state_grows_old(shop):
    path, tx, ev = shop
    with open_store(path) as st:
        live = LivePortfolio(st)
        assert live.health()["advice"] == "no refit needed yet"
        live.update(tx, ev)
        live.sweep(D0 + pd.Timedelta(days=120))
        h = live.health()
    assert h["age_days"] == 120 and h["advice"].startswith("refit:") and "120 days ago" in h["advice"]
    assert h["tracking_drift"] is not None and np.isfinite(h["tracking_drift"])


def test_cancelling_the_only_order_leaves_no_scores_and_says_why(shop):
    path, _, _ = shop
    new = pd.DataFrame({"customer_id": ["walk-in-7"], "order_id": ["w7-1"], "ts": [D0 + pd.Timedelta(hours=30)],
                        "amount": [42.0], "category": ["cake"]})
    with open_store(path) as st:
        live = LivePortfolio(st)
        entered = live.update(new).changes
        assert "lifecycle" in set(entered["segment_kind"])
        r = live.update(cancellations=[("live", "w7-1")], as_of=D0 + pd.Timedelta(days=2))
        row = st.read_customer_state(["walk-in-7"]).iloc[0]
        log = st.read_changes()
        assert r.rescanned == 1 and r.customers_touched == 1
        # every segment the order put them in is left, each with the reason, and nothing stale stays behind
        left = r.changes.set_index("segment_kind")
        assert set(left.index) == set(entered["segment_kind"])
        assert left["to_segment"].isna().all()
        assert left["reason"].str.endswith("no purchases left after the cancellation").all()
        assert all(pd.isna(row[c]) for c in row.index if c.startswith("seg_"))
        assert pd.isna(row["clv"]) and pd.isna(row["p_alive"]) and int(row[STAT + "n_days"]) == 0
        assert st.query("SELECT count(*) AS n FROM transactions WHERE order_id = 'w7-1'")["n"].iloc[0] == 0
        assert len(log[log["customer_id"] == "walk-in-7"]) == len(entered) + len(r.changes)
        # the next sweep leaves them alone; a new order brings them back
        assert "walk-in-7" not in set(live.sweep(D0 + pd.Timedelta(days=3)).changes["customer_id"])
        back = live.update(new.assign(order_id="w7-2", ts=D0 + pd.Timedelta(days=3, hours=10)))
        assert (back.changes.loc[back.changes["segment_kind"] == "lifecycle", "to_segment"] == "new").all()


def test_orders_of_a_new_customer_through_the_python_api_create_their_customers_row(shop):
    path, _, _ = shop
    lines = pd.DataFrame({"customer_id": ["api-1", "api-1", "api-2"], "order_id": ["a1", "a1", "a2"],
                          "ts": [D0 + pd.Timedelta(hours=36), D0 + pd.Timedelta(hours=36),
                                 D0 + pd.Timedelta(hours=40)],
                          "amount": [10.0, 5.0, 8.0], "email": ["one@example.org", "one@example.org", None],
                          "consent_marketing": [True, True, None]})
    with open_store(path) as st:
        known = st.query("SELECT customer_id FROM customers LIMIT 1")["customer_id"].iloc[0]
        before = st.query(f"SELECT * FROM customers WHERE customer_id = '{known}'")
        LivePortfolio(st).update(pd.concat([lines, pd.DataFrame(
            {"customer_id": [known], "order_id": ["k1"], "ts": [D0 + pd.Timedelta(hours=41)], "amount": [3.0],
             "email": ["changed@example.org"]})], ignore_index=True))
        rows = st.query("SELECT * FROM customers WHERE customer_id IN ('api-1', 'api-2') ORDER BY customer_id")
        after = st.query(f"SELECT * FROM customers WHERE customer_id = '{known}'")
    assert list(rows["customer_id"]) == ["api-1", "api-2"]
    one = rows.iloc[0]
    assert one["email"] == "one@example.org" and bool(one["consent_marketing"]) is True
    assert pd.Timestamp(one["first_seen"]) == D0 + pd.Timedelta(hours=36)
    assert pd.isna(rows.iloc[1]["email"]) and int(rows.iloc[1]["import_id"]) == 0
    # a customer the store knew keeps their row as it was
    pd.testing.assert_frame_equal(before, after)
