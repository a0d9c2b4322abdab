"""Segment kinds: every customer in exactly one segment per kind, and each kind's rules hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clientfolio
from clientfolio.segments import history, lifecycle, portfolio, rfm, value
from tests.conftest import DATA, corpus_file

EXCLUSIVE = ["rfm", "value_tier", "historical_value_tier", "frequency_tier", "profitability", "lifecycle",
             "portfolio", "category_preference", "channel_preference", "discount_reliance", "occasions",
             "cart_abandoners", "support", "cluster"]


@pytest.fixture(scope="module")
def demo() -> clientfolio.portfolio.Portfolio:
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    return clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]])


@pytest.fixture(scope="module")
def cdnow() -> clientfolio.portfolio.Portfolio:
    return clientfolio.analyze(corpus_file("cdnow_master__headerless_head__zhuc5.txt"), clusters=True)


@pytest.mark.parametrize("which", ["demo", "cdnow"])
def test_every_customer_in_exactly_one_segment_per_kind(which: str, request) -> None:
    pf = request.getfixturevalue(which)
    seg = pf.segments
    customers = set(pf.customers["customer_id"])
    kinds = [k for k in EXCLUSIVE if k in set(seg["segment_kind"])]
    assert {"rfm", "value_tier", "lifecycle", "portfolio", "profitability"} <= set(kinds)
    for kind in kinds:
        part = seg[seg["segment_kind"] == kind]
        assert part["customer_id"].is_unique, kind
        assert set(part["customer_id"]) >= customers, kind  # prospects may add a few more in lifecycle
        assert part["segment"].notna().all(), kind
    assert (seg["as_of"] == pf.as_of).all()


def test_rfm_grid_and_quintiles() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    df = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "days_since_last": rng.integers(0, 400, n),
                       "orders": rng.integers(1, 4, n), "revenue": rng.gamma(2, 30, n).round(0)})
    scores, members = rfm.rfm_segments(df, as_of="2024-12-31")
    for col, measure in (("R", "days_since_last"), ("F", "orders"), ("M", "revenue")):
        # ties are ties: every customer with the same value has the same score ...
        assert (scores.groupby(df[measure])[col].nunique() == 1).all(), col
    # ... and better values never score lower
    assert (scores.groupby(df["days_since_last"])["R"].first().diff().dropna() <= 0).all()
    assert (scores.groupby(df["revenue"])["M"].first().diff().dropna() >= 0).all()
    assert scores["M"].value_counts().between(150, 250).all()  # about a fifth each where ties are small
    again, _ = rfm.rfm_segments(df.sample(frac=1, random_state=1), as_of="2024-12-31")
    pd.testing.assert_frame_equal(scores.sort_values("customer_id").reset_index(drop=True),
                                  again.sort_values("customer_id").reset_index(drop=True))
    fm = np.floor((scores["F"] + scores["M"]) / 2 + 0.5).astype(int)
    assert (scores["FM"] == fm).all()
    for r, f_m, name in zip(scores["R"], scores["FM"], scores["rfm_segment"]):
        assert name == rfm.DEFAULT_GRID[r][f_m - 1]
    best = scores.set_index("customer_id").loc[df.sort_values("days_since_last")["customer_id"].iloc[0]]
    assert best["R"] == 5
    with pytest.raises(Exception, match="grid"):
        rfm.rfm_segments(df, as_of="2024-12-31", grid={5: ("a",) * 5})


def test_everyone_who_bought_on_the_cutoff_day_is_most_recent() -> None:
    """A one-day shop: equal recency must not be split into Lost / At Risk / Champions by customer id."""
    df = pd.read_csv(DATA / "trust" / "thin" / "one_day_ties.csv")
    scores, _ = rfm.rfm_segments(df, as_of="2010-12-01")
    assert (scores["R"] == 5).all()
    assert not scores["rfm_segment"].isin(["Lost", "At Risk", "Hibernating", "Can't Lose Them"]).any()
    same = scores.merge(df, on="customer_id").groupby(["orders", "revenue"])["RFM"].nunique()
    assert (same == 1).all()
    one_timers = scores.merge(df, on="customer_id").query("orders == 1")
    assert (one_timers["F"] == 1).all()


def test_value_and_frequency_tiers_keep_ties_together() -> None:
    df = pd.DataFrame({"customer_id": [f"c{i}" for i in range(10)],
                       "clv": [5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
                       "orders": [1, 1, 1, 1, 2, 3, 3, 3, 4, 5], "orders_per_month": [0, 0, 0, 0, 1, 2, 2, 2, 3, 4]})
    tiers = value.value_tiers(df, as_of="2024-01-01").set_index("customer_id")["segment"]
    assert tiers.groupby(df.set_index("customer_id")["clv"]).nunique().eq(1).all()
    freq = value.frequency_tiers(df, as_of="2024-01-01").set_index("customer_id")["segment"]
    assert freq.groupby(df.set_index("customer_id")["orders_per_month"]).nunique().eq(1).all()


def test_value_tiers_split_20_30_50(demo) -> None:
    tiers = demo.segments[demo.segments["segment_kind"] == "value_tier"]["segment"].value_counts(normalize=True)
    assert tiers["High-Value Regulars"] == pytest.approx(0.2, abs=0.02)  # cut points on values: ties stay together
    assert tiers["Medium-Value Occasionals"] == pytest.approx(0.3, abs=0.02)
    c = demo.customers
    assert c[c["value_tier"] == "High-Value Regulars"]["clv"].min() >= c[c["value_tier"] != "High-Value Regulars"]["clv"].max()


def test_lifecycle_agrees_with_the_simulated_truth(demo) -> None:
    """The demo shop is simulated: we know who was still alive at the end."""
    from clientfolio.datasets.bakery import simulate

    truth = simulate().truth.set_index("customer_id")
    c = demo.customers.set_index("customer_id").join(truth[["alive_at_end", "customer_type"]])
    alive_share = c.groupby("lifecycle")["alive_at_end"].mean()
    assert alive_share["active"] > 0.75  # measured 0.81
    assert alive_share["churned"] < 0.10  # measured 0.06
    assert alive_share["active"] > alive_share["at risk"] > alive_share["churned"]
    tourists = c[c["customer_type"] == "tourist"]["lifecycle"]
    assert (tourists == "active").mean() < 0.05  # one visit to town is not an active customer


def test_no_long_silent_one_time_buyer_is_surely_alive(demo) -> None:
    """BG/NBD alone gives every one-time buyer P(alive) = 1; the lifecycle called them lapsed."""
    c = demo.customers
    assert demo.models["kind"] != "bgnbd" or demo.models["one_time_alive"] is not None
    silent = c[(c["frequency"] == 0) & (c["days_since_last"] > 365)]
    assert len(silent) > 100
    assert silent["p_alive"].max() < 0.5
    assert silent["lifecycle"].isin(["lapsed", "churned"]).all()
    # the heat map's one-time-buyer row is not green at the long-silent end
    from clientfolio.report.charts import palive_matrix

    z = palive_matrix(c).data[0].z
    assert np.nanmax(z[0][-2:]) < 0.5


def test_tracking_verdict_in_plain_words_on_the_demo(demo) -> None:
    """The demo's BG/NBD under-tracks the calibration period by 23%: the text must not say 'Use BG/NBD'."""
    v = demo.validation
    assert v["tracks_calibration"] is False
    gap = v["calibration_gaps"]["BG/NBD"]["gap"]
    assert gap < -0.10
    text = v["comparison"].recommendation
    assert text.startswith("None of the purchase models follows your repeat purchases within 10%")
    assert f"{gap:+.0%}" in text and "Use BG/NBD" not in text
    assert any("Treat forecasts as rough" in line for line in demo.headline())


