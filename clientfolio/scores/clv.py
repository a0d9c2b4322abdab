"""Per-customer scores: P(alive), expected purchases, CLV with a range, next order date.

CLV = sum over future months of (expected purchases in the month) x (expected spend per
purchase) x (gross margin), discounted to today.  The purchase model gives the expected
purchases (conditional on each customer's history), the spend model the expected spend.
The low/high range is what the customer may be worth, not only where their expected value
may lie: it is simulated from the purchase model's own process with its parameters drawn from
their sampling distribution (`clientfolio.scores.intervals`), in whole purchases, each valued at
the customer's discounted expected value of one purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.scores.intervals import purchase_ranges

DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class ClvSettings:
    """How to value customers; the defaults are stated in every report that uses them."""

    horizon_months: int = 12
    discount_rate: float = 0.10  # per year
    margin: float = 1.0  # gross margin used when the data has no cost of goods
    interval: float = 0.80  # width of the low/high interval
    intervals: bool = True  # compute clv_low / clv_high (costs one model evaluation per parameter)
    next_order: bool = True  # compute next_order_date (a weekly curve over the horizon)

    def check(self) -> None:
        if not 1 <= self.horizon_months <= 600:
            raise SchemaError(f"horizon_months must be between 1 and 600, got {self.horizon_months}")
        if not 0 <= self.discount_rate < 1:
            raise SchemaError(f"discount_rate is a yearly rate between 0 and 1 (e.g. 0.10), got {self.discount_rate}")
        if not 0 < self.margin <= 1:
            raise SchemaError(f"margin is a fraction of revenue in (0, 1] (e.g. 0.35), got {self.margin}")
        if not 0 < self.interval < 1:
            raise SchemaError(f"interval must be in (0, 1), got {self.interval}")


def _unit_days(summary: pd.DataFrame) -> float:
    days = summary.attrs.get("unit_days")
    if days is None:
        raise SchemaError("the summary does not say its time unit; make it with clientfolio.features.rfm_summary "
                          "or set summary.attrs['unit_days'] (1 for days, 7 for weeks) and attrs['cutoff']")
    return float(days)


def _curve(model, times: np.ndarray, data: pd.DataFrame) -> np.ndarray:
    """Expected purchases by each horizon in `times` (rows x times), P(alive) computed once where supported."""
    if hasattr(model, "predict_purchases_curve"):
        return np.asarray(model.predict_purchases_curve(times, data), dtype=float)
    return np.column_stack([np.asarray(model.predict_purchases(t, data), dtype=float) for t in times])


def _month_times(unit_days: float, s: ClvSettings) -> np.ndarray:
    return np.arange(1, s.horizon_months + 1) * DAYS_PER_MONTH / unit_days


def _discount(curve: np.ndarray, s: ClvSettings) -> tuple[np.ndarray, np.ndarray]:
    """(sum of monthly expected purchases x discount factor, expected purchases by the horizon)."""
    months = np.arange(1, s.horizon_months + 1)
    step = np.diff(np.column_stack([np.zeros(len(curve)), curve]), axis=1)
    return step @ ((1.0 + s.discount_rate) ** (-months / 12.0)), curve[:, -1]


def _discounted_purchases(model, summary: pd.DataFrame, unit_days: float, s: ClvSettings) -> tuple[np.ndarray, np.ndarray]:
    """Discounted expected purchases over the horizon, and the expected purchases by its end."""
    return _discount(_curve(model, _month_times(unit_days, s), summary[["frequency", "recency", "T"]]), s)


def _next_order(curve: np.ndarray, weeks: np.ndarray, cutoff: pd.Timestamp) -> np.ndarray:
    """The day by which one more purchase is expected (expected purchases reach 1); NaT if not in the horizon."""
    reached = curve >= 1.0
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
    days = np.where(first >= 0, weeks[np.maximum(first, 0)] * 7, np.nan)
    return (cutoff + pd.to_timedelta(days, unit="D")).to_numpy()


def score_customers(
    summary: pd.DataFrame,
    purchase_model,
    spend_model=None,
    settings: ClvSettings | None = None,
    one_time_alive=None,
) -> pd.DataFrame:
    """Score every customer of `summary` (from `rfm_summary`) with fitted models.

    Returns one row per customer: ``p_alive``, ``churn_risk``, ``expected_purchases``
    (over the horizon), ``expected_spend`` (per purchase), ``margin``, ``clv``,
    ``clv_low``, ``clv_high`` and ``next_order_date``.

    BG/NBD lets customers drop out only after a repeat purchase, so it gives every one-time buyer
    P(alive) = 1, however long they have been silent.  `one_time_alive` (a fitted model that can
    drop a customer right after the first purchase: MBG/NBD) supplies their P(alive) instead, and
    their expected purchases become BG/NBD's expectation *if still active* times that P(alive);
    with a BG/NBD and no such model their P(alive) is left unknown (NaN) rather than shown as 1.
    """
    s = settings or ClvSettings()
    s.check()
    unit_days = _unit_days(summary)
    cutoff = pd.Timestamp(summary.attrs.get("cutoff"))
    # Score each distinct history once: cost grows with distinct (frequency, recency, T), not customers.
    keys = ["frequency", "recency", "T"]
    distinct = summary[keys].drop_duplicates().reset_index(drop=True)
    # One curve for both the monthly CLV steps and the weekly next-order search.
    weeks = np.arange(1, int(s.horizon_months * DAYS_PER_MONTH / 7) + 2) if s.next_order else np.arange(0)
    times = np.concatenate([_month_times(unit_days, s), weeks * 7.0 / unit_days])
    data = distinct[["frequency", "recency", "T"]]
    if hasattr(purchase_model, "predict_purchases_curve"):
        curve, alive = purchase_model.predict_purchases_curve(times, data, with_alive=True)
    else:
        curve, alive = _curve(purchase_model, times, data), purchase_model.predict_alive(data)
    curve, alive = np.asarray(curve, dtype=float), np.asarray(alive, dtype=float)
    disc, expected = _discount(curve[:, :s.horizon_months], s)
    factor = np.ones(len(distinct))
    if no_dropout_before_repeat(purchase_model):
        one_time = distinct["frequency"].to_numpy() == 0
        if one_time_alive is not None:
            factor[one_time] = np.asarray(one_time_alive.predict_alive(data[one_time]), dtype=float)
            alive = np.where(one_time, factor, alive)
        else:
            alive = np.where(one_time, np.nan, alive)
    curve, disc, expected = curve * factor[:, None], disc * factor, expected * factor
    ranges = None
    if s.intervals:
        ranges = _ranges_by_week(purchase_model, data, alive, unit_days, s)
    next_order = (_next_order(curve[:, s.horizon_months:], weeks, cutoff) if s.next_order
                  else np.full(len(distinct), np.datetime64("NaT"), dtype="datetime64[ns]"))
    per_hist = distinct.assign(_disc=disc, expected_purchases=expected, p_alive=alive, next_order_date=next_order)
    out = summary[["customer_id"] + keys].merge(per_hist, on=keys, how="left")
    row_of = summary[keys].merge(distinct.reset_index(), on=keys, how="left")["index"].to_numpy()

    spend = _expected_spend(summary, spend_model)
    margin = _margin(summary, s.margin)
    value = spend * margin
    out["churn_risk"] = 1.0 - out["p_alive"]
    # Expected time between purchases while still active: 1 / E[rate | history] (gamma posterior
    # (r + x) / (alpha + T) of BG/NBD, MBG/NBD and Pareto/NBD), a rhythm even for one-time buyers.
    params = getattr(purchase_model, "params_", {})
    if "r" in params and "alpha" in params:
        rate = (params["r"] + summary["frequency"].to_numpy()) / (params["alpha"] + summary["T"].to_numpy())
        out["expected_gap_days"] = unit_days / rate
    out["expected_spend"] = spend
    out["margin"] = margin
    out["clv"] = out["_disc"].to_numpy() * value
    if ranges is not None:
        # whole purchases x the discounted value of one purchase (CLV / expected purchases)
        with np.errstate(divide="ignore", invalid="ignore"):
            one = np.where(expected[row_of] > 0, disc[row_of] / expected[row_of], np.nan) * value
        out["clv_low"] = ranges[0][row_of] * one
        out["clv_high"] = ranges[1][row_of] * one
        # no zero-width ranges: where one purchase is worth nothing (no spend) there is no range to state
        flat = ~(out["clv_high"] > out["clv_low"])
        out.loc[flat, ["clv_low", "clv_high"]] = np.nan
    else:
        out["clv_low"] = out["clv_high"] = np.nan
    out = out.drop(columns=["_disc"])
    out.attrs.update(summary.attrs)
    out.attrs.update({"horizon_months": s.horizon_months, "discount_rate": s.discount_rate,
                      "default_margin": s.margin, "interval": s.interval,
                      "interval_method": "simulated purchases, parameters drawn" if ranges is not None else "none"})
    return out


def _ranges_by_week(model, data: pd.DataFrame, alive: np.ndarray, unit_days: float,
                    s: ClvSettings) -> tuple[np.ndarray, np.ndarray]:
    """Purchase ranges simulated once per history rounded to whole weeks, each exact history keeping
    its own P(alive); the same for a customer scored alone or with the whole base (see `purchase_ranges`)."""
    return purchase_ranges(model, data[["frequency", "recency", "T"]], alive,
                           s.horizon_months * DAYS_PER_MONTH / unit_days, s.interval, week=7.0 / unit_days)


def no_dropout_before_repeat(model) -> bool:
    """True for BG/NBD: its customers cannot drop out before a repeat purchase (P(alive | x = 0) = 1)."""
    return type(model).__name__ == "BGNBD"


def _expected_spend(summary: pd.DataFrame, spend_model) -> np.ndarray:
    """Expected value of a future purchase: Gamma-Gamma where fitted, else the customer's mean."""
    freq = summary["frequency"].to_numpy()
    mon = summary["monetary"].to_numpy(dtype=float)
    if spend_model is None:
        aov = summary["aov"].to_numpy(dtype=float) if "aov" in summary else mon
        return np.where(freq > 0, mon, np.nan_to_num(aov, nan=0.0))
    usable = (freq > 0) & (mon > 0)
    data = pd.DataFrame({"frequency": np.where(usable, freq, 0), "monetary": np.where(usable, mon, 0.0)})
    return np.asarray(spend_model.predict_spend(data), dtype=float)


