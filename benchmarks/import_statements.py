"""Where an import spends its time, statement by statement -- and against another version of the code.

Imports one generated order file (the shop of benchmarks/_shop.py, Parquet) into a new DuckDB store in
a child process that times every SQL statement the import runs (wall and process CPU) and reports the
peak resident memory.  With --against DIR (a directory holding another version's `clientfolio`
package, e.g. `git archive <commit> clientfolio | tar -x -C DIR`) the same file is imported with that
code too, the two runs alternating, and the ratios are printed.

    python benchmarks/import_statements.py --orders 3000000
    python benchmarks/import_statements.py --orders 1000000 --against /tmp/base --repeat 2

Timings on a shared machine are noisy; CPU time less so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shop import make_orders_parquet  # noqa: E402

CHILD = r"""
import json, os, resource, sys, time
from clientfolio.store.duckdb_store import DuckDBStore
from clientfolio.ingest import import_files
path, db = sys.argv[1], sys.argv[2]
recs = []
class Timed:
    def __init__(self, con): self._con = con
    def execute(self, sql, *a):
        t, c = time.perf_counter(), time.process_time()
        try:
            return self._con.execute(sql, *a)
        finally:
            recs.append((" ".join(str(sql).split())[:90], time.perf_counter() - t, time.process_time() - c))
    def __getattr__(self, n): return getattr(self._con, n)
init = DuckDBStore.__init__
def timed_init(self, p):
    init(self, p)
    self.con = Timed(self.con)
DuckDBStore.__init__ = timed_init
t, c = time.perf_counter(), time.process_time()
r = import_files([path], db)
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "stored": r.rows_stored,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "code": os.path.dirname(sys.modules["clientfolio"].__file__), "statements": recs}))
"""


def run(data: Path, code: Path | None, work: Path) -> dict:
    """One import of `data` in a child process, with the clientfolio found in `code` (default: installed)."""
    env = dict(os.environ)
    if code is not None:
        code = code.resolve()
        env["PYTHONPATH"] = str(code) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(dir=work) as d:
        # run from the scratch directory: `python -c` puts the working directory first on sys.path
        out = subprocess.run([sys.executable, "-c", CHILD, str(data), str(Path(d) / "store.duckdb")],
                             capture_output=True, text=True, env=env, cwd=d)
    if out.returncode != 0:
        sys.exit(out.stderr.strip()[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(res: dict, top: int) -> None:
    print(f"  {res['code']}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, peak RSS {res['peak_mb']:,.0f} MB, "
          f"{res['stored']:,} rows stored")
    for sql, wall, cpu in sorted(res["statements"], key=lambda r: -r[2])[:top]:
        print(f"    {wall:7.2f} {cpu:7.2f}  {sql}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=None, help="default: orders / 10")
    ap.add_argument("--dir", type=Path, default=None, help="keep the generated file here (reused if present)")
    ap.add_argument("--against", type=Path, default=None, help="a directory holding another clientfolio package")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--top", type=int, default=10, help="statements shown per run (most CPU first)")
    args = ap.parse_args()
    customers = args.customers or args.orders // 10
    work = args.dir or Path(tempfile.mkdtemp(prefix="clientfolio-import-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"orders_{args.orders}_{customers}.parquet"
    if not data.exists():
        make_orders_parquet(data, args.orders, customers)
    print(f"import of {args.orders:,} orders ({customers:,} customers drawn), wall / CPU seconds per statement:")
    mine, theirs = [], []
    for _ in range(args.repeat):
        mine.append(run(data, None, work))
        show(mine[-1], args.top)
        if args.against is not None:
            theirs.append(run(data, args.against, work))
            show(theirs[-1], args.top)
    if theirs:
        best = {k: (min(r[k] for r in mine), min(r[k] for r in theirs)) for k in ("wall", "cpu", "peak_mb")}
        print("this code / --against (best of each): " + ", ".join(
            f"{k} {a:,.1f} / {b:,.1f} = {a / b:.2f}" for k, (a, b) in best.items()))


if __name__ == "__main__":
    main()
