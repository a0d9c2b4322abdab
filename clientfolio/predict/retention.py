"""Retention curves per acquisition cohort and per segment (Kaplan–Meier), and whether retention improves.

What "retained" means here: a customer is *still buying* ``t`` days after their first purchase when
they made a purchase on day ``t`` or later without ever leaving a gap longer than the shop's
**lapse window** ``W`` days.  So a customer's retention time is the day (counted from the first
purchase) of their last purchase before their first gap longer than ``W``; a later comeback is not
counted (it is a reactivation).  ``S(0)`` is the share who came back at all within ``W`` days.

Censoring: a lapse at day ``t`` is only known ``W`` days later, so a customer acquired ``a`` days
before ``as_of`` has ``a − W`` days of usable follow-up.  One who has not lapsed (bought within the
last ``W`` days) is censored there — never counted as lost; censoring at the last purchase instead
would keep them "at risk" over days where their lapse could not yet be seen and flatter the curve.
Customers acquired less than ``W`` days before ``as_of`` are too recent to say anything yet; they are
counted (``too_recent``) and left out of the curves.  Customers first seen within ``W`` days of the start of the data
may have been buying before it (``before_data``): their cohort is marked, and the trend leaves them
out, since old regulars would otherwise make the earliest cohort look better than any new one.

``W`` defaults to the shop's own rhythm: each repeat customer's usual (median) gap between purchase
days, and of those the 90th percentile, each customer counted once (so daily regulars do not set
the window for everyone), bounded to 14–365 days; it can be set.

Estimates: Kaplan–Meier with Greenwood variances and log–log ("exponential Greenwood") pointwise
95% intervals — each interval covers the share still buying at that one day, not the whole curve.
Implemented here with numpy/scipy (about 40 lines) rather than ``lifelines``, which would pull in
matplotlib, autograd and formulaic for one estimator; the tests check it against the textbook
6-MP example (Freireich et al. 1963).

"Is retention getting better?": customers acquired in the most recent ``recent_months`` months that
have ``day`` days of follow-up are compared with everyone acquired before them: the difference of
``S(day)`` with a 95% interval (for this one comparison) and a log-rank test over the first ``day``
days.  Cohorts or segments with fewer than ``min_customers`` customers get no curve: a sentence
says they are too few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clientfolio.core.errors import ClientfolioError

MIN_CUSTOMERS = 30
Z95 = float(stats.norm.ppf(0.975))
COVERAGE = "pointwise 95% interval: covers the share still buying at that one day (not the whole curve)"


def kaplan_meier(durations: Sequence[float] | np.ndarray, observed: Sequence[bool] | np.ndarray,
                 level: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier survival at each distinct event or censoring time.

    Columns: time, at_risk, events, censored, survival, se (Greenwood), lower, upper (log–log
    pointwise interval at `level`).  ``attrs["coverage"]`` says what the interval covers.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    if d.shape != e.shape or d.ndim != 1:
        raise ClientfolioError("kaplan_meier: durations and observed must be 1-D and of the same length")
    if np.isnan(d).any() or (d < 0).any():
        raise ClientfolioError("kaplan_meier: durations must be non-negative numbers")
    times = np.unique(d)
    deaths = np.array([np.sum(e & (d == t)) for t in times], dtype=float)
    cens = np.array([np.sum(~e & (d == t)) for t in times], dtype=float)
    at_risk = len(d) - np.concatenate([[0], np.cumsum(deaths + cens)[:-1]])
    surv = np.cumprod(1 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        gw = np.cumsum(np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), np.inf))
        se = surv * np.sqrt(gw)
        z = float(stats.norm.ppf(0.5 + level / 2))
        v = np.sqrt(gw) / np.abs(np.log(surv))  # sd of log(-log S)
        lower = np.exp(-np.exp(np.log(-np.log(surv)) + z * v))
        upper = np.exp(-np.exp(np.log(-np.log(surv)) - z * v))
    one = surv >= 1.0
    lower[one], upper[one] = 1.0, 1.0
    zero = surv <= 0.0
    lower[zero], upper[zero], se[zero] = 0.0, 0.0, 0.0
    out = pd.DataFrame({"time": times, "at_risk": at_risk.astype(int), "events": deaths.astype(int),
                        "censored": cens.astype(int), "survival": surv, "se": np.where(np.isfinite(se), se, np.nan),
                        "lower": lower, "upper": upper})
    out.attrs["coverage"] = COVERAGE.replace("95%", f"{level:.0%}")
    return out


def survival_at(curve: pd.DataFrame, day: float) -> tuple[float, float]:
    """(S(day), its Greenwood standard error) from a :func:`kaplan_meier` table.

    NaN past the last follow-up time (unknown), unless the curve has reached 0 by then.
    """
    if curve.empty or (day > curve["time"].max() and curve["survival"].iloc[-1] > 0):
        return float("nan"), float("nan")
    before = curve[curve["time"] <= day]
    if before.empty:
        return 1.0, 0.0
    row = before.iloc[-1]
    return float(row["survival"]), float(row["se"])


def logrank(d1: np.ndarray, e1: np.ndarray, d2: np.ndarray, e2: np.ndarray) -> tuple[float, float]:
    """Two-group log-rank test: (chi-square statistic, p-value)."""
    d = np.concatenate([d1, d2])
    e = np.concatenate([e1, e2]).astype(bool)
    g = np.concatenate([np.zeros(len(d1), bool), np.ones(len(d2), bool)])
    o_minus_e = var = 0.0
    for t in np.unique(d[e]):
        n = np.sum(d >= t)
        n1 = np.sum((d >= t) & ~g)
        dt = np.sum((d == t) & e)
        d1t = np.sum((d == t) & e & ~g)
        o_minus_e += d1t - dt * n1 / n
        if n > 1:
            var += dt * (n1 / n) * (1 - n1 / n) * (n - dt) / (n - 1)
    if var <= 0:
        return float("nan"), float("nan")
    chi = o_minus_e ** 2 / var
    return float(chi), float(stats.chi2.sf(chi, 1))


def lapse_window(transactions: pd.DataFrame, quantile: float = 0.9) -> int:
    """The shop's lapse window in days: the `quantile` of repeat customers' median gaps, 14–365 (90 if < 20)."""
    days = _purchase_days(transactions)
    days["gap"] = days.groupby("customer_id")["day"].diff().dt.days
    gaps = days.groupby("customer_id")["gap"].median().dropna()
    if len(gaps) < 20:
        return 90
    return int(np.clip(np.ceil(np.quantile(gaps, quantile)), 14, 365))


def _purchase_days(transactions: pd.DataFrame) -> pd.DataFrame:
    col = "ts" if "ts" in transactions.columns else "date"
    if col not in transactions.columns or "customer_id" not in transactions.columns:
        raise ClientfolioError("retention needs transactions with customer_id and ts (or date)")
    t = transactions[transactions["customer_id"].notna()]
    if "amount" in t.columns:
        t = t[t["amount"] > 0]
    day = pd.to_datetime(t[col], utc=True, format="mixed").dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None)
    out = pd.DataFrame({"customer_id": t["customer_id"].astype(str).to_numpy(), "day": day.to_numpy()})
    return out.drop_duplicates().sort_values(["customer_id", "day"]).reset_index(drop=True)


def retention_times(transactions: pd.DataFrame, as_of: Any, lapse_days: int | None = None) -> pd.DataFrame:
    """One row per customer: first, last, duration (days still buying), lapsed (event seen), too_recent.

    Only purchases up to `as_of` count.  See the module notes for the definition and censoring.
    """
    end = pd.Timestamp(as_of)
    end = (end.tz_convert("UTC").tz_localize(None) if end.tzinfo else end).normalize()
    w = lapse_days if lapse_days is not None else lapse_window(transactions)
    days = _purchase_days(transactions)
    days = days[days["day"] <= end]
    if days.empty:
        raise ClientfolioError(f"no purchases up to {end.date()}")
    gap = days.groupby("customer_id")["day"].diff().dt.days
    days = days.assign(broken=(gap > w).groupby(days["customer_id"]).cumsum())
    first = days.groupby("customer_id")["day"].min()
    alive_part = days[days["broken"] == 0]
    last = alive_part.groupby("customer_id")["day"].max()
    ever_broke = days.groupby("customer_id")["broken"].max() > 0
    lapsed = ever_broke | ((end - last).dt.days > w)
    followup = (end - first).dt.days - w  # the last day whose lapse could be seen by as_of
    stayed = (last - first).dt.days
    out = pd.DataFrame({"first": first, "last": last,
                        "duration": np.where(lapsed, stayed, np.minimum(stayed, followup)).astype(float),
                        "lapsed": lapsed.astype(bool), "too_recent": followup < 0,
                        # first seen within W days of the data's start: may be an older customer
                        "before_data": first < days["day"].min() + pd.Timedelta(days=w)})
    out.index.name = "customer_id"
    out.attrs["lapse_days"] = w
    out.attrs["as_of"] = end
    return out


def _period(first: pd.Series, freq: str) -> pd.Series:
    p = first.dt.to_period(freq)
    return p.astype(str)


@dataclass
class Trend:
    """Recent cohorts against earlier ones on S(day): the numbers and a plain sentence."""

    day: int
    recent_label: str
    n_recent: int
    n_earlier: int
    s_recent: float
    s_earlier: float
    diff: float
    low: float
    high: float
    p_logrank: float
    sentence: str
    coverage: str = "95% interval for this one difference of shares still buying at that day"


@dataclass
class RetentionResult:
    """Curves per group (cohort or segment), the thin groups left out, and the trend."""

    by: str
    lapse_days: int
    curves: dict[str, pd.DataFrame]
    sizes: dict[str, int]
    too_few: dict[str, int]
    table: pd.DataFrame
    trend: dict[str, Trend] = field(default_factory=dict)
    definition: str = ""
    coverage: str = COVERAGE

    def sentences(self) -> list[str]:
        out = [self.definition]
        notes = self.table.set_index(self.by)["note"] if "note" in self.table else pd.Series(dtype=str)
        for k in list(self.too_few)[:8]:
            out.append(f"No curve for {self.by.replace('_', ' ')} {k}: {notes.get(k, 'too few customers')}.")
        out += [t.sentence for t in self.trend.values()]
        return out


def _definition(w: int) -> str:
    return (f"Retained = still buying: another purchase with no gap longer than {w} days (the shop's lapse window). "
            f"A lapse shows only after {w} days, so customers who bought within the last {w} days are censored "
            f"(not counted as lost) and those acquired in the last {w} days are too recent to include.")


def retention_curves(times: pd.DataFrame, groups: pd.Series | None = None, *, by: str = "cohort",
                     freq: str = "Q", days: Sequence[int] = (30, 90, 180, 365),
                     min_customers: int = MIN_CUSTOMERS) -> RetentionResult:
    """Kaplan–Meier curves per acquisition cohort (`freq` "Q" or "M" of the first purchase) or per group.

    `groups`: customer_id -> segment (then ``by`` names it, e.g. "lifecycle"); without it, cohorts.
    ``table`` has per group: customers, lapsed, censored, and S at each of `days` with its interval
    (NaN where follow-up is too short), or "too few customers" for thin groups.
    """
    w = int(times.attrs.get("lapse_days", 0))
    if groups is None:
        g = _period(times["first"], freq)
    else:
        s = groups.copy()
        s.index = s.index.astype(str)
        g = times.index.to_series().map(s).fillna("(no segment)").astype(str)
    curves, sizes, thin, rows = {}, {}, {}, []
    for name in sorted(g.unique()):
        every = times[g == name]
        sub = every[~every["too_recent"]]
        sizes[name] = len(sub)
        row: dict[str, Any] = {by: name, "customers": len(every), "too_recent": int(every["too_recent"].sum()),
                               "lapsed": int(sub["lapsed"].sum()), "censored": int((~sub["lapsed"]).sum())}
        if len(sub) < min_customers:
            thin[name] = len(sub)
            row["note"] = (f"too few customers ({len(sub)}) for a curve" if len(sub) or not len(every) else
                           f"too recent: acquired less than {w} days ago")
            rows.append(row)
            continue
        km = kaplan_meier(sub["duration"].to_numpy(), sub["lapsed"].to_numpy())
        curves[name] = km
        for d in days:
            s_d, _ = survival_at(km, d)
            lo, hi = _interval_at(km, d)
            row[f"retained_{d}d"], row[f"low_{d}d"], row[f"high_{d}d"] = s_d, lo, hi
        share = float(every["before_data"].mean())
        row["note"] = (f"{share:.0%} first seen within {w} days of the data's start: may include earlier customers"
                       if share > 0 else "")
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["coverage"] = COVERAGE
    return RetentionResult(by=by, lapse_days=w, curves=curves, sizes=sizes, too_few=thin, table=table,
                           definition=_definition(w))


def _interval_at(km: pd.DataFrame, day: float) -> tuple[float, float]:
    if km.empty or (day > km["time"].max() and km["survival"].iloc[-1] > 0):
        return float("nan"), float("nan")
    before = km[km["time"] <= day]
    if before.empty:
        return 1.0, 1.0
    return float(before["lower"].iloc[-1]), float(before["upper"].iloc[-1])


def retention_trend(times: pd.DataFrame, *, day: int | None = None, recent_months: int = 6,
                    min_customers: int = MIN_CUSTOMERS, label: str = "customers") -> Trend | None:
    """Is retention getting better?  Recent acquisitions (with `day` days of follow-up) against earlier ones.

    Recent = first purchase in the `recent_months` months ending `day` + lapse window days before
    as_of (so each has `day` days of usable follow-up); earlier = first purchase before that.  Returns None when either group is thinner than `min_customers`.
    """
    end = times.attrs["as_of"]
    w = int(times.attrs.get("lapse_days", 0))
    day = int(day if day is not None else 90)
    stop = end - pd.Timedelta(days=day + w)  # everyone recent has `day` days of usable follow-up
    start = stop - pd.DateOffset(months=recent_months)
    known = times[~times["before_data"]] if "before_data" in times else times
    recent = known[(known["first"] > start) & (known["first"] <= stop)]
    earlier = known[known["first"] <= start]
    rl = f"acquired {start.date() + pd.Timedelta(days=1)} to {stop.date()}"
    if len(recent) < min_customers or len(earlier) < min_customers:
        return Trend(day, rl, len(recent), len(earlier), *[float("nan")] * 6,
                     sentence=f"{label[:1].upper() + label[1:]}: too few customers to tell whether retention is improving "
                              f"({len(recent)} {rl}, {len(earlier)} before; at least {min_customers} each needed).")
    km_r = kaplan_meier(recent["duration"], recent["lapsed"])
    km_e = kaplan_meier(earlier["duration"], earlier["lapsed"])
    sr, ser = survival_at(km_r, day)
    se_, see = survival_at(km_e, day)
    diff = sr - se_
    half = Z95 * float(np.hypot(ser, see))
    lo, hi = diff - half, diff + half
    # log-rank over the first `day` days (both groups cut at the same follow-up)
    dr, er = np.minimum(recent["duration"], day), recent["lapsed"] & (recent["duration"] <= day)
    de, ee = np.minimum(earlier["duration"], day), earlier["lapsed"] & (earlier["duration"] <= day)
    _, p = logrank(dr.to_numpy(), er.to_numpy(), de.to_numpy(), ee.to_numpy())
    if lo > 0:
        verdict = "better"
    elif hi < 0:
        verdict = "worse"
    else:
        verdict = "no clear change"
    sentence = (f"{label[:1].upper() + label[1:]}: of those {rl}, {sr:.0%} were still buying {day} days after their first "
                f"purchase, against {se_:.0%} of those acquired before (not counting those already buying when the data "
                f"starts; difference {diff * 100:+.0f} points, 95% "
                f"interval {lo * 100:+.1f} to {hi * 100:+.1f} for this one comparison; log-rank p = {p:.2g}): "
                f"{verdict}.")
    return Trend(day, rl, len(recent), len(earlier), sr, se_, diff, lo, hi, p, sentence)


def retention(transactions: pd.DataFrame, as_of: Any, *, segments: pd.Series | None = None, by: str = "cohort",
              freq: str = "Q", lapse_days: int | None = None, recent_months: int = 6,
              min_customers: int = MIN_CUSTOMERS) -> RetentionResult:
    """Curves per cohort (or per segment when `segments` is given) and the trend overall and per segment."""
    times = retention_times(transactions, as_of, lapse_days)
    res = retention_curves(times, segments, by=by if segments is not None else "cohort", freq=freq,
                           min_customers=min_customers)
    overall = retention_trend(times, recent_months=recent_months, min_customers=min_customers, label="all customers")
    res.trend["all customers"] = overall
    if segments is not None:
        res.definition += (f" Segments are today's memberships: a {by.replace('_', ' ')} that is itself defined by "
                           "recent buying (value tier, lifecycle) partly describes the retention it is compared on.")
    if segments is not None:
        s = segments.copy()
        s.index = s.index.astype(str)
        g = times.index.to_series().map(s)
        for name in res.curves:
            sub = times[g == name]
            sub.attrs = times.attrs
            res.trend[name] = retention_trend(sub, recent_months=recent_months, min_customers=min_customers,
                                              label=f"{by.replace('_', ' ')} {name}")
    return res
