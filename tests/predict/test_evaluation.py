"""Per-customer churn reasons read from the customer's own numbers."""

from __future__ import annotations

from clientfolio.predict.evaluation import reason


def test_reason_of_a_repeat_buyer_gives_rhythm_trend_and_p_alive():
    text = reason({"days_since_last": 74.0, "gap_median": 21.0, "days_90d": 1.0, "trend_90d": -3.0,
                   "btyd_p_alive": 0.31})
    assert text.startswith("no order in 74 days, usually every 21 days;")
    assert "1 order days in the last 90 days against 4 in the 90 before" in text
    assert text.endswith("P(alive) 0.31")


def test_reason_of_a_one_time_buyer_leaves_out_bgnbd_p_alive_of_one():
    """BG/NBD's P(alive) is 1 for a one-order customer; beside a high churn risk it reads as a contradiction."""
    text = reason({"days_since_last": 120.0, "gap_median": float("nan"), "btyd_p_alive": 1.0})
    assert text == "one order so far, 120 days ago"
