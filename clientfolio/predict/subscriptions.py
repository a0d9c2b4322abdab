"""Churn of subscribers is cancellation: the probability that an active subscriber cancels in the next N days.

A subscription shop says who subscribes and who cancels with two event types (the ``events``
table, properties as JSON):

- ``subscription_start``: ``subscription_id`` (optional when a customer has one subscription),
  ``plan``, ``price`` per period and the billing period: ``interval`` (day, week, month, quarter,
  year; Stripe's names) with ``interval_count``, or ``period_days``;
- ``subscription_cancel``: ``subscription_id`` (optional as above).  The day of the event is the day
  the customer cancelled (the last paid period may run on; the subscription counts as cancelled).

A customer is an *active subscriber* on a day when at least one of their subscriptions started and
was not cancelled by then.  For them, "churn" is a cancellation in the next N days (N is the shop's
churn horizon), not a pause between orders, so their churn risk comes from this module:

- the baseline is the shifted-beta-geometric model (sBG, Fader & Hardie 2007,
  :class:`~clientfolio.models.ShiftedBetaGeometric`) fitted at the cut-off on every subscription
  started by then (whole periods paid; cancelled or still running), giving
  P(cancel within N days | n periods survived) = 1 - S(n + N/p) / S(n) with p the billing period
  in days (periods between whole ones interpolated by the same formula);
- the boosted trees (:class:`~clientfolio.predict.churn.ChurnModel`) see tenure, plan, price,
  earlier cancellations and the place in the billing cycle beside every purchase and event feature
  of the time-split training set (:mod:`clientfolio.predict.training`), and are used only where
  they beat sBG on the shop's own time split (as for purchases,
  :func:`~clientfolio.predict.evaluation.evaluate_churn`).

A billing period that a start event does not give is the shop's most common one among those that
do; with none given anywhere, the usual gap between subscribers' charges, rounded to a week, a
month, a quarter or a year.  The notes say how many subscriptions that concerned.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaln

START, CANCEL = "subscription_start", "subscription_cancel"
TYPES = (START, CANCEL)
MONTH = 365.25 / 12
INTERVAL_DAYS = {"day": 1.0, "week": 7.0, "month": MONTH, "quarter": 3 * MONTH, "year": 365.25}
ALIASES = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter", "yearly": "year",
           "annual": "year", "annually": "year", "days": "day", "weeks": "week", "months": "month",
           "years": "year", "quarters": "quarter"}
MAX_PERIOD_DAYS = 3660.0  # a billing period over ten years is not one: read as missing (the notes count it)
SNAP = (7.0, 14.0, MONTH, 2 * MONTH, 3 * MONTH, 6 * MONTH, 365.25)
FEATURES = ["sub_active", "sub_tenure_days", "sub_tenure_periods", "sub_period_days", "sub_days_into_period",
            "sub_price", "sub_past_cancels", "sub_days_since_cancel", "sub_days_since_ticket", "subscription_plan"]
TICKET = "support_ticket"
DAY = pd.Timedelta(days=1)


def _props(text: Any) -> dict:
    if isinstance(text, dict):
        return text
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return {}
    try:
        value = json.loads(str(text))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def period_of(props: dict) -> float:
    """The billing period in days that a start event's properties give (NaN when they give none that reads)."""
    days = props.get("period_days")
    if days is not None:
        try:
            v = float(days)
        except (TypeError, ValueError):
            return float("nan")
        return v if math.isfinite(v) and 0 < v <= MAX_PERIOD_DAYS else float("nan")
    interval = props.get("interval")
    if interval is None:
        return float("nan")
    name = str(interval).strip().lower()
    name = ALIASES.get(name, name)
    if name not in INTERVAL_DAYS:
        return float("nan")
    try:
        count = float(props.get("interval_count", 1) or 1)
    except (TypeError, ValueError):
        return float("nan")
    days = INTERVAL_DAYS[name] * count if math.isfinite(count) and count > 0 else float("nan")
    return days if days <= MAX_PERIOD_DAYS else float("nan")


