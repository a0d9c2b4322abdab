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

from clientfolio.core.arrays import nan_to
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


def floats(col) -> np.ndarray:
    """A column (Series or array) as float64 values, every missing value NaN."""
    if isinstance(col, np.ndarray) and col.dtype == np.float64:
        return col
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)


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
    # a row-wise sum, not a matrix product: each customer's number must not depend on how many are scored
    return (step * ((1.0 + s.discount_rate) ** (-months / 12.0))).sum(axis=1), curve[:, -1]


def _discounted_purchases(model, summary: pd.DataFrame, unit_days: float, s: ClvSettings) -> tuple[np.ndarray, np.ndarray]:
    """Discounted expected purchases over the horizon, and the expected purchases by its end."""
    return _discount(_curve(model, _month_times(unit_days, s), summary[["frequency", "recency", "T"]]), s)


def _next_order(curve: np.ndarray, weeks: np.ndarray, cutoff: pd.Timestamp) -> np.ndarray:
    """The day by which one more purchase is expected (expected purchases reach 1); NaT if not in the horizon."""
    reached = curve >= 1.0
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
    days = np.where(first >= 0, weeks[np.maximum(first, 0)] * 7, 0).astype(np.int64)  # whole days
    day0 = np.datetime64(pd.Timestamp(cutoff).to_datetime64(), "us")
    return np.where(first >= 0, day0 + days.astype("timedelta64[D]").astype("timedelta64[us]"),
                    np.datetime64("NaT", "us"))


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
    The numbers come from :func:`score_arrays`, which one customer's update calls directly.
    """
    s = settings or ClvSettings()
    s.check()
    unit_days = _unit_days(summary)
    cols = score_arrays(summary, purchase_model, spend_model, s, one_time_alive, unit_days,
                        pd.Timestamp(summary.attrs.get("cutoff")))
    out = pd.DataFrame({k: summary[k].to_numpy() for k in ("customer_id", "frequency", "recency", "T")})
    for k, v in cols.items():
        out[k] = v
    out.attrs.update(summary.attrs)
    out.attrs.update({"horizon_months": s.horizon_months, "discount_rate": s.discount_rate,
                      "default_margin": s.margin, "interval": s.interval,
                      "interval_method": ("simulated purchases, parameters drawn" if s.intervals
                                          else "none")})
    return out


def _distinct_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the first row of each distinct history, each row's history): few rows are not grouped."""
    n = len(keys)
    if n <= 16:
        return np.arange(n), np.arange(n)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, np.asarray(inverse).reshape(-1)


def score_arrays(cols, purchase_model, spend_model, s: ClvSettings, one_time_alive, unit_days: float,
                 cutoff: pd.Timestamp) -> dict[str, np.ndarray]:
    """The score columns of :func:`score_customers` from columns as arrays (a frame or a dict of arrays).

    Every number is computed row by row (each distinct history once), so a customer scored alone
    gets exactly what they get in the whole base; the one-customer update calls this without pandas.
    """
    keys = ["frequency", "recency", "T"]
    x_all = np.asarray(cols["frequency"], dtype=float)
    hist = np.column_stack([np.asarray(cols[k], dtype=float) for k in keys]) if len(x_all) else np.empty((0, 3))
    first, row_of = _distinct_rows(hist)
    data = {k: hist[first, i] for i, k in enumerate(keys)}
    # One curve for both the monthly CLV steps and the weekly next-order search.
    weeks = np.arange(1, int(s.horizon_months * DAYS_PER_MONTH / 7) + 2) if s.next_order else np.arange(0)
    times = np.concatenate([_month_times(unit_days, s), weeks * 7.0 / unit_days])
    if hasattr(purchase_model, "predict_purchases_curve"):
        curve, alive = purchase_model.predict_purchases_curve(times, data, with_alive=True)
    else:
        curve, alive = _curve(purchase_model, times, data), purchase_model.predict_alive(data)
    curve, alive = np.asarray(curve, dtype=float), np.asarray(alive, dtype=float)
    disc, expected = _discount(curve[:, :s.horizon_months], s)
    factor = np.ones(len(first))
    if no_dropout_before_repeat(purchase_model):
        one_time = data["frequency"] == 0
        if one_time_alive is not None:
            if one_time.any():
                factor[one_time] = np.asarray(one_time_alive.predict_alive({k: v[one_time] for k, v in data.items()}),
                                              dtype=float)
            alive = np.where(one_time, factor, alive)
        else:
            alive = np.where(one_time, np.nan, alive)
    curve, disc, expected = curve * factor[:, None], disc * factor, expected * factor
    ranges = None
    if s.intervals:
        ranges = _ranges_by_week(purchase_model, data, alive, unit_days, s)
    next_order = (_next_order(curve[:, s.horizon_months:], weeks, cutoff) if s.next_order
                  else np.full(len(first), np.datetime64("NaT"), dtype="datetime64[ns]"))
    out: dict[str, np.ndarray] = {"expected_purchases": expected[row_of], "p_alive": alive[row_of],
                                  "next_order_date": next_order[row_of]}
    spend = _expected_spend(cols, spend_model)
    margin = _margin(cols, s.margin)
    value = spend * margin
    out["churn_risk"] = 1.0 - out["p_alive"]
    # Expected time between purchases while still active: 1 / E[rate | history] (gamma posterior
    # (r + x) / (alpha + T) of BG/NBD, MBG/NBD and Pareto/NBD), a rhythm even for one-time buyers.
    params = getattr(purchase_model, "params_", {})
    if "r" in params and "alpha" in params:
        rate = (params["r"] + x_all) / (params["alpha"] + hist[:, 2])
        out["expected_gap_days"] = unit_days / rate
    out["expected_spend"] = spend
    out["margin"] = margin
    out["clv"] = disc[row_of] * value
    if ranges is not None:
        # whole purchases x the discounted value of one purchase (CLV / expected purchases)
        with np.errstate(divide="ignore", invalid="ignore"):
            one = np.where(expected[row_of] > 0, disc[row_of] / expected[row_of], np.nan) * value
        low, high = ranges[0][row_of] * one, ranges[1][row_of] * one
        # no zero-width ranges: where one purchase is worth nothing (no spend) there is no range to state
        flat = ~(high > low)
        out["clv_low"] = np.where(flat, np.nan, low)
        out["clv_high"] = np.where(flat, np.nan, high)
    else:
        out["clv_low"] = np.full(len(x_all), np.nan)
        out["clv_high"] = np.full(len(x_all), np.nan)
    return out


