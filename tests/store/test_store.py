"""The same ingest behaviour on the embedded DuckDB store and on a real PostgreSQL server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import IngestError
from clientfolio.ingest import import_files
from clientfolio.store import open_store
from clientfolio.store.schema import LATEST, MIGRATIONS
from tests.conftest import corpus_file

UCI = "uci_online_retail__by_day_2010-12-01__spark_definitive_guide.csv"


def _split_on_invoices(path: Path, out: Path, start: float, stop: float) -> Path:
    """Write the rows of whole invoices between fractions start..stop of the file (an export by date range)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    invoices = df["InvoiceNo"].drop_duplicates().tolist()
    lo, hi = int(len(invoices) * start), int(len(invoices) * stop)
    df[df["InvoiceNo"].isin(invoices[lo:hi])].to_csv(out, index=False)
    return out


def _totals(st) -> tuple[int, float]:
    r = st.query("SELECT count(*) AS n, coalesce(sum(amount), 0) AS s FROM transactions").iloc[0]
    return int(r["n"]), float(r["s"])


def test_store_is_migrated_once(store) -> None:
    assert store.schema_version() == LATEST
    versions = store.query("SELECT version FROM schema_version ORDER BY version")["version"].tolist()
    assert versions == sorted(v for v, _, _ in MIGRATIONS)  # every step once (numbers may skip between branches)


def test_an_older_store_is_upgraded_when_opened(tmp_path: Path) -> None:
    import duckdb

    from clientfolio.store.base import migration_statements

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    for version, sql in migration_statements(0, "duckdb"):
        if version == 1:
            con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute("INSERT INTO transactions (source, order_id, line_key, ts, amount, is_refund, row_hash, import_id) "
                "VALUES ('x', 'o1', '1', TIMESTAMP '2024-01-01', 5, FALSE, 'h', 1)")
    con.close()
    with open_store(db) as st:
        assert st.schema_version() == LATEST
        assert len(st.table("transactions")) == 1  # data kept
        assert len(st.query("SELECT * FROM segment_memberships")) == 0


def test_segment_snapshots_replace_their_date(store) -> None:
    snap = pd.DataFrame({"customer_id": ["a", "b"], "segment_kind": "rfm", "segment": ["Champions", "Lost"],
                         "as_of": pd.Timestamp("2024-06-30")})
    store.save_memberships(snap)
    store.save_memberships(snap.assign(segment=["Lost", "Lost"]))  # the same date again: replaced
    store.save_memberships(snap.assign(as_of=pd.Timestamp("2024-03-31")))
    got = store.query("SELECT as_of, segment, count(*) AS n FROM segment_memberships GROUP BY 1, 2 ORDER BY 1, 2")
    assert got["n"].tolist() == [1, 1, 2] and got["segment"].tolist() == ["Champions", "Lost", "Lost"]


def test_duckdb_release_memory_drops_the_import_indexes_and_keeps_settings(tmp_path: Path, monkeypatch) -> None:
    """After a bulk import the lookup indexes sit in memory until the connection closes; release_memory reopens
    the file with the import's memory cap and spill directory, data and indexes intact."""
    monkeypatch.setenv("CLIENTFOLIO_MEMORY_LIMIT", "300MB")
    with open_store(str(tmp_path / "s.duckdb")) as st:
        import_files([corpus_file(UCI)], st, rejects_dir=tmp_path / "r")
        mem = "SELECT coalesce(sum(memory_usage_bytes), 0) AS b FROM duckdb_memory() WHERE tag = 'ART_INDEX'"
        before = _totals(st)
        settings = "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t, " \
                   "current_setting('TimeZone') AS z"
        limit = st.query(settings).iloc[0].tolist()
        assert st.query(mem)["b"][0] > 0
        st.release_memory()
        assert st.query(mem)["b"][0] == 0
        again = st.query(settings).iloc[0].tolist()
        assert again[1:] == limit[1:] and limit[2] == "UTC"
        # DuckDB shows the cap rounded to 0.1 MiB ('286.1 MiB' set back reads '286.0 MiB'): the same cap
        assert again[0].endswith(" MiB") and abs(float(again[0].split()[0]) - float(limit[0].split()[0])) <= 0.15
        assert _totals(st) == before
        assert {"transactions_customer", "transactions_order"} <= set(st.query("SELECT index_name FROM duckdb_indexes()")["index_name"])
        import_files([corpus_file(UCI)], st, rejects_dir=tmp_path / "r")  # the store still takes imports
        assert _totals(st) == before
    with open_store(":memory:") as mem_store:  # nothing to reopen: the data stays
        import_files([corpus_file(UCI)], mem_store, rejects_dir=tmp_path / "r")
        mem_store.release_memory()
        assert _totals(mem_store) == before