def subscription_events(events: pd.DataFrame) -> pd.DataFrame:
    """The start and cancel events with their properties read: customer_id, ts, type, subscription_id,
    plan, price, period_days (NaN when not given), sorted by customer, subscription and time."""
    cols = {"customer_id": pd.Series(dtype="string"), "ts": pd.Series(dtype="datetime64[ns]"),
            "type": pd.Series(dtype="string"), "subscription_id": pd.Series(dtype="string"),
            "plan": pd.Series(dtype="string"), "price": pd.Series(dtype=float), "period_days": pd.Series(dtype=float)}
    if events is None or len(events) == 0 or "type" not in events.columns:
        return pd.DataFrame(cols)
    ev = events[events["type"].isin(TYPES)]
    if ev.empty:
        return pd.DataFrame(cols)
    props = [_props(p) for p in (ev["properties"] if "properties" in ev.columns else [None] * len(ev))]
    price = []
    for p in props:
        try:
            price.append(float(p["price"]) if p.get("price") is not None else float("nan"))
        except (TypeError, ValueError):
            price.append(float("nan"))
    out = pd.DataFrame({
        "customer_id": ev["customer_id"].astype("string").to_numpy(), "ts": ev["ts"].to_numpy(),
        "type": ev["type"].astype("string").to_numpy(),
        "subscription_id": pd.array([str(p.get("subscription_id", "")) for p in props], dtype="string"),
        "plan": pd.array([None if p.get("plan") is None else str(p["plan"]) for p in props], dtype="string"),
        "price": np.asarray(price, dtype=float),
        "period_days": np.asarray([period_of(p) for p in props], dtype=float),
    })
    out = out[out["customer_id"].notna() & out["ts"].notna()]
    # a cancel on the same second as its start comes after it
    out["order"] = (out["type"] == CANCEL).astype(int)
    return out.sort_values(["customer_id", "subscription_id", "ts", "order"]).drop(columns="order").reset_index(drop=True)


