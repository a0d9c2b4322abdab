"""The fairness audit on the analysed demo shop: a planted disparity is found, chance is not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clientfolio.actions.fairness import FairnessError, age_band, fairness_audit, postcode_area
from clientfolio.actions.proportions import holm, mantel_haenszel_rd, newcombe, wilson


@pytest.fixture
def customers(demo_analysed) -> pd.DataFrame:
    _, pf = demo_analysed
    return pf.customers.copy()


def _random_gender(c: pd.DataFrame, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.choice(["female", "male", "non-binary"], size=len(c), p=[0.47, 0.47, 0.06]), index=c.index)


def _make_candidates(c: pd.DataFrame, who: np.ndarray) -> None:
    """Turn customers into divestment candidates the product's way: a loss after cost to serve."""
    c.loc[who, "cost_to_serve"] = c.loc[who, "gross_profit"].clip(lower=0) + 5.0
    c.loc[who, "profit"] = c.loc[who, "gross_profit"] - c.loc[who, "cost_to_serve"]


def test_planted_disparity_is_found_with_its_size_and_reason(customers) -> None:
    c = customers
    c["gender"] = _random_gender(c, 1)
    rng = np.random.default_rng(2)
    women = np.flatnonzero(c["gender"] == "female")
    planted = rng.choice(women, size=int(0.12 * len(women)), replace=False)
    base = ((c["profit"] < 0) & (c["cost_to_serve"] > 0)).mean()
    _make_candidates(c, c.index[planted])
    r = fairness_audit(c, attributes=["gender"])
    d = r.disparities
    assert list(zip(d["attribute"], d["group"], d["outcome"])) == [("gender", "female", "divestment")]
    row = d.iloc[0]
    truth = 0.12 * (1 - base)  # the planted share, over a base rate that is the same for everyone
    assert row["diff_low"] <= truth <= row["diff_high"]
    assert row["diff_low"] > 0 and row["ratio"] > 5
    assert row["reason"] == "not explained by spend: review the rule"   # planted at random, whatever the spend
    assert row["adjusted_low"] <= truth <= row["adjusted_high"]
    # the other groups are better off only as the mirror image: not reported as disparities
    assert set(r.table.loc[r.table["status"] == "favoured", "outcome"]) <= {"divestment"}
    text = " ".join(r.findings)
    assert "Gender female:" in text and "divestment candidates" in text and "review the rule" in text


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_disparity_when_attribute_is_independent_of_outcomes(customers, seed) -> None:
    c = customers
    c["gender"] = _random_gender(c, seed)
    c["postcode"] = pd.Series(np.random.default_rng(seed + 100).choice(["SW1A 1AA", "M1 1AE", "B33 8TH", "LS1 4AP"],
                                                                         size=len(c)), index=c.index)
    r = fairness_audit(c, attributes=["gender", "postcode_area"])
    assert r.disparities.empty
    assert len(r.table) == 4 * 7 and (r.table["status"] != "too small to judge").all()
    assert set(r.table["group"]) == {"female", "male", "non-binary", "SW", "M", "B", "LS"}
    assert any(f.startswith("No disparity found: 28 comparisons") for f in r.findings)


def test_small_group_is_reported_not_dropped(customers) -> None:
    c = customers
    c["gender"] = _random_gender(c, 3)
    c.loc[c.index[:12], "gender"] = "intersex"
    c.loc[c.index[12:20], "gender"] = None
    r = fairness_audit(c, attributes=["gender"], min_group=30)
    small = r.table[r.table["status"] == "too small to judge"]
    assert set(small["group"]) == {"intersex", "(not recorded)"}
    assert (small["customers"].isin([12, 8])).all() and small["p_value"].isna().all()
    assert "Gender: too small to judge (fewer than 30 customers): intersex (12), (not recorded) (8)." in r.findings
    # the small groups are left out of the tests, not out of the rest of everyone else's comparison
    judged = r.table[(r.table["group"] == "female") & (r.table["outcome"] == "review")].iloc[0]
    assert judged["customers"] + judged["rest_customers"] == len(c)


def test_disparity_explained_by_spend_is_labelled_so(customers) -> None:
    c = customers
    rng = np.random.default_rng(5)
    low = (c["revenue"] <= c["revenue"].quantile(0.2)).to_numpy()
    # postcode area ZZ: mostly low spenders; the outcome depends on spend alone, not on the postcode
    zz = np.where(low, rng.random(len(c)) < 0.6, rng.random(len(c)) < 0.05)
    c["postcode"] = np.where(zz, "ZZ9 9ZZ", rng.choice(["AB1 2CD", "CF10 1AA", "EH1 1YZ"], size=len(c)))
    for part in (low & zz, low & ~zz):  # 30% of the low spenders, as many in ZZ as elsewhere
        idx = np.flatnonzero(part)
        _make_candidates(c, c.index[rng.choice(idx, size=round(0.3 * len(idx)), replace=False)])
    r = fairness_audit(c, attributes=["postcode_area"])
    row = r.disparities.set_index(["group", "outcome"]).loc[("ZZ", "divestment")]
    assert row["diff"] > 0.1 and row["adjusted_low"] <= 0 <= row["adjusted_high"]
    assert row["reason"] == "largely explained by lower spend"
    assert any("ZZ" in f and "largely explained by lower spend" in f for f in r.findings)


