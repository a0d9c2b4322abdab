"""The report's action sections: "What to do" (the action plan) and "Fairness, best customers, where to spend".

Both read what the analyze stage `action_plan` kept on the Portfolio (``actions`` and
``insight``); nothing is recomputed here.  Every text that comes from the data (segment,
region, channel and product names) is escaped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.money import format_money
from clientfolio.live.kinds import kind_label, segment_label
from clientfolio.report import charts
from clientfolio.report.html import _esc, _fig, _table

TOP = 8  # segments in the "contact these first" list and the chart


def _name(kind: str, segment: str) -> str:
    return f"{segment_label(kind, segment)} ({kind_label(kind)})"


def _pts(v: float) -> str:
    return f"{abs(v) * 100:.1f}"


def _gap(low: float, high: float) -> tuple[str, str]:
    """A difference's 95% interval as the size of the gap, smallest first (from 0 when it crosses zero)."""
    a, b = sorted((abs(low), abs(high)))
    return (_pts(a) if np.sign(low) == np.sign(high) else "0.0"), _pts(b)


def what_to_do(p: Any) -> str:  # noqa: ANN401 - a Portfolio
    """Per segment: playbook, reach and priority; a chart of value at stake; the divestment plan; what is flagged."""
    plan = p.actions
    m = p.currency
    money = lambda v: format_money(v, m)  # noqa: E731
    first = plan.priority.head(TOP)
    out = [f"<p>For every segment, its playbook and how many of its customers you can actually reach: with consent "
           f"for the playbook's purpose on its channel, and below the contact cap ({_esc(plan.reach_basis)}). "
           f"Value at stake is the {_esc(plan.value_basis)} of the segment's customers.</p>"]
    if len(first):
        items = []
        for r in first.itertuples():
            items.append(f"<li><b>{_esc(_name(r.segment_kind, r.segment))}</b>: {r.reachable:,} of {r.customers:,} "
                         f"reachable, {_esc(money(r.value_at_stake))} at stake. <i>{_esc(r.service_level)}</i> "
                         f"service; {_esc(r.offer)} by {_esc(r.channel.replace('_', ' '))} "
                         f"({_esc(r.cadence)}). <span class='muted'>Measure: {_esc(r.kpi)}.</span></li>")
        out.append("<h3>Contact these first</h3><p class='muted'>In order: the playbook's service level (dedicated "
                   "first), then the value at stake of the customers you can reach.</p>"
                   f"<ol class='plan'>{''.join(items)}</ol>")
        chart = first.assign(label=[_name(k, s) for k, s in zip(first["segment_kind"], first["segment"])])
        out.append(_fig(charts.value_at_stake(chart, m), "chart-value-at-stake"))
    out.append(_divestment(plan, money))
    flagged = plan.no_action
    if len(flagged):  # one item per reason, naming its segments
        items = "".join(
            f"<li>{_esc(flag[:1].upper() + flag[1:])}: "
            + ", ".join(f"<b>{_esc(_name(k, s))}</b> ({n:,})" for k, s, n in
                        zip(part["segment_kind"], part["segment"], part["customers"])) + ".</li>"
            for flag, part in flagged.groupby("flag", sort=False))
        out.append(f"<h3>Segments without an action of their own</h3><ul>{items}</ul>")
    out.append("<h3>Every segment</h3>")
    for kind, part in plan.segments.groupby("segment_kind", sort=False):
        t = pd.DataFrame({"segment": [segment_label(kind, s) for s in part["segment"]],
                          "customers": part["customers"].astype(int).to_numpy(),
                          "reachable": part["reachable"].astype(int).to_numpy(),
                          "value at stake": part["value_at_stake"].to_numpy(),
                          "priority": [f"{v:.0f}" if pd.notna(v) else "–" for v in part["priority"]],
                          "service": part["service_level"].to_numpy(), "offer": part["offer"].to_numpy(),
                          "channel": part["channel"].str.replace("_", " ").to_numpy(),
                          "cadence": part["cadence"].to_numpy(), "KPI": part["kpi"].to_numpy()})
        out.append(f"<details class='kind'><summary>{_esc(kind_label(kind))} ({len(part)} segments)</summary>"
                   f"{_table(t, money_cols=('value at stake',), money=m)}</details>")
    if plan.playbook_files:
        out.append(f"<p class='muted'>Playbooks: the built-in ones, with {_esc(', '.join(plan.playbook_files))} "
                   "merged over them.</p>")
    else:
        out.append("<p class='muted'>Playbooks: the built-in ones. Edit your own with <code>clientfolio playbooks "
                   "--write playbooks.yaml</code> and pass it with <code>clientfolio analyze --playbooks "
                   "playbooks.yaml</code>.</p>")
    return "".join(out)


