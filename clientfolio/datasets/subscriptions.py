"""A generated subscription shop (a coffee-bean box): subscribers who renew, cancel and sometimes come back.

Made for testing and showing the cancellation churn of :mod:`clientfolio.predict.subscriptions`,
with parameters known in advance:

- customers arrive evenly over the shop's life and take a monthly plan (three in four) or a
  quarterly one; each period starts with a charge (an order line of the plan's price);
- each customer cancels at the end of a period with their own probability ``theta``, drawn from
  Beta(``alpha``, ``beta``) across customers: the shifted-beta-geometric model (Fader & Hardie 2007);
- in any period a customer may have a problem (``issue_rate``): they write a support ticket and
  are ``issue_lift`` times as likely to cancel at that period's end -- a signal the renewal model
  cannot see and a model of the customer's events can;
- customers who cancel click "cancel" during the period's last days (the ``subscription_cancel``
  event), a share (``restart_rate``) subscribes again one to six months later, and subscribers
  open the monthly newsletter more often the less likely they are to leave;
- a few buy add-ons beside their box.

With ``issue_rate=0`` and ``restart_rate=0`` the data follow the sBG model exactly (up to the
monthly periods being calendar months), so a fit should recover ``alpha`` and ``beta``.
The tables use the demo shop's canonical columns; events carry their properties as JSON.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

PLANS = {"monthly": (1, 24.0), "quarterly": (3, 66.0)}  # months per period, price


def subscription_shop(n_customers: int = 2000, *, seed: int = 7, start: str = "2023-01-01", end: str = "2025-12-31",
                      alpha: float = 0.9, beta: float = 5.0, issue_rate: float = 0.08, issue_lift: float = 4.0,
                      restart_rate: float = 0.15) -> dict[str, pd.DataFrame]:
    """The shop's ``transactions``, ``customers`` and ``events`` (UTC timestamps), generated from `seed`."""
    rng = np.random.default_rng(seed)
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC") + pd.Timedelta(hours=23)
    span = (t1 - t0).days
    ids = [f"S{i:05d}" for i in range(1, n_customers + 1)]
    arrive = t0 + pd.to_timedelta(np.sort(rng.uniform(0, span - 45, n_customers)), unit="D")
    theta = rng.beta(alpha, beta, n_customers)
    opens = np.clip(0.65 - 1.5 * theta, 0.05, 0.9)
    tx: list[tuple] = []
    ev: list[tuple] = []
    for i, cid in enumerate(ids):
        begin, spell = arrive[i].floor("h") + pd.Timedelta(hours=9), 0
        while begin is not None and begin <= t1:
            spell += 1
            plan = "monthly" if rng.random() < 0.75 else "quarterly"
            months, price = PLANS[plan]
            sub_id = f"{cid}-{spell}"
            ev.append((cid, begin, "subscription_start", json.dumps(
                {"subscription_id": sub_id, "plan": plan, "interval": "month", "interval_count": months,
                 "price": price})))
            k, nxt = 0, None
            while True:
                p_start = begin + pd.DateOffset(months=months * k)
                if p_start > t1:
                    break
                tx.append((cid, f"{sub_id}-{k + 1}", p_start, price, "subscription"))
                p_end = begin + pd.DateOffset(months=months * (k + 1))
                days = (p_end - p_start).days
                issue = rng.random() < issue_rate
                if issue:
                    ev.append((cid, p_start + pd.Timedelta(days=float(rng.uniform(1, days * 0.5))), "support_ticket",
                               json.dumps({"topic": "delivery"})))
                for m in range(months):
                    if rng.random() < opens[i]:
                        ev.append((cid, p_start + pd.DateOffset(months=m) + pd.Timedelta(days=float(rng.uniform(0, 5))),
                                   "email_open", json.dumps({"campaign": "newsletter"})))
                if rng.random() < 0.1 * months:
                    tx.append((cid, f"{sub_id}-{k + 1}-addon", p_start + pd.Timedelta(days=float(rng.uniform(2, days - 2))),
                               round(float(rng.uniform(8, 20)), 2), "add-on"))
                p = min(0.95, theta[i] * (issue_lift if issue else 1.0))
                if rng.random() < p:
                    cancel_at = p_end - pd.Timedelta(days=float(rng.uniform(1, days * 0.6)))
                    if cancel_at <= t1:
                        ev.append((cid, cancel_at, "subscription_cancel", json.dumps({"subscription_id": sub_id})))
                        if rng.random() < restart_rate:
                            nxt = p_end + pd.Timedelta(days=float(rng.uniform(30, 180)))
                    break
                k += 1
            begin = nxt
    transactions = pd.DataFrame(tx, columns=["customer_id", "order_id", "ts", "amount", "category"])
    transactions["ts"] = pd.to_datetime(transactions["ts"], utc=True).dt.floor("s")
    transactions = transactions[transactions["ts"] <= t1].sort_values(["ts", "order_id"]).reset_index(drop=True)
    transactions["channel"] = "online"
    transactions["currency"] = "EUR"
    events = pd.DataFrame(ev, columns=["customer_id", "ts", "type", "properties"])
    events["ts"] = pd.to_datetime(events["ts"], utc=True).dt.floor("s")
    events = events[events["ts"] <= t1].sort_values(["ts", "customer_id", "type"]).reset_index(drop=True)
    customers = pd.DataFrame({
        "customer_id": ids, "first_seen": arrive.tz_convert(None).normalize(),
        "region": rng.choice(["North", "South", "East", "West"], n_customers),
        "acquisition_channel": rng.choice(["search", "instagram", "referral"], n_customers, p=[0.5, 0.3, 0.2]),
        "consent_marketing": rng.random(n_customers) < 0.8, "email": [f"{c.lower()}@example.org" for c in ids],
    })
    return {"transactions": transactions, "customers": customers, "events": events}


def write_subscription_shop(tables: dict[str, pd.DataFrame], folder: str) -> dict[str, str]:
    """Write the tables as canonical CSV files in `folder` (for `clientfolio import`); returns their paths."""
    from pathlib import Path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in tables.items():
        d = df.copy()
        for col in d.columns:
            if isinstance(d[col].dtype, pd.DatetimeTZDtype):
                d[col] = d[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        if "first_seen" in d:
            d["first_seen"] = pd.to_datetime(d["first_seen"]).dt.strftime("%Y-%m-%d")
        path = out / f"{name}.csv"
        d.to_csv(path, index=False, float_format="%.2f")
        paths[name] = str(path)
    return paths
