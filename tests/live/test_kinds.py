"""The segment names subscriptions are checked against are the names the segmenters really write."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

from clientfolio.live.kinds import HISTORICAL_TIER_NAMES, SEGMENT_NAMES, kind_label, segment_label
from clientfolio.segments import value


def test_historical_tier_names_are_those_the_state_writes(tmp_path) -> None:
    """The past-spend tiers the portfolio state writes are the names subscriptions accept."""
    from clientfolio.state.fitted import PortfolioState

    source = inspect.getsource(PortfolioState._segment)
    assert "names=value.HISTORICAL_TIER_NAMES" in source
    assert set(HISTORICAL_TIER_NAMES) == set(SEGMENT_NAMES["historical_value_tier"])


def test_value_frequency_and_profit_tiers_write_only_known_names() -> None:
    rng = np.random.default_rng(5)
    n = 300
    df = pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)], "orders": rng.integers(1, 6, n),
                       "orders_per_month": rng.gamma(1.0, 1.0, n), "clv": rng.gamma(2, 50, n),
                       "revenue": rng.gamma(2, 60, n), "cost": rng.gamma(2, 30, n),
                       "cost_to_serve": rng.gamma(1, 20, n)})
    found = {
        "value_tier": set(value.value_tiers(df)["segment"]),
        "frequency_tier": set(value.frequency_tiers(df)["segment"]),
        "profitability": set(value.profitability(df)[1]["segment"]),
    }
    for kind, names in found.items():
        assert names == set(SEGMENT_NAMES[kind]), kind  # every name occurs in 300 varied customers


def test_labels() -> None:
    assert segment_label("lifecycle", "at risk") == "At Risk"
    assert segment_label("rfm", "Can't Lose Them") == "Can't Lose Them"
    assert kind_label("rfm") == "RFM" and kind_label("loyalty_club") == "Loyalty club"
