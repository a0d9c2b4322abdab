"""Purchase models that stop pooling unlike customers: separate fits per known group, or covariates,
used only when they beat the single model on the shop's own holdout period.

`compare_covariate_models` splits the history as the pipeline's model comparison does (calibration =
the first two thirds, holdout = the rest), fits on the calibration period

* the plain model (BG/NBD or Pareto/NBD for everyone) -- the baseline,
* `GroupedModel`: one plain model per level of a known attribute (``group``),
* the model with time-invariant covariates (``covariates``; Fader & Hardie 2007),

and measures each on the holdout period (mean absolute error of each customer's purchases, total
purchases) and on the tracking chart (cumulative repeat purchases of all customers, actual against
expected, at the end of the calibration period and over the holdout period).  It returns a
:class:`~clientfolio.predict.verdict.Comparison`: the better of the two candidates against the plain
model, chosen only when its holdout error is more than 2% lower (closer than that, the simpler plain
model is kept, as in `clientfolio.scores.validation.compare_models`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError, SchemaError
from clientfolio.features import daily_activity, rfm_summary
from clientfolio.models.covariates import COVARIATE_MODELS, MISSING_LEVEL, PLAIN_MODELS, GroupedModel, n_params
from clientfolio.predict.verdict import Comparison, Metric

LABELS = {"bgnbd": "BG/NBD", "paretonbd": "Pareto/NBD"}
MIN_GAIN = 0.02  # holdout errors within 2% count as equal (as compare_models): the simpler, plain model is kept
PENALTY = 0.01  # L2 on the covariate coefficients, only when the unpenalised fit does not converge
_FIRST_DAY_SQL = """SELECT customer_id, min(CAST(ts AS DATE)) AS first_day FROM transactions
                    WHERE customer_id IS NOT NULL AND NOT is_refund GROUP BY customer_id"""


def first_purchase_days(data: Any) -> pd.DataFrame:
    """Each customer's first purchase day (the tracking chart's cohorts), from a store or transactions."""
    from clientfolio.store import Store

    if isinstance(data, Store):
        out = data.query(_FIRST_DAY_SQL)
    elif isinstance(data, pd.DataFrame):
        from clientfolio.features.summary import _from_frame

        out = _from_frame(data).execute(_FIRST_DAY_SQL).df()
    else:
        raise SchemaError(f"first_purchase_days: expected a Store or a transactions DataFrame, got {type(data).__name__}")
    out["first_day"] = pd.to_datetime(out["first_day"])
    return out


def customer_attributes(data: Any, launch_weeks: int | None = 8) -> pd.DataFrame:
    """The store's ``customers`` columns usable as covariates, one row per customer who bought.

    With ``launch_weeks``, also ``launch_cohort``: ``"first {n} weeks"`` for customers whose first
    recorded purchase falls in the first ``n`` weeks of the history, else ``"later"``.  When a shop
    starts recording (a new till, a loyalty app), its existing customers all appear "new" in those
    weeks; their history is cut off on the left, and a model that treats them as newly acquired
    under-predicts them.  The attribute lets a grouped or covariate model tell them apart.
    """
    from clientfolio.store import Store

    if not isinstance(data, Store):
        raise SchemaError("customer_attributes: needs a Store (or pass the attributes DataFrame yourself)")
    attrs = data.query("SELECT customer_id, region, country, industry, size, acquisition_channel FROM customers")
    firsts = first_purchase_days(data)
    out = firsts[["customer_id"]].merge(attrs, on="customer_id", how="left")
    if launch_weeks:
        start = firsts["first_day"].min()
        early = firsts["first_day"] < start + pd.Timedelta(weeks=launch_weeks)
        out["launch_cohort"] = np.where(early.to_numpy(), f"first {launch_weeks} weeks", "later")
    return out


def _with_attributes(frame: pd.DataFrame, attributes: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in attributes]
    if missing:
        raise SchemaError(f"the customer attributes have no column {missing} (found: {list(attributes.columns)})")
    if attributes["customer_id"].duplicated().any():
        raise SchemaError("the customer attributes have more than one row for some customer_id")
    attrs = attributes[["customer_id", *dict.fromkeys(columns)]].copy()
    attrs["customer_id"] = attrs["customer_id"].astype(str)
    out = frame.copy()
    out["customer_id"] = out["customer_id"].astype(str)
    return out.merge(attrs, on="customer_id", how="left", validate="one_to_one")


def _expected_curve(model: Any, customers: pd.DataFrame, edges: pd.DatetimeIndex, start: pd.Timestamp,
                    unit_days: float) -> np.ndarray:
    """Sum over customers of E[X(age at each edge)]: the tracking chart's expected line.

    The expectation depends only on a customer's age and attributes: each distinct (age, attributes)
    is evaluated once and counted for every customer and edge that has it.
    """
    keyed = hasattr(model, "encodings_") or isinstance(model, GroupedModel)
    attrs = [c for c in customers.columns if c not in ("customer_id", "first_day")] if keyed else []
    frame = customers[["first_day", *attrs]].copy()
    for c in attrs:
        if frame[c].dtype == object or isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(object).where(frame[c].notna(), MISSING_LEVEL)
    first_days = (frame["first_day"] - start).dt.days.to_numpy(dtype=float)
    ends = np.arange(1, len(edges) + 1, dtype=float) * unit_days           # each edge, in days since start
    out = np.zeros(len(edges))
    combos = frame.groupby(attrs, dropna=False, sort=True).indices if attrs else {None: np.arange(len(frame))}
    for combo, rows_idx in combos.items():
        days, counts = np.unique(first_days[rows_idx], return_counts=True)
        age_days = ends[:, None] - days[None, :]                           # edges x first days
        live = age_days > 0
        if not live.any():
            continue
        ages, inverse = np.unique(age_days[live], return_inverse=True)
        if keyed:
            one = frame.iloc[[rows_idx[0]] * len(ages)][attrs].reset_index(drop=True)
            e = np.asarray(model.expected_purchases_new_customer(ages / unit_days, one), dtype=float)
        else:
            e = np.asarray(model.expected_purchases_new_customer(ages / unit_days), dtype=float)
        grid = np.zeros(age_days.shape)
        grid[live] = e[inverse]
        out += grid @ counts.astype(float)
    return out


def _tracking(model: Any, customers: pd.DataFrame, daily: pd.DataFrame, start: pd.Timestamp,
              calibration_end: pd.Timestamp, holdout_end: pd.Timestamp, unit_days: float) -> dict[str, float]:
    n = int(np.floor((holdout_end + pd.Timedelta(days=1) - start).days / unit_days))
    edges = start + pd.to_timedelta(np.arange(1, n + 1) * unit_days, unit="D")
    days = pd.to_datetime(daily["day"]).to_numpy()
    cum = np.concatenate([[0], np.cumsum(daily["repeat_occasions"].to_numpy())])
    actual = cum[np.searchsorted(days, edges.to_numpy(), side="left")].astype(float)
    expected = _expected_curve(model, customers, edges, start, unit_days)
    cal = int(np.searchsorted(edges.to_numpy(), (calibration_end + pd.Timedelta(days=1)).to_datetime64(),
                              side="right")) - 1
    cal = max(cal, 0)
    gap_cal = expected[cal] / actual[cal] - 1 if actual[cal] else float("nan")
    d_act, d_exp = actual[-1] - actual[cal], expected[-1] - expected[cal]
    return {"calibration_gap": float(gap_cal), "holdout_gap": float(d_exp / d_act - 1) if d_act else float("nan"),
            "calibration_actual": float(actual[cal]), "calibration_expected": float(expected[cal]),
            "holdout_actual": float(d_act), "holdout_expected": float(d_exp),
            "calibration_edge": edges[cal], "last_edge": edges[-1]}


def _unseen_to_reference(candidates: dict[str, Any], everyone: pd.DataFrame) -> dict[str, list[str]]:
    """Levels first seen after the calibration period (customers acquired later) -> the reference level.

    Only the tracking chart meets them (it includes customers acquired in the holdout period); the
    holdout error is measured on calibration customers only.  Changes ``everyone`` in place.
    """
    from clientfolio.models.covariates import _categorical

    out: dict[str, list[str]] = {}
    for m in candidates.values():
        for enc in getattr(m, "encodings_", {}).values():
            for col, ref in enc.reference.items():
                values = pd.Series(_categorical(everyone[col]), index=everyone.index)
                known = {*enc.levels[col], ref}
                bad = ~values.isin(known)
                if bad.any():
                    out[col] = sorted(set(values[bad]))
                    everyone.loc[bad, col] = ref
    return out


def compare_covariate_models(
    data: Any,
    attributes: pd.DataFrame | None = None,
    *,
    group: str | None = None,
    covariates: Sequence[str] = (),
    model: str = "bgnbd",
    calibration_end: str | pd.Timestamp | None = None,
    holdout_end: str | pd.Timestamp | None = None,
    reference: dict[str, str] | None = None,
    min_group_customers: int = 20,
) -> Comparison:
    """Plain model against separate fits per ``group`` and against ``covariates``, on a holdout period.

    ``data`` is a store or a transactions DataFrame; ``attributes`` has ``customer_id`` and the
    attribute columns (default: the store's ``customers`` table).  A customer without an attribute
    row gets the level ``"(missing)"``.  The calibration period ends at two thirds of the history
    unless ``calibration_end`` is given; time is in weeks.  The candidate (grouped or covariate
    model, whichever has the lower holdout error) is chosen only when its mean absolute error on the
    holdout period is more than ``MIN_GAIN`` (2%) below the plain model's.
    """
    if model not in PLAIN_MODELS:
        raise ValueError(f"model must be one of {sorted(PLAIN_MODELS)}, got {model!r}")
    if group is None and not covariates:
        raise ValueError("give a group column, covariates, or both")
    label = LABELS[model]
    if attributes is None:
        attributes = customer_attributes(data)
    firsts = first_purchase_days(data)
    if firsts.empty:
        raise ClientfolioError("there are no purchases with a customer to compare models on")
    start = firsts["first_day"].min().normalize()
    end = pd.Timestamp(holdout_end).normalize() if holdout_end is not None else \
        pd.Timestamp(rfm_summary(data, unit="W").attrs["cutoff"]).normalize()
    split = pd.Timestamp(calibration_end).normalize() if calibration_end is not None else \
        (start + (end - start) * 2 / 3).normalize()
    if not start < split < end:
        raise ClientfolioError(f"the calibration period must end ({split:%Y-%m-%d}) between the first purchase "
                               f"({start:%Y-%m-%d}) and the end of the holdout period ({end:%Y-%m-%d})")
    columns = list(dict.fromkeys([*([group] if group else []), *covariates]))
    cal = _with_attributes(rfm_summary(data, cutoff=split, unit="W", holdout_end=end), attributes, columns)
    everyone = _with_attributes(firsts[firsts["first_day"] <= end], attributes, columns)
    daily = daily_activity(data)
    duration = float(cal["duration_holdout"].iloc[0])
    actual = cal["frequency_holdout"].to_numpy(dtype=float)

    candidates: dict[str, Any] = {}
    failures: dict[str, str] = {}
    penalised: list[str] = []
    try:
        candidates[label] = PLAIN_MODELS[model]().fit(cal[["frequency", "recency", "T"]])
    except ClientfolioError as exc:
        raise ClientfolioError(f"the plain {label} could not be fitted on the calibration period: {exc}") from exc
    if group:
        name = f"{label} per {group}"
        try:
            candidates[name] = GroupedModel(model=model, group=group, min_customers=min_group_customers).fit(cal)
        except ClientfolioError as exc:
            failures[name] = str(exc)
    if covariates:
        name = f"{label} with covariates ({', '.join(covariates)})"
        settings = {"purchase_covariates": list(covariates), "dropout_covariates": list(covariates),
                    "reference": reference}
        try:
            candidates[name] = COVARIATE_MODELS[model](**settings).fit(cal)
        except ClientfolioError as first_error:
            # A level whose customers (almost) never drop out sends its coefficient to infinity: a small
            # L2 penalty on the coefficients keeps it finite.  Said in the details.
            try:
                candidates[name] = COVARIATE_MODELS[model](**settings, penalizer_coef=PENALTY).fit(cal)
                penalised.append(f"{name}: fitted with an L2 penalty {PENALTY} on the coefficients "
                                 f"(without it: {first_error})")
            except ClientfolioError as exc:
                failures[name] = str(exc)

    unseen = _unseen_to_reference(candidates, everyone)
    if unseen:
        details_unseen = {"unseen_levels_set_to_reference": unseen}
    else:
        details_unseen = {}
    rows = []
    for name, m in candidates.items():
        pred = np.asarray(m.predict_purchases(duration, cal), dtype=float)
        track = _tracking(m, everyone, daily, start, split, end, 7.0)
        rows.append({
            "model": name, "holdout_mae": float(np.mean(np.abs(pred - actual))),
            "holdout_predicted": float(pred.sum()), "holdout_actual": float(actual.sum()),
            "holdout_total_error": float(pred.sum() / actual.sum() - 1) if actual.sum() else float("nan"),
            "calibration_tracking_gap": track["calibration_gap"], "holdout_tracking_gap": track["holdout_gap"],
            "log_likelihood": float(m.log_likelihood_), "n_params": n_params(m),
            "bic": float(n_params(m) * np.log(len(cal)) - 2 * m.log_likelihood_), "tracking": track,
        })
    table = pd.DataFrame(rows).set_index("model")
    base = table.loc[label]
    others = table.drop(index=label)
    horizon_days = int((end - split).days)
    details: dict[str, object] = {"candidates": table.drop(columns="tracking").reset_index().to_dict("records"),
                                  "tracking": {k: v for k, v in table["tracking"].items()},
                                  "failures": failures, "models": candidates,
                                  "calibration_end": split, "holdout_end": end, "penalised": penalised,
                                  **details_unseen}
    if others.empty:
        sentence = (f"The single {label} is used: the alternatives could not be fitted ("
                    + "; ".join(f"{k}: {v}" for k, v in failures.items()) + ").")
        return Comparison(task="purchase model with groups or covariates", model_name="(none fitted)",
                          baseline_name=label, metrics=(), chosen="baseline", sentence=sentence,
                          cutoff=split.date(), horizon_days=horizon_days, n_train=len(cal), n_test=len(cal),
                          details=details)
    best_name = str(others["holdout_mae"].idxmin())
    best = table.loc[best_name]
    cover = "customers active before the end of the calibration period"
    metrics = (
        Metric("holdout MAE (purchases per customer)", float(best["holdout_mae"]), float(base["holdout_mae"]),
               "lower", cover),
        Metric("holdout total purchases, |error|", abs(float(best["holdout_total_error"])),
               abs(float(base["holdout_total_error"])), "lower",
               f"signed: {best['holdout_total_error']:+.1%} against {base['holdout_total_error']:+.1%}"),
        Metric("tracking at the end of the calibration period, |gap|", abs(float(best["calibration_tracking_gap"])),
               abs(float(base["calibration_tracking_gap"])), "lower",
               f"cumulative repeat purchases of all customers; signed: {best['calibration_tracking_gap']:+.1%} "
               f"against {base['calibration_tracking_gap']:+.1%}"),
        Metric("tracking over the holdout period, |gap|", abs(float(best["holdout_tracking_gap"])),
               abs(float(base["holdout_tracking_gap"])), "lower",
               f"repeat purchases of all customers, incl. those acquired in the holdout period; signed: "
               f"{best['holdout_tracking_gap']:+.1%} against {base['holdout_tracking_gap']:+.1%}"),
        Metric("BIC (calibration fit, penalises extra parameters)", float(best["bic"]), float(base["bic"]), "lower",
               f"{int(best['n_params'])} against {int(base['n_params'])} parameters"),
    )
    gain = 1 - float(best["holdout_mae"]) / float(base["holdout_mae"]) if base["holdout_mae"] else 0.0
    wins = gain > MIN_GAIN
    closer = abs(best["calibration_tracking_gap"]) < abs(base["calibration_tracking_gap"])
    track_text = (f"it follows the repeat purchases of the calibration period {'more' if closer else 'less'} closely "
                  f"({best['calibration_tracking_gap']:+.0%} at its end, against {base['calibration_tracking_gap']:+.0%})")
    if wins:
        sentence = (f"{best_name} is used: on the holdout period it misses by {best['holdout_mae']:.2f} purchases "
                    f"per customer against {base['holdout_mae']:.2f} for one {label} for everyone "
                    f"({gain:.0%} less), and {track_text}.")
    elif gain > 0:
        sentence = (f"The single {label} is kept: {best_name} predicts the holdout period only {gain:.1%} better "
                    f"({best['holdout_mae']:.2f} against {base['holdout_mae']:.2f} purchases per customer), within "
                    f"the {MIN_GAIN:.0%} treated as equal, where the simpler model is preferred; {track_text}.")
    else:
        tried = "; ".join(f"{k} {v:.2f}" for k, v in others["holdout_mae"].items())
        sentence = (f"The single {label} is kept: it misses the holdout period by {base['holdout_mae']:.2f} "
                    f"purchases per customer and the alternatives do not do better ({tried}).")
    if failures:
        sentence += " Not compared: " + "; ".join(f"{k} ({v})" for k, v in failures.items()) + "."
    if isinstance(candidates.get(best_name), GroupedModel) and candidates[best_name].notes_:
        details["group_notes"] = list(candidates[best_name].notes_)
    return Comparison(task="purchase model with groups or covariates", model_name=best_name, baseline_name=label,
                      metrics=metrics, chosen="model" if wins else "baseline", sentence=sentence,
                      cutoff=split.date(), horizon_days=horizon_days, n_train=len(cal), n_test=len(cal),
                      details=details)
