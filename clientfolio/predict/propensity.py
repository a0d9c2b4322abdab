"""Propensity per category: the probability that a customer buys from each category in the next N days.

Features come strictly from transactions on or before a cut-off day (the customer's own category
history and overall rhythm); the label is "bought from the category in the N days after the
cut-off".  The model is scikit-learn's HistGradientBoostingClassifier on one row per customer and
category, trained on the window *before* the evaluation window and evaluated on the window after
the cut-off, against the baseline a shop would use without machine learning: the customer's own
past share of orders holding the category (ties broken by the category's overall popularity).
The model is used only when it ranks customers better on both mean AUC and mean PR-AUC over the
categories; otherwise the baseline is used and the :class:`Comparison` says so.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from clientfolio.predict.verdict import Comparison, Metric

__all__ = ["CategoryPropensity", "category_features", "category_labels"]

MIN_CUSTOMERS = 200  # fewer customers active before the cut-off: too thin to train and judge a model
MIN_POSITIVES = 10  # a category needs this many buyers in both windows to get an AUC
_FEATURES = ["share", "orders_cat", "cat_30", "cat_90", "cat_180", "days_since_cat", "orders", "orders_90",
             "days_since", "tenure", "popularity", "cat_code"]


def _day(ts: pd.Series) -> pd.Series:
    """Calendar day (naive) of each timestamp."""
    s = pd.to_datetime(ts)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.dt.normalize()


def _prepare(transactions: pd.DataFrame) -> pd.DataFrame:
    need = {"customer_id", "order_id", "ts", "category"}
    missing = need - set(transactions.columns)
    if missing:
        raise ValueError(f"transactions lack column(s) {sorted(missing)} needed for category propensity")
    t = transactions.loc[transactions["customer_id"].notna() & transactions["category"].notna(),
                         ["customer_id", "order_id", "ts", "category"]].copy()
    t["customer_id"] = t["customer_id"].astype(str)
    t["category"] = t["category"].astype(str)
    t["day"] = _day(t["ts"])
    return t


def category_features(transactions: pd.DataFrame, cutoff: date, categories: list[str] | None = None) -> pd.DataFrame:
    """One row per (customer, category) from rows on or before ``cutoff`` only.

    Customers are those with an order on or before the cut-off; ``categories`` defaults to every
    category seen by then.  Rows after the cut-off cannot change any value (tested).
    """
    t = _prepare(transactions)
    end = pd.Timestamp(cutoff)
    t = t[t["day"] <= end]
    cats = sorted(t["category"].unique()) if categories is None else list(categories)
    if t.empty:
        return pd.DataFrame(columns=["customer_id", "category", *_FEATURES])
    orders = t.drop_duplicates(["customer_id", "order_id"])
    cust = orders.groupby("customer_id").agg(orders=("order_id", "size"), first=("day", "min"), last=("day", "max"))
    cust["orders_90"] = orders[orders["day"] > end - pd.Timedelta(days=90)].groupby("customer_id").size()
    cust["orders_90"] = cust["orders_90"].fillna(0)
    cust["days_since"] = (end - cust["last"]).dt.days
    cust["tenure"] = (end - cust["first"]).dt.days
    oc = t.drop_duplicates(["customer_id", "order_id", "category"])
    g = oc.groupby(["customer_id", "category"])
    per = pd.DataFrame({"orders_cat": g.size(), "last_cat": g["day"].max()})
    for w in (30, 90, 180):
        recent = oc[oc["day"] > end - pd.Timedelta(days=w)]
        per[f"cat_{w}"] = recent.groupby(["customer_id", "category"]).size()
    grid = pd.MultiIndex.from_product([cust.index, cats], names=["customer_id", "category"])
    f = per.reindex(grid).reset_index()
    f = f.join(cust[["orders", "orders_90", "days_since", "tenure"]], on="customer_id")
    for c in ("orders_cat", "cat_30", "cat_90", "cat_180"):
        f[c] = f[c].fillna(0).astype(float)
    f["share"] = f["orders_cat"] / f["orders"]
    never = f["last_cat"].isna()
    f["days_since_cat"] = (end - f["last_cat"]).dt.days.astype(float)
    f.loc[never, "days_since_cat"] = f.loc[never, "tenure"] + 365.0  # never bought: longer ago than any purchase
    buyers = oc.groupby("category")["customer_id"].nunique().reindex(cats).fillna(0)
    f["popularity"] = f["category"].map(buyers / max(len(cust), 1)).astype(float)
    f["cat_code"] = f["category"].map({c: i for i, c in enumerate(cats)}).astype(float)
    return f[["customer_id", "category", *_FEATURES]].sort_values(["customer_id", "category"], ignore_index=True)


def category_labels(transactions: pd.DataFrame, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """(customer_id, category) pairs bought in the ``horizon_days`` days after ``cutoff``, with ``bought`` = 1."""
    t = _prepare(transactions)
    end = pd.Timestamp(cutoff)
    w = t[(t["day"] > end) & (t["day"] <= end + pd.Timedelta(days=horizon_days))]
    out = w.drop_duplicates(["customer_id", "category"])[["customer_id", "category"]].copy()
    out["bought"] = 1
    return out


def _labelled(transactions: pd.DataFrame, cutoff: date, horizon: int, cats: list[str]) -> pd.DataFrame:
    f = category_features(transactions, cutoff, cats)
    y = category_labels(transactions, cutoff, horizon)
    f = f.merge(y, on=["customer_id", "category"], how="left")
    f["bought"] = f["bought"].fillna(0).astype(int)
    return f


def _baseline_score(f: pd.DataFrame) -> np.ndarray:
    """The customer's own past share of orders with the category; popularity breaks ties."""
    return (f["share"] + 1e-3 * f["popularity"]).to_numpy()


