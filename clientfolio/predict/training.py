"""A time-split training set: per-customer features strictly before a cut-off, outcomes after it.

Features use only rows with ``ts`` before the day after the cut-off (the cut-off day is included),
so shifting, adding or deleting any row after the cut-off changes no feature (tested).  Labels come
from the ``horizon_days`` after the cut-off.  The tables are the canonical ones
(:mod:`clientfolio.store.schema`): ``transactions`` (required), ``events`` and ``customers``
(optional), given as DataFrames or read from a store.

Features (all in days or shares, per customer with a purchase before the cut-off):

- RFM: repeat purchase days, recency, age (T), days since the last purchase, orders, revenue, AOV;
- rhythm: median and mean gap between purchase days, the last gap, its ratio to the usual gap,
  "overdue" = days since the last purchase / usual gap, the change between the recent and earlier gaps;
- trends: purchase days and revenue in the last 30/90/180 days, and the last 90 days against the 90 before;
- mix: revenue share of each of the shop's main categories, distinct categories, discount use,
  share of orders on each channel;
- events: counts per event type (all time and last 90 days), days since the last event;
- customers: acquisition channel and region (as categories);
- the BTYD scores of a BG/NBD model fitted on the same customers at the same cut-off: P(alive),
  expected purchases in the horizon, P(no purchase in the horizon), the restricted mean days to the
  next purchase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError

DAY = pd.Timedelta(days=1)
TREND_WINDOWS = (30, 90, 180)
MAX_CATEGORIES = 8
MAX_EVENT_TYPES = 10
CATEGORICAL = ("acquisition_channel", "region")


def _no_subscriptions() -> pd.DataFrame:
    from clientfolio.predict.subscriptions import subscription_events

    return subscription_events(pd.DataFrame())


@dataclass
class Tables:
    """The canonical tables a training set is built from (events and customers may be empty).

    ``subscriptions``: the ``subscription_start`` / ``subscription_cancel`` events with their properties
    read (:func:`clientfolio.predict.subscriptions.subscription_events`); empty for a shop without them.
    """

    transactions: pd.DataFrame
    events: pd.DataFrame
    customers: pd.DataFrame
    subscriptions: pd.DataFrame = field(default_factory=_no_subscriptions)

    def until(self, end: pd.Timestamp) -> Tables:
        """The rows before `end` (customers as they are)."""
        return Tables(self.transactions[self.transactions["ts"] < end], self.events[self.events["ts"] < end],
                      self.customers, self.subscriptions[self.subscriptions["ts"] < end])

    @property
    def last_day(self) -> pd.Timestamp:
        """The last day with a purchase."""
        return self.transactions["ts"].max().normalize()

    @property
    def first_day(self) -> pd.Timestamp:
        """The first day with a purchase."""
        return self.transactions["ts"].min().normalize()


@dataclass
class TrainingSet:
    """Features at ``cutoff`` (one row per customer, index customer_id) and outcomes after it.

    ``labels`` has ``bought`` (a purchase in the ``horizon_days`` after the cut-off; NaN when the
    data ends before the horizon does), ``churned`` (= not bought) and ``days_to_next`` (days from
    the cut-off to the next purchase day, ``horizon_days`` when there is none: a capped value).
    """

    features: pd.DataFrame
    labels: pd.DataFrame
    cutoff: pd.Timestamp
    horizon_days: int
    btyd: Any = None  # the BG/NBD model fitted at the cut-off (None when it could not be fitted)
    notes: list[str] = field(default_factory=list)

    @property
    def has_labels(self) -> bool:
        """True when the whole horizon after the cut-off is inside the data."""
        return bool(self.labels["bought"].notna().all()) if len(self.labels) else False


def _utc(s: pd.Series) -> pd.Series:
    ts = pd.to_datetime(s, utc=True, errors="coerce")
    return ts.dt.tz_convert(None)


def normalise_transactions(df: pd.DataFrame) -> pd.DataFrame:
    """customer_id, ts (naive UTC), amount, is_refund, order_id and the optional columns the features use."""
    if "ts" not in df.columns and "date" in df.columns:
        df = df.rename(columns={"date": "ts"})
    missing = {"customer_id", "ts", "amount"} - set(df.columns)
    if missing:
        raise SchemaError(f"training set: transactions need {', '.join(sorted(missing))}")
    out = pd.DataFrame({"customer_id": df["customer_id"].astype("string"), "ts": _utc(df["ts"]),
                        "amount": pd.to_numeric(df["amount"], errors="coerce").astype(float)})
    out["is_refund"] = (df["is_refund"].fillna(False).astype(bool) if "is_refund" in df.columns
                        else out["amount"] < 0)
    out["order_id"] = (df["order_id"].astype("string") if "order_id" in df.columns
                       else out["customer_id"] + "|" + out["ts"].astype("string"))
    for col in ("category", "channel"):
        out[col] = df[col].astype("string") if col in df.columns else pd.NA
    out["discount"] = pd.to_numeric(df["discount"], errors="coerce") if "discount" in df.columns else np.nan
    out = out[out["customer_id"].notna() & out["ts"].notna() & out["amount"].notna()]
    return out.reset_index(drop=True)


def load_tables(source: Any, events: pd.DataFrame | None = None,
                customers: pd.DataFrame | None = None) -> Tables:
    """The tables from a store, a dict of DataFrames (as load_demo_shop gives) or a transactions DataFrame."""
    from clientfolio.predict.subscriptions import TYPES, subscription_events
    from clientfolio.store import Store

    if isinstance(source, Store):
        tx = source.query("SELECT customer_id, order_id, ts, amount, is_refund, category, channel, discount "
                          "FROM transactions WHERE customer_id IS NOT NULL")
        ev = source.query("SELECT customer_id, ts, type FROM events WHERE customer_id IS NOT NULL")
        subs = source.query("SELECT customer_id, ts, type, properties FROM events "
                            f"WHERE customer_id IS NOT NULL AND type IN ({', '.join('?' * len(TYPES))})", list(TYPES))
        cu = source.query("SELECT customer_id, acquisition_channel, region FROM customers")
    elif isinstance(source, dict):
        tx, ev, cu = source["transactions"], source.get("events"), source.get("customers")
    elif isinstance(source, pd.DataFrame):
        tx, ev, cu = source, events, customers
    else:
        raise SchemaError(f"training set: expected a store, a dict of tables or a DataFrame, got {type(source).__name__}")
    if not isinstance(source, Store):
        subs = ev if ev is not None and {"customer_id", "ts", "type"} <= set(ev.columns) else None
    subs = subscription_events(None if subs is None else subs.assign(ts=_utc(subs["ts"])))
    tx = normalise_transactions(tx)
    if len(tx) == 0:
        raise SchemaError("training set: there are no transactions with a customer")
    if ev is None or len(ev) == 0 or not {"customer_id", "ts", "type"} <= set(ev.columns):
        ev = pd.DataFrame({"customer_id": pd.Series(dtype="string"), "ts": pd.Series(dtype="datetime64[ns]"),
                           "type": pd.Series(dtype="string")})
    else:
        ev = pd.DataFrame({"customer_id": ev["customer_id"].astype("string"), "ts": _utc(ev["ts"]),
                           "type": ev["type"].astype("string")}).dropna()
    cu = pd.DataFrame(columns=["customer_id"]) if cu is None else cu
    keep = ["customer_id", *[c for c in CATEGORICAL if c in cu.columns]]
    cu = cu[keep].drop_duplicates("customer_id").assign(customer_id=lambda d: d["customer_id"].astype("string"))
    return Tables(tx, ev, cu, subs)


def shop_rhythm_days(tables: Tables, cutoff: pd.Timestamp, quantile: float = 0.75) -> int:
    """The churn horizon N from the shop's own rhythm: each returning customer's usual (median) gap
    between purchase days before the cut-off; N is the 75th percentile of those usual gaps, rounded up
    to whole weeks and kept within 14..182 days.  Three returning customers in four usually come back
    within N days, so "no purchase in N days" is a departure from the shop's normal, not a pause.
    With fewer than 20 returning customers N is 90 days.
    """
    tx = tables.transactions
    tx = tx[(tx["ts"] < cutoff + DAY) & ~tx["is_refund"]]
    days = tx.assign(d=tx["ts"].dt.normalize())[["customer_id", "d"]].drop_duplicates().sort_values(["customer_id", "d"])
    days["gap"] = days.groupby("customer_id")["d"].diff().dt.days
    gaps = days.dropna().groupby("customer_id")["gap"].median()
    if len(gaps) < 20:
        return 90
    q = float(np.quantile(gaps, quantile))
    return int(min(182, max(14, 7 * math.ceil(q / 7))))


def _purchase_days(tx: pd.DataFrame) -> pd.DataFrame:
    buys = tx[~tx["is_refund"]]
    g = buys.assign(d=buys["ts"].dt.normalize()).groupby(["customer_id", "d"], sort=True)["amount"].sum()
    return g.rename("value").reset_index()


def _rhythm(days: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    days = days.sort_values(["customer_id", "d"])
    days["gap"] = days.groupby("customer_id")["d"].diff().dt.days
    g = days.groupby("customer_id")
    out = pd.DataFrame({
        "first": g["d"].min(), "last": g["d"].max(), "purchase_days": g.size(),
        "gap_median": g["gap"].median(), "gap_mean": g["gap"].mean(), "gap_last": g["gap"].last(),
    })
    # The change of rhythm: mean of the last three gaps against the mean of the gaps before them.
    back = g.cumcount(ascending=False)
    recent = days[back < 3].groupby("customer_id")["gap"].mean()
    earlier = days[back >= 3].groupby("customer_id")["gap"].mean()
    out["gap_change"] = (recent / earlier).reindex(out.index)
    out["frequency"] = out["purchase_days"] - 1
    out["recency"] = (out["last"] - out["first"]).dt.days.astype(float)
    out["T"] = (cutoff - out["first"]).dt.days.astype(float)
    out["days_since_last"] = (cutoff - out["last"]).dt.days.astype(float)
    out["gap_last_vs_usual"] = out["gap_last"] / out["gap_median"]
    out["overdue"] = out["days_since_last"] / out["gap_median"]
    return out.drop(columns=["first", "last"])


def _trends(days: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    age = (cutoff - days["d"]).dt.days
    cols = {}
    for w in TREND_WINDOWS:
        inside = days[age < w]
        cols[f"days_{w}d"] = inside.groupby("customer_id").size()
        cols[f"revenue_{w}d"] = inside.groupby("customer_id")["value"].sum()
    prev = days[(age >= 90) & (age < 180)].groupby("customer_id").size()
    out = pd.DataFrame(cols).fillna(0.0)
    out["trend_90d"] = out["days_90d"] - prev.reindex(out.index).fillna(0.0)
    return out


def _mix(tx: pd.DataFrame, categories: list[str], channels: list[str]) -> pd.DataFrame:
    buys = tx[~tx["is_refund"]]
    g = buys.groupby("customer_id")
    out = pd.DataFrame({"orders": g["order_id"].nunique(), "revenue_gross": g["amount"].sum()})
    refunds = tx[tx["is_refund"]].groupby("customer_id")["amount"].sum().abs()
    out["refunds"] = refunds.reindex(out.index).fillna(0.0)
    out["aov"] = out["revenue_gross"] / out["orders"]
    if categories:
        # groupby + unstack: pivot_table's sums, without its fixed cost (a live update scores one customer)
        rev = (buys[buys["category"].isin(categories)].groupby(["customer_id", "category"], observed=True)["amount"]
               .sum().unstack())
        total = out["revenue_gross"].where(out["revenue_gross"] > 0)
        for c in categories:
            col = rev[c] if c in rev.columns else pd.Series(dtype=float)
            out[f"share_{c}"] = (col.reindex(out.index).fillna(0.0) / total).fillna(0.0)
        out["categories"] = g["category"].nunique().reindex(out.index).fillna(0)
    if buys["discount"].notna().any():
        out["discount_line_share"] = (buys["discount"].fillna(0) > 0).groupby(buys["customer_id"]).mean()
        out["discount_total"] = buys["discount"].fillna(0).groupby(buys["customer_id"]).sum()
    if channels:
        orders = buys.drop_duplicates(["customer_id", "order_id"])
        counts = _counts(orders, "channel")
        share = counts.div(counts.sum(axis=1), axis=0)  # crosstab's normalize="index"
        for c in channels:
            out[f"channel_{c}"] = (share[c] if c in share.columns else pd.Series(dtype=float)).reindex(out.index).fillna(0.0)
    return out


def _counts(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows per customer and value of `column` (missing values left out), one column per value: what
    pd.crosstab gives, without its fixed cost."""
    return rows.groupby(["customer_id", column], observed=True).size().unstack(fill_value=0)


