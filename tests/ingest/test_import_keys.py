"""Store keys made while the rows are checked: rows that share a key are numbered among the rows kept.

A file's keys (and content hashes) are made in the one pass that checks its rows, each row numbered
#1; only rows that end up sharing a key once currencies and erasures are settled are renumbered
(#1, #2, ... in file order).  These tests pin the numbers a window over the kept rows gives, on
both stores, and that re-importing the same file stores nothing new.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clientfolio.ingest import ImportOptions, import_files
from clientfolio.store import open_store


def _import(path: Path, store_url: str, tmp_path: Path, **kw):
    result = import_files([path], store_url, ImportOptions(**kw), rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced
    return f


def _table(store_url: str, name: str) -> pd.DataFrame:
    with open_store(store_url) as st:
        return st.table(name)


def test_orders_without_ids_are_numbered_among_the_rows_kept(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "till.csv"
    path.write_text(
        "customer_id,date,amount\n"
        "C1,2024-01-05 10:00:00,10.00 USD\n"   # C1's first order at 10:00
        "C1,2024-01-05 10:00:00,11.00 EUR\n"   # excluded (--currency USD): takes no number
        "C1,2024-01-05 10:00:00,12.00 USD\n"   # C1's second order at 10:00
        "C2,2024-01-05 10:00:00,5.00 USD\n"
        "C1,2024-01-05 10:00:00,oops USD\n"    # invalid: takes no number
        "C1,2024-01-05 10:00:00,13.00 USD\n"   # the third
        "C1,2024-01-06 10:00:00,14.00 USD\n"   # another time: its own #1
    )
    f = _import(path, store_url, tmp_path, currency="USD")
    assert (f.rows_in, f.rows_stored, f.rows_rejected) == (7, 5, 2)
    tx = _table(store_url, "transactions")
    got = dict(zip(tx["amount"], tx["order_id"]))
    assert got == {10.0: "C1@2024-01-05T10:00:00#1", 12.0: "C1@2024-01-05T10:00:00#2",
                   13.0: "C1@2024-01-05T10:00:00#3", 5.0: "C2@2024-01-05T10:00:00#1",
                   14.0: "C1@2024-01-06T10:00:00#1"}
    again = _import(path, store_url, tmp_path, currency="USD")
    assert (again.rows_new, again.rows_updated, again.rows_deduplicated) == (0, 0, 5)


def test_identical_lines_of_one_order_are_numbered_and_kept(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "lines.csv"
    path.write_text(
        "order_id,customer_id,order_date,product_id,quantity,unit_price,amount,note\n"
        "O1,C1,2024-02-01 09:00:00,P1,1,3.50,3.50,a\n"
        "O1,C1,2024-02-01 09:00:00,P1,1,3.50,3.50,b\n"   # the same line again (only the note differs)
        "O1,C1,2024-02-01 09:00:00,P2,2,4.00,8.00,c\n"
        "O1,C1,2024-02-01 09:00:00,P1,1,3.50,3.50,d\n"   # and a third time
        "O2,C2,2024-02-02 09:00:00,P1,1,3.50,3.50,e\n"
    )
    f = _import(path, store_url, tmp_path)
    assert (f.rows_in, f.rows_stored) == (5, 5)
    tx = _table(store_url, "transactions").sort_values(["order_id", "line_key"])
    o1 = tx[tx["order_id"] == "O1"]
    p1 = sorted(k for k, p in zip(o1["line_key"], o1["product_id"]) if p == "P1")
    assert len({k.split("#")[0] for k in p1}) == 1 and [k.split("#")[1] for k in p1] == ["1", "2", "3"]
    assert o1[o1["product_id"] == "P2"]["line_key"].str.endswith("#1").all()
    assert tx[tx["order_id"] == "O2"]["line_key"].str.endswith("#1").all()
    # the note is kept per line: #1, #2, #3 follow the file's order
    notes = {k.split("#")[1]: a for k, a, p in zip(o1["line_key"], o1["attributes"], o1["product_id"]) if p == "P1"}
    assert ['"a"' in notes["1"], '"b"' in notes["2"], '"d"' in notes["3"]] == [True, True, True]
    assert _import(path, store_url, tmp_path).rows_new == 0


def test_repeated_events_get_their_own_ids(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "customer_id,ts,type,properties\n"
        "C1,2024-03-01 09:00:00,open,\n"
        "C1,2024-03-01 09:00:00,open,\n"     # the same event twice: kept with --keep-repeated-lines
        "C1,2024-03-01 09:00:00,,\n"         # invalid (no type): takes no number
        "C1,2024-03-01 09:00:00,open,\n"
        "C2,2024-03-01 09:00:00,click,\n"
    )
    f = _import(path, store_url, tmp_path, keep_repeated_lines=True)
    assert (f.rows_in, f.rows_stored, f.rows_rejected) == (5, 4, 1)
    ev = _table(store_url, "events")
    suffixes = sorted(e.rsplit("-", 1)[1] for e, c in zip(ev["event_id"], ev["customer_id"]) if c == "C1")
    assert suffixes == ["1", "2", "3"]
    assert len({e.rsplit("-", 1)[0] for e, c in zip(ev["event_id"], ev["customer_id"]) if c == "C1"}) == 1
    assert _import(path, store_url, tmp_path, keep_repeated_lines=True).rows_new == 0


def test_parquet_read_in_place_counts_repeats_and_leaves_nothing_behind(tmp_path: Path, store) -> None:
    """A Parquet file is checked through a view over it (no text copy); repeated rows still come out
    with their row numbers, and the view and tables of the import are gone afterwards."""
    import duckdb

    path = tmp_path / "orders.parquet"
    rows = [("O1", "C1", "2024-01-02", 10.5), ("O2", "C2", "2024-01-03", 7.25), ("O1", "C1", "2024-01-02", 10.5),
            ("O3", "C1", "2024-01-04", -3.0), ("O2", "C2", "2024-01-03", 7.25), ("O4", None, "2024-01-05", 1.0)]
    values = ", ".join(f"('{o}', {repr(c) if c else 'NULL'}, DATE '{d}', {a})" for o, c, d, a in rows)
    duckdb.execute(f"COPY (SELECT * FROM (VALUES {values}) t(order_id, customer_id, order_date, amount)) "
                   f"TO '{path}' (FORMAT parquet)")
    result = import_files([path], store, rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced and (f.rows_in, f.rows_stored, f.rows_deduplicated) == (6, 4, 2)
    rejects = pd.read_csv(result.rejects_path, dtype=str)
    dup = rejects[rejects["kind"] == "duplicate"].sort_values("row")
    assert dup["row"].tolist() == ["4", "6"]  # rows 4 and 6 of the file (header = row 1) repeat rows 2 and 3
    assert dup["reason"].str.contains("exact repeat of row 2").tolist() == [True, False]
    tx = store.table("transactions").sort_values("order_id")
    assert tx["order_id"].tolist() == ["O1", "O2", "O3", "O4"]
    assert tx["amount"].tolist() == [10.5, 7.25, -3.0, 1.0]
    assert str(tx["ts"].iloc[0])[:10] == "2024-01-02"
    if store.kind == "duckdb":  # the staging connection is the store's own
        left = store.con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'temp' UNION ALL "
                                 "SELECT view_name FROM duckdb_views() WHERE database_name = 'temp' "
                                 "AND NOT internal").fetchall()
        assert left == []


def test_a_failed_parquet_import_does_not_block_the_next_import(tmp_path: Path) -> None:
    """The view over a Parquet file is left behind when its import fails (no known layout); a CSV
    imported next on the same connection (a store kept open, as the service keeps it) still works."""
    import duckdb
    import pytest

    from clientfolio.core.errors import IngestError

    bad = tmp_path / "bad.parquet"
    duckdb.execute(f"COPY (SELECT 1 AS a, 2 AS b) TO '{bad}' (FORMAT parquet)")
    good = tmp_path / "ok.csv"
    good.write_text("order_id,customer_id,order_date,amount\nO1,C1,2024-01-02,5.00\n")
    with open_store(tmp_path / "s.duckdb") as st:
        with pytest.raises(IngestError, match="layout"):
            import_files([bad], st, rejects_dir=tmp_path / "rej")
        assert import_files([good], st, rejects_dir=tmp_path / "rej").rows_stored == 1