def test_group_without_service_is_warned(customers) -> None:
    c = customers
    levels = {"value_tier:High-Value Regulars": "priority", "value_tier:Medium-Value Occasionals": "standard",
              "value_tier:Low-Value One-Timers": "self-service"}
    king = c["region"] == "Kingsmere"
    c.loc[king, "value_tier"] = "Low-Value One-Timers"
    r = fairness_audit(c, attributes=["region"], service_levels=levels)
    assert {"self_service", "priority"} <= set(r.outcomes)
    warn = [f for f in r.findings if f.startswith("Warning:")]
    assert warn == [f"Warning: every customer of region Kingsmere ({int(king.sum())}) gets only self-service or no "
                    "service level: this group gets no real service; check the playbooks and the rules behind it."]
    # without a service mapping the audit still runs, on the product's own outcomes
    assert set(fairness_audit(c, attributes=["region"]).outcomes) == {"divestment", "review", "top_tier", "winback"}


def test_attribute_helpers_and_refusals(customers) -> None:
    at = pd.Timestamp("2024-12-31")
    assert age_band(pd.Series([19, 30, 70, None, 150]), at, ages=True).fillna("-").tolist() == [
        "under 25", "25-34", "65 and over", "-", "-"]
    births = pd.Series([1950, "1990", "1984-06-01", "2001-01-15", "06-15", 6, None])
    assert age_band(births, at).fillna("-").tolist() == ["65 and over", "25-34", "35-44", "under 25", "-", "-", "-"]
    assert postcode_area(pd.Series(["sw1a 1aa", "M1 1AE", "10115", "?"])).fillna("-").tolist() == ["SW", "M", "10", "-"]
    # attributes kept as JSON (the store's customers.attributes) are found too
    c = customers.copy()
    c["attributes"] = [json.dumps({"gender": g, "birth_year": 1980 + i % 30}) for i, g in
                       enumerate(_random_gender(c, 7))]
    assert fairness_audit(c).attributes == ["region", "gender", "age_band"]
    with pytest.raises(FairnessError, match="no gender in the data.*attributes found: region"):
        fairness_audit(customers, attributes=["gender"])
    with pytest.raises(FairnessError, match="unknown attribute 'shoe_size'"):
        fairness_audit(customers, attributes=["shoe_size"])


def test_interval_and_adjustment_formulas() -> None:
    # Newcombe (1998) table II, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    assert newcombe(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert holm(np.array([0.01, 0.04, 0.03, np.nan])) == pytest.approx([0.03, 0.06, 0.06, np.nan], nan_ok=True)
    # one stratum: the Mantel-Haenszel difference is the plain difference
    rd, lo, hi = mantel_haenszel_rd(np.array([20]), np.array([100]), np.array([10]), np.array([100]))
    assert rd == pytest.approx(0.1) and lo < 0.1 < hi


def test_store_audit_matches_portfolio_and_cli(demo_analysed, demo_store_path) -> None:
    from clientfolio.store import open_store
    from tests.test_cli import run

    _, pf = demo_analysed
    with open_store(str(demo_store_path)) as st:
        from_store = fairness_audit(st)
    from_pf = fairness_audit(pf)
    cols = ["attribute", "group", "outcome", "customers", "count", "status"]
    pd.testing.assert_frame_equal(from_store.table[cols], from_pf.table[cols])
    assert from_store.attributes == ["region"]
    out = run("fairness", "--store", str(demo_store_path), "--out", "fair.csv", cwd=demo_store_path.parent)
    assert out.returncode == 0, out.stderr
    for f in from_pf.findings:
        assert f.split(":")[0] in out.stdout
    assert pd.read_csv(demo_store_path.parent / "fair.csv").shape[0] == len(from_pf.table)


def test_store_attributes_are_those_of_the_whole_customer_state_read(demo_analysed, demo_store_path) -> None:
    """The audit adds the store's attributes (region, JSON attributes) without reading every column of
    customer_state: the same frame as merging the full store read, and the portfolio left untouched."""
    from clientfolio.actions.fairness import _frame, _is_attribute_column, customers_from_store, expand_attributes
    from clientfolio.store import open_store

    _, pf = demo_analysed
    before = pf.customers.copy()
    with open_store(str(demo_store_path)) as st:
        got, _ = _frame(pf, st)
        full = customers_from_store(st)
    ref = pf.customers.copy()
    ref["customer_id"] = ref["customer_id"].astype(str)
    keep = ["customer_id"] + [c for c in full.columns if c not in ref.columns and _is_attribute_column(c)]
    assert len(keep) > 1  # the demo store has attributes the portfolio's frame lacks
    ref = expand_attributes(ref.merge(full[keep], on="customer_id", how="left"))
    pd.testing.assert_frame_equal(got, ref)
    pd.testing.assert_frame_equal(pf.customers, before)  # the lazy copy did not write into the portfolio
