"""Report section "How long customers keep buying": Kaplan–Meier retention curves and the trend.

Reads a :class:`~clientfolio.predict.retention.RetentionResult`; nothing is recomputed here.  Cohort
and segment names come from the data and are escaped.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from clientfolio.predict.retention import RetentionResult
from clientfolio.report import charts
from clientfolio.report.html import _esc, _fig, _table

MAX_CURVES = 8  # more lines than this are unreadable: the largest groups are drawn, the table has all


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def curves_chart(res: RetentionResult, max_days: int = 365) -> go.Figure:
    """Step curves of the share still buying, each with its pointwise 95% band (lighter)."""
    fig = go.Figure()
    names = sorted(res.curves, key=lambda k: -res.sizes.get(k, 0))[:MAX_CURVES]
    for i, name in enumerate(sorted(names)):
        km = res.curves[name]
        km = km[km["time"] <= max_days]
        x = np.concatenate([[0.0], km["time"].to_numpy()])
        colour = charts.PALETTE[i % len(charts.PALETTE)]
        lo = np.concatenate([[1.0], km["lower"].to_numpy()]) * 100
        hi = np.concatenate([[1.0], km["upper"].to_numpy()]) * 100
        y = np.concatenate([[1.0], km["survival"].to_numpy()]) * 100
        fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line={"width": 0, "shape": "hv"}, showlegend=False,
                                 hoverinfo="skip", legendgroup=name))
        fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line={"width": 0, "shape": "hv"}, fill="tonexty",
                                 fillcolor=_rgba(colour, 0.15), showlegend=False, hoverinfo="skip", legendgroup=name))
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"color": colour, "width": 2.5, "shape": "hv"},
                                 name=f"{name} ({res.sizes[name]:,})", legendgroup=name,
                                 customdata=np.stack([lo, hi], axis=1),
                                 hovertemplate=f"{_esc(name)}: %{{y:.0f}}% still buying at day %{{x:.0f}} "
                                               "(95%: %{customdata[0]:.0f}–%{customdata[1]:.0f}%)<extra></extra>"))
    fig.update_xaxes(title="days since the first purchase", range=[0, max_days])
    fig.update_yaxes(title="still buying (%)", range=[0, 101])
    what = "acquisition cohort" if res.by == "cohort" else res.by.replace("_", " ")
    return charts._layout(fig, f"Share still buying, by {what}", height=460)


def _plain_p(sentence: str) -> str:
    """A p-value in scientific notation ("p = 2.4e-05") as an owner reads it ("p < 0.001")."""
    return re.sub(r"p = \d(?:\.\d+)?e-\d+", "p < 0.001", sentence)


def section(res: RetentionResult) -> str:
    """The section body: the definition, the trend sentences, the curves and the table with intervals."""
    lines = "".join(f"<li>{_esc(_plain_p(s))}</li>" for s in res.sentences())
    parts = [f"<ul>{lines}</ul>"]
    if res.curves:
        parts.append(_fig(curves_chart(res), f"retention-{_esc(res.by)}"))
        parts.append(f"<p class='muted'>Shaded: {_esc(res.coverage)}. Groups with fewer than 30 customers are "
                     "not drawn.</p>")
    else:
        parts.append("<p class='muted'>No group has enough customers with enough follow-up for a curve yet.</p>")
    t = res.table.copy()
    days = [c.removeprefix("retained_") for c in t.columns if c.startswith("retained_")]
    show = pd.DataFrame({res.by: t[res.by], "customers": t["customers"], "too recent": t["too_recent"]})
    for d in days:
        show[f"still buying at {d} (95% interval)"] = [
            "" if pd.isna(v) else f"{v:.0%} ({lo:.0%}–{hi:.0%})"
            for v, lo, hi in zip(t[f"retained_{d}"], t[f"low_{d}"], t[f"high_{d}"], strict=True)]
    show["note"] = t["note"].fillna("")
    parts.append(_table(show))
    parts.append("<p class='muted'>Empty cells: not enough follow-up yet to say.</p>")
    return "".join(parts)
