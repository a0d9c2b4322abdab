"""`clientfolio analyze` against its peer (the lifetimes recipe) and DuckDB's raw aggregate, on one generated file.

All three read the same file in the same run, each in a fresh child process so its peak memory
(RSS, from resource.getrusage in the child) is its own:

- lifetimes: summary_data_from_transaction_data -> BG/NBD -> Gamma-Gamma -> 12-month CLV (the
  bare recipe a user would otherwise run; pandas reads the whole file);
- clientfolio analyze: import with row accounting, model choice on a holdout period, fit and
  apply, look-back, segments, action plan (report and CSV timed apart); also by stage (as the progress
  messages split it, and by the named stage functions of clientfolio.pipeline), and the
  time spent inside Pareto/NBD (fit and predictions) so the rest can be judged on its own;
- DuckDB: per-customer count/min/max/sum straight from the file -- the ceiling for any tool
  that has to read every order once.

Targets (issue 11): 1M orders <= 10 s for analyze, 10M <= 2 min, 50M within 8 GB.

    python benchmarks/analyze.py                     # 1M orders from 100k customers, CSV (+ the demo shop)
    python benchmarks/analyze.py --size 10m          # 10M orders / 1M customers, Parquet
    python benchmarks/analyze.py --size 50m --memory-limit 4GB   # the peer is capped at --peer-memory (8GB)
    python benchmarks/analyze.py --orders 200000 --customers 20000

Files of 10M orders and more are written as Parquet chunk by chunk (bounded memory), in --dir
(default: a temporary directory, deleted afterwards).  Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shop import make_orders, make_orders_parquet  # benchmarks/_shop.py: the shop the benchmarks share

SIZES = {"1m": (1_000_000, 100_000), "10m": (10_000_000, 1_000_000), "50m": (50_000_000, 5_000_000)}

COMMON = r"""
import json, resource, sys, time
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

LIFETIMES = COMMON + r"""
path, cap = sys.argv[1], int(sys.argv[2])
if cap > 0:  # the peer gets the same memory budget; past it, it stops with MemoryError instead of swapping
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
t = time.perf_counter()
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
cols = ["customer_id", "order_date", "amount"]
df = pd.read_parquet(path, columns=cols) if path.endswith(".parquet") else pd.read_csv(path, usecols=cols)
df["order_date"] = pd.to_datetime(df["order_date"])
summary = summary_data_from_transaction_data(df, "customer_id", "order_date", monetary_value_col="amount",
                                             observation_period_end=df["order_date"].max())
# penalizer 0.001 as in lifetimes' documentation: without it BG/NBD does not converge on this shop
bgf = BetaGeoFitter(penalizer_coef=0.001).fit(summary["frequency"], summary["recency"], summary["T"])
rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
ggf = GammaGammaFitter(penalizer_coef=0.001).fit(rep["frequency"], rep["monetary_value"])
clv = ggf.customer_lifetime_value(bgf, rep["frequency"], rep["recency"], rep["T"], rep["monetary_value"],
                                  time=12, discount_rate=0.01, freq="D")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "customers": len(summary), "clv_total": float(clv.sum()), "peak_mb": peak_mb()}))
"""

