"""What `analyze --predict` adds to analyze on the demo shop (3,600 customers, 131k order lines).

    PYTHONPATH=. python benchmarks/analyze_predict.py

Runs analyze on copies of the same imported demo store, without and with predictions, and prints
wall and CPU time of each and their ratio (the peer is the plain analyze in the same run).
Timings on a shared machine are noisy; CPU time is the steadier of the two.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    import clientfolio
    from clientfolio.datasets import demo_shop_paths
    from clientfolio.ingest import import_files
    from clientfolio.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "demo.duckdb"
        paths = demo_shop_paths()
        with open_store(base) as st:
            import_files([paths[k] for k in ("customers", "transactions", "events", "marketing_spend") if k in paths],
                         st)
        runs = {}
        for name, predict in (("analyze", False), ("analyze --predict", True)):
            copy = Path(tmp) / f"{name.replace(' ', '_')}.duckdb"
            shutil.copy(base, copy)
            w0, c0 = time.perf_counter(), time.process_time()
            pf = clientfolio.analyze(store=copy, predict=predict)
            runs[name] = (time.perf_counter() - w0, time.process_time() - c0)
            print(f"{name:18s} wall {runs[name][0]:6.1f} s  CPU {runs[name][1]:6.1f} s")
        (w1, c1), (w2, c2) = runs["analyze"], runs["analyze --predict"]
        print(f"ratio --predict / plain: wall {w2 / w1:.2f}x, CPU {c2 / c1:.2f}x")
        p = pf.predictions
        for c in ([] if isinstance(p, str) else p.comparisons):
            print(f"  {c.task}: " + "; ".join(f"{m.name} trees {m.model:.3f} BG/NBD {m.baseline:.3f}"
                                              for m in c.metrics))
            print("  " + c.sentence)


if __name__ == "__main__":
    main()