def _divestment(plan: Any, money: Any) -> str:  # noqa: ANN401
    d = plan.divestment
    if d.empty:
        return ("<h3>Divestment candidates</h3><p>No customer costs more to serve than they bring, so there is no "
                "divestment plan.</p>")
    pb = plan.divestment_plan
    steps = "".join(f"<li>{_esc(s)}</li>" for s in pb.steps)
    return (f"<h3>Divestment candidates: a phased plan</h3><p>{len(d):,} customers cost more to serve than they "
            f"bring; together they lose {_esc(money(plan.divestment_loss))}. What to do, in this order "
            f"({_esc(pb.cadence)}):</p><ol>{steps}</ol>"
            + (f"<p class='muted'>{_esc(pb.note)}</p>" if pb.note else "")
            + "<p class='muted'>Who they are, with the evidence: <a href='#divestment'>Customers who cost more than "
              "they bring</a>.</p>")


def _unavailable(what: str, reason: Any) -> str:  # noqa: ANN401
    return f"<p class='muted'>{_esc(what)} could not be made from this data: {_esc(reason)}</p>"


def fairness_and_spend(p: Any) -> str:  # noqa: ANN401 - a Portfolio
    """The fairness audit in plain words, the ideal customer profile with sample sizes, retention vs acquisition."""
    ins = p.insight
    return (_fairness(ins.get("fairness")) + _profile(ins.get("profile"), p.currency)
            + _advice(ins.get("advice"), p.currency))


def _fairness(rep: Any) -> str:  # noqa: ANN401 - a FairnessReport or the reason there is none
    head = "<h3>Is any group of customers treated worse?</h3>"
    if rep is None or isinstance(rep, str):
        return head + _unavailable("The fairness audit", rep or "not run")
    judged = rep.table[rep.table["status"] != "too small to judge"]
    out = [head, f"<p>{len(judged):,} comparisons: each group of {_esc(', '.join(a.replace('_', ' ') for a in rep.attributes))} "
                 f"against all other customers, on {len(rep.outcomes)} outcomes. A difference counts only when it is "
                 "beyond chance across the whole audit (at most a 5% chance of any false alarm).</p>"]
    warnings = [f for f in rep.findings if f.startswith("Warning")]
    if warnings:
        out.append("<ul>" + "".join(f"<li class='level-problem'>{_esc(w)}</li>" for w in warnings) + "</ul>")
    d = rep.disparities
    if d.empty:
        out.append("<p class='level-good'>No group is worse off than the other customers beyond chance.</p>")
    else:
        d = d.reindex(d["diff"].abs().sort_values(ascending=False).index).head(8)
        items = []
        for r in d.itertuples():
            more = "more" if r.diff > 0 else "fewer"
            lo, hi = _gap(r.diff_low, r.diff_high)
            text = (f"<b>{_esc(r.attribute.replace('_', ' ').capitalize())} {_esc(r.group)}</b>: {r.rate:.1%} of its "
                    f"{r.customers:,} customers {_esc(r.outcome_label)}, against {r.rest_rate:.1%} of the others: "
                    f"{_pts(r.diff)} points {more}; with 95% confidence the true gap is between {lo} and {hi} points.")
            if np.isfinite(r.adjusted_diff):
                text += (f" Among customers who spend the same it is {_pts(r.adjusted_diff)} points "
                         f"{'more' if r.adjusted_diff > 0 else 'fewer'}")
            text += f": {_esc(r.reason)}." if isinstance(r.reason, str) and r.reason else ""
            items.append(f"<li>{text}</li>")
        out.append(f"<ul>{''.join(items)}</ul>")
        if len(rep.disparities) > len(d):
            out.append(f"<p class='muted'>{len(rep.disparities) - len(d)} more: <code>clientfolio fairness</code> "
                       "lists them all.</p>")
    small = rep.table[rep.table["status"] == "too small to judge"].drop_duplicates(["attribute", "group"])
    if len(small):
        out.append(f"<p class='muted'>{len(small)} group(s) too small to judge (fewer than 30 customers, or too few "
                   "others): no conclusion either way.</p>")
    return "".join(out)


