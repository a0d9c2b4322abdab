"""Checks a user can see: do the models predict this shop's own holdout period?

- `holdout_comparison`: predicted vs actual purchases per customer and by frequency bucket;
- `tracking`: cumulative repeat purchases per period, actual vs expected (the papers' chart);
- `compare_models`: BG/NBD, MBG/NBD and Pareto/NBD side by side (log-likelihood, BIC, holdout
  MAE/RMSE) with a recommendation in plain words;
- `calibration_gap` / `tracking_verdict`: does a model follow the shop's repeat purchases over the
  period it was fitted on, within `TRACKING_TOLERANCE`?  When none does, the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from clientfolio.core.errors import ClientfolioError, SchemaError


def _need_holdout(summary: pd.DataFrame) -> None:
    if "frequency_holdout" not in summary:
        raise SchemaError("the summary has no holdout period: make it with rfm_summary(..., holdout_end=...)")


def holdout_comparison(model, summary: pd.DataFrame, max_bucket: int = 7,
                       weights: ArrayLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per customer (or collapsed row) and per calibration-frequency bucket: predicted vs actual holdout purchases.

    With `weights` (or a ``weights`` column) each row counts as that many customers in the buckets.
    """
    _need_holdout(summary)
    duration = float(summary["duration_holdout"].iloc[0])
    pred = np.asarray(model.predict_purchases(duration, summary[["frequency", "recency", "T"]]), dtype=float)
    cols = [c for c in ("customer_id", "frequency") if c in summary]
    per = summary[cols].assign(predicted=pred, actual=summary["frequency_holdout"].to_numpy(dtype=float))
    bucket = np.minimum(per["frequency"], max_bucket).astype(int)
    w = _row_weights(summary, weights)
    if w is None:
        by = per.assign(bucket=bucket).groupby("bucket").agg(
            customers=("frequency", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")).reset_index()
    else:
        sums = pd.DataFrame({"bucket": bucket, "customers": w, "actual": w * per["actual"].to_numpy(),
                             "predicted": w * pred}).groupby("bucket").sum()
        sums = sums[sums["customers"] > 0]
        by = pd.DataFrame({"customers": sums["customers"], "actual": sums["actual"] / sums["customers"],
                           "predicted": sums["predicted"] / sums["customers"]}).reset_index()
    by["bucket"] = by["bucket"].map(lambda b: f"{b}+" if b == max_bucket else str(b))
    return per, by


def tracking(model, daily: pd.DataFrame, unit_days: float, start: pd.Timestamp | str,
             end: pd.Timestamp | str) -> pd.DataFrame:
    """Cumulative repeat purchase occasions per period since `start`: actual and expected.

    `daily` has one row per day: ``day``, ``first_purchases`` (customers whose first purchase
    day it is) and ``repeat_occasions`` (customers buying again that day) — see
    `clientfolio.features.daily_activity`.  Expected values sum each customer's
    unconditional E[X(t - first purchase)] (the model's new-customer curve).
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    n_periods = int(np.ceil((end - start).days / unit_days))
    edges = start + pd.to_timedelta(np.arange(1, n_periods + 1) * unit_days, unit="D")
    days = pd.to_datetime(daily["day"]).to_numpy()
    cum_repeat = np.concatenate([[0], np.cumsum(daily["repeat_occasions"].to_numpy())])
    actual = cum_repeat[np.searchsorted(days, edges.to_numpy(), side="left")]
    cohorts = daily[daily["first_purchases"] > 0]
    cohort_days = ((pd.to_datetime(cohorts["day"]) - start).dt.days.to_numpy()) / unit_days
    sizes = cohorts["first_purchases"].to_numpy()
    expected = []
    for i in range(1, n_periods + 1):
        age = i - cohort_days
        live = age > 0
        e = model.expected_purchases_new_customer(age[live]) if live.any() else np.zeros(0)
        expected.append(float(np.dot(sizes[live], e)))
    return pd.DataFrame({"period": np.arange(1, n_periods + 1), "end": edges, "actual": actual,
                         "expected": expected})


@dataclass
class ModelComparison:
    table: pd.DataFrame
    best: str
    recommendation: str
    models: dict


def _row_weights(summary: pd.DataFrame, weights: ArrayLike | None) -> np.ndarray | None:
    """Customers per row: `weights`, else the summary's ``weights`` column (what the models fit on), else None."""
    if weights is None and "weights" not in summary:
        return None
    w = np.asarray(summary["weights"] if weights is None else weights, dtype=float)
    if w.shape != (len(summary),) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise SchemaError(f"weights must be one finite count >= 0 per summary row ({len(summary)}); got shape "
                          f"{w.shape}" + ("" if w.shape != (len(summary),) else " with negative or missing values"))
    return w


def compare_models(summary: pd.DataFrame, weights: ArrayLike | None = None) -> ModelComparison:
    """Fit BG/NBD, MBG/NBD and Pareto/NBD on the calibration data; compare fit and holdout error.

    `summary` has one row per customer, or one row per distinct (frequency, recency, T,
    frequency_holdout) with `weights` = the customers it stands for (or a ``weights`` column):
    fits, errors and totals are then those of the expanded customers, so a distributed engine can
    send the collapsed histories alone.
    """
    from clientfolio.models import BGNBD, MBGNBD, ParetoNBD

    _need_holdout(summary)
    w = _row_weights(summary, weights)
    if w is not None and weights is not None:
        summary = summary.assign(weights=w)  # the models fit on the column
    rows, fitted = [], {}
    duration = float(summary["duration_holdout"].iloc[0])
    actual = summary["frequency_holdout"].to_numpy(dtype=float)
    n = float(w.sum()) if w is not None else float(len(actual))
    wt = w if w is not None else np.ones(len(actual))
    for name, cls in (("BG/NBD", BGNBD), ("MBG/NBD", MBGNBD), ("Pareto/NBD", ParetoNBD)):
        try:
            m = cls().fit(summary)
        except ClientfolioError as exc:
            rows.append({"model": name, "converged": False, "note": str(exc)})
            continue
        fitted[name] = m
        pred = np.asarray(m.predict_purchases(duration, summary[["frequency", "recency", "T"]]), dtype=float)
        err = pred - actual
        rows.append({
            "model": name, "converged": True, "log_likelihood": m.log_likelihood_, "bic": m.bic_,
            "holdout_mae": float(np.sum(wt * np.abs(err)) / n),
            "holdout_rmse": float(np.sqrt(np.sum(wt * err ** 2) / n)),
            "predicted_total": float(np.sum(wt * pred)), "actual_total": float(np.sum(wt * actual)), "note": "",
        })
    table = pd.DataFrame(rows)
    ok = table[table["converged"]]
    if ok.empty:
        raise ClientfolioError("none of the purchase models could be fitted to these data; see the notes: "
                               + "; ".join(table["note"]))
    best = ok.sort_values(["holdout_mae", "bic"]).iloc[0]
    rest = ok[ok["model"] != best["model"]]
    close = (rest["holdout_mae"] - best["holdout_mae"]).abs() < 0.02 * max(best["holdout_mae"], 1e-9)
    if len(rest) and close.all():
        # Within 2% of each other: prefer the simplest and fastest model, BG/NBD, when it converged.
        simplest = ok[ok["model"] == "BG/NBD"]
        best = simplest.iloc[0] if len(simplest) else best
        text = (f"The models predict the holdout period about equally well (mean absolute errors within 2% of "
                f"each other, {ok['holdout_mae'].min():.3f}-{ok['holdout_mae'].max():.3f} purchases per customer); "
                f"{best['model']} is used, the simplest of them.")
    else:
        gap = 100 * (rest["holdout_mae"].min() / best["holdout_mae"] - 1) if len(rest) else 0.0
        text = (f"{best['model']} predicts the holdout period best: it misses by {best['holdout_mae']:.3f} "
                f"purchases per customer on average, {gap:.0f}% less than the next model. Use {best['model']}.")
    total_gap = best["predicted_total"] / best["actual_total"] - 1 if best["actual_total"] else float("nan")
    text += (f" Over the holdout period it predicted {best['predicted_total']:,.0f} purchases against "
             f"{best['actual_total']:,.0f} actual ({total_gap:+.0%}).")
    return ModelComparison(table, str(best["model"]), text, fitted)


# A model whose expected cumulative repeat purchases at the end of the calibration period miss
# the actual count by more than this does not describe the shop's buying; the report says so.
# A holdout check needs this much history: the last third of it is held out, and under 180 days that
# third is too short to judge a model by (analyze and analyze on Spark both use it).
MIN_DAYS_FOR_HOLDOUT = 180
TRACKING_TOLERANCE = 0.10


def calibration_gap(track: pd.DataFrame, calibration_end: pd.Timestamp) -> dict[str, float]:
    """Actual and expected cumulative repeat purchases at the last period end within the calibration period."""
    inside = track[track["end"] <= pd.Timestamp(calibration_end)]
    row = inside.iloc[-1] if len(inside) else track.iloc[0]
    actual, expected = float(row["actual"]), float(row["expected"])
    return {"end": row["end"], "actual": actual, "expected": expected,
            "gap": expected / actual - 1 if actual else float("nan")}


def tracking_verdict(best: str, gaps: dict[str, dict[str, float]],
                     tolerance: float = TRACKING_TOLERANCE) -> str | None:
    """Plain words when no model follows the calibration period within `tolerance`; None when one does."""
    ok = [name for name, g in gaps.items() if np.isfinite(g["gap"]) and abs(g["gap"]) <= tolerance]
    if ok or best not in gaps:
        return None
    g = gaps[best]
    others = "; ".join(f"{name} {v['gap']:+.0%}" for name, v in gaps.items() if name != best)
    return (f"None of the purchase models follows your repeat purchases within {tolerance:.0%} over the period "
            f"they were fitted on: by {pd.Timestamp(g['end']):%d %b %Y} there were {g['actual']:,.0f} repeat "
            f"purchases and {best} expected {g['expected']:,.0f} ({g['gap']:+.0%}"
            + (f"; {others}" if others else "") + "). Treat the forecasts as rough: this shop's buying (for "
            "example growth, seasons or a change in how customers buy) is not one these models capture.")
