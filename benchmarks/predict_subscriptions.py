"""Subscribers' churn (cancellation) on the generated subscription shop: boosted trees against the
renewal model (sBG) on the shop's time split, the renewal model's parameters against the truth, and
the time it takes.

    PYTHONPATH=. python benchmarks/predict_subscriptions.py [customers ...]   (default 1,500 3,000 6,000)

The shop (``clientfolio.datasets.subscriptions.subscription_shop``) is made with alpha 0.9 and beta
5.0, plus support tickets that make a cancellation four times as likely in that period (a signal
only the trees can see) and restarts; sBG's fit on it is therefore only near the truth.  Timings on
a shared machine are noisy.
"""

from __future__ import annotations

import sys
import time


def main(sizes: list[int]) -> None:
    from clientfolio.datasets.subscriptions import subscription_shop
    from clientfolio.predict.evaluation import predict_shop

    for n in sizes:
        shop = subscription_shop(n)
        t0, c0 = time.perf_counter(), time.process_time()
        result = predict_shop(shop)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        c = result.subscriptions
        sbg = result.models.subscriptions.sbg.params_ if result.models.subscriptions is not None else {}
        print(f"{n:,} customers ({len(shop['transactions']):,} orders, {len(shop['events']):,} events): "
              f"predict_shop {wall:.1f} s wall / {cpu:.1f} s CPU; sBG alpha {sbg.get('alpha', float('nan')):.3f}, "
              f"beta {sbg.get('beta', float('nan')):.3f} (made with 0.9, 5.0)")
        if c is None:
            print("  no subscription comparison: " + "; ".join(result.notes))
            continue
        print(f"  {c.task}: N = {c.horizon_days} days, test from {c.cutoff}, {c.n_test:,} active subscribers")
        for m in c.metrics:
            print(f"  {m.name:16s} boosted trees {m.model:.3f}  sBG {m.baseline:.3f}  ratio "
                  f"{m.model / m.baseline if m.baseline else float('nan'):.3f}")
        print("  " + c.sentence)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_500, 3_000, 6_000])
