"""Retention: Kaplan–Meier against the textbook 6-MP example, interval coverage, censoring, demo numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.datasets import load_demo_shop
from clientfolio.predict import retention as r

# Freireich et al. (1963), 6-MP arm: weeks in remission, 1 = relapse observed, 0 = censored.
SIX_MP_T = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
SIX_MP_E = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
# S(t) and Greenwood standard errors as printed in textbooks (e.g. Klein & Moeschberger, table 4.1A)
SIX_MP_KM = {6: (0.857, 0.076), 7: (0.807, 0.087), 10: (0.753, 0.096), 13: (0.690, 0.107), 16: (0.627, 0.114),
             22: (0.538, 0.128), 23: (0.448, 0.135)}


def test_kaplan_meier_matches_the_textbook_6mp_example() -> None:
    km = r.kaplan_meier(SIX_MP_T, [bool(e) for e in SIX_MP_E]).set_index("time")
    for t, (surv, se) in SIX_MP_KM.items():
        assert km.loc[t, "survival"] == pytest.approx(surv, abs=5e-4)
        assert km.loc[t, "se"] == pytest.approx(se, abs=5e-4)
    # log-log interval at week 6 (as lifelines prints it: 0.620 to 0.952)
    assert km.loc[6, "lower"] == pytest.approx(0.6197, abs=5e-4) and km.loc[6, "upper"] == pytest.approx(0.9516, abs=5e-4)
    assert km.loc[6, "at_risk"] == 21 and km.loc[6, "censored"] == 1
    assert (km["lower"] <= km["survival"]).all() and (km["survival"] <= km["upper"]).all()
    assert "pointwise 95%" in km.attrs["coverage"]


def test_pointwise_interval_covers_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    hits, day, truth = 0, 10.0, np.exp(-10.0 / 20.0)
    for _ in range(400):
        t = rng.exponential(20.0, 150)
        c = rng.uniform(0, 40, 150)
        km = r.kaplan_meier(np.minimum(t, c), t <= c)
        row = km[km["time"] <= day].iloc[-1]
        hits += row["lower"] <= truth <= row["upper"]
    assert 0.92 <= hits / 400 <= 0.98


def _tx(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [c for c, _ in rows], "ts": pd.to_datetime([d for _, d in rows], utc=True),
                         "amount": 10.0})


def test_retention_times_censor_recent_customers_and_stop_at_the_first_lapse() -> None:
    tx = _tx([("A", "2024-01-01"), ("A", "2024-01-20"),  # then silent: lapsed, 19 days
              ("B", "2024-01-01"), ("B", "2024-01-10"), ("B", "2024-03-01"),  # 51-day gap > 30: lapsed at 9, comeback
              ("C", "2024-01-01"), ("C", "2024-01-25"), ("C", "2024-02-20"), ("C", "2024-03-15"),  # still buying
              ("D", "2024-03-10"),  # acquired 21 days before as_of: too recent
              ("E", "2024-01-05")])  # one-timer: lapsed at day 0
    t = r.retention_times(tx, "2024-03-31", lapse_days=30)
    assert t.loc["A", "duration"] == 19 and t.loc["A", "lapsed"]
    assert t.loc["B", "duration"] == 9 and t.loc["B", "lapsed"]
    # C: not lapsed; censored at the last day a lapse could have been seen (90 - 30 = 60), not at day 74
    assert not t.loc["C", "lapsed"] and t.loc["C", "duration"] == 60
    assert t.loc["D", "too_recent"] and not t.loc["C", "too_recent"]
    assert t.loc["E", "duration"] == 0 and t.loc["E", "lapsed"]
    assert t.attrs["lapse_days"] == 30
    # purchases after as_of change nothing
    later = pd.concat([tx, _tx([("A", "2024-04-15"), ("F", "2024-04-02")])])
    pd.testing.assert_frame_equal(r.retention_times(later, "2024-03-31", lapse_days=30), t)


def test_thin_cohorts_get_no_curve() -> None:
    rows = [(f"c{i}", "2024-01-05") for i in range(40)] + [(f"c{i}", "2024-02-01") for i in range(0, 40, 2)]
    rows += [("x1", "2024-02-10"), ("x2", "2024-02-11"), ("x3", "2024-02-12")]
    res = r.retention_curves(r.retention_times(_tx(rows), "2024-12-31", lapse_days=60), freq="M")
    assert set(res.curves) == {"2024-01"} and res.too_few == {"2024-02": 3}
    assert any("2024-02" in line and "too few customers (3)" in line for line in res.sentences())
    row = res.table.set_index("cohort").loc["2024-01"]
    km = res.curves["2024-01"]
    assert r.survival_at(km, 10)[0] == pytest.approx(0.5)  # half came back on day 27, then all stopped
    lo, hi = km.loc[km["time"] == 0, ["lower", "upper"]].iloc[0]
    assert lo < 0.5 < hi
    assert row["retained_30d"] == 0.0  # the curve reached 0: known, not "no follow-up"


def test_logrank_agrees_with_a_known_value() -> None:
    # Freireich 6-MP against placebo: the classic log-rank chi-square is 16.79 (p < 0.001)
    placebo = np.array([1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23], float)
    chi, p = r.logrank(np.array(SIX_MP_T, float), np.array(SIX_MP_E, bool), placebo, np.ones(21, bool))
    assert chi == pytest.approx(16.79, abs=0.01) and p < 0.001


def test_demo_shop_retention_and_trend() -> None:
    d = load_demo_shop()
    res = r.retention(d["transactions"], "2024-12-31", segments=d["customers"].set_index("customer_id")
                      ["acquisition_channel"], by="acquisition_channel")
    assert res.lapse_days == 120  # the 90th percentile of repeat customers' usual gaps
    table = res.table.set_index("acquisition_channel")
    assert "too few customers" in table.loc["wholesale_sales", "note"]
    assert table.loc["referral", "retained_90d"] > table.loc["google_maps", "retained_90d"]
    overall = res.trend["all customers"]
    assert overall.n_recent >= 30 and overall.low <= overall.diff <= overall.high
    assert "95% interval" in overall.sentence and "for this one comparison" in overall.sentence
    cohorts = r.retention(d["transactions"], "2024-12-31")
    assert cohorts.table.set_index("cohort").loc["2024Q4", "note"].startswith("too recent")
