"""The synthetic shop the benchmarks share: orders from customers with gamma-distributed rates over 2 years."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2023-01-01")
DAYS = 730


def shop_orders(n_orders: int, n_customers: int, seed: int = 11, every_customer: bool = False) -> pd.DataFrame:
    """Orders (order_id, customer_id, order_date, amount, category, cost) over 2 years from 2023-01-01.

    Customers have gamma-distributed purchase rates, a uniform start in the first 600 days and an
    exponential lifetime.  `every_customer`: each customer's first order is on their start day, so
    all `n_customers` are in the data (otherwise about one in eight draws no order at all).
    """
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1.0, n_customers)
    rate *= n_orders / rate.sum()
    start = rng.uniform(0, 600, n_customers)
    life = rng.exponential(400, n_customers)
    if every_customer:
        if n_orders < n_customers:
            raise ValueError(f"every_customer needs at least one order per customer: {n_orders} < {n_customers}")
        rest = rng.choice(n_customers, size=n_orders - n_customers, p=rate / rate.sum())
        cust = np.concatenate([np.arange(n_customers), rest])
        u = np.concatenate([np.zeros(n_customers), rng.uniform(0, 1, n_orders - n_customers)])
    else:
        cust = rng.choice(n_customers, size=n_orders, p=rate / rate.sum())
        u = rng.uniform(0, 1, n_orders)
    span = np.minimum(start[cust] + life[cust], DAYS) - start[cust]
    day = start[cust] + u * np.maximum(span, 1)
    ts = START + pd.to_timedelta(day * 86400, unit="s")
    cats = np.array(["coffee", "cake", "bread", "pastry", "gift"])
    amount = rng.gamma(2.0, 12.0, n_orders).round(2)
    return pd.DataFrame({"order_id": np.arange(n_orders), "customer_id": "C" + pd.Series(cust).astype(str),
                         "order_date": ts.strftime("%Y-%m-%d %H:%M:%S"), "amount": amount,
                         "category": cats[rng.integers(0, len(cats), n_orders)],
                         "cost": (amount * rng.uniform(0.3, 0.6, n_orders)).round(2)})


def make_orders(path: Path, n_orders: int, n_customers: int, seed: int = 11) -> None:
    """Write :func:`shop_orders` to a CSV file."""
    shop_orders(n_orders, n_customers, seed).to_csv(path, index=False)


def make_orders_parquet(path: Path, n_orders: int, n_customers: int, seed: int = 11,
                        chunk: int = 2_000_000) -> None:
    """The same shop as :func:`shop_orders`, written to Parquet chunk by chunk (bounded memory at any size).

    Customers (rate, start, lifetime) are drawn once; orders are drawn per chunk, so tens of
    millions of orders never sit in memory at once.  `order_date` is a timestamp column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1.0, n_customers)
    cdf = np.cumsum(rate)
    cdf /= cdf[-1]
    start = rng.uniform(0, 600, n_customers)
    life = rng.exponential(400, n_customers)
    cats = np.array(["coffee", "cake", "bread", "pastry", "gift"])
    base = START.to_datetime64().astype("datetime64[s]").astype(np.int64)
    writer = None
    try:
        for lo in range(0, n_orders, chunk):
            n = min(chunk, n_orders - lo)
            cust = np.minimum(np.searchsorted(cdf, rng.uniform(0, 1, n)), n_customers - 1)
            span = np.minimum(start[cust] + life[cust], DAYS) - start[cust]
            day = start[cust] + rng.uniform(0, 1, n) * np.maximum(span, 1)
            amount = rng.gamma(2.0, 12.0, n).round(2)
            table = pa.table({
                "order_id": pa.array(np.arange(lo, lo + n)),
                "customer_id": pa.array(np.char.add("C", cust.astype(str))),
                "order_date": pa.array((base + (day * 86400).astype(np.int64)).astype("datetime64[s]")),
                "amount": pa.array(amount),
                "category": pa.array(cats[rng.integers(0, len(cats), n)]).dictionary_encode(),
                "cost": pa.array((amount * rng.uniform(0.3, 0.6, n)).round(2)),
            })
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
