"""Experiments per segment: a reproducible treatment/holdout split, its record, and an honest read-out.

The split: a customer's arm comes from sha256 of ``"{seed}:{customer_id}"``, its first 64 bits
read as a number in [0, 1); below the holdout share means holdout.  It depends on nothing but
the seed and the id, so the same seed gives the same split on any machine, in any row order,
and a customer keeps their arm when the segment grows.  The seed defaults to the experiment's
name, so two experiments do not hold out the same customers every time.

The read-out after the window (``window_days`` from the start), per arm:

- conversion: the share who ordered within the window;
- revenue per customer: net revenue (refunds subtracted) within the window, zero for those who
  did not buy;
- retention: the share still a customer at the read-out -- ordered again any time from the start
  to the read-out date, or, for those who did not, P(alive) >= 0.5 in a model state fitted after
  the window ended (when there is one).

Proportions (conversion, retention) get the difference in points with Newcombe's score interval
and a two-proportion z-test; revenue gets Welch's t-test and a bootstrap interval, because
revenue per customer is skewed and mostly zeros (see `clientfolio.actions.stats`).  A difference
is called detected only when the test's p-value is below alpha and the interval excludes zero
(they agree except at the border, which is reported as such).  Groups under 30 customers, or
with fewer than 5 customers who did (or did not) convert, are too small for a conclusion and
the read-out says so.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from clientfolio.actions import stats
from clientfolio.actions.members import segment_members, snapshot_segments, state_settings
from clientfolio.core.errors import ClientfolioError
from clientfolio.core.money import format_money
from clientfolio.store.base import Store
from clientfolio.store.live import now_utc

Metric = Literal["conversion", "revenue", "retention"]
METRICS: tuple[str, ...] = ("conversion", "revenue", "retention")
MIN_PER_ARM = 30  # below this the normal approximations behind every test here are not to be trusted
MIN_EVENTS = 5  # per arm, of each outcome (bought / did not), for the proportion tests
BOOTSTRAP = 2000


class ExperimentError(ClientfolioError):
    """An experiment that cannot be started or read out as asked."""


# ------------------------------------------------------------------------------------ the split

def _unit(seed: str, customer_id: str) -> float:
    h = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split(customer_ids: Iterable[str], seed: str, holdout_share: float = 0.2) -> pd.DataFrame:
    """customer_id, arm ('treatment' / 'holdout') for each id, sorted by id; reproducible from the seed alone."""
    _check_share(holdout_share)
    ids = sorted({str(c) for c in customer_ids})
    u = np.array([_unit(str(seed), c) for c in ids], dtype=float)
    return pd.DataFrame({"customer_id": ids, "arm": np.where(u < holdout_share, "holdout", "treatment")})


def _check_share(holdout_share: float) -> None:
    if not 0 < holdout_share < 1:
        raise ExperimentError(f"holdout share must be between 0 and 1 (e.g. 0.2 for 20%), got {holdout_share}")


# ------------------------------------------------------------------------------------ starting

@dataclass
class Experiment:
    """A recorded experiment: what was split, how, and the size of each arm."""

    name: str
    segment_kind: str
    segment: str
    started_at: datetime
    window_days: int
    seed: str
    holdout_share: float
    metric: str
    treatment: int
    holdout: int
    description: str | None = None

    @property
    def window_end(self) -> datetime:
        return self.started_at + timedelta(days=self.window_days)

    @property
    def text(self) -> str:
        out = (f"Experiment '{self.name}' on {self.segment} ({self.segment_kind}): {self.treatment:,} customers "
               f"get the treatment, {self.holdout:,} are held out ({self.holdout_share:.0%}, seed '{self.seed}'). "
               f"Read it out after {self.window_end:%Y-%m-%d} ({self.window_days} days).")
        n = self.treatment + self.holdout
        if n:
            z = (self.holdout - n * self.holdout_share) / math.sqrt(n * self.holdout_share * (1 - self.holdout_share))
            if abs(z) > 3:
                out += (f" Note: by chance the holdout is {self.holdout / n:.1%} of the segment, not "
                        f"{self.holdout_share:.0%}; the split is still random and the read-out valid, but another "
                        "seed would give groups closer to the share asked for.")
        return out


def start_experiment(store: Store, name: str, segment_kind: str, segment: str, holdout_share: float = 0.2,
                     seed: str | int | None = None, metric: Metric = "conversion", window_days: int = 60,
                     at: datetime | None = None, description: str | None = None) -> Experiment:
    """Split the segment's customers into treatment and holdout and record both, in one transaction.

    `at` is the start (default now); the members are the segment's current ones, or those of the
    latest snapshot on or before `at` when the current state is newer than `at`.  `seed`
    defaults to `name`.  `metric` is the primary metric the read-out leads with.
    """
    if not name or not name.strip():
        raise ExperimentError("an experiment needs a name, e.g. 'winback-2025-03'")
    if metric not in METRICS:
        raise ExperimentError(f"metric must be one of {', '.join(METRICS)}, got '{metric}'")
    if int(window_days) < 1:
        raise ExperimentError(f"window_days must be at least 1, got {window_days}")
    _check_share(holdout_share)
    old = store.query("SELECT started_at FROM experiments WHERE experiment_id = ?", [name])
    if len(old):
        raise ExperimentError(f"an experiment named '{name}' exists (started {pd.Timestamp(old['started_at'][0]):%Y-%m-%d}"
                              "); choose another name")
    start = pd.Timestamp(at).to_pydatetime() if at is not None else now_utc()
    ids = segment_members(store, segment_kind, segment, _members_at(store, start) if at is not None else None)
    seed_text = name if seed is None else str(seed)
    arms = split(ids, seed_text, holdout_share)
    arms["experiment_id"] = name
    arms["assigned_at"] = start
    row = pd.DataFrame({"experiment_id": [name], "segment_kind": [segment_kind], "segment": [segment],
                        "created_at": [now_utc()], "started_at": [start], "ended_at": [None], "seed": [seed_text],
                        "holdout_share": [float(holdout_share)], "metric": [metric], "window_days": [int(window_days)],
                        "description": [description]})
    with store.transaction() as tx:
        tx.insert("experiments", row)
        tx.insert("experiment_assignments", arms[["experiment_id", "customer_id", "arm", "assigned_at"]])
    n_h = int((arms["arm"] == "holdout").sum())
    return Experiment(name, segment_kind, segment, start, int(window_days), seed_text, float(holdout_share), metric,
                      len(arms) - n_h, n_h, description)


def _members_at(store: Store, at: datetime) -> datetime | None:
    """None (the current members) unless the current state is newer than `at`: then the snapshot before `at`."""
    if "as_of" not in store.customer_state_columns():
        return at
    t = store.query("SELECT max(as_of) AS t FROM customer_state")["t"].iloc[0]
    return None if t is None or pd.isna(t) or pd.Timestamp(t) <= pd.Timestamp(at) else at


def experiments(store: Store) -> pd.DataFrame:
    """Every recorded experiment with the size of each arm, newest first."""
    return store.query(
        "SELECT e.experiment_id AS name, e.segment_kind, e.segment, e.started_at, e.window_days, e.metric, "
        "e.holdout_share, e.seed, e.description, "
        "sum(CASE WHEN a.arm = 'treatment' THEN 1 ELSE 0 END) AS treatment, "
        "sum(CASE WHEN a.arm = 'holdout' THEN 1 ELSE 0 END) AS holdout "
        "FROM experiments e LEFT JOIN experiment_assignments a ON a.experiment_id = e.experiment_id "
        "GROUP BY e.experiment_id, e.segment_kind, e.segment, e.started_at, e.window_days, e.metric, "
        "e.holdout_share, e.seed, e.description ORDER BY e.started_at DESC, e.experiment_id")


def get_experiment(store: Store, name: str) -> Experiment:
    """A recorded experiment by name (ExperimentError naming the recorded ones if there is none)."""
    df = experiments(store)
    row = df[df["name"] == name]
    if row.empty:
        known = ", ".join(df["name"].astype(str)) or "none yet (start one with `clientfolio experiment start`)"
        raise ExperimentError(f"no experiment named '{name}'; recorded: {known}")
    r = row.iloc[0]
    return Experiment(str(r["name"]), str(r["segment_kind"]), str(r["segment"]),
                      pd.Timestamp(r["started_at"]).to_pydatetime(), int(r["window_days"]), str(r["seed"]),
                      float(r["holdout_share"]), str(r["metric"]), int(r["treatment"] or 0), int(r["holdout"] or 0),
                      None if pd.isna(r["description"]) else str(r["description"]))


def assignments(store: Store, name: str) -> pd.DataFrame:
    """customer_id, arm, assigned_at of an experiment, sorted by customer."""
    get_experiment(store, name)
    df = store.query("SELECT customer_id, arm, assigned_at FROM experiment_assignments WHERE experiment_id = ? "
                     "ORDER BY customer_id", [name])
    return df.astype({"customer_id": str, "arm": str})


# ------------------------------------------------------------------------------------ sample size

@dataclass(frozen=True)
class SampleSize:
    """Customers needed to detect a rise in a rate, per arm and in total."""

    baseline_rate: float
    minimum_effect: float
    alpha: float
    power: float
    holdout_share: float
    treatment: int
    holdout: int

    @property
    def total(self) -> int:
        return self.treatment + self.holdout

    @property
    def text(self) -> str:
        return (f"To detect a rise from {self.baseline_rate:.1%} to {self.baseline_rate + self.minimum_effect:.1%} "
                f"({_pts(self.minimum_effect)}) with {self.power:.0%} power at a {self.alpha:.0%} two-sided error "
                f"rate, a test needs {self.total:,} customers: {self.treatment:,} treated and {self.holdout:,} held "
                f"out ({self.holdout_share:.0%}).")


def sample_size(baseline_rate: float, minimum_effect: float, alpha: float = 0.05, power: float = 0.8,
                holdout_share: float = 0.2, continuity_correction: bool = False) -> SampleSize:
    """Customers needed to detect an absolute rise of `minimum_effect` over `baseline_rate` (0.05 = 5 points).

    Two-sided two-proportion z-test (the one the read-out uses), normal approximation, groups
    split by `holdout_share`; `continuity_correction` adds Fleiss's correction (a slightly
    larger, more conservative answer, as in his tables).
    """
    _check_rate(baseline_rate, minimum_effect, alpha, power)
    _check_share(holdout_share)
    n_h = stats.holdout_size(baseline_rate, minimum_effect, alpha, power, holdout_share, continuity_correction)
    n_h_int = math.ceil(n_h - 1e-9)
    n_t = math.ceil(n_h * (1 - holdout_share) / holdout_share - 1e-9)
    return SampleSize(baseline_rate, minimum_effect, alpha, power, holdout_share, n_t, n_h_int)


def _check_rate(baseline_rate: float, minimum_effect: float, alpha: float, power: float) -> None:
    if not 0 < baseline_rate < 1:
        raise ExperimentError(f"baseline rate must be between 0 and 1 (e.g. 0.2 for 20%), got {baseline_rate}")
    if not 0 < minimum_effect < 1 - baseline_rate:
        raise ExperimentError(f"minimum effect is the absolute rise in the rate (0.05 = 5 points) and must keep the "
                              f"rate below 100%; got {minimum_effect} on a baseline of {baseline_rate}")
    if not 0 < alpha < 0.5 or not 0.5 <= power < 1:
        raise ExperimentError(f"alpha must be in (0, 0.5) and power in [0.5, 1); got alpha={alpha}, power={power}")


@dataclass
class Advice:
    """Sample-size advice for one segment: is it big enough for the effect asked for?"""

    segment_kind: str
    segment: str
    customers: int
    baseline_rate: float
    baseline_source: str
    needed: SampleSize
    detectable: float  # the smallest absolute rise this segment could detect (NaN: none)
    enough: bool
    text: str


def advise(store: Store, segment_kind: str, segment: str, minimum_effect: float, baseline_rate: float | None = None,
           alpha: float = 0.05, power: float = 0.8, holdout_share: float = 0.2, window_days: int = 60) -> Advice:
    """Before a test: is the segment big enough to detect `minimum_effect`, and what could it detect?

    Without `baseline_rate`, the rate is measured: of the customers in the segment in the latest
    snapshot at least `window_days` before the last order, the share who ordered within
    `window_days` after it.
    """
    ids = segment_members(store, segment_kind, segment)
    source = "given"
    if baseline_rate is None:
        baseline_rate, source = historical_rate(store, segment_kind, segment, window_days)
    need = sample_size(baseline_rate, minimum_effect, alpha, power, holdout_share)
    can = stats.detectable_lift(len(ids), baseline_rate, alpha, power, holdout_share)
    enough = len(ids) >= need.total
    head = (f"{segment} ({segment_kind}) has {len(ids):,} customers; baseline {baseline_rate:.1%} ordering within "
            f"{window_days} days ({source}).")
    if enough:
        verdict = (f"Enough: {need.text} With all {len(ids):,}, the test could detect a rise of "
                   f"{_pts(can)}.")
    else:
        could = (f"it could detect a rise of {_pts(can)} or more (from {baseline_rate:.1%} to "
                 f"{baseline_rate + can:.1%})" if not math.isnan(can) else "it could not detect any rise reliably")
        verdict = (f"Too small for the effect asked for: {need.text} With {len(ids):,} customers {could}. "
                   "Run it longer or on a larger segment, or test for a bigger effect.")
    return Advice(segment_kind, segment, len(ids), baseline_rate, source, need, can, enough, f"{head} {verdict}")


def historical_rate(store: Store, segment_kind: str, segment: str, window_days: int) -> tuple[float, str]:
    """(share of a past snapshot's members who ordered within `window_days` after it, how it was measured)."""
    last = store.query("SELECT max(ts) AS t FROM transactions")["t"].iloc[0]
    if last is None or pd.isna(last):
        raise ExperimentError("the store has no orders; give the baseline rate (--baseline 0.2 for 20%)")
    snap = snapshot_segments(store, segment_kind, pd.Timestamp(last) - pd.Timedelta(days=window_days))
    ids = snap.loc[snap["segment"] == segment, "customer_id"].tolist() if len(snap) else []
    if len(ids) < MIN_PER_ARM:
        raise ExperimentError(f"no snapshot of {segment} ({segment_kind}) {window_days}+ days before the last order "
                              "with enough customers to measure its rate; give the baseline rate (--baseline 0.2 "
                              "for 20%), e.g. the share who ordered after a similar campaign")
    t0 = pd.Timestamp(snap.attrs["as_of"]).to_pydatetime()
    df = store.query("SELECT count(DISTINCT customer_id) AS n FROM transactions WHERE NOT is_refund AND ts > ? "
                     "AND ts <= ? AND customer_id IN (SELECT unnest(CAST(? AS TEXT[])))",
                     [t0, t0 + timedelta(days=window_days), ids])
    rate = int(df["n"].iloc[0]) / len(ids)
    rate = min(max(rate, 0.5 / len(ids)), 1 - 0.5 / len(ids))
    return rate, f"measured: {len(ids):,} customers in it on {t0:%Y-%m-%d}"


# ------------------------------------------------------------------------------------ read-out

@dataclass
class MetricResult:
    metric: str
    comparison: stats.Comparison
    treatment_n: int
    holdout_n: int
    verdict: Literal["detected", "not detected", "borderline", "too small"]
    text: str
    basis: str


@dataclass
class Readout:
    """An experiment's results: one row per metric in `table`, the same in words in `text`."""

    experiment: Experiment
    as_of: datetime
    complete: bool  # the whole window is in the data
    results: list[MetricResult]
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05

    @property
    def table(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            c = r.comparison
            rows.append({"metric": r.metric, "treatment_n": r.treatment_n, "holdout_n": r.holdout_n,
                         "treatment": c.treatment, "holdout": c.holdout, "difference": c.difference,
                         "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value, "verdict": r.verdict,
                         "test": c.test, "basis": r.basis})
        return pd.DataFrame(rows)

    @property
    def text(self) -> str:
        e = self.experiment
        head = (f"{e.name}: {e.segment} ({e.segment_kind}), started {e.started_at:%Y-%m-%d}, {e.treatment:,} treated "
                f"vs {e.holdout:,} held out, data to {self.as_of:%Y-%m-%d}. Each interval is a {1 - self.alpha:.0%} "
                "confidence interval for the difference treated minus held out.")
        return "\n".join([head] + [r.text for r in self.results] + self.notes)


def read_out(store: Store, name: str, as_of: datetime | None = None, alpha: float = 0.05) -> Readout:
    """Results of an experiment per metric, with intervals, tests and a verdict in words.

    `as_of` (default: the last order in the store) bounds the data used; before the window ends
    the read-out is interim and says so.
    """
    e = get_experiment(store, name)
    if as_of is None:
        last = store.query("SELECT max(ts) AS t FROM transactions")["t"].iloc[0]
        if last is None or pd.isna(last):
            raise ExperimentError("the store has no orders yet: import the orders since the start, then read out")
        as_of = pd.Timestamp(last).to_pydatetime()
    as_of = pd.Timestamp(as_of).to_pydatetime()
    if as_of <= e.started_at:
        raise ExperimentError(f"the data reaches {as_of:%Y-%m-%d}, not past the start of '{name}' "
                              f"({e.started_at:%Y-%m-%d}); import newer orders, then read out")
    end = min(as_of, e.window_end)
    complete = as_of >= e.window_end
    out = _outcomes(store, e, end, as_of)
    notes = []
    if not complete:
        days = (as_of - e.started_at).days
        notes.append(f"Interim: the data covers {days} of the {e.window_days} days (to {as_of:%Y-%m-%d}); read out "
                     f"again after {e.window_end:%Y-%m-%d} for the result. Looking early and stopping when a result "
                     "appears raises the error rate above the stated one.")
    t, h = out[out["arm"] == "treatment"], out[out["arm"] == "holdout"]
    subject = e.description or f"the treatment ('{e.name}')"
    results = []
    for metric in sorted(METRICS, key=lambda m: m != e.metric):  # the primary metric first
        if metric == "revenue":
            seed = int.from_bytes(hashlib.sha256(e.seed.encode()).digest()[:4], "big")
            comp = stats.welch_bootstrap(t["revenue"].to_numpy(), h["revenue"].to_numpy(), alpha, BOOTSTRAP, seed)
            basis = f"net revenue per customer within {e.window_days} days (refunds subtracted)"
            small = min(len(t), len(h)) < MIN_PER_ARM
        else:
            col = "ordered" if metric == "conversion" else "retained"
            x_t, x_h = int(t[col].sum()), int(h[col].sum())
            comp = stats.two_proportions(x_t, len(t), x_h, len(h), alpha)
            basis = (f"ordered within {e.window_days} days of the start" if metric == "conversion"
                     else out.attrs["retention_basis"])
            small = (min(len(t), len(h)) < MIN_PER_ARM
                     or min(x_t, x_h, len(t) - x_t, len(h) - x_h) < MIN_EVENTS)
        verdict, text = _words(metric, comp, len(t), len(h), small, alpha, subject, e, store)
        results.append(MetricResult(metric, comp, len(t), len(h), verdict, text, basis))
    return Readout(e, as_of, complete, results, notes, alpha)


def _outcomes(store: Store, e: Experiment, end: datetime, as_of: datetime) -> pd.DataFrame:
    """Per assigned customer: arm, ordered (in the window), revenue (in the window), retained."""
    df = store.query(
        "SELECT a.customer_id, a.arm, "
        "max(CASE WHEN t.ts < ? AND NOT t.is_refund THEN 1 ELSE 0 END) AS ordered, "
        "coalesce(sum(CASE WHEN t.ts < ? THEN t.amount ELSE 0 END), 0) AS revenue, "
        "max(CASE WHEN NOT t.is_refund THEN 1 ELSE 0 END) AS ordered_since "
        "FROM experiment_assignments a LEFT JOIN transactions t ON t.customer_id = a.customer_id "
        "AND t.ts >= ? AND t.ts <= ? WHERE a.experiment_id = ? GROUP BY a.customer_id, a.arm ORDER BY a.customer_id",
        [end, end, e.started_at, as_of, e.name])
    df["ordered"] = df["ordered"].fillna(0).astype(int).astype(bool)
    df["ordered_since"] = df["ordered_since"].fillna(0).astype(int).astype(bool)
    df["revenue"] = df["revenue"].astype(float)
    retained = df["ordered_since"].to_numpy().copy()
    basis = f"ordered again between the start and {as_of:%Y-%m-%d}"
    cols = store.customer_state_columns()
    if "p_alive" in cols and "as_of" in cols:
        ps = store.query("SELECT customer_id, p_alive, as_of FROM customer_state WHERE as_of >= ? AND customer_id IN "
                         "(SELECT customer_id FROM experiment_assignments WHERE experiment_id = ?)",
                         [e.window_end, e.name])
        if len(ps):
            alive = df["customer_id"].map(ps.set_index("customer_id")["p_alive"].astype(float)).to_numpy()
            retained = retained | (np.nan_to_num(alive, nan=0.0) >= 0.5)
            basis += ", or P(alive) >= 0.5 in the model fitted after the window"
    df["retained"] = retained
    df.attrs["retention_basis"] = basis
    return df


def _pts(d: float) -> str:
    return f"{d * 100:.1f} points"


def _words(metric: str, c: stats.Comparison, n_t: int, n_h: int, small: bool, alpha: float, subject: str,
           e: Experiment, store: Store) -> tuple[str, str]:
    """(verdict, a sentence) for one metric."""
    level = f"{1 - alpha:.0%}"
    if metric == "revenue":
        money = _money(store)
        fmt = lambda v: money(v)  # noqa: E731
        what = f"revenue per {e.segment} customer within {e.window_days} days"
        levels = f"{fmt(c.treatment)} treated vs {fmt(c.holdout)} held out"
        diff = f"{fmt(abs(c.difference))} {'more' if c.difference >= 0 else 'less'} per customer"
        ci = f"{level} CI {fmt(c.ci_low)} to {fmt(c.ci_high)}"
    else:
        fmt = lambda v: f"{v * 100:.1f}"  # noqa: E731
        what = ("conversion (ordered within {0} days)" if metric == "conversion" else "retention").format(e.window_days)
        levels = f"{c.treatment:.1%} treated vs {c.holdout:.1%} held out"
        verb = "brought back" if metric == "conversion" else "kept"
        diff = f"{verb} {abs(c.difference) * 100:.1f} points {'more' if c.difference >= 0 else 'fewer'} {e.segment} customers"
        ci = f"{level} CI {fmt(c.ci_low)} to {fmt(c.ci_high)} points"
    if any(math.isnan(v) for v in (c.difference, c.ci_low, c.ci_high)):
        return "too small", f"{metric.capitalize()}: no comparison possible ({c.test})."
    if small:
        return "too small", (f"{metric.capitalize()}: groups too small for a conclusion ({n_t:,} treated, {n_h:,} held "
                             f"out; at least {MIN_PER_ARM} per arm and {MIN_EVENTS} buyers and non-buyers in each are "
                             f"needed). Observed {levels}; {ci}.")
    excludes = c.ci_low > 0 or c.ci_high < 0
    p = f"p = {c.p_value:.3g}" if c.p_value >= 0.001 else "p < 0.001"
    if stats.significant(c, alpha):
        if metric == "revenue":
            return "detected", f"Revenue: {subject} brought {diff} ({levels}; {ci}; {p})."
        return "detected", f"{metric.capitalize()}: {subject} {diff} ({levels}; {ci}; {p})."
    if (c.p_value < alpha) != excludes:
        return "borderline", (f"{metric.capitalize()}: borderline, treat as not shown: {p} but the {ci} "
                              f"{'excludes' if excludes else 'includes'} zero ({levels}).")
    hint = ""
    if metric != "revenue":
        can = stats.detectable_lift(n_t + n_h, min(max(c.holdout, 0.001), 0.999), alpha, 0.8,
                                    n_h / (n_t + n_h))
        if not math.isnan(can):
            hint = f" With these group sizes only a difference of about {_pts(can)} or more would reliably show."
    return "not detected", (f"{metric.capitalize()}: no difference detectable in {what}: {levels}; the interval "
                            f"{ci.split('CI ')[1]} includes zero ({p}).{hint}")


def _money(store: Store):  # noqa: ANN202 - a formatter
    cur = str(state_settings(store).get("currency") or "")
    return lambda v: format_money(v, cur)
