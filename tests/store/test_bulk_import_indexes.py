"""A bulk import into DuckDB builds the lookup indexes after its commit, and never leaves a store without them.

Keeping the ART indexes on transactions up to date row by row cost most of a big import's COMMIT;
a bulk import (BULK_INDEX_ROWS or more incoming orders, at least as many as stored) drops them and
builds them again.  What must hold: the same indexes afterwards (used by the per-event lookups),
after a failed import too, and after a process killed between dropping and building them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import clientfolio.store.duckdb_store as dds
from clientfolio.ingest import import_files
from clientfolio.live.portfolio import stored_orders_sql
from clientfolio.store import open_store

ORDERS = "order_id,customer_id,order_date,amount\n" + "".join(
    f"O{i},C{i % 40},2024-01-{1 + i % 28:02d} 10:00:00,{10 + i % 7}.50\n" for i in range(300))


def _indexes(st) -> list[tuple[str, str]]:
    return sorted(st.con.execute("SELECT index_name, sql FROM duckdb_indexes()").fetchall())


@pytest.fixture
def small_bulk(monkeypatch):
    """Treat imports of 100 rows or more as bulk, so a small file takes the bulk path."""
    monkeypatch.setattr(dds, "BULK_INDEX_ROWS", 100)


def test_bulk_import_leaves_the_same_indexes_and_uses_them(tmp_path: Path, small_bulk, monkeypatch) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    url = str(tmp_path / "s.duckdb")
    with open_store(url) as st:
        before = _indexes(st)
    assert {n for n, _ in before} >= {"transactions_customer", "transactions_order", "customers_customer"}
    set_aside: list[bool] = []
    original = dds.DuckDBStore._set_aside_indexes

    def recorded(self) -> bool:  # the real decision, written down
        set_aside.append(original(self))
        return set_aside[-1]

    monkeypatch.setattr(dds.DuckDBStore, "_set_aside_indexes", recorded)
    assert import_files([path], url, rejects_dir=tmp_path / "rej").rows_stored == 300
    later = tmp_path / "later.csv"  # fewer rows than stored: the indexes are kept up to date instead
    later.write_text("order_id,customer_id,order_date,amount\n" + "".join(
        f"N{i},C{i},2024-02-01 10:00:00,5.00\n" for i in range(150)))
    assert import_files([later], url, rejects_dir=tmp_path / "rej").rows_stored == 150
    assert set_aside == [True, False]
    with open_store(url) as st:
        assert _indexes(st) == before
        assert st.get_meta(dds.REBUILD_KEY) is None
        plan = st.con.execute("EXPLAIN ANALYZE " + stored_orders_sql(1, 1), ["O5", "generic"]).fetchall()[0][1]
        assert "Index Scan" in plan
        _, found = st.fetch(stored_orders_sql(2, 1), ["O5", "N7", "generic"])
        assert sorted(found) == [("generic", "N7"), ("generic", "O5")]


def test_a_failed_bulk_import_stores_nothing_and_keeps_the_indexes(tmp_path: Path, small_bulk) -> None:
    url = str(tmp_path / "s.duckdb")
    with open_store(url) as st:
        before = _indexes(st)
        con = st.con
        con.execute("CREATE TEMP TABLE inc_transactions AS SELECT * EXCLUDE (import_id), 1 AS import_id, "
                    "1 AS __file FROM transactions LIMIT 0")
        con.execute("INSERT INTO inc_transactions SELECT 'shop', 'o' || i, '1', 'c' || i, NULL, "
                    "TIMESTAMP '2024-01-01', 1.0, FALSE, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
                    "NULL, NULL, NULL, NULL, 'h', 1, 1 FROM range(200) t(i)")
        con.execute("CREATE TEMP TABLE inc_customers_derived AS SELECT *, 1 AS __file FROM customers LIMIT 0")
        con.execute("CREATE TEMP TABLE inc_events AS SELECT *, 1 AS __file FROM events LIMIT 0")

        def log(counts):
            raise RuntimeError("the accounting does not balance")

        with pytest.raises(RuntimeError, match="balance"):
            st.apply_import(con, ["transactions"], log)
        assert _indexes(st) == before
        assert st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0] == 0
        assert st.get_meta(dds.REBUILD_KEY) is None


KILLED = r"""
import os, sys
import clientfolio.store.duckdb_store as dds
from clientfolio.store import open_store
dds.BULK_INDEX_ROWS = 1
st = open_store(sys.argv[1])
st.con.execute("CREATE TEMP TABLE inc_transactions AS SELECT 1 AS x")
assert st._set_aside_indexes()
os._exit(9)  # killed before the import and the index build: nothing cleans up
"""


def test_indexes_dropped_by_a_killed_import_are_built_on_the_next_open(tmp_path: Path) -> None:
    url = str(tmp_path / "s.duckdb")
    with open_store(url) as st:
        before = _indexes(st)
    run = subprocess.run([sys.executable, "-c", KILLED, url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stderr
    import duckdb

    con = duckdb.connect(url)  # as the killed process left it: indexes gone, the note kept
    left = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    note = con.execute("SELECT value FROM live_meta WHERE key = ?", [dds.REBUILD_KEY]).fetchall()
    con.close()
    assert "transactions_customer" not in left and "transactions_order" not in left and note
    with open_store(url) as st:
        assert _indexes(st) == before
        assert st.get_meta(dds.REBUILD_KEY) is None
