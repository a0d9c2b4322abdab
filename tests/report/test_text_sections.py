"""Report sections for retention and sentiment: escaped names, intervals labelled, thin groups said plainly."""

from __future__ import annotations

import json

import pandas as pd

from clientfolio.predict import retention as r
from clientfolio.predict import sentiment as s
from clientfolio.report import retention as rr
from clientfolio.report import sentiment as sr

EVIL = "<script>alert(1)</script>"


def test_retention_section_escapes_and_labels_intervals() -> None:
    rows = [(f"c{i}", "2024-01-05") for i in range(40)] + [(f"c{i}", "2024-02-01") for i in range(0, 40, 2)]
    rows += [("x1", "2024-03-10")]
    tx = pd.DataFrame({"customer_id": [c for c, _ in rows], "ts": pd.to_datetime([d for _, d in rows], utc=True),
                       "amount": 5.0})
    seg = pd.Series({f"c{i}": EVIL for i in range(40)} | {"x1": "tiny"})
    html = rr.section(r.retention(tx, "2024-12-31", segments=seg, by="segment", lapse_days=60))
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "pointwise 95% interval" in html and "too few customers (1)" in html
    assert "class='chart'" in html


def test_sentiment_section_states_languages_and_escapes_texts() -> None:
    good = ["Lovely staff and a perfect loaf, worth every penny.", "The cake was damaged when I collected it.",
            "Friendly service and great coffee.", "My order was wrong and the refund took days."]
    rows = [{"customer_id": f"c{i}", "ts": f"2024-0{1 + i % 9}-02T10:00:00Z", "type": "review",
             "properties": json.dumps({"rating": [5, 2, 4, 1][i % 4], "text": good[i % 4] + (EVIL if i == 0 else "")})}
            for i in range(40)]
    rows.append({"customer_id": "d", "ts": "2024-03-01T10:00:00Z", "type": "review",
                 "properties": json.dumps({"rating": 5, "text": "Das Brot war sehr gut und die Bedienung freundlich."})})
    texts = s.scored_texts(pd.DataFrame(rows))
    themes = s.themes_by_segment(texts, pd.Series({f"c{i}": "A" for i in range(40)}), n_themes=3, min_texts=5)
    html = sr.section(texts, themes)
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "English texts only" in html and "1 not scored" in html
    assert "rank correlation" in html and "sentiment-themes" in html
