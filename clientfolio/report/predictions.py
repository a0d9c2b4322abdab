"""Report section "Predictions": churn risk and next order, each measured against BG/NBD and chosen openly.

Reads a :class:`~clientfolio.predict.evaluation.ShopPredictions` (or the sentence saying why there are
none); nothing is refitted here.  Shown always with the evidence: the evaluation table on the time
split, the choice and why, a calibration chart of both methods, what the boosted trees lean on, how
the horizon N was set, and the customers most at risk with their own reasons.  Customer ids and
reasons come from the data and are escaped.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from clientfolio.core.money import format_money
from clientfolio.report import charts
from clientfolio.report.html import _esc, _fig, _table

AT_RISK_ROWS = 15
GONE = ("lapsed", "churned")  # lifecycle stages whose customers have already left: not "about to"

# What each metric says, in the words the table prints beside it.
METRIC_WORDS = {
    "AUC": "how well it ranks those who left above those who stayed (0.5 = a coin toss, 1 = perfect)",
    "PR-AUC": "the same ranking judged on the customers who left (precision against recall)",
    "Brier": "how far the probabilities were from what happened (squared error, 0 = perfect)",
    "top-decile lift": "churn among the 10% it called riskiest, against churn among everyone",
    "MAE (days)": "days off on average, counting N when there was no order within N days",
}
FEATURE_WORDS = {
    "days_since_last": "days since the last order", "overdue": "days since the last order against the usual gap",
    "gap_median": "usual gap between orders", "gap_mean": "average gap between orders",
    "gap_last": "the last gap between orders", "gap_change": "how the gaps between orders changed",
    "gap_last_vs_usual": "the last gap against the usual one", "btyd_p_alive": "BG/NBD P(alive)",
    "btyd_p_none": "BG/NBD P(no order in the horizon)", "btyd_expected": "BG/NBD expected orders",
    "btyd_days_to_next": "BG/NBD expected days to the next order", "btyd_days_median": "BG/NBD median wait",
    "frequency": "repeat purchase days", "purchase_days": "purchase days", "orders": "orders", "recency":
    "days from the first to the last order", "T": "days since the first order", "aov": "average order value",
    "days_since_event": "days since the last e-mail, site or support event", "refunds": "refunds",
    "trend_90d": "order days in the last 90 days against the 90 before", "discount_line_share": "share of "
    "discounted lines", "discount_total": "discounts taken", "revenue_gross": "revenue", "categories":
    "categories bought",
}


def _feature(name: str) -> str:
    """A feature's name in plain words ("share_cake" -> "share of spend on cake")."""
    if name in FEATURE_WORDS:
        return FEATURE_WORDS[name]
    m = re.fullmatch(r"(days|revenue|orders)_(\d+)d", name)
    if m:
        what = {"days": "order days", "revenue": "revenue", "orders": "orders"}[m.group(1)]
        return f"{what} in the last {m.group(2)} days"
    for prefix, words in (("share_", "share of spend on "), ("channel_", "orders via "),
                          ("events_", "events: "), ("email_", "e-mail "), ("n_", "number of ")):
        if name.startswith(prefix):
            return words + name.removeprefix(prefix).replace("_", " ")
    return name.replace("_", " ")


def _num(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if v is not None and np.isfinite(v) else "not trained"


def _metric_table(comp: Any) -> str:
    """Model against baseline, one row per metric, the used one marked; interval coverage where there is one.

    What each metric says follows the table as a short list (a column of it would not fit a phone).
    """
    used = comp.model_name if comp.chosen == "model" else comp.baseline_name
    rows, words = [], []
    for m in comp.metrics:
        digits = 2 if "days" in m.name else 3
        # more digits where these would print two different values the same (and one side "better")
        while digits < 6 and m.model != m.baseline and _num(m.model, digits) == _num(m.baseline, digits):
            digits += 1
        trained = np.isfinite(m.model)
        rows.append({"metric": m.name, comp.model_name: _num(m.model, digits),
                     comp.baseline_name: _num(m.baseline, digits),
                     "better": (comp.model_name if m.model_wins else comp.baseline_name) if trained else ""})
        words.append((m.name, METRIC_WORDS.get(m.name, m.note)))
    cov = comp.details.get("interval_coverage")
    if cov is not None and np.isfinite(cov):
        level = str(comp.details.get("interval", "80%")).split()[0]
        name = f"{level} interval held the actual day"
        rows.append({"metric": name, comp.model_name: f"{cov:.0%}", comp.baseline_name: "no interval", "better": ""})
        words.append((name, f"the share of customers whose next order fell inside their interval; it should be "
                            f"close to {level}"))
    t = pd.DataFrame(rows).rename(columns={used: f"{used} (used)"})
    says = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in words if v)
    return _table(t) + (f"<ul class='muted'>{says}</ul>" if says else "")


