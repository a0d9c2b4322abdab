"""Next order: the days until a customer's next purchase, with an 80% interval.

The target is capped: days from the cut-off to the next purchase day within the horizon, the
horizon itself when there is none (a customer who does not come back within N days counts as N).
Three HistGradientBoostingRegressors: the median (absolute-error loss, the best point value for the
mean absolute error) and the 10% and 90% quantiles, so the interval is meant to hold the actual
value for 8 customers in 10; the evaluation reports how often it did.  The BTYD counterpart is
the median waiting time implied by BG/NBD (:func:`clientfolio.predict.training.btyd_scores`).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError

from clientfolio.predict.churn import FeatureFrame, one_thread


class NextOrderModel(RegressorMixin, BaseEstimator):
    """Days to the next purchase (capped at the horizon) with a quantile interval.

    ``fit(X, y)`` learns ``features_``, ``median_``, ``low_`` and ``high_``; ``y`` is the capped
    days to the next purchase.  ``interval`` = (lower, upper) quantiles, (0.1, 0.9) by default.
    """

    def __init__(self, *, interval: tuple[float, float] = (0.1, 0.9), max_iter: int = 200,
                 learning_rate: float = 0.05, max_leaf_nodes: int = 15, min_samples_leaf: int = 40,
                 random_state: int = 0) -> None:
        self.interval = interval
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _regressor(self, loss: str, quantile: float | None = None) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        extra = {"quantile": quantile} if quantile is not None else {}
        return HistGradientBoostingRegressor(
            loss=loss, max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            categorical_features=self.features_.categorical_mask or None, early_stopping=False,
            random_state=self.random_state, **extra)

    def fit(self, X: pd.DataFrame, y: Any) -> Self:
        """Train on features `X` and the capped days to the next purchase `y`."""
        y = np.asarray(y, dtype=float)
        if np.isnan(y).any():
            raise ValueError("NextOrderModel.fit: the labels have missing values (is the horizon inside the data?)")
        lo, hi = self.interval
        if not 0 < lo < hi < 1:
            raise ValueError(f"NextOrderModel: interval must be two quantiles 0 < low < high < 1, got {self.interval}")
        self.features_ = FeatureFrame(X)
        M = self.features_.matrix(X)
        with one_thread():
            self.median_ = self._regressor("absolute_error").fit(M, y)
            self.low_ = self._regressor("quantile", lo).fit(M, y)
            self.high_ = self._regressor("quantile", hi).fit(M, y)
        self.y_max_ = float(y.max())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The median days to the next purchase, within 0..horizon."""
        if not hasattr(self, "median_"):
            raise NotFittedError("This NextOrderModel is not fitted yet; call fit(X, y) first.")
        with one_thread():
            return np.clip(self.median_.predict(self.features_.matrix(X)), 0.0, self.y_max_)

    def predict_interval(self, X: pd.DataFrame) -> pd.DataFrame:
        """days (median), low and high (the interval's quantiles), indexed like `X`; low <= days <= high."""
        mid = self.predict(X)
        M = self.features_.matrix(X)
        with one_thread():
            lo = np.clip(self.low_.predict(M), 0.0, self.y_max_)
            hi = np.clip(self.high_.predict(M), 0.0, self.y_max_)
        lo, hi = np.minimum(lo, mid), np.maximum(hi, mid)
        return pd.DataFrame({"days": mid, "low": lo, "high": hi}, index=X.index)
