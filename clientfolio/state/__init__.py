"""Fit once, apply everywhere: the portfolio state learned from the whole base, and applying it.

:class:`PortfolioState` holds what depends on the whole base (models, cut points, splits,
references, cluster centres, rules, CAC); :meth:`PortfolioState.apply` scores and segments any
customers with it.  :func:`save_state` / :func:`load_state` keep it in the store.
"""

from clientfolio.state.features import customer_features, rule_transactions, value_12m
from clientfolio.state.fitted import FORMAT, Applied, PortfolioState

__all__ = ["FORMAT", "Applied", "PortfolioState", "customer_features", "rule_transactions", "value_12m"]
