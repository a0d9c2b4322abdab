"""The report's charts as plotly figures, one function per chart; no I/O here."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from clientfolio.core.money import currency_unit

PALETTE = ["#2f6f8f", "#e07a5f", "#81b29a", "#f2cc8f", "#6d597a", "#3d405b", "#b56576", "#8d99ae"]
LIFECYCLE_ORDER = ["prospect", "new", "active", "reactivated", "at risk", "lapsed", "churned"]
LIFECYCLE_COLOURS = {"prospect": "#8d99ae", "new": "#81b29a", "active": "#2f6f8f", "reactivated": "#6d597a",
                     "at risk": "#f2cc8f", "lapsed": "#e07a5f", "churned": "#b56576"}


# Charts are drawn as wide as their container, down to a phone's 390 px: a chart title or axis
# title longer than these many characters is broken into lines (plotly does not wrap text).
TITLE_CHARS = 38
AXIS_CHARS = 34


def wrap(text: str, width: int) -> str:
    """`text` broken into lines of at most `width` characters at spaces (plotly's <br>)."""
    return "<br>".join(textwrap.wrap(text, width)) if text and len(text) > width else text


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """Shared layout: title in its own top margin, legend in its own bottom margin, axis titles wrapped.

    Title, axis titles and legend each get room of their own (``automargin``), so none of them
    overlaps another or the plot, at any width the report is read at.
    """
    fig.update_layout(
        title={"text": wrap(title, TITLE_CHARS), "x": 0, "xref": "container", "xanchor": "left",
               "y": 1, "yref": "paper", "yanchor": "bottom", "pad": {"b": 14, "l": 6}, "automargin": True,
               "font": {"size": 16}},
        height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, template="plotly_white",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yanchor": "bottom", "yref": "container"})
    for ax in [*fig.select_xaxes(), *fig.select_yaxes()]:
        ax.update(automargin=True, title={"text": wrap(ax.title.text or "", AXIS_CHARS), "standoff": 10})
    return fig


def concentration(curve: pd.DataFrame, top20: float) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve["customer_share"] * 100, y=curve["revenue_share"] * 100, mode="lines",
                             line={"color": PALETTE[0], "width": 3}, name="your customers",
                             hovertemplate="best %{x:.0f}% of customers bring %{y:.0f}% of revenue<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line={"dash": "dot", "color": "#999"},
                             name="if every customer spent the same"))
    fig.add_trace(go.Scatter(x=[20], y=[top20 * 100], mode="markers+text", marker={"size": 11, "color": PALETTE[1]},
                             text=[f"top 20% → {top20:.0%} of revenue"], textposition="bottom right",
                             name="top 20%", showlegend=False))
    fig.update_xaxes(title="share of customers, best first (%)", range=[0, 100])
    fig.update_yaxes(title="share of revenue (%)", range=[0, 101])
    return _layout(fig, "Revenue concentration")


def _band_labels(edges: np.ndarray, money: str) -> list[str]:
    """"£1.5–2.3" labels with just enough significant digits that no two bands read the same."""
    for digits in range(2, 8):
        nums = [np.format_float_positional(e, precision=digits, unique=False, fractional=False, trim="-")
                for e in edges]
        nums = [f"{float(n):,.0f}" if float(n) >= 1000 else n for n in nums]
        if len(set(nums)) == len(nums):
            break
    return [f"<{money}{nums[1]}" if i == 0 else f"{money}{nums[i]}–{nums[i + 1]}" for i in range(len(edges) - 1)]


def clv_bands(clv: pd.Series, n: int = 24) -> np.ndarray:
    """Band edges growing by a constant factor over the range the values actually span.

    The first band is everything below the 2nd percentile of positive values (at least 1/10,000 of
    the largest), so small values (a shop whose CLVs are all below 1) still spread over the bands.
    """
    pos = clv[clv > 0]
    if pos.empty:
        return np.array([0.0, 1.0])
    top = float(pos.max())
    low = max(float(pos.quantile(0.02)), top / 1e4)
    if low >= top:
        return np.array([0.0, top * 0.5, top * 1.0001])
    k = int(np.clip(np.ceil(np.log(top / low) / np.log(1.25)), 4, n))
    return np.concatenate([[0.0], np.geomspace(low, top * 1.0001, k + 1)])


def clv_distribution(customers: pd.DataFrame, money: str) -> go.Figure:
    """Customers per CLV band on log-spaced bands (values span cents to thousands), by value tier."""
    clv = customers["clv"].clip(lower=0).fillna(0.0)
    edges = clv_bands(clv)
    labels = _band_labels(edges, money)
    fig = go.Figure()
    tiers = ["Low-Value One-Timers", "Medium-Value Occasionals", "High-Value Regulars"]
    for i, tier in enumerate(tiers):
        part = clv[customers["value_tier"] == tier] if "value_tier" in customers else clv
        counts, _ = np.histogram(part, bins=edges)
        fig.add_trace(go.Bar(x=labels, y=counts, name=tier, marker_color=PALETTE[[2, 1, 0][i]],
                             hovertemplate="CLV %{x}: %{y} customers<extra>" + tier + "</extra>"))
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(title=f"predicted value per customer ({currency_unit(money)}); each band "
                           "is a constant factor wider", tickangle=-45)
    fig.update_yaxes(title="customers")
    return _layout(fig, "Predicted value per customer", height=500)