def _profile(prof: Any, currency: str) -> str:  # noqa: ANN401 - a Profile or the reason there is none
    from clientfolio.actions.acquisition import ATTRIBUTES

    head = "<h3>Where your best customers come from</h3>"
    if prof is None or isinstance(prof, str):
        return head + _unavailable("The ideal customer profile", prof or "not run")
    money = lambda v: format_money(v, currency)  # noqa: E731
    out = [head, f"<p>{_esc(prof.lines[0])}</p>"]
    traits = prof.traits
    if traits.empty:
        out.append("<p>No channel, region or first purchase brings significantly more top customers than the others: "
                   "your best customers come from everywhere, or the data is too thin to tell.</p>")
    else:
        t = pd.DataFrame({
            "trait": [f"{ATTRIBUTES.get(a, a)}: {v}" for a, v in zip(traits["attribute"], traits["value"])],
            "customers": traits["customers"].astype(int).to_numpy(),
            "in the top tier": [f"{s:.0%} ({lo:.0%}–{hi:.0%})" for s, lo, hi in
                                zip(traits["top_share"], traits["top_share_low"], traits["top_share_high"])],
            "vs usual": [f"{v:.1f}x" for v in traits["lift"]],
            "mean CLV": [f"{money(v)} ({money(lo)}–{money(hi)})" for v, lo, hi in
                         zip(traits["mean_clv"], traits["mean_clv_low"], traits["mean_clv_high"])]})
        out.append("<p>Each trait below is significantly more common among your best customers (false discovery "
                   f"rate 5%). In brackets: the 95% range. The usual share is {prof.base_share:.0%}.</p>"
                   + _table(t, max_rows=12))
    small = prof.table[prof.table["too_small"]]
    if len(small):
        out.append(f"<p class='muted'>{len(small)} value(s) have fewer than 30 customers: too few to conclude.</p>")
    return "".join(out)


def _advice(adv: Any, currency: str) -> str:  # noqa: ANN401 - an Advice or the reason there is none
    head = "<h3>Where to spend: keeping customers or winning new ones</h3>"
    if adv is None or isinstance(adv, str):
        return head + _unavailable("The retention and acquisition comparison", adv or "not run")
    sentences = [s.strip() for s in adv.text.replace(". ", ".\n").split("\n") if s.strip()]
    out = [head, "<ul>" + "".join(f"<li>{_esc(s)}</li>" for s in sentences) + "</ul>"]
    seg = adv.segments.head(8)
    if len(seg):
        t = pd.DataFrame({"segment": [segment_label("lifecycle", s) for s in seg["segment"]],
                          "customers": seg["customers"].astype(int).to_numpy(),
                          "respond": [f"{v:.1%}" for v in seg["response_rate"]],
                          "worth if kept": seg["value_per_response"].to_numpy(),
                          "return per 1 spent": seg["return_per_unit"].to_numpy()})
        out.append(_table(t, money_cols=("worth if kept", "return per 1 spent"), money=currency))
    out.append("<details><summary class='muted'>What this assumes</summary><ul>"
               + "".join(f"<li class='muted'>{_esc(a)}</li>" for a in adv.assumptions) + "</ul></details>")
    return "".join(out)
