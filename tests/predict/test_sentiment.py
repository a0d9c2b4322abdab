"""Sentiment: English-only scoring, non-English texts counted as not scored, signals, themes, demo numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.datasets import load_demo_shop
from clientfolio.predict import sentiment as s
from clientfolio.segments.rules import RuleSet


def _events(rows: list[tuple[str, str, str, dict]]) -> pd.DataFrame:
    return pd.DataFrame([{"customer_id": c, "ts": ts, "type": t, "properties": json.dumps(p)} for c, ts, t, p in rows])


@pytest.fixture(scope="module")
def demo_events() -> pd.DataFrame:
    return load_demo_shop()["events"]


def test_non_english_texts_are_not_scored_never_neutral() -> None:
    texts = ["Lovely staff and a perfect loaf.", "Das Brot war sehr gut, aber der Kaffee war kalt.",
             "Le pain était très bon mais le café était froid.", "パンはとても美味しかった", "", "Terrible service."]
    out = s.score_texts(texts)
    assert out["scored"].tolist() == [True, False, False, False, False, True]
    assert out.loc[~out["scored"], "sentiment"].isna().all()  # not 0.0: a mean must not count them as neutral
    assert (out.loc[~out["scored"], "language"] == "not scored").all()
    assert out.loc[0, "sentiment"] > 0.05 and out.loc[5, "sentiment"] < -0.05
    # VADER on its own would call the German praise strongly negative: the check is what prevents it
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    assert SentimentIntensityAnalyzer().polarity_scores(texts[1])["compound"] < -0.05


def test_signals_use_only_texts_up_to_as_of_and_count_not_scored() -> None:
    ev = _events([
        ("A", "2024-01-01T10:00:00Z", "review", {"rating": 5, "text": "Wonderful bread, lovely staff."}),
        ("A", "2024-05-20T10:00:00Z", "review", {"rating": 1, "text": "Awful: the cake was stale and the staff rude."}),
        ("A", "2024-06-20T10:00:00Z", "review", {"rating": 5, "text": "Great again!"}),  # after as_of
        ("B", "2024-05-25T10:00:00Z", "review", {"rating": 4, "text": "Das Brot war sehr gut und frisch."}),
        ("B", "2024-05-26T10:00:00Z", "support_ticket", {"topic": "wrong_order"}),
        ("C", "2024-01-02T10:00:00Z", "support_ticket", {"topic": "wrong_order"}),  # complaint long ago
        ("D", "2024-05-30T10:00:00Z", "page_view", {"path": "/"}),
    ])
    sig = s.customer_signals(ev, "2024-06-01")
    assert sig.loc["A", "texts"] == 2 and sig.loc["A", "negative_texts_90d"] == 1
    assert sig.loc["A", "last_sentiment"] < -0.05  # the May complaint, not the June praise after as_of
    assert sig.loc["A", "last_sentiment"] < sig.loc["A", "mean_sentiment"] < 0.5
    assert sig.loc["B", "texts_not_scored"] == 1 and np.isnan(sig.loc["B", "mean_sentiment"])
    assert sig.loc["B", "open_complaints"] == 1 and sig.loc["C", "open_complaints"] == 0  # 30-day rule, no status
    assert "D" not in sig.index
    assert sig.attrs["languages"] == ["en"] and "English" in sig.attrs["note"] and "30 days" in sig.attrs["note"]


def test_open_complaints_follow_a_status_when_tickets_have_one() -> None:
    ev = _events([("A", "2023-01-01T10:00:00Z", "support_ticket", {"topic": "late_delivery", "status": "open"}),
                  ("B", "2024-05-30T10:00:00Z", "support_ticket", {"topic": "late_delivery", "status": "resolved"})])
    sig = s.customer_signals(ev, "2024-06-01")
    assert sig.loc["A", "open_complaints"] == 1 and sig.loc["B", "open_complaints"] == 0


def test_demo_scores_agree_with_star_ratings(demo_events: pd.DataFrame) -> None:
    texts = s.scored_texts(demo_events)
    a = s.rating_agreement(texts)
    assert a["n"] >= 300
    assert a["spearman"] > 0.6 and a["low"] > 0.5  # measured 0.87 (95% interval 0.84 to 0.90)
    by_star = texts.groupby("rating")["sentiment"].mean()
    assert by_star.is_monotonic_increasing or by_star.loc[5] > by_star.loc[3] > by_star.loc[1]


def test_signals_feed_rule_segments(demo_events: pd.DataFrame) -> None:
    customers = load_demo_shop()["customers"][["customer_id", "region"]]
    sig = s.customer_signals(demo_events, "2024-12-31")
    frame = s.with_signals(customers, sig)
    assert len(frame) == len(customers) and frame["negative_texts_90d"].notna().all()
    rules = RuleSet.from_dict({"segments": [{"name": "Unhappy lately", "when": {"any": [
        {"field": "negative_texts_90d", "gte": 1}, {"field": "open_complaints", "gte": 1}]}}]})
    members = rules.evaluate(frame[["customer_id", "negative_texts_90d", "open_complaints"]], as_of="2024-12-31")
    want = set(sig.index[(sig["negative_texts_90d"] >= 1) | (sig["open_complaints"] >= 1)])
    assert set(members["customer_id"]) == want and len(want) > 0


def test_themes_per_segment_are_topics_with_examples(demo_events: pd.DataFrame) -> None:
    texts = s.scored_texts(demo_events)
    seg = pd.Series({c: ("odd" if int(c[1:]) % 2 else "even") for c in texts["customer_id"] if c.startswith("C")})
    seg[texts.loc[texts["scored"], "customer_id"].iloc[0]] = "tiny"  # one writer: too few texts to say
    th = s.themes_by_segment(texts, seg, n_themes=5)
    words = {w for t in th.attrs["themes"] for w in t["words"]}
    assert words & {"cake", "damaged", "refund", "staff", "service", "wrong"}  # what they write about
    odd = th[th["segment"] == "odd"]
    assert abs(odd["share"].sum() - 1) < 1e-9 and (odd["example"].str.len() > 10).all()
    refund = th[th["theme"].str.contains("refund|wrong")]
    assert (refund["mean_sentiment"] < 0).all()  # the complaint theme reads negative
    assert th[th["segment"] == "tiny"]["theme"].tolist() == ["too few texts to say"]
    with pytest.raises(Exception, match="not fitted"):
        s.ThemeModel().transform(["x"])


@pytest.mark.slow
def test_cli_sentiment_and_retention_write_csv(tmp_path: Path) -> None:
    import clientfolio
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    db = tmp_path / "demo.duckdb"
    clientfolio.analyze([p["customers"], p["transactions"], p["events"]], store=str(db), clusters=False)
    out = tmp_path / "themes.csv"
    r = subprocess.run([sys.executable, "-m", "clientfolio.cli", "sentiment", "--store", str(db), "--by", "value_tier",
                        "--to", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "English" in r.stdout and "rank correlation" in r.stdout
    table = pd.read_csv(out)
    assert {"segment", "theme", "share", "example"} <= set(table.columns)
    r = subprocess.run([sys.executable, "-m", "clientfolio.cli", "retention-curves", "--store", str(db), "--to",
                        str(tmp_path / "ret.csv")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "95% interval" in r.stdout and "too recent" in r.stdout
    assert "retained_90d" in pd.read_csv(tmp_path / "ret.csv").columns
