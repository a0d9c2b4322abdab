"""The HTML report opened in real headless Chromium: no console errors, no network, data in every chart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHARTS = ["chart-concentration", "chart-clv", "chart-palive", "chart-rfm", "chart-lifecycle", "chart-quadrant",
          "chart-tracking", "chart-holdout"]


@pytest.mark.slow
def test_report_renders_offline_with_data_in_every_chart(browser, demo_report, tmp_path: Path) -> None:
    path, pf = demo_report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 8", timeout=30_000)
    charts = CHARTS + (["chart-clusters"] if pf.clusters is not None else [])
    for chart in charts:
        points = page.evaluate(
            """id => { const el = document.getElementById(id); if (!el || !el._fullData) return -1;
                 // _fullData holds the decoded arrays plotly actually drew (data may hold base64 blobs)
                 return el._fullData.reduce((n, t) => n + ((t.x && t.x.length) || (t.z && t.z.length) ||
                   (t.node && t.node.label && t.node.label.length) || 0), 0); }""", chart)
        assert points > 0, f"{chart} has no data"
    assert errors == []
    assert all(u.startswith(("file://", "data:", "blob:")) for u in requests), [u for u in requests if "file://" not in u]
    text = page.inner_text("#summary")
    assert "customers bought from you" in text and "best 20%" in text
    shots = Path(os.environ.get("CLIENTFOLIO_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    for section in page.query_selector_all("section"):
        section.screenshot(path=str(shots / f"{section.get_attribute('id')}.png"))
    page.close()
