"""Per-customer features and the apply stage: DuckDB (through SQLFrame) against Spark local mode, same Parquet.

    python benchmarks/spark.py --orders 200000 --customers 20000 --master local[2]
    python benchmarks/spark.py --driver-memory --orders 1000000 --customers 100000 --sample-size 20000
    python benchmarks/spark.py --driver-fit --orders 10000000 --customers 1000000

`--driver-fit`: what the driver holds and does for the collapsed fit, without a JVM: the features are
made by the same PySpark-API code on DuckDB through SQLFrame and kept in DuckDB (on a cluster the
executors hold them), then the driver's part is timed and its Python heap peak measured
(tracemalloc, which NumPy reports to): collecting the sample (200,000 customers; ordered by DuckDB's
``hash``, as SQLFrame has no ``xxhash64`` -- other customers, the same number), collecting the
distinct ``(frequency, recency, T)`` with counts, and ``PortfolioState.fit`` on them.  Run twice,
without and with tracemalloc (it slows the run several times), so time and memory are both honest.

`--driver-memory`: the driver's peak memory, Python process and JVM apart, for the whole Spark
analyze with every customer's features collected to the driver against the collapsed fit
(purchase model on the distinct histories, the rest on `--sample-size` customers), each in a
fresh process on the same file.

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


def _peak_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a live process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children() -> list[int]:
    out = []
    for f in Path("/proc/self/task").glob("*/children"):
        out += [int(p) for p in f.read_text().split()]
    return out


def driver_run(path: Path, master: str, sample_size: int | None) -> None:
    """One Spark analyze in this process; prints its driver's peak memory as JSON (read by `driver_memory`)."""
    import json
    import resource

    from clientfolio.scale.spark import analyze_spark, spark_session

    spark = spark_session(master)
    jvm = _children()
    with tempfile.TemporaryDirectory() as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        res, _, _ = analyze_spark(path, Path(tmp) / "out", spark=spark, model="bgnbd", sample_size=sample_size)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    java = max((_peak_mb(p) for p in jvm), default=float("nan"))
    spark.stop()
    print(json.dumps({"python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "jvm_mb": java,
                      "seconds": wall, "python_cpu": cpu, "fit_seconds": res.seconds["fit"],
                      "customers": res.customers, "sampled": "sample" in res.state.fitted_on_}))


def driver_memory(a: argparse.Namespace) -> None:
    """Peak driver memory, all customers collected against the collapsed fit, each in a fresh process."""
    import json
    import os
    import subprocess

    import clientfolio

    # The runs import the clientfolio this process imported (a checkout's, not only the installed one).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(clientfolio.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tx.parquet"
        canonical_parquet(path, a.orders, a.customers)
        got = {}
        for name, size in (("every customer", "none"), ("collapsed", str(a.sample_size))):
            out = subprocess.run([sys.executable, __file__, "--_run", str(path), "--master", a.master,
                                  "--sample-size", size], capture_output=True, text=True, env=env)
            if out.returncode:
                raise SystemExit(f"the {name} run failed:\n{out.stderr[-3000:]}")
            got[name] = json.loads(out.stdout.strip().splitlines()[-1])
    full, col = got["every customer"], got["collapsed"]
    print(f"{a.orders:,} orders, {full['customers']:,} customers, Spark {a.master}; driver peak memory (VmHWM)")
    for name, r in got.items():
        print(f"  {name:15s}: Python {r['python_mb']:7.0f} MB, JVM {r['jvm_mb']:7.0f} MB; analyze {r['seconds']:.1f} s "
              f"(fit {r['fit_seconds']:.1f} s, Python CPU {r['python_cpu']:.1f} s), sampled={r['sampled']}")
    print(f"  collapsed / every customer: Python {col['python_mb'] / full['python_mb']:.2f}x, "
          f"JVM {col['jvm_mb'] / full['jvm_mb']:.2f}x, fit {col['fit_seconds'] / full['fit_seconds']:.2f}x")


def driver_fit(a: argparse.Namespace) -> None:
    """The collapsed fit's driver part at this size: time (one run) and Python heap peak (a second run)."""
    import tracemalloc

    from clientfolio.scale import frames
    from clientfolio.scale.spark import to_pandas_features, with_attributes
    from clientfolio.state import PortfolioState
    from clientfolio.store.audit import forecast_support
    from sqlframe.duckdb import DuckDBSession

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tx.parquet"
        canonical_parquet(path, a.orders, a.customers)
        con = duckdb.connect()
        tx = frames.canonical(DuckDBSession(conn=con).read.parquet(str(path)))
        cutoff = pd.Timestamp(con.execute(f"SELECT max(ts) FROM '{path}'").fetchone()[0]).normalize()
        first = pd.Timestamp(con.execute(f"SELECT min(ts) FROM '{path}'").fetchone()[0]).normalize()
        lazy, shape = frames.features_frame(tx, cutoff)
        con.execute(f"CREATE TEMP TABLE f AS {with_attributes(lazy, None, tx).sql(dialect='duckdb')}")
        n = con.execute("SELECT count(*) FROM f").fetchone()[0]
        size = int(a.sample_size)
        for traced in (False, True):
            if traced:
                tracemalloc.start()
            t, cpu = time.perf_counter(), time.process_time()
            sample = to_pandas_features(con.execute(f"SELECT * FROM f ORDER BY hash(customer_id), customer_id "
                                                    f"LIMIT {size}").df(), shape, cutoff)
            stats = con.execute('SELECT frequency, recency, "T", count(*)::DOUBLE AS weights FROM f '
                                'GROUP BY ALL ORDER BY ALL').df().astype({"frequency": "int64", "recency": float,
                                                                         "T": float, "weights": float})
            collect = time.perf_counter() - t
            support = forecast_support((cutoff - first).days, n, int(stats.loc[stats["frequency"] > 0, "weights"].sum()))
            PortfolioState(model="bgnbd").fit(sample, cutoff, support=support,
                                              fitted_on={"transactions": None, "buyers": n}, purchase_stats=stats)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            if not traced:
                print(f"{a.orders:,} orders, {n:,} customers: the driver collects {len(sample):,} sampled customers' "
                      f"features and {len(stats):,} distinct (frequency, recency, T) in {collect:.1f} s, collect + "
                      f"fit {wall:.1f} s wall / {cpu:.1f} s CPU")
            else:
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                print(f"  driver's Python heap peak for collect + fit: {peak:,.0f} MB (tracemalloc run: {wall:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", action="store_true", help="peak driver memory, with and without collapse")
    ap.add_argument("--driver-fit", action="store_true", help="the collapsed fit's driver part alone, no JVM")
    ap.add_argument("--sample-size", default=None, help="customers the collapsed fit samples ('none': all; default "
                    "20,000 for --driver-memory, 200,000 -- the Spark engine's default -- for --driver-fit)")
    ap.add_argument("--_run", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._run:
        a.sample_size = a.sample_size or "20000"
        driver_run(Path(a._run), a.master, None if a.sample_size == "none" else int(a.sample_size))
        return
    if a.driver_fit:
        a.sample_size = a.sample_size or "200000"
        driver_fit(a)
        return
    if a.driver_memory:
        a.sample_size = int(a.sample_size or 20000)
        driver_memory(a)
        return
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
