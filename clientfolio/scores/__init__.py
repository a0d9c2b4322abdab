"""Per-customer scores from fitted models: P(alive), churn risk, CLV, next order date."""

from clientfolio.scores.clv import ClvSettings, score_customers

__all__ = ["ClvSettings", "score_customers"]