def palive_matrix(customers: pd.DataFrame) -> go.Figure:
    c = customers[customers["orders"] > 0]
    f_edges = [0, 1, 2, 3, 5, 8, 13, 21, np.inf]
    f_bin = pd.cut(c["frequency"], f_edges, right=False, labels=["0", "1", "2", "3-4", "5-7", "8-12", "13-20", "21+"])
    r_bin = pd.qcut(c["days_since_last"].rank(method="first"), 8, labels=False) if len(c) >= 8 else 0
    r_edges = c.groupby(r_bin)["days_since_last"].max().round(0).astype(int).tolist() if len(c) >= 8 else []
    table = c.assign(f=f_bin, r=r_bin).pivot_table(index="f", columns="r", values="p_alive", aggfunc="mean",
                                                   observed=False)
    counts = c.assign(f=f_bin, r=r_bin).pivot_table(index="f", columns="r", values="customer_id", aggfunc="count",
                                                    observed=False)
    labels = [f"≤{e} days" for e in r_edges] if r_edges else [str(x) for x in table.columns]
    fig = go.Figure(go.Heatmap(
        z=table.to_numpy(), x=labels, y=[str(i) for i in table.index], colorscale="RdYlGn", zmin=0, zmax=1,
        customdata=counts.to_numpy(),
        colorbar={"title": {"text": "chance", "side": "top"}, "thickness": 12, "tickformat": ".0%"},
        hovertemplate="repeat purchases %{y}, last purchase %{x} ago: %{z:.0%} chance of still being a customer "
                      "(%{customdata} customers)<extra></extra>"))
    fig.update_xaxes(title="time since last purchase (groups of equal size)")
    fig.update_yaxes(title="repeat purchases so far")
    return _layout(fig, "Chance of still being a customer")


def rfm_grid(customers: pd.DataFrame, grid: dict[int, tuple[str, ...]]) -> go.Figure:
    counts = customers.groupby(["R", "FM"]).size().unstack(fill_value=0).reindex(index=[1, 2, 3, 4, 5],
                                                                                  columns=[1, 2, 3, 4, 5], fill_value=0)
    # One word a line and no colour bar (each cell prints its count): readable in a phone's narrow cells.
    text = [[f"{grid[r][fm - 1].replace(' ', '<br>')}<br><b>{counts.loc[r, fm]:,}</b>" for fm in range(1, 6)]
            for r in range(1, 6)]
    fig = go.Figure(go.Heatmap(z=counts.to_numpy(), x=[f"FM {i}" for i in range(1, 6)],
                               y=[f"R {i}" for i in range(1, 6)], text=text, texttemplate="%{text}",
                               textfont={"size": 10}, colorscale="Blues", showscale=False,
                               hovertemplate="%{y}, %{x}: %{z} customers<extra></extra>"))
    fig.update_xaxes(title="frequency & spend score (5 = best)")
    fig.update_yaxes(title="recency score (5 = most recent)")
    return _layout(fig, "RFM grid: named segments", height=480)


def lifecycle_flow(before: pd.DataFrame, after: pd.DataFrame, label_before: str, label_after: str) -> go.Figure:
    b = before[before["segment_kind"] == "lifecycle"][["customer_id", "segment"]]
    a = after[after["segment_kind"] == "lifecycle"][["customer_id", "segment"]]
    m = b.merge(a, on="customer_id", how="outer", suffixes=("_b", "_a")).fillna({"segment_b": "not yet a customer",
                                                                                 "segment_a": "gone"})
    flows = m.groupby(["segment_b", "segment_a"]).size().reset_index(name="n")
    left = [s for s in LIFECYCLE_ORDER + ["not yet a customer"] if s in set(flows["segment_b"])]
    right = [s for s in LIFECYCLE_ORDER + ["gone"] if s in set(flows["segment_a"])]
    # Short node labels (the stage) and the two dates once, above their columns: labels from the two
    # sides then do not run into each other on a narrow screen.
    colour = lambda s: LIFECYCLE_COLOURS.get(s, "#bbb")  # noqa: E731
    fig = go.Figure(go.Sankey(
        domain={"x": [0, 1], "y": [0, 0.92]},
        node={"label": left + right, "color": [colour(s) for s in left + right], "pad": 12,
              "customdata": [label_before] * len(left) + [label_after] * len(right),
              "hovertemplate": "%{label} on %{customdata}: %{value:,} customers<extra></extra>"},
        link={"source": [left.index(s) for s in flows["segment_b"]],
              "target": [len(left) + right.index(s) for s in flows["segment_a"]],
              "value": flows["n"].tolist(), "color": ["rgba(120,120,120,0.25)"] * len(flows),
              "hovertemplate": "%{source.label} → %{target.label}: %{value:,} customers<extra></extra>"}))
    for x, anchor, text in ((0, "left", label_before), (1, "right", label_after)):
        fig.add_annotation(x=x, y=1, xref="paper", yref="paper", xanchor=anchor, yanchor="top", text=f"<b>{text}</b>",
                           showarrow=False)
    return _layout(fig, "How customers moved between stages", height=480)


