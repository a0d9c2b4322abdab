"""Per-customer features and the apply stage: DuckDB (through SQLFrame) against Spark local mode, same Parquet.

    python benchmarks/spark.py --orders 200000 --customers 20000 --master local[2]

Prints, for one generated Parquet file of canonical transactions: the features with the
portable PySpark-API code (clientfolio/scale/frames.py) on DuckDB through SQLFrame (SQL
generation and execution timed apart), the core of the purchase summary written in Narwhals on
DuckDB (a candidate layer), the same features on Spark, and PortfolioState.apply on one machine
against mapInPandas on Spark.  Ratios are against DuckDB in the same run.  Timings on a shared
machine are noisy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _shop import shop_orders  # noqa: E402


def canonical_parquet(path: Path, n_orders: int, n_customers: int) -> None:
    """The benchmark shop as the canonical transactions Parquet the Spark engine reads."""
    df = shop_orders(n_orders, n_customers)
    df = df.rename(columns={"order_date": "ts"}).assign(ts=lambda d: pd.to_datetime(d["ts"]),
                                                        order_id=lambda d: d["order_id"].astype(str))
    df.to_parquet(path, index=False)


def narwhals_core(path: Path) -> float:
    """Frequency, mean gap and repeat spend per customer in Narwhals on DuckDB (a candidate, core only)."""
    import narwhals as nw

    t = time.perf_counter()
    lf = nw.from_native(duckdb.connect().sql(f"SELECT * FROM '{path}'"))
    days = (lf.with_columns(d=nw.col("ts").dt.date()).group_by("customer_id", "d")
            .agg(nw.col("amount").sum().alias("value")))
    ranked = days.with_columns(k=nw.col("d").rank("ordinal").over("customer_id"))
    ranked.group_by("customer_id").agg(
        (nw.len() - 1).alias("frequency"),
        nw.when(nw.col("k") > 1).then(nw.col("value")).otherwise(None).mean().alias("monetary")).collect()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--master", default="local[2]")
    a = ap.parse_args()
    from sqlframe.duckdb import DuckDBSession

    from clientfolio.scale import frames
    from clientfolio.scale.spark import (analyze_spark, spark_session, support_of, to_pandas_features,
                                         with_attributes)
    from clientfolio.state import PortfolioState

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tx.parquet"
        canonical_parquet(path, a.orders, a.customers)
        con = duckdb.connect()
        t = time.perf_counter()
        tx = frames.canonical(DuckDBSession(conn=con).read.parquet(str(path)))
        cutoff = pd.Timestamp(con.execute(f"SELECT max(ts) FROM '{path}'").fetchone()[0]).normalize()
        lazy, shape = frames.features_frame(tx, cutoff)
        lazy = with_attributes(lazy, None, tx)
        sql = lazy.sql(dialect="duckdb")
        plan = time.perf_counter() - t
        t = time.perf_counter()
        feats = to_pandas_features(con.execute(sql).df(), shape, cutoff)
        run = time.perf_counter() - t
        duck = plan + run
        nw_core = narwhals_core(path)
        first = pd.Timestamp(con.execute(f"SELECT min(ts) FROM '{path}'").fetchone()[0])
        state = PortfolioState(model="bgnbd")
        t = time.perf_counter()
        state.fit(feats, cutoff, support=support_of(feats, first, cutoff))
        fit = time.perf_counter() - t
        t = time.perf_counter()
        state.apply(feats, cutoff)
        apply_one = time.perf_counter() - t
        t = time.perf_counter()
        spark = spark_session(a.master)
        start = time.perf_counter() - t
        t = time.perf_counter()
        res, _, _ = analyze_spark(path, Path(tmp) / "out", spark=spark, model="bgnbd")
        total = time.perf_counter() - t
        spark.stop()
    rows = a.orders / 1e6
    print(f"{a.orders:,} orders, {len(feats):,} customers, Spark {a.master} (session start {start:.1f} s, not counted)")
    print(f"  features, DuckDB via SQLFrame : {duck:6.2f} s  (SQL generation {plan:.2f} s + DuckDB {run:.2f} s; "
          f"{rows / duck:.2f} M orders/s)")
    print(f"  core summary, Narwhals/DuckDB : {nw_core:6.2f} s  (frequency + repeat spend only)")
    print(f"  features, Spark               : {res.seconds['features']:6.2f} s  = {res.seconds['features'] / duck:.1f}x DuckDB")
    print(f"  fit on the driver             : {fit:6.2f} s  (Spark run: {res.seconds['fit']:.2f} s)")
    print(f"  apply, one machine (pandas)   : {apply_one:6.2f} s")
    print(f"  apply + write, Spark          : {res.seconds['apply_and_write']:6.2f} s  = "
          f"{res.seconds['apply_and_write'] / apply_one:.1f}x one machine")
    print(f"  whole Spark analyze           : {total:6.2f} s")


if __name__ == "__main__":
    main()
