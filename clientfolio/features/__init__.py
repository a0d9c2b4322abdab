"""Per-customer summaries at a cut-off date (the models' input), computed in SQL."""

from clientfolio.features.behaviour import behaviour_features
from clientfolio.features.summary import daily_activity, rfm_summary, summary_sql

__all__ = ["behaviour_features", "daily_activity", "rfm_summary", "summary_sql"]