def test_reimport_adds_nothing(store, tmp_path: Path) -> None:
    path = corpus_file(UCI)
    first = import_files([path], store, rejects_dir=tmp_path / "r").files[0]
    before = _totals(store)
    second = import_files([path], store, rejects_dir=tmp_path / "r").files[0]
    assert _totals(store) == before
    assert second.rows_new == 0 and second.rows_updated == 0
    assert second.rows_deduplicated == first.rows_stored + first.rows_deduplicated  # its own repeats again
    log = store.query("SELECT rows_in, rows_stored, rows_rejected, rows_deduplicated FROM imports ORDER BY import_id")
    assert len(log) == 2
    assert (log["rows_in"] == log["rows_stored"] + log["rows_rejected"] + log["rows_deduplicated"]).all()


@pytest.mark.parametrize("together", [False, True])
def test_overlapping_exports_store_each_order_once(store, tmp_path: Path, together: bool) -> None:
    path = corpus_file(UCI)
    a = _split_on_invoices(path, tmp_path / "jan_to_mar.csv", 0.0, 0.6)
    b = _split_on_invoices(path, tmp_path / "feb_to_apr.csv", 0.4, 1.0)
    if together:
        result = import_files([a, b], store, rejects_dir=tmp_path / "r")
        assert result.balanced
    else:
        import_files([a], store, rejects_dir=tmp_path / "r")
        import_files([b], store, rejects_dir=tmp_path / "r")
    got = _totals(store)
    with open_store(tmp_path / "whole.duckdb") as whole:
        import_files([path], whole, rejects_dir=tmp_path / "r2")
        want = _totals(whole)
    assert got[0] == want[0]
    assert got[1] == pytest.approx(want[1], abs=1e-6)


def test_later_export_with_changed_order_replaces_it(store, tmp_path: Path) -> None:
    v1 = tmp_path / "v1.csv"
    v1.write_text("order_id,customer_id,date,amount\nA1,c1,2024-01-05,10.00\nA2,c2,2024-01-06,20.00\n")
    v2 = tmp_path / "v2.csv"  # A2 partly refunded since the first export; A3 new
    v2.write_text("order_id,customer_id,date,amount\nA2,c2,2024-01-06,15.00\nA3,c1,2024-02-01,5.00\n")
    import_files([v1], store, rejects_dir=tmp_path / "r")
    f = import_files([v2], store, rejects_dir=tmp_path / "r").files[0]
    assert (f.rows_new, f.rows_updated, f.rows_deduplicated) == (1, 1, 0)
    tx = store.query("SELECT order_id, amount FROM transactions ORDER BY order_id")
    assert tx["amount"].tolist() == [10.0, 15.0, 5.0]


def test_same_order_twice_with_different_amounts_in_one_file(store, tmp_path: Path) -> None:
    p = tmp_path / "dup.csv"
    p.write_text("order_id,customer_id,date,amount\nA1,c1,2024-01-05,10.00\nA1,c1,2024-01-05,10.00\n"
                 "A2,c2,2024-01-06,20.00\nA2,c2,2024-01-06,25.00\n")
    f = import_files([p], store, rejects_dir=tmp_path / "r").files[0]
    assert (f.rows_stored, f.rows_deduplicated, f.rows_rejected) == (2, 1, 1)
    rej = pd.read_csv(next((tmp_path / "r").glob("*.csv")), dtype=str)
    conflict, repeat = rej[rej["kind"] == "invalid"], rej[rej["kind"] == "duplicate"]
    assert conflict["row"].tolist() == ["5"] and "first at row 4" in conflict["reason"].iloc[0]
    assert repeat["row"].tolist() == ["3"] and "exact repeat of row 2" in repeat["reason"].iloc[0]


def test_email_orders_link_to_customer_ids_from_a_customers_file(store, tmp_path: Path) -> None:
    web = tmp_path / "web.csv"  # a web shop knows e-mails
    web.write_text("order_id,email,date,amount\nW1, Ann@Example.com ,2024-01-05,10\nW2,bob@example.com,2024-01-06,20\n")
    pos = tmp_path / "pos.csv"  # the till knows loyalty ids
    pos.write_text("order_id,customer_id,date,amount\nP1,L-001,2024-01-07,5\n")
    crm = tmp_path / "customers.csv"
    crm.write_text("customer_id,email,consent_marketing\nL-001,ann@example.com,yes\n")
    import_files([web], store, rejects_dir=tmp_path / "r")
    import_files([pos], store, rejects_dir=tmp_path / "r")
    res = import_files([crm], store, rejects_dir=tmp_path / "r")
    assert res.linked_customers == 1
    tx = store.query("SELECT order_id, customer_id FROM transactions ORDER BY order_id")
    assert dict(zip(tx["order_id"], tx["customer_id"])) == {"P1": "L-001", "W1": "L-001", "W2": "bob@example.com"}
    cust = store.query("SELECT customer_id, consent_marketing FROM customers ORDER BY customer_id")
    assert cust["customer_id"].tolist() == ["L-001", "bob@example.com"]
    assert bool(cust["consent_marketing"].iloc[0]) is True