ANALYZE = COMMON + r"""
from pathlib import Path
paths, out = sys.argv[1].split(","), Path(sys.argv[2])
t = time.perf_counter()
import clientfolio
from clientfolio.models import paretonbd
# Time spent inside Pareto/NBD (fit, predictions), counted once however the calls nest.
pareto = {"s": 0.0, "depth": 0}
def timed(fn):
    def wrapper(*a, **k):
        pareto["depth"] += 1
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            pareto["depth"] -= 1
            if pareto["depth"] == 0:
                pareto["s"] += time.perf_counter() - t0
    return wrapper
for name in dir(paretonbd.ParetoNBD):  # inherited ones (fit) too, wrapped on this class only
    if name in ("fit", "_alive") or name.startswith(("predict", "expected", "conditional")):
        fn = getattr(paretonbd.ParetoNBD, name)
        if callable(fn):
            setattr(paretonbd.ParetoNBD, name, timed(fn))
# Time spent in each named stage function of clientfolio.pipeline (wall, CPU of all threads), outermost calls
# only: the look-back's own features count in look_back, the cut-off's in customer_features.
from clientfolio import pipeline
import clientfolio.store.audit as audit_module
by_function, depth = {}, [0]
def staged(name, fn):
    def wrapper(*a, **k):
        depth[0] += 1
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                w, c = by_function.get(name, (0.0, 0.0))
                by_function[name] = (w + time.perf_counter() - t0, c + time.process_time() - c0)
    return wrapper
for name in ("import_data", "data_span", "customer_features", "choose_model", "rule_transactions", "fit_portfolio",
             "look_back", "predictions", "save_results", "portfolio_view", "action_plan", "retention_and_texts"):
    setattr(pipeline, name, staged(name, getattr(pipeline, name)))
audit_module.audit = staged("audit", audit_module.audit)
stages, last = [], [t, "start", time.process_time()]
def progress(msg, frac):
    now, cpu = time.perf_counter(), time.process_time()
    if msg != last[1]:
        stages.append((last[1], round(now - last[0], 2), round(cpu - last[2], 2)))  # wall, CPU (all threads)
        last[:] = [now, msg, cpu]
pf = clientfolio.analyze(paths, store=str(out / "store.duckdb"), progress=progress)
t_analyze = time.perf_counter() - t
cpu_analyze = time.process_time()
peak_analyze = peak_mb()
pf.report(out / "report.html")
pf.to_file(out / "customers.csv")
total = time.perf_counter() - t
rows = pf.import_result.rows_in
print(json.dumps({"seconds": t_analyze, "cpu_s": cpu_analyze, "rows": rows, "customers": len(pf.customers),
                  "segments": len(pf.segments),
                  "stages": stages[1:], "model": pf.models["kind"],
                  "functions": {k: [round(w, 2), round(c, 2)] for k, (w, c) in by_function.items()},
                  "pareto_s": pareto["s"], "total_s": total,
                  "peak_mb": peak_analyze, "peak_total_mb": peak_mb()}))
"""

RAW = COMMON + r"""
path, memory_limit, tmp = sys.argv[1:4]
t = time.perf_counter()
import duckdb
con = duckdb.connect()
con.execute(f"SET memory_limit = '{memory_limit}'")
con.execute(f"SET temp_directory = '{tmp}'")
src = f"read_parquet('{path}')" if path.endswith(".parquet") else f"read_csv('{path}')"
tbl = con.sql(f"SELECT customer_id, count(*) AS n, min(order_date) AS first, max(order_date) AS last, "
                  f"sum(amount) AS revenue FROM {src} GROUP BY customer_id").fetch_arrow_table()
n = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "rows": n, "customers": tbl.num_rows, "peak_mb": peak_mb()}))
"""