def _events(ev: pd.DataFrame, types: list[str], cutoff: pd.Timestamp) -> pd.DataFrame:
    if not types:
        return pd.DataFrame()
    ev = ev[ev["type"].isin(types)]
    all_time = _counts(ev, "type")
    recent = _counts(ev[ev["ts"] >= cutoff + DAY - 90 * DAY], "type")
    cols = {}
    for t in types:
        cols[f"events_{t}"] = all_time[t] if t in all_time.columns else pd.Series(dtype=float)
        cols[f"events_{t}_90d"] = recent[t] if t in recent.columns else pd.Series(dtype=float)
    out = pd.DataFrame(cols)
    out["days_since_event"] = (cutoff - ev.groupby("customer_id")["ts"].max().dt.normalize()).dt.days
    return out


def btyd_scores(rfm: pd.DataFrame, horizon_days: int, model: Any = None) -> tuple[pd.DataFrame, Any]:
    """BG/NBD scores per customer (time in days): P(alive), expected purchases, P(no purchase) in the
    horizon, the restricted mean days to the next purchase within it (the horizon when none) and the
    median waiting time, capped at the horizon (the BTYD point value for a mean-absolute-error comparison).

    Under BG/NBD a customer alive at the cut-off has purchase rate Gamma(r + x, alpha + T) given the
    history, and cannot drop out without buying first, so P(no purchase in t) =
    1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x); the restricted mean is the
    integral of that over 0..horizon.  `model` is fitted here when None.
    """
    from clientfolio.models import BGNBD

    data = rfm[["frequency", "recency", "T"]].astype(float)
    if model is None:
        try:
            model = BGNBD().fit(data)
        except Exception:  # parameters not identified (e.g. no visible drop-out): a light penalty, as the model suggests
            model = BGNBD(penalizer_coef=0.001).fit(data)
    p = model.params_
    r, alpha = p["r"], p["alpha"]
    alive = np.asarray(model.predict_alive(data), dtype=float)
    expected = np.asarray(model.predict_purchases(float(horizon_days), data), dtype=float)
    A = alpha + data["T"].to_numpy()
    k = r + data["frequency"].to_numpy()
    h = float(horizon_days)
    none_if_alive = (A / (A + h)) ** k
    p_none = 1.0 - alive + alive * none_if_alive
    km1 = k - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        integral = np.where(np.abs(km1) > 1e-9, A / km1 * (1.0 - (A / (A + h)) ** km1), A * np.log((A + h) / A))
    rmean = (1.0 - alive) * h + alive * integral
    # The median waiting time (capped at the horizon): P(no purchase by s) = 1/2.
    with np.errstate(divide="ignore", invalid="ignore"):
        s_med = A * ((alive / (alive - 0.5)) ** (1.0 / k) - 1.0)
    median = np.where(alive > 0.5, np.minimum(s_med, h), h)
    out = pd.DataFrame({"btyd_p_alive": alive, "btyd_expected": expected, "btyd_p_none": p_none,
                        "btyd_days_to_next": rmean, "btyd_days_median": median}, index=rfm.index)
    return out, model


