"""Churn risk: the probability that a customer makes no purchase in the next N days.

N comes from the shop's own rhythm (:func:`clientfolio.predict.training.shop_rhythm_days`).  The
model is scikit-learn's HistGradientBoostingClassifier on the time-split features, with
probabilities calibrated by CalibratedClassifierCV (isotonic from 1,000 customers, Platt's sigmoid
below), so a risk of 0.3 means about 3 in 10 such customers do not come back within N days.
For subscriptions, churn is cancellation: pass the cancellation label as ``y`` instead.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError


_CONTROLLER: Any = None


def one_thread() -> Any:
    """Boosted trees on one OpenMP thread: on a shared or small machine more threads than free cores
    make fitting many times slower (measured: 20x on a loaded 2-core machine), and scores do not change.

    The thread-pool controller is made once (finding the loaded libraries costs about 4 ms, a live
    update's prediction calls it three times), after the trees' OpenMP runtime is loaded so it sees it."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime the trees use
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="openmp")


class FeatureFrame:
    """Turns feature frames into the fixed numeric matrix a fitted model was trained on.

    Columns are fixed at fit; category columns become codes of the categories seen at fit
    (unseen ones are missing), so a model trained at one cut-off applies at another.
    """

    def __init__(self, X: pd.DataFrame) -> None:
        self.columns = list(X.columns)
        self.categories = {c: list(X[c].astype("string").dropna().unique())
                           for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])}

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The float matrix (NaN = missing) in the columns seen at fit."""
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"the features lack columns the model was trained on: {', '.join(missing[:5])}")
        cols = []
        for c in self.columns:
            if c in self.categories:
                text = X[c].astype("string")
                text = text.where(text.isin(self.categories[c]))  # unseen at fit: missing
                codes = pd.Categorical(text, categories=self.categories[c]).codes.astype(float)
                codes[codes < 0] = np.nan
                cols.append(codes)
            else:
                cols.append(pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float))
        return np.column_stack(cols) if cols else np.empty((len(X), 0))

    @property
    def categorical_mask(self) -> list[bool]:
        return [c in self.categories for c in self.columns]


class ChurnModel(ClassifierMixin, BaseEstimator):
    """Calibrated gradient-boosted churn risk.

    Parameters are stored as given; ``fit(X, y)`` learns ``features_`` (the column layout),
    ``model_`` (the calibrated classifier) and ``classes_``.  ``y`` is 1 for churned (no purchase
    in the horizon, or cancelled), 0 otherwise.  The same ``random_state`` gives the same scores.
    """

    def __init__(self, *, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0, calibration: str = "auto",
                 cv: int = 3, random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.calibration = calibration
        self.cv = cv
        self.random_state = random_state

    def _booster(self, features: FeatureFrame) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            categorical_features=features.categorical_mask or None, early_stopping=False,
            random_state=self.random_state)

    def fit(self, X: pd.DataFrame, y: Any) -> Self:
        """Train on features `X` (a frame from the training set) and churn labels `y` (0/1)."""
        from sklearn.calibration import CalibratedClassifierCV

        y = np.asarray(y, dtype=float)
        if np.isnan(y).any():
            raise ValueError("ChurnModel.fit: the labels have missing values (is the horizon inside the data?)")
        self.features_ = FeatureFrame(X)
        method = self.calibration if self.calibration != "auto" else ("isotonic" if len(y) >= 1000 else "sigmoid")
        self.calibration_method_ = method
        self.model_ = CalibratedClassifierCV(self._booster(self.features_), method=method, cv=self.cv)
        with one_thread():
            self.model_.fit(self.features_.matrix(X), y.astype(int))
        self.classes_ = self.model_.classes_
        return self

    def _check(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("This ChurnModel is not fitted yet; call fit(X, y) first.")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities [not churned, churned] per row of `X`."""
        self._check()
        with one_thread():
            return self.model_.predict_proba(self.features_.matrix(X))

    def predict_risk(self, X: pd.DataFrame) -> pd.Series:
        """P(no purchase in the horizon) per customer, indexed like `X`."""
        return pd.Series(self.predict_proba(X)[:, 1], index=X.index, name="churn_risk")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the churn risk is 0.5 or more."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
