"""Churn risk and next order as part of the fitted state: fitted once, applied to any set of customers.

:func:`~clientfolio.predict.evaluation.predict_shop` chooses, per task, the boosted trees or the
BG/NBD baseline and fits them at the end of the data; :class:`PredictionModels` keeps what it chose
(the models, BG/NBD's parameters at that day, the churn horizon and the feature vocabulary: which
categories, channels and event types are columns).  :meth:`PredictionModels.features` computes the
features of any customers at any day from their own rows only (every feature is a function of one
customer's history), and :meth:`PredictionModels.apply` scores them.  The batch (`predict`,
`analyze --predict`) and a live update of a few customers run this same code, so a customer gets
the same churn risk and next order from both at the same day.

Stored inside the portfolio state (:meth:`PortfolioState.to_dict`): BG/NBD as its four parameters,
the scikit-learn estimators with skops (a format that loads only the types it is told to trust, not
arbitrary code as pickle would), base64-encoded.  They are decoded on first use, so reading a state
for a report does not pay for them.  A state written by another scikit-learn version whose models
cannot be read keeps its stored predictions and says so (:attr:`PredictionModels.error`).
"""

from __future__ import annotations

import base64
import zipfile
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.predict.churn import ChurnModel, FeatureFrame
from clientfolio.predict.next_order import NextOrderModel
from clientfolio.predict.subscriptions import SubscriptionChurn
from clientfolio.predict.training import CATEGORICAL, Tables, btyd_scores, build_training_set, load_tables

FORMAT = 1
# The types, beyond those skops trusts by default, that calibrated boosted trees are made of.
TRUSTED = frozenset({
    "functools.partial", "sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "sklearn.utils.validation.check_array",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
})
REASON_COLUMNS = ["days_since_last", "gap_median", "days_90d", "trend_90d", "btyd_p_alive"]


def _encode(estimator: Any) -> str:
    import skops.io as sio

    return base64.b64encode(sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED)).decode("ascii")


def _decode(text: str) -> Any:
    import skops.io as sio

    raw = base64.b64decode(text)
    untrusted = set(sio.get_untrusted_types(data=raw))
    unknown = sorted(untrusted - TRUSTED)
    if unknown:
        raise ValueError(f"the stored prediction model holds types this version does not trust: {', '.join(unknown)}")
    return sio.loads(raw, trusted=sorted(untrusted))


def _frame_dict(f: FeatureFrame) -> dict:
    return {"columns": list(f.columns), "categories": {k: list(v) for k, v in f.categories.items()}}


def _frame_from(d: dict) -> FeatureFrame:
    f = FeatureFrame.__new__(FeatureFrame)
    f.columns = list(d["columns"])
    f.categories = {k: list(v) for k, v in d["categories"].items()}
    return f


def _churn_dict(m: ChurnModel) -> dict:
    return {"params": m.get_params(), "features": _frame_dict(m.features_),
            "calibration_method": m.calibration_method_, "model": _encode(m.model_)}


def _churn_from(c: dict) -> ChurnModel:
    m = ChurnModel(**c["params"])
    m.features_, m.model_ = _frame_from(c["features"]), _decode(c["model"])
    m.classes_, m.calibration_method_ = m.model_.classes_, c["calibration_method"]
    return m


def _subscriptions_from(d: dict) -> SubscriptionChurn:
    from clientfolio.models import ShiftedBetaGeometric

    return SubscriptionChurn(sbg=ShiftedBetaGeometric.from_params(d["sbg"]),
                             default_period_days=d["default_period_days"], period_note=d["period_note"],
                             churn=_churn_from(d["churn"]) if d.get("churn") is not None else None)


