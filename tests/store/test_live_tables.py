"""The living portfolio's tables behave the same on a DuckDB file and on a real PostgreSQL server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import EventAlreadyApplied, SchemaError, StoreError
from clientfolio.store import open_store
from clientfolio.store.live import SMALL_BATCH
from clientfolio.store.schema import LATEST, MIGRATIONS

TEXT = pd.Series(["a"]).dtype  # pandas' own text dtype ('str' on pandas 3, object before)
T0 = pd.Timestamp("2024-06-30")


def _state(n: int, seed: int = 0, prefix: str = "c") -> pd.DataFrame:
    """A customer_state frame with every kind of column, missing values and awkward text."""
    rng = np.random.default_rng(seed)
    awkward = ["plain", "", "comma, \"quote\"", "line\nbreak", "\\N", "ünïcödé", None]
    df = pd.DataFrame({
        "customer_id": [f"{prefix}{i:06d}" for i in range(n)],
        "p_alive": rng.random(n),
        "orders": rng.integers(0, 50, n),
        "segment": [awkward[i % len(awkward)] for i in range(n)],
        "consent": rng.random(n) < 0.5,
        "last_order": T0 - pd.to_timedelta(rng.integers(0, 10**8, n), unit="s"),
    })
    df.loc[df.index % 5 == 1, "p_alive"] = np.nan
    df.loc[1 % n, "p_alive"] = np.inf
    df["clv"] = pd.array([None if i % 4 == 0 else int(i) for i in range(n)], dtype="Int64")
    df["vip"] = pd.array([None if i % 3 == 0 else bool(i % 2) for i in range(n)], dtype="boolean")
    df.loc[df.index % 6 == 2, "last_order"] = pd.NaT
    return df


def _expected(df: pd.DataFrame) -> pd.DataFrame:
    """What reading a stored frame gives: sorted by id, the store's dtypes, microsecond times."""
    out = df.sort_values("customer_id").reset_index(drop=True).copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[c] = s.astype("datetime64[us]")
        elif isinstance(s.dtype, pd.Int64Dtype):
            out[c] = s if s.hasnans else s.astype("int64")
        elif isinstance(s.dtype, pd.BooleanDtype):
            out[c] = s if s.hasnans else s.astype("bool")
        elif not pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            out[c] = s.astype(object).where(s.notna(), None).astype(TEXT)
    return out


def _changes(customers: list[str], state_id: int = 1, **kw) -> pd.DataFrame:
    n = len(customers)
    df = pd.DataFrame({
        "customer_id": customers, "segment_kind": "lifecycle", "from_segment": "active", "to_segment": "at_risk",
        "changed_at": [T0 + pd.Timedelta(days=i) for i in range(n)], "cause": "behaviour",
        "reason": "no order in 74 days, usually every 21", "state_id": state_id,
        "event_key": [None] * n,
    })
    return df.assign(**kw)


def _outbox(positions: list[int], customers: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "change_id": positions, "customer_id": customers, "segment_kind": "lifecycle", "segment": "at_risk",
        "transition": "entered", "action": "winback_email", "payload": '{"offer": "10%"}',
    })


def _order_rows(order: str, lines: int, amount: float = 10.0, customer: str = "c000001") -> pd.DataFrame:
    return pd.DataFrame({
        "source": "shop", "order_id": order, "line_key": [str(i) for i in range(lines)], "customer_id": customer,
        "ts": T0, "amount": amount, "is_refund": False, "row_hash": [f"{order}-{i}-{amount}" for i in range(lines)],
        "import_id": 0,
    })


def _counts(st) -> dict[str, int]:
    tables = ["customer_state", "segment_changes", "outbox", "applied_events", "live_meta", "transactions", "events"]
    return {t: int(st.query(f"SELECT count(*) AS n FROM {t}")["n"].iloc[0]) for t in tables}


# --- schema ------------------------------------------------------------------------------------------------

def test_a_new_store_has_empty_live_tables(store) -> None:
    assert store.schema_version() == LATEST
    assert store.customer_state_columns() == ["customer_id"]
    empty = store.read_customer_state()
    assert list(empty.columns) == ["customer_id"] and empty.empty
    assert store.load_state() is None
    assert store.list_states().empty and "body" not in store.list_states().columns
    assert store.read_changes().empty and store.read_outbox().empty
    assert store.get_meta("last_sweep") is None
    assert store.applied_event_keys(["e1"]) == set()


def _make_v2_store(url: str) -> None:
    """A store as clientfolio left it before version 3: canonical tables, snapshots, one order."""
    from clientfolio.store.base import migration_statements

    order = ("INSERT INTO transactions (source, order_id, line_key, ts, amount, is_refund, row_hash, import_id) "
             "VALUES ('x', 'o1', '1', TIMESTAMP '2024-01-01', 5, FALSE, 'h', 1)")
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as c:
            c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
            for version, sql in migration_statements(0, "postgresql"):
                if version <= 2:
                    c.execute(sql)
            c.execute("INSERT INTO schema_version VALUES (1, now()), (2, now())")
            c.execute(order)
        return
    import duckdb

    con = duckdb.connect(url)
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    for version, sql in migration_statements(0, "duckdb"):
        if version <= 2:
            con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (1, now()), (2, now())")
    con.execute(order)
    con.close()


