"""The living portfolio's cost: one order at a time, a batch, a daily sweep -- each against a full re-analyze.

A synthetic shop (benchmarks/_shop.py, every customer with at least one order, 10 orders per
customer on average over 2 years) is fitted with ``clientfolio.analyze(paths, store=...)`` on
everything but its last `--holdback-days` (28) days; those orders are held back and replayed.
Each case runs in a fresh child process on its own copy of the fitted DuckDB store, so peak
memory (RSS) is that case's alone:

- events:    `--events` (300) orders, one ``LivePortfolio.update(one_order)`` each, in time order;
             latency p50/p99/max, split into store reads, the ``commit_live`` transaction and the
             rest (computing: statistics, features, applying the state, reasons).  The first
             update of the process is reported apart (imports, caches).
- buffered:  the same `--events` orders through ``LivePortfolio(store, buffered=True)``: each
             ``update(one_order, durable=False)`` computed from the in-memory copy (the apply latency,
             wall and CPU), a ``flush()`` (ONE transaction) every `--flush-every` (50) orders, whose cost is
             reported per event; the copy's bulk read is reported apart.  Ratios against `events`.
- batch:     `--batch` (10,000) held-back orders in ONE ``update``.
- sweep:     the first ``LivePortfolio.sweep`` after analyze (it works out every customer's next change
             date from their rows and applies only those due), then the daily sweep of the day after:
             the customers due, of all customers.  Wall and CPU time (the machine may be shared).
- reanalyze: ``clientfolio.analyze`` of the same data (fitted part + held-back orders) into a new store.
- refit:     ``clientfolio.analyze(held_back_file, store=fitted_store)``: what re-running analyze on the
             kept store does (imports the file, applies it, refits, records the refit's moves).

Targets (issue 9): per-event p99 <= 2 ms; a daily sweep of 1M customers <= 5 s.  Peak memory is
each child's own (VmHWM on Linux).  Needs only the README install.

    python benchmarks/update.py                        # 100k customers, 1M orders (about 20 minutes)
    python benchmarks/update.py --customers 1000000 --cases events,batch,sweep
                                                       # 1M customers, 10M orders; the fit alone takes ~13 minutes
                                                       # and 10 GB, so the first analyze stands in for a re-analyze
    python benchmarks/update.py --quick                # 10k customers: a smoke run in about two minutes
    python benchmarks/update.py --cases events,sweep --profile sweep   # cProfile of one case's measured call
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
from typing import Any

import numpy as np
import pandas as pd

from _shop import DAYS, START, shop_orders  # benchmarks/_shop.py: the shop the benchmarks share

CASES = ("events", "buffered", "batch", "sweep", "reanalyze", "refit")
TARGET_EVENT_P99_MS = 2.0
TARGET_SWEEP_S = 5.0


# ---------------------------------------------------------------------------- child side

class Clock:
    """Time spent inside chosen store methods (outermost call only), by label."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.depth = 0

    def wrap(self, obj: Any, name: str, label: str) -> None:
        fn = getattr(obj, name, None)
        if fn is None:  # an older store without this method
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - t

        setattr(obj, name, timed)

    def take(self) -> dict[str, float]:
        out, self.spent = self.spent, {}
        return out


def live_orders(df: pd.DataFrame) -> pd.DataFrame:
    """Shop rows as `LivePortfolio.update` takes them."""
    return df.rename(columns={"order_date": "ts"})


