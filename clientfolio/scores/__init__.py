"""Per-customer scores from fitted models: P(alive), churn risk, CLV, next order date."""

from clientfolio.scores.acquisition import HEALTHY_RATIO, clv_to_cac, clv_to_cac_by_segment, customer_cac
from clientfolio.scores.clv import ClvSettings, historical_scores, run_rate_scores, score_customers

__all__ = ["HEALTHY_RATIO", "ClvSettings", "clv_to_cac", "clv_to_cac_by_segment", "customer_cac",
           "historical_scores", "run_rate_scores", "score_customers"]