def test_a_version_2_store_is_migrated_to_the_latest_when_opened(store_url: str) -> None:
    _make_v2_store(store_url)
    with open_store(store_url) as st:
        versions = st.query("SELECT version FROM schema_version ORDER BY version")["version"].tolist()
        assert versions == sorted(v for v, _, _ in MIGRATIONS)  # every step once, in order
        assert len(st.table("transactions")) == 1  # data kept
        assert st.customer_state_columns() == ["customer_id"]
        sid = st.save_state({"cutoff": T0, "format": 1, "reason": "analyze"}, "{}")
        st.replace_customer_state(_state(3))
        ids = st.commit_live(state_rows=None, changes=_changes(["c000000"], state_id=sid), outbox=None)
        assert ids == [1]
    with open_store(store_url) as st:  # opening again applies nothing twice
        st.replace_customer_state(_state(4))  # the first call on a reopened store (DuckDB: nothing half read)
        assert st.query("SELECT count(*) AS n FROM schema_version")["n"].iloc[0] == len(MIGRATIONS)
        assert len(st.read_customer_state()) == 4


# --- fitted states -----------------------------------------------------------------------------------------

def test_states_round_trip_and_only_the_newest_is_current(store) -> None:
    body1, body2 = '{"format": 1, "rfm": {"cuts": [1, 2, 3]}}', '{"format": 1, "rfm": {"cuts": [2, 3, 4]}}'
    s1 = store.save_state({"cutoff": T0, "format": 1, "reason": "analyze", "fingerprint": "f1",
                           "transactions": 5000, "customers": 1200,
                           "created_at": datetime(2024, 7, 1, 2, 0, tzinfo=timezone.utc)}, body1)
    s2 = store.save_state({"cutoff": T0 + pd.Timedelta(days=31), "format": 1, "reason": "refit"}, body2)
    assert (s1, s2) == (1, 2)
    meta, body = store.load_state()
    assert body == body2 and meta["state_id"] == 2 and meta["is_current"] is True and meta["reason"] == "refit"
    assert meta["cutoff"] == datetime(2024, 7, 31) and meta["fingerprint"] is None
    meta1, body = store.load_state(1)
    assert body == body1 and meta1["is_current"] is False
    assert meta1 == {"state_id": 1, "created_at": datetime(2024, 7, 1, 2, 0), "cutoff": datetime(2024, 6, 30),
                     "format": 1, "reason": "analyze", "fingerprint": "f1", "transactions": 5000, "customers": 1200,
                     "is_current": False}
    assert type(meta1["transactions"]) is int and type(meta1["is_current"]) is bool
    assert store.load_state(99) is None
    states = store.list_states()
    assert states["state_id"].tolist() == [1, 2] and states["is_current"].tolist() == [False, True]
    assert "body" not in states.columns
    with pytest.raises(SchemaError, match="unknown meta keys"):
        store.save_state({"cutoff": T0, "format": 1, "reason": "analyze", "cut_off": T0}, "{}")
    with pytest.raises(StoreError, match="nothing was written"):  # reason is required
        store.save_state({"cutoff": T0, "format": 1}, "{}")
    assert store.load_state()[0]["state_id"] == 2 and len(store.list_states()) == 2


# --- customer_state ----------------------------------------------------------------------------------------

def test_customer_state_round_trips_every_type_exactly(store) -> None:
    df = _state(200, seed=1)
    store.replace_customer_state(df.sample(frac=1, random_state=2))  # stored order does not matter
    got = store.read_customer_state()
    assert store.customer_state_columns() == list(df.columns)
    pd.testing.assert_frame_equal(got, _expected(df), check_exact=True)
    assert got["p_alive"].isna().sum() == 39 and np.isinf(got["p_alive"]).sum() == 1  # NaN -> NULL -> NaN
    # NULL, empty text and the text '\N' stay three different things
    assert (got["segment"].isna().sum(), (got["segment"] == "").sum(), (got["segment"] == "\\N").sum()) == (28, 29, 28)
    some = store.read_customer_state(["c000150", "nobody", "c000003"])
    pd.testing.assert_frame_equal(some, _expected(df.iloc[[3, 150]]), check_exact=True)
    many = [f"c{i:06d}" for i in range(0, 200, 2)]  # more ids than the row-by-row path takes
    assert len(many) > SMALL_BATCH
    pd.testing.assert_frame_equal(store.read_customer_state(many), _expected(df.iloc[::2]), check_exact=True)
    none = store.read_customer_state([])
    assert none.empty and list(none.columns) == list(df.columns)


