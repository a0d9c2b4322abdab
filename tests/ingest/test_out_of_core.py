"""Imports larger than DuckDB's memory cap: staged tables spill to disk and nothing is lost."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from clientfolio.ingest import import_files
from clientfolio.ingest.engine import bound_memory
from clientfolio.store import open_store


def _orders(path: Path, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"order_id": np.arange(n), "customer_id": "C" + pd.Series(rng.integers(0, n // 10, n)).astype(str),
                       "order_date": (pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700 * 86400, n), unit="s"))
                       .strftime("%Y-%m-%d %H:%M:%S"),
                       "amount": rng.gamma(2.0, 12.0, n).round(2), "category": rng.choice(["a", "bb", "ccc"], n)})
    df["amount"] = df["amount"].astype(object)
    df.loc[7, "amount"] = "12,5x"  # one unreadable amount: rejected, with its row number, under the cap too
    df.to_csv(path, index=False)
    return df


@pytest.mark.slow
def test_an_import_far_larger_than_the_memory_cap_is_complete(tmp_path: Path, monkeypatch) -> None:
    """150k orders (~40 MB staged as text, several times that typed) under a 24 MB cap, on a store file."""
    df = _orders(tmp_path / "orders.csv", 150_000)
    monkeypatch.setenv("CLIENTFOLIO_MEMORY_LIMIT", "24MB")
    with open_store(tmp_path / "s.duckdb") as st:
        result = import_files([tmp_path / "orders.csv"], st, rejects_dir=tmp_path / "rej")
        limit = st.staging().execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        got = st.query("SELECT count(*) AS n, count(DISTINCT order_id) AS k, sum(amount) AS s FROM transactions").iloc[0]
    assert limit.endswith("MiB") and float(limit.split()[0]) < 30  # the cap was in force
    (f,) = result.files
    assert f.balanced and (f.rows_in, f.rows_stored, f.rows_rejected) == (150_000, 149_999, 1)
    want = pd.to_numeric(df["amount"], errors="coerce").drop(index=7)
    assert (int(got["n"]), int(got["k"])) == (149_999, 149_999)
    assert float(got["s"]) == pytest.approx(float(want.sum()), rel=1e-12)
    rej = pd.read_csv(result.rejects_path, dtype=str)
    assert rej[["row", "column", "value"]].values.tolist() == [["9", "amount", "12,5x"]]


def test_an_in_memory_staging_database_spills_to_the_temporary_directory(tmp_path: Path, monkeypatch) -> None:
    """Not DuckDB's default `.tmp` under the current directory (a PostgreSQL store stages in memory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLIENTFOLIO_TEMP_DIR", raising=False)
    con = duckdb.connect()
    bound_memory(con)
    spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert os.path.isabs(spill) and not Path(spill).resolve().is_relative_to(tmp_path.resolve())
    monkeypatch.setenv("CLIENTFOLIO_TEMP_DIR", str(tmp_path / "spill"))
    con = duckdb.connect()
    bound_memory(con)
    assert con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] == str(tmp_path / "spill")
