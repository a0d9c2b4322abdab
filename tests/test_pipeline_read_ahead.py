"""analyze reads ahead on a second DuckDB connection and writes its results while it builds the portfolio view:
the outputs must be exactly those of reading and writing in turn."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clientfolio
import clientfolio.pipeline as pipeline
from clientfolio.features import rfm_summary
from clientfolio.store import open_store


def _orders(n_orders: int = 6_000, n_customers: int = 800, seed: int = 5) -> pd.DataFrame:
    """Two years of orders from customers with gamma-distributed rates (repeat buyers, lapsed ones, new ones)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1.0, n_customers)
    cust = rng.choice(n_customers, size=n_orders, p=rate / rate.sum())
    start = rng.uniform(0, 600, n_customers)
    life = rng.exponential(400, n_customers)
    span = np.minimum(start[cust] + life[cust], 730) - start[cust]
    day = start[cust] + rng.uniform(0, 1, n_orders) * np.maximum(span, 1)
    amount = rng.gamma(2.0, 12.0, n_orders).round(2)
    return pd.DataFrame({"order_id": np.arange(n_orders).astype(str), "customer_id": "C" + pd.Series(cust).astype(str),
                         "ts": pd.Timestamp("2023-01-01") + pd.to_timedelta(day * 86400, unit="s"),
                         "amount": amount, "cost": (amount * rng.uniform(0.3, 0.6, n_orders)).round(2),
                         "category": np.array(["coffee", "cake", "bread"])[rng.integers(0, 3, n_orders)]})


def _analyze(orders: pd.DataFrame, path: Path, read_ahead: bool, monkeypatch: pytest.MonkeyPatch,
             overlap: int = pipeline.OVERLAP_MAX_CUSTOMERS) -> dict:
    monkeypatch.setattr(pipeline, "READ_AHEAD", read_ahead)
    monkeypatch.setattr(pipeline, "OVERLAP_MAX_CUSTOMERS", overlap)
    st = open_store(path)
    try:
        st.con.execute("SET threads = 1")  # DuckDB's parallel sums differ in the last bit from run to run
        pf = clientfolio.analyze(orders, store=st)
        q = lambda sql: st.con.execute(sql).df()  # noqa: E731
        return {"customers": pf.customers, "segments": pf.segments, "kpis": pf.kpis,
                "previous": pf.previous_segments, "notes": [str(n) for n in pf.notes],
                "checkup": [f.text for f in pf.audit.findings], "model": pf.models["kind"],
                "validation": repr(pf.validation.get("comparison")),
                "state": q("SELECT * EXCLUDE (state_id) FROM customer_state ORDER BY customer_id"),
                "members": q("SELECT * FROM segment_memberships ORDER BY ALL"),
                "meta": q("SELECT * FROM live_meta WHERE key <> 'store_version' ORDER BY key")}
    finally:
        st.close()


@pytest.mark.slow  # three analyses: ~15 s on a quiet machine
def test_analyze_reading_ahead_gives_what_reading_in_turn_gives(tmp_path: Path, monkeypatch) -> None:
    """Same customers, scores, segments, KPIs, check-up, model choice and stored rows, with and without the
    second connection (a store with a look-back, a holdout check and a first kept state: every read ahead),
    and for a base counted as big (the look-back's features and the statistics read in turn, results written
    before the portfolio view)."""
    orders = _orders()
    b = _analyze(orders, tmp_path / "in_turn.duckdb", False, monkeypatch)
    assert b["previous"] is not None and b["validation"] != "None" and len(b["state"]) == len(b["customers"])
    for name, overlap in (("ahead", pipeline.OVERLAP_MAX_CUSTOMERS), ("big", 0)):
        a = _analyze(orders, tmp_path / f"{name}.duckdb", True, monkeypatch, overlap=overlap)
        for key in a:
            if isinstance(a[key], pd.DataFrame):
                pd.testing.assert_frame_equal(a[key], b[key], check_exact=True, obj=f"{name}: {key}")
            else:
                assert a[key] == b[key], f"{name}: {key}"


def test_a_reader_reads_committed_data_while_the_store_works(tmp_path: Path) -> None:
    """The second connection answers from another thread, during a query on the first, with the same rows."""
    st = open_store(tmp_path / "s.duckdb")
    try:
        clientfolio.ingest.import_files([_write(tmp_path, _orders(4_000, 500))], st)
        reader = st.reader()
        assert reader is not None
        got: dict[str, pd.DataFrame] = {}
        t = threading.Thread(target=lambda: got.setdefault("r", rfm_summary(reader, cutoff="2024-06-30")))
        t.start()
        here = rfm_summary(st, cutoff="2024-06-30")
        t.join()
        reader.close()
        pd.testing.assert_frame_equal(got["r"], here, check_exact=False, rtol=1e-12)
        assert len(here) > 100
        assert st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0] == 4_000  # the store still works
    finally:
        st.close()


def _write(tmp_path: Path, orders: pd.DataFrame) -> Path:
    path = tmp_path / "orders.csv"
    orders.assign(ts=orders["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(path, index=False)
    return path