def peak_mb() -> float:
    """This process's peak RSS in MB.

    Linux's VmHWM where there is one: ``getrusage`` keeps the parent's peak across a vfork+exec
    (how Python starts children), so a child that stays below it would report the parent's.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measured(profile: bool, fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """fn(*args, **kwargs) and its wall time; under cProfile (top 30 by cumulative time to stderr) if asked."""
    if not profile:
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        return out, time.perf_counter() - t
    import cProfile
    import pstats

    prof = cProfile.Profile()
    t = time.perf_counter()
    out = prof.runcall(fn, *args, **kwargs)
    dt = time.perf_counter() - t
    pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    return out, dt


def buffered_child(st: Any, orders: pd.DataFrame, flush_every: int) -> dict:
    """One order at a time through a buffered LivePortfolio; a flush every `flush_every` orders."""
    from clientfolio.live import LivePortfolio

    t, c = time.perf_counter(), time.process_time()
    live = LivePortfolio(st, buffered=True, flush_every=10 ** 9)
    live._memory.load()
    out: dict[str, Any] = {"load_s": time.perf_counter() - t, "load_cpu_s": time.process_time() - c}
    total, cpu, flush, flush_cpu, changes, durable = [], [], [], [], 0, 0
    results = []
    for i in range(len(orders)):
        one = orders.iloc[[i]]
        t, c = time.perf_counter(), time.process_time()
        r = live.update(one, durable=False)
        total.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        results.append(r)
        if (i + 1) % flush_every == 0 or i == len(orders) - 1:
            t, c = time.perf_counter(), time.process_time()
            live.flush()
            flush.append(time.perf_counter() - t)
            flush_cpu.append(time.process_time() - c)
    changes = sum(len(r.changes) for r in results)
    durable = sum(r.durable for r in results)
    out.update({"total_ms": [x * 1000 for x in total], "cpu_ms": [x * 1000 for x in cpu],
                "flush_ms": [x * 1000 for x in flush], "flush_cpu_ms": [x * 1000 for x in flush_cpu],
                "flush_every": flush_every, "changes": changes, "durable": durable,
                "fallbacks": live._memory.fallbacks, "redone": live._memory.redone})
    return out


def child(case: str, work: Path, store: Path, n: int, profile: bool, flush_every: int = 50) -> dict:
    """Run one case on `store` (a copy of the fitted store) and return what it measured."""
    import clientfolio
    from clientfolio.live import LivePortfolio
    from clientfolio.store import open_store

    if case == "reanalyze":
        t = time.perf_counter()
        clientfolio.analyze([work / "fitted.csv", work / "held_back.csv"], store=str(store))
        return {"seconds": time.perf_counter() - t, "peak_mb": peak_mb()}
    if case == "refit":
        t = time.perf_counter()
        clientfolio.analyze([work / "held_back.csv"], store=str(store))
        return {"seconds": time.perf_counter() - t, "peak_mb": peak_mb()}

    held = pd.read_csv(work / "held_back.csv", dtype={"customer_id": str})
    with open_store(str(store)) as st:
        t = time.perf_counter()
        live = LivePortfolio(st)
        opened = time.perf_counter() - t
        clock = Clock()
        clock.wrap(st, "commit_live", "commit")
        clock.wrap(st, "query", "reads")
        clock.wrap(st, "fetch", "reads")
        clock.wrap(st, "read_customer_state", "reads")
        out: dict[str, Any] = {"open_s": opened}
        if case == "buffered":
            out.update(buffered_child(st, live_orders(held.iloc[:n]), flush_every))
        elif case == "events":
            orders = live_orders(held.iloc[:n])
            total, cpu, commit, reads, changes, rescanned = [], [], [], [], 0, 0
            for i in range(len(orders)):
                one = orders.iloc[[i]]
                t, c = time.perf_counter(), time.process_time()
                r = live.update(one)
                total.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                spent = clock.take()
                commit.append(spent.get("commit", 0.0))
                reads.append(spent.get("reads", 0.0))
                changes += len(r.changes)
                rescanned += r.rescanned
            out.update({"total_ms": [x * 1000 for x in total], "cpu_ms": [x * 1000 for x in cpu],
                        "commit_ms": [x * 1000 for x in commit],
                        "reads_ms": [x * 1000 for x in reads], "changes": changes, "rescanned": rescanned})
        elif case == "batch":
            orders = live_orders(held.iloc[:n])
            r, dt = measured(profile, live.update, orders)
            spent = clock.take()
            out.update({"seconds": dt, "orders": len(orders), "customers_touched": r.customers_touched,
                        "changes": len(r.changes), "rescanned": r.rescanned, **spent})
        elif case == "sweep":
            # The first sweep after analyze works out every customer's next change date (analyze leaves
            # them to it); the daily sweep measured is the one after it.
            first_day = pd.Timestamp(live.state.cutoff_).normalize() + pd.Timedelta(days=1)
            t0, c0 = time.perf_counter(), time.process_time()
            first = live.sweep(first_day)
            out.update({"first_seconds": time.perf_counter() - t0, "first_cpu": time.process_time() - c0,
                        "first_touched": first.customers_touched, "first_changes": len(first.changes)})
            day = first_day + pd.Timedelta(days=1)
            counts = st.query("SELECT count(*) AS total, count(*) FILTER (WHERE next_change <= ? OR "
                              "(next_change IS NULL AND stat_n_days > 0)) AS due FROM customer_state",
                              [day.to_pydatetime()])
            clock.take()
            c0 = time.process_time()
            r, dt = measured(profile, live.sweep, day)
            spent = clock.take()
            out.update({"seconds": dt, "cpu": time.process_time() - c0, "day": day.date().isoformat(), "customers": int(counts["total"].iloc[0]),
                        "due": int(counts["due"].iloc[0]), "touched": r.customers_touched,
                        "changes": len(r.changes), **spent})
        else:
            raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
    out["peak_mb"] = peak_mb()
    return out


def fit_child(work: Path, store: Path, cutoff: str) -> dict:
    """The first analyze, which the cases start from."""
    import clientfolio
    from clientfolio.store import open_store

    t = time.perf_counter()
    clientfolio.analyze([work / "fitted.csv"], store=str(store), cutoff=cutoff)
    dt = time.perf_counter() - t
    with open_store(str(store)) as st:
        n = int(st.query("SELECT count(*) AS n FROM customer_state")["n"].iloc[0])
    return {"seconds": dt, "customers": n, "peak_mb": peak_mb()}


# ---------------------------------------------------------------------------- parent side

def run_child(args: list[str], profile: bool = False) -> dict:
    """This file in a fresh process; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if profile or out.returncode:
        sys.stderr.write(out.stderr)
    if out.returncode:
        raise SystemExit(f"the {args[0]} case failed (exit {out.returncode}); its error is above")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=None, help="customers in the shop (default 100,000)")
    ap.add_argument("--orders", type=int, default=None, help="orders over 2 years (default 10 per customer)")
    ap.add_argument("--events", type=int, default=None, help="single orders applied one at a time (default 300)")
    ap.add_argument("--batch", type=int, default=None, help="orders applied as one batch (default 10,000)")
    ap.add_argument("--holdback-days", type=int, default=28, help="last days held back to replay (default 28)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--profile", default="", help="cProfile this case's measured call (batch or sweep)")
    ap.add_argument("--quick", action="store_true", help="defaults of 10k customers, 100 events, a batch of 2,000")
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated files and stores in this folder")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: start from the shop and fitted store a previous run kept there (same sizes)")
    ap.add_argument("--flush-every", type=int, default=50, help="buffered case: orders per flush (default 50)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        kind, work, store, *rest = args.child
        if kind == "fit":
            r = fit_child(Path(work), Path(store), rest[0])
        else:
            r = child(kind, Path(work), Path(store), int(rest[0]), rest[1] == "1", int(rest[2]))
        print(json.dumps(r))
        return

    quick = args.quick
    args.customers = args.customers or (10_000 if quick else 100_000)
    args.events = args.events or (100 if quick else 300)
    args.batch = args.batch or (2_000 if quick else 10_000)
    n_orders = args.orders or 10 * args.customers
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"--cases: unknown {', '.join(unknown)}; choose from {', '.join(CASES)}")

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="clientfolio-bench-update-")
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        bench(args, work, n_orders, cases)
    finally:
        if tmp is not None:
            tmp.cleanup()