def quadrant(customers: pd.DataFrame, splits: dict[str, float], money: str) -> go.Figure:
    fig = go.Figure()
    colours = {"Stars": PALETTE[0], "Develop": PALETTE[2], "Maintain": PALETTE[3], "Review": "#bbb"}
    sample = customers.sample(min(len(customers), 4000), random_state=0) if len(customers) > 4000 else customers
    for q, col in colours.items():
        part = sample[sample["quadrant"] == q]
        fig.add_trace(go.Scattergl(x=part["value_12m"].clip(lower=0) + 1, y=part["clv"].clip(lower=0) + 1,
                                   mode="markers", name=q, marker={"color": col, "size": 6, "opacity": 0.7},
                                   text=part["customer_id"],
                                   hovertemplate=f"%{{text}}: last 12 months {money}%{{x:,.0f}}, "
                                                 f"predicted {money}%{{y:,.0f}}<extra>{q}</extra>"))
    fig.add_vline(x=splits.get("current", 0) + 1, line_dash="dot", line_color="#666")
    fig.add_hline(y=splits.get("potential", 0) + 1, line_dash="dot", line_color="#666")
    unit = currency_unit(money)
    fig.update_xaxes(type="log", title=f"current value: last 12 months ({unit}, log scale)")
    fig.update_yaxes(type="log", title=f"growth potential: predicted value ({unit}, log scale)")
    return _layout(fig, "Current value × growth potential", height=480)


def tracking_chart(track: pd.DataFrame, calibration_end: pd.Timestamp, model_name: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=track["end"], y=track["actual"], name="actual", line={"color": PALETTE[0], "width": 3}))
    fig.add_trace(go.Scatter(x=track["end"], y=track["expected"], name=f"{model_name} expected",
                             line={"color": PALETTE[1], "dash": "dash", "width": 3}))
    fig.add_vline(x=calibration_end, line_dash="dot", line_color="#666")
    top = float(track["actual"].max())
    fig.add_annotation(x=calibration_end, y=top, text="fitted ", showarrow=False, xanchor="right", yanchor="top")
    fig.add_annotation(x=calibration_end, y=top, text=" predicted", showarrow=False, xanchor="left", yanchor="top")
    fig.update_yaxes(title="repeat purchases, cumulative by week")
    return _layout(fig, "Does the model track your sales?")


def holdout_buckets(by: pd.DataFrame, model_name: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=by["bucket"], y=by["actual"], name="actual", marker_color=PALETTE[0]))
    fig.add_trace(go.Bar(x=by["bucket"], y=by["predicted"], name=f"{model_name} predicted", marker_color=PALETTE[1]))
    fig.update_xaxes(title="repeat purchases before the holdout period")
    fig.update_yaxes(title="purchases per customer in the holdout period")
    return _layout(fig, "Holdout check by customer group")


def cluster_sizes(profiles: pd.DataFrame) -> go.Figure:
    name = "name" if "name" in profiles else profiles.columns[0]
    size = "size" if "size" in profiles else profiles.columns[1]
    fig = go.Figure(go.Bar(x=profiles[size], y=profiles[name], orientation="h", marker_color=PALETTE[0],
                           hovertemplate="%{y}: %{x} customers<extra></extra>"))
    fig.update_xaxes(title="customers")
    return _layout(fig, "Discovered customer groups", height=max(260, 60 * len(profiles)))


def value_at_stake(segments: pd.DataFrame, money: str) -> go.Figure:
    """Value at stake per segment (highest priority at the top), split into what can be reached and what cannot.

    `segments`: rows of an action plan with label, reachable_value, value_at_stake.
    """
    t = segments.iloc[::-1]  # plotly draws the first bar at the bottom
    unit = currency_unit(money)
    label = [wrap(v, 18) for v in t["label"]]  # short lines: the names share a phone's width with the bars
    fig = go.Figure()
    fig.add_trace(go.Bar(y=label, x=t["reachable_value"], orientation="h", name="customers you can reach",
                         marker_color=PALETTE[0], hovertemplate="%{y}: %{x:,.0f} reachable<extra></extra>"))
    fig.add_trace(go.Bar(y=label, x=(t["value_at_stake"] - t["reachable_value"]).clip(lower=0), orientation="h",
                         name="no consent or at the contact cap", marker_color="#c9d3dc",
                         hovertemplate="%{y}: %{x:,.0f} out of reach<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title=f"value at stake ({unit})")  # what it measures: the text above the chart
    return _layout(fig, "Value at stake, in the order to act", height=max(320, 46 * len(t) + 160))
