"""Segments: every kind returns the same membership table (customer_id, segment_kind, segment, as_of).

(The lifecycle segmenter is `clientfolio.segments.lifecycle.lifecycle`; it is not re-exported here
because the function would hide its module of the same name.)
"""

from clientfolio.segments.behaviour import behaviour_segments
from clientfolio.segments.clusters import ClusterResult, behaviour_columns, discover_clusters
from clientfolio.segments.history import markov_forecast, migration_matrix, segment_kpis
from clientfolio.segments.portfolio import concentration, divestment_candidates, portfolio_quadrants
from clientfolio.segments.rfm import DEFAULT_GRID, rfm_scores, rfm_segments
from clientfolio.segments.rules import RuleError, RuleSet, load_rules
from clientfolio.segments.value import frequency_tiers, profitability, value_score, value_tiers

__all__ = [
    "DEFAULT_GRID", "ClusterResult", "RuleError", "RuleSet", "behaviour_columns", "behaviour_segments", "concentration",
    "discover_clusters", "divestment_candidates", "frequency_tiers", "load_rules", "markov_forecast",
    "migration_matrix", "portfolio_quadrants", "profitability", "rfm_scores", "rfm_segments", "segment_kpis",
    "value_score", "value_tiers",
]
