"""The HTML report opened in real headless Chromium: no console errors, no network, data in every chart."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHARTS = ["chart-concentration", "chart-clv", "chart-palive", "chart-rfm", "chart-lifecycle", "chart-quadrant",
          "chart-tracking", "chart-holdout"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must test the report in Chromium: install Debian's chromium (bash .ci/run does)")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> tuple[Path, object]:
    import clientfolio
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    pf = clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]])
    out = tmp_path_factory.mktemp("report") / "report.html"
    pf.report(out)
    return out, pf


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
