"""What the per-event lookup indexes (schema version 8) cost a bulk import on DuckDB.

Imports the same order file twice into fresh stores -- once with the store at schema version 7 (no
lookup indexes), once at version 8 (ART indexes on transactions.customer_id, transactions.order_id,
customers.customer_id) -- then a second, smaller file into each (the incremental import a shop runs
daily), and prints wall and CPU seconds with the ratio of the indexed store to the unindexed one.
Each variant runs in its own child process; the order of the variants alternates per repeat.

    python benchmarks/import_indexes.py FITTED.csv [LATER.csv] [--repeat 1]

(`benchmarks/update.py --keep DIR` leaves DIR/fitted.csv and DIR/held_back.csv, 1M orders at 100k customers.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(version: int, files: list[str], store: str) -> dict:
    """Import `files` one after the other into a new store at schema `version` (7 or 8)."""
    import clientfolio.store.duckdb_store as dds
    from clientfolio.store import schema
    from clientfolio.ingest.engine import import_files
    from clientfolio.store import open_store

    if version < schema.LATEST:  # the store as it was before the lookup indexes
        schema.MIGRATIONS[:] = [m for m in schema.MIGRATIONS if m[0] <= version]
        dds.LATEST = version
    out = []
    with open_store(store) as st:
        for f in files:
            t, c = time.perf_counter(), time.process_time()
            import_files([f], st)
            out.append({"file": Path(f).name, "wall": time.perf_counter() - t, "cpu": time.process_time() - c})
        n = st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0]
        v = st.schema_version()
    return {"version": v, "rows": int(n), "imports": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.files, args.child[1])))
        return
    runs: dict[int, list[dict]] = {7: [], 8: []}
    with tempfile.TemporaryDirectory(prefix="clientfolio-bench-idx-") as tmp:
        for r in range(args.repeat):
            for v in ((7, 8) if r % 2 == 0 else (8, 7)):
                store = str(Path(tmp) / f"v{v}_{r}.duckdb")
                res = subprocess.run([sys.executable, __file__, *args.files, "--child", str(v), store],
                                     capture_output=True, text=True, check=True)
                runs[v].append(json.loads(res.stdout.strip().splitlines()[-1]))
                Path(store).unlink()
    print(f"{'file':24s} {'v7 wall':>9s} {'v8 wall':>9s} {'ratio':>6s} {'v7 cpu':>8s} {'v8 cpu':>8s} {'ratio':>6s}")
    for i, f in enumerate(args.files):
        w7 = min(x["imports"][i]["wall"] for x in runs[7])
        w8 = min(x["imports"][i]["wall"] for x in runs[8])
        c7 = min(x["imports"][i]["cpu"] for x in runs[7])
        c8 = min(x["imports"][i]["cpu"] for x in runs[8])
        print(f"{Path(f).name:24s} {w7:8.1f}s {w8:8.1f}s {w8 / w7:6.2f} {c7:7.1f}s {c8:7.1f}s {c8 / c7:6.2f}")
    print(f"rows stored: {runs[8][0]['rows']:,} (version {runs[8][0]['version']}) vs {runs[7][0]['rows']:,} "
          f"(version {runs[7][0]['version']}); best of {args.repeat} run(s) each, wall and CPU (process)")


if __name__ == "__main__":
    main()
