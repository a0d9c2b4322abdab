"""Reasons: the sentences say the numbers that decided the segment, and agree with the segmenters themselves."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from clientfolio.live import describe_change, explain
from clientfolio.live.kinds import KINDS, OPEN_KINDS, SEGMENT_NAMES
from clientfolio.segments import lifecycle as lifecycle_mod
from clientfolio.segments import rfm, value
from clientfolio.segments.behaviour import behaviour_segments

THRESHOLDS = {
    "rfm_cuts": {"recency": [10.0, 38.0, 60.0, 120.0], "orders": [1.0, 2.0, 3.4, 6.0],
                 "revenue": [50.0, 120.0, 250.0, 600.0]},
    "value_tier_cuts": {"value_tier": [380.0, 120.0], "historical_value_tier": [900.0, 300.0]},
    "frequency_cut": 1.2,
    "return_window": 30.0,
    "quadrant_splits": {"current": 80.0, "potential": 150.0},
    "lifecycle": {"p_alive": {"at risk": 0.70, "lapsed": 0.30, "churned": 0.10},
                  "rhythms": {"at risk": 2, "lapsed": 4, "churned": 8}},
}

# A regular: six orders, about every three weeks, last one 30 days ago.
REGULAR = {"segment": "active", "days_since_last": 30, "rhythm_days": 21, "p_alive": 0.80, "frequency": 5,
           "orders": 6, "R": 4, "F": 4, "M": 4, "FM": 4, "revenue": 420.0, "clv": 520.0, "value_12m": 200.0,
           "orders_per_month": 1.5, "last_gap": 25, "top_category": "cake", "share_cake": 0.62, "share_bread": 0.2,
           "top_channel": "web shop", "discount_share": 0.42, "gift_share": 0.1, "december_share": 0.2,
           "cart_abandons": 3, "support_tickets": 1, "profit": 85.0, "gross_profit": 120.0, "cost_to_serve": 35.0,
           "quadrant": "Stars"}


def _row(**changes) -> dict:
    return {**REGULAR, **changes}


# ----------------------------------------------------------------------------- the wanted sentences

def test_lifecycle_at_risk_cites_the_gap_the_rhythm_and_p_alive() -> None:
    after = _row(segment="at risk", days_since_last=74, p_alive=0.31)
    assert explain("lifecycle", REGULAR, after, THRESHOLDS, "GBP") == (
        "no order in 74 days, usually every 21 days (at risk after 42 days); P(alive) 0.31 (below 0.70; was 0.80)")
    assert describe_change("lifecycle", REGULAR, after, THRESHOLDS, "GBP").startswith("left Active for At Risk: ")


def test_at_risk_by_p_alive_alone_does_not_claim_the_days_decided_it() -> None:
    after = _row(segment="at risk", days_since_last=35, p_alive=0.55)  # 35 days is within 2 x 21
    text = explain("lifecycle", None, after, THRESHOLDS)
    assert text == "no order in 35 days, usually every 21 days; P(alive) 0.55 (below 0.70)"


def test_lifecycle_stage_thresholds_come_from_the_fitted_state() -> None:
    th = {**THRESHOLDS, "lifecycle": {"p_alive": {"at risk": 0.5}, "rhythms": {"at risk": 3}}}
    text = explain("lifecycle", None, _row(segment="at risk", days_since_last=74, p_alive=0.45), th)
    assert "(at risk after 63 days)" in text and "(below 0.50)" in text


def test_one_time_buyer_is_measured_against_the_return_window() -> None:
    after = {"segment": "at risk", "days_since_last": 74, "rhythm_days": 30, "frequency": 0, "orders": 1,
             "p_alive": 0.6}
    assert explain("lifecycle", None, after, THRESHOLDS) == (
        "one order so far, 74 days ago; returning customers usually come back within 30 days "
        "(at risk after 60 days); P(alive) 0.60 (below 0.70)")


def test_reactivated_says_how_long_they_were_away() -> None:
    after = _row(segment="reactivated", days_since_last=2, last_gap=140, ipt_mean_before_last=21)
    assert explain("lifecycle", _row(segment="churned"), after, THRESHOLDS) == (
        "ordered again after 140 days away (usually every 21 days); last order 2 days ago")


def test_new_and_prospect() -> None:
    new = {"segment": "new", "days_since_last": 12, "T": 12, "frequency": 0, "orders": 1}
    assert explain("lifecycle", None, new, THRESHOLDS).startswith(
        "first order, 12 days ago, within the shop's return window of 30 days")
    assert explain("lifecycle", None, {"segment": "prospect"}, THRESHOLDS) == "known customer with no order yet"


def test_rfm_names_the_score_that_fell_and_the_line_it_crossed() -> None:
    before, after = _row(segment="Loyal Customers"), _row(segment="Need Attention", days_since_last=45, R=3)
    assert explain("rfm", before, after, THRESHOLDS, "GBP") == (
        "R fell from 4 to 3: 45 days since the last order (R 4 needs 38 days or fewer)")
    assert describe_change("rfm", before, after, THRESHOLDS, "GBP") == (
        "left Loyal Customers for Need Attention: R fell from 4 to 3: 45 days since the last order "
        "(R 4 needs 38 days or fewer)")


def test_rfm_rising_frequency_and_spend_cite_the_score_reached() -> None:
    before = _row(segment="Need Attention", orders=3, F=3, M=3, revenue=240.0)
    after = _row(segment="Loyal Customers", orders=4, F=4, M=4, revenue=255.0)
    assert explain("rfm", before, after, THRESHOLDS, "£") == (
        "F rose from 3 to 4: 4 orders (F 4 needs 4 orders or more); "
        "M rose from 3 to 4: £255 spent (M 4 needs more than £250)")


def test_rfm_without_a_before_lists_all_three_scores() -> None:
    assert explain("rfm", None, _row(segment="Loyal Customers"), THRESHOLDS, "GBP") == (
        "R 4 (30 days since the last order), F 4 (6 orders), M 4 (£420 spent)")


def test_value_tier_lines() -> None:
    th = {**THRESHOLDS, "horizon_months": 12}
    assert explain("value_tier", None, _row(segment="High-Value Regulars", clv=412.0), th, "GBP") == (
        "predicted 12-month value £412 is above the top-20% line (£380)")
    assert explain("value_tier", _row(), _row(segment="Medium-Value Occasionals", clv=200.0), th, "GBP") == (
        "predicted 12-month value £200 (was £520) is above the top-50% line (£120), "
        "not above the top-20% line (£380)")
    assert explain("value_tier", None, _row(segment="Low-Value One-Timers", clv=90.0), THRESHOLDS, "GBP") == (
        "predicted value £90 is at or below the top-50% line (£120)")
    assert explain("historical_value_tier", None, _row(segment="Top 20% by past spend", revenue=1250.0),
                   THRESHOLDS, "GBP") == "past spend £1,250 is above the top-20% line (£900)"
    assert "no predicted value yet" in explain("value_tier", None, _row(segment="Low-Value One-Timers",
                                                                        clv=float("nan")), THRESHOLDS)


def test_numbers_that_differ_never_print_the_same() -> None:
    text = explain("value_tier", None, _row(segment="High-Value Regulars", clv=380.4), THRESHOLDS, "GBP")
    assert text == "predicted value £380.40 is above the top-20% line (£380.00)"
    text = explain("lifecycle", None, _row(segment="at risk", days_since_last=30, p_alive=0.698), THRESHOLDS)
    assert "P(alive) 0.698 (below 0.700)" in text


def test_quadrant_cites_both_coordinates_and_medians() -> None:
    after = _row(segment="Stars", value_12m=120.0, clv=300.0)
    assert explain("portfolio", None, after, THRESHOLDS, "GBP") == (
        "last 12 months' profit £120 (median £80) and predicted value £300 (median £150)")
    assert explain("portfolio", _row(), after, THRESHOLDS, "GBP") == (
        "last 12 months' profit £120 (median £80; was £200) and predicted value £300 (median £150; was £520)")


def test_money_in_the_shops_currency_or_bare() -> None:
    after = _row(segment="High-Value Regulars", clv=1412.0)
    assert "£1,412" in explain("value_tier", None, after, THRESHOLDS, "£")
    assert "CHF 1,412" in explain("value_tier", None, after, THRESHOLDS, "CHF")
    assert "value 1,412 is above the top-20% line (380)" in explain("value_tier", None, after, THRESHOLDS)


# Every kind: a realistic row, and the number that decided the segment must be in the reason.
EVERY_KIND = [
    ("rfm", "Need Attention", {"days_since_last": 45, "R": 3}, ["45 days", "38 days"]),
    ("value_tier", "High-Value Regulars", {"clv": 412.0}, ["£412", "£380"]),
    ("historical_value_tier", "Next 30% by past spend", {"revenue": 420.0}, ["£420", "£300"]),
    ("frequency_tier", "Frequent", {"orders_per_month": 1.5}, ["1.5 orders a month", "1.2"]),
    ("frequency_tier", "One-time", {"orders": 1, "frequency": 0}, ["one order"]),
    ("profitability", "Profitable", {}, ["£85", "£35"]),
    ("profitability", "Unprofitable", {"profit": -40.0, "cost_to_serve": 160.0}, ["loss of £40", "£160"]),
    ("profitability", "Break-even", {"profit": 3.2, "revenue": 300.0, "gross_profit": 60.0, "cost_to_serve": 56.8},
     ["£3.20", "£6"]),
    ("lifecycle", "lapsed", {"days_since_last": 100, "p_alive": 0.25}, ["100 days", "84 days", "0.25", "0.30"]),
    ("lifecycle", "churned", {"days_since_last": 200, "p_alive": 0.05}, ["200 days", "168 days", "0.05", "0.10"]),
    ("lifecycle", "active", {"days_since_last": 10, "p_alive": 0.92}, ["10 days", "21 days", "0.92"]),
    ("portfolio", "Review", {"value_12m": 40.0, "clv": 90.0}, ["£40", "£80", "£90", "£150"]),
    ("cluster", "Weekend big-basket regulars", {}, ["Weekend big-basket regulars", "nearest"]),
    ("rules", "VIP at risk", {}, ["VIP at risk"]),
    ("category_preference", "Cake lovers", {}, ["62%", "cake", "50%"]),
    ("category_preference", "Mixed basket", {"share_cake": 0.38}, ["38%", "cake", "50%"]),
    ("channel_preference", "web shop", {}, ["web shop"]),
    ("discount_reliance", "Value seekers", {}, ["42%", "30%"]),
    ("discount_reliance", "Full price", {"discount_share": 0.12}, ["12%", "30%"]),
    ("occasions", "Gift & seasonal buyers", {"gift_share": 0.64}, ["64%", "gifts", "50%"]),
    ("occasions", "Everyday buyers", {}, ["20%", "December", "50%"]),
    ("cart_abandoners", "Cart abandoners", {}, ["3 abandoned carts", "2 or more"]),
    ("support", "Support-heavy", {"support_tickets": 3, "orders": 6}, ["3 support tickets", "6 orders"]),
]


@pytest.mark.parametrize("kind, segment, values, numbers", EVERY_KIND, ids=[f"{k}-{s}" for k, s, _, _ in EVERY_KIND])
def test_every_kind_cites_its_deciding_numbers(kind: str, segment: str, values: dict, numbers: list[str]) -> None:
    text = explain(kind, REGULAR, _row(segment=segment, **values), THRESHOLDS, "GBP")
    assert text and not text.endswith(".")  # it follows "entered X: " in a sentence
    for n in numbers:
        assert n in text, (n, text)


def test_every_kind_is_covered_and_an_unknown_kind_still_reads() -> None:
    covered = {k for k, _, _, _ in EVERY_KIND}
    assert covered == set(KINDS)
    assert set(KINDS) == set(SEGMENT_NAMES) | set(OPEN_KINDS)
    assert explain("loyalty_club", None, {"segment": "Gold"}, {}) == "in 'Gold' by the loyalty club rules"
    assert explain("rule", None, {"segment": "VIP"}, {}) == "matches the rule 'VIP'"


@pytest.mark.parametrize("kind", KINDS)
def test_missing_columns_and_thresholds_never_crash(kind: str) -> None:
    for segment in SEGMENT_NAMES.get(kind, ("Some group",)):
        for after in ({"segment": segment}, {"segment": segment, "p_alive": float("nan"), "orders": None,
                                             "revenue": pd.NA, "days_since_last": "n/a"}):
            malformed = {"rfm_cuts": {"recency": [1, 2], "orders": "x"}, "value_tier_cuts": None,
                         "value_tier_shares": "x", "quadrant_splits": [1], "frequency_cut": "often",
                         "lifecycle": {"p_alive": {"at risk": "x"}, "rhythms": 5}, "return_window": -3}
            for th in ({}, THRESHOLDS, malformed):
                text = explain(kind, {}, after, th, "GBP")
                assert isinstance(text, str) and text.strip()
                assert "nan" not in text.lower().replace("nance", "") and "None" not in text


def test_describe_change_forms() -> None:
    after = _row(segment="at risk", days_since_last=74, p_alive=0.31)
    assert describe_change("lifecycle", {"segment": None}, after, THRESHOLDS).startswith("entered At Risk: no order")
    assert describe_change("lifecycle", None, after, THRESHOLDS).startswith("entered At Risk: ")
    assert describe_change("rules", {"segment": "VIP"}, {"segment": None}, THRESHOLDS) == "left VIP"
    assert describe_change("rules", {"segment": "VIP"}, {"segment": float("nan")}, THRESHOLDS) == "left VIP"
    assert describe_change("rules", {"segment": "VIP"}, {"segment": "VIP"}, THRESHOLDS) == (
        "still in VIP: matches the rule 'VIP'")


# ----------------------------------------------------------------------------- agreement with the segmenters

def _customers(n: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    orders = rng.integers(1, 12, n)
    return pd.DataFrame({"customer_id": [f"C{i:04d}" for i in range(n)],
                         "days_since_last": rng.integers(0, 400, n).astype(float),
                         "orders": orders, "revenue": rng.gamma(2, 80, n).round(2),
                         "clv": rng.gamma(1.5, 150, n).round(2), "orders_per_month": rng.gamma(1.2, 0.8, n).round(3)})


def test_rfm_scores_and_lines_agree_with_rfm_scores() -> None:
    df = _customers()
    scores = rfm.rfm_scores(df)
    th = {"rfm_cuts": {"recency": list(np.quantile(df["days_since_last"], [0.2, 0.4, 0.6, 0.8])),
                       "orders": list(np.quantile(df["orders"], [0.2, 0.4, 0.6, 0.8])),
                       "revenue": list(np.quantile(df["revenue"], [0.2, 0.4, 0.6, 0.8]))}}
    pattern = re.compile(r"^R (\d) \(.*\), F (\d) \(.*\), M (\d) \(.*\)$")
    checked = 0
    for row, (_, s) in zip(df.to_dict("records"), scores.iterrows()):
        text = explain("rfm", None, {**row, "segment": "x"}, th)  # no R/F/M: scored from the cut points
        assert pattern.match(text).groups() == (str(s["R"]), str(s["F"]), str(s["M"])), text
        for letter, col in (("R", "days_since_last"), ("F", "orders"), ("M", "revenue")):
            for was in (s[letter] - 1, s[letter] + 1):
                if not 1 <= was <= 5:
                    continue
                after = {**row, "segment": "x", "R": s["R"], "F": s["F"], "M": s["M"]}
                text = explain("rfm", {**after, letter: was}, after, th)
                v = row[col]
                if letter == "R":
                    limit = float(re.search(r"needs ([\d.,]+) days or fewer", text).group(1).replace(",", ""))
                    assert (v <= limit) == (s["R"] > was), text  # the line is met iff the score rose
                elif letter == "F":
                    need = int(re.search(r"needs (\d+) orders? or more", text).group(1))
                    assert (v >= need) == (s["F"] > was), text
                else:
                    cut = float(re.search(r"needs more than ([\d.,]+)\)", text).group(1).replace(",", ""))
                    assert (v > cut) == (s["M"] > was), text
                checked += 1
    assert checked > 1500


def test_value_tier_sentences_agree_with_value_tiers() -> None:
    df = _customers()
    members = value.value_tiers(df)
    hi, mid = np.quantile(df["clv"], [0.8, 0.5])
    th = {"value_tier_cuts": {"value_tier": [hi, mid]}}
    words = {value.VALUE_TIER_NAMES[0]: "is above the top-20% line", value.VALUE_TIER_NAMES[1]: "not above the top-20%",
             value.VALUE_TIER_NAMES[2]: "is at or below the top-50% line"}
    for row, segment in zip(df.to_dict("records"), members["segment"]):
        assert words[segment] in explain("value_tier", None, {**row, "segment": segment}, th)


def test_frequency_sentences_agree_with_frequency_tiers() -> None:
    df = _customers()
    members = value.frequency_tiers(df)
    cut = float(np.quantile(df.loc[df["orders"] > 1, "orders_per_month"], 2 / 3))
    for row, segment in zip(df.to_dict("records"), members["segment"]):
        text = explain("frequency_tier", None, {**row, "segment": segment}, {"frequency_cut": cut})
        expected = {"One-time": "one order so far", "Frequent": "at or above the frequent line",
                    "Occasional": "below the frequent line"}[segment]
        assert expected in text, (segment, text)


def test_lifecycle_sentences_cite_a_threshold_that_really_decided_the_stage() -> None:
    rng = np.random.default_rng(11)
    n = 600
    freq = rng.integers(0, 8, n)
    T = rng.uniform(20, 700, n)
    recency = np.where(freq > 0, T * rng.uniform(0, 1, n), 0.0)
    ipt = np.where(freq > 0, recency / np.maximum(freq, 1), np.nan)
    summary = pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)], "frequency": freq, "T": T,
                            "recency": recency, "ipt_mean": ipt, "first_gap": ipt,
                            "p_alive": rng.uniform(0, 1, n)})
    table, _ = lifecycle_mod.lifecycle(summary)
    window = float(np.quantile(summary.loc[freq >= 1, "first_gap"], 0.75))
    th = {"return_window": window}
    stages = set()
    for row, (_, life) in zip(summary.to_dict("records"), table.iterrows()):
        stage = life["lifecycle"]
        stages.add(stage)
        after = {**row, "segment": stage, "days_since_last": life["days_since_last"],
                 "rhythm_days": life["rhythm_days"]}
        text = explain("lifecycle", None, after, th)
        days = re.search(rf"\({stage} after ([\d.,]+) days\)", text)
        below = re.search(r"P\(alive\) ([\d.]+) \(below ([\d.]+)", text)
        if stage in ("at risk", "lapsed", "churned"):
            assert days or below, text  # the deciding number is always there
        if days:
            assert life["days_since_last"] > float(days.group(1).replace(",", "")) - 0.05, text
        if below:
            assert row["p_alive"] < float(below.group(2)), text
            if stage in ("at risk", "lapsed", "churned"):
                assert float(below.group(2)) == {"at risk": 0.70, "lapsed": 0.30, "churned": 0.10}[stage]
    assert {"active", "at risk", "lapsed", "churned"} <= stages


def test_behaviour_sentences_agree_with_behaviour_segments_at_the_lines() -> None:
    df = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "orders": [10, 11, 4, 3],
        "top_category": ["cake", "cake", "bread", "bread"],
        "share_cake": [0.5, 0.49, 0.1, 0.2], "share_bread": [0.2, 0.3, 0.6, 0.35],
        "top_channel": ["web", "shop", "web", "web"],
        "discount_share": [0.3, 0.29, 0.0, 0.8],
        "gift_share": [0.5, 0.49, 0.0, 0.1], "december_share": [0.0, 0.1, 0.7, 0.0],
        "cart_abandons": [2, 1, 0, 5],
        "support_tickets": [2, 2, 0, 1],
    })
    members, _ = behaviour_segments(df)
    seg = members.set_index(["customer_id", "segment_kind"])["segment"]
    for row in df.to_dict("records"):
        def said(kind: str) -> str:
            return explain(kind, None, {**row, "segment": seg[(row["customer_id"], kind)]}, {})
        lover = seg[(row["customer_id"], "category_preference")] != "Mixed basket"
        assert ("or more makes a favourite" in said("category_preference")) == lover
        seeker = seg[(row["customer_id"], "discount_reliance")] == "Value seekers"
        assert ("at or above" in said("discount_reliance")) == seeker
        gifts = seg[(row["customer_id"], "occasions")] == "Gift & seasonal buyers"
        assert ("at or above" in said("occasions")) == gifts
        carts = seg[(row["customer_id"], "cart_abandoners")] == "Cart abandoners"
        assert said("cart_abandoners").startswith(f"{row['cart_abandons']} abandoned cart")
        assert ("(2 or more" in said("cart_abandoners")) == carts
        assert said("channel_preference") == f"most of their orders go through {row['top_channel']}"
    # the support line: 2 tickets over 10 orders is one per 5 (heavy); over 11 orders it is not
    assert seg[("a", "support")] == "Support-heavy" and seg[("b", "support")] == "Low support"
    for kind, names in SEGMENT_NAMES.items():
        found = set(members.loc[members["segment_kind"] == kind, "segment"])
        assert found <= set(names), (kind, found)


def test_no_nan_reaches_a_sentence_for_real_rows() -> None:
    df = _customers(50)
    df["p_alive"] = np.where(np.arange(50) % 3 == 0, np.nan, 0.5)
    for row in df.to_dict("records"):
        text = explain("lifecycle", None, {**row, "segment": "at risk", "rhythm_days": 20.0, "frequency": 3},
                       THRESHOLDS)
        assert "nan" not in text and (("P(alive)" in text) == (not math.isnan(row["p_alive"])))