def test_lifecycle_uses_each_customers_own_rhythm() -> None:
    df = pd.DataFrame({
        "customer_id": ["daily", "quarterly", "new", "gone", "back", "once"],
        "frequency": [50, 4, 0, 3, 3, 0],
        "recency": [80.0, 300.0, 0.0, 60.0, 400.0, 0.0],
        "T": [100.0, 340.0, 10.0, 400.0, 402.0, 500.0],
        "ipt_mean": [1.6, 75.0, np.nan, 20.0, 133.0, np.nan],
        "first_gap": [1.0, 75.0, np.nan, 20.0, 30.0, np.nan],
        "last_gap": [1.0, 75.0, np.nan, 20.0, 340.0, np.nan],
        "ipt_mean_before_last": [1.6, 75.0, np.nan, 20.0, 30.0, np.nan],
    })
    df.attrs["unit_days"] = 1.0
    table, _ = lifecycle.lifecycle(df, as_of="2024-12-31", prospects=pd.Series(["lead"]))
    stage = dict(zip(table["customer_id"], table["lifecycle"]))
    # 20 days without coffee is 12 rhythms for the daily regular, half a rhythm for the quarterly buyer
    assert stage["daily"] == "churned" and stage["quarterly"] == "active"
    assert stage["new"] == "new" and stage["gone"] == "churned" and stage["back"] == "reactivated"
    assert stage["once"] == "churned"  # one purchase 500 days ago, 8+ return windows (P75 of first gaps)
    assert stage["lead"] == "prospect"


