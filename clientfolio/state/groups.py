"""Separate purchase models per known customer group, as part of the fitted portfolio state.

When the holdout comparison of :func:`clientfolio.predict.covariates.compare_covariate_models` finds
that one BG/NBD (or Pareto/NBD) per level of an attribute (acquisition channel, region, ...)
predicts a shop's holdout period better than one pooled model, the state keeps a
:class:`GroupedPurchase`: one plain model per level (with its covariance, for the ranges) and, for
BG/NBD, one MBG/NBD per level for one-time buyers' P(alive).  Applying the state scores each
customer with the models of their level through the same :func:`~clientfolio.scores.score_customers`
as the pooled model -- so every score (P(alive), expected purchases, CLV and its range, next order)
keeps its meaning.  A customer whose level was not seen at the fit, or whose level had too few
customers for its own model, is scored with the pooled model (the state's ``purchase_model_``);
``scores.attrs["pooled_fallback"]`` counts them and the fit's note says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError, SchemaError
from clientfolio.core.notes import method_note
from clientfolio.models.covariates import MISSING_LEVEL, _categorical
from clientfolio.scores import score_customers
from clientfolio.scores.intervals import BUDGET, MAX_DRAWS, MIN_DRAWS, _draws, _simulate

MIN_GROUP_CUSTOMERS = 20  # as compare_covariate_models: smaller levels are scored with the pooled model
# Store attribute columns -> their names in the state's customer features (clientfolio.state.features).
FEATURE_COLUMNS = {"country": "customer_country"}


def levels_of(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Each row's level of `column` as text; a missing value is the level ``"(missing)"``."""
    if column not in frame:
        return np.full(len(frame), MISSING_LEVEL, dtype=object)
    return _categorical(frame[column].reset_index(drop=True))


