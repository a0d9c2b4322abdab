"""A generated demo shop: two years of a bakery-café's customers, orders and events.

DOCSTRING-PLACEHOLDER
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import _io
from ._bakery_events import make_events
from ._bakery_orders import ORDER_CHANNELS, day_weights, fill_orders, make_refunds, make_timeline
from ._bakery_people import B2B, CHANNELS, OCCASIONAL, PAID, TOURIST, TYPE_NAMES, make_population
from ._bakery_world import CATEGORY_MARGIN_RANGES, PRODUCTS, REGIONS, B2B_INDUSTRIES, build_calendar

__all__ = ["CATEGORY_MARGIN_RANGES", "DEFAULT_N_CUSTOMERS", "DEFAULT_SEED", "Simulation", "generate",
           "simulate", "write_demo_shop", "main"]

DEFAULT_SEED = 7
DEFAULT_N_CUSTOMERS = 3600
DEFAULT_START = "2023-01-01"
DEFAULT_END = "2024-12-31"
SIZES = ("micro", "small", "medium")


@dataclass(frozen=True)
class Simulation:
    """The four canonical tables and the hidden truth behind them.

    ``truth`` has one row per customer: ``customer_type`` (regular, occasional, tourist,
    b2b), the true purchase rate per week, the dropout parameter, whether the customer
    is still alive at the end, when they churned, whether they came back, and their
    latent satisfaction.  It is never written with the demo shop; it is there to check
    what the product discovers.
    """

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame


def _iso(utc: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(utc.astype("datetime64[s]"), unit="s"), "Z")


def _money(pence: np.ndarray) -> np.ndarray:
    return np.asarray(pence, dtype=np.float64) / 100.0


def _raw_tables(seed: int, n_customers: int, start: dt.date, end: dt.date
                ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cal = build_calendar(start, end)
    end_utc = int(cal.days[-1] + 1) * 86400
    w = day_weights(cal)
    pop = make_population(rng, cal, n_customers, w)
    tl = make_timeline(rng, cal, pop, w)
    orders = fill_orders(rng, cal, pop, tl)
    refunds = make_refunds(rng, pop, orders, end_utc)

    # ---- customer ids in order of first purchase: C00001.. for shoppers, W001.. for wholesale
    first_utc = np.full(pop.n, np.iinfo(np.int64).max)
    np.minimum.at(first_utc, orders.cust, orders.utc)
    ids = np.empty(pop.n, dtype=object)
    for is_b2b, prefix, width in ((False, "C", 5), (True, "W", 3)):
        who = np.flatnonzero((pop.ctype == B2B) == is_b2b)
        who = who[np.lexsort((who, first_utc[who]))]
        ids[who] = [f"{prefix}{k:0{width}d}" for k in range(1, len(who) + 1)]

    # ---- transactions
    n_orders = len(orders.cust)
    order_ids = np.array([f"O{k:07d}" for k in range(1, n_orders + 1)], dtype=object)
    lo = orders.line_order
    line_no = np.arange(len(lo)) - np.searchsorted(lo, lo) + 1
    cats = np.array([p[2] for p in PRODUCTS], dtype=object)
    pids = np.array([p[0] for p in PRODUCTS], dtype=object)
    cts = np.where(line_no == 1, _money(orders.cost_to_serve[lo]), np.nan)
    rf = refunds.order
    tx = pd.DataFrame({
        "customer_id": np.concatenate([ids[orders.cust[lo]], ids[orders.cust[rf]]]),
        "order_id": np.concatenate([order_ids[lo], np.array([f"R{o[1:]}" for o in order_ids[rf]], dtype=object)]),
        "line_no": np.concatenate([line_no, np.ones(len(rf), np.int64)]),
        "_utc": np.concatenate([orders.utc[lo], refunds.utc]),
        "amount": _money(np.concatenate([orders.line_amount, refunds.amount])),
        "quantity": np.concatenate([orders.line_qty, refunds.qty]),
        "product_id": pids[np.concatenate([orders.line_product, refunds.product])],
        "category": cats[np.concatenate([orders.line_product, refunds.product])],
        "channel": np.array(ORDER_CHANNELS, dtype=object)[np.concatenate([orders.channel[lo], orders.channel[rf]])],
        "cost": _money(np.concatenate([orders.line_cost, np.zeros(len(rf), np.int64)])),
        "discount": _money(np.concatenate([orders.line_discount, np.zeros(len(rf), np.int64)])),
        "cost_to_serve": np.concatenate([cts, np.full(len(rf), 1.50)]),  # staff time to handle it
        "currency": "GBP",
        "gift": np.concatenate([orders.line_gift, np.zeros(len(rf), bool)]),
    })
    tx = tx.sort_values(["_utc", "order_id", "line_no"], kind="mergesort").reset_index(drop=True)
    tx.insert(3, "ts", _iso(tx.pop("_utc").to_numpy()))

    # ---- customers
    acq_cost = np.where(pop.acq_cost >= 0, _money(pop.acq_cost), np.nan)
    first_seen = np.datetime_as_string(first_utc.astype("datetime64[s]"), unit="D")
    region_names = np.array([r[0] for r in REGIONS], dtype=object)
    b2b = pop.ctype == B2B
    cu = pd.DataFrame({
        "customer_id": ids,
        "first_seen": first_seen,
        "region": region_names[pop.region],
        "industry": np.where(b2b, np.array(B2B_INDUSTRIES, dtype=object)[np.maximum(pop.industry, 0)], None),
        "size": np.where(b2b, np.array(SIZES, dtype=object)[np.maximum(pop.size, 0)], None),
        "company": np.array(pop.company, dtype=object),
        "acquisition_channel": np.array(CHANNELS, dtype=object)[pop.channel],
        "acquisition_cost": acq_cost,
        "consent_marketing": pop.consent,
        "email": np.array(pop.email, dtype=object),
        "birthday_month": pd.array(np.where(pop.birthday_month > 0, pop.birthday_month, 0), dtype="Int64"),
    })
    cu.loc[pop.birthday_month == 0, "birthday_month"] = pd.NA
    cu = cu.sort_values("customer_id", kind="mergesort").reset_index(drop=True)

    # ---- events
    log = make_events(rng, cal, pop, tl, orders, refunds, w[OCCASIONAL], order_ids, end_utc)
    ec, eu, ek, ep = log.arrays()
    ok = eu < end_utc
    ev = pd.DataFrame({"customer_id": ids[ec[ok]], "_utc": eu[ok], "type": ek[ok], "properties": ep[ok]})
    ev = ev.sort_values(["_utc", "customer_id", "type", "properties"], kind="mergesort").reset_index(drop=True)
    ev.insert(1, "ts", _iso(ev.pop("_utc").to_numpy()))

    # ---- marketing spend: monthly, per paid channel (period_end inclusive)
    rows = []
    for ch in PAID:
        for (y, m), spend in zip(pop.budget_months, pop.budget[ch]):
            first = max(dt.date(y, m, 1), start)
            last = min(dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1), end)
            rows.append((ch, first.isoformat(), last.isoformat(), spend / 100.0))
    ms = pd.DataFrame(rows, columns=["channel", "period_start", "period_end", "spend"])

    # ---- truth
    alive_end = np.isinf(tl.alive[:, 1]) | np.isinf(tl.alive[:, 3])
    churn_day = np.where(np.isnan(tl.alive[:, 3]), tl.alive[:, 1], tl.alive[:, 3])
    churn_day = np.where(alive_end, np.nan, churn_day)
    churned_at = pd.to_datetime(cal.days[0] + churn_day, unit="D", utc=True).floor("s")
    tourist = pop.ctype == TOURIST  # one stay in town: no rate or dropout to speak of
    truth = pd.DataFrame({
        "customer_id": ids,
        "customer_type": np.array(TYPE_NAMES, dtype=object)[pop.ctype],
        "purchase_rate_per_week": np.where(tourist, np.nan, tl.rate),
        "dropout": np.where(tourist, np.nan, tl.dropout),
        "alive_at_end": alive_end,
        "churned_at": churned_at,
        "reactivated": ~np.isnan(tl.alive[:, 2]),
        "satisfaction": pop.z,
        "deal_seeker": pop.deal_seeker,
    }).sort_values("customer_id", kind="mergesort").reset_index(drop=True)
    return {"transactions": tx, "customers": cu, "events": ev, "marketing_spend": ms}, truth


def _check_args(seed: int, n_customers: int, start: str, end: str) -> tuple[dt.date, dt.date]:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"bakery.generate: 'seed' must be a non-negative integer; got {seed!r}")
    if not isinstance(n_customers, (int, np.integer)) or n_customers < 100:
        raise ValueError(f"bakery.generate: 'n_customers' must be an integer >= 100; got {n_customers!r}")
    try:
        s, e = dt.date.fromisoformat(str(start)), dt.date.fromisoformat(str(end))
    except ValueError:
        raise ValueError(f"bakery.generate: 'start' and 'end' must be YYYY-MM-DD dates; "
                         f"got {start!r} and {end!r}") from None
    return s, e


def csv_tables(seed: int = DEFAULT_SEED, n_customers: int = DEFAULT_N_CUSTOMERS,
               start: str = DEFAULT_START, end: str = DEFAULT_END) -> tuple[dict[str, bytes], pd.DataFrame]:
    """The four tables as canonical CSV bytes (what :func:`write_demo_shop` writes), and the truth."""
    s, e = _check_args(seed, n_customers, start, end)
    raw, truth = _raw_tables(int(seed), int(n_customers), s, e)
    return {name: _io.to_csv_bytes(raw[name]) for name in _io.TABLES}, truth


def simulate(seed: int = DEFAULT_SEED, n_customers: int = DEFAULT_N_CUSTOMERS,
             start: str = DEFAULT_START, end: str = DEFAULT_END) -> Simulation:
    """Generate the demo shop and keep the hidden truth (customer types, rates, churn)."""
    csv, truth = csv_tables(seed, n_customers, start, end)
    return Simulation({name: _io.read_table(name, data) for name, data in csv.items()}, truth)


def generate(seed: int = DEFAULT_SEED, n_customers: int = DEFAULT_N_CUSTOMERS,
             start: str = DEFAULT_START, end: str = DEFAULT_END) -> dict[str, pd.DataFrame]:
    """Generate the bakery-café demo shop.

    Parameters
    ----------
    seed
        Seed of the ``numpy.random.default_rng`` stream; the same seed gives the same data.
    n_customers
        Number of customers (about 0.7 % of them wholesale accounts, at least 2).
    start, end
        First and last day of the history (``YYYY-MM-DD``, inclusive).

    Returns
    -------
    dict
        ``transactions``, ``customers``, ``events`` and ``marketing_spend`` with the dtypes
        :func:`clientfolio.datasets.load_demo_shop` gives (they are read back from the
        canonical CSV text, so a generated frame equals the bundled one).
    """
    return simulate(seed, n_customers, start, end).tables


def write_demo_shop(out: str | Path, seed: int = DEFAULT_SEED, n_customers: int = DEFAULT_N_CUSTOMERS,
                    start: str = DEFAULT_START, end: str = DEFAULT_END, truth: bool = False) -> dict[str, Path]:
    """Write the four tables (and ``MANIFEST.json``, optionally ``truth.csv``) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, truth_df = csv_tables(seed, n_customers, start, end)
    paths: dict[str, Path] = {}
    files = {}
    for name in _io.TABLES:
        path = out / _io.FILENAMES[name]
        _io.write_table(csv[name], path)
        paths[name] = path
        files[path.name] = {"rows": csv[name].count(b"\n") - 1,
                            "sha256_of_csv": hashlib.sha256(csv[name]).hexdigest()}
    manifest = {"generator": "clientfolio.datasets.bakery", "seed": int(seed), "n_customers": int(n_customers),
                "start": str(start), "end": str(end), "files": files,
                "note": "sha256_of_csv is the hash of the uncompressed CSV text"}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if truth:
        t = truth_df.copy()
        t["churned_at"] = t["churned_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        _io.write_table(t.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode(), out / "truth.csv")
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m clientfolio.datasets.bakery --out DIR [--seed N]``."""
    parser = argparse.ArgumentParser(prog="python -m clientfolio.datasets.bakery",
                                     description="Generate the bakery-café demo shop (four CSV tables).")
    parser.add_argument("--out", required=True, help="directory to write the tables into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--n-customers", type=int, default=DEFAULT_N_CUSTOMERS,
                        help=f"number of customers (default {DEFAULT_N_CUSTOMERS})")
    parser.add_argument("--start", default=DEFAULT_START, help=f"first day (default {DEFAULT_START})")
    parser.add_argument("--end", default=DEFAULT_END, help=f"last day (default {DEFAULT_END})")
    parser.add_argument("--truth", action="store_true", help="also write truth.csv (customer types, churn)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        paths = write_demo_shop(args.out, args.seed, args.n_customers, args.start, args.end, args.truth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name:16s} {path}  {path.stat().st_size / 1024:8.1f} KiB")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
