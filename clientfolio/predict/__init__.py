"""Predictions that must beat a baseline: churn risk, next order, what customers buy next, sentiment,
retention curves and purchase models with covariates.

Every prediction is trained on a time split (features strictly before a cut-off, outcome after it),
evaluated against the probabilistic or naive baseline on the same split, and used only where it wins;
each evaluation is a :class:`~clientfolio.predict.verdict.Comparison`.
"""

from clientfolio.predict.verdict import Comparison, Metric

__all__ = ["Comparison", "Metric"]
