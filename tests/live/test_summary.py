"""What changed since last time: counts per segment, by cause, with examples, and the sentences built on them."""

from __future__ import annotations

import pandas as pd
import pytest

from clientfolio.core.errors import SchemaError
from clientfolio.live import changes_summary, describe_change, summary_lines

AT = pd.Timestamp("2025-03-04 08:00", tz="UTC")
COLUMNS = ["customer_id", "segment_kind", "from_segment", "to_segment", "changed_at", "cause", "reason"]
THRESHOLDS = {"lifecycle": {}, "return_window": 30.0}


def _log() -> pd.DataFrame:
    """A realistic change log: reasons made by describe's own explain, for a week of a small shop."""
    rows = []
    for i, days in enumerate([74, 50, 66, 45, 90]):  # five regulars slipped into at risk over time
        before = {"segment": "active", "days_since_last": days - 7, "rhythm_days": 21, "frequency": 4,
                  "p_alive": 0.8}
        after = {**before, "segment": "at risk", "days_since_last": days, "p_alive": 0.5}
        reason = describe_change("lifecycle", before, after, THRESHOLDS).split(": ", 1)[1]
        rows.append((f"C{100 + i}", "lifecycle", "active", "at risk", AT, "time", reason))
    rows.append(("C200", "lifecycle", "at risk", "active", AT, "order", "ordered again after 40 days"))
    rows.append(("C201", "lifecycle", "at risk", "active", AT, "order", "ordered again after 35 days"))
    rows.append(("C202", "lifecycle", "active", "at risk", AT, "refit", "P(alive) 0.66 (below 0.70)"))
    rows.append(("C203", "lifecycle", None, "new", AT, "order", "first order, 0 days ago"))
    rows.append(("C100", "rfm", "Champions", "Loyal Customers", AT, "refit",
                 "R fell from 5 to 4: 12 days since the last order (R 5 needs 10 days or fewer)"))
    rows.append(("C204", "rules", "VIP", None, AT, "refund", None))
    rows.append(("C205", "lifecycle", "at risk", "at risk", AT, "time", "not a move"))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_counts_per_segment_by_cause() -> None:
    table = changes_summary(_log()).set_index(["segment_kind", "segment"])
    at_risk = table.loc[("lifecycle", "at risk")]
    assert (at_risk["entered"], at_risk["left"], at_risk["net"]) == (6, 2, 4)
    assert at_risk["entered_by_cause"] == {"time": 5, "refit": 1}
    assert at_risk["left_by_cause"] == {"order": 2}
    active = table.loc[("lifecycle", "active")]
    assert (active["entered"], active["left"], active["net"]) == (2, 6, -4)
    assert table.loc[("lifecycle", "new"), "entered"] == 1 and table.loc[("lifecycle", "new"), "left"] == 0
    assert table.loc[("rules", "VIP"), "left_by_cause"] == {"refund": 1}
    assert table.loc[("rfm", "Champions"), "left"] == 1 and table.loc[("rfm", "Loyal Customers"), "entered"] == 1
    assert len(table) == 6  # C205 did not move
    assert int(table["entered"].sum()) == 10 and int(table["left"].sum()) == 10


def test_examples_are_entries_first_with_their_reasons() -> None:
    table = changes_summary(_log(), examples=3).set_index(["segment_kind", "segment"])
    ex = table.loc[("lifecycle", "at risk"), "examples"]
    assert [e["customer_id"] for e in ex] == ["C100", "C101", "C102"]
    assert ex[0]["reason"] == ("no order in 74 days, usually every 21 days (at risk after 42 days); "
                               "P(alive) 0.50 (below 0.70; was 0.80)")
    left = table.loc[("rfm", "Champions"), "examples"]
    assert left == [{"customer_id": "C100", "transition": "left",
                     "reason": "left for Loyal Customers: R fell from 5 to 4: 12 days since the last order "
                               "(R 5 needs 10 days or fewer)"}]
    assert table.loc[("rules", "VIP"), "examples"] == [{"customer_id": "C204", "transition": "left", "reason": "left"}]
    assert all(len(e) == 0 for e in changes_summary(_log(), examples=0)["examples"])
    with pytest.raises(ValueError, match="examples"):
        changes_summary(_log(), examples=-1)


def test_rows_are_grouped_by_kind_biggest_moves_first() -> None:
    table = changes_summary(_log())
    assert list(zip(table["segment_kind"], table["segment"])) == [
        ("rfm", "Champions"), ("rfm", "Loyal Customers"),
        ("lifecycle", "active"), ("lifecycle", "at risk"), ("lifecycle", "new"), ("rules", "VIP")]


def test_summary_lines_say_what_changed() -> None:
    lines = summary_lines(_log())
    assert lines[0] == ("11 segment changes for 10 customers: 5 with the passing of time, 3 after an order, "
                        "2 from a refit of the thresholds, 1 after a refund.")
    assert lines[1] == ("Active (lifecycle): 2 entered, 6 left (net -4; 1 move from a refit of the thresholds), "
                        "e.g. C200: ordered again after 40 days")
    assert lines[2] == ("At Risk (lifecycle): 6 entered, 2 left (net +4; 1 move from a refit of the thresholds), "
                        "e.g. C100: no order in 74 days, usually every 21 days (at risk after 42 days); "
                        "P(alive) 0.50 (below 0.70; was 0.80)")
    assert "Champions (RFM): 0 entered, 1 left (net -1; 1 move from a refit of the thresholds)" in lines[3]
    assert lines[-1] == "VIP (rule segment): 0 entered, 1 left (net -1), e.g. C204: left"
    assert len(lines) == 7


def test_summary_lines_limit_and_value_at_stake() -> None:
    log = _log()
    log["clv"] = [120.0, 80.0, 300.0, 50.0, 450.0, 10.0, 20.0, 1000.0, 15.0, 5.0, 0.0, 0.0]
    lines = summary_lines(log, currency="GBP", limit=2)
    assert lines[2].startswith("At Risk (lifecycle): 6 entered (£2,000 predicted value), 2 left")
    assert lines[1].startswith("Active (lifecycle): 2 entered (£30.00 predicted value), 6 left")
    assert lines[-1] == "… and 4 more segments with changes."
    assert len(lines) == 4


def test_nothing_changed() -> None:
    assert summary_lines(_log().iloc[-1:]) == ["No segment changes since last time."]
    assert summary_lines(pd.DataFrame(columns=COLUMNS)) == ["No segment changes since last time."]
    assert changes_summary(pd.DataFrame(columns=COLUMNS)).empty
    with pytest.raises(SchemaError, match="to_segment"):
        changes_summary(_log().drop(columns="to_segment"))