def child(code: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run `code` in a fresh Python; its last stdout line is the JSON result (or an error)."""
    try:
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
        return {"error": f"exit {out.returncode}: {tail}"}
    for text in reversed(out.stdout.strip().splitlines()):  # the result line, whatever else was printed
        start = text.find('{"')  # DuckDB's progress bar can end without a newline, on the same line
        if start >= 0:
            return json.loads(text[start:])
    return {"error": "no result printed: " + (out.stdout.strip().splitlines() or ["(nothing)"])[-1][:200]}


def _bytes(size: str) -> int:
    """'8GB' -> bytes (0 stays 0: no cap)."""
    text = size.strip().upper().removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(float(text or 0))


def has_lifetimes() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import lifetimes"], capture_output=True)
    return probe.returncode == 0


def line(name: str, r: dict, rows: int, peer: dict | None) -> str:
    if "error" in r:
        return f"  {name:22s} failed: {r['error']}"
    ratio = ""
    if peer is not None and "error" not in peer and r is not peer:
        ratio = f"  {r['seconds'] / peer['seconds']:5.2f}x the peer's time, {r['peak_mb'] / peer['peak_mb']:5.2f}x its memory"
    return (f"  {name:22s} {r['seconds']:8.1f} s  {rows / r['seconds']:>12,.0f} rows/s  peak {r['peak_mb']:>8,.0f} MB"
            f"{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), help="a preset: orders and customers")
    ap.add_argument("--orders", type=int, default=None)
    ap.add_argument("--customers", type=int, default=None)
    ap.add_argument("--format", choices=("csv", "parquet"), default=None,
                    help="file format (default: CSV below 10M orders, Parquet from 10M)")
    ap.add_argument("--skip", action="append", default=[], choices=("lifetimes", "analyze", "duckdb", "demo"),
                    help="leave a contender out (repeatable)")
    ap.add_argument("--memory-limit", default=os.environ.get("CLIENTFOLIO_MEMORY_LIMIT", "2GB"),
                    help="DuckDB's memory limit for clientfolio and the raw aggregate (default 2GB)")
    ap.add_argument("--peer-memory", default="8GB",
                    help="address-space cap for the lifetimes recipe (default 8GB, the issue's budget; 0 = none)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the generated file (kept if given)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per contender")
    args = ap.parse_args()
    orders, customers = SIZES[args.size] if args.size else SIZES["1m"]
    orders, customers = args.orders or orders, args.customers or customers
    fmt = args.format or ("parquet" if orders >= 10_000_000 else "csv")
    env = dict(os.environ, CLIENTFOLIO_MEMORY_LIMIT=args.memory_limit)
    work = args.dir or Path(tempfile.mkdtemp(prefix="clientfolio-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = work / f"orders_{orders}.{fmt}"
        if not data.exists():
            t = time.perf_counter()
            (make_orders if fmt == "csv" else make_orders_parquet)(data, orders, customers)
            print(f"generated {orders:,} orders from {customers:,} customers ({fmt}, "
                  f"{data.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s")
        results: dict[str, dict] = {}
        if "lifetimes" not in args.skip:
            if not has_lifetimes():
                results["lifetimes"] = {"error": "lifetimes is not installed (pip install lifetimes)"}
            else:
                r = child(LIFETIMES, [str(data), str(_bytes(args.peer_memory))], env, args.timeout)
                if any(w in r.get("error", "") for w in ("MemoryError", "Unable to allocate", "Memory allocation")):
                    r = {"error": f"did not fit in {args.peer_memory} (pandas holds every order; --peer-memory)"}
                results["lifetimes"] = r
        if "analyze" not in args.skip:
            with tempfile.TemporaryDirectory(dir=work) as d:
                results["analyze"] = child(ANALYZE, [str(data), d], env, args.timeout)
        if "duckdb" not in args.skip:
            with tempfile.TemporaryDirectory(dir=work) as d:
                results["duckdb"] = child(RAW, [str(data), args.memory_limit, d], env, args.timeout)
        peer = results.get("lifetimes")
        print(f"{orders:,} orders, {customers:,} customers drawn ({fmt}); ratios against the lifetimes recipe:")
        names = {"lifetimes": "lifetimes recipe (peer)", "analyze": "clientfolio analyze",
                 "duckdb": "DuckDB raw aggregate"}
        for key, r in results.items():
            print(line(names[key], r, orders, peer))
        a = results.get("analyze", {})
        if "seconds" in a:
            rest = a["seconds"] - a["pareto_s"]
            print(f"    analyze: {a['customers']:,} customers, model {a['model']}; {a['pareto_s']:.1f} s inside "
                  f"Pareto/NBD, {rest:.1f} s the rest; with report + CSV {a['total_s']:.1f} s, peak "
                  f"{a['peak_total_mb']:,.0f} MB")
            print(f"    CPU time (all threads, with the interpreter's start and imports): {a['cpu_s']:.1f} s")
            print("    by stage (wall / CPU): " + ", ".join(f"{stage} {sec:.1f}s/{cpu:.1f}s"
                                                       for stage, sec, cpu in a["stages"]))
            print("    by stage function (wall / CPU): " + ", ".join(
                f"{name} {w:.1f}s/{c:.1f}s" for name, (w, c) in a.get("functions", {}).items()))
            d = results.get("duckdb", {})
            if "seconds" in d:
                print(f"    analyze takes {a['seconds'] / d['seconds']:.1f}x the raw aggregate's time "
                      f"({rest / d['seconds']:.1f}x without Pareto/NBD)")
        if "demo" not in args.skip and "analyze" not in args.skip:
            from clientfolio.datasets import demo_shop_paths

            p = demo_shop_paths()
            paths = [p["customers"], p["transactions"], p["events"], p["marketing_spend"]]
            with tempfile.TemporaryDirectory(dir=work) as d:
                r = child(ANALYZE, [",".join(map(str, paths)), d], env, args.timeout)
            if "error" in r:
                print(f"  demo bakery: failed: {r['error']}")
            else:
                print(f"  demo bakery: {r['customers']:,} customers, analyze {r['seconds']:.1f} s, with report+csv "
                      f"{r['total_s']:.1f} s, peak {r['peak_mb']:,.0f} MB (model {r['model']})")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