def _margin(summary: pd.DataFrame, default: float) -> np.ndarray:
    """Each customer's gross margin from cost of goods where the data has it, else `default`."""
    if "cost" not in summary:
        return np.full(len(summary), default)
    rev = summary["revenue"].to_numpy(dtype=float)
    cost = summary["cost"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (rev - cost) / rev
    ok = np.isfinite(m) & (rev > 0) & np.isfinite(cost)
    return np.where(ok, np.clip(m, 0.0, 1.0), default)


# Prior exposure (months) of the run rate's shrinkage: a customer's own rate counts for as much
# as the shop's average once they have been a customer for this long.
RUN_RATE_PRIOR_MONTHS = 3.0


def run_rate_per_month(summary: pd.DataFrame) -> float:
    """The shop's typical repeat purchases per month: what the run rate shrinks each customer towards.

    The median rate of customers seen for `RUN_RATE_PRIOR_MONTHS` or more (a few heavy buyers would
    pull a pooled rate up and make every newcomer look like them); pooled over everyone where none is.
    """
    unit_days = _unit_days(summary)
    months = np.clip(summary["T"].to_numpy(dtype=float) * unit_days / DAYS_PER_MONTH, 0.0, None)
    repeats = summary["frequency"].to_numpy(dtype=float)
    seen = months >= RUN_RATE_PRIOR_MONTHS
    return (float(np.median(repeats[seen] / months[seen])) if seen.any()
            else float(repeats.sum() / months.sum()) if months.sum() > 0 else 0.0)


def run_rate_scores(summary: pd.DataFrame, settings: ClvSettings | None = None,
                    shop_rate: float | None = None) -> pd.DataFrame:
    """Scores without a purchase model, for histories too short or odd to fit one.

    Expected repeat purchases per month = (the customer's repeat purchases + the shop's typical
    rate x 3 months) / (months since the first purchase + 3 months): each customer's own rate,
    shrunk towards the shop's typical rate (:func:`run_rate_per_month`, fitted on these
    customers unless `shop_rate` is given) in proportion to how little of them has been seen.
    A customer who bought once, yesterday, gets
    about the shop's average rate -- not one purchase a month, which ranked such a customer above
    a regular with 49 orders.  CLV = that rate carried forward x spend per order x margin,
    discounted.  P(alive) is unknown (NaN) and there is no interval: say so wherever shown.
    """
    s = settings or ClvSettings()
    s.check()
    unit_days = _unit_days(summary)
    months = np.clip(summary["T"].to_numpy(dtype=float) * unit_days / DAYS_PER_MONTH, 0.0, None)
    repeats = summary["frequency"].to_numpy(dtype=float)
    w = RUN_RATE_PRIOR_MONTHS
    shop_rate = run_rate_per_month(summary) if shop_rate is None else shop_rate
    per_month = (repeats + shop_rate * w) / (months + w)
    disc_months = ((1.0 + s.discount_rate) ** (-np.arange(1, s.horizon_months + 1) / 12.0)).sum()
    spend = _expected_spend(summary, None)
    margin = _margin(summary, s.margin)
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy(),
                        "expected_purchases": per_month * s.horizon_months, "p_alive": np.nan, "churn_risk": np.nan,
                        "next_order_date": pd.NaT, "expected_spend": spend, "margin": margin})
    out["clv"] = per_month * disc_months * spend * margin
    out["clv_low"] = out["clv_high"] = np.nan  # a run rate has no interval: none is shown rather than a zero-width one
    out.attrs.update(summary.attrs)
    out.attrs.update({"horizon_months": s.horizon_months, "discount_rate": s.discount_rate,
                      "default_margin": s.margin, "interval": s.interval, "interval_method": "none (run rate)",
                      "run_rate_shop_per_month": float(shop_rate)})
    return out


FORECAST_COLUMNS = ("p_alive", "churn_risk", "expected_purchases", "expected_spend", "clv", "clv_low", "clv_high",
                    "next_order_date")


def historical_scores(summary: pd.DataFrame, reason: str, settings: ClvSettings | None = None) -> pd.DataFrame:
    """The score columns left empty, with the reason, for data below the measured minimum.

    Below it a forecast would be a number the data cannot support (a two-customer, one-day shop
    "worth" millions), so every forecast column is empty and ``forecast_note`` says why; what
    the history itself says (revenue, orders, recency, ...) stays in the summary's columns.
    """
    s = settings or ClvSettings()
    s.check()
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy()})
    for col in FORECAST_COLUMNS:
        out[col] = pd.NaT if col == "next_order_date" else np.nan
    out["margin"] = _margin(summary, s.margin)
    out["forecast_note"] = f"not estimated: {reason}"
    out.attrs.update(summary.attrs)
    out.attrs.update({"horizon_months": s.horizon_months, "discount_rate": s.discount_rate,
                      "default_margin": s.margin, "interval": s.interval, "interval_method": "none (not estimated)"})
    return out
