"""The living portfolio on a real store: replaying events equals one batch apply, idempotent, atomic, explained.

The demo shop is fitted at 31 Oct 2024 with November and December held back; those two months
are then replayed -- day by day, and the last days order by order -- through `LivePortfolio.update`,
and time is swept to 31 Dec.  The result must be what applying the same state to everything at
31 Dec gives.  Runs on DuckDB and on a real PostgreSQL.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import clientfolio
from clientfolio.features.incremental import customer_stats
from clientfolio.ingest import import_files
from clientfolio.live import LivePortfolio
from clientfolio.live.portfolio import STAT, segment_columns
from clientfolio.state import customer_features
from clientfolio.store import open_store
from tests.conftest import drop_pg_schema, pg_schema
from tests.live.shops import held_back_store

pytestmark = pytest.mark.slow  # two months replayed on each store: about 1.5 minutes each

END = pd.Timestamp("2024-12-31")
ONE_BY_ONE_FROM = pd.Timestamp("2024-12-31")  # from this day on, orders are replayed one at a time


def replay(live: LivePortfolio, tx: pd.DataFrame, ev: pd.DataFrame) -> list:
    """November-December: a batch per day, then single orders and events for the last days."""
    results = []
    days = sorted(set(tx["ts"].dt.normalize()) | set(ev["ts"].dt.normalize()))
    for day in days:
        nxt = day + pd.Timedelta(days=1)
        t = tx[(tx["ts"] >= day) & (tx["ts"] < nxt)]
        e = ev[(ev["ts"] >= day) & (ev["ts"] < nxt)]
        if day < ONE_BY_ONE_FROM:
            results.append(live.update(t, e, as_of=day))
            continue
        for _, lines in t.groupby(["source", "order_id"], sort=False):
            results.append(live.update(lines, as_of=day))
        for i in range(len(e)):
            results.append(live.update(events=e.iloc[[i]], as_of=day))
    return results


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def replayed(request, tmp_path_factory):
    schema = None
    if request.param == "duckdb":
        url = str(tmp_path_factory.mktemp("live") / "shop.duckdb")
    else:
        url, schema = pg_schema(request.getfixturevalue("pg_url"))
    tx, ev = held_back_store(url)
    st = open_store(url)
    live = LivePortfolio(st)
    results = replay(live, tx, ev)
    swept = live.sweep(END)
    yield st, live, tx, ev, results, swept
    st.close()
    if schema is not None:
        drop_pg_schema(request.getfixturevalue("pg_url"), schema)


def test_replay_then_sweep_gives_the_batch_memberships_and_scores(replayed):
    st, live, *_ = replayed
    rows = st.read_customer_state().set_index("customer_id")
    features, _, _ = customer_features(st, END)
    batch = live.state.apply(features, END)
    ids = pd.Index(batch.customers["customer_id"])
    expected = segment_columns(batch.segments, ids)
    assert set(ids) <= set(rows.index)
    for col in expected.columns:
        got = rows.loc[ids, col].astype(str)
        diff = got != expected[col].astype(str)
        assert not diff.any(), (col, int(diff.sum()), list(zip(got[diff][:3], expected[col][diff][:3])))
    # Scores are kept as of each customer's last update; `current` re-applies the state at any day.
    now = live.current(END).customers.set_index("customer_id").loc[ids]
    ref = batch.customers.set_index("customer_id")
    for col in ("p_alive", "clv", "expected_purchases", "value_score", "R", "F", "M", "days_since_last", "value_12m"):
        np.testing.assert_allclose(now[col].astype(float), ref[col].astype(float), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=col)


def test_statistics_kept_incrementally_equal_a_full_scan(replayed):
    st, *_ = replayed
    rows = st.read_customer_state().set_index("customer_id")
    full = customer_stats(st, END).set_index("customer_id")
    for col in ("n_days", "orders", "revenue", "day_value_total", "sumsq_gap", "email_opens", "page_views"):
        got = rows.loc[full.index, STAT + col].astype(float)
        np.testing.assert_allclose(got, full[col].astype(float), rtol=1e-9, err_msg=col)
    assert (pd.to_datetime(rows.loc[full.index, STAT + "last_day"]) == pd.to_datetime(full["last_day"])).all()


def test_every_change_is_logged_with_a_reason_and_its_cause(replayed):
    st, live, tx, ev, results, swept = replayed
    log = st.read_changes()
    assert len(log) == sum(len(r.changes) for r in results) + len(swept.changes)
    assert set(log["cause"]) == {"behaviour", "time"}
    assert log["reason"].str.len().min() > 10
    entered_risk = log[(log["segment_kind"] == "lifecycle") & (log["to_segment"] == "at risk")]
    assert len(entered_risk) > 0
    assert entered_risk["reason"].str.contains(r"\d+ days").all(), entered_risk["reason"].head()
    # Orders move customers on the day of the order: their change is keyed by the order.
    by_order = log[log["event_key"].fillna("").str.startswith("order:")]
    assert len(by_order) > 0
    first_buyers = by_order[(by_order["segment_kind"] == "lifecycle") & by_order["from_segment"].isna()]
    assert (first_buyers["to_segment"] == "new").mean() > 0.9


def test_the_same_events_again_change_nothing(replayed):
    st, live, tx, ev, *_ = replayed
    before = len(st.read_changes())
    last_day = tx["ts"].max().normalize()
    again = live.update(tx[tx["ts"] >= last_day], ev[ev["ts"] >= last_day])
    assert again.events_applied == 0 and again.events_skipped > 0 and again.changes.empty
    assert len(st.read_changes()) == before


def test_sweep_touches_only_the_customers_due(replayed):
    st, live, *_ = replayed
    rows = st.read_customer_state()
    day = END + pd.Timedelta(days=1)
    due = int((pd.to_datetime(rows["next_change"]) <= day).sum())
    result = live.sweep(day)
    assert result.customers_touched == due < len(rows) / 3
    # Nobody was left out: applying the state to everyone at that day moves no one else.
    everyone = live.current(day)
    cols = segment_columns(everyone.segments, pd.Index(everyone.customers["customer_id"]))
    stored = st.read_customer_state().set_index("customer_id").loc[cols.index, cols.columns]
    assert (stored.astype(str).to_numpy() == cols.astype(str).to_numpy()).all()


@pytest.mark.slow
def test_cdnow_replayed_day_by_day_equals_the_batch_apply(tmp_path):
    """The same property on CDNOW (23,570 customers): its last two months replayed, then swept."""
    from clientfolio.datasets import cdnow_master_path

    start, end = pd.Timestamp("1998-04-30"), pd.Timestamp("1998-06-30")
    with open_store(tmp_path / "cdnow.duckdb") as st:
        import_files([cdnow_master_path()], st)
        cut = f"CAST(DATE '{(start + pd.Timedelta(days=1)).date()}' AS TIMESTAMP)"
        tx = st.query(f"SELECT * FROM transactions WHERE ts >= {cut} ORDER BY ts, source, order_id, line_key")
        st.query(f"DELETE FROM transactions WHERE ts >= {cut}")
        clientfolio.analyze(store=st, cutoff=start)
        live = LivePortfolio(st)
        for day in sorted(set(tx["ts"].dt.normalize())):
            live.update(tx[(tx["ts"] >= day) & (tx["ts"] < day + pd.Timedelta(days=1))], as_of=day)
        live.sweep(end)
        rows = st.read_customer_state().set_index("customer_id")
        features, _, _ = customer_features(st, end)
        batch = live.state.apply(features, end)
    expected = segment_columns(batch.segments, pd.Index(batch.customers["customer_id"]))
    assert len(expected) == 23_570
    for col in expected.columns:
        diff = rows.loc[expected.index, col].astype(str) != expected[col].astype(str)
        assert not diff.any(), (col, int(diff.sum()))
