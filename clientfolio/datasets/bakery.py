"""A generated demo shop: two years of a bakery-café's customers, orders and events.

The shop is a bakery-café in a fictional English market town (prices in GBP, local
time Europe/London, timestamps written in UTC).  It sells over the counter, through a
click & collect web shop, and wholesale to cafés, restaurants and hotels.  Its loyalty
app launched on the first day of the history, so every customer is identified and
first seen inside the window.  Everything below is drawn from ``numpy.random.default_rng(seed)``
in a fixed order, so one seed always gives the same tables.  Default: seed 7,
3,600 customers, 2023-01-01 to 2024-12-31 (about 131,000 order lines).

Customers (the type is hidden; :func:`simulate` returns it as ``truth``)
    * wholesale accounts ``W001..``: 0.7 % of customers (at least 2; 25 by default).
      Of the rest: 20 % regulars, 39 % occasional buyers, 41 % tourists, ids ``C00001..``
      in order of first purchase.
    * Latent satisfaction z ~ N(0, 1) per customer: lowers dropout, raises ratings and
      NPS, lowers complaints.

Acquisition (the day of the first purchase)
    * Regulars: 40 % are existing regulars enrolling in the app in the first 8 weeks;
      the others, occasional buyers and tourists arrive in proportion to their type's
      day profile (below) times a growth trend 1 + 0.4 t/T (word of mouth) - so many
      occasional buyers first come at Christmas and tourists in summer.
      Wholesale: 35 % existing accounts in the first 30 days, the rest on weekdays.
    * Channel mix by type (walk_in, referral, google_maps, instagram, google_ads,
      local_flyers, wholesale_sales): regulars .55/.15/0/.12/.06/.12/0, occasional
      .35/.12/.03/.28/.14/.08/0, tourists .40/.02/.35/.09/.14/0/0, wholesale .25
      referral/.75 wholesale_sales; existing accounts and enrolling regulars are
      ``existing_account`` / ``walk_in``.  A paid channel's weight is scaled by its
      monthly budget / mean budget, so acquisitions follow the spend.
    * ``marketing_spend``: monthly budgets - instagram £200, google_ads £240,
      local_flyers £320 (March, September, November drops only), wholesale_sales £220
      (2.7x in September, trade fair) - times a calendar-month profile (instagram peaks
      Nov-Dec and March, google_ads in July-August and December), +15 % in the second
      year, lognormal noise sd 0.08; scaled with the number of customers.
      ``acquisition_cost`` = that month's spend / customers it brought, shared out to
      the penny (so the sums match exactly); organic channels have none.

Purchase and dropout processes (rates per week)
    * Regulars - Pareto/NBD: Poisson purchases, rate lambda ~ Gamma(shape 1.6, mean
      1.6), clipped to [0.2, 8]; exponential lifetime with mu ~ Gamma(shape 1.2, mean
      1/100) x exp(-0.35 z) (x 0.75 if referred).  15 % of those who lapse more than 8
      weeks before the end come back 8-40 weeks later (reactivation) with 40-90 % of
      their old rate and a fresh lifetime (mu x 1.5).
    * Occasional buyers - BG/NBD: rate ~ Gamma(shape 0.9, mean 0.09); after each repeat
      purchase they drop out with probability p ~ Beta(1.2, 3.5) x exp(-0.3 z) (x 0.75
      if referred), clipped to [0.02, 0.95].  Those who gave a birthday month order a
      birthday cake in it with probability 0.5 a year while still a customer.
    * Tourists: one visit; 30 % come back once or twice during a 1-6 day stay.
    * Wholesale: a standing order delivered on 1-2 (micro), 2-3 (small) or 3-5
      (medium) fixed weekdays, each delivery happening with probability 0.96, until the
      account switches supplier after an exponential time with mean 6 years x
      exp(0.4 z).  3-6 standing products by industry; quantity = base x size (1, 2.2,
      5) x industry season (summer, December, January) x trend (1 + g)^years,
      g ~ N(5 %, 12 %), x lognormal(0, 0.18).
    * Day profiles (normalised to mean 1; closed 25-26 December and 1 January):
      regulars Mon-Fri 1.12, Sat 0.85, Sun 0.55, August x0.85, 27-31 Dec x0.6;
      occasional Sat 1.9, Sun 1.6, weekdays 0.6-0.95, x (1 + 8 Christmas ramp (1-24
      Dec) + 2.5 Easter (10 days before) + 3 Mothering Sunday (4 days) + 1.5 Valentine's),
      summer x0.85; tourists weekend 1.2-1.4, x (0.5 + 2.5 summer (15 Jul-31 Aug) +
      1.2 Easter holidays + 0.8 Christmas market).

Orders
    * Occasion: regulars morning / lunch (share ~ Beta(2, 6)) / afternoon (15 %) /
      late (3 %, 30 % for deal seekers); occasional buyers celebrate (70 % of orders
      on festive days, 30 % otherwise: a whole cake, seasonal in season, often a gift)
      or have a treat (cake slices and drinks for 1 + Poisson(0.9) people); tourists
      visit (drink, pastry, lunch for 1 + Poisson(0.8) people, souvenir tins).
      Regulars order their own usual drink 80 % of the time and have personal pastry
      (Beta(2, 3)) and bread (Beta(1, 5)) habits.
    * Channel: click & collect with a personal web share (regulars Beta(1, 15),
      occasional Beta(2, 4), doubled for celebration cakes and a third of it for
      treats; tourists 2 %); wholesale is invoiced.  Local time of day by occasion (in store 07:00-18:00, Sundays
      08:00-16:00; web orders 07:00-22:30; wholesale invoices 05:30-07:00).
    * Prices and cost of goods from the catalogue (``_bakery_world.PRODUCTS``); list
      prices rise 5 % (rounded to 5p) and costs 7 % on each 1 March after the first.
    * Discounts: every 10th hot drink free on the loyalty card (held by 92 % of
      regulars, 45 % of occasional buyers, 5 % of tourists) - an order of just that
      drink has amount 0; pastries and bread half price in store from 16:30 (Sundays
      15:00); web promo codes (January 15 %, Easter 10 %, 20 Nov-10 Dec 10 %, 10 % on the
      first web order of customers won by instagram or google_ads) used by 90 % of deal
      seekers (12 % of regulars, 22 % of occasional buyers, 5 % of tourists; x1.6 if won
      by instagram or flyers) and 20 % of the others; wholesale contract discounts 3 /
      6 / 10 % by size.
    * Cost to serve (first line of each order): card fee 1.69 % (cash 0.8 %) in
      store; 1.4 % + £0.20 + packaging (£1.20 for a cake or gift box, else £0.35) for
      click & collect; wholesale delivery £6.50-£23 by region + £1.50 invoicing + 1 %
      payment terms.  Refunds: £1.50 handling.
    * Refunds: 3 % of click & collect orders with a whole cake, 1.2 % of wholesale
      deliveries (part of one line short), 0.08 % of other orders, x exp(-0.3 z); refunded
      in opening hours (wholesale the same day, retail within 3 days) as their own
      order ``R<number of the original>`` with negative amount and quantity, zero cost
      and discount.

Events
    * E-mail (consenting customers only): a newsletter on the first Tuesday of each
      month and campaigns before Valentine's, Mothering Sunday, Easter and Christmas
      (twice).  Open probability 0.50 / 0.35 / 0.12 / 0.30 (regular / occasional /
      tourist / wholesale) x engagement ~ 2 Beta(2, 2) x (0.2 if no longer a
      customer); clicks 15 % of opens (x2.3 for occasional buyers on holiday campaigns,
      x1.5 for deal seekers), each followed by page views.
    * Web: page views before every click & collect order (ending at ``/cart``); browsing
      sessions of web users while they are customers (rate 0.035 x web share a day),
      30 % ending in ``cart_abandon`` (45 % for deal seekers).
    * ``support_ticket``: before every refund (topic consistent with what went wrong),
      plus 0.2 % of retail and 2 % of wholesale orders x exp(-0.6 z).
    * ``review`` (Google, Tripadvisor for tourists; never wholesale): 12 / 8 / 6 % of
      regulars / occasional / tourists, plus 0.5 after trouble; rating =
      round(4.3 + 0.8 z + N(0, 0.6) - 1.8 if there was trouble), text from templates
      naming the product reviewed and, after trouble, what went wrong.
    * ``survey`` (NPS, mid-June and late November to consenting customers): answered by
      30 / 15 / 6 / 40 % (x0.2 if no longer a customer); nps = round(7.2 + 1.7 z + 0.8 if
      regular + N(0, 1.2) - 1.5 after trouble), clipped to 0..10.

Realised gross margin, (amount - cost) / amount, by category (checked by the tests):
coffee 0.72-0.88, pastry and bread 0.52-0.70, sandwich 0.45-0.60, cake 0.50-0.66,
gift 0.33-0.55, wholesale 0.28-0.42 (``CATEGORY_MARGIN_RANGES``).

:func:`simulate` also returns ``truth``; ``--truth`` writes it as ``truth.csv``.

Regenerate the bundled copy (deterministic; about 3 seconds)::

    python -m clientfolio.datasets.bakery --out clientfolio/datasets/data/demo_bakery
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
from ._bakery_orders import ORDER_CHANNELS, fill_orders, make_refunds
from ._bakery_people import B2B, CHANNELS, OCCASIONAL, PAID, TOURIST, TYPE_NAMES, make_population
from ._bakery_timeline import day_weights, make_timeline
from ._bakery_world import B2B_INDUSTRIES, CATEGORY_MARGIN_RANGES, PRODUCTS, REGIONS, build_calendar

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
    refunds = make_refunds(rng, cal, pop, orders, end_utc)

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
