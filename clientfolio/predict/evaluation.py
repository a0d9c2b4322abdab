"""Churn risk and next order on one shop: trained on a time split, measured against BG/NBD, chosen.

The split (N = the churn horizon from the shop's rhythm, "end" = the last purchase day):

- train: features at end - 2N, outcomes in the N days after;
- test: features at end - N, outcomes in the last N days (the model never saw them);
- production: the model is refitted on the test cut-off's outcomes and applied at the end.

Baselines, from a BG/NBD model fitted on the same customers at the same cut-off:

- churn: P(no purchase in the next N days) = 1 - P(alive) + P(alive) * P(no purchase | alive),
  the model's own probability of the very outcome scored (not just 1 - P(alive), which ignores
  that a living customer may still not buy within N days);
- next order: the median waiting time implied by BG/NBD, capped at N (the best BG/NBD point value
  for the mean absolute error).

The product uses the boosted trees only where they win: for churn a higher AUC *and* a Brier score
that is no worse; for next order a lower mean absolute error.  With fewer than
``MIN_CUSTOMERS`` customers or ``MIN_POSITIVES`` of either outcome in the training window no ML
model is trained, and the comparison says so plainly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.predict.churn import ChurnModel
from clientfolio.predict.next_order import NextOrderModel
from clientfolio.predict.training import DAY, Tables, TrainingSet, build_training_set, load_tables, shop_rhythm_days
from clientfolio.predict.verdict import Comparison, Metric

MIN_CUSTOMERS = 300
MIN_POSITIVES = 30
IMPORTANCE_SAMPLE = 1000
CALIBRATION_BINS = 10

FEATURE_WORDS = {
    "days_since_last": "days since the last order", "overdue": "days since the last order against the usual gap",
    "gap_median": "usual gap between orders", "btyd_p_alive": "BG/NBD P(alive)",
    "btyd_p_none": "BG/NBD P(no order in the horizon)", "frequency": "repeat purchase days",
}


@dataclass
class ShopPredictions:
    """What `predict_shop` gives: the two comparisons and one row per customer at the end of the data."""

    churn: Comparison
    next_order: Comparison
    customers: pd.DataFrame
    horizon_days: int
    notes: list[str] = field(default_factory=list)
    models: Any = None  # the PredictionModels that scored `customers`: the fitted state keeps them
    subscriptions: Comparison | None = None  # cancellation churn, for a shop with subscription events

    @property
    def comparisons(self) -> list[Comparison]:
        return [self.churn, self.next_order] + ([self.subscriptions] if self.subscriptions is not None else [])


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    n = max(1, int(round(len(y) * 0.1)))
    top = np.argsort(-score, kind="stable")[:n]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def calibration_bins(y: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Equal-count bins of the score: mean predicted and observed churn rate, and customers per bin."""
    order = np.argsort(score, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append({"predicted": float(score[part].mean()), "observed": float(y[part].mean()), "n": int(len(part))})
    return out


def _churn_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    both = len(np.unique(y)) == 2
    return {"AUC": float(roc_auc_score(y, score)) if both else float("nan"),
            "PR-AUC": float(average_precision_score(y, score)) if both else float("nan"),
            "Brier": float(brier_score_loss(y, score)), "top-decile lift": top_decile_lift(y, score)}


def _importance(model: Any, X: pd.DataFrame, y: np.ndarray, scoring: str, seed: int) -> list[tuple[str, float]]:
    """Permutation importance on the test window (a sample): how much the score drops without each feature.

    Permutes the columns of the model's own numeric matrix and scores its fitted estimator (the
    calibrated classifier, or the median regressor) directly: the same importances as permuting the
    frame, without converting the frame again for every column and repeat (two thirds of the time).
    """
    from sklearn.inspection import permutation_importance

    from clientfolio.predict.churn import one_thread

    if len(X) > IMPORTANCE_SAMPLE:
        pick = np.sort(np.random.default_rng(seed).choice(len(X), IMPORTANCE_SAMPLE, replace=False))
        X, y = X.iloc[pick], y[pick]
    inner = model.model_ if hasattr(model, "model_") else model.median_
    with one_thread():
        r = permutation_importance(inner, model.features_.matrix(X), y, scoring=scoring, n_repeats=2,
                                   random_state=seed)
    ranked = sorted(zip(model.features_.columns, r.importances_mean), key=lambda t: -t[1])
    return [(str(c), float(v)) for c, v in ranked[:10]]


def _n(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else "n/a"


@dataclass(frozen=True)
class ChurnKind:
    """What "churn" means in a comparison, and the words and baseline that go with it."""

    task: str
    subject: str  # "Churn risk"
    baseline_name: str  # the table's column head
    baseline_words: str  # "the purchase model (BG/NBD)"
    baseline_column: str  # the test features' column holding the baseline's probability
    outcome: str  # "no order in the next {n} days"
    population: str  # "customers with an order by {day}"
    noun: str  # "customers"
    churned: str  # "churned"
    stayed: str  # "came back"


PURCHASES = ChurnKind("churn", "Churn risk", "BG/NBD", "the purchase model (BG/NBD)", "btyd_p_none",
                      "no order in the next {n} days", "customers with an order by {day}", "customers", "churned",
                      "came back")
CANCELLATIONS = ChurnKind("subscription churn", "Subscribers' churn risk (cancelling)", "sBG",
                          "the renewal model (sBG)", "sbg_p_cancel", "a cancellation in the next {n} days",
                          "active subscribers on {day}", "active subscribers", "cancelled", "renewed")


def _thin(train: TrainingSet, kind: ChurnKind = PURCHASES) -> str | None:
    y = train.labels["churned"].to_numpy()
    n, pos = len(y), int(np.nansum(y))
    if n < MIN_CUSTOMERS:
        return f"only {n:,} {kind.noun} before the training cut-off (at least {MIN_CUSTOMERS:,} are needed)"
    if min(pos, n - pos) < MIN_POSITIVES:
        return (f"only {min(pos, n - pos):,} {kind.noun} {kind.churned if pos < n - pos else kind.stayed} in the "
                f"training window (at least {MIN_POSITIVES} of each are needed)")
    return None


def _cut_offs(tables: Tables, horizon: int | None) -> tuple[int, pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    end = tables.last_day
    if horizon is None:
        horizon = shop_rhythm_days(tables, end - DAY * 2 * 90)
    test = end - horizon * DAY
    train = test - horizon * DAY
    return horizon, train, test, end


def evaluate_churn(train: TrainingSet, test: TrainingSet, *, random_state: int = 0,
                   thin: str | None = None, kind: ChurnKind = PURCHASES) -> tuple[Comparison, ChurnModel | None]:
    """Churn risk by boosted trees against the baseline on the test window: BG/NBD's P(no purchase in
    N days) for purchases, sBG's P(cancel in N days) for subscribers (`kind`)."""
    y = test.labels["churned"].to_numpy()
    base = test.features[kind.baseline_column].to_numpy()
    bm = _churn_metrics(y, base)
    n = test.horizon_days
    note = f"{kind.population.format(day=test.cutoff.date())}; churn = {kind.outcome.format(n=n)}"
    common = dict(task=kind.task, model_name="boosted trees", baseline_name=kind.baseline_name,
                  cutoff=test.cutoff.date(), horizon_days=n, n_train=len(train.features), n_test=len(test.features))
    if thin is not None:
        metrics = tuple(Metric(k, float("nan"), v, "lower" if k == "Brier" else "higher", note) for k, v in bm.items())
        sentence = f"{kind.subject} uses {kind.baseline_words}: no machine-learning model was trained, {thin}."
        return Comparison(metrics=metrics, chosen="baseline", sentence=sentence,
                          details={"thin": thin, "baseline_calibration": calibration_bins(y, base)}, **common), None
    model = ChurnModel(random_state=random_state).fit(train.features, train.labels["churned"])
    score = model.predict_risk(test.features).to_numpy()
    mm = _churn_metrics(y, score)
    metrics = tuple(Metric(k, mm[k], bm[k], "lower" if k == "Brier" else "higher", note) for k in mm)
    wins = mm["AUC"] > bm["AUC"] and mm["Brier"] <= bm["Brier"]
    if wins:
        sentence = (f"{kind.subject} uses the boosted trees: on the last {n} days, which they never saw, they ranked "
                    f"{kind.noun} better (AUC {_n(mm['AUC'])} against {_n(bm['AUC'])} for {kind.baseline_name}) and "
                    f"their probabilities were closer to what happened (Brier {_n(mm['Brier'])} against "
                    f"{_n(bm['Brier'])}).")
    else:
        why = (f"AUC {_n(mm['AUC'])} against {_n(bm['AUC'])}" if mm["AUC"] <= bm["AUC"]
               else f"their probabilities were further from what happened: Brier {_n(mm['Brier'])} against {_n(bm['Brier'])}")
        sentence = (f"{kind.subject} uses {kind.baseline_words}: on the last {n} days the boosted trees "
                    f"did not do better ({why}).")
    details = {"calibration": calibration_bins(y, score), "baseline_calibration": calibration_bins(y, base),
               "importance": _importance(model, test.features, y, "roc_auc", random_state),
               "churn_rate": float(y.mean()), "calibration_method": model.calibration_method_}
    return Comparison(metrics=metrics, chosen="model" if wins else "baseline", sentence=sentence,
                      details=details, **common), model


INTERVAL = "80% interval (10% to 90% quantile of the days to the next order, capped at N)"


def btyd_interval(features: pd.DataFrame, model: Any, horizon_days: int,
                  quantiles: tuple[float, float] = (0.1, 0.9)) -> pd.DataFrame:
    """BG/NBD's interval for the days to the next order (capped at the horizon), per customer.

    Under BG/NBD P(no purchase by s) = 1 - P(alive) + P(alive) * (A / (A + s)) ** k with
    A = alpha + T and k = r + x (see :func:`clientfolio.predict.training.btyd_scores`), so the
    q-quantile of the waiting time is A * ((p / (p - q)) ** (1 / k) - 1) when P(alive) = p > q,
    and beyond any horizon otherwise (capped at N, like the label).
    """
    p = model.params_
    alive = features["btyd_p_alive"].to_numpy(dtype=float)
    A = p["alpha"] + features["T"].to_numpy(dtype=float)
    k = p["r"] + features["frequency"].to_numpy(dtype=float)
    h = float(horizon_days)
    out = {}
    for name, q in zip(("low", "high"), quantiles):
        with np.errstate(divide="ignore", invalid="ignore"):
            s = A * ((alive / (alive - q)) ** (1.0 / k) - 1.0)
        out[name] = np.where(alive > q, np.minimum(s, h), h)
    return pd.DataFrame(out, index=features.index)


def coverage_label(coverage: float, n: int) -> str:
    """What an interval covers and how often it held on the test split, in one phrase."""
    return f"80% interval; covered {coverage:.0%} of {n:,} test customers"


def _held(coverage: float, n: int) -> str:
    return f"80% interval held the actual day for {coverage:.0%} of the {n:,} test customers"


def evaluate_next_order(train: TrainingSet, test: TrainingSet, *, random_state: int = 0,
                        thin: str | None = None) -> tuple[Comparison, NextOrderModel | None]:
    """Days to the next order (capped at N) by quantile boosted trees against BG/NBD's median wait.

    Both come with an 80% interval (the trees' 10% and 90% quantile models, BG/NBD's own quantiles of
    the waiting time); ``details`` says how often each interval held the actual day on the test
    split, and ``interval_label`` says it for the one the product uses.
    """
    y = test.labels["days_to_next"].to_numpy()
    base = test.features["btyd_days_median"].to_numpy()
    n = test.horizon_days
    b_mae = float(np.mean(np.abs(y - base)))
    biv = btyd_interval(test.features, test.btyd, n)
    b_cov = float(np.mean((y >= biv["low"].to_numpy()) & (y <= biv["high"].to_numpy())))
    note = f"days to the next order after {test.cutoff.date()}, {n} when none within {n} days"
    common = dict(task="next order", model_name="boosted trees", baseline_name="BG/NBD", cutoff=test.cutoff.date(),
                  horizon_days=n, n_train=len(train.features), n_test=len(test.features))
    b_label = coverage_label(b_cov, len(y))
    if thin is not None:
        sentence = (f"Next order uses the purchase model (BG/NBD): no machine-learning model was trained, {thin}. "
                    f"Its {_held(b_cov, len(y))}.")
        return Comparison(metrics=(Metric("MAE (days)", float("nan"), b_mae, "lower", note),), chosen="baseline",
                          sentence=sentence, details={"thin": thin, "interval": INTERVAL,
                                                      "baseline_interval_coverage": b_cov,
                                                      "interval_label": b_label}, **common), None
    model = NextOrderModel(random_state=random_state).fit(train.features, train.labels["days_to_next"])
    pred = model.predict_interval(test.features)
    m_mae = float(np.mean(np.abs(y - pred["days"].to_numpy())))
    coverage = float(np.mean((y >= pred["low"].to_numpy()) & (y <= pred["high"].to_numpy())))
    wins = m_mae < b_mae
    metrics = (Metric("MAE (days)", m_mae, b_mae, "lower", note),)
    m_label = coverage_label(coverage, len(y))
    if wins:
        sentence = (f"Next order uses the boosted trees: on the last {n} days they were off by {m_mae:.1f} days on "
                    f"average against {b_mae:.1f} for BG/NBD; their {_held(coverage, len(y))}.")
    else:
        sentence = (f"Next order uses the purchase model (BG/NBD): on the last {n} days the boosted trees were off by "
                    f"{m_mae:.2f} days on average, not better than BG/NBD's {b_mae:.2f}; its {_held(b_cov, len(y))}.")
    details = {"interval_coverage": coverage, "baseline_interval_coverage": b_cov, "interval": INTERVAL,
               "interval_label": m_label if wins else b_label,
               "importance": _importance(model, test.features, y, "neg_mean_absolute_error", random_state)}
    return Comparison(metrics=metrics, chosen="model" if wins else "baseline", sentence=sentence,
                      details=details, **common), model


def evaluate_subscriptions(tables: Tables, train: TrainingSet, test: TrainingSet, end: pd.Timestamp, *,
                           random_state: int = 0) -> tuple[Comparison | None, Any, list[str]]:
    """Subscribers' cancellation risk on the same time split: boosted trees against sBG, then what the
    fitted state keeps (sBG at `end`, the trees refitted on the test window when they won).

    Returns (None, None, notes saying why) when the shop has no subscription events or sBG cannot
    be fitted (e.g. no cancellation yet): subscribers then keep the purchase-based churn risk."""
    from clientfolio.core.errors import ClientfolioError
    from clientfolio.predict.subscriptions import (
        SubscriptionChurn,
        default_period,
        fit_sbg,
        subscription_base,
        subscription_training_set,
    )

    subs = tables.subscriptions
    if subs.empty:
        return None, None, []
    period, how = default_period(subs, tables.transactions)
    h = train.horizon_days
    try:
        s_train = subscription_training_set(tables, train.cutoff, h, train, period)
        s_test = subscription_training_set(tables, test.cutoff, h, test, period)
        sbg_now = fit_sbg(subscription_base(subs, end, period))
    except (ValueError, ClientfolioError) as exc:
        return None, None, [f"subscribers' cancellation risk was not estimated: {exc}; their churn risk is the "
                            "purchase-based one"]
    # a period inferred from the charges (no start event gives one) is said; one taken from the events is not news
    given = subs.loc[subs["type"] == "subscription_start", "period_days"].notna().any()
    notes = [] if given else [f"billing period for subscriptions that give none: {how}"]
    notes += [n for n in s_train.notes + s_test.notes if n not in notes]
    if s_test.features.empty:
        return None, None, notes + [f"no active subscriber on {test.cutoff.date()} to measure cancellations on"]
    comp, _ = evaluate_churn(s_train, s_test, random_state=random_state, thin=_thin(s_train, CANCELLATIONS),
                             kind=CANCELLATIONS)
    final = (ChurnModel(random_state=random_state).fit(s_test.features, s_test.labels["churned"])
             if comp.chosen == "model" else None)
    return comp, SubscriptionChurn(sbg=sbg_now, default_period_days=period, period_note=how, churn=final), notes


def reason(row: pd.Series | dict) -> str:
    """Why a customer's churn risk is what it is, from their own numbers (as the live reasons word it)."""
    from clientfolio.core.numbers import decimal_text as _dec
    from clientfolio.core.numbers import rhythm_text as _rhythm

    parts = []
    since, usual = row.get("days_since_last"), row.get("gap_median")
    if since is not None and np.isfinite(since):
        if usual is not None and np.isfinite(usual):
            parts.append(f"no order in {_dec(since, 0)} days, usually every {_rhythm(usual)} days")
        else:
            parts.append(f"one order so far, {_dec(since, 0)} days ago")
    d90, before = row.get("days_90d"), None
    if d90 is not None and np.isfinite(d90) and row.get("trend_90d") is not None:
        before = d90 - row["trend_90d"]
        if d90 != before:
            parts.append(f"{_dec(d90, 0)} order days in the last 90 days against {_dec(before, 0)} in the 90 before")
    pa = row.get("btyd_p_alive")
    repeat = usual is not None and np.isfinite(usual)
    # BG/NBD counts a one-order customer as alive (P(alive) 1.00) until they buy again; shown beside a high
    # churn risk that reads as a contradiction, so it is given for repeat buyers only.
    if pa is not None and np.isfinite(pa) and repeat:
        parts.append(f"P(alive) {pa:.2f}")
    return "; ".join(parts)


def _check_support(tables: Tables) -> None:
    """Below the measured minimum for forecasts nothing is predicted: the verdict every output reads."""
    from clientfolio.core.errors import ClientfolioError
    from clientfolio.store.audit import forecast_support

    tx = tables.transactions[~tables.transactions["is_refund"]]
    per = tx.assign(d=tx["ts"].dt.normalize()).groupby("customer_id")["d"].nunique()
    support = forecast_support((tables.last_day - tables.first_day).days, int(len(per)), int((per > 1).sum()))
    if not support.forecasts:
        raise ClientfolioError(f"predict: churn risk and next order are forecasts, and {support.reason}. "
                               "No predictions were made")


def predict_shop(source: Any, *, horizon_days: int | None = None, random_state: int = 0,
                 events: pd.DataFrame | None = None, customers: pd.DataFrame | None = None,
                 as_of: Any = None, require_support: bool = True) -> ShopPredictions:
    """Evaluate churn and next order on the shop's time split, choose per task, score every customer.

    `source`: a store, a dict of tables (as load_demo_shop gives) or a transactions DataFrame.
    `as_of`: use only the data up to this day (default: all of it), e.g. an analysis's cut-off.
    Returns the comparisons and, per customer with an order by the end of the data, churn risk
    and next order from the chosen method (``churn_source``/``next_order_source`` say which),
    BG/NBD's values beside them, and a reason.  Raises ClientfolioError saying what the data
    lacks when it is below the product's measured minimum for forecasts (the same verdict as
    analyze's, :func:`clientfolio.store.audit.forecast_support`; `require_support=False` skips it,
    to study the models on such data) or too short for the time split.
    """
    from clientfolio.core.errors import ClientfolioError

    if horizon_days is not None and not 1 <= int(horizon_days) <= 3650:
        raise ClientfolioError(f"predict: the churn horizon must be between 1 and 3650 days, got {horizon_days}")
    tables = source if isinstance(source, Tables) else load_tables(source, events, customers)
    if as_of is not None:
        day = pd.Timestamp(as_of)
        end_day = (day.tz_convert(None) if day.tzinfo is not None else day).normalize() + DAY
        tables = tables.until(end_day)
        if tables.transactions.empty:
            raise ClientfolioError(f"predict: there are no orders with a customer up to {end_day - DAY:%Y-%m-%d}")
    if require_support:
        _check_support(tables)
    horizon, c_train, c_test, end = _cut_offs(tables, horizon_days)
    if c_train <= tables.first_day + horizon * DAY:
        covered = (end - tables.first_day).days + 1
        raise ClientfolioError(
            f"predict: the data covers {covered:,} day{'s' if covered != 1 else ''}; churn risk and next order "
            f"need at least {3 * horizon + 1:,} to be trained and checked honestly (three {horizon}-day windows: "
            "history, the outcome the models learn from, and an outcome they never saw to be measured on). "
            "No predictions were made")
    train = build_training_set(tables, c_train, horizon)
    vocab = train.features.attrs["vocab"]
    test = build_training_set(tables, c_test, horizon, vocab=vocab)
    now = build_training_set(tables, end, horizon, vocab=vocab)
    notes = train.notes + test.notes + now.notes
    if any(s.btyd is None for s in (train, test, now)):
        raise ClientfolioError("predict: the BG/NBD baseline could not be fitted: " + "; ".join(notes))
    thin = _thin(train)
    churn, churn_model = evaluate_churn(train, test, random_state=random_state, thin=thin)
    nxt, next_model = evaluate_next_order(train, test, random_state=random_state, thin=thin)
    subs, subs_model, subs_notes = evaluate_subscriptions(tables, train, test, end, random_state=random_state)
    notes += subs_notes
    from clientfolio.predict.applied import PredictionModels

    final = (ChurnModel(random_state=random_state).fit(test.features, test.labels["churned"])
             if churn.chosen == "model" else None)
    final_n = (NextOrderModel(random_state=random_state).fit(test.features, test.labels["days_to_next"])
               if nxt.chosen == "model" else None)
    models = PredictionModels(
        as_of=end, horizon_days=horizon, vocab=vocab, btyd=now.btyd, churn=final, next_order=final_n,
        interval_text=(f"80% interval (10% to 90% quantile), capped at {horizon} days; "
                       + str(nxt.details["interval_label"]).split("; ", 1)[1]), subscriptions=subs_model)
    feats = now.features if subs_model is None else subs_model.add_features(now.features, tables, end,
                                                                           horizon)
    out = models.apply(feats)
    out.attrs["as_of"] = end
    out.attrs["horizon_given"] = horizon_days is not None  # N asked for, or set from the shop's rhythm
    return ShopPredictions(churn, nxt, out.reset_index(), horizon, notes, models, subs)
