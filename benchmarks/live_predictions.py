"""What keeping churn risk and next order current costs a live update: one order at a time on the demo shop,
with the fitted state's prediction models and without them (the same orders on two copies of one store).

    PYTHONPATH=. python benchmarks/live_predictions.py [orders]   (default 40)

Prints CPU and wall time per order for both and their ratio; timings on a shared machine are noisy.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def main(n_orders: int = 40) -> None:
    import clientfolio
    from clientfolio.datasets import demo_shop_paths
    from clientfolio.ingest import import_files
    from clientfolio.live import LivePortfolio
    from clientfolio.store import open_store

    d0 = pd.Timestamp("2024-10-31")
    tmp = Path(tempfile.mkdtemp())
    base = tmp / "base.duckdb"
    p = demo_shop_paths()
    with open_store(base) as st:
        import_files([p["customers"], p["transactions"], p["events"], p["marketing_spend"]], st)
        cut = f"CAST(DATE '{(d0 + pd.Timedelta(days=1)).date()}' AS TIMESTAMP)"
        tx = st.query(f"SELECT * FROM transactions WHERE ts >= {cut} ORDER BY ts, source, order_id, line_key")
        st.query(f"DELETE FROM transactions WHERE ts >= {cut}")
        st.query(f"DELETE FROM events WHERE ts >= {cut}")
        clientfolio.analyze(store=st, cutoff=d0, predict=True, clusters=False)
    orders = [g for _, g in tx.groupby(["source", "order_id"], sort=False)][:n_orders + 3]
    out = {}
    for name in ("with models", "without"):
        path = tmp / f"{name.replace(' ', '_')}.duckdb"
        shutil.copy(base, path)
        with open_store(path) as st:
            live = LivePortfolio(st)
            if name == "without":
                live.state.prediction_models_ = None
            else:
                live.state.prediction_models_.usable  # decoded once, as a service does on its first event
            for o in orders[:3]:  # warm-up
                live.update(o)
            cpu, wall = time.process_time(), time.perf_counter()
            for o in orders[3:]:
                live.update(o)
            out[name] = ((time.process_time() - cpu) / n_orders, (time.perf_counter() - wall) / n_orders)
        print(f"{name:12s}: {out[name][0] * 1000:7.1f} ms CPU, {out[name][1] * 1000:7.1f} ms wall per order")
    print(f"ratio with/without: CPU {out['with models'][0] / out['without'][0]:.1f}x, "
          f"wall {out['with models'][1] / out['without'][1]:.1f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