def test_zone_aware_times_are_stored_in_utc(store) -> None:
    df = pd.DataFrame({"customer_id": ["a"], "seen": pd.to_datetime(["2024-03-01 12:00"]).tz_localize("Europe/Paris")})
    store.replace_customer_state(df)
    assert store.read_customer_state()["seen"].tolist() == [pd.Timestamp("2024-03-01 11:00")]


def test_replace_customer_state_takes_a_new_set_of_columns(store) -> None:
    store.replace_customer_state(_state(50))
    new = pd.DataFrame({"customer_id": ["x1", "x2"], "segment": ["a", "b"], "orders": [1.5, 2.5],
                        "churn_risk": [0.1, 0.9]})  # 'orders' changes type, 'churn_risk' is new, others dropped
    store.replace_customer_state(new)
    assert store.customer_state_columns() == ["customer_id", "segment", "orders", "churn_risk"]
    pd.testing.assert_frame_equal(store.read_customer_state(), _expected(new), check_exact=True)
    # The per-event path sees the new columns at once; an old column is refused, not dropped.
    store.commit_live(state_rows=pd.DataFrame({"customer_id": ["x1"], "churn_risk": [0.5]}), changes=None, outbox=None)
    row = store.read_customer_state(["x1"]).iloc[0]
    assert row["churn_risk"] == 0.5 and pd.isna(row["orders"]) and pd.isna(row["segment"])
    with pytest.raises(SchemaError, match=r"\['p_alive'\] are not in the table"):
        store.commit_live(state_rows=pd.DataFrame({"customer_id": ["x2"], "p_alive": [0.5]}), changes=None,
                          outbox=None)
    assert store.read_customer_state(["x2"])["orders"].tolist() == [2.5]


@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame({"customer_id": ["a", "a"], "x": [1.0, 2.0]}), "1 repeated"),
    (pd.DataFrame({"customer_id": ["a", None], "x": [1.0, 2.0]}), "1 missing"),
    (pd.DataFrame({"customer_id": ["a"], "P(alive)": [1.0]}), "rename"),
    (pd.DataFrame({"id": ["a"]}), "no 'customer_id' column"),
])
def test_a_refused_replacement_keeps_the_old_table(store, bad: pd.DataFrame, message: str) -> None:
    old = _state(20)
    store.replace_customer_state(old)
    with pytest.raises(SchemaError, match=message):
        store.replace_customer_state(bad)
    pd.testing.assert_frame_equal(store.read_customer_state(), _expected(old), check_exact=True)


def test_duckdb_writes_customer_state_in_chunks_with_the_same_result(tmp_path: Path, monkeypatch) -> None:
    """A base larger than one write chunk: every row stored once and exactly, the key index built over all of
    them; a repeated id in a later chunk is refused before anything is written."""
    import clientfolio.store.duckdb_store as dds

    monkeypatch.setattr(dds, "STATE_CHUNK", 7)  # 200 rows: 29 chunks, the last one short
    df = _state(200, seed=3)
    with open_store(str(tmp_path / "s.duckdb")) as st:
        st.replace_customer_state(df.sample(frac=1, random_state=4))
        pd.testing.assert_frame_equal(st.read_customer_state(), _expected(df), check_exact=True)
        assert st.query("SELECT count(*) AS n FROM duckdb_indexes() WHERE table_name = 'customer_state'")["n"][0] == 1
        bad = _state(20, prefix="z")
        bad.loc[15, "customer_id"] = bad.loc[2, "customer_id"]  # the same id in the first and the third chunk
        with pytest.raises(SchemaError, match="1 repeated"):
            st.replace_customer_state(bad)
        pd.testing.assert_frame_equal(st.read_customer_state(), _expected(df), check_exact=True)


# --- commit_live -------------------------------------------------------------------------------------------