def bench(args: argparse.Namespace, work: Path, n_orders: int, cases: list[str]) -> None:
    """Generate, fit once, run each case on a copy of the fitted store, print the table."""
    fitted = work / "fitted.duckdb"
    if args.reuse and (work / "fit.json").exists() and fitted.exists():
        fit = json.loads((work / "fit.json").read_text())
        print(f"reusing the fitted store in {work} ({fit['customers']:,} customers; analyze took "
              f"{fit['seconds']:.1f} s then)", flush=True)
        run_cases(args, work, fitted, fit, cases)
        return
    t = time.perf_counter()
    shop = shop_orders(n_orders, args.customers, every_customer=True)
    cut = START + pd.Timedelta(days=DAYS - args.holdback_days)  # first held-back day
    late = shop["order_date"] >= cut.strftime("%Y-%m-%d")
    shop[~late].to_csv(work / "fitted.csv", index=False)
    held = shop[late].sort_values(["order_date", "order_id"])
    held.to_csv(work / "held_back.csv", index=False)
    n_held, n_fit, last = len(held), int((~late).sum()), held["order_date"].max()
    del shop, held
    cutoff = (cut - pd.Timedelta(days=1)).date().isoformat()
    print(f"generated {n_orders:,} orders from {args.customers:,} customers in {time.perf_counter() - t:.1f}s: "
          f"{n_fit:,} up to {cutoff} fitted, {n_held:,} held back (to {last[:10]})", flush=True)
    if args.events > n_held or args.batch > n_held:
        raise SystemExit(f"only {n_held:,} orders are held back: lower --events/--batch or raise --holdback-days")

    fit = run_child(["fit", str(work), str(fitted), cutoff])
    (work / "fit.json").write_text(json.dumps(fit))
    print(f"analyze (fit at {cutoff}): {fit['customers']:,} customers in the store, {fit['seconds']:.1f} s, "
          f"peak {fit['peak_mb']:,.0f} MB", flush=True)
    run_cases(args, work, fitted, fit, cases)


