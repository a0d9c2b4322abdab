"""The report in real Chromium at a phone's width and a laptop's: it fits, nothing overlaps, it stays offline.

At 390 px the page was 647 px wide, and on two charts the axis title ran into the chart title.
"""

from __future__ import annotations

import re

import pytest

from tests.report.test_report_text import JARGON

WIDTHS = [390, 1280]
REPORTS = ["demo_report", "tiny_shop_report"]

# Boxes of each chart's title, axis titles, legend and plot area, read from the drawn SVG.
CHART_BOXES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(g => {
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
                      return r.width && r.height ? {l: r.left, t: r.top, r: r.right, b: r.bottom} : null; };
  const all = sel => [...g.querySelectorAll(sel)].map(box).filter(Boolean);
  return {id: g.id, chart: box(g), title: all('.g-gtitle text'), xtitle: all('.g-xtitle text, .g-x2title text'),
          ytitle: all('.g-ytitle text, .g-y2title text'), legend: all('.legend'), plot: all('.nsewdrag, g.sankey'),
          notes: all('.annotation')};
})"""

# The visible text outside the method notes, SVG text included (styles and scripts are not text).
OWNER_TEXT = """() => { const body = document.body.cloneNode(true);
  body.querySelectorAll('#method, script, style').forEach(e => e.remove()); return body.textContent; }"""


def _overlap(a: dict, b: dict) -> bool:
    return a["l"] < b["r"] - 1 and b["l"] < a["r"] - 1 and a["t"] < b["b"] - 1 and b["t"] < a["b"] - 1


def _open(browser, path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=30_000)
    page.wait_for_timeout(300)  # plotly's responsive resize after the first draw
    return page, requests


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("report", REPORTS)
def test_report_fits_the_screen_and_nothing_overlaps(browser, request, report: str, width: int) -> None:
    path, pf = request.getfixturevalue(report)
    page, requests = _open(browser, path, width)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        charts = page.evaluate(CHART_BOXES)
        assert len(charts) >= (5 if pf.support.forecasts else 2)  # without forecasts: the history's charts
        for c in charts:
            assert c["title"] and c["plot"], f"{c['id']}: no title or plot drawn"
            for name in ("title", "xtitle", "ytitle", "legend", "notes"):
                for box in c[name]:  # inside the chart: nothing cut off at the right edge
                    assert c["chart"]["l"] - 1 <= box["l"] and box["r"] <= c["chart"]["r"] + 1, (c["id"], name, box)
            pairs = [("title", "xtitle"), ("title", "ytitle"), ("title", "legend"), ("title", "plot"),
                     ("legend", "xtitle"), ("legend", "plot"), ("xtitle", "plot"), ("ytitle", "plot")]
            for a, b in pairs:
                for box_a in c[a]:
                    for box_b in c[b]:
                        assert not _overlap(box_a, box_b), f"{c['id']} at {width}px: {a} overlaps {b}"
        assert all(u.startswith(("file://", "data:", "blob:")) for u in requests), requests
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.parametrize("report", REPORTS)
def test_owner_view_has_no_jargon_and_money_has_its_currency(browser, request, report: str) -> None:
    path, pf = request.getfixturevalue(report)
    page, requests = _open(browser, path, 390)
    try:
        owner = page.evaluate(OWNER_TEXT)
        assert not JARGON.findall(owner), JARGON.findall(owner)
        assert page.is_visible("#method summary") and not page.is_visible("#method li")  # collapsed
        money = page.eval_on_selector_all("td.money", "els => els.map(e => e.textContent)")
        symbol = pf.currency.strip()
        assert symbol and money and all(re.match(rf"-?{re.escape(symbol)}\d", m) for m in money), money
        cards = page.eval_on_selector_all(".card b", "els => els.map(e => e.textContent)")
        # revenue to date, and the expected value where the data supports a forecast
        assert sum(c.startswith(symbol) for c in cards) == (2 if pf.support.forecasts else 1), cards
        assert pf.support.forecasts or "not estimated" in cards, cards
        page.click("#method summary")
        assert page.is_visible("#method li")
        assert all(u.startswith(("file://", "data:", "blob:")) for u in requests), requests
    finally:
        page.close()
