"""Where `clientfolio analyze` spends time and memory, stage by stage, at one size -- to see what scales.

Runs analyze in a fresh child process on a generated Parquet file (the shop of benchmarks/_shop.py)
and prints, for each stage and the big steps inside it, wall time, CPU time (all threads) and the
peak resident memory while it ran (a thread samples /proc/self/status every 20 ms), plus the
growth of resident memory over the stage.  Run it at two sizes and compare: a stage whose time or
peak grows faster than the orders is the one to fix before 10M / 50M.

    python benchmarks/analyze_stages.py --orders 1000000 --customers 100000
    python benchmarks/analyze_stages.py --orders 3000000 --customers 300000 --json out.json

Timings on a shared machine are noisy; CPU time less so.  Memory figures are the process's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shop import make_orders_parquet  # noqa: E402

CHILD = r"""
import json, resource, sys, threading, time
path, out = sys.argv[1], sys.argv[2]

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

stacks, records = {}, []  # a stack of open stages per thread (analyze reads ahead on a second one)
lock = threading.Lock()
def sampler():
    while True:
        r = rss_mb()
        with lock:
            for stack in stacks.values():
                for frame in stack:
                    if r > frame["peak"]:
                        frame["peak"] = r
        time.sleep(0.02)
threading.Thread(target=sampler, daemon=True).start()

def timed(name, fn):
    def wrapper(*a, **k):
        main = threading.current_thread() is threading.main_thread()
        with lock:
            stack = stacks.setdefault(threading.get_ident(), [])
        # a read-ahead thread's stages are marked "[ahead]", one level below analyze; their CPU time is the
        # process's (all threads) while they ran, so it overlaps the main thread's
        names = [f["name"] for f in stack] if main else ["analyze", "[ahead]"] + [f["name"] for f in stack]
        label = name if main else "[ahead] " + name
        frame = {"name": name, "label": label, "depth": len(names) - (0 if main else 1),
                 "path": "/".join(names + [name]),
                 "t": time.perf_counter(), "cpu": time.process_time(),
                 "rss0": rss_mb()}
        frame["peak"] = frame["rss0"]
        with lock:
            stack.append(frame)
        try:
            return fn(*a, **k)
        finally:
            end = rss_mb()
            with lock:
                stack.remove(frame)
            records.append({"stage": frame["label"], "depth": frame["depth"], "path": frame["path"], "wall": time.perf_counter() - frame["t"],
                            "cpu": time.process_time() - frame["cpu"], "rss_start": frame["rss0"],
                            "rss_end": end, "peak": max(frame["peak"], end), "order": frame["t"]})
    return wrapper

t0 = time.perf_counter()
import clientfolio
import clientfolio.pipeline as P
import clientfolio.ingest as ingest
import clientfolio.store.audit as audit_mod
import clientfolio.live.portfolio as live
import clientfolio.state as state_mod
import clientfolio.actions.plan as plan
import clientfolio.actions.fairness as fairness
import clientfolio.actions.acquisition as acquisition
import clientfolio.actions.budget as budget
from clientfolio.segments import history, portfolio
from clientfolio.state.fitted import PortfolioState
from clientfolio.store.duckdb_store import DuckDBStore
for mod, names in [(P, ["import_data", "data_span", "customer_features", "choose_model", "fit_portfolio",
                        "look_back", "save_results", "portfolio_view", "action_plan", "retention_and_texts",
                        "rule_transactions", "data_fingerprint", "predictions"]),
                   (ingest, ["import_files"]), (audit_mod, ["audit"]), (live, ["start", "customer_stats", "state_rows"]),
                   (plan, ["plan_actions", "reach_from_store"]), (fairness, ["fairness_audit"]),
                   (acquisition, ["ideal_customer_profile"]), (budget, ["retention_vs_acquisition"]),
                   (history, ["segment_kpis", "markov_forecast"]),
                   (portfolio, ["concentration", "divestment_candidates"]), (P, ["clv_to_cac_by_segment"])]:
    for n in names:
        if hasattr(mod, n):
            setattr(mod, n, timed(n, getattr(mod, n)))
import concurrent.futures
# the main thread's waits on futures: what analyze reads ahead on its second connection (~0 when ready), and the
# thread pools of the models' own likelihoods (inside fit_apply)
_plain_result = concurrent.futures.Future.result
_timed_result = timed("(wait for a future)", _plain_result)
def _result(self, timeout=None):
    if threading.current_thread() is threading.main_thread():
        return _timed_result(self, timeout)
    return _plain_result(self, timeout)
concurrent.futures.Future.result = _result
for cls, names in [(PortfolioState, ["fit", "apply", "fit_apply"]),
                   (DuckDBStore, ["replace_customer_state", "save_memberships", "save_state", "query",
                                  "commit_live", "apply_import"])]:
    for n in names:
        if hasattr(cls, n):
            setattr(cls, n, timed(f"{cls.__name__}.{n}", getattr(cls, n)))
t = time.perf_counter()
cpu = time.process_time()
rss_before = rss_mb()
pf = timed("analyze", clientfolio.analyze)(path, store=out + "/store.duckdb")
wall = time.perf_counter() - t
print(json.dumps({"rss_before_mb": rss_before, "wall": wall, "cpu": time.process_time() - cpu, "peak_mb":
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "customers": len(pf.customers),
                  "segments": len(pf.segments), "model": pf.models["kind"], "records": records}))
"""


def summarise(records: list[dict]) -> list[dict]:
    """Calls of the same stage under the same callers added up (store.query is called many times)."""
    out: dict[str, dict] = {}
    for r in sorted(records, key=lambda r: r["order"]):
        key = r["path"]
        if key not in out:
            out[key] = dict(r, calls=0, wall=0.0, cpu=0.0, growth=0.0)
        s = out[key]
        s["calls"] += 1
        s["wall"] += r["wall"]
        s["cpu"] += r["cpu"]
        s["peak"] = max(s["peak"], r["peak"])
        s["growth"] = max(s["growth"], r["peak"] - r["rss_start"])
    return list(out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=None, help="default: orders / 10")
    ap.add_argument("--dir", type=Path, default=None, help="keep the generated file here (reused if present)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()
    customers = args.customers or args.orders // 10
    work = args.dir or Path(tempfile.mkdtemp(prefix="clientfolio-stages-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"orders_{args.orders}_{customers}.parquet"
    if not data.exists():
        make_orders_parquet(data, args.orders, customers)
    with tempfile.TemporaryDirectory(dir=work) as d:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(data), d], capture_output=True, text=True,
                             timeout=args.timeout, env=dict(os.environ))
    if out.returncode != 0:
        sys.exit(f"analyze failed after {time.perf_counter() - t:.0f} s: {out.stderr.strip()[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if args.json:
        args.json.write_text(json.dumps(res))
    print(f"{args.orders:,} orders, {res['customers']:,} customers, model {res['model']}: analyze "
          f"{res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, peak RSS {res['peak_mb']:,.0f} MB "
          f"({args.orders / res['wall']:,.0f} orders/s); resident before analyze (imports) {res['rss_before_mb']:,.0f} MB")
    print(f"  {'stage':42s} {'calls':>5s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s} {'growth MB':>9s}")
    for s in summarise(res["records"]):
        name = "  " * s["depth"] + s["stage"]
        print(f"  {name:42s} {s['calls']:5d} {s['wall']:8.1f} {s['cpu']:8.1f} {s['peak']:8,.0f} {s['growth']:9,.0f}")


if __name__ == "__main__":
    main()