def test_a_failing_file_leaves_the_store_unchanged(store, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("order_id,customer_id,date,amount\nA1,c1,2024-01-05,10\n")
    import_files([good], store, rejects_dir=tmp_path / "r")
    before = _totals(store)
    newer = tmp_path / "newer.csv"
    newer.write_text("order_id,customer_id,date,amount\nA9,c9,2024-03-05,99\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match="empty.csv"):
        import_files([newer, empty], store, rejects_dir=tmp_path / "r")
    assert _totals(store) == before
    assert len(store.query("SELECT * FROM imports")) == 1


def test_customer_ids_kept_as_given(store, tmp_path: Path) -> None:
    p = tmp_path / "ids.csv"
    p.write_text("order_id,customer_id,date,amount\n1,00042,2024-01-05,1\n2,AbC-7,2024-01-05,1\n3, 0042 ,2024-01-05,1\n")
    import_files([p], store, rejects_dir=tmp_path / "r")
    ids = sorted(store.query("SELECT customer_id FROM transactions")["customer_id"])
    assert ids == ["00042", "0042", "AbC-7"]  # leading zeros and case kept, only spaces trimmed


def _big_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "order_id": np.arange(rows).astype(str),
        "customer_id": rng.integers(0, rows // 5, rows).astype(str),
        "date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700 * 86400, rows), unit="s"),
        "amount": rng.gamma(2.0, 20.0, rows).round(2),
    })
    df.to_csv(path, index=False)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["checking", "writing"])
def test_import_killed_mid_way_leaves_the_store_as_before(tmp_path: Path, phase: str) -> None:
    db = tmp_path / "s.duckdb"
    small = tmp_path / "small.csv"
    small.write_text("order_id,customer_id,date,amount\nA1,c1,2024-01-05,10\n")
    import_files([small], db, rejects_dir=tmp_path / "r")
    big = tmp_path / "big.csv"
    _big_csv(big, 1_500_000)
    code = ("import sys; from clientfolio.ingest import import_files; "
            "import_files([sys.argv[1]], sys.argv[2], progress=lambda m, f: print(m, flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(big), str(db)], stdout=subprocess.PIPE, text=True)
    # Wait until it is in the given phase (staging rows, or merging them into the store), then kill -9.
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith(phase):
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    with open_store(db) as st:
        assert _totals(st) == (1, 10.0)
        assert len(st.query("SELECT * FROM imports")) == 1


def test_an_export_where_every_row_changed_replaces_each_once(store, tmp_path: Path) -> None:
    """No incoming key is left in the table once the changed rows are deleted, so they are inserted
    without a lookup: still one row per order, and one per customer (customers are updated in place)."""
    v1 = tmp_path / "v1.csv"
    v1.write_text("order_id,customer_id,date,amount\nA1,c1,2024-01-05,10.00\nA2,c2,2024-01-06,20.00\n"
                  "A3,c1,2024-01-09,7.00\n")
    v2 = tmp_path / "v2.csv"  # every order changed: amounts corrected, A1 dated a day earlier
    v2.write_text("order_id,customer_id,date,amount\nA1,c1,2024-01-04,11.00\nA2,c2,2024-01-06,21.00\n"
                  "A3,c1,2024-01-09,8.00\n")
    f1 = import_files([v1], store, rejects_dir=tmp_path / "r").files[0]
    assert (f1.rows_new, f1.rows_updated) == (3, 0)
    f2 = import_files([v2], store, rejects_dir=tmp_path / "r").files[0]
    assert (f2.rows_new, f2.rows_updated, f2.rows_deduplicated) == (0, 3, 0)
    tx = store.query("SELECT order_id, amount FROM transactions ORDER BY order_id")
    assert tx["order_id"].tolist() == ["A1", "A2", "A3"] and tx["amount"].tolist() == [11.0, 21.0, 8.0]
    cust = store.query("SELECT customer_id FROM customers ORDER BY customer_id")
    assert cust["customer_id"].tolist() == ["c1", "c2"]


def test_a_long_query_prints_no_progress_bar_into_piped_output(tmp_path: Path) -> None:
    """DuckDB draws its own progress bar on stdout after 2 s, even into a pipe (it landed mid-line in command
    output and logs); a store's connections have it off."""
    import subprocess
    import sys

    def run(setup: str) -> str:
        code = (f"from clientfolio.store import open_store\n"
                f"st = open_store({str(tmp_path / 's.duckdb')!r})\n{setup}"
                "n = st.con.execute('SELECT count(*) FROM range(30000000) t(x) WHERE x % 7 = 0').fetchone()[0]\n"
                "print('rows', n, st.con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchone()[0])\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              check=True).stdout

    # the bar shown at once (setting its delay turns it on) shows what a pipe would get: the test can fail
    assert "%" in run("st.con.execute('SET progress_bar_time = 0')\n")
    # a process of its own, as a command is (DuckDB turns the bar on by default there)
    assert run("") == "rows 4285715 False\n"