class PredictionModels:
    """The chosen churn and next-order methods, fitted at ``as_of``, ready to apply to any customers.

    ``churn`` / ``next_order``: the fitted :class:`ChurnModel` / :class:`NextOrderModel` when the
    boosted trees won on the shop's time split, None when BG/NBD is used; ``btyd``: the BG/NBD
    model fitted on every customer at ``as_of`` (its scores are features and the baseline);
    ``subscriptions``: for a shop with subscription events, what scores active subscribers' churn
    as cancellation (:class:`~clientfolio.predict.subscriptions.SubscriptionChurn`), else None.
    """

    def __init__(self, *, as_of: pd.Timestamp, horizon_days: int, vocab: dict[str, list[str]], btyd: Any,
                 churn: ChurnModel | None, next_order: NextOrderModel | None, interval_text: str,
                 subscriptions: SubscriptionChurn | None = None) -> None:
        self.as_of = pd.Timestamp(as_of)
        self.horizon_days = int(horizon_days)
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.btyd = btyd
        self._churn = churn
        self._next = next_order
        self.interval_text = interval_text
        self._subscriptions = subscriptions
        self.churn_source = "boosted trees" if churn is not None else "BG/NBD"
        self.next_order_source = "boosted trees" if next_order is not None else "BG/NBD"
        self._stored: dict | None = None  # the encoded estimators, decoded on first use
        self._raw: dict | None = None  # what from_dict read: written back as it was
        self.error: str | None = None

    # -- the estimators, decoded when first needed
    def _decoded(self) -> None:
        d, self._stored = self._stored, None
        if d is None:
            return
        try:
            self._decode_stored(d)
        except Exception as exc:  # noqa: BLE001 - another scikit-learn's models: say so, apply nothing
            self.error = (f"the stored prediction models (scikit-learn {d.get('sklearn')}) could not be read: "
                          f"{exc}; run `clientfolio refit` to fit them again")

    def _decode_stored(self, d: dict) -> None:
        if d.get("churn") is not None:
            self._churn = _churn_from(d["churn"])
        if d.get("next_order") is not None:
            c = d["next_order"]
            params = dict(c["params"], interval=tuple(c["params"]["interval"]))
            n = NextOrderModel(**params)
            n.features_ = _frame_from(c["features"])
            n.median_, n.low_, n.high_ = (_decode(c[k]) for k in ("median", "low", "high"))
            n.y_max_ = float(c["y_max"])
            self._next = n
        if d.get("subscriptions") is not None:
            self._subscriptions = _subscriptions_from(d["subscriptions"])

    @property
    def churn(self) -> ChurnModel | None:
        self._decoded()
        return self._churn

    @property
    def next_order(self) -> NextOrderModel | None:
        self._decoded()
        return self._next

    @property
    def subscriptions(self) -> SubscriptionChurn | None:
        self._decoded()
        return self._subscriptions

    @property
    def usable(self) -> bool:
        """False when stored models could not be read (another scikit-learn version): nothing is applied."""
        self._decoded()
        return self.error is None

    # -- features and scores
    def features(self, tables: Tables | Any, cutoff: pd.Timestamp) -> pd.DataFrame:
        """Every customer's features at `cutoff` (with a purchase by then) from `tables` (one customer's rows
        suffice: each feature reads only its own customer's rows), in the columns the models were trained on."""
        ts = build_training_set(tables, cutoff, self.horizon_days, vocab=self.vocab, with_btyd=False)
        feats = ts.features
        scores, _ = btyd_scores(feats, self.horizon_days, model=self.btyd)
        feats = feats.join(scores)
        subs = self.subscriptions
        if subs is not None:
            feats = subs.add_features(feats, tables, cutoff, self.horizon_days)
        for model in (self.churn, self.next_order, subs.churn if subs is not None else None):
            if model is None:
                continue
            for col in model.features_.columns:
                if col in feats.columns:
                    continue
                if col in CATEGORICAL:  # the customers table has no such column here: as the batch fills it
                    feats[col] = pd.Series("unknown", index=feats.index, dtype="string").astype("category")
                elif col.startswith(("discount_", "events_")):  # no discount or event on these rows: zero, as in a batch
                    feats[col] = 0.0
                else:
                    feats[col] = np.nan
        return feats

    def apply(self, features: pd.DataFrame) -> pd.DataFrame:
        """Churn risk and next order (with the 80% interval) per row of `features`, from the chosen methods,
        BG/NBD's values beside them, and the reason in the customer's own numbers; indexed like `features`."""
        from clientfolio.predict.evaluation import btyd_interval, reason

        X, h = features, self.horizon_days
        out = pd.DataFrame(index=X.index)
        out["horizon_days"] = h
        out["btyd_churn_risk"] = X["btyd_p_none"]
        out["btyd_next_order_days"] = X["btyd_days_median"]
        churn, nxt = self.churn, self.next_order
        out["churn_risk"] = churn.predict_risk(X) if churn is not None else X["btyd_p_none"]
        out["churn_source"] = self.churn_source
        if nxt is not None:
            iv = nxt.predict_interval(X)
            out["next_order_days"], out["next_order_low"], out["next_order_high"] = iv["days"], iv["low"], iv["high"]
        else:
            biv = btyd_interval(X, self.btyd, h)
            out["next_order_days"] = X["btyd_days_median"]
            out["next_order_low"], out["next_order_high"] = biv["low"], biv["high"]
        out["next_order_source"] = self.next_order_source
        out["next_order_interval"] = self.interval_text
        out["reason"] = [reason(r) for r in X[REASON_COLUMNS].to_dict("records")]
        subs = self.subscriptions
        if subs is not None and "sub_active" in X.columns:
            active = X["sub_active"].to_numpy(dtype=float) > 0
            if active.any():
                from clientfolio.predict.subscriptions import reason as subscriber_reason

                rows = X[active]
                out.loc[active, "churn_risk"] = subs.risk(rows).to_numpy()
                out.loc[active, "churn_source"] = subs.source
                cols = [c for c in ("sub_tenure_days", "sub_period_days", "subscription_plan", "sub_past_cancels",
                                    "events_support_ticket_90d") if c in rows.columns]
                out.loc[active, "reason"] = [subscriber_reason(r) for r in rows[cols].astype(object).to_dict("records")]
        return out

    def predict(self, source: Any, cutoff: Any) -> pd.DataFrame:
        """:meth:`apply` of :meth:`features` at `cutoff`: `source` is a store, a dict of tables or :class:`Tables`."""
        tables = source if isinstance(source, Tables) else load_tables(source)
        day = pd.Timestamp(cutoff)
        day = (day.tz_convert(None) if day.tzinfo is not None else day).normalize()
        out = self.apply(self.features(tables, day))
        out.attrs["as_of"] = day
        return out

    # -- storing
    def to_dict(self) -> dict:
        """Plain JSON-able values: BG/NBD's parameters, the estimators encoded with skops."""
        import sklearn

        if self._raw is not None:
            return self._raw
        churn, nxt = self.churn, self.next_order
        p = self.btyd.params_
        out: dict[str, Any] = {
            "format": FORMAT, "sklearn": sklearn.__version__, "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days, "vocab": self.vocab, "interval_text": self.interval_text,
            "btyd": {"class": type(self.btyd).__name__, "params": {k: float(v) for k, v in p.items()}},
            "churn": None, "next_order": None,
        }
        if churn is not None:
            out["churn"] = _churn_dict(churn)
        if nxt is not None:
            params = nxt.get_params()
            params["interval"] = list(params["interval"])
            out["next_order"] = {"params": params, "features": _frame_dict(nxt.features_), "y_max": nxt.y_max_,
                                 **{k: _encode(getattr(nxt, f"{k}_")) for k in ("median", "low", "high")}}
        subs = self.subscriptions
        if subs is not None:
            out["subscriptions"] = {"sbg": {k: float(v) for k, v in subs.sbg.params_.items()},
                                    "default_period_days": subs.default_period_days, "period_note": subs.period_note,
                                    "churn": _churn_dict(subs.churn) if subs.churn is not None else None}
        self._raw = out  # fitted models do not change: encoded once (seconds), however often the state is saved
        return out

    @classmethod
    def from_dict(cls, d: dict) -> PredictionModels:
        """What :meth:`to_dict` wrote; the estimators are decoded on first use (see :attr:`error`)."""
        from clientfolio.models import BGNBD, MBGNBD

        kind = {"BGNBD": BGNBD, "MBGNBD": MBGNBD}[d["btyd"]["class"]]
        self = cls(as_of=pd.Timestamp(d["as_of"]), horizon_days=d["horizon_days"], vocab=d["vocab"],
                   btyd=kind.from_params(d["btyd"]["params"]), churn=None, next_order=None,
                   interval_text=d["interval_text"])
        self.churn_source = "boosted trees" if d.get("churn") else "BG/NBD"
        self.next_order_source = "boosted trees" if d.get("next_order") else "BG/NBD"
        self._raw = d
        if d.get("format") != FORMAT:
            self.error = (f"the stored prediction models have format {d.get('format')}, this version reads {FORMAT}; "
                          "run `clientfolio refit` to fit them again")
        else:
            self._stored = {"churn": d.get("churn"), "next_order": d.get("next_order"), "sklearn": d.get("sklearn"),
                            "subscriptions": d.get("subscriptions")}
        return self