class CategoryPropensity:
    """P(buys from each category in the next ``horizon_days`` days), judged against the past-share baseline.

    ``fit`` evaluates on a time split (train features at ``cutoff - horizon``, labels up to the
    cut-off; test features at the cut-off, labels in the ``horizon_days`` after it), stores the
    :class:`Comparison` in ``comparison_`` and ``chosen_`` ("model" or "baseline"), then refits the
    model on the latest complete window for scoring.
    """

    def __init__(self, horizon_days: int = 30, random_state: int = 0, max_iter: int = 150) -> None:
        self.horizon_days = horizon_days
        self.random_state = random_state
        self.max_iter = max_iter

    def _model(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=0.05, max_leaf_nodes=15,
                                              early_stopping=False, random_state=self.random_state)

    def fit(self, transactions: pd.DataFrame, cutoff: date | None = None) -> "CategoryPropensity":
        """Evaluate on the split at ``cutoff`` (default: last day minus the horizon), then refit."""
        with threadpool_limits(1):  # one thread: several times faster on a busy machine for these sizes
            return self._fit(transactions, cutoff)

    def _fit(self, transactions: pd.DataFrame, cutoff: date | None) -> "CategoryPropensity":
        h = int(self.horizon_days)
        if h < 1:
            raise ValueError(f"horizon_days must be 1 or more, got {h}")
        t = _prepare(transactions)
        if t.empty:
            raise ValueError("no transactions with a customer and a category: nothing to predict")
        last = t["day"].max()
        cut = pd.Timestamp(cutoff) if cutoff is not None else last - pd.Timedelta(days=h)
        train_cut = cut - pd.Timedelta(days=h)
        cats = sorted(t.loc[t["day"] <= train_cut, "category"].unique())
        self.categories_ = cats
        train = _labelled(t, train_cut.date(), h, cats)
        test = _labelled(t, cut.date(), h, cats)
        n_tr, n_te = train["customer_id"].nunique(), test["customer_id"].nunique()
        thin = []
        if n_tr < MIN_CUSTOMERS or n_te < MIN_CUSTOMERS:
            thin.append(f"only {min(n_tr, n_te)} customers were active before the cut-off (at least "
                        f"{MIN_CUSTOMERS} are needed)")
        if cut + pd.Timedelta(days=h) > last:
            thin.append(f"the data end on {last:%Y-%m-%d}, before the {h}-day outcome window after the cut-off closes")
        model = None
        if not thin and train["bought"].nunique() == 2:
            model = self._model().fit(train[_FEATURES].to_numpy(), train["bought"].to_numpy())
        elif not thin:
            thin.append("no customer bought in the training window")
        p_model = model.predict_proba(test[_FEATURES].to_numpy())[:, 1] if model is not None else None
        p_base = _baseline_score(test)
        per_cat: dict[str, dict[str, float]] = {}
        aucs_m, aucs_b, prs_m, prs_b = [], [], [], []
        for c in cats:
            m = (test["category"] == c).to_numpy()
            y = test["bought"].to_numpy()[m]
            pos = int(y.sum())
            row: dict[str, float] = {"buyers": pos, "customers": int(m.sum()),
                                     "base_rate": float(y.mean()) if m.any() else 0.0}
            if pos >= MIN_POSITIVES and pos < m.sum() and p_model is not None:
                row.update(auc_model=float(roc_auc_score(y, p_model[m])),
                           auc_baseline=float(roc_auc_score(y, p_base[m])),
                           pr_auc_model=float(average_precision_score(y, p_model[m])),
                           pr_auc_baseline=float(average_precision_score(y, p_base[m])))
                aucs_m.append(row["auc_model"])
                aucs_b.append(row["auc_baseline"])
                prs_m.append(row["pr_auc_model"])
                prs_b.append(row["pr_auc_baseline"])
            per_cat[c] = row
        if p_model is not None and not aucs_m:
            thin.append(f"no category had {MIN_POSITIVES} buyers in the outcome window")
        if thin:
            nan = float("nan")
            metrics: tuple[Metric, ...] = (
                Metric("mean AUC", nan, nan, "higher", "not computed: data too thin"),
                Metric("mean PR-AUC", nan, nan, "higher", "not computed: data too thin"))
            chosen = "baseline"
            sentence = ("The customer's own past category share is used: the data are too thin to train and judge "
                        "a model (" + "; ".join(thin) + ").")
        else:
            note = (f"mean over {len(aucs_m)} categories with ≥{MIN_POSITIVES} buyers; customers active before the "
                    "cut-off")
            metrics = (Metric("mean AUC", float(np.mean(aucs_m)), float(np.mean(aucs_b)), "higher", note),
                       Metric("mean PR-AUC", float(np.mean(prs_m)), float(np.mean(prs_b)), "higher", note))
            wins = all(m.model_wins for m in metrics)
            chosen = "model" if wins else "baseline"
            a, b = metrics[0], metrics[1]
            if wins:
                sentence = (f"The boosted-trees propensity is used: it ranks who buys each category in the next {h} "
                            f"days better than the customer's past category share (mean AUC {a.model:.3f} against "
                            f"{a.baseline:.3f}, PR-AUC {b.model:.3f} against {b.baseline:.3f}).")
            else:
                sentence = (f"The customer's own past category share is used: the boosted trees did not rank buyers "
                            f"better on both measures (mean AUC {a.model:.3f} against {a.baseline:.3f}, PR-AUC "
                            f"{b.model:.3f} against {b.baseline:.3f}).")
        self.comparison_ = Comparison(
            task="category propensity", model_name="boosted trees", baseline_name="past category share",
            metrics=metrics, chosen=chosen, sentence=sentence, cutoff=cut.date(), horizon_days=h,
            n_train=n_tr, n_test=n_te, details={"per_category": per_cat, "thin": thin})
        self.chosen_ = chosen
        # refit on the latest window whose outcome is fully observed, for scoring now
        self.model_ = None
        if chosen == "model":
            self.model_ = self._model().fit(
                pd.concat([train, test])[_FEATURES].to_numpy(), pd.concat([train, test])["bought"].to_numpy())
        return self

    def predict_proba(self, transactions: pd.DataFrame, at: date | None = None) -> pd.DataFrame:
        """Customers × categories: the score of buying from each category in the ``horizon_days`` after ``at``.

        With the model chosen the values are its probabilities; with the baseline chosen they are the
        customer's past share of orders holding the category (a frequency, not a calibrated probability).
        """
        if not hasattr(self, "comparison_"):
            raise NotFittedError("CategoryPropensity is not fitted yet: call fit(transactions) first")
        t = _prepare(transactions)
        when = pd.Timestamp(at) if at is not None else t["day"].max()
        f = category_features(t, when.date(), self.categories_)
        score = self.model_.predict_proba(f[_FEATURES].to_numpy())[:, 1] if self.model_ is not None else f["share"]
        f = f.assign(score=np.asarray(score, dtype=float))
        return f.pivot(index="customer_id", columns="category", values="score")[self.categories_]