def _vocab(col: pd.Series, n: int) -> list[str]:
    counts = col.dropna().value_counts()
    return [str(c) for c in counts.index[:n]]


def build_training_set(source: Any, cutoff: Any, horizon_days: int, *, events: pd.DataFrame | None = None,
                       customers: pd.DataFrame | None = None, with_btyd: bool = True,
                       vocab: dict[str, list[str]] | None = None) -> TrainingSet:
    """Features at `cutoff` (the day is included) and outcomes in the `horizon_days` after it.

    `source` is a store, a dict of tables, a transactions DataFrame or :class:`Tables`.  `vocab`
    fixes which categories, channels and event types become columns (a model trained at one
    cut-off is applied at another with the same columns); by default they are the most common
    ones before the cut-off.
    """
    tables = source if isinstance(source, Tables) else load_tables(source, events, customers)
    cutoff = pd.Timestamp(cutoff).tz_localize(None) if pd.Timestamp(cutoff).tzinfo is None else \
        pd.Timestamp(cutoff).tz_convert(None)
    cutoff = cutoff.normalize()
    end = cutoff + DAY
    tx = tables.transactions[tables.transactions["ts"] < end]
    ev = tables.events[tables.events["ts"] < end]
    days = _purchase_days(tx)
    if days.empty:
        raise SchemaError(f"training set: no purchases on or before {cutoff.date()}")
    if vocab is None:
        vocab = {"category": _vocab(tx["category"], MAX_CATEGORIES), "channel": _vocab(tx["channel"], 4),
                 "event": _vocab(ev["type"], MAX_EVENT_TYPES)}
    feats = _rhythm(days, cutoff)
    trends = _trends(days, cutoff)
    feats = feats.join(trends, how="left")
    feats[list(trends.columns)] = feats[list(trends.columns)].fillna(0.0)
    feats = feats.join(_mix(tx, vocab["category"], vocab["channel"]), how="left")
    ev_feats = _events(ev, vocab["event"], cutoff)
    if len(ev_feats.columns):
        feats = feats.join(ev_feats, how="left")
        count_cols = [c for c in ev_feats.columns if c.startswith("events_")]
        feats[count_cols] = feats[count_cols].fillna(0.0)
    cu = tables.customers.set_index("customer_id")
    for c in CATEGORICAL:
        if c in cu.columns:
            feats[c] = cu[c].reindex(feats.index).astype("string").fillna("unknown").astype("category")
    feats.index = feats.index.astype(str)
    feats.index.name = "customer_id"
    notes: list[str] = []
    model = None
    if with_btyd:
        try:
            scores, model = btyd_scores(feats, horizon_days)
            feats = feats.join(scores)
            if getattr(model, "penalizer_coef", 0):
                notes.append(f"BG/NBD at {cutoff.date()} was fitted with a light penalty ({model.penalizer_coef}): "
                             "without it its parameters were not identified by these data")
        except Exception as exc:  # a model that cannot be fitted leaves its scores out, said in notes
            notes.append(f"the BG/NBD scores were left out: {exc}")
    num = [c for c in feats.columns if c not in CATEGORICAL]
    feats[num] = feats[num].astype(float)
    labels = _labels(tables, feats.index, cutoff, horizon_days)
    ts = TrainingSet(feats.sort_index(), labels.sort_index(), cutoff, int(horizon_days), model, notes)
    ts.features.attrs["vocab"] = vocab
    return ts


def _labels(tables: Tables, index: pd.Index, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
    end = cutoff + DAY
    tx = tables.transactions
    after = tx[(tx["ts"] >= end) & (tx["ts"] < end + horizon * DAY) & ~tx["is_refund"]]
    first_after = after.groupby("customer_id")["ts"].min().dt.normalize()
    first_after.index = first_after.index.astype(str)
    complete = tables.last_day >= cutoff + horizon * DAY
    nxt = first_after.reindex(index)
    days_to = ((nxt - cutoff).dt.days).astype(float).fillna(float(horizon))
    bought = nxt.notna().astype(float)
    if not complete:
        bought[:] = np.nan
        days_to[:] = np.nan
    return pd.DataFrame({"bought": bought, "churned": 1.0 - bought, "days_to_next": days_to}, index=index)