def calibration_chart(comp: Any) -> go.Figure:
    """Mean predicted against observed churn per bin (equal numbers of customers), both methods, the diagonal."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line={"dash": "dot", "color": "#999"},
                             name="predicted = observed", hoverinfo="skip"))
    for key, name, colour in (("calibration", comp.model_name, charts.PALETTE[1]),
                              ("baseline_calibration", comp.baseline_name, charts.PALETTE[0])):
        bins = comp.details.get(key)
        if not bins:
            continue
        b = pd.DataFrame(bins)
        used = " (used)" if (key == "calibration") == (comp.chosen == "model") else ""
        fig.add_trace(go.Scatter(x=b["predicted"] * 100, y=b["observed"] * 100, mode="lines+markers",
                                 name=f"{name}{used}", line={"color": colour, "width": 2.5}, marker={"size": 8},
                                 cliponaxis=False,
                                 customdata=b["n"],
                                 hovertemplate=f"{_esc(name)}: predicted %{{x:.0f}}%, observed %{{y:.0f}}% "
                                               "(%{customdata:,} customers)<extra></extra>"))
    fig.update_xaxes(title="predicted risk (%), mean per group", range=[0, 100], dtick=20)
    fig.update_yaxes(title="share who did not order (%)", range=[0, 101], dtick=20)
    return charts._layout(fig, "Predicted against what happened", height=440)


def _horizon(pred: Any) -> str:
    n = pred.horizon_days
    given = pred.customers.attrs.get("horizon_given")
    if given:
        return f"<p>Churn means <b>no order in the next {n} days</b> (N = {n}, as asked).</p>"
    how = ("set from your shop's own rhythm: three returning customers in four usually come back within that many "
           "days (the 75th percentile of each returning customer's usual gap between purchase days, rounded up to "
           "whole weeks and kept within 14 to 182 days)")
    lead = f"N = {n} days was {how}" if given is not None else f"Unless it was set by hand, N = {n} days was {how}"
    return (f"<p>Churn means <b>no order in the next {n} days</b>. {lead}, so a customer counted as leaving has "
            "broken their normal pattern, not just paused.</p>")


def _split(comp: Any) -> str:
    start = pd.Timestamp(comp.cutoff)
    n = comp.horizon_days
    day = pd.Timedelta(days=n)
    judged = (f"the last {n} days ({start:%d %b %Y} to {start + day:%d %b %Y}), which it had not seen: "
              f"{comp.n_test:,} customers with an order by {start:%d %b %Y}")
    if comp.details.get("thin"):
        return (f"<p class='muted'>How this was measured: BG/NBD was fitted on the history up to {start:%d %b %Y} "
                f"and judged on {judged}. No machine-learning model was trained: {_esc(comp.details['thin'])}.</p>")
    return (f"<p class='muted'>How this was measured: the boosted trees learned from the history up to "
            f"{start - day:%d %b %Y} and what happened in the {n} days after; BG/NBD was fitted on the history up "
            f"to {start:%d %b %Y}. Both were then judged on {judged.replace('it had', 'neither had')} "
            f"({comp.n_train:,} in the learning window).</p>")


def _importance(comp: Any, unit: str) -> str:
    least = 0.0005 if unit == "AUC" else 0.05  # smaller than the printed digits: not worth a mention
    imp = [(f, v) for f, v in comp.details.get("importance", []) if v >= least][:5]
    if not imp:
        return ""
    if unit == "AUC":
        parts = [f"{_feature(f)} (AUC {-v:+.3f})" for f, v in imp]
        how = "how much worse they rank customers when that one feature is shuffled"
    else:
        parts = [f"{_feature(f)} (+{v:.1f} days)" for f, v in imp]
        how = "how many days further off they are when that one feature is shuffled"
    used = "" if comp.chosen == "model" else (" They are not used for this shop; this shows what they learned.")
    return (f"<p>What the boosted trees lean on most: {_esc('; '.join(parts))}.{used}</p>"
            f"<p class='muted'>Permutation importance on the last {comp.horizon_days} days: {how}.</p>")


def _base_rate(comp: Any) -> str:
    rate = comp.details.get("churn_rate")
    if rate is None or not np.isfinite(rate) or rate <= 0:
        return ""
    cap = f" (with so many leaving, lift cannot exceed {1 / rate:.2f})" if rate > 0.5 else ""
    return (f"<p class='muted'>{rate:.0%} of these customers placed no order in the {comp.horizon_days} days: "
            f"a lift of 1 means no better than picking at random{cap}.</p>")


def _next_words(days: float, low: float, high: float, n: int) -> str:
    if not np.isfinite(days):
        return ""
    if days >= n - 0.5:
        return f"not within {n} days"
    text = f"in about {max(1, round(days))} days"
    if np.isfinite(low) and np.isfinite(high):
        text += f" (80%: {max(0, math.floor(low))}–{math.ceil(high)})"
    return text


def at_risk_table(pred: Any, customers: pd.DataFrame | None = None, money: str = "",
                  rows: int = AT_RISK_ROWS) -> str:
    """Customers more likely than not to place no order in the next N days who have not already left, with reasons.

    With the portfolio's customers: those whose lifecycle stage is lapsed or churned, or who spent
    nothing in the last 12 months, are left out (they have gone already; the question is who is about
    to), and the rest are ranked by what is at stake: churn risk times that spend.  A "no order in N
    days" risk is near 1 for anyone who buys rarely, so ranking by risk alone would list the rarest
    buyers, not the customers worth a call.  Without the portfolio's customers: ranked by risk, leaving
    out risks of 99% or more (most of those have long gone).
    """
    t = pred.customers.copy()
    t["customer_id"] = t["customer_id"].astype(str)
    n = pred.horizon_days
    likely = t["churn_risk"] >= 0.5
    spend = None
    if customers is not None and "lifecycle" in customers:
        c = customers.assign(customer_id=customers["customer_id"].astype(str)).set_index("customer_id")
        t["stage"] = t["customer_id"].map(c["lifecycle"])
        keep = t["stage"].notna() & ~t["stage"].isin(GONE)
        gone = "lapsed or churned"
        spend = next((k for k in ("revenue_12m", "value_12m") if k in c), None)
        if spend is not None:
            t["spend"] = t["customer_id"].map(c[spend]).fillna(0.0)
            keep &= t["spend"] > 0
            gone += ", or with no purchase in the last 12 months"
        left_out = f"Customers {gone} ({int((~keep).sum()):,}) are left out: they have gone already."
    else:
        keep = t["churn_risk"] < 0.99
        left_out = f"Customers with a risk of 99% or more ({int((~keep).sum()):,}) are left out: most have long gone."
    t = t[keep & likely]
    if t.empty:
        return (f"<p class='muted'>No customer who is still buying is more likely than not to place no order in the "
                f"next {n} days. {_esc(left_out)}</p>")
    if spend is not None:
        t = t.assign(stake=t["churn_risk"] * t["spend"]).sort_values(["stake", "churn_risk"], ascending=False,
                                                                      kind="stable")
        order = (f"ranked by what is at stake: churn risk × what they spent in the last 12 months "
                 f"({len(t):,} customers qualify)")
    else:
        t = t.sort_values("churn_risk", ascending=False, kind="stable")
        order = f"highest risk first ({len(t):,} customers qualify)"
    t = t.head(rows)
    low = t["next_order_low"] if "next_order_low" in t else pd.Series(np.nan, index=t.index)
    high = t["next_order_high"] if "next_order_high" in t else pd.Series(np.nan, index=t.index)
    # the reason right after the risk: on a phone the first columns are what shows without scrolling
    show = pd.DataFrame({"customer": t["customer_id"].to_numpy(),
                         "churn risk": [f"{v:.0%}" for v in t["churn_risk"]],
                         "why": t["reason"].fillna("").to_numpy()})
    nxt = [_next_words(d, lo, hi, n) for d, lo, hi in zip(t["next_order_days"], low, high, strict=True)]
    if len(set(nxt)) > 1:  # all "not within N days" says nothing the risk does not
        show["next order"] = nxt
    if "stage" in t:
        show["stage"] = t["stage"].to_numpy()
    if spend is not None:
        show["spent, last 12 months"] = [format_money(v, money, 0) for v in t["spend"]]
    sources = pred.customers["churn_source"].astype(str) if "churn_source" in pred.customers else pd.Series([], dtype=str)
    subs = sources.str.endswith("(cancellation)")
    src = str(sources[~subs].iloc[0]) if (~subs).any() else ""
    cancel = (f" -- or, for customers with a running subscription, to cancel it (risk from "
              f"{_esc(str(sources[subs].iloc[0]).removesuffix(' (cancellation)'))})" if subs.any() else "")
    intro = (f"<p>Customers more likely than not to place no order in the next {n} days"
             + (f" (risk from {_esc(src)})" if src else "") + cancel + f", {_esc(order)}. {_esc(left_out)}</p>")
    return intro + _table(show) + (
        "<p class='muted'>Every customer's risk, next order and reason: <code>clientfolio predict --out FILE</code>."
        "</p>")


def _subscriptions(pred: Any) -> str:
    """Subscribers' churn as cancellation: sBG against the trees, and what the rows below show for them."""
    comp = getattr(pred, "subscriptions", None)
    if comp is None:
        return ""
    n, start = comp.horizon_days, pd.Timestamp(comp.cutoff)
    rate = comp.details.get("churn_rate")
    share = (f" {rate:.0%} of them cancelled within {n} days." if rate is not None and np.isfinite(rate) else "")
    return (f"<h3>Subscribers: who will cancel in the next {n} days</h3><p><b>{_esc(comp.sentence)}</b></p>"
            + _metric_table(comp)
            + f"<p class='muted'>For customers with a running subscription, churn means cancelling it, not a pause "
              f"between orders. The renewal model (shifted-beta-geometric) knows only how long each subscription has "
              f"run; the boosted trees also see plan, price, earlier cancellations, support tickets and every "
              f"purchase feature. Judged on {comp.n_test:,} active subscribers on {start:%d %b %Y} and the {n} days "
              f"after, which neither had seen.{share} In the table below, a subscriber's risk and reason are their "
              f"cancellation risk.</p>")