def _ranges_by_week(model, data: pd.DataFrame, alive: np.ndarray, unit_days: float,
                    s: ClvSettings) -> tuple[np.ndarray, np.ndarray]:
    """Purchase ranges simulated once per history rounded to whole weeks, each exact history keeping
    its own P(alive); the same for a customer scored alone or with the whole base (see `purchase_ranges`)."""
    return purchase_ranges(model, {k: data[k] for k in ("frequency", "recency", "T")}, alive,
                           s.horizon_months * DAYS_PER_MONTH / unit_days, s.interval, week=7.0 / unit_days)


def no_dropout_before_repeat(model) -> bool:
    """True for BG/NBD: its customers cannot drop out before a repeat purchase (P(alive | x = 0) = 1)."""
    return type(model).__name__ == "BGNBD"


def _expected_spend(summary: pd.DataFrame, spend_model) -> np.ndarray:
    """Expected value of a future purchase: Gamma-Gamma where fitted, else the customer's mean."""
    freq = np.asarray(summary["frequency"])
    mon = floats(summary["monetary"])
    if spend_model is None:
        aov = floats(summary["aov"]) if "aov" in summary else mon
        return np.where(freq > 0, mon, nan_to(aov, 0.0))
    usable = (freq > 0) & (mon > 0)
    data = {"frequency": np.where(usable, freq, 0), "monetary": np.where(usable, mon, 0.0)}
    return np.asarray(spend_model.predict_spend(data), dtype=float)


def _margin(summary: pd.DataFrame, default: float) -> np.ndarray:
    """Each customer's gross margin from cost of goods where the data has it, else `default`."""
    if "cost" not in summary:
        return np.full(len(summary), default)
    rev = floats(summary["revenue"])
    cost = floats(summary["cost"])
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
    shop_rate = run_rate_per_month(summary) if shop_rate is None else shop_rate
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy(),
                        **run_rate_arrays(summary, s, shop_rate, unit_days)})
    out.attrs.update(summary.attrs)
    out.attrs.update({"horizon_months": s.horizon_months, "discount_rate": s.discount_rate,
                      "default_margin": s.margin, "interval": s.interval, "interval_method": "none (run rate)",
                      "run_rate_shop_per_month": float(shop_rate)})
    return out


def run_rate_arrays(cols, s: ClvSettings, shop_rate: float, unit_days: float) -> dict[str, np.ndarray]:
    """The columns of :func:`run_rate_scores` from columns as arrays (row by row: the same alone or in a batch)."""
    months = np.clip(floats(cols["T"]) * unit_days / DAYS_PER_MONTH, 0.0, None)
    repeats = floats(cols["frequency"])
    n = len(months)
    w = RUN_RATE_PRIOR_MONTHS
    per_month = (repeats + shop_rate * w) / (months + w)
    disc_months = ((1.0 + s.discount_rate) ** (-np.arange(1, s.horizon_months + 1) / 12.0)).sum()
    spend = _expected_spend(cols, None)
    margin = _margin(cols, s.margin)
    return {"expected_purchases": per_month * s.horizon_months, "p_alive": np.full(n, np.nan),
            "churn_risk": np.full(n, np.nan), "next_order_date": np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"),
            "expected_spend": spend, "margin": margin, "clv": per_month * disc_months * spend * margin,
            # a run rate has no interval: none is shown rather than a zero-width one
            "clv_low": np.full(n, np.nan), "clv_high": np.full(n, np.nan)}


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
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy(), **historical_arrays(summary, reason, s)})
    out.attrs.update(summary.attrs)
    out.attrs.update({"horizon_months": s.horizon_months, "discount_rate": s.discount_rate,
                      "default_margin": s.margin, "interval": s.interval, "interval_method": "none (not estimated)"})
    return out


def historical_arrays(cols, reason: str, s: ClvSettings) -> dict[str, np.ndarray]:
    """The columns of :func:`historical_scores` from columns as arrays."""
    n = len(cols["customer_id"])
    out: dict[str, np.ndarray] = {}
    for col in FORECAST_COLUMNS:
        out[col] = (np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]") if col == "next_order_date"
                    else np.full(n, np.nan))
    out["margin"] = _margin(cols, s.margin)
    out["forecast_note"] = np.full(n, f"not estimated: {reason}", dtype=object)
    return out
