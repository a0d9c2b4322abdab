"""Churn risk and next order at scale: time and peak memory of the time split, training and scoring,
and the boosted trees against BG/NBD on the same split.

    PYTHONPATH=. python benchmarks/predict.py [customers]   (default 100,000)

Peak memory is Python's (tracemalloc); timings on a shared machine are noisy.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from benchmarks._shop import shop_orders


def main(n_customers: int = 100_000) -> None:
    from clientfolio.predict.evaluation import predict_shop

    orders = shop_orders(4 * n_customers, n_customers).rename(columns={"order_date": "ts"})
    tracemalloc.start()
    t0 = time.perf_counter()
    result = predict_shop(orders)
    total = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    print(f"{n_customers:,} customers, {len(orders):,} orders: split + train + evaluate + score {total:.1f} s, "
          f"peak {peak:.0f} MiB, {len(result.customers):,} customers scored")
    for c in result.comparisons:
        for m in c.metrics:
            ratio = m.model / m.baseline if m.baseline else float("nan")
            print(f"  {c.task:10s} {m.name:16s} boosted trees {m.model:.3f}  BG/NBD {m.baseline:.3f}  ratio {ratio:.3f}")
        print("  " + c.sentence)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
