"""Import throughput on a generated order CSV, against DuckDB's own read_csv of the same file.

DuckDB's reader is the ceiling: clientfolio reads through it and then parses, checks,
deduplicates and merges every row.  Prints rows/s and peak memory (RSS) of each, measured
in separate child processes so one does not inflate the other.

    python benchmarks/ingest.py --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import json, resource, sys, time
kind, path, db = sys.argv[1:4]
t = time.perf_counter()
if kind == "duckdb":
    import duckdb
    con = duckdb.connect(db)
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}')")
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
else:
    from clientfolio.ingest import import_files
    r = import_files([path], db)
    n = r.rows_stored
    assert r.balanced
dt = time.perf_counter() - t
print(json.dumps({"rows": n, "seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_csv(path: Path, rows: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with open(path, "w") as fh:
        fh.write("order_id,customer_id,order_date,amount,product,quantity\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            df = pd.DataFrame({
                "order_id": np.arange(start, start + n),
                "customer_id": "C" + pd.Series(rng.integers(0, rows // 10, n)).astype(str),
                "order_date": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 730 * 86400, n), unit="s"))
                .strftime("%Y-%m-%d %H:%M:%S"),
                "amount": rng.gamma(2.0, 25.0, n).round(2),
                "product": "P" + pd.Series(rng.integers(0, 500, n)).astype(str),
                "quantity": rng.integers(1, 5, n),
            })
            df.to_csv(fh, header=False, index=False)


def run(kind: str, path: Path, tmp: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path), str(tmp / f"{kind}.duckdb")],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = tmp / "orders.csv"
        t = time.perf_counter()
        make_csv(path, args.rows)
        print(f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f}s")
        ceiling = run("duckdb", path, tmp)
        ours = run("clientfolio", path, tmp)
    for name, r in (("duckdb read_csv (ceiling)", ceiling), ("clientfolio import", ours)):
        print(f"{name:28s} {r['rows']:>12,} rows  {r['seconds']:7.1f} s  {r['rows'] / r['seconds']:>12,.0f} rows/s  "
              f"peak {r['peak_mb']:,.0f} MB")
    print(f"clientfolio / ceiling time ratio: {ours['seconds'] / ceiling['seconds']:.1f}x")


if __name__ == "__main__":
    main()