def run_cases(args: argparse.Namespace, work: Path, fitted: Path, fit: dict, cases: list[str]) -> None:
    """Each case on its own copy of the fitted store, then the table."""
    results: dict[str, dict] = {}
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for case in cases:
        store = work / f"{case}.duckdb"
        if case != "reanalyze":
            shutil.copyfile(fitted, store)
        n = {"events": args.events, "buffered": args.events, "batch": args.batch}.get(case, 0)
        results[case] = run_child([case, str(work), str(store), str(n), "1" if args.profile == case else "0",
                                   str(args.flush_every)],
                                  profile=args.profile == case)
        store.unlink(missing_ok=True)
        print(f"  {case}: done, peak {results[case]['peak_mb']:,.0f} MB", flush=True)
    load = (load_start, os.getloadavg()[0]) if load_start is not None else None
    (work / "results.json").write_text(json.dumps({"fit": fit, "results": results, "load": load}))
    report(results, fit, load)


def report(results: dict[str, dict], fit: dict, load: tuple[float, float] | None = None) -> None:
    """The table, the ratios to a full re-analyze, and the targets."""
    n = fit["customers"]
    if "reanalyze" in results:
        full, ref = results["reanalyze"]["seconds"], "re-analyze"
    else:  # not run: the first analyze, of all but the held-back orders, stands in for it
        full, ref = fit["seconds"], "first analyze"
    rows: list[tuple[str, str, str, str]] = []  # case, time, detail, peak

    def vs_full(seconds: float) -> str:
        return f" = {seconds / full:.3f}x {ref}"

    if "events" in results:
        r = results["events"]
        tot, com, rd = r["total_ms"][1:], r["commit_ms"][1:], r["reads_ms"][1:]
        comp = [a - b - c for a, b, c in zip(tot, com, rd)]
        cpu = r.get("cpu_ms", [float("nan")] * len(r["total_ms"]))[1:]
        rows.append((f"1 order per update (x{len(tot)})",
                     f"p50 {pct(tot, 50):.1f} ms, p99 {pct(tot, 99):.1f} ms, max {max(tot):.1f} ms",
                     f"p50 split: compute {pct(comp, 50):.1f} + reads {pct(rd, 50):.1f} + commit "
                     f"{pct(com, 50):.1f} ms (p99: {pct(comp, 99):.1f} / {pct(rd, 99):.1f} / {pct(com, 99):.1f}); "
                     f"CPU p50 {pct(cpu, 50):.1f} ms, p99 {pct(cpu, 99):.1f} ms; first update "
                     f"{r['total_ms'][0]:.0f} ms; {r['changes']} moves",
                     f"{r['peak_mb']:,.0f} MB"))
    if "buffered" in results:
        r = results["buffered"]
        tot, cpu = r["total_ms"][1:], r["cpu_ms"][1:]
        per = sum(r["flush_ms"]) / len(r["total_ms"])
        per_cpu = sum(r["flush_cpu_ms"]) / len(r["total_ms"])
        rows.append((f"1 order per update, buffered (x{len(tot)})",
                     f"p50 {pct(tot, 50):.1f} ms, p99 {pct(tot, 99):.1f} ms, max {max(tot):.1f} ms",
                     f"CPU p50 {pct(cpu, 50):.1f} ms, p99 {pct(cpu, 99):.1f} ms; flush every {r['flush_every']} "
                     f"orders: {per:.2f} ms per event (CPU {per_cpu:.2f}); in-memory copy read in "
                     f"{r['load_s']:.1f} s (CPU {r['load_cpu_s']:.1f}); {r['changes']} moves, "
                     f"{r['fallbacks']} unbuffered, {r['durable']} durable", f"{r['peak_mb']:,.0f} MB"))
    if "batch" in results:
        r = results["batch"]
        rows.append((f"{r['orders']:,} orders in 1 update", f"{r['seconds']:.2f} s{vs_full(r['seconds'])}",
                     f"{r['customers_touched']:,} customers, {r['changes']:,} moves; reads {r.get('reads', 0):.2f} s, "
                     f"commit {r.get('commit', 0):.2f} s, compute "
                     f"{r['seconds'] - r.get('reads', 0) - r.get('commit', 0):.2f} s", f"{r['peak_mb']:,.0f} MB"))
    if "sweep" in results:
        r = results["sweep"]
        rows.append(("first sweep after analyze", f"{r['first_seconds']:.2f} s{vs_full(r['first_seconds'])}",
                     f"CPU {r.get('first_cpu', float('nan')):.2f} s; {r['first_touched']:,} customers applied, "
                     f"{r.get('first_changes', 0):,} moves; every next change date worked out", ""))
        rows.append((f"daily sweep ({r['day']})", f"{r['seconds']:.2f} s{vs_full(r['seconds'])}",
                     f"CPU {r.get('cpu', float('nan')):.2f} s; {r['due']:,} of {r['customers']:,} customers due, "
                     f"{r['changes']:,} moves; reads "
                     f"{r.get('reads', 0):.2f} s, commit {r.get('commit', 0):.2f} s, compute "
                     f"{r['seconds'] - r.get('reads', 0) - r.get('commit', 0):.2f} s", f"{r['peak_mb']:,.0f} MB"))
    if "reanalyze" in results:
        r = results["reanalyze"]
        rows.append(("re-analyze, new store", f"{r['seconds']:.1f} s", "analyze(fitted + held back files)",
                     f"{r['peak_mb']:,.0f} MB"))
    if "refit" in results:
        r = results["refit"]
        rows.append(("re-analyze the kept store", f"{r['seconds']:.1f} s{vs_full(r['seconds'])}",
                     "analyze(held back file, store=fitted): import, catch up, refit", f"{r['peak_mb']:,.0f} MB"))
    rows.append(("first analyze (the fit)", f"{fit['seconds']:.1f} s", f"{n:,} customers", f"{fit['peak_mb']:,.0f} MB"))

    print(f"\nliving portfolio, {n:,} customers in the store (DuckDB)\n")
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    head = ("case", "time", "detail", "peak RSS")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)))

    print("\ntargets")
    # Wall time counts the waits of a shared machine; CPU time is what the update itself costs.  Both are shown,
    # with the load the machine had while the cases ran.
    if load:
        print(f"  (load average while the cases ran: {load[0]:.1f} at the start, {load[1]:.1f} at the end, "
              f"{os.cpu_count()} CPUs: wall times above CPU times are waits for a CPU)")
    if "events" in results:
        p99 = pct(results["events"]["total_ms"][1:], 99)
        cpu99 = pct(results["events"]["cpu_ms"][1:], 99)
        print(f"  per-event p99 <= {TARGET_EVENT_P99_MS:g} ms: wall {p99:.1f} ms  {verdict(p99 <= TARGET_EVENT_P99_MS)}; "
              f"CPU {cpu99:.1f} ms  {verdict(cpu99 <= TARGET_EVENT_P99_MS)}")
    if "buffered" in results:
        p99 = pct(results["buffered"]["total_ms"][1:], 99)
        cpu99 = pct(results["buffered"]["cpu_ms"][1:], 99)
        print(f"  per-event p99 <= {TARGET_EVENT_P99_MS:g} ms, buffered (apply, flush apart): wall {p99:.1f} ms  "
              f"{verdict(p99 <= TARGET_EVENT_P99_MS)}; CPU {cpu99:.1f} ms  {verdict(cpu99 <= TARGET_EVENT_P99_MS)}")
    if "sweep" in results:
        s = results["sweep"]["seconds"]
        if n >= 1_000_000:
            print(f"  daily sweep of {n:,} customers <= {TARGET_SWEEP_S:g} s: {s:.1f} s  {verdict(s <= TARGET_SWEEP_S)}")
        else:
            print(f"  daily sweep <= {TARGET_SWEEP_S:g} s is set for 1M customers; this store has {n:,} "
                  f"({s:.1f} s here; run with --customers 1000000)")
    print(f"\nagainst the {ref} ({full:.1f} s)")
    if "batch" in results:
        b = results["batch"]
        print(f"  batch of {b['orders']:,} orders: {b['seconds']:.1f} s = {b['seconds'] / full:.2f}x")
    if "sweep" in results:
        print(f"  daily sweep: {results['sweep']['seconds']:.1f} s = {results['sweep']['seconds'] / full:.2f}x")
    if "events" in results:
        p50 = pct(results["events"]["total_ms"][1:], 50)
        print(f"  one order: {p50:.1f} ms at p50; the {ref} costs as much as {full * 1000 / p50:,.0f} single updates")
    if "buffered" in results and "events" in results:
        b, e = results["buffered"], results["events"]
        for q in (50, 99):
            print(f"  buffered / unbuffered per order, p{q}: wall {pct(b['total_ms'][1:], q) / pct(e['total_ms'][1:], q):.2f}x, "
                  f"CPU {pct(b['cpu_ms'][1:], q) / pct(e['cpu_ms'][1:], q):.2f}x")
        per = (sum(b["total_ms"]) + sum(b["flush_ms"])) / len(b["total_ms"])
        per_cpu = (sum(b["cpu_ms"]) + sum(b["flush_cpu_ms"])) / len(b["total_ms"])
        print(f"  per order with its share of the flushes: {per:.1f} ms (CPU {per_cpu:.1f}) buffered against "
              f"{sum(e['total_ms']) / len(e['total_ms']):.1f} ms (CPU {sum(e['cpu_ms']) / len(e['cpu_ms']):.1f}) "
              f"unbuffered")
    if "refit" in results:
        print(f"  re-analyze of the kept store: {results['refit']['seconds']:.1f} s = "
              f"{results['refit']['seconds'] / full:.2f}x")

if __name__ == "__main__":
    main()