def test_profitability_and_divestment_evidence() -> None:
    c = pd.DataFrame({"customer_id": ["a", "b"], "revenue": [100.0, 200.0], "cost": [40.0, 80.0],
                      "cost_to_serve": [80.0, 10.0], "orders": [4, 5], "clv": [12.0, 40.0]})
    prof, members = value.profitability(c, as_of="2024-12-31")
    assert prof.set_index("customer_id").loc["a", "profit"] == pytest.approx(-20.0)
    assert dict(zip(members["customer_id"], members["segment"])) == {"a": "Unprofitable", "b": "Profitable"}
    full = c.drop(columns=["cost_to_serve"]).merge(prof, on="customer_id")
    d = portfolio.divestment_candidates(full, members, "£")
    assert d.customers["customer_id"].tolist() == ["a"]
    assert "£100.00" in d.customers["evidence"].iloc[0] and "£20.00" in d.customers["evidence"].iloc[0]
    assert d.segments["segment"].tolist() == ["Unprofitable"]


def test_value_score_presets_and_missing_dimensions() -> None:
    c = pd.DataFrame({"customer_id": list("abc"), "clv": [1.0, 5.0, 9.0], "email_click_rate": [0.9, 0.1, 0.5]})
    vs = value.value_score(c, "b2b")
    assert set(vs.weights) == {"economic", "engagement"} and sum(vs.weights.values()) == pytest.approx(1.0)
    assert any("advocacy" in n for n in vs.notes)
    assert vs.scores["value_score"].between(0, 100).all()
    with pytest.raises(Exception, match="preset"):
        value.value_score(c, "bakery")


def test_concentration_curve() -> None:
    curve, top20 = portfolio.concentration(pd.Series([100.0] + [1.0] * 9))
    assert top20 == pytest.approx((100 + 1) / 109)
    assert curve["revenue_share"].iloc[-1] == pytest.approx(1.0) and curve["revenue_share"].is_monotonic_increasing
    # a fifth of two customers is not a group: no top-20% share, the curve is still drawn
    curve, top20 = portfolio.concentration(pd.Series([22788.0, 17758.28]))
    assert np.isnan(top20) and curve["revenue_share"].iloc[50] == pytest.approx(22788 / 40546.28)


def test_migration_markov_and_kpis() -> None:
    before = pd.DataFrame({"customer_id": list("abcd"), "segment_kind": "lifecycle",
                           "segment": ["active", "active", "at risk", "at risk"], "as_of": pd.Timestamp("2024-01-01")})
    after = pd.DataFrame({"customer_id": list("abce"), "segment_kind": "lifecycle",
                          "segment": ["active", "at risk", "lapsed", "new"], "as_of": pd.Timestamp("2024-04-01")})
    m = history.migration_matrix(before, after, "lifecycle")
    assert m.loc["active", "active"] == 1 and m.loc["active", "at risk"] == 1 and m.loc["at risk", "(gone)"] == 1
    assert m.loc["(new)", "new"] == 1 and m.to_numpy().sum() == 5
    f = history.markov_forecast(before, after, "lifecycle", steps=2)
    assert f[0].sum() == 4 and f[1].sum() <= f[0].sum()  # no new customers assumed
    assert f.loc["active", 1] == pytest.approx(0.5)  # half of the active stay active
    customers = pd.DataFrame({"customer_id": list("abce"), "revenue": [10.0, 20.0, 5.0, 1.0], "aov": 5.0})
    k = history.segment_kpis(customers, after, before).set_index("segment")
    assert k.loc["active", "retention"] == pytest.approx(0.5) and k.loc["active", "growth"] == pytest.approx(-0.5)



