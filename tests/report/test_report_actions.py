"""The report's "What to do" and "Fairness, best customers, where to spend" sections on the demo shop."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import pytest

from clientfolio.core.money import format_money
from clientfolio.live.kinds import segment_label

HOSTILE_GROUP = "<script>window.__pwned=1</script>Night owls"
HOSTILE_REGION = "<img src=x onerror=\"window.__pwned=2\">Riverside"


def _section(page: str, sid: str) -> str:
    m = re.search(rf"<section id='{sid}'>(.*?)</section>", page, re.S)
    assert m, f"no section {sid}"
    return m.group(1)


def test_what_to_do_shows_the_plan_with_its_numbers(demo_report) -> None:
    path, pf = demo_report
    body = _section(path.read_text(encoding="utf-8"), "actions")
    plan, m = pf.actions, pf.currency
    assert "<h3>Contact these first</h3>" in body and "id=\"chart-value-at-stake\"" in body
    for r in plan.priority.head(8).itertuples():
        assert (f"<b>{html.escape(segment_label(r.segment_kind, r.segment))} (") in body
        assert f"{r.reachable:,} of {r.customers:,} reachable, {html.escape(format_money(r.value_at_stake, m))} " \
               "at stake" in body
    first = body.index(html.escape(plan.priority["segment"].iloc[0]))
    assert first < body.index(html.escape(plan.priority["segment"].iloc[1]))  # the order is the priority order
    d = plan.divestment
    assert f"{len(d):,} customers cost more to serve than they bring; together they lose " \
           f"{html.escape(format_money(plan.divestment_loss, m))}" in body
    for step in plan.divestment_plan.steps:
        assert f"<li>{html.escape(step)}</li>" in body
    assert "Segments without an action of their own" in body
    for name in plan.no_action["segment"]:
        assert html.escape(name) in body
    assert body.count("<details class='kind'>") == plan.segments["segment_kind"].nunique()


def test_fairness_profile_and_spend_show_real_numbers(demo_report) -> None:
    path, pf = demo_report
    body = _section(path.read_text(encoding="utf-8"), "fairness")
    fair, prof, advice = pf.insight["fairness"], pf.insight["profile"], pf.insight["advice"]
    assert not isinstance(fair, str) and not isinstance(prof, str) and not isinstance(advice, str)
    judged = fair.table[fair.table["status"] != "too small to judge"]
    assert f"{len(judged):,} comparisons" in body
    top = fair.disparities.reindex(fair.disparities["diff"].abs().sort_values(ascending=False).index).iloc[0]
    assert f"{top['rate']:.1%} of its {top['customers']:,} customers" in body
    assert f"{abs(top['diff']) * 100:.1f} points" in body and "with 95% confidence the true gap is between" in body
    t = prof.traits.iloc[0]
    assert f"{t['top_share']:.0%} ({t['top_share_low']:.0%}–{t['top_share_high']:.0%})" in body
    assert f"<td class='num'>{int(t['customers']):,}</td>" in body  # the sample size of the trait
    seg = advice.segments.iloc[0]
    assert html.escape(format_money(seg["value_per_response"], pf.currency, 2)) in body
    assert html.escape(advice.text.split(". ")[0]) in body


def _hostile(pf):  # noqa: ANN001, ANN202 - a Portfolio
    """The demo portfolio with a group name and a region that are HTML, and everything recomputed from them."""
    from clientfolio.actions.acquisition import ideal_customer_profile
    from clientfolio.actions.fairness import fairness_audit
    from clientfolio.actions.plan import plan_actions

    seg = pf.segments.copy()
    group = seg.loc[seg["segment_kind"] == "cluster", "segment"].iloc[0]
    seg.loc[(seg["segment_kind"] == "cluster") & (seg["segment"] == group), "segment"] = HOSTILE_GROUP
    customers = pf.customers.copy()
    customers.attrs = dict(pf.customers.attrs)
    customers.loc[customers["region"] == "Riverside", "region"] = HOSTILE_REGION
    p = dataclasses.replace(pf, segments=seg, customers=customers, insight={})
    p.actions = plan_actions(p, reach=pf.reach)
    p.insight = {"fairness": fairness_audit(p, service_levels=p.actions.service_levels()),
                 "profile": ideal_customer_profile(p, model=False), "advice": pf.insight["advice"]}
    return p


@pytest.mark.slow
def test_text_from_the_data_is_escaped(demo_report, tmp_path: Path, browser) -> None:
    _, pf = demo_report
    p = _hostile(pf)
    assert (p.actions.segments["segment"] == HOSTILE_GROUP).any()
    assert (p.insight["profile"].table["value"] == HOSTILE_REGION).any()
    assert (p.insight["fairness"].disparities["group"] == HOSTILE_REGION).any()
    out = p.report(tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    assert HOSTILE_GROUP not in page and HOSTILE_REGION not in page
    actions, fairness = _section(page, "actions"), _section(page, "fairness")
    assert html.escape(HOSTILE_GROUP) in actions
    assert html.escape(HOSTILE_REGION) in fairness
    tab = browser.new_page()
    tab.goto(out.resolve().as_uri())
    tab.wait_for_selector("#chart-value-at-stake .main-svg")
    assert tab.evaluate("window.__pwned === undefined")
    assert HOSTILE_GROUP in tab.inner_text("#actions")  # shown as the text it is
    tab.close()


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
def test_sections_render_in_chromium_without_errors(demo_report, browser, width: int) -> None:
    path, pf = demo_report
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#chart-value-at-stake .main-svg")
    bars = page.evaluate("""() => { const el = document.getElementById('chart-value-at-stake');
                              return el._fullData.map(t => t.x.length); }""")
    assert bars == [min(8, len(pf.actions.priority))] * 2  # reachable and out of reach, per segment
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
    for sid in ("actions", "fairness"):
        box = page.query_selector(f"#{sid}").bounding_box()
        assert box is not None and box["height"] > 200 and box["x"] + box["width"] <= width
    assert "Contact these first" in page.inner_text("#actions")
    assert "Where your best customers come from" in page.inner_text("#fairness")
    assert errors == []
    page.close()
