"""Budget: allocations keep every floor and spend exactly the budget; what-ifs match a hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.actions.budget import (Assumptions, BudgetError, allocate, retention_vs_acquisition, water_fill,
                                        what_if)

AS_OF = pd.Timestamp("2025-01-01")


def _state(store) -> None:
    """Review: 3 customers (CLV 10/20/30, cost to serve 2 per order, 2 orders expected); Stars: 2 (CLV 100/200);
    Sure: 2 customers certain to stay (P(alive) 1: nothing to win by retention spend)."""
    store.replace_customer_state(pd.DataFrame({
        "customer_id": ["r1", "r2", "r3", "s1", "s2", "u1", "u2"],
        "seg_portfolio": ["Review"] * 3 + ["Stars"] * 2 + ["Sure"] * 2,
        "clv": [10.0, 20.0, 30.0, 100.0, 200.0, 50.0, 50.0],
        "clv_low": [5.0, 10.0, 15.0, 50.0, 100.0, 40.0, 40.0],
        "clv_high": [20.0, 40.0, 60.0, 150.0, 300.0, 60.0, 60.0],
        "p_alive": [0.5, 0.4, 0.6, 0.5, 0.7, 1.0, 1.0],
        "expected_purchases": [2.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0],
        "stat_cost_to_serve": [6.0, 6.0, 6.0, 0.0, 0.0, 0.0, 0.0],
        "stat_orders": [3, 3, 3, 5, 5, 2, 2],
        "revenue_12m": [100.0] * 3 + [500.0] * 2 + [100.0] * 2,
        "value_12m": [40.0] * 3 + [250.0] * 2 + [50.0] * 2,
        "as_of": [AS_OF] * 7,
    }))


def test_allocation_keeps_the_floor_and_totals_the_budget(store) -> None:
    _state(store)
    a = Assumptions(floor_per_customer=1.5, cost_per_customer=2.0)
    al = allocate(store, 40.0, kind="portfolio", assumptions=a)
    t = al.table.set_index("segment")
    assert t["spend"].sum() == pytest.approx(40.0)
    assert (t["spend"] >= t["customers"] * 1.5 - 1e-9).all()
    assert t.loc["Sure", "spend"] == pytest.approx(3.0)  # nothing to win: its floor, and no more
    # above their floors, segments end at the same marginal return (the optimum)
    above = t[t["spend"] > t["floor"] + 1e-6]
    assert len(above) == 2 and np.ptp(above["marginal_return"]) < 1e-6
    assert any("default, not measured here" in line for line in al.assumptions)
    assert "Every segment keeps its minimum service" in al.text
    with pytest.raises(BudgetError, match=r"does not cover the minimum service .* \(10\.50\)"):
        allocate(store, 10.0, kind="portfolio", assumptions=a)
    # a measured response for Review moves money to it
    measured = Assumptions(floor_per_customer=1.5, response_by_segment={"Review": 0.5},
                           source={"response:Review": "experiment winback-1"})
    t2 = allocate(store, 40.0, kind="portfolio", assumptions=measured).table.set_index("segment")
    assert t2.loc["Review", "spend"] > t.loc["Review", "spend"]
    assert "Response in Review: 50.0% (experiment winback-1)." in allocate(store, 40.0, "portfolio",
                                                                           measured).assumptions


def test_water_fill_is_the_optimum() -> None:
    m, k, f = np.array([100.0, 50.0, 0.0]), np.array([10.0, 20.0, 5.0]), np.array([1.0, 1.0, 1.0])
    x = water_fill(m, k, f, 30.0)
    assert x.sum() == pytest.approx(30.0) and x[2] == pytest.approx(1.0)
    value = lambda s: float((m * (1 - np.exp(-s / k))).sum())  # noqa: E731
    # moving a little money between the funded segments never helps
    for d in (0.5, -0.5):
        assert value(x + np.array([d, -d, 0.0])) <= value(x) + 1e-9


def test_what_if_drop_matches_the_hand_computation(store) -> None:
    _state(store)
    sc = what_if(store, "Review", kind="portfolio", action="drop")
    t = sc.table.set_index("measure")
    # before: 7 customers, CLV 460, cost to serve ahead 3 x (6/3 x 2) = 12 -> profit 448
    assert t.loc["customers", ["before", "after"]].tolist() == [7, 4]
    assert t.loc["clv", ["before", "after"]].tolist() == pytest.approx([460.0, 400.0])
    assert t.loc["profit", ["before", "after", "change"]].tolist() == pytest.approx([448.0, 400.0, -48.0])
    assert t.loc["clv", ["after_low", "after_high"]].tolist() == pytest.approx([230.0, 570.0])
    assert "80% CLV range" in sc.text and "no longer served" in sc.text


def test_what_if_reprice_and_retier_by_hand(store) -> None:
    _state(store)
    # Review: margin 40%; +10% price, elasticity -1 -> volume x0.9, margin per unit x (0.4 + 0.1) / 0.4
    t = what_if(store, "Review", "portfolio", "reprice", price_change=0.10, elasticity=-1.0).table.set_index("measure")
    assert t.loc["customers", "after"] == pytest.approx(7 - 3 + 2.7)
    assert t.loc["clv", "after"] == pytest.approx(400.0 + 60.0 * 0.9 * 1.25)
    assert t.loc["profit", "after"] == pytest.approx(448.0 + 60.0 * 0.125 + 12.0 * 0.1)
    r = what_if(store, "Stars", "portfolio", "retier", service_cost_change=5.0, value_change=0.1)
    t = r.table.set_index("measure")
    assert t.loc["profit", "change"] == pytest.approx(30.0 - 10.0)
    assert "set by the caller" in r.text
    with pytest.raises(BudgetError, match="the portfolio segments are: Review, Stars, Sure"):
        what_if(store, "Nope", "portfolio")


def test_retention_versus_acquisition_names_the_channels(store) -> None:
    _state(store)
    advice = retention_vs_acquisition(store, kind="portfolio")
    assert "no acquisition cost is recorded" in advice.text
    with store.transaction() as tx:
        tx.insert("customers", pd.DataFrame({"customer_id": ["r1", "s1", "s2"], "acquisition_channel": ["ads"] * 3,
                                             "acquisition_cost": [10.0, 10.0, 10.0], "row_hash": "h", "import_id": 1}))
    advice = retention_vs_acquisition(store, kind="portfolio")
    ch = advice.channels.set_index("channel")
    assert ch.loc["ads", "clv_cac"] == pytest.approx((10 + 100 + 200) / 3 / 10)
    assert "ads brings customers worth 10.3x what they cost" in advice.text and "Advice:" in advice.text
