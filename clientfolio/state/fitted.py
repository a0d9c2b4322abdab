"""The fitted portfolio state: everything learned from the whole customer base at a cut-off.

Fit once, apply everywhere (DESIGN.md).  :meth:`PortfolioState.fit` learns, from the customers'
features at a cut-off, what depends on the whole base -- purchase, spend and one-time-buyer
models (with covariance), the run rate of shops too small for a model, RFM cut points, value
and frequency tier lines, the shop's return window, quadrant splits, value-score references and
weights, cluster scaling and centres, the rule set and the CAC table.  :meth:`PortfolioState.apply`
scores and segments any set of customers with that state: the whole base, one customer after an
event, a partition elsewhere.  It reads nothing but its arguments, so applying a state to the
customers it was fitted on gives exactly what fitting gave.

Both run through the same steps (`_score`, `_segment`): while fitting, each step first learns its
part of the state from the customers in front of it, then applies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.core.notes import Notes, method_note
from clientfolio.scores import (ClvSettings, clv_to_cac, customer_cac, historical_scores, run_rate_scores,
                                score_customers)
from clientfolio.scores.acquisition import cac_array, cac_lookup
from clientfolio.scores.clv import (DAYS_PER_MONTH, historical_arrays, run_rate_arrays, run_rate_per_month,
                                    score_arrays)
from clientfolio.scores.intervals import total_interval
from clientfolio.segments import behaviour as seg_behaviour
from clientfolio.segments import lifecycle, portfolio, rfm, value
from clientfolio.segments._membership import column_values
from clientfolio.segments.clusters import ClusterAssigner
from clientfolio.state.groups import GroupedPurchase
from clientfolio.state.models import (MODELS, fit_one_time_alive_model, fit_purchase_model, fit_spend_model,
                                      model_from_dict, model_to_dict)
from clientfolio.store.audit import Support

FORMAT = 1  # version of the stored form; bump when `to_dict` changes incompatibly
CLUSTER_SAMPLE = 5_000  # customers on which the number of groups is chosen (all are assigned)
# Columns measured in days; the purchase models work in weeks.
TIME_COLUMNS = ("recency", "T", "tenure", "ipt_mean", "ipt_std", "last_gap", "first_gap", "ipt_mean_before_last")
PREFERENCE_KINDS = ("category_preference", "channel_preference", "discount_reliance")


@dataclass
class Applied:
    """What applying a state gives: one row per customer with every score and segment, and memberships."""

    customers: pd.DataFrame
    segments: pd.DataFrame


def model_summary(features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The features in the purchase models' unit (weeks), with the attributes scores read."""
    summary = features.copy()
    for col in TIME_COLUMNS:
        if col in summary:
            summary[col] = summary[col] / 7.0
    summary.attrs.update({"unit": "W", "unit_days": 7.0, "cutoff": pd.Timestamp(as_of)})
    return summary


