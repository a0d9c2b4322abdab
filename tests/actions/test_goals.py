"""Goals: the baseline measured when set, and the verdict on constructed data at later dates."""

from __future__ import annotations

import pandas as pd
import pytest

from clientfolio.actions.goals import GoalError, add_goal, goals, progress_table, track

T0 = pd.Timestamp("2025-01-01")
DEADLINE = "2025-11-01"  # 304 days after T0


def _state(store, as_of: pd.Timestamp, at_risk_churn: list[float], others: int = 3) -> None:
    """customer_state with `len(at_risk_churn)` At Risk customers (churn risk as given) and some Champions."""
    n = len(at_risk_churn)
    store.replace_customer_state(pd.DataFrame({
        "customer_id": [f"r{i}" for i in range(n)] + [f"c{i}" for i in range(others)],
        "seg_rfm": ["At Risk"] * n + ["Champions"] * others,
        "churn_risk": at_risk_churn + [0.05] * others,
        "p_alive": [1 - c for c in at_risk_churn] + [0.95] * others,
        "revenue_12m": [100.0] * n + [1000.0] * others,
        "clv": [50.0] * n + [500.0] * others,
        "as_of": [as_of] * (n + others),
    }))


def test_baseline_and_verdicts_along_the_way(store) -> None:
    _state(store, T0, [0.6] * 40)
    g = add_goal(store, "rfm", "At Risk", "churn_rate", -0.10, DEADLINE)
    assert g.baseline == pytest.approx(0.6) and g.target == pytest.approx(0.54)
    assert g.text == "cut churn risk in At Risk (rfm) by 10% by 2025-11-01: from 60.0% to 54.0%"
    assert [x.goal_id for x in goals(store)] == ["goal-1"]
    # the same data: nothing to judge yet
    p = track(store)[0]
    assert p.verdict == "too early" and "no newer data since the goal was set" in p.text
    # a fortnight later: under a tenth of the time
    _state(store, T0 + pd.Timedelta(days=14), [0.7] * 40)
    assert track(store)[0].verdict == "too early"
    # half way (152 days): the straight line expects 57%; 56% is on track, 59% behind
    half = T0 + pd.Timedelta(days=152)
    _state(store, half, [0.56] * 40)
    p = track(store, "goal-1")[0]
    assert p.verdict == "on track" and p.expected_now == pytest.approx(0.57, abs=1e-9)
    assert "the straight path to the target expects 57.0% by now (50% of the time has passed)" in p.text
    _state(store, half, [0.59] * 40)
    assert track(store)[0].verdict == "behind"
    # reached before the deadline
    _state(store, half, [0.5] * 40)
    assert track(store)[0].text.startswith("goal-1 (cut churn risk")
    assert track(store)[0].verdict == "achieved" and "achieved early" in track(store)[0].text
    # the data passes the deadline short of the target
    _state(store, pd.Timestamp("2025-11-15"), [0.58] * 40)
    p = track(store)[0]
    assert p.verdict == "missed" and "58.0% on 2025-11-15" in p.text
    t = progress_table(track(store))
    assert t.loc[0, "verdict"] == "missed" and t.loc[0, "target"] == pytest.approx(0.54)


def test_growth_goal_small_segment_and_refusals(store) -> None:
    _state(store, T0, [0.5] * 10)
    g = add_goal(store, "rfm", "At Risk", "size", 0.5, "2025-07-01", goal_id="grow-at-risk")
    assert g.baseline == 10 and g.target == 15
    _state(store, T0 + pd.Timedelta(days=90), [0.5] * 12)  # 12 of an expected 12.5 by day 90 of 181
    p = track(store)[0]
    assert p.verdict == "behind" and "Only 12 customers are in the segment" in p.text
    with pytest.raises(GoalError, match="exists"):
        add_goal(store, "rfm", "At Risk", "size", 0.5, "2025-07-01", goal_id="grow-at-risk")
    with pytest.raises(GoalError, match="must be after the date of the data"):
        add_goal(store, "rfm", "At Risk", "size", 0.5, "2024-07-01")
    with pytest.raises(GoalError, match="unknown goal metric 'happiness'"):
        add_goal(store, "rfm", "At Risk", "happiness", 0.5, "2026-07-01")
    with pytest.raises(GoalError, match="no current 'lifecycle' segments"):
        add_goal(store, "lifecycle", "active", "size", 0.5, "2026-07-01")
    with pytest.raises(GoalError, match="has no customers now"):
        add_goal(store, "rfm", "Lost", "size", 0.5, "2026-07-01")