def section(pred: Any, customers: pd.DataFrame | None = None, money: str = "") -> str:
    """The section body; `pred` is a ShopPredictions or the sentence saying why there are none."""
    if isinstance(pred, str):
        text = pred.strip()
        return (f"<p><b>No predictions for this shop.</b> {_esc(text[:1].upper() + text[1:])}</p>"
                "<p class='muted'>Churn risk and next order are only shown with their evidence: a time split with "
                "enough customers and outcomes to measure them against the purchase model.</p>")
    churn, nxt = pred.churn, pred.next_order
    parts = [_horizon(pred), _split(churn)]
    parts.append("<h3>Churn risk: who will not order in the next "
                 f"{pred.horizon_days} days</h3><p><b>{_esc(churn.sentence)}</b></p>")
    parts.append(_metric_table(churn))
    parts.append(_base_rate(churn))
    if churn.details.get("calibration") or churn.details.get("baseline_calibration"):
        parts.append(_fig(calibration_chart(churn), "chart-pred-calibration"))
        parts.append("<p class='muted'>Each point is a tenth of the customers, grouped by their predicted risk: on the "
                     "dotted diagonal, a predicted 30% means 30% really did not order. Points below it: the method "
                     "expected more to leave than did.</p>")
    parts.append(_importance(churn, "AUC"))
    parts.append(f"<h3>Next order: days until the next order</h3><p><b>{_esc(nxt.sentence)}</b></p>")
    parts.append(_metric_table(nxt))
    parts.append(_importance(nxt, "days"))
    parts.append(_subscriptions(pred))
    parts.append("<h3>Customers most at risk</h3>")
    parts.append(at_risk_table(pred, customers, money))
    if pred.notes:
        parts.append("<ul class='muted'>" + "".join(f"<li>{_esc(x)}</li>" for x in pred.notes) + "</ul>")
    return "".join(p for p in parts if p)
