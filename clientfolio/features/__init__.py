"""Per-customer summaries at a cut-off date (the models' input), computed in SQL."""

from clientfolio.features.summary import rfm_summary, summary_sql

__all__ = ["rfm_summary", "summary_sql"]