def _kpis_by_merges(customers, memberships, previous, previous_customers):
    """segment_kpis written with plain pandas merges: what the coded lookups must reproduce."""
    have = [c for c in ("revenue", "aov", "clv") if c in customers]
    m = memberships.merge(customers[["customer_id", *have]], on="customer_id", how="left")
    k = m.groupby(["segment_kind", "segment"]).agg(customers=("customer_id", "size"), revenue=("revenue", "sum"),
                                                   aov=("aov", "mean"), mean_clv=("clv", "mean")).reset_index()
    prev_size = previous.groupby(["segment_kind", "segment"]).size().rename("customers_before").reset_index()
    k = k.merge(prev_size, on=["segment_kind", "segment"], how="left")
    stay = previous.merge(memberships, on=["customer_id", "segment_kind"], suffixes=("_before", ""))
    stay = stay[stay["segment_before"] == stay["segment"]].groupby(["segment_kind", "segment"]).size()
    k = k.merge(stay.rename("stayed").reset_index(), on=["segment_kind", "segment"], how="left")
    pm = previous.merge(previous_customers[["customer_id", "clv"]], on="customer_id")
    before = pm.groupby(["segment_kind", "segment"])["clv"].mean().rename("mean_clv_before").reset_index()
    return k.merge(before, on=["segment_kind", "segment"], how="left").set_index(["segment_kind", "segment"])


def test_segment_kpis_match_a_plain_merge_on_a_messy_base() -> None:
    """Members missing from the customers table, customers gone since, two kinds, repeated ids: the
    integer-coded lookups give the counts and means the merges give."""
    rng = np.random.default_rng(3)
    ids = [f"c{i}" for i in range(400)]
    kinds = {"lifecycle": ["active", "at risk", "lapsed"], "value_tier": ["top", "mid", "low"]}

    def members(who, as_of):
        return pd.concat([pd.DataFrame({"customer_id": who, "segment_kind": kind,
                                        "segment": rng.choice(names, len(who)), "as_of": pd.Timestamp(as_of)})
                          for kind, names in kinds.items()], ignore_index=True)

    now_ids, prev_ids = ids[50:], ids[:350]
    after, before = members(now_ids, "2024-04-01"), members(prev_ids, "2024-01-01")
    customers = pd.DataFrame({"customer_id": ids[60:], "revenue": rng.gamma(2.0, 50.0, 340),
                              "aov": rng.gamma(2.0, 10.0, 340), "clv": rng.gamma(2.0, 80.0, 340)})
    prev_customers = pd.DataFrame({"customer_id": ids[:300], "clv": rng.gamma(2.0, 70.0, 300)})
    given = after.copy()
    got = history.segment_kpis(customers, after, before, prev_customers).set_index(["segment_kind", "segment"])
    pd.testing.assert_frame_equal(after, given)  # the memberships are shared, not copied, and never written to
    want = _kpis_by_merges(customers, after, before, prev_customers)
    assert got["customers"].tolist() == want["customers"].tolist()
    for col in ("revenue", "aov", "mean_clv", "customers_before", "mean_clv_before"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-12)
    np.testing.assert_allclose(got["retention"], want["stayed"].fillna(0) / want["customers_before"], rtol=1e-12)
    # a customer listed twice in the customers table: the merge's duplication is kept
    twice = pd.concat([customers, customers.iloc[:5]], ignore_index=True)
    got2 = history.segment_kpis(twice, after, before, prev_customers).set_index(["segment_kind", "segment"])
    want2 = _kpis_by_merges(twice, after, before, prev_customers)
    assert got2["customers"].tolist() == want2["customers"].tolist()


def test_portfolio_api(cdnow, tmp_path: Path) -> None:
    pf = cdnow
    assert {"customer_id", "clv", "clv_low", "clv_high", "p_alive", "rfm_segment", "lifecycle", "quadrant",
            "value_tier"} <= set(pf.customers.columns)
    assert list(pf.segments.columns) == ["customer_id", "segment_kind", "segment", "as_of"]
    html = pf._repr_html_()
    assert "portfolio as of" in html and "<li>" in html
    out = pf.to_file(tmp_path / "c.parquet")
    assert len(pd.read_parquet(out)) == len(pf.customers)
    assert len(pf.headline()) >= 4


def test_analyze_a_dataframe() -> None:
    raw = pd.read_csv(corpus_file("cdnow_sample__lifetimes.txt"), sep=r"\s+", header=None, dtype=str,
                      names=["customer_id", "sample_id", "date", "cds", "amount"])
    df = pd.DataFrame({"customer_id": raw["customer_id"], "date": pd.to_datetime(raw["date"], format="%Y%m%d"),
                       "amount": raw["amount"].astype(float)})
    pf = clientfolio.analyze(df, clusters=False, cutoff="1997-09-30")
    assert len(pf.customers) == 2357
    assert pf.validation["comparison"].table["log_likelihood"].notna().all()