class GroupedPurchase:
    """One plain purchase model (and one-time-buyer model) per level of ``column``; the pooled ones elsewhere.

    Fitted by :meth:`fit` on the state's model summary (weeks, one row per customer, with ``column``).
    """

    def __init__(self, column: str, kind: str, min_customers: int = MIN_GROUP_CUSTOMERS) -> None:
        self.column = column
        self.kind = kind
        self.min_customers = min_customers

    def fit(self, summary: pd.DataFrame, pooled: Any, notes: list) -> GroupedPurchase:
        """Fit one model per level with at least ``min_customers`` customers, starting from the pooled fit."""
        from clientfolio.state.models import MODELS, fit_one_time_alive_model

        levels = levels_of(summary, self.column)
        self.models_: dict[str, Any] = {}
        self.alive_models_: dict[str, Any] = {}
        self.sizes_: dict[str, int] = {}
        pooled_levels: list[str] = []
        penalised: list[str] = []
        for level in sorted(set(levels)):
            rows = summary.iloc[np.flatnonzero(levels == level)]
            self.sizes_[level] = len(rows)
            if len(rows) < self.min_customers:
                pooled_levels.append(f"{level} ({len(rows)} customers, fewer than {self.min_customers})")
                continue
            model, error = None, None
            # as the pooled model: a penalised fit (estimates kept moderate) when the plain one does not converge
            for settings in ({"initial_params": dict(pooled.params_)}, {"penalizer_coef": 0.001}):
                try:
                    model = MODELS[self.kind](**settings).fit(rows)
                    break
                except ClientfolioError as exc:
                    error = error or exc
            if model is None:
                pooled_levels.append(f"{level} (its own fit failed: {error})")
                continue
            if error is not None:
                penalised.append(f"{level} (without it: {error})")
            self.models_[level] = model
            self.alive_models_[level] = fit_one_time_alive_model(model, rows, [])
        self.notes_ = [method_note(
            f"purchases are predicted with separate {type(pooled).__name__} fits per {self.column} "
            f"({', '.join(self.models_)}); customers of a {self.column} not seen at the fit"
            + (f", and of {'; '.join(pooled_levels)}," if pooled_levels else "")
            + " are scored with the model of all customers")]
        if penalised:
            self.notes_.append(method_note(
                f"the {self.column} model(s) of {'; '.join(penalised)} were fitted with penalizer_coef=0.001, "
                "which keeps their estimates moderate"))
        notes.extend(self.notes_)
        return self

    def score(self, summary: pd.DataFrame, pooled: Any, pooled_alive: Any, spend: Any, settings: Any) -> pd.DataFrame:
        """:func:`score_customers` per level (the pooled models for unknown and small levels), in row order."""
        if self.column not in summary:
            raise SchemaError(f"the purchase models are fitted per {self.column}, but the customers to score have no "
                              f"{self.column} column: build their features with clientfolio.state.customer_features")
        levels = levels_of(summary, self.column)
        routed = np.where(np.isin(levels, list(self.models_)), levels, None)
        parts, order = [], []
        for level in pd.unique(routed):
            idx = np.flatnonzero(routed == level) if level is not None else np.flatnonzero(pd.isna(routed))
            sub = summary.iloc[idx]
            sub.attrs = dict(summary.attrs)
            model = self.models_.get(level, pooled) if level is not None else pooled
            alive = self.alive_models_.get(level) if level is not None else pooled_alive
            parts.append(score_customers(sub, model, spend, settings, one_time_alive=alive))
            order.append(idx)
        out = pd.concat(parts, ignore_index=True)
        out = out.iloc[np.argsort(np.concatenate(order), kind="stable")].reset_index(drop=True)
        out.attrs = dict(parts[0].attrs)
        out.attrs["pooled_fallback"] = int(pd.isna(routed).sum())
        out.attrs["grouped_by"] = self.column
        return out

    def predict_purchases(self, t: float, summary: pd.DataFrame, pooled: Any) -> np.ndarray:
        """Expected purchases in `t` (model time units) per row of `summary` (frequency, recency, T and
        ``column``), each with their level's model; unknown and small levels with `pooled`."""
        levels = levels_of(summary, self.column)
        out = np.empty(len(summary), dtype=float)
        for level in pd.unique(levels):
            idx = np.flatnonzero(levels == level)
            model = self.models_.get(level, pooled)
            out[idx] = np.asarray(model.predict_purchases(t, summary.iloc[idx][["frequency", "recency", "T"]]),
                                  dtype=float)
        return out

    def score_arrays(self, cols: dict[str, np.ndarray], pooled: Any, pooled_alive: Any, spend: Any, settings: Any,
                     unit_days: float, cutoff: pd.Timestamp) -> dict[str, np.ndarray]:
        """:meth:`score` for columns as arrays (the one-customer update): each level's rows through
        :func:`~clientfolio.scores.clv.score_arrays` with that level's models, in row order."""
        from clientfolio.scores.clv import score_arrays

        if self.column not in cols:
            raise SchemaError(f"the purchase models are fitted per {self.column}, but the customers to score have no "
                              f"{self.column} column: build their features with clientfolio.state.customer_features")
        levels = _categorical(pd.Series(np.asarray(cols[self.column], dtype=object)))
        n = len(levels)
        out: dict[str, np.ndarray] = {}
        for level in pd.unique(levels):
            idx = np.flatnonzero(levels == level)
            sub = {k: (np.asarray(v)[idx] if isinstance(v, np.ndarray) and len(v) == n else v) for k, v in cols.items()}
            model = self.models_.get(level, pooled)
            alive = self.alive_models_.get(level, pooled_alive) if level in self.models_ else pooled_alive
            part = score_arrays(sub, model, spend, settings, alive, unit_days, cutoff)
            for k, v in part.items():
                if k not in out:
                    out[k] = np.empty(n, dtype=np.asarray(v).dtype)
                out[k][idx] = v
        return out

    def total_interval(self, data: pd.DataFrame, pooled: Any, value_per_purchase: np.ndarray, horizon: float,
                       level: float = 0.8, seed: int = 0) -> dict | None:
        """The shop total's range as :func:`~clientfolio.scores.intervals.total_interval`, each level
        simulated with its own model (and its own parameter draws), the draws summed across levels."""
        from scipy.special import ndtri

        x, t_ = (data[c].to_numpy(dtype=float) for c in ("frequency", "T"))
        p_alive = data["p_alive"].to_numpy(dtype=float)
        value = np.nan_to_num(np.asarray(value_per_purchase, dtype=float))
        n_draws = int(np.clip(BUDGET // max(len(x), 1), MIN_DRAWS, MAX_DRAWS))
        rng = np.random.default_rng(seed)
        levels = levels_of(data, self.column)
        routed = np.where(np.isin(levels, list(self.models_)), levels, "\0pooled")
        per_level = []
        for lv in pd.unique(routed):
            idx = np.flatnonzero(routed == lv)
            model = self.models_.get(lv, pooled)
            draws = _draws(model, n_draws, seed)
            per_level.append([value[idx] @ _simulate(m, x[idx], t_[idx], p_alive[idx], horizon, rng).astype(float)
                              for m in draws])
        n = min(len(t) for t in per_level)
        if n < 2:
            return None
        totals = np.sum([np.asarray(t[:n]) for t in per_level], axis=0)
        if n >= MAX_DRAWS:
            lo, hi = np.quantile(totals, [0.5 - level / 2, 0.5 + level / 2])
        else:
            z = float(ndtri(0.5 + level / 2))
            lo, hi = max(totals.mean() - z * totals.std(ddof=1), 0.0), totals.mean() + z * totals.std(ddof=1)
        covers = (f"the parameter uncertainty of each {self.column}'s model and the randomness of who buys how "
                  "often; spend per order taken as known")
        return {"low": float(lo), "high": float(hi), "level": level, "draws": int(n), "covers": covers}

    # ------------------------------------------------------------------ storing
    def to_dict(self) -> dict:
        """Plain numbers: the column, the model kind, each level's model and one-time-buyer model, sizes."""
        from clientfolio.state.models import model_to_dict

        return {"column": self.column, "kind": self.kind, "min_customers": self.min_customers,
                "models": {lv: model_to_dict(m) for lv, m in self.models_.items()},
                "alive_models": {lv: model_to_dict(m) for lv, m in self.alive_models_.items()},
                "sizes": dict(self.sizes_), "notes": [str(n) for n in self.notes_]}

    @classmethod
    def from_dict(cls, d: dict) -> GroupedPurchase:
        """The grouped models :meth:`to_dict` wrote, ready to score."""
        from clientfolio.state.models import model_from_dict

        self = cls(d["column"], d["kind"], int(d.get("min_customers", MIN_GROUP_CUSTOMERS)))
        self.models_ = {lv: model_from_dict(m) for lv, m in d["models"].items()}
        self.alive_models_ = {lv: model_from_dict(m) for lv, m in d["alive_models"].items()}
        self.sizes_ = {lv: int(n) for lv, n in d["sizes"].items()}
        self.notes_ = [method_note(n) for n in d.get("notes", [])]
        return self


def informative_attribute(cal: pd.DataFrame, attributes: pd.DataFrame, columns: list[str],
                          min_customers: int = MIN_GROUP_CUSTOMERS) -> tuple[str | None, dict[str, float]]:
    """The attribute whose levels differ most in how often customers buy: the one worth a grouped fit.

    The rule: among `columns` with at least two levels of `min_customers` customers (and at most 50
    levels), the largest share of the variance of the calibration repeat-purchase rate
    (frequency / T) explained by the levels (the correlation ratio eta squared).  Returns the column
    (None when no column qualifies) and every qualifying column's share.
    """
    frame = cal[["customer_id", "frequency", "T"]].copy()
    frame["customer_id"] = frame["customer_id"].astype(str)
    attrs = attributes.copy()
    attrs["customer_id"] = attrs["customer_id"].astype(str)
    frame = frame.merge(attrs, on="customer_id", how="left")
    rate = (frame["frequency"] / frame["T"].clip(lower=1.0)).to_numpy(dtype=float)
    total = float(np.sum((rate - rate.mean()) ** 2))
    shares: dict[str, float] = {}
    for col in columns:
        if col not in frame:
            continue
        levels = pd.Series(levels_of(frame, col))
        counts = levels.value_counts()
        if (counts >= min_customers).sum() < 2 or len(counts) > 50 or total <= 0:
            continue
        means = pd.Series(rate).groupby(levels).transform("mean").to_numpy()
        shares[col] = float(np.sum((means - rate.mean()) ** 2) / total)
    best = max(shares, key=lambda c: (shares[c], c)) if shares else None
    return best, shares


ATTRIBUTE_COLUMNS = ("acquisition_channel", "region", "country", "industry", "size")  # the store's customers table


def choose_group(store: Any, cal: pd.DataFrame, calibration_end: pd.Timestamp, holdout_end: pd.Timestamp,
                 kind: str) -> tuple[str | None, dict[str, Any]]:
    """Whether separate fits per one customer attribute beat the pooled model on the holdout period.

    Runs only when the store's customers have an attribute with two or more levels of
    ``MIN_GROUP_CUSTOMERS`` customers; to keep analyze's cost bounded, only one attribute is tried:
    the one whose levels explain most of the spread in how often customers buy
    (:func:`informative_attribute`).  The comparison is
    :func:`~clientfolio.predict.covariates.compare_covariate_models` on the same calibration /
    holdout split as the plain models, and its rule decides (holdout error more than 2% lower).
    Returns the column of the customer features to group by (None: keep the pooled model) and what
    to show: ``{"column", "shares", "comparison", "used", "sentence"}`` (empty when nothing was tried).
    """
    from clientfolio.predict.covariates import LABELS, compare_covariate_models, customer_attributes

    if kind not in LABELS:
        return None, {}
    attrs = customer_attributes(store, launch_weeks=None)
    column, shares = informative_attribute(cal, attrs, [c for c in ATTRIBUTE_COLUMNS if c in attrs])
    if column is None:
        return None, {}
    comp = compare_covariate_models(store, attrs, group=column, model=kind, calibration_end=calibration_end,
                                    holdout_end=holdout_end, min_group_customers=MIN_GROUP_CUSTOMERS)
    label, name = LABELS[kind], column.replace("_", " ")
    mae = next((m for m in comp.metrics if m.name.startswith("holdout MAE")), None)
    used = comp.chosen == "model" and mae is not None
    if mae is None:
        sentence = (f"Separate {label} fits per {name} were checked but could not be fitted; one pooled {label} "
                    "is used.")
    else:
        gain = 1 - mae.model / mae.baseline if mae.baseline else 0.0
        how = (f"{abs(gain):.0%} {'better' if gain >= 0 else 'worse'} than" if abs(gain) >= 0.005
               else "as well as")
        sentence = (f"Separate {label} fits per {name} track the holdout period {how} one pooled {label} "
                    f"({mae.model:.2f} against {mae.baseline:.2f} purchases per customer missed); "
                    + ("used." if used else "not better by more than 2%, so the pooled model is kept."))
    sentence += (f" ({name} was tried because its levels explain the most of how often customers buy: "
                 f"{shares[column]:.1%} of the spread of the repeat-purchase rate; other attributes: "
                 + (", ".join(f"{c.replace('_', ' ')} {v:.1%}" for c, v in shares.items() if c != column) or "none")
                 + ".)")
    info = {"column": column, "shares": shares, "comparison": comp, "used": used, "sentence": sentence}
    return (FEATURE_COLUMNS.get(column, column) if used else None), info
