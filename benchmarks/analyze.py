"""End-to-end `analyze` time and peak memory: the demo shop, and 1M orders from 100k customers.

Each case runs in a fresh child process (import -> models -> scores -> segments -> report),
so peak memory is that case's alone.  Target (issue 5): <= 20 s for the 1M-order case.

    python benchmarks/analyze.py            # both cases
    python benchmarks/analyze.py --orders 200000 --customers 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shop import make_orders  # benchmarks/_shop.py: the shop the benchmarks share

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import clientfolio
paths = sys.argv[1].split(",")
out = Path(sys.argv[2])
t = time.perf_counter()
stages, last = [], [t, "start"]
def progress(msg, frac):
    now = time.perf_counter()
    if msg != last[1]:
        stages.append((last[1], round(now - last[0], 2)))
        last[:] = [now, msg]
pf = clientfolio.analyze(paths, store=str(out / "store.duckdb"), progress=progress)
t_analyze = time.perf_counter() - t
pf.report(out / "report.html")
pf.to_file(out / "customers.csv")
total = time.perf_counter() - t
print(json.dumps({"customers": len(pf.customers), "segments": len(pf.segments), "analyze_s": t_analyze,
                  "stages": stages[1:], "model": pf.models["kind"],
                  "total_s": total, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(paths: list[Path]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", CHILD, ",".join(map(str, paths)), d], check=True,
                             capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=100_000)
    args = ap.parse_args()
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    cases = [("demo bakery", [p["customers"], p["transactions"], p["events"], p["marketing_spend"]])]
    with tempfile.TemporaryDirectory() as d:
        big = Path(d) / "orders.csv"
        t = time.perf_counter()
        make_orders(big, args.orders, args.customers)
        print(f"generated {args.orders:,} orders from {args.customers:,} customers in {time.perf_counter() - t:.1f}s")
        cases.append((f"{args.orders:,} orders", [big]))
        for name, paths in cases:
            r = run(paths)
            print(f"{name:18s} {r['customers']:>8,} customers  analyze {r['analyze_s']:6.1f} s  "
                  f"with report+csv {r['total_s']:6.1f} s  peak {r['peak_mb']:,.0f} MB  (model {r['model']})")
            print("    " + ", ".join(f"{stage} {sec:.1f}s" for stage, sec in r["stages"]))


if __name__ == "__main__":
    main()