def test_a_half_share_is_a_favourite_whatever_the_order_of_its_sums() -> None:
    """Half of 0.1 + 0.2 + 0.3 is 0.3, or 0.1 + 0.2 when added up in another order: both make a favourite."""
    from clientfolio.segments.behaviour import behaviour_segments

    total = 0.1 + 0.2 + 0.3
    a, b = 0.3 / total, (0.1 + 0.2) / total
    assert a < 0.5 <= b  # the floating-point shares really fall on either side of the line
    customers = pd.DataFrame({"customer_id": ["x", "y"], "top_category": ["coffee", "coffee"],
                              "share_coffee": [a, b], "as_of": pd.Timestamp("2024-12-31")})
    rows, _ = behaviour_segments(customers)
    got = rows[rows["segment_kind"] == "category_preference"].set_index("customer_id")["segment"]
    assert got.to_dict() == {"x": "Coffee lovers", "y": "Coffee lovers"}


def test_quadrant_current_value_equal_to_the_split_however_it_was_summed():
    """A 12-month value summed in another order (PostgreSQL, a live update, a sweep's window) is a hair off the
    split it equals; it must land on the same side as the value summed the batch's way."""
    from clientfolio.segments.portfolio import quadrant_arrays

    parts = [0.1, 0.2, 0.3]
    one, other = sum(parts), sum(reversed(parts))
    assert one != other  # the two orders really give different floats
    splits = {"current": other, "potential": 10.0}
    quads = quadrant_arrays(np.array([one, other, one + 0.01, one - 0.01]), np.array([20.0] * 4), splits)[2]
    assert quads[0] == quads[1]
    assert quads[2] != quads[0] and quads[3] == quads[0]  # a cent either side still counts


def test_rfm_money_and_value_tiers_equal_to_a_cut_however_it_was_summed():
    """RFM's revenue quintiles and the value tiers' cuts are often exactly one customer's sum; the same sum
    added in another order must score the same, and a cent either side must not."""
    from clientfolio.segments.rfm import score_grid
    from clientfolio.segments.value import HISTORICAL_TIER_NAMES, tiers_by_cuts

    parts = [0.1, 0.2, 0.3]
    one, other = sum(parts), sum(reversed(parts))
    assert one != other
    money = np.array([one, other, one + 0.01, one - 0.01])
    ones = np.ones(4)
    cuts = {"recency": [1.0, 2.0, 3.0, 4.0], "orders": [1.0, 2.0, 3.0, 4.0], "revenue": [0.0, other, 5.0, 6.0]}
    m = score_grid(ones, ones, money, cuts)[2]
    assert m[0] == m[1] == 2 and m[2] == 3 and m[3] == 2
    tiers = tiers_by_cuts(pd.Series(money), (5.0, other), HISTORICAL_TIER_NAMES)
    assert tiers[0] == tiers[1] == HISTORICAL_TIER_NAMES[2]
    assert tiers[2] == HISTORICAL_TIER_NAMES[1] and tiers[3] == HISTORICAL_TIER_NAMES[2]


def test_discount_and_occasion_shares_at_their_line_however_they_were_summed():
    """Shares of summed money at exactly 30% (discounts) or 50% (gifts / December) stay on the line's side
    when the sums were added in another order (a hair under the line in floats)."""
    from clientfolio.segments.behaviour import behaviour_segments

    under_half = (0.4 + 0.3 + 0.2 + 0.1) / 2 / (0.1 + 0.2 + 0.3 + 0.4)
    under_30 = np.nextafter(0.3, 0.0)
    assert under_half < 0.5 and under_30 < 0.3
    customers = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "orders": [2, 2, 2, 2],
                              "discount_share": [0.3, under_30, 0.29, 0.31],
                              "gift_share": [0.5, under_half, 0.49, 0.51], "december_share": [0.0] * 4,
                              "as_of": pd.Timestamp("2024-12-31")})
    rows, _ = behaviour_segments(customers)
    got = rows.set_index(["customer_id", "segment_kind"])["segment"]
    assert [got[(c, "discount_reliance")] for c in "abcd"] == ["Value seekers", "Value seekers", "Full price",
                                                                 "Value seekers"]
    assert [got[(c, "occasions")] for c in "abcd"] == ["Gift & seasonal buyers", "Gift & seasonal buyers",
                                                         "Everyday buyers", "Gift & seasonal buyers"]