class PortfolioState:
    """Learned from the whole base at a cut-off; scores and segments customers (scikit-learn's contract).

    Settings go to the constructor; :meth:`fit` learns the attributes ending in ``_``;
    :meth:`apply` is a pure function of the state and the customers' features (in days, one row
    per customer: the columns of :func:`clientfolio.state.features.customer_features`).
    """

    _cac_lookup: Any = None  # the CAC table as a dict, made once for apply_columns

    def __init__(self, model: str = "bgnbd", settings: ClvSettings | None = None, sector: str = "retail",
                 rules: Any = None, clusters: bool = True, currency: str = "") -> None:
        self._cac_lookup = _UNSET
        self.model = model
        self.settings = settings or ClvSettings()
        self.sector = sector
        self.rules = rules
        self.clusters = clusters
        self.currency = currency

    # ------------------------------------------------------------------ fit and apply
    def fit(self, features: pd.DataFrame, as_of: pd.Timestamp, *, support: Support, start: dict | None = None,
            transactions: pd.DataFrame | None = None, marketing_spend: pd.DataFrame | None = None,
            prospects: pd.Series | None = None, fitted_on: dict | None = None,
            purchase_stats: pd.DataFrame | None = None, group: str | None = None) -> PortfolioState:
        """Learn the state from every customer's features at `as_of`; see :meth:`fit_apply`."""
        self.fit_apply(features, as_of, support=support, start=start, transactions=transactions,
                       marketing_spend=marketing_spend, prospects=prospects, fitted_on=fitted_on,
                       purchase_stats=purchase_stats, group=group)
        return self

    def fit_apply(self, features: pd.DataFrame, as_of: pd.Timestamp, *, support: Support, start: dict | None = None,
                  transactions: pd.DataFrame | None = None, marketing_spend: pd.DataFrame | None = None,
                  prospects: pd.Series | None = None, fitted_on: dict | None = None,
                  purchase_stats: pd.DataFrame | None = None, group: str | None = None) -> Applied:
        """Fit the state and return its application to the same customers (like ``fit_transform``).

        `support` says whether the data supports forecasts; `start`, parameters to start the
        purchase model from; `transactions`, the rows windowed rules read; `prospects`, known
        customers without purchases (lifecycle "prospect").  `fitted_on` records the data
        (transactions, customers, fingerprint) with the state.  `purchase_stats` (``frequency,
        recency, T`` in days and ``weights``: the whole base's distinct histories with their counts)
        is what the purchase models are fitted on when `features` is only a sample of the base.
        `group`: a customer attribute column of `features` whose levels get purchase models of their
        own (chosen on a holdout period by analyze; :mod:`clientfolio.state.groups`).
        """
        self.settings.check()
        as_of = pd.Timestamp(as_of).normalize()
        self.cutoff_ = as_of
        self.support_ = support
        self.fitted_on_ = dict(fitted_on or {}, cutoff=as_of.isoformat(), customers=int(len(features)))
        self.notes_ = Notes()
        # Churn risk and next order made at this fit (analyze --predict sets a summary; the scores themselves
        # live in the store's predictions table, rescored for touched customers by live updates).
        self.predictions_: dict | None = None
        # The churn and next-order models behind them (clientfolio.predict.applied.PredictionModels), which live
        # updates apply to the customers they touch; None when no predictions were made.
        self.prediction_models_: Any = None
        # Which behaviour columns this shop has: features derived for one customer later must have the same.
        self.categories_ = [c.removeprefix("share_") for c in features.columns if c.startswith("share_")]
        self.feature_flags_ = {"discounts": "discount_share" in features, "events": "email_opens" in features,
                               "channels": "top_channel" in features, "sentiment": "mean_sentiment" in features}
        self._fit_models(features, as_of, start, purchase_stats, group)
        scored = self._score(features, as_of, self.settings, fit=True)
        applied = self._segment(scored, as_of, transactions, prospects, marketing_spend, fit=True)
        return applied

    def apply(self, features: pd.DataFrame, as_of: pd.Timestamp | None = None, *,
              transactions: pd.DataFrame | None = None, prospects: pd.Series | None = None,
              intervals: bool = True, next_order: bool = True) -> Applied:
        """Score and segment `features` (one row per customer, in days) with the fitted state at `as_of`.

        `intervals=False` skips the simulated CLV ranges and `next_order=False` the next order date
        (the look-back and the next-change probes need segments only; a rule reading the date keeps it).
        """
        self._check_fitted()
        as_of = pd.Timestamp(as_of if as_of is not None else self.cutoff_).normalize()
        scored = self._score(features, as_of, self._apply_settings(intervals, next_order), fit=False)
        return self._segment(scored, as_of, transactions, prospects, None, fit=False)

    def _apply_settings(self, intervals: bool, next_order: bool) -> ClvSettings:
        next_order = next_order or (self.rules_ is not None and "next_order_date" in self.rules_.fields)
        return self.settings if intervals and next_order else ClvSettings(
            horizon_months=self.settings.horizon_months, discount_rate=self.settings.discount_rate,
            margin=self.settings.margin, interval=self.settings.interval,
            intervals=intervals and self.settings.intervals, next_order=next_order)

    def apply_columns(self, features: dict[str, np.ndarray], as_of: pd.Timestamp | None = None, *,
                      transactions: pd.DataFrame | None = None, intervals: bool = True, next_order: bool = True
                      ) -> tuple[dict[str, np.ndarray], list[tuple[str, str, Any]]]:
        """:meth:`apply` for a few customers given as columns of NumPy arrays (in days, the columns of
        :func:`clientfolio.state.features.customer_features`): (every customer column, memberships as
        (customer_id, segment_kind, segment) tuples).

        The same array functions as :meth:`apply` compute every number, row by row, so a customer gets
        exactly what they get in a batch; no DataFrame is built (but for rule segments, whose evaluator
        reads frames).  What a per-event update calls: pandas' fixed cost per call would dominate it.
        """
        self._check_fitted()
        as_of = pd.Timestamp(as_of if as_of is not None else self.cutoff_).normalize()
        s = self._apply_settings(intervals, next_order)
        c = dict(features)
        ids = np.asarray(c["customer_id"], dtype=object)
        n = len(ids)
        # -- scores (what _score adds): the models work in weeks
        summary = {k: (_floats(v) / 7.0 if k in TIME_COLUMNS else v) for k, v in c.items()}
        if not self.support_.forecasts:
            scores = historical_arrays(summary, self.support_.reason, s)
        elif self.purchase_model_ is None:
            scores = run_rate_arrays(summary, s, self.run_rate_, 7.0)
        elif getattr(self, "purchase_groups_", None) is not None:  # one model per customer group
            scores = self.purchase_groups_.score_arrays(summary, self.purchase_model_, self.alive_model_,
                                                        self.spend_model_, s, 7.0, as_of)
        else:
            scores = score_arrays(summary, self.purchase_model_, self.spend_model_, s, self.alive_model_, 7.0, as_of)
        for k, v in scores.items():
            c.setdefault(k, v)
        # -- segments, in _segment's order
        forecasts = self.support_.forecasts
        members: list[tuple[str, np.ndarray]] = []
        since, freq, money = rfm._rfm_inputs(c, as_of)
        r = rfm.rfm_arrays(since, freq, money, self.rfm_cuts_)
        c.update(r)
        c["rfm_segment"] = rfm.rfm_names(r["R"], r["FM"])
        members.append(("rfm", c["rfm_segment"]))
        tiers: dict[str, np.ndarray] = {}
        if forecasts:
            tiers["value_tier"] = value.tiers_by_cuts(c["clv"], self.value_tier_cuts_, value.VALUE_TIER_NAMES)
        tiers["historical_value_tier"] = value.tiers_by_cuts(c["revenue"], self.historical_tier_cuts_,
                                                             value.HISTORICAL_TIER_NAMES)
        tiers["frequency_tier"] = value.frequency_tier_array(
            c["orders"], c["orders_per_month"] if "orders_per_month" in c else c["frequency"], self.frequency_cut_)
        members.extend(tiers.items())
        prof = value.profitability_arrays(c["revenue"], c.get("cost"), c.get("cost_to_serve"), self.settings.margin)
        c.update(prof)
        members.append(("profitability", prof["profitability"]))
        life = lifecycle.lifecycle_arrays(c, 1.0, self.return_window_)
        c.update(life)
        members.append(("lifecycle", life["lifecycle"]))
        if "value_12m" not in c:
            raise SchemaError("apply: the features need value_12m and revenue_12m (the last 12 months); "
                              "build them with clientfolio.state.features.customer_features")
        for k in ("value_12m", "revenue_12m"):
            v = _floats(c[k])
            c[k] = np.where(np.isnan(v), 0.0, v)
        if forecasts:
            _, _, quad = portfolio.portfolio_arrays(c, self.quadrant_splits_)
            c["quadrant"] = quad
            members.append(("portfolio", quad))
        else:
            c["quadrant"] = np.full(n, None, dtype=object)
        for kind in ("value_tier", "historical_value_tier", "frequency_tier"):
            c[kind] = tiers[kind] if kind in tiers else np.full(n, np.nan)
        beh, _ = seg_behaviour.behaviour_arrays(c)
        members.extend(beh)
        vs, _, _ = value.value_score_arrays(c, self.sector, self.value_references_)
        c.update(vs)
        if self.cluster_assigner_ is not None:
            c["cluster"] = np.asarray(self.cluster_assigner_.assign(c), dtype=object)
            members.append(("cluster", c["cluster"]))
        rows = [(cid, kind, _segment_text(seg)) for kind, values in members for cid, seg in zip(ids, values)]
        if self.rules is not None:
            frame = pd.DataFrame({k: v for k, v in c.items()})
            frame.attrs.update({"cutoff": as_of, "unit_days": 1.0})
            rule_frame = frame.drop(columns=[col for col in frame.columns if frame[col].dtype == object
                                             and col != "customer_id" and frame[col].map(type).isin([list, dict]).any()])
            ruled = self.rules_.evaluate(rule_frame, transactions, as_of=as_of)
            rows.extend(zip(ruled["customer_id"].tolist(), ruled["segment_kind"].tolist(),
                            [_segment_text(v) for v in ruled["segment"].tolist()]))
        by_kind = dict(beh)
        for kind in PREFERENCE_KINDS:
            c[kind] = by_kind[kind] if kind in by_kind else np.full(n, np.nan)
        if self._cac_lookup is _UNSET:
            self._cac_lookup = cac_lookup(self.cac_)
        c["cac"] = cac_array(c, self._cac_lookup)
        return c, rows

    # ------------------------------------------------------------------ the steps
    def _fit_models(self, features: pd.DataFrame, as_of: pd.Timestamp, start: dict | None,
                    purchase_stats: pd.DataFrame | None = None, group: str | None = None) -> None:
        self.purchase_model_ = self.spend_model_ = self.alive_model_ = None
        self.purchase_groups_ = None
        self.run_rate_ = None
        self.clv_total_interval_ = None
        if not self.support_.forecasts:
            return
        summary = model_summary(features, as_of)
        fit_on = summary  # every customer: fits cost what the distinct (x, t_x, T) histories cost
        purchase_on = fit_on if purchase_stats is None else model_summary(purchase_stats, as_of)
        self.purchase_model_ = fit_purchase_model(purchase_on, self.model, self.notes_, start)
        self.spend_model_ = fit_spend_model(fit_on, self.notes_)
        if self.purchase_model_ is not None:
            self.alive_model_ = fit_one_time_alive_model(self.purchase_model_, purchase_on, self.notes_)
            if group is not None and type(self.purchase_model_) is MODELS[self.model]:
                self.purchase_groups_ = GroupedPurchase(group, self.model).fit(fit_on, self.purchase_model_,
                                                                               self.notes_)
        else:
            self.run_rate_ = run_rate_per_month(summary)

    def _score(self, features: pd.DataFrame, as_of: pd.Timestamp, s: ClvSettings, fit: bool) -> pd.DataFrame:
        """Forecast columns for every customer (empty, with the reason, where the data cannot support them)."""
        summary = model_summary(features, as_of)
        if not self.support_.forecasts:
            scores = historical_scores(summary, self.support_.reason, s)
        elif self.purchase_model_ is None:
            scores = run_rate_scores(summary, s, shop_rate=self.run_rate_)
        elif getattr(self, "purchase_groups_", None) is not None:  # one model per customer group
            scores = self.purchase_groups_.score(summary, self.purchase_model_, self.alive_model_, self.spend_model_, s)
        else:
            scores = score_customers(summary, self.purchase_model_, self.spend_model_, s,
                                     one_time_alive=self.alive_model_)
        new = [c for c in scores.columns if c not in features.columns]
        first = [c for c in features.columns if c in _SUMMARY_ORDER]
        out = features[first].join(scores[new].set_index(features.index)).join(
            features[[c for c in features.columns if c not in first]])
        if fit and self.purchase_model_ is not None and s.intervals:
            expected = out["expected_purchases"].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                one = np.where(expected > 0, out["clv"].to_numpy(dtype=float) / expected, 0.0)
            horizon = s.horizon_months * DAYS_PER_MONTH / 7.0
            if self.purchase_groups_ is not None:
                self.clv_total_interval_ = self.purchase_groups_.total_interval(
                    model_summary(out, as_of), self.purchase_model_, one, horizon, s.interval)
            else:
                self.clv_total_interval_ = total_interval(model_summary(out, as_of), self.purchase_model_, one,
                                                          horizon, s.interval)
        out.attrs.update({"cutoff": as_of, "unit": "D", "unit_days": 1.0})
        return out

    def _segment(self, c: pd.DataFrame, as_of: pd.Timestamp, transactions: pd.DataFrame | None,
                 prospects: pd.Series | None, marketing_spend: pd.DataFrame | None, fit: bool) -> Applied:
        """Every segment kind, each learning its part of the state first when fitting."""
        forecasts = self.support_.forecasts
        c = c.copy()
        parts = []
        if fit:
            self.rfm_cuts_ = rfm.rfm_cuts(c, as_of)
        scores, m = rfm.rfm_segments(c, as_of, cuts=self.rfm_cuts_)
        _put(c, scores, ["R", "F", "M", "FM", "RFM", "rfm_segment"])
        parts.append(m)
        if fit:
            self.value_tier_cuts_ = value.tier_cuts(c["clv"]) if forecasts else None
            self.historical_tier_cuts_ = value.tier_cuts(c["revenue"])
            self.frequency_cut_ = value.frequency_cut(c)
        tiers = [value.value_tiers(c, as_of, cuts=self.value_tier_cuts_)] if forecasts else []
        tiers.append(value.value_tiers(c, as_of, column="revenue", kind="historical_value_tier",
                                       names=value.HISTORICAL_TIER_NAMES, cuts=self.historical_tier_cuts_))
        tiers.append(value.frequency_tiers(c, as_of, cut=self.frequency_cut_))
        parts.extend(tiers)
        prof, m = value.profitability(c, default_margin=self.settings.margin, as_of=as_of)
        c = c.drop(columns=["cost_to_serve"], errors="ignore")
        _put(c, prof, ["gross_profit", "cost_to_serve", "profit", "profitability"])
        parts.append(m)
        if fit:
            self.return_window_ = lifecycle.return_window(c, 1.0)
        life, m = lifecycle.lifecycle(c, as_of, prospects=prospects, unit_days=1.0, window=self.return_window_)
        _put(c, life, ["days_since_last", "rhythm_days", "lifecycle"])
        parts.append(m)
        if "value_12m" not in c:
            raise SchemaError("apply: the features need value_12m and revenue_12m (the last 12 months); "
                              "build them with clientfolio.state.features.customer_features")
        c[["value_12m", "revenue_12m"]] = c[["value_12m", "revenue_12m"]].fillna(0.0)
        if fit:
            self.quadrant_splits_ = portfolio.quadrant_splits(c) if forecasts else {}
        if forecasts:
            quad, m = portfolio.portfolio_quadrants(c, as_of, splits=self.quadrant_splits_)
            _put(c, quad, ["quadrant"])
            parts.append(m)
        else:
            c["quadrant"] = None
        for kind in ("value_tier", "historical_value_tier", "frequency_tier"):
            m = next((t for t in tiers if len(t) and t["segment_kind"].iloc[0] == kind), None)
            if m is not None:
                _put(c, m.rename(columns={"segment": kind}), [kind])
            else:
                c[kind] = np.nan
        beh_members, beh_notes = seg_behaviour.behaviour_segments(c, as_of)
        if fit:
            self.notes_.extend(beh_notes)
        parts.append(beh_members)
        if fit:
            self.value_references_ = value.value_references(c)
        vs = value.value_score(c, self.sector, references=self.value_references_)
        if fit:
            self.value_weights_ = vs.weights
            self.notes_.extend(method_note(n) for n in vs.notes)  # how the value score weighs its dimensions
        _put(c, vs.scores, [col for col in vs.scores.columns if col != "customer_id"])
        c, cluster_members = self._clusters(c, as_of, fit)
        if cluster_members is not None:
            parts.append(cluster_members)
        if fit:
            self.rules_ = None
        if self.rules is not None:
            rule_frame = c.drop(columns=[col for col in c.columns if c[col].dtype == object and col != "customer_id"
                                         and c[col].map(type).isin([list, dict]).any()])
            if fit:
                self.rules_ = self.rules.with_schema(rule_frame)  # this shop's columns, now that they exist
            parts.append(self.rules_.evaluate(rule_frame, transactions, as_of=as_of))
        segments = pd.concat([p for p in parts if len(p)], ignore_index=True)
        for kind in PREFERENCE_KINDS:
            m = beh_members[beh_members["segment_kind"] == kind] if len(beh_members) else beh_members
            if len(m):
                _put(c, m.rename(columns={"segment": kind}), [kind])
            else:
                c[kind] = np.nan
        if fit:
            attrs = [col for col in ("customer_id", "acquisition_channel", "acquisition_cost", "first_seen") if col in c]
            self.cac_ = clv_to_cac(c, c[attrs], marketing_spend if marketing_spend is not None
                                   and len(marketing_spend) else None)
            self._cac_lookup = _UNSET
        c["cac"] = customer_cac(c, self.cac_).to_numpy()
        c.attrs.update({"cutoff": as_of, "unit_days": 1.0})
        return Applied(c, segments)

    def _clusters(self, c: pd.DataFrame, as_of: pd.Timestamp, fit: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Discovered groups: found when fitting (k chosen on a sample, every customer assigned), then assigned."""
        if fit:
            self.cluster_assigner_ = None
            self.cluster_result_ = None
            if self.clusters and len(c) >= 50:
                try:
                    from clientfolio.segments.clusters import discover_clusters

                    # Groups describe how people buy -- what, how much, how often, when, at what price --
                    # not what they are worth or whether they are still active: those have their own segments.
                    cols = [col for col in c.columns if col.startswith("share_")] + [
                        col for col in ("aov", "orders_per_month", "weekend_share", "discount_share") if col in c]
                    result = discover_clusters(c, columns=cols, as_of=as_of, currency=self.currency or None,
                                               sample_size=CLUSTER_SAMPLE)
                    self.cluster_result_ = result
                    self.cluster_assigner_ = result.assigner
                    members = result.membership
                    c = c.merge(members[["customer_id", "segment"]].rename(columns={"segment": "cluster"}),
                                on="customer_id", how="left")
                    return c, members
                except ImportError:
                    self.notes_.append(method_note("cluster discovery is not available in this installation"))
                except Exception as exc:  # ClusterError and SchemaError: no groups, with the reason
                    from clientfolio.core.errors import ClientfolioError

                    if not isinstance(exc, ClientfolioError):
                        raise
                    self.notes_.append(method_note(f"cluster discovery skipped: {exc}"))
            return c, None
        if self.cluster_assigner_ is None:
            return c, None
        from clientfolio.segments._membership import membership

        names = pd.Series(self.cluster_assigner_.assign(c), index=c.index)
        c = c.assign(cluster=names.astype(object).to_numpy())
        return c, membership(c["customer_id"], "cluster", names, as_of)

    # ------------------------------------------------------------------ storing
    def _check_fitted(self) -> None:
        if not hasattr(self, "cutoff_"):
            raise SchemaError("this PortfolioState is not fitted yet: call fit(...) first, or load one from a store "
                              "with clientfolio.state.load_state(store)")

    def thresholds(self) -> dict:
        """The state's lines in one plain dict: what change reasons quote."""
        self._check_fitted()
        return {"rfm_cuts": self.rfm_cuts_,
                "value_tier_cuts": {"value_tier": self.value_tier_cuts_, "historical_value_tier": self.historical_tier_cuts_},
                "frequency_cut": self.frequency_cut_, "return_window": self.return_window_,
                "quadrant_splits": self.quadrant_splits_,
                "lifecycle": {"p_alive": dict(lifecycle.P_ALIVE_LINES), "rhythms": dict(lifecycle.RHYTHMS)}}

    def to_dict(self) -> dict:
        """The fitted state as plain JSON-able values (models as parameters and covariance)."""
        self._check_fitted()
        s = self.settings
        return {
            "format": FORMAT,
            "settings": {"model": self.model, "sector": self.sector, "clusters": self.clusters,
                         "currency": self.currency, "horizon_months": s.horizon_months,
                         "discount_rate": s.discount_rate, "margin": s.margin, "interval": s.interval,
                         "intervals": s.intervals},
            "cutoff": self.cutoff_.isoformat(),
            "fitted_on": self.fitted_on_,
            "support": {"forecasts": self.support_.forecasts, "reason": self.support_.reason},
            "models": {"purchase": model_to_dict(self.purchase_model_), "spend": model_to_dict(self.spend_model_),
                       "one_time_alive": model_to_dict(self.alive_model_),
                       "purchase_groups": (self.purchase_groups_.to_dict()
                                           if getattr(self, "purchase_groups_", None) is not None else None)},
            "run_rate": self.run_rate_,
            "categories": self.categories_, "feature_flags": self.feature_flags_,
            "clv_total_interval": self.clv_total_interval_,
            **self.thresholds(),
            "value_tier_cuts": self.value_tier_cuts_, "historical_tier_cuts": self.historical_tier_cuts_,
            "value_references": self.value_references_, "value_weights": self.value_weights_,
            "clusters": self.cluster_assigner_.to_dict() if self.cluster_assigner_ is not None else None,
            "rules": ({"document": self.rules_.to_dict(), "schema": self.rules_.schema}
                      if self.rules_ is not None else None),
            "cac": self.cac_.to_dict("records") if self.cac_ is not None else None,
            "predictions": getattr(self, "predictions_", None),
            "prediction_models": (self.prediction_models_.to_dict()
                                  if getattr(self, "prediction_models_", None) is not None else None),
            "notes": [{"text": str(n), "audience": getattr(n, "audience", "owner"), "topic": getattr(n, "topic", None)}
                      for n in self.notes_],
        }

    def to_json(self) -> str:
        return json.dumps(_plain(self.to_dict()), allow_nan=True)

    @classmethod
    def from_dict(cls, d: dict) -> PortfolioState:
        """A state written by :meth:`to_dict`, ready to apply."""
        if d.get("format") != FORMAT:
            raise SchemaError(f"this portfolio state has format {d.get('format')}, this clientfolio reads {FORMAT}: "
                              "run `clientfolio refit` to fit a new one")
        st = d["settings"]
        rules = None
        if d.get("rules"):
            from clientfolio.segments.rules import load_rules

            rules = load_rules(d["rules"]["document"], schema=d["rules"]["schema"])
        self = cls(model=st["model"], sector=st["sector"], clusters=st["clusters"], currency=st["currency"],
                   rules=rules, settings=ClvSettings(horizon_months=st["horizon_months"],
                                                     discount_rate=st["discount_rate"], margin=st["margin"],
                                                     interval=st["interval"], intervals=st["intervals"]))
        self.cutoff_ = pd.Timestamp(d["cutoff"])
        self.fitted_on_ = d["fitted_on"]
        self.support_ = Support(d["support"]["forecasts"], d["support"]["reason"])
        self.purchase_model_ = model_from_dict(d["models"]["purchase"])
        self.spend_model_ = model_from_dict(d["models"]["spend"])
        self.alive_model_ = model_from_dict(d["models"]["one_time_alive"])
        groups = d["models"].get("purchase_groups")  # absent in states stored before grouped models existed
        self.purchase_groups_ = GroupedPurchase.from_dict(groups) if groups else None
        self.run_rate_ = d["run_rate"]
        self.categories_ = list(d["categories"])
        self.feature_flags_ = dict(d["feature_flags"])
        self.clv_total_interval_ = d["clv_total_interval"]
        self.rfm_cuts_ = d["rfm_cuts"]
        self.value_tier_cuts_ = tuple(d["value_tier_cuts"]) if d["value_tier_cuts"] else None
        self.historical_tier_cuts_ = tuple(d["historical_tier_cuts"]) if d["historical_tier_cuts"] else None
        self.frequency_cut_ = float(d["frequency_cut"])
        self.return_window_ = float(d["return_window"])
        self.quadrant_splits_ = d["quadrant_splits"]
        self.value_references_ = d["value_references"]
        self.value_weights_ = d["value_weights"]
        self.cluster_assigner_ = ClusterAssigner.from_dict(d["clusters"]) if d.get("clusters") else None
        self.cluster_result_ = None
        self.rules_ = rules
        self.cac_ = pd.DataFrame(d["cac"]) if d.get("cac") is not None else None
        self.predictions_ = d.get("predictions")  # absent in states stored before predictions existed
        self.prediction_models_ = None  # absent in states stored before live predictions existed
        if d.get("prediction_models"):
            from clientfolio.predict.applied import PredictionModels

            self.prediction_models_ = PredictionModels.from_dict(d["prediction_models"])  # decoded when first used
        self._cac_lookup = _UNSET
        from clientfolio.core.notes import Note

        self.notes_ = Notes(Note(n["text"], audience=n["audience"], topic=n["topic"]) for n in d.get("notes", []))
        return self

    @classmethod
    def from_json(cls, text: str) -> PortfolioState:
        return cls.from_dict(json.loads(text))


# The summary's own columns come first in the customer table, then the scores, then the rest.
_SUMMARY_ORDER = frozenset({"customer_id", "frequency", "recency", "T", "monetary", "first_purchase", "last_purchase",
                            "orders", "revenue", "refunds", "cost", "cost_to_serve", "aov", "tenure", "ipt_mean",
                            "ipt_std", "last_gap", "first_gap", "ipt_mean_before_last"})


_UNSET = object()


def _floats(v: Any) -> np.ndarray:
    if hasattr(v, "to_numpy"):
        return v.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(v, dtype=float)


def _segment_text(v: Any) -> str | None:
    """A segment name as text, None where missing (the batch's memberships hold pd.NA there)."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return str(v)


def _put(c: pd.DataFrame, part: pd.DataFrame, cols: list[str]) -> None:
    """Columns of a per-customer result into the customer table, row for row.

    Every segmenter returns one row per customer in the order it was given them (lifecycle then
    appends prospects), so no join is needed; the ids are checked to keep that promise honest.
    """
    n = len(c)
    ids = column_values(part["customer_id"])[:n]
    own = column_values(c["customer_id"])
    # the same ids compare equal as they are (no text conversion of every id per segmenter); only ids of
    # other types (numbers against text) are compared as text
    if len(ids) != n or not (_same(ids, own) or np.array_equal(np.asarray(ids).astype(str), np.asarray(own).astype(str))):
        raise SchemaError("internal: a segmenter returned customers in another order")  # pragma: no cover
    for col in cols:
        c[col] = column_values(part[col])[:n]


def _same(a: Any, b: Any) -> bool:
    """Equal ids, element by element (pandas text arrays compared as they are)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return len(a) == len(b) and bool(np.asarray(a == b, dtype=bool).all())


def _plain(x: Any) -> Any:
    """Values json can write: numpy numbers and arrays, timestamps, tuples."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(x).isoformat()
    if x is pd.NaT or (isinstance(x, float) and np.isnan(x)):
        return None
    return x