def spells(subs: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Each subscription's spell from the events before `end`: customer_id, subscription_id, start,
    stop (NaT while running), plan, price, period_days.  A start while running changes the plan and
    price (keeping the start); a cancel of a subscription not running is ignored."""
    subs = subs[subs["ts"] < end]
    rows: list[tuple] = []
    open_: dict[tuple[str, str], list] = {}
    for c, s, ts, kind, plan, price, period in zip(subs["customer_id"], subs["subscription_id"], subs["ts"],
                                                   subs["type"], subs["plan"], subs["price"], subs["period_days"]):
        key = (c, s)
        cur = open_.get(key)
        if kind == START:
            if cur is None:
                open_[key] = [c, s, ts, pd.NaT, plan, price, period]
            else:
                cur[4] = plan if plan is not pd.NA and plan is not None else cur[4]
                cur[5] = price if np.isfinite(price) else cur[5]
                cur[6] = period if np.isfinite(period) else cur[6]
        elif cur is not None:
            cur[3] = ts
            rows.append(tuple(cur))
            del open_[key]
    rows.extend(tuple(v) for v in open_.values())
    out = pd.DataFrame(rows, columns=["customer_id", "subscription_id", "start", "stop", "plan", "price",
                                      "period_days"])
    out["start"] = pd.to_datetime(out["start"])
    out["stop"] = pd.to_datetime(out["stop"])
    out["price"] = out["price"].astype(float)
    out["period_days"] = out["period_days"].astype(float)
    return out


def default_period(subs: pd.DataFrame, transactions: pd.DataFrame | None = None) -> tuple[float, str]:
    """The billing period for subscriptions whose start event gives none, and how it was found."""
    given = subs.loc[subs["type"] == START, "period_days"].dropna()
    if len(given):
        v = float(given.round(4).mode().iloc[0])
        return v, f"the most common billing period among those the start events give ({v:.0f} days)"
    if transactions is not None and len(transactions):
        who = set(subs["customer_id"].dropna())
        tx = transactions[transactions["customer_id"].isin(who) & ~transactions["is_refund"]]
        days = tx.assign(d=tx["ts"].dt.normalize())[["customer_id", "d"]].drop_duplicates().sort_values(["customer_id", "d"])
        gaps = days.groupby("customer_id")["d"].diff().dt.days.dropna()
        if len(gaps) >= 20:
            usual = float(gaps.median())
            v = min(SNAP, key=lambda s: abs(math.log(s / max(usual, 1.0))))
            return v, (f"no start event gives a billing period; subscribers' charges are usually {usual:.0f} days "
                       f"apart, taken as a period of {v:.0f} days")
    return MONTH, "no start event gives a billing period and the charges do not show one: a month is assumed"


@dataclass
class SubscriptionBase:
    """The subscription spells of a shop at a cut-off, with the billing period filled in."""

    spells: pd.DataFrame
    cutoff: pd.Timestamp
    default_period_days: float
    notes: list[str] = field(default_factory=list)

    @property
    def running(self) -> pd.DataFrame:
        """Spells running at the end of the cut-off day."""
        return self.spells[self.spells["stop"].isna()]


def subscription_base(subs: pd.DataFrame, cutoff: pd.Timestamp, default_period_days: float) -> SubscriptionBase:
    """The spells with events up to the end of `cutoff` (the day included), periods filled in."""
    sp = spells(subs, cutoff + DAY)
    missing = int(sp["period_days"].isna().sum())
    sp["period_days"] = sp["period_days"].fillna(default_period_days)
    notes = []
    if missing:
        notes.append(f"{missing:,} subscription(s) gave no billing period that reads; "
                     f"{default_period_days:.0f} days was taken for them")
    return SubscriptionBase(sp, cutoff, float(default_period_days), notes)


def tenure_table(base: SubscriptionBase) -> pd.DataFrame:
    """sBG's data at the cut-off: per spell, whole periods paid (``tenure``) and whether it was cancelled.

    A cancelled subscription paid the period it was cancelled in (at least one); a running one has
    completed the whole periods since its start (its current one is not yet decided)."""
    sp = base.spells
    end = base.cutoff + DAY
    stopped = sp["stop"].notna()
    length = ((sp["stop"].where(stopped, end) - sp["start"]).dt.total_seconds() / 86400.0).to_numpy()
    periods = length / sp["period_days"].to_numpy()
    tenure = np.where(stopped, np.maximum(1.0, np.ceil(periods - 1e-9)), np.floor(periods + 1e-9))
    t = pd.DataFrame({"tenure": tenure, "churned": stopped.astype(float).to_numpy()})
    return t.groupby(["tenure", "churned"]).size().rename("weights").reset_index().astype(float)


def fit_sbg(base: SubscriptionBase) -> Any:
    """sBG fitted on every subscription started by the cut-off (raises when it cannot be)."""
    from clientfolio.models import ShiftedBetaGeometric

    t = tenure_table(base)
    if not (t["churned"] > 0).any():
        raise ValueError("no subscription was cancelled by the cut-off, so the renewal model cannot be fitted")
    return ShiftedBetaGeometric().fit(t)


def p_cancel(alpha: float, beta: float, periods: np.ndarray, horizon_periods: np.ndarray) -> np.ndarray:
    """sBG's P(cancel within `horizon_periods` | `periods` survived) = 1 - S(n + h) / S(n)."""
    n = np.asarray(periods, dtype=float)
    h = np.asarray(horizon_periods, dtype=float)
    return 1.0 - np.exp(betaln(alpha, beta + n + h) - betaln(alpha, beta + n))


def sbg_p_cancel(sbg: Any, feats: pd.DataFrame, horizon: int) -> np.ndarray:
    """sBG's P(cancel in the next `horizon` days) of each row of `feats` (missing where it has no subscription)."""
    with np.errstate(invalid="ignore"):
        return p_cancel(sbg.params_["alpha"], sbg.params_["beta"], feats["sub_tenure_periods"].to_numpy(dtype=float),
                        horizon / feats["sub_period_days"].to_numpy(dtype=float))


def subscriber_features(base: SubscriptionBase, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per active subscriber at the cut-off: the ``FEATURES`` (tenure from their longest running
    subscription; price summed over running ones; earlier cancellations; days since their last support
    ticket, from `events`, as a complaint often comes before a cancellation), index customer_id."""
    sp = base.spells
    end = base.cutoff + DAY
    run = sp[sp["stop"].isna()].sort_values(["customer_id", "start", "subscription_id"])
    if run.empty:
        return pd.DataFrame(columns=FEATURES, index=pd.Index([], name="customer_id", dtype=object))
    first = run.groupby("customer_id").head(1).set_index("customer_id")
    days = (end - first["start"]).dt.total_seconds() / 86400.0
    out = pd.DataFrame(index=first.index)
    out["sub_active"] = run.groupby("customer_id").size().astype(float)
    out["sub_tenure_days"] = days.astype(float)
    out["sub_tenure_periods"] = (days / first["period_days"]).astype(float)
    out["sub_period_days"] = first["period_days"].astype(float)
    out["sub_days_into_period"] = np.mod(days.to_numpy(dtype=float), first["period_days"].to_numpy(dtype=float))
    out["sub_price"] = run.groupby("customer_id")["price"].sum(min_count=1).reindex(out.index).astype(float)
    done = sp[sp["stop"].notna()]
    out["sub_past_cancels"] = done.groupby("customer_id").size().reindex(out.index).fillna(0).astype(float)
    last = done.groupby("customer_id")["stop"].max().reindex(out.index)
    out["sub_days_since_cancel"] = ((end - last).dt.total_seconds() / 86400.0).astype(float)
    tickets = pd.Series(dtype="datetime64[ns]")
    if events is not None and len(events):
        ev = events[(events["type"] == TICKET) & (events["ts"] < end)]
        tickets = ev.groupby(ev["customer_id"].astype(str))["ts"].max()
    last_ticket = pd.to_datetime(tickets.reindex(out.index.astype(str)).to_numpy())
    out["sub_days_since_ticket"] = ((end - last_ticket) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    out["subscription_plan"] = first["plan"].astype("string").fillna("unknown").astype("category")
    out.index = out.index.astype(str)
    out.index.name = "customer_id"
    return out


def cancel_labels(subs: pd.DataFrame, base: SubscriptionBase, index: pd.Index, horizon: int,
                  complete: bool) -> pd.DataFrame:
    """``churned`` = 1 when the subscriber cancels a subscription running at the cut-off within the
    `horizon` days after it (NaN for all when the data end before the horizon does)."""
    end = base.cutoff + DAY
    window = subs[(subs["type"] == CANCEL) & (subs["ts"] >= end) & (subs["ts"] < end + horizon * DAY)]
    running = base.running[["customer_id", "subscription_id"]]
    hit = window.merge(running, on=["customer_id", "subscription_id"])["customer_id"].astype(str).unique()
    churned = pd.Series(index.isin(hit).astype(float), index=index)
    if not complete:
        churned[:] = np.nan
    return pd.DataFrame({"churned": churned})


def reason(row: dict) -> str:
    """Why a subscriber's cancellation risk is what it is, in their own numbers."""
    from clientfolio.core.numbers import decimal_text as _dec

    parts = []
    days, period = row.get("sub_tenure_days"), row.get("sub_period_days")
    if days is not None and np.isfinite(days):
        months = days / MONTH
        when = (f"{_dec(months, 0)} month{'s' if round(months) != 1 else ''}" if months >= 1.5
                else f"{_dec(days, 0)} day{'s' if round(days) != 1 else ''}")
        plan = row.get("subscription_plan")
        plan_text = f"{plan} plan, " if isinstance(plan, str) and plan and plan != "unknown" else ""
        parts.append(f"subscriber for {when} ({plan_text}billed every {_dec(period, 0)} days)")
    past = row.get("sub_past_cancels")
    if past is not None and np.isfinite(past) and past > 0:
        parts.append(f"cancelled {'once' if past == 1 else f'{_dec(past, 0)} times'} before")
    tickets = row.get("events_support_ticket_90d")
    if tickets is not None and np.isfinite(tickets) and tickets > 0:
        parts.append(f"{_dec(tickets, 0)} support ticket{'s' if tickets != 1 else ''} in the last 90 days")
    return "; ".join(parts)


def subscription_training_set(tables: Any, cutoff: pd.Timestamp, horizon: int, general: Any,
                              default_period_days: float, sbg: Any = None) -> Any:
    """Active subscribers' features at `cutoff` (every feature of `general`, the purchase training set
    at the same cut-off, plus the subscription ones and sBG's P(cancel)) and ``churned`` = a
    cancellation in the `horizon` days after it.  sBG is fitted here on the spells by the cut-off when
    `sbg` is None.  Subscribers without a charge by the cut-off are left out (said in the notes)."""
    from clientfolio.predict.training import TrainingSet

    base = subscription_base(tables.subscriptions, cutoff, default_period_days)
    sf = subscriber_features(base, tables.events)
    ids = sf.index.intersection(general.features.index)
    notes = list(base.notes)
    if len(ids) < len(sf):
        notes.append(f"{len(sf) - len(ids):,} active subscriber(s) on {cutoff.date()} had no charge by then and "
                     "are not scored")
    feats = general.features.loc[ids].join(sf.loc[ids])
    if sbg is None:
        sbg = fit_sbg(base)
    feats["sbg_p_cancel"] = sbg_p_cancel(sbg, feats, horizon)
    complete = tables.last_day >= cutoff + horizon * DAY
    labels = cancel_labels(tables.subscriptions, base, feats.index, horizon, complete)
    return TrainingSet(feats.sort_index(), labels.sort_index(), cutoff, int(horizon), sbg, notes)


class SubscriptionChurn:
    """What the fitted state keeps for subscribers: sBG at the end of the data, the billing period for
    subscriptions that give none, and the boosted trees when they beat sBG (else None)."""

    def __init__(self, *, sbg: Any, default_period_days: float, period_note: str, churn: Any = None) -> None:
        self.sbg = sbg
        self.default_period_days = float(default_period_days)
        self.period_note = period_note
        self.churn = churn
        self.source = "boosted trees (cancellation)" if churn is not None else "sBG (cancellation)"

    def add_features(self, feats: pd.DataFrame, tables: Any, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
        """`feats` (purchase features at `cutoff`) with the subscription features (from `tables`, a
        :class:`~clientfolio.predict.training.Tables`) and sBG's P(cancel) joined; missing for customers
        who are not active subscribers."""
        sf = subscriber_features(subscription_base(tables.subscriptions, cutoff, self.default_period_days),
                                 tables.events)
        out = feats.join(sf, how="left")
        out["sbg_p_cancel"] = sbg_p_cancel(self.sbg, out, horizon)
        return out

    def risk(self, X: pd.DataFrame) -> pd.Series:
        """P(cancel in the horizon) of the rows of `X` (active subscribers)."""
        if self.churn is not None:
            return self.churn.predict_risk(X)
        return X["sbg_p_cancel"].astype(float)
