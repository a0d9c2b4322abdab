"""Goals per segment in SMART form, and a plain verdict on how each is going.

A goal is specific (a segment of a kind and one metric), measurable (the metric is measured on
the store's current customer state, and its baseline when the goal is set), achievable and
relevant by the owner's choice, and time-bound (a deadline): "cut churn risk in At Risk by 10%
by 2027-06-30".  The change is relative to the baseline (-0.10 = 10% lower).

Tracking compares the metric now with the straight line from the baseline (on the date of the
data it was measured on) to the target (on the deadline):

- achieved: the target is reached (before the deadline: achieved early);
- missed: the data reaches the deadline and the target is not reached;
- too early: no newer data since the goal was set, or less than a tenth of the time has passed
  (a number that has barely had time to move says nothing yet);
- on track / behind: at or past the straight line expected by today, or short of it.

"Today" is the date of the data (the customer state's as-of date), not the clock: an owner who
has not imported since the goal was set is told so instead of being told they are behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pandas as pd

from clientfolio.actions.members import SEG, segment_kinds, state_settings
from clientfolio.core.errors import ClientfolioError
from clientfolio.core.money import format_money
from clientfolio.store.base import Store
from clientfolio.store.live import now_utc

# metric -> (customer_state column, aggregate, words, how shown)
METRICS: dict[str, tuple[str | None, str, str, str]] = {
    "churn_rate": ("churn_risk", "avg", "churn risk (mean predicted chance a customer has stopped buying)", "pct"),
    "retention": ("p_alive", "avg", "retention (mean predicted chance a customer is still buying)", "pct"),
    "size": (None, "count", "size (customers in the segment)", "count"),
    "revenue": ("revenue_12m", "sum", "revenue of the last 12 months", "money"),
    "clv": ("clv", "avg", "mean predicted customer lifetime value", "money"),
    "clv_total": ("clv", "sum", "total predicted customer lifetime value", "money"),
    "aov": ("aov", "avg", "average order value", "money"),
}
Verdict = Literal["achieved", "missed", "on track", "behind", "too early"]
MIN_ELAPSED = 0.10  # share of the time to the deadline before on track / behind means anything
SMALL_SEGMENT = 30


class GoalError(ClientfolioError):
    """A goal that cannot be set or tracked as asked."""


@dataclass
class Goal:
    goal_id: str
    segment_kind: str
    segment: str
    metric: str
    change: float
    baseline: float
    baseline_at: datetime
    deadline: datetime
    text: str

    @property
    def target(self) -> float:
        return self.baseline * (1 + self.change)


@dataclass
class Progress:
    """Where a goal stands: the numbers and the verdict in words."""

    goal: Goal
    measured_at: datetime
    current: float
    expected_now: float  # on the straight line from baseline to target
    elapsed: float  # share of the time from baseline to deadline that has passed (by the data's date)
    customers: int
    verdict: Verdict
    text: str


def measure(store: Store, segment_kind: str, segment: str, metric: str) -> tuple[float, int, datetime]:
    """(the metric on the segment's current members, how many members, the date of the data)."""
    if metric not in METRICS:
        raise GoalError(f"unknown goal metric '{metric}': use one of {', '.join(METRICS)}")
    cols = store.customer_state_columns()
    if SEG + segment_kind not in cols or "as_of" not in cols:
        kinds = segment_kinds(store)
        hint = f"the kinds here are: {', '.join(kinds)}" if kinds else "analyse into this store first " \
            "(`clientfolio analyze FILE --store ...`)"
        raise GoalError(f"no current '{segment_kind}' segments in the store to measure a goal on; {hint}")
    col, agg, _, _ = METRICS[metric]
    if col is not None and col not in cols:
        raise GoalError(f"the store's customer state has no {col} column, so '{metric}' cannot be measured; "
                        "re-run `clientfolio analyze` into this store")
    value = "count(*)" if col is None else f"{agg}({col})"
    df = store.query(f"SELECT {value} AS v, count(*) AS n, max(as_of) AS t FROM customer_state "
                     f"WHERE {SEG}{segment_kind} = ?", [segment])
    when = store.query("SELECT max(as_of) AS t FROM customer_state")["t"].iloc[0]
    n = int(df["n"].iloc[0])
    v = float(df["v"].iloc[0]) if n and df["v"].iloc[0] is not None and not pd.isna(df["v"].iloc[0]) else math.nan
    if n == 0:
        v = 0.0 if metric in ("size", "revenue", "clv_total") else math.nan
    return v, n, pd.Timestamp(when).to_pydatetime()


def _fmt(store: Store | None, metric: str, v: float) -> str:
    kind = METRICS[metric][3]
    if math.isnan(v):
        return "n/a"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "count":
        return f"{v:,.0f}"
    return format_money(v, str(state_settings(store).get("currency") or "") if store is not None else "")


def _phrase(segment_kind: str, segment: str, metric: str, change: float, deadline: datetime) -> str:
    verb = "cut" if change < 0 else "grow"
    return f"{verb} {METRICS[metric][2].split(' (')[0]} in {segment} ({segment_kind}) by {abs(change):.0%} by " \
           f"{deadline:%Y-%m-%d}"


def add_goal(store: Store, segment_kind: str, segment: str, metric: str, change: float, deadline: datetime | str,
             goal_id: str | None = None) -> Goal:
    """Set a goal: measure its baseline now and store it.

    `change` is relative: -0.10 cuts the metric by 10%, 0.05 raises it by 5%.
    """
    if not -1 < change < 10 or change == 0:
        raise GoalError(f"change is relative to today's value (-0.10 = 10% lower, 0.05 = 5% higher) and cannot be "
                        f"zero or -100% or less; got {change}")
    base, n, at = measure(store, segment_kind, segment, metric)
    if n == 0:
        raise GoalError(f"{segment} ({segment_kind}) has no customers now, so a goal relative to today cannot be set")
    if math.isnan(base) or base == 0:
        raise GoalError(f"{metric} of {segment} is {'unknown' if math.isnan(base) else 'zero'} today, so a relative "
                        "change cannot be measured; choose another metric")
    due = pd.Timestamp(deadline).to_pydatetime()
    if due <= at:
        raise GoalError(f"the deadline {due:%Y-%m-%d} must be after the date of the data ({at:%Y-%m-%d})")
    existing = set(store.query("SELECT goal_id FROM goals")["goal_id"].astype(str))
    if goal_id is None:
        k = len(existing) + 1
        while f"goal-{k}" in existing:
            k += 1
        goal_id = f"goal-{k}"
    elif goal_id in existing:
        raise GoalError(f"a goal named '{goal_id}' exists; choose another name")
    text = _phrase(segment_kind, segment, metric, change, due)
    text += f": from {_fmt(store, metric, base)} to {_fmt(store, metric, base * (1 + change))}"
    with store.transaction() as tx:
        tx.insert("goals", pd.DataFrame({
            "goal_id": [goal_id], "segment_kind": [segment_kind], "segment": [segment], "metric": [metric],
            "change": [float(change)], "baseline": [base], "baseline_at": [at], "deadline": [due],
            "created_at": [now_utc()], "text": [text]}))
    return Goal(goal_id, segment_kind, segment, metric, float(change), base, at, due, text)


def goals(store: Store) -> list[Goal]:
    """Every stored goal, by deadline."""
    df = store.query("SELECT * FROM goals ORDER BY deadline, goal_id")
    return [Goal(str(r.goal_id), str(r.segment_kind), str(r.segment), str(r.metric), float(r.change),
                 float(r.baseline), pd.Timestamp(r.baseline_at).to_pydatetime(),
                 pd.Timestamp(r.deadline).to_pydatetime(), str(r.text)) for r in df.itertuples()]


def track(store: Store, goal_id: str | None = None) -> list[Progress]:
    """The verdict on every goal (or one), measured on the store's current data."""
    gs = goals(store)
    if goal_id is not None:
        gs = [g for g in gs if g.goal_id == goal_id]
        if not gs:
            raise GoalError(f"no goal '{goal_id}'; list them with `clientfolio goal list`")
    return [progress(store, g) for g in gs]


def progress(store: Store, g: Goal) -> Progress:
    """One goal's verdict with the numbers behind it."""
    v, n, at = measure(store, g.segment_kind, g.segment, g.metric)
    span = (g.deadline - g.baseline_at).total_seconds()
    f = (at - g.baseline_at).total_seconds() / span
    expected = g.baseline + (g.target - g.baseline) * min(max(f, 0.0), 1.0)
    sign = 1 if g.change > 0 else -1
    fmt = lambda x: _fmt(store, g.metric, x)  # noqa: E731
    now = f"{fmt(v)} on {at:%Y-%m-%d} (baseline {fmt(g.baseline)} on {g.baseline_at:%Y-%m-%d}, target {fmt(g.target)})"
    if math.isnan(v):
        verdict: Verdict = "too early"
        words = f"cannot be measured now: {g.segment} has no customers with a {g.metric} value"
    elif (v - g.target) * sign >= 0:
        verdict = "achieved"
        words = f"achieved{' early' if at < g.deadline else ''}: {now}"
    elif at >= g.deadline:
        verdict, words = "missed", f"missed: {now}"
    elif f <= 0:
        verdict = "too early"
        words = (f"too early: no newer data since the goal was set ({g.baseline_at:%Y-%m-%d}); import new orders "
                 "and analyse to see progress")
    elif f < MIN_ELAPSED:
        verdict = "too early"
        words = f"too early to judge: {f:.0%} of the time to the deadline has passed; {now}"
    else:
        verdict = "on track" if (v - expected) * sign >= 0 else "behind"
        words = (f"{verdict}: {now}; the straight path to the target expects {fmt(expected)} by now "
                 f"({f:.0%} of the time has passed)")
    if at < g.deadline and now_utc() >= g.deadline:
        words += (f". The deadline has passed but the data ends on {at:%Y-%m-%d}: import the orders up to "
                  f"{g.deadline:%Y-%m-%d} to judge it")
    if 0 < n < SMALL_SEGMENT:
        words += f". Only {n} customers are in the segment: a few of them move this number"
    return Progress(g, at, v, expected, f, n, verdict, f"{g.goal_id} ({g.text}): {words}.")


def progress_table(items: list[Progress]) -> pd.DataFrame:
    """One row per goal: the numbers behind each verdict."""
    return pd.DataFrame([{"goal_id": p.goal.goal_id, "segment_kind": p.goal.segment_kind, "segment": p.goal.segment,
                          "metric": p.goal.metric, "change": p.goal.change, "baseline": p.goal.baseline,
                          "target": p.goal.target, "deadline": p.goal.deadline, "measured_at": p.measured_at,
                          "current": p.current, "expected_now": p.expected_now, "elapsed": p.elapsed,
                          "customers": p.customers, "verdict": p.verdict} for p in items])