def test_commit_live_writes_every_part(store) -> None:
    sid = store.save_state({"cutoff": T0, "format": 1, "reason": "analyze"}, "{}")
    store.replace_customer_state(_state(5))
    store.commit_live(state_rows=None, changes=None, outbox=None,
                      transactions=pd.concat([_order_rows("o1", 2), _order_rows("o2", 1)]),
                      events=pd.DataFrame({"event_id": ["ev0"], "ts": [T0], "type": ["email_open"],
                                           "row_hash": ["h"], "import_id": [0]}))
    state = pd.DataFrame({"customer_id": ["c000001", "new01"], "p_alive": [0.25, 0.75], "segment": ["at_risk", None],
                          "last_order": [T0, T0]})
    changes = _changes(["c000001", "new01"], state_id=sid, event_key="order:o3")
    changes.loc[1, ["from_segment", "to_segment"]] = [None, "new"]
    outbox = _outbox([0, 1, 1], ["c000001", "new01", "new01"])
    outbox["message_id"] = [None, None, "custom-1"]
    ids = store.commit_live(
        state_rows=state, changes=changes, outbox=outbox, event_keys=["order:o3"],
        meta={"last_event": "order:o3", "last_sweep": "2024-06-30"},
        transactions=_order_rows("o3", 2, amount=7.5), events=pd.DataFrame({
            "event_id": ["ev1"], "customer_id": ["c000001"], "ts": [T0], "type": ["email_click"],
            "properties": ['{"campaign": "june"}'], "row_hash": ["h1"], "import_id": [0]}),
        delete_orders=[("shop", "o2")])
    assert ids == [1, 2]
    # state rows: updated in place (columns not given are NULL) and inserted
    got = store.read_customer_state(["c000001", "new01", "c000002"]).set_index("customer_id")
    assert len(store.read_customer_state()) == 6
    assert got.loc["c000001", "p_alive"] == 0.25 and got.loc["c000001", "segment"] == "at_risk"
    assert pd.isna(got.loc["c000001", "orders"]) and pd.isna(got.loc["new01", "segment"])
    assert got.loc["c000002", "orders"] == _state(5).loc[2, "orders"]  # other customers untouched
    ch = store.read_changes()
    assert ch["change_id"].tolist() == [1, 2] and ch["state_id"].tolist() == [sid, sid]
    assert ch["from_segment"].tolist()[1] is None or pd.isna(ch["from_segment"].iloc[1])
    assert ch["to_segment"].tolist() == ["at_risk", "new"] and (ch["event_key"] == "order:o3").all()
    assert ch["recorded_at"].notna().all() and ch["changed_at"].tolist() == [T0, T0 + pd.Timedelta(days=1)]
    ob = store.read_outbox()
    assert ob["message_id"].tolist() == ["msg_1_entered_winback_email", "custom-1", "msg_2_entered_winback_email"]
    assert ob["change_id"].tolist() == [1, 2, 2] and ob["attempts"].tolist() == [0, 0, 0]
    assert ob["delivered_at"].isna().all() and ob["created_at"].notna().all()
    assert store.applied_event_keys(["order:o3", "order:o4"]) == {"order:o3"}
    assert store.get_meta("last_event") == "order:o3" and store.get_meta("last_sweep") == "2024-06-30"
    tx = store.query("SELECT order_id, line_key, amount FROM transactions ORDER BY order_id, line_key")
    assert tx["order_id"].tolist() == ["o1", "o1", "o3", "o3"] and tx["amount"].tolist() == [10, 10, 7.5, 7.5]
    assert sorted(store.query("SELECT event_id FROM events")["event_id"]) == ["ev0", "ev1"]
    # The next commit continues the ids and overwrites meta.
    assert store.commit_live(state_rows=None, changes=_changes(["new01"], state_id=sid), outbox=None,
                             meta={"last_event": "x"}) == [3]
    assert store.get_meta("last_event") == "x"


