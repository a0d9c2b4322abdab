"""Sufficient statistics kept event by event give exactly the features the SQL scans give."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.features import behaviour_features, rfm_summary
from clientfolio.features.incremental import (MAP_COLS, STATS_COLUMNS, add_event, add_order, customer_stats,
                                              derive_features, stats_frame, stats_rows)
from clientfolio.ingest import import_files
from clientfolio.store import open_store

CUTOFFS = ["2023-03-15", "2024-06-30", "2024-12-31"]


def _demo_paths() -> list[Path]:
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    return [p["customers"], p["transactions"], p["events"], p["marketing_spend"]]


@pytest.fixture(scope="module")
def demo_duckdb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inc_duck")
    import_files(_demo_paths(), tmp / "demo.duckdb", rejects_dir=tmp / "r")
    st = open_store(tmp / "demo.duckdb")
    yield st
    st.close()


@pytest.fixture(scope="module")
def demo_postgresql(pg_url: str, tmp_path_factory):
    import psycopg

    tmp = tmp_path_factory.mktemp("inc_pg")
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    import_files(_demo_paths(), url, rejects_dir=tmp / "r")
    st = open_store(url)
    yield st
    st.close()
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def demo(request):
    return request.getfixturevalue(f"demo_{request.param}")


def _sql_features(store, cutoff: str, unit: str = "D") -> pd.DataFrame:
    """What the pipeline uses today: rfm_summary merged with behaviour_features."""
    want = rfm_summary(store, cutoff=cutoff, unit=unit).merge(behaviour_features(store, cutoff)[0], on="customer_id")
    for col in ("first_purchase", "last_purchase"):  # PostgreSQL returns datetime.date objects
        want[col] = pd.to_datetime(want[col]).astype("datetime64[us]")
    return want.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _assert_same_stats(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every column equal: counts and days exactly, money to rounding, maps key by key."""
    assert list(got.columns) == list(want.columns) == STATS_COLUMNS
    assert list(got["customer_id"]) == list(want["customer_id"])
    for col in STATS_COLUMNS:
        if col in MAP_COLS:
            for cid, a, b in zip(want["customer_id"], got[col], want[col]):
                a, b = json.loads(a), json.loads(b)
                assert a.keys() == b.keys(), (cid, col, a, b)
                assert all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-9) for k in b), (cid, col, a, b)
        else:
            pd.testing.assert_series_equal(got[col], want[col], check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cutoff", CUTOFFS)
def test_features_from_stats_equal_the_sql_features(demo, cutoff: str) -> None:
    stats = customer_stats(demo, cutoff)
    want = _sql_features(demo, cutoff)
    got = derive_features(stats, cutoff)
    assert len(got) == len(want) > 500
    # same columns in the same order, same dtypes, same values (NaN where they give NaN)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-9)
    assert got.attrs["cutoff"] == pd.Timestamp(cutoff) and got.attrs["unit"] == "D"


def test_weeks_and_explicit_column_choices(demo_duckdb) -> None:
    cutoff = "2024-06-30"
    stats = customer_stats(demo_duckdb, cutoff)
    want = rfm_summary(demo_duckdb, cutoff=cutoff, unit="W")
    got = derive_features(stats, cutoff, unit="W")
    for col in ("recency", "T", "tenure", "ipt_mean", "ipt_std", "last_gap", "first_gap", "ipt_mean_before_last"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, atol=1e-12, err_msg=col)
    # a fitted state's category list decides the share columns; the flags drop what the data lacks
    few = derive_features(stats, cutoff, categories=["cake", "coffee"], has_discounts=False, has_events=False,
                          has_channels=False)
    assert [c for c in few.columns if c.startswith("share_")] == ["share_cake", "share_coffee"]
    assert not {"discount_share", "top_channel", "email_opens", "nps"} & set(few.columns)
    assert set(few["top_category"].dropna()) <= {"cake", "coffee"}
    np.testing.assert_allclose(few["share_cake"], got["share_cake"], rtol=1e-12)


def test_stats_after_the_cutoff_are_refused(demo_duckdb) -> None:
    from clientfolio.core.errors import SchemaError

    stats = customer_stats(demo_duckdb, "2024-06-30")
    with pytest.raises(SchemaError, match="after as_of"):
        derive_features(stats, "2024-06-01")


def _timeline(store, start: str, stop: str) -> list[tuple]:
    """Orders (lines grouped by (source, order_id)) and events in (start, stop], in time order."""
    where = (f"customer_id IS NOT NULL AND ts >= CAST(DATE '{start}' + 1 AS TIMESTAMP) "
             f"AND ts < CAST(DATE '{stop}' + 1 AS TIMESTAMP)")
    tx = store.query(f"SELECT * FROM transactions WHERE {where}")
    orders: dict[tuple, list[dict]] = {}
    for r in tx.sort_values(["ts", "source", "order_id", "line_key"], kind="stable").to_dict("records"):
        orders.setdefault((r["source"], r["order_id"]), []).append(dict(r, ts=pd.Timestamp(r["ts"]).to_pydatetime()))
    items = [(lines[0]["ts"], 0, lines[0]["customer_id"], lines) for lines in orders.values()]
    for e in store.query(f"SELECT * FROM events WHERE {where}").to_dict("records"):
        items.append((pd.Timestamp(e["ts"]).to_pydatetime(), 1, e["customer_id"], dict(e, ts=pd.Timestamp(e["ts"]))))
    return sorted(items, key=lambda x: (x[0], x[1]))


def _replay(seed: pd.DataFrame, items: list[tuple]) -> dict[str, dict]:
    state = {r["customer_id"]: r for r in stats_rows(seed)}
    for _, kind, cid, x in items:
        if kind == 0:
            new = add_order(state.get(cid), cid, x)
            assert new is not None, (cid, x)  # in time order no order lands before a last purchase day
            state[cid] = new
        else:
            state[cid] = add_event(state.get(cid), x)
    return state


def test_replaying_two_months_gives_the_sql_stats(demo) -> None:
    t0, t1 = "2024-10-31", "2024-12-31"
    seed = customer_stats(demo, t0, purchasers_only=False)
    items = _timeline(demo, t0, t1)
    assert sum(k == 0 for _, k, _, _ in items) > 4000 and sum(k == 1 for _, k, _, _ in items) > 1000
    state = _replay(seed, items)
    want = customer_stats(demo, t1, purchasers_only=False)
    got = stats_frame(list(state.values()))
    assert len(set(got["customer_id"]) - set(seed["customer_id"])) > 100  # new customers in the window
    _assert_same_stats(got, want)
    # the default (purchasers only) frame, and the features, follow
    buyers = customer_stats(demo, t1)
    _assert_same_stats(got[got["n_days"] > 0].reset_index(drop=True), buyers)
    pd.testing.assert_frame_equal(derive_features(got, t1), _sql_features(demo, t1), check_exact=False,
                                  rtol=1e-9, atol=1e-9)


def test_a_purchase_before_the_last_purchase_day_needs_a_rescan(demo_duckdb) -> None:
    stats = customer_stats(demo_duckdb, "2024-12-31")
    row = stats_rows(stats[stats["n_days"] >= 3].head(1))[0]
    cid, last = row["customer_id"], row["last_day"]
    line = {"ts": datetime(last.year, last.month, last.day, 12) - timedelta(days=1), "amount": 5.0,
            "is_refund": False, "category": "coffee", "channel": "in_store", "discount": 0.0, "cost": 1.0,
            "cost_to_serve": None, "attributes": None}
    assert add_order(row, cid, [line]) is None
    # a refund may be dated anywhere: it changes money, not days
    refund = add_order(row, cid, [dict(line, amount=-5.0, is_refund=True)])
    assert refund is not None and refund["n_days"] == row["n_days"] and refund["orders"] == row["orders"]
    assert refund["revenue"] == pytest.approx(row["revenue"] - 5)
    assert refund["refunds"] == pytest.approx(row["refunds"] - 5)
    assert refund["channel_counts"]["in_store"] == row["channel_counts"].get("in_store", 0) + 1
    # a purchase on the last day adds to that day; the input dict is left as it was
    same = add_order(row, cid, [dict(line, ts=datetime(last.year, last.month, last.day, 18))])
    assert same["last_day"] == last and same["n_days"] == row["n_days"] and same["orders"] == row["orders"] + 1
    assert same["last_day_value"] == pytest.approx(row["last_day_value"] + 5)
    assert same["first_day_value"] == row["first_day_value"]
    assert stats_rows(stats[stats["customer_id"] == cid])[0] == row


def test_add_order_is_fast(demo_duckdb) -> None:
    row = stats_rows(customer_stats(demo_duckdb, "2024-12-30").head(1))[0]
    basket = [(3.2, "coffee"), (2.9, "pastry"), (4.5, "bread")]
    lines = [{"ts": datetime(2024, 12, 31, 9, 30), "amount": a, "is_refund": False, "category": c,
              "channel": "in_store", "discount": 0.0, "cost": 1.0, "cost_to_serve": 0.5 if i == 0 else None,
              "attributes": '{"gift":"False"}'} for i, (a, c) in enumerate(basket)]
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        add_order(row, row["customer_id"], lines)
    assert (time.perf_counter() - t) / n < 1e-3  # per order, well under a millisecond (about 10 µs here)


# ---------------------------------------------------------------- edge cases on a small real store

TX = """customer_id,order_id,line_no,ts,amount,category,channel,cost,cost_to_serve,gift
a,O1,1,2024-03-01T10:00:00Z,3.00,coffee,in_store,,,False
a,O2,1,2024-03-01T15:00:00Z,20.00,cake,click_collect,8.00,1.50,True
a,R1,1,2024-03-05T09:00:00Z,-3.00,coffee,in_store,,,False
a,O3,1,2024-03-09T11:00:00Z,4.50,Gift,in_store,,,False
a,O4,1,2024-12-20T12:00:00Z,30.00,cake,click_collect,10.00,,False
a,O4,2,2024-12-20T12:00:00Z,3.50,coffee,click_collect,1.00,,False
b,O5,1,2024-02-10T08:00:00Z,7.00,bread,in_store,2.00,,False
b,O6,1,2024-02-24T08:00:00Z,6.00,bread,in_store,2.00,,False
c,R2,1,2024-04-01T10:00:00Z,-5.00,bread,in_store,,,False
c,O7,1,2024-05-01T10:00:00Z,9.00,pastry,in_store,,,False
e,O8,1,2024-06-01T10:00:00Z,12.00,bread,,,,False
"""
EVENTS = """customer_id,ts,type,properties
a,2024-03-02T10:00:00Z,email_open,
a,2024-03-03T10:00:00Z,email_open,
a,2024-03-03T10:05:00Z,email_click,
a,2024-03-10T10:00:00Z,review,"{""rating"":5}"
a,2024-03-11T10:00:00Z,review,"{""text"":""no stars""}"
a,2024-04-01T10:00:00Z,survey,"{""nps"":""7""}"
d,2024-03-01T10:00:00Z,review,"{""rating"":4}"
d,2024-03-02T10:00:00Z,survey,"{""nps"":9}"
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inc_small")
    (tmp / "orders.csv").write_text(TX)
    (tmp / "events.csv").write_text(EVENTS)
    import_files([tmp / "orders.csv", tmp / "events.csv"], tmp / "s.duckdb", rejects_dir=tmp / "r")
    st = open_store(tmp / "s.duckdb")
    yield st
    st.close()


def test_edge_cases_replayed_from_nothing(small) -> None:
    cutoff = "2024-12-31"
    items = _timeline(small, "2023-12-31", cutoff)
    state = _replay(customer_stats(small, "2023-12-31", purchasers_only=False), items)
    got = stats_frame(list(state.values()))
    _assert_same_stats(got, customer_stats(small, cutoff, purchasers_only=False))
    a = state["a"]
    # two orders on 1 March are one day (23.00); the refund-only order is no day and no order
    assert (a["n_days"], a["orders"], a["first_day"], a["second_day"]) == (3, 4, date(2024, 3, 1), date(2024, 3, 9))
    assert a["first_day_value"] == pytest.approx(23.0) and a["last_day_value"] == pytest.approx(33.5)
    assert a["revenue"] == pytest.approx(58.0) and a["refunds"] == pytest.approx(-3.0)
    assert a["cost"] == pytest.approx(19.0) and a["cost_to_serve"] == pytest.approx(1.5)  # NULL then a cost: the cost
    assert a["weekend_days"] == 1 and a["sumsq_gap"] == 8 ** 2 + 286 ** 2
    assert a["gift_spend"] == pytest.approx(24.5) and a["december_spend"] == pytest.approx(33.5)
    assert a["discount_spend"] is None  # the shop records no discounts
    assert a["channel_counts"] == {"in_store": 3, "click_collect": 3}
    assert a["category_refunds"] == {"coffee": -3.0}
    assert (a["reviews"], a["rating_n"], a["rating_sum"], a["nps_n"], a["nps_sum"]) == (2, 1, 5.0, 1, 7.0)
    assert state["e"]["cost"] is None and state["d"]["n_days"] == 0
    assert state["c"]["refunds"] == pytest.approx(-5.0) and state["c"]["n_days"] == 1

    want = _sql_features(small, cutoff)
    got_f = derive_features(got, cutoff)
    pd.testing.assert_frame_equal(got_f, want, check_exact=False, rtol=1e-9, atol=1e-9)
    assert "discount_share" not in got_f.columns and list(got_f["customer_id"]) == ["a", "b", "c", "e"]
    f = got_f.set_index("customer_id")
    assert np.isnan(f.loc["e", "cost"]) and pd.isna(f.loc["e", "top_channel"])
    assert f.loc["a", "monetary"] == pytest.approx((4.5 + 33.5) / 2)


def test_first_purchase_then_repeat_and_same_day_orders() -> None:
    def line(ts: str, amount: float, **kw) -> dict:
        base = {"ts": datetime.fromisoformat(ts), "amount": amount, "is_refund": amount < 0, "category": "bread",
                "channel": "in_store", "discount": None, "cost": None, "cost_to_serve": None, "attributes": None}
        return base | kw

    one = add_order(None, "x", [line("2024-01-05 09:00", 10.0)])
    assert (one["n_days"], one["first_day"], one["last_day"], one["second_day"], one["prev_day"]) == (
        1, date(2024, 1, 5), date(2024, 1, 5), None, None)
    assert one["cost"] is None and one["discount_spend"] is None
    same = add_order(one, "x", [line("2024-01-05 17:00", 5.0, cost=2.0, discount=0.0)])
    assert (same["n_days"], same["orders"]) == (1, 2)
    assert same["first_day_value"] == same["last_day_value"] == same["day_value_total"] == 15.0
    assert same["cost"] == 2.0 and same["discount_spend"] == 0.0  # a discount value now exists, none was given
    rep = add_order(same, "x", [line("2024-01-12 10:00", 7.0, discount=1.0)])
    assert (rep["n_days"], rep["second_day"], rep["prev_day"], rep["last_day"]) == (
        2, date(2024, 1, 12), date(2024, 1, 5), date(2024, 1, 12))
    assert (rep["sumsq_gap"], rep["first_day_value"], rep["last_day_value"]) == (49, 15.0, 7.0)
    assert rep["discount_spend"] == 7.0
    refund_only = add_order(rep, "x", [line("2024-01-13 10:00", -7.0)])
    assert (refund_only["n_days"], refund_only["orders"], refund_only["last_day"]) == (2, 3, date(2024, 1, 12))
    assert refund_only["revenue"] == 15.0 and refund_only["refunds"] == -7.0
    f = derive_features(stats_frame([refund_only]), "2024-01-31").iloc[0]
    assert (f["frequency"], f["recency"], f["T"], f["monetary"], f["first_gap"]) == (1, 7.0, 26.0, 7.0, 7.0)
    assert np.isnan(f["ipt_std"]) and np.isnan(f["ipt_mean_before_last"])
    assert f["discount_share"] == pytest.approx(7.0 / 22.0)


@pytest.mark.parametrize("cutoff", [*CUTOFFS, None])
def test_duckdb_and_portable_stats_sql_agree(demo_duckdb, cutoff: str | None) -> None:
    """DuckDB's statistics SQL (one window, arg_min/arg_max) gives what the SQL PostgreSQL runs gives:
    second and previous purchase days, first and last day values, gaps; purchasers only or not."""
    from clientfolio.features.incremental import _typed, stats_sql
    from clientfolio.features.summary import _date_lit

    lit = _date_lit(cutoff) if cutoff else None
    for purchasers_only in (True, False):
        fast = _typed(demo_duckdb.query(stats_sql("duckdb", lit, purchasers_only)))
        portable = _typed(demo_duckdb.query(stats_sql("portable", lit, purchasers_only)))
        assert stats_sql("duckdb", lit) != stats_sql("portable", lit)
        assert fast["prev_day"].notna().sum() > 100 and fast["prev_day"].isna().any()
        _assert_same_stats(fast, portable)
