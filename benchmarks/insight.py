"""What analyze's retention-and-texts stage adds, against analyze itself, on the same store in the same run.

The stage (clientfolio.pipeline.retention_and_texts) computes the report's retention curves (per
acquisition cohort and per segment; from at most MAX_RETENTION_CUSTOMERS customers, a seeded sample
beyond) and scores reviews and tickets (VADER, themes; at most MAX_TEXTS, sampled beyond).  It must not slow analyze of a big shop noticeably: this prints its
wall and CPU time as a share of analyze's on

- the demo bakery (131k order lines, 732 reviews and tickets), and
- the benchmark shop of benchmarks/_shop.py (default 1M orders from 100k customers) with
  `--reviews` synthetic English reviews added as events (default 50,000: more than MAX_TEXTS, so
  the sample is exercised).

    python benchmarks/insight.py                       # demo + 1M orders
    python benchmarks/insight.py --orders 200000 --customers 20000

analyze is timed with the stage switched off (the stage is then timed on its own, on the same
store and portfolio), so "analyze" below is what analyze cost before the stage existed.  Timings on
a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _shop import shop_orders  # noqa: E402

SENTENCES = ["Lovely staff and a perfect loaf, worth every penny.", "The cake was damaged when I collected it.",
             "Friendly service and great coffee, though the queue is long.", "My order was wrong and the refund "
             "took days.", "OK overall, the croissant was a bit dry.", "Best sourdough in town, always fresh."]


def timed(fn, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
    w, c = time.perf_counter(), time.process_time()
    out = fn(*a, **k)
    return out, time.perf_counter() - w, time.process_time() - c


def run(name: str, files: list[Path], tmp: Path) -> dict:
    import clientfolio
    from clientfolio import pipeline
    from clientfolio.store import open_store

    st = open_store(tmp / f"{name}.duckdb")
    real = pipeline.retention_and_texts
    pipeline.retention_and_texts = lambda st, pf: pf  # analyze as it was before the stage
    try:
        pf, a_wall, a_cpu = timed(clientfolio.analyze, files, store=st)
    finally:
        pipeline.retention_and_texts = real
    pf, s_wall, s_cpu = timed(real, st, pf)
    st.close()
    sent = pf.insight.get("sentiment")
    row = {"shop": name, "analyze_wall_s": round(a_wall, 2), "analyze_cpu_s": round(a_cpu, 2),
           "stage_wall_s": round(s_wall, 2), "stage_cpu_s": round(s_cpu, 2),
           "stage_share_wall": round(s_wall / a_wall, 3), "stage_share_cpu": round(s_cpu / a_cpu, 3),
           "texts_scored": int(sent[0]["scored"].sum()) if isinstance(sent, tuple) else 0,
           "sample": sent[2] if isinstance(sent, tuple) else None,
           "retention": [r.by for r in pf.insight["retention"]] if isinstance(pf.insight.get("retention"), list)
           else pf.insight.get("retention")}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--reviews", type=int, default=50_000)
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args()
    from clientfolio.datasets import demo_shop_paths

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_demo:
            p = demo_shop_paths()
            run("demo", [p["customers"], p["transactions"], p["events"], p["marketing_spend"]], tmp)
        orders = shop_orders(args.orders, args.customers)
        orders.to_parquet(tmp / "orders.parquet", index=False)
        rng = np.random.default_rng(1)
        pick = rng.integers(0, len(orders), args.reviews)
        ev = pd.DataFrame({"customer_id": orders["customer_id"].to_numpy()[pick],
                           "ts": pd.to_datetime(orders["order_date"].to_numpy()[pick]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "type": "review",
                           "properties": [json.dumps({"rating": int(rng.integers(1, 6)),
                                                      "text": SENTENCES[i % len(SENTENCES)]})
                                          for i in rng.integers(0, len(SENTENCES), args.reviews)]})
        ev.to_csv(tmp / "events.csv", index=False)
        del orders
        run(f"{args.orders:,} orders + {args.reviews:,} reviews", [tmp / "orders.parquet", tmp / "events.csv"], tmp)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
