"""Per-customer summaries at a cut-off date (the models' input), computed in SQL."""

from clientfolio.features.behaviour import behaviour_features
from clientfolio.features.incremental import (add_event, add_order, customer_stats, derive_features, stats_frame,
                                              stats_rows)
from clientfolio.features.summary import daily_activity, rfm_summary, summary_sql

__all__ = ["add_event", "add_order", "behaviour_features", "customer_stats", "daily_activity", "derive_features",
           "rfm_summary", "stats_frame", "stats_rows", "summary_sql"]
