"""The self-contained HTML report: plotly.js embedded once, no network requests, readable offline."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from clientfolio.core.money import format_money
from clientfolio.core.notes import audience_of
from clientfolio.report import charts
from clientfolio.segments.rfm import DEFAULT_GRID

# Fluid from a 390 px phone up: nothing has a fixed width, wide tables scroll inside their own box,
# charts take their container's width (plotly's responsive mode).
CSS = """
*,*::before,*::after{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222;
overflow-wrap:break-word}
header{background:#2f6f8f;color:#fff;padding:28px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;opacity:.9}main{max-width:1180px;margin:0 auto;padding:24px 32px 60px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:20px 24px;margin:18px 0;
min-width:0}
h2{font-size:20px;margin:0 0 12px;color:#2f6f8f}.cards{display:flex;flex-wrap:wrap;gap:14px;margin:14px 0}
.card{flex:1 1 170px;background:#f0f5f8;border-radius:8px;padding:14px 16px}.card b{display:block;font-size:24px}
.card span{font-size:13px;color:#555}ul.summary li{margin:6px 0;font-size:16px;line-height:1.45}
ul{padding-left:22px}.table-wrap{overflow-x:auto;max-width:100%;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:13.5px}th,td{padding:6px 8px;text-align:left;
border-bottom:1px solid #e5e7eb;vertical-align:top}th{background:#f0f5f8}td.num,th.num{text-align:right;
white-space:nowrap}td.text{min-width:16em}
.chart{width:100%;min-width:0;margin:4px 0 10px}
.persona{border-left:4px solid #81b29a;padding:8px 14px;margin:10px 0;background:#f7faf8}.persona b{font-size:15px}
ul.changes>li{margin:10px 0;line-height:1.4}ul.examples{margin:4px 0 0;padding-left:18px;color:#444;font-size:13px}ul.examples li{margin:3px 0;overflow-wrap:anywhere}
.level-good{color:#2e7d32}.level-warn{color:#b26a00}.level-problem{color:#c62828}.muted{color:#666;font-size:13px}
ol.plan>li{margin:8px 0;line-height:1.45}details.kind{margin:6px 0}details.kind>summary{cursor:pointer;font-weight:600}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}@media(max-width:900px){.grid2{grid-template-columns:1fr}}
nav{font-size:14px;margin-top:10px;display:flex;flex-wrap:wrap;gap:4px 14px}nav a{color:#fff}
details.method>summary{cursor:pointer;font-size:20px;font-weight:600;color:#2f6f8f}
details.method[open]>summary{margin-bottom:12px}details.method h3{font-size:16px}
@media(max-width:600px){header{padding:18px 16px}header h1{font-size:22px}main{padding:8px 8px 40px}
section{padding:14px 12px;margin:12px 0}.card{flex:1 1 130px;padding:10px 12px}.card b{font-size:20px}
ul.summary li{font-size:15px}}
"""


def _esc(v: object) -> str:
    return html.escape(str(v))


def _table(df: pd.DataFrame, money_cols: tuple[str, ...] = (), pct_cols: tuple[str, ...] = (), money: str = "",
           max_rows: int = 50) -> str:
    if df is None or df.empty:
        return "<p class='muted'>Nothing to show.</p>"
    head = "".join(f"<th class='{'num' if pd.api.types.is_numeric_dtype(df[c]) else ''}'>{_esc(c.replace('_', ' '))}</th>"
                   for c in df.columns)
    rows = []
    for _, r in df.head(max_rows).iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if c in money_cols and pd.notna(v):
                cells.append(f"<td class='num money'>{_esc(format_money(v, money, 2))}</td>")
            elif c in pct_cols and pd.notna(v):
                cells.append(f"<td class='num'>{v:.0%}</td>")
            elif isinstance(v, (bool, np.bool_)):
                cells.append(f"<td>{'yes' if v else 'no'}</td>")
            elif isinstance(v, float):
                cells.append(f"<td class='num'>{'' if pd.isna(v) else f'{v:,.2f}'}</td>")
            elif isinstance(v, (int,)) and not isinstance(v, bool):
                cells.append(f"<td class='num'>{v:,}</td>")
            elif isinstance(v, str) and len(v) > 60:
                cells.append(f"<td class='text'>{_esc(v)}</td>")
            else:
                cells.append(f"<td>{'' if v is None or (isinstance(v, float) and pd.isna(v)) else _esc(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='muted'>{len(df) - max_rows:,} more rows in the customers file.</p>" if len(df) > max_rows else ""
    return (f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"</div>{more}")


def _fig(fig, div_id: str) -> str:
    return "<div class='chart'>" + pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                                               config={"displaylogo": False, "responsive": True}) + "</div>"


def _revenue(p) -> tuple[float, float]:  # noqa: ANN001 - a Portfolio
    """(revenue in the store, of which from guest orders): the same total the data check-up states."""
    c = p.customers
    metrics = getattr(p.audit, "metrics", {}) or {}
    if metrics.get("revenue") is None:
        return float(c["revenue"].sum()), 0.0
    return float(metrics["revenue"]), float(metrics.get("guest_revenue") or 0.0)


def _not_estimated(p) -> str:  # noqa: ANN001 - a Portfolio
    return (f"<p><b>Not estimated.</b> {_esc(p.support.reason[:1].upper() + p.support.reason[1:])}. Below that, "
            "forecasts of future value, of whether a customer is still active and of their next purchases swing "
            "so widely that they would mislead; this section shows what the history itself says.</p>")


def _rfm_new_note(c: pd.DataFrame) -> str:
    """Why the grid's "New Customers" and the lifecycle's "new" differ, with both counts."""
    if not {"R", "FM", "lifecycle"} <= set(c.columns):
        return ""
    grid_new = int(((c["R"] == 5) & (c["FM"] == 1)).sum())
    life_new = int((c["lifecycle"] == "new").sum())
    one_time = c[(c["frequency"] == 0) & c["rhythm_days"].notna()] if "rhythm_days" in c else c.iloc[:0]
    window = f" ({float(one_time['rhythm_days'].iloc[0]):,.0f} days)" if len(one_time) else ""
    return (f"<p class='muted'>\u201cNew Customers\u201d in the grid ({grid_new:,}) are customers in the most recent "
            "fifth by last purchase (R 5) with the lowest frequency-and-spend score (FM 1). The lifecycle\u2019s "
            f"\u201cnew\u201d ({life_new:,}) are customers who have bought on one day only so far, within the "
            f"shop\u2019s return window{window}. They count different things, so the numbers differ.</p>")


CHANGE_KINDS = ("lifecycle", "value_tier", "rfm", "portfolio", "rules", "cluster", "frequency_tier")


def _changes_section(p) -> str:  # noqa: ANN001 - a Portfolio
    """Entries and exits per segment since the previous analysis, with example customers and why they moved."""
    from clientfolio.live.kinds import kind_label, segment_label
    from clientfolio.live.summary import changes_summary

    ch = p.changes
    if ch is None or ch.empty:
        return "<p>No customer changed segment since the previous analysis.</p>"
    causes = ch["cause"].value_counts()
    words = {"behaviour": "their own orders or activity", "time": "time passing without an order",
             "refit": "this analysis re-estimating the lines between segments"}
    intro = (f"<p>{len(ch):,} segment changes for {ch['customer_id'].nunique():,} customers since "
             f"{ch['changed_at'].min():%d %b %Y}: " + ", ".join(f"{n:,} from {words.get(c, c)}"
                                                                for c, n in causes.items()) + ".</p>")
    s = changes_summary(ch, examples=2)
    s = s[s["segment_kind"].isin(CHANGE_KINDS)].copy()
    s["moved"] = s["entered"] + s["left"]
    s = s.sort_values("moved", ascending=False).head(15)
    items = []
    for r in s.itertuples():
        examples = "".join(f"<li><b>{_esc(e.get('customer_id'))}</b>: {_esc(e.get('reason'))}</li>"
                           for e in (r.examples or [])[:2])
        items.append(f"<li><b>{_esc(kind_label(r.segment_kind))} · {_esc(segment_label(r.segment_kind, r.segment))}"
                     f"</b>: {int(r.entered):,} entered, {int(r.left):,} left (net {int(r.net):+,})"
                     f"<ul class='examples'>{examples}</ul></li>")
    return (intro + f"<ul class='changes'>{''.join(items)}</ul>"
            + "<p class='muted'>Every change, with its reason: <code>clientfolio changes</code>; one customer's: "
              "<code>clientfolio changes --customer ID</code>.</p>")


def render(p) -> str:  # noqa: ANN001 - a Portfolio
    """The report as one HTML string."""
    c = p.customers
    m = p.currency
    sections: list[tuple[str, str, str]] = []  # (id, title, body)
    n_customers = int((c["orders"] > 0).sum())
    stages = c["lifecycle"].value_counts()
    active = int(stages.get("active", 0) + stages.get("new", 0) + stages.get("reactivated", 0))
    forecasts = p.support.forecasts
    revenue, guest = _revenue(p)
    kpis = p.kpis if forecasts else p.kpis.drop(columns=[k for k in p.kpis if "clv" in k or "p_alive" in k])
    cards = [
        (f"{n_customers:,}", "customers with purchases"),
        (format_money(revenue, m, 0), "revenue to date" + (" (with guest orders)" if guest else "")),
        (format_money(c["clv"].sum(), m, 0) if forecasts else "not estimated",
         f"expected value, next {p.settings.get('horizon_months', 12)} months"
         + ("" if forecasts else ": too little history")),
        (f"{active / max(n_customers, 1):.0%}", "active, new or reactivated"),
        (f"{p.top20_share:.0%}" if pd.notna(p.top20_share) else "–", "of revenue from the top 20%"),
    ]
    card_html = "".join(f"<div class='card'><b>{_esc(a)}</b><span>{_esc(b)}</span></div>" for a, b in cards)
    summary = "".join(f"<li>{_esc(line)}</li>" for line in p.headline())
    unit = f"<p class='muted currency-note'>{_esc(p.currency_note())}</p>" if p.currency_note() else ""
    sections.append(("summary", "Executive summary",
                     f"<div class='cards'>{card_html}</div>{unit}<ul class='summary'>{summary}</ul>"))
    method_parts: list[str] = []  # technical detail, shown in the collapsed method notes at the end
    if p.audit is not None:
        items = "".join(f"<li class='level-{f.level}'>{_esc(f.text)}</li>" for f in p.audit.findings)
        sections.append(("data", "Your data, checked", f"<ul>{items}</ul>"))
    if p.concentration is not None:
        sections.append(("concentration", "Revenue concentration",
                         _fig(charts.concentration(p.concentration, p.top20_share), "chart-concentration")))
    if forecasts:
        sections.append(("value", "Customer value", _fig(charts.clv_distribution(c, m), "chart-clv")
                         + _table(kpis[kpis["segment_kind"] == "value_tier"][
                             [k for k in ("segment", "customers", "share", "revenue", "mean_clv", "mean_p_alive")
                              if k in kpis]], money_cols=("revenue", "mean_clv"), pct_cols=("share", "mean_p_alive"),
                             money=m)))
    else:
        hist = kpis[kpis["segment_kind"] == "historical_value_tier"]
        sections.append(("value", "Customer value: what the history shows", _not_estimated(p)
                         + _table(hist[[k for k in ("segment", "customers", "share", "revenue", "aov")
                                        if k in hist]], money_cols=("revenue", "aov"), pct_cols=("share",), money=m)))
    if not forecasts:
        sections.append(("alive", "Who is slipping away", "<p class='muted'>Whether each customer is still active "
                         "cannot be estimated from this history; the lifecycle stages use the time since each "
                         "customer's last purchase against their own purchase rhythm (or the shop's return window) "
                         "only.</p>"))
    elif c["p_alive"].notna().any():
        sections.append(("alive", "Who is slipping away", _fig(charts.palive_matrix(c), "chart-palive")))
    else:
        sections.append(("alive", "Who is slipping away", "<p class='muted'>The history is too short for a purchase "
                         "model, so the probability that each customer is still active is unknown; the lifecycle "
                         "stages below use each customer's purchase rhythm only.</p>"))
    sections.append(("rfm", "RFM segments", _fig(charts.rfm_grid(c, DEFAULT_GRID), "chart-rfm") + _rfm_new_note(c)
                     + _table(kpis[kpis["segment_kind"] == "rfm"].sort_values("customers", ascending=False)[
                         [k for k in ("segment", "customers", "share", "revenue", "aov", "mean_clv", "growth")
                          if k in kpis]], money_cols=("revenue", "aov", "mean_clv"), pct_cols=("share", "growth"),
                         money=m)))
    if p.previous_segments is not None:
        flow = charts.lifecycle_flow(p.previous_segments, p.segments, f"{p.previous_as_of:%d %b %Y}",
                                     f"{p.as_of:%d %b %Y}")
        life = kpis[kpis["segment_kind"] == "lifecycle"]
        body = _fig(flow, "chart-lifecycle") + _table(
            life[[k for k in ("segment", "customers", "share", "growth", "retention", "mean_clv", "revenue")
                  if k in life]], money_cols=("mean_clv", "revenue"), pct_cols=("share", "growth", "retention"), money=m)
        if p.forecast is not None:
            days = (p.as_of - p.previous_as_of).days
            f = p.forecast.round(0).astype(int)
            f.columns = ["now"] + [f"in {days * k} days" for k in range(1, len(f.columns))]
            body += (f"<h3>Where this is heading</h3><p class='muted'>If customers keep moving between stages as they "
                     f"did over the last {days} days, and no new customers arrive (a Markov chain on the flows above):</p>"
                     + _table(f.rename_axis("stage").reset_index()))
        sections.append(("lifecycle", "Lifecycle: how customers moved", body))
    if getattr(p, "changes", None) is not None:
        sections.append(("changes", "What changed since last time", _changes_section(p)))
    retention = getattr(p, "insight", {}).get("retention")
    if isinstance(retention, list) and any(r.curves for r in retention):  # a tiny shop has no curve to show
        from clientfolio.report import retention as retention_report

        sections.append(("retention", "How long customers keep buying", "".join(
            (f"<h3>By {_esc('acquisition cohort' if r.by == 'cohort' else r.by.replace('_', ' '))}</h3>"
             if len(retention) > 1 else "") + retention_report.section(r) for r in retention)))
    quad_tbl = kpis[kpis["segment_kind"] == "portfolio"]
    if not forecasts:
        sections.append(("portfolio", "Strategic portfolio", "<p><b>Not estimated.</b> The quadrants weigh "
                         "current value against predicted value, and this history cannot support a prediction (see "
                         "<a href='#value'>Customer value</a>).</p>"))
    else:
        sections.append(("portfolio", "Strategic portfolio",
                         _fig(charts.quadrant(c, p.quadrant_splits, m), "chart-quadrant")
                         + "<p class='muted'>Stars: high value now and later. Develop: small now, high potential. "
                           "Maintain: valuable now, fading: protect. Review: low now and later.</p>"
                         + _table(quad_tbl[[k for k in ("segment", "customers", "share", "revenue", "mean_clv")
                                            if k in quad_tbl]], money_cols=("revenue", "mean_clv"), pct_cols=("share",),
                                  money=m)))
    if p.clusters is not None:
        personas = p.clusters.personas if hasattr(p.clusters, "personas") else None
        cards_html = ""
        if personas is not None and len(personas):
            cards_html = "".join(f"<div class='persona'><b>{_esc(r['segment'])}</b><br>{_esc(r['description'])}</div>"
                                 for _, r in personas.iterrows())
        sizes = p.clusters.membership["segment"].value_counts().rename_axis("name").reset_index(name="size")
        # How the number of groups was chosen (a score, the k tried) is method detail.
        if getattr(p.clusters, "explanation", ""):
            method_parts.append(f"<h3>Customer groups</h3><p>{_esc(p.clusters.explanation)}</p>")
        intro = (f"<p>{len(sizes)} group{'s' if len(sizes) != 1 else ''} of customers who buy in similar ways "
                 "(what, how much, how often, when):</p>")
        sections.append(("clusters", "Customer groups found in your data",
                         intro + cards_html + _fig(charts.cluster_sizes(sizes), "chart-clusters")))
    v = p.validation
    if v.get("comparison") is not None:
        comp = v["comparison"]
        body = _fig(charts.tracking_chart(v["tracking"], v["calibration_end"], comp.best), "chart-tracking")
        body += _fig(charts.holdout_buckets(v["by_bucket"], comp.best), "chart-holdout")
        body += f"<p>{_esc(comp.recommendation)}</p>"
        if v.get("groups"):  # separate models per customer group, checked on the same holdout period
            body += f"<p>{_esc(v['groups']['sentence'])}</p>"
        # The fit statistics (log-likelihood, BIC, errors) are for whoever checks the method.
        method_parts.append("<h3>Purchase models compared on a holdout period</h3>" + _table(
            comp.table.drop(columns=["note", "converged"], errors="ignore")))
        sections.append(("validation", "Can these predictions be trusted?", body))
    if getattr(p, "predictions", None) is not None:
        from clientfolio.report import predictions

        sections.append(("predictions", "Predictions: who leaves, who buys again",
                         predictions.section(p.predictions, c, m)))
    texts = getattr(p, "insight", {}).get("sentiment")
    if isinstance(texts, tuple):
        from clientfolio.report import sentiment as sentiment_report

        sample = f"<p class='muted'>{_esc(texts[2])}</p>" if texts[2] else ""
        sections.append(("sentiment", "What customers write", sentiment_report.section(texts[0], texts[1]) + sample))
    if p.clv_cac is not None and len(p.clv_cac) and not forecasts:
        sections.append(("acquisition", "Acquisition: CLV to acquisition cost", "<p><b>Not estimated.</b> The ratio "
                         "needs a forecast of what customers will be worth, which this history cannot support (see "
                         "<a href='#value'>Customer value</a>).</p>"))
    elif p.clv_cac is not None and len(p.clv_cac):
        sections.append(("acquisition", "Acquisition: CLV to acquisition cost", _table(
            p.clv_cac, money_cols=("mean_clv", "cac"), money=m)
            + (("<h3>By segment</h3>" + _table(p.clv_cac_by_segment[p.clv_cac_by_segment["segment_kind"].isin(
                ["portfolio", "value_tier"])], money_cols=("mean_clv", "mean_cac"), money=m))
               if p.clv_cac_by_segment is not None and len(p.clv_cac_by_segment) else "")
            + "<p class='muted'>A ratio of 3:1 or more is commonly called healthy (SMB strategy literature).</p>"))
    if p.divestment is not None:
        d = p.divestment
        body = _table(d.customers[[k for k in ("customer_id", "revenue", "profit", "evidence") if k in d.customers]],
                      money_cols=("revenue", "profit"), money=m, max_rows=25)
        if len(d.segments):
            body += "<h3>Segments that lose money</h3>" + _table(d.segments, money_cols=("profit", "revenue"), money=m)
        sections.append(("divestment", "Customers who cost more than they bring", body))
    if getattr(p, "actions", None) is not None:
        from clientfolio.report import actions

        sections.append(("actions", "What to do", actions.what_to_do(p)))
        sections.append(("fairness", "Fairness, best customers, where to spend", actions.fairness_and_spend(p)))
    owner_notes = [n for n in p.notes if audience_of(n) == "owner"]
    method_notes = [n for n in p.notes if audience_of(n) == "method"]
    if owner_notes:
        sections.append(("notes", "Notes", "<ul>" + "".join(f"<li>{_esc(n[:1].upper() + n[1:])}</li>"
                                                         for n in owner_notes) + "</ul>"))
    s = p.settings
    model_name = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "paretonbd": "Pareto/NBD"}.get(p.models.get("kind"), "")
    level = p.customers.attrs.get("interval", 0.8)
    total = s.get("clv_total_interval")
    if not forecasts:
        method = (f"<p class='muted'>No purchase model was fitted and nothing is forecast: {_esc(p.support.reason)} "
                  "(measured in simulations, see benchmarks/min_data.py). The customers file leaves the forecast "
                  "columns empty and says why in forecast_note.</p>")
    else:
        method = (f"<p class='muted'>CLV: discounted expected purchases (model: {_esc(model_name)}) × "
                  f"expected spend × margin over {s.get('horizon_months')} months at {s.get('discount_rate', 0):.0%} "
                  f"a year; values are {_esc(s.get('value_basis', ''))}. "
                  + (f"The range of the total in the summary is a {total['level']:.0%} range from "
                     f"{total['draws']:,} simulations of the model's own purchase process; it covers "
                     f"{_esc(total['covers'])}. " if total else "")
                  + f"Each customer's range in the customers file (clv_low to clv_high) covers at least {level:.0%} "
                    "of what they may be worth, from the same simulation: whole purchases (so \u201c0 to 1 "
                    "purchase\u201d where buying nothing is most likely) valued at their expected spend; a customer "
                    "whose purchases are worth nothing has no range.</p>")
    if method_notes:
        method_parts.insert(0, "<ul>" + "".join(f"<li>{_esc(n[:1].upper() + n[1:])}</li>" for n in method_notes)
                            + "</ul>")
    nav = "".join(f"<a href='#{sid}'>{_esc(title)}</a>" for sid, title, _ in sections)
    nav += "<a href='#method'>Method notes</a>"
    body = "".join(f"<section id='{sid}'><h2>{_esc(title)}</h2>{content}</section>" for sid, title, content in sections)
    # Last, collapsed: how the numbers were made, for whoever checks them (the owner need not read it).
    body += (f"<section id='method'><details class='method'><summary>Method notes</summary>{method}"
             f"{''.join(method_parts)}</details></section>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>clientfolio report</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style>"
            f"<script>{get_plotlyjs()}</script></head><body><header><h1>Your customer portfolio</h1>"
            f"<p>As of {p.as_of:%d %B %Y} · {n_customers:,} customers · made by clientfolio</p><nav>{nav}</nav>"
            f"</header><main>{body}</main></body></html>")


def write_report(p, path: Path) -> Path:  # noqa: ANN001
    """Write the report atomically (a half-written report never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(render(p), encoding="utf-8")
    tmp.replace(path)
    return path
