"""Schema version 8: the per-event update's lookups have indexes, on old stores too, and DuckDB uses them."""

from __future__ import annotations

from datetime import datetime

import pytest

from clientfolio.live.portfolio import few_value_12m_sql, stored_orders_sql
from clientfolio.state.features import ATTRIBUTES_SQL
from clientfolio.store import open_store
from clientfolio.store.base import migration_statements
from clientfolio.store.schema import MIGRATIONS

N_CUSTOMERS, LINES_EACH = 3000, 10  # 30,000 order lines: enough that a scan and an index lookup differ

ORDERS = f"""INSERT INTO transactions (source, order_id, line_key, customer_id, ts, amount, is_refund, cost,
                                       row_hash, import_id)
SELECT 'shop', 'o' || CAST(i AS TEXT), '0', 'c' || CAST(i % {N_CUSTOMERS} AS TEXT),
       TIMESTAMP '2024-01-01' + CAST(i % 300 AS INTEGER) * INTERVAL '1 day', 10.0 + i % 7, FALSE, 2.0, 'h', 1
FROM generate_series(0, {N_CUSTOMERS * LINES_EACH - 1}) AS g(i)"""
CUSTOMERS = f"""INSERT INTO customers (customer_id, first_seen, row_hash, import_id)
SELECT 'c' || CAST(i AS TEXT), TIMESTAMP '2024-01-01', 'h', 1 FROM generate_series(0, {N_CUSTOMERS - 1}) AS g(i)"""


def _make_v7_store(url: str) -> None:
    """A store as clientfolio left it at schema version 7, with orders and customers in it."""
    versions = sorted(v for v, _, _ in MIGRATIONS if v <= 7)
    marks = ", ".join(f"({v}, TIMESTAMP '2024-01-01')" for v in versions)
    stmts = ["CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)",
             *(sql for v, sql in migration_statements(0, "postgresql" if url.startswith("postgresql") else "duckdb")
               if v <= 7),
             f"INSERT INTO schema_version VALUES {marks}", ORDERS, CUSTOMERS]
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as c:
            for sql in stmts:
                c.execute(sql)
        return
    import duckdb

    con = duckdb.connect(url)
    for sql in stmts:
        con.execute(sql)
    con.close()


def _indexes(st) -> set[tuple[str, str]]:
    """(table, indexed columns) of the store's secondary indexes and keys."""
    if st.kind == "postgresql":
        df = st.query("SELECT tablename AS t, indexdef AS d FROM pg_indexes WHERE schemaname = current_schema()")
        return {(t, d.rsplit("(", 1)[1].rstrip(")")) for t, d in zip(df["t"], df["d"])}
    df = st.query("SELECT table_name AS t, expressions AS d FROM duckdb_indexes()")
    return {(t, d.strip("[]")) for t, d in zip(df["t"], df["d"])}


def test_migration_8_adds_the_lookup_indexes_to_a_version_7_store(store_url: str) -> None:
    _make_v7_store(store_url)
    with open_store(store_url) as st:
        assert st.schema_version() == 8
        assert st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0] == N_CUSTOMERS * LINES_EACH
        have = _indexes(st)
        assert ("transactions", "customer_id") in have
        if st.kind == "duckdb":
            assert {("transactions", "order_id"), ("customers", "customer_id")} <= have
        else:  # the keys answer (source, order_id) and customer lookups
            assert {("transactions", "source, order_id, line_key"), ("customers", "customer_id")} <= have
        # the per-event reads still answer correctly through the indexes
        start, end = datetime(2024, 1, 1), datetime(2024, 2, 1)
        _, rows = st.fetch(few_value_12m_sql(2), [start, end, start, end, start, end, "c1", "c2"])
        got = {c: (r, v) for c, r, v in rows}
        # c1's lines are i = 1 + 3000k: days (1 + 3000k) % 300 = 1, so all of them fall in January
        exp_r = sum(10.0 + i % 7 for i in range(1, N_CUSTOMERS * LINES_EACH, N_CUSTOMERS))
        assert got["c1"] == pytest.approx((exp_r, exp_r - 2.0 * LINES_EACH))
        _, found = st.fetch(stored_orders_sql(2, 2), ["o5", "o-missing", "shop", "other"])
        assert found == [("shop", "o5")]
        _, owners = st.fetch(stored_orders_sql(1, 1, owner=True), ["o3005", "shop"])
        assert owners == [("shop", "o3005", "c5")]
    with open_store(store_url) as st:  # opening again applies nothing twice
        assert st.query("SELECT count(*) AS n FROM schema_version WHERE version = 8")["n"].iloc[0] == 1


def _scan_type(st, sql: str, params: list) -> list[str]:
    """The scan types DuckDB ran `sql` with (it picks an index scan when the query runs, so EXPLAIN ANALYZE)."""
    plan = st.con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()[0][1]
    return [line.split("Type:")[1].strip(" │") for line in plan.splitlines() if "Type:" in line]


def test_duckdb_answers_the_per_event_lookups_from_the_indexes(tmp_path) -> None:
    url = str(tmp_path / "v7.duckdb")
    _make_v7_store(url)
    start, end = datetime(2024, 1, 1), datetime(2024, 12, 31)
    with open_store(url) as st:
        assert _scan_type(st, few_value_12m_sql(1), [start, end, start, end, start, end, "c7"]) == ["Index Scan"]
        assert _scan_type(st, few_value_12m_sql(3), [start, end] * 3 + ["c7", "c8", "c9"]) == ["Index Scan"]
        assert _scan_type(st, stored_orders_sql(1, 1), ["o5", "shop"]) == ["Index Scan"]
        assert _scan_type(st, stored_orders_sql(2, 1), ["o5", "o6", "shop"]) == ["Index Scan"]
        assert _scan_type(st, stored_orders_sql(1, 1, owner=True), ["o5", "shop"]) == ["Index Scan"]
        assert _scan_type(st, ATTRIBUTES_SQL + " WHERE customer_id = ?", ["c7"]) == ["Index Scan"]
        assert _scan_type(st, "SELECT customer_id FROM customers WHERE customer_id IN (?, ?)",
                          ["c7", "c8"]) == ["Index Scan"]


def test_change_ids_continue_from_the_kept_counter_and_are_never_given_out_again(store) -> None:
    from tests.store.test_live_tables import T0, _changes, _state

    sid = store.save_state({"cutoff": T0, "format": 1, "reason": "analyze"}, "{}")
    store.replace_customer_state(_state(3))
    assert store.commit_live(state_rows=None, changes=_changes(["c000000", "c000001"], state_id=sid),
                             outbox=None) == [1, 2]
    assert store.get_meta("next_change_id") == "3"
    with store.transaction() as tx:  # an erasure removes the latest changes: their ids stay used
        tx.execute("DELETE FROM segment_changes WHERE change_id = ?", [2])
    assert store.commit_live(state_rows=None, changes=_changes(["c000002"], state_id=sid), outbox=None) == [3]
    # a store whose counter is missing (written before it existed) starts after the largest id
    with store.transaction() as tx:
        tx.execute("DELETE FROM live_meta WHERE key = ?", ["next_change_id"])
    assert store.commit_live(state_rows=None, changes=_changes(["c000001"], state_id=sid), outbox=None) == [4]
    assert store.read_changes()["change_id"].tolist() == [1, 3, 4]