def test_a_few_rows_and_many_rows_are_typed_alike(store) -> None:
    """Per-event rows are typed value by value, bulk rows column by column: the same rules."""
    store.replace_customer_state(pd.DataFrame({
        "customer_id": ["x"], "score": [0.5], "orders": [1], "vip": [True], "seen": [T0], "note": ["n"]}))
    n = 2 * SMALL_BATCH
    loose = pd.DataFrame({
        "customer_id": [f"k{i:04d}" for i in range(n)],
        "score": [str(i / 4) if i % 2 else i for i in range(n)],  # text and whole numbers into DOUBLE
        "orders": [float(i) if i % 3 else None for i in range(n)],  # whole floats and None into BIGINT
        "vip": [i % 2 for i in range(n)],  # 0/1 into BOOLEAN
        "seen": [pd.Timestamp("2024-03-01 12:00", tz="Europe/Paris") if i % 2 else "2024-03-01T11:00:00Z"
                 for i in range(n)],  # zone-aware times and ISO text into TIMESTAMP
        "note": [i if i % 5 else None for i in range(n)],  # numbers into TEXT
    }, dtype=object)
    store.commit_live(state_rows=loose, changes=None, outbox=None)  # the bulk path
    bulk = store.read_customer_state()
    for start in range(0, n, SMALL_BATCH // 2):  # the row-by-row path, a few rows at a time
        store.commit_live(state_rows=loose.iloc[start:start + SMALL_BATCH // 2], changes=None, outbox=None)
    few = store.read_customer_state()
    pd.testing.assert_frame_equal(few, bulk, check_exact=True)
    row = few.set_index("customer_id").loc["k0007"]
    assert (row["score"], row["orders"], row["vip"], row["note"]) == (1.75, 7, True, "7")
    ks = few.iloc[:n]  # the k... rows (the replaced row "x" sorts last)
    assert ks["seen"].eq(pd.Timestamp("2024-03-01 11:00")).all() and ks["orders"].isna().sum() == n // 3 + 1
    for rows in (loose.iloc[:3], loose):
        with pytest.raises(SchemaError, match="column 'orders' must hold whole numbers"):
            store.commit_live(state_rows=rows.assign(orders=2.5), changes=None, outbox=None)
        with pytest.raises(SchemaError, match="column 'vip' must hold true/false values"):
            store.commit_live(state_rows=rows.assign(vip="yes"), changes=None, outbox=None)


def test_many_rows_given_as_dicts_are_stored_as_their_frame_is(store) -> None:
    """A grouped service update hands dozens of state rows as dicts (typed value by value); on DuckDB more than
    SMALL_BATCH of them are scanned from Arrow instead of one long VALUES list: the same rows as the frame's."""
    df = _state(3 * SMALL_BATCH + 1)
    store.replace_customer_state(df.iloc[:0])
    store.commit_live(state_rows=df, changes=None, outbox=None)
    as_frame = store.read_customer_state()
    store.replace_customer_state(df.iloc[:0])
    keys = [f"event:k{i}" for i in range(2 * SMALL_BATCH)]
    store.commit_live(state_rows=df.to_dict("records"), changes=None, outbox=None, event_keys=keys)
    pd.testing.assert_frame_equal(store.read_customer_state(), as_frame, check_exact=True)
    pd.testing.assert_frame_equal(as_frame, _expected(df), check_exact=True)
    assert store.applied_event_keys(keys + ["event:other"]) == set(keys)


def test_an_order_sent_again_replaces_its_lines(store) -> None:
    store.commit_live(state_rows=None, changes=None, outbox=None, transactions=_order_rows("o1", 3, amount=10))
    store.commit_live(state_rows=None, changes=None, outbox=None, transactions=_order_rows("o1", 2, amount=12))
    tx = store.query("SELECT line_key, amount FROM transactions ORDER BY line_key")
    assert tx["line_key"].tolist() == ["0", "1", "2"] and tx["amount"].tolist() == [12, 12, 10]


def test_commit_live_in_bulk_gives_the_same_result(store) -> None:
    """More rows than the row-by-row path takes: the Arrow (DuckDB) and COPY (PostgreSQL) paths."""
    n = 3 * SMALL_BATCH
    store.replace_customer_state(_state(n))
    store.commit_live(state_rows=None, changes=None, outbox=None,
                      transactions=pd.concat([_order_rows(f"o{i}", 2) for i in range(n)]))
    update = _state(n, seed=9).drop(columns=["orders"])  # every row replaced, 'orders' becomes NULL
    update = pd.concat([update, _state(10, seed=3, prefix="z")[update.columns]])
    changes = _changes(update["customer_id"].tolist())
    keys = [f"e{i}" for i in range(n)]
    ids = store.commit_live(state_rows=update, changes=changes,
                            outbox=_outbox(list(range(len(update))), update["customer_id"].tolist()),
                            event_keys=keys, transactions=pd.concat([_order_rows(f"o{i}", 2, amount=3)
                                                                     for i in range(n)]),
                            delete_orders=[("shop", f"o{i}") for i in range(0, n, 2)])
    assert ids == list(range(1, len(update) + 1))
    pd.testing.assert_frame_equal(store.read_customer_state(), _expected(update.assign(orders=pd.NA)[
        store.customer_state_columns()].astype({"orders": "Int64"})), check_exact=True)
    assert store.read_outbox()["change_id"].tolist() == ids
    assert store.applied_event_keys(keys) == set(keys)
    # the deleted orders are gone, the others replaced (the order was deleted before the rows went in)
    tx = store.query("SELECT count(*) AS n, sum(amount) AS s FROM transactions").iloc[0]
    assert (int(tx["n"]), float(tx["s"])) == (2 * n, 2 * n * 3.0)


def test_commit_live_is_all_or_nothing(store) -> None:
    sid = store.save_state({"cutoff": T0, "format": 1, "reason": "analyze"}, "{}")
    store.replace_customer_state(_state(10))
    store.commit_live(state_rows=None, changes=None, outbox=None, transactions=_order_rows("o1", 1))
    before = store.read_customer_state()
    counts = _counts(store)
    changes = _changes(["c000001", "c000002"], state_id=sid)
    changes.loc[1, "segment_kind"] = None  # NOT NULL: the database refuses the second change row
    kwargs = dict(state_rows=pd.DataFrame({"customer_id": ["c000001", "brand_new"], "p_alive": [0.0, 0.1]}),
                  outbox=_outbox([0, 1], ["c000001", "c000002"]), event_keys=["ev-1"], meta={"last_event": "ev-1"},
                  transactions=_order_rows("o2", 2), events=pd.DataFrame({"event_id": ["ev1"], "ts": [T0],
                                                                          "type": ["t"], "row_hash": ["h"],
                                                                          "import_id": [0]}),
                  delete_orders=[("shop", "o1")])
    with pytest.raises(StoreError, match="nothing was written"):
        store.commit_live(changes=changes, **kwargs)
    bad_cause = _changes(["c000001"], state_id=sid, cause="whim")  # a CHECK constraint
    with pytest.raises(StoreError, match="nothing was written"):
        store.commit_live(changes=bad_cause, **{**kwargs, "outbox": _outbox([0], ["c000001"])})
    assert _counts(store) == counts
    pd.testing.assert_frame_equal(store.read_customer_state(), before, check_exact=True)
    assert store.get_meta("last_event") is None and store.applied_event_keys(["ev-1"]) == set()
    assert store.query("SELECT order_id FROM transactions")["order_id"].tolist() == ["o1"]
    # The same update without the bad row goes through, and ids start at 1: nothing was used up.
    assert store.commit_live(changes=changes.iloc[:1], **{**kwargs, "outbox": _outbox([0], ["c000001"])}) == [1]


def test_an_event_applied_twice_is_refused_whole(store) -> None:
    store.replace_customer_state(_state(3))
    store.commit_live(state_rows=None, changes=None, outbox=None, event_keys=["ev-1"])
    counts = _counts(store)
    with pytest.raises(EventAlreadyApplied) as info:
        store.commit_live(state_rows=pd.DataFrame({"customer_id": ["c000001"], "orders": [99]}),
                          changes=_changes(["c000001"]), outbox=None, event_keys=["ev-2", "ev-1"])
    assert info.value.keys == ["ev-1"]
    assert _counts(store) == counts and store.read_customer_state(["c000001"])["orders"].tolist() != [99]


@pytest.mark.parametrize("kwargs, message", [
    (dict(changes=None, outbox=_outbox([0], ["a"])), "no changes were given"),
    (dict(changes=_changes(["a"]), outbox=_outbox([1], ["a"])), "position"),
    (dict(changes=_changes(["a"]).assign(mood="x"), outbox=None), r"\['mood'\] are not in the table"),
    (dict(changes=_changes(["a"]).assign(state_id="one"), outbox=None), "column 'state_id' must hold whole numbers"),
    (dict(changes=None, outbox=None, event_keys=["k", "k"]), "more than once"),
    (dict(changes=None, outbox=None, meta={"n": 1}), "must be text"),
    (dict(changes=None, outbox=None, state_rows=pd.DataFrame({"customer_id": ["a", "a"]})), "once per row"),
])
def test_commit_live_refuses_malformed_input_before_writing(store, kwargs: dict, message: str) -> None:
    kwargs.setdefault("state_rows", None)
    with pytest.raises(SchemaError, match=message):
        store.commit_live(**kwargs)
    assert sum(_counts(store).values()) == 0


def test_read_changes_filters(store) -> None:
    ch = pd.concat([
        _changes(["a", "b"]),
        _changes(["a"], segment_kind="rfm", cause="time", from_segment="Champions", to_segment="Loyal"),
        _changes(["c"], cause="refit", changed_at=T0 + pd.Timedelta(days=40)),
    ], ignore_index=True)
    store.commit_live(state_rows=None, changes=ch, outbox=None)
    assert store.read_changes()["change_id"].tolist() == [1, 2, 3, 4]
    assert store.read_changes(customer_id="a")["change_id"].tolist() == [1, 3]
    assert store.read_changes(segment_kind="rfm")["change_id"].tolist() == [3]
    assert store.read_changes(cause="refit")["customer_id"].tolist() == ["c"]
    assert store.read_changes(since=T0 + pd.Timedelta(days=1))["change_id"].tolist() == [2, 4]
    aware = datetime(2024, 7, 1, 2, 0, tzinfo=timezone.utc)  # zone-aware: compared in UTC
    assert store.read_changes(since=aware)["change_id"].tolist() == [4]
    assert store.read_changes(limit=2)["change_id"].tolist() == [1, 2]
    assert store.read_changes(customer_id="a", cause="behaviour")["change_id"].tolist() == [1]


def test_outbox_delivery_is_counted(store) -> None:
    store.commit_live(state_rows=None, changes=_changes(["a", "b"]), outbox=_outbox([0, 1], ["a", "b"]))
    assert store.mark_outbox(["msg_1_entered_winback_email", "missing"], delivered=False) == 1
    assert store.mark_outbox(["msg_1_entered_winback_email"], delivered=True, at=datetime(2024, 7, 1)) == 1
    pending = store.read_outbox()
    assert pending["message_id"].tolist() == ["msg_2_entered_winback_email"]
    every = store.read_outbox(undelivered_only=False).set_index("message_id")
    assert every.loc["msg_1_entered_winback_email", "attempts"] == 2
    assert every.loc["msg_1_entered_winback_email", "delivered_at"] == pd.Timestamp("2024-07-01")
    assert len(store.read_outbox(undelivered_only=False, limit=1)) == 1


def test_a_move_that_leaves_and_enters_for_one_action_gets_two_message_ids(store) -> None:
    """A -> B is "left A" and "entered B"; one action subscribed to both must not collide on the key."""
    ob = pd.DataFrame({"change_id": [0, 0], "customer_id": "a", "segment_kind": "lifecycle",
                       "segment": ["active", "at_risk"], "transition": ["left", "entered"], "action": "crm_sync",
                       "payload": "{}"})
    store.commit_live(state_rows=None, changes=_changes(["a"]), outbox=ob)
    assert store.read_outbox()["message_id"].tolist() == ["msg_1_entered_crm_sync", "msg_1_left_crm_sync"]


def test_both_stores_hand_out_identical_frames(tmp_path: Path, pg_store_url: str) -> None:
    """The same writes give the same frames, dtypes included, on DuckDB and PostgreSQL."""
    frames = {}
    for url in (str(tmp_path / "s.duckdb"), pg_store_url):
        with open_store(url) as st:
            sid = st.save_state({"cutoff": T0, "format": 2, "reason": "analyze", "fingerprint": None,
                                 "created_at": datetime(2024, 7, 1)}, "{}")
            st.replace_customer_state(_state(300, seed=4))
            st.commit_live(state_rows=_state(3, seed=5)[["customer_id", "p_alive", "vip"]],
                           changes=_changes(["c000001", "c000002"], state_id=sid),
                           outbox=_outbox([0, 1], ["c000001", "c000002"]))
            frames[st.kind] = {
                "state": st.read_customer_state(), "some": st.read_customer_state(["c000002", "c000001"]),
                "changes": st.read_changes().drop(columns="recorded_at"),
                "outbox": st.read_outbox().drop(columns="created_at"), "states": st.list_states(),
            }
    for name, duck in frames["duckdb"].items():
        pd.testing.assert_frame_equal(duck, frames["postgresql"][name], check_exact=True, obj=name)


def test_concurrent_writers_on_postgresql_take_turns(pg_store_url: str) -> None:
    """Two service workers commit at once: change ids stay max+1 with no gaps or clashes."""
    import threading

    with open_store(pg_store_url) as st:
        st.replace_customer_state(_state(40))
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            with open_store(pg_store_url) as st:
                for i in range(20):
                    cid = f"c{w * 20 + i:06d}"
                    st.commit_live(state_rows=pd.DataFrame({"customer_id": [cid], "orders": [w]}),
                                   changes=_changes([cid]), outbox=_outbox([0], [cid]), event_keys=[f"{w}-{i}"])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_store(pg_store_url) as st:
        ch = st.read_changes()
        assert ch["change_id"].tolist() == list(range(1, 41))
        ob = st.read_outbox().merge(ch[["change_id", "customer_id"]], on="change_id", suffixes=("", "_change"))
        assert len(ob) == 40 and (ob["customer_id"] == ob["customer_id_change"]).all()
        assert st.read_customer_state()["orders"].tolist() == [0] * 20 + [1] * 20


# --- atomicity under kill -9 ---------------------------------------------------------------------------------

BIG = r"""
import sys, time
import numpy as np, pandas as pd
from clientfolio.store import open_store

url, op, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = open_store(url)
if st.kind == "duckdb":
    class Traced:
        # Print each statement before DuckDB runs it, so the test knows where the transaction is.
        def __init__(self, con):
            self._con = con
        def __getattr__(self, name):
            return getattr(self._con, name)
        def execute(self, sql, *args):
            print("sql", sql[:40], flush=True)
            return self._con.execute(sql, *args)
        def executemany(self, sql, *args):
            print("sql", sql[:40], flush=True)
            return self._con.executemany(sql, *args)
    st.con = Traced(st.con)
rng = np.random.default_rng(0)
ids = [f"c{i:07d}" for i in range(n)]
state = pd.DataFrame({"customer_id": ids, "p_alive": rng.random(n), "orders": rng.integers(0, 9, n),
                      "segment": "big", "seen": pd.Timestamp("2024-07-01")})
if op == "replace":
    st.replace_customer_state(state)
else:
    changes = pd.DataFrame({"customer_id": ids, "segment_kind": "lifecycle", "from_segment": "active",
                            "to_segment": "at_risk", "changed_at": pd.Timestamp("2024-07-01"), "cause": "behaviour",
                            "reason": "no order in 74 days", "state_id": 1})
    outbox = pd.DataFrame({"change_id": np.arange(n), "customer_id": ids, "segment_kind": "lifecycle",
                           "segment": "at_risk", "transition": "entered", "action": "email", "payload": "{}"})
    st.commit_live(state_rows=state, changes=changes, outbox=outbox, event_keys=["big"], meta={"last": "big"})
print("committed", flush=True)
"""


def _snapshot(st) -> tuple:
    s = st.query("SELECT count(*) AS n, count(*) FILTER (WHERE segment = 'big') AS b FROM customer_state").iloc[0]
    return (int(s["n"]), int(s["b"]), _counts(st)["segment_changes"], _counts(st)["outbox"],
            sorted(st.applied_event_keys(["small", "big"])), st.get_meta("last"), st.customer_state_columns())


def _wait_for_pg(url: str, app: str, statement: str, proc: subprocess.Popen) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        for _ in range(6000):
            row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s "
                            "AND xact_start IS NOT NULL", [app, statement + "%"]).fetchone()
            if row[0] or proc.poll() is not None:
                return
            time.sleep(0.01)


def _wait_gone(url: str, app: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        for _ in range(1000):
            if not c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]).fetchone()[0]:
                return
            time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("kill", [True, False], ids=["killed", "finished"])
@pytest.mark.parametrize("op", ["commit_live", "replace"])
def test_a_big_write_killed_mid_way_leaves_before_or_after(store_url: str, op: str, kill: bool) -> None:
    """kill -9 inside the transaction leaves the store exactly as before; left alone, the same
    write gives exactly the `after` state (so both ends of the check are real)."""
    n = 200_000
    with open_store(store_url) as st:
        st.save_state({"cutoff": T0, "format": 1, "reason": "analyze"}, "{}")
        st.replace_customer_state(pd.DataFrame({"customer_id": [f"c{i:07d}" for i in range(1000)], "p_alive": 0.5,
                                                "orders": 1, "segment": "small", "seen": T0}))
        st.commit_live(state_rows=None, changes=_changes(["c0000001"]), outbox=_outbox([0], ["c0000001"]),
                       event_keys=["small"], meta={"last": "small"})
        before = _snapshot(st)
    cols = ["customer_id", "p_alive", "orders", "segment", "seen"]
    after = (n, n, 1 + n if op == "commit_live" else 1, 1 + n if op == "commit_live" else 1,
             ["big", "small"] if op == "commit_live" else ["small"], "big" if op == "commit_live" else "small", cols)
    assert before == (1000, 0, 1, 1, ["small"], "small", cols)
    app = "cf_kill_" + uuid.uuid4().hex[:8]
    url = store_url + (f"&application_name={app}" if store_url.startswith("postgresql") else "")
    proc = subprocess.Popen([sys.executable, "-c", BIG, url, op, str(n)], stdout=subprocess.PIPE, text=True)
    if not kill:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.rstrip().endswith("committed")
        with open_store(store_url) as st:
            assert _snapshot(st) == after
            if op == "commit_live":
                assert st.read_changes(limit=3)["change_id"].tolist() == [1, 2, 3]
                assert st.read_outbox(limit=1)["message_id"].tolist() == ["msg_1_entered_winback_email"]
                assert st.read_outbox()["change_id"].max() == n + 1
        return
    # Kill once the transaction is under way: the state rows are in, the change rows (or the key) not yet.
    if url.startswith("postgresql"):
        _wait_for_pg(url, app, "COPY segment_changes" if op == "commit_live" else "ALTER TABLE customer_state_next",
                     proc)
    else:
        mark = "sql INSERT INTO segment_changes" if op == "commit_live" else "sql CREATE UNIQUE INDEX"
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith(mark):
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the write finished before it could be killed"
    if url.startswith("postgresql"):
        _wait_gone(store_url, app)  # the server has rolled the dead client's transaction back
    with open_store(store_url) as st:
        got = _snapshot(st)
        assert got in (before, after), got
        assert got == before  # killed inside the transaction: nothing of it is there
        assert st.load_state()[0]["state_id"] == 1


def test_commit_live_replaces_the_predictions_of_the_customers_it_names(store) -> None:
    """A live update's churn risk and next order: the named customers' rows replaced (or removed) in the
    same transaction as their state; a refused row leaves everything as it was."""
    from clientfolio.predict.stored import COLUMNS, read_predictions

    def rows(ids: list[str], risk: float, day: pd.Timestamp) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": ids, "churn_risk": [risk] * len(ids), "churn_source": "BG/NBD",
                             "next_order_days": 3.0, "next_order_low": 1.0, "next_order_high": 9.0,
                             "next_order_source": "BG/NBD", "horizon_days": 35, "reason": "r", "as_of": day,
                             "state_id": 1, "made_at": day})[COLUMNS]

    store.replace_customer_state(_state(3))
    with store.transaction() as tx:
        tx.insert("predictions", rows(["c000000", "c000001", "c000002"], 0.5, T0))
    later = T0 + pd.Timedelta(days=3)
    state = pd.DataFrame({"customer_id": ["c000001"], "p_alive": [0.1]})
    store.commit_live(state_rows=state, changes=None, outbox=None, predictions=rows(["c000001"], 0.9, later),
                      predictions_for=["c000001", "c000002"])
    got = read_predictions(store).set_index("customer_id")
    assert list(got.index) == ["c000000", "c000001"]  # c000002 named without a row: removed (no purchase left)
    assert got.loc["c000001", "churn_risk"] == 0.9 and pd.Timestamp(got.loc["c000001", "as_of"]) == later
    assert got.loc["c000000", "churn_risk"] == 0.5  # not named: untouched
    with pytest.raises(SchemaError, match="not in predictions_for"):
        store.commit_live(state_rows=None, changes=None, outbox=None, predictions=rows(["c000000"], 0.2, later),
                          predictions_for=["c000001"])
    with pytest.raises(StoreError):  # a risk above 1 is refused by the table: nothing of the update is written
        store.commit_live(state_rows=pd.DataFrame({"customer_id": ["c000000"], "p_alive": [0.99]}), changes=None,
                          outbox=None, predictions=rows(["c000000"], 1.5, later), predictions_for=["c000000"])
    assert read_predictions(store).set_index("customer_id").loc["c000000", "churn_risk"] == 0.5
    assert store.read_customer_state(["c000000"])["p_alive"].iloc[0] != 0.99
