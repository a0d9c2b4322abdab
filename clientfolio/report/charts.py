"""The report's charts as plotly figures, one function per chart; no I/O here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PALETTE = ["#2f6f8f", "#e07a5f", "#81b29a", "#f2cc8f", "#6d597a", "#3d405b", "#b56576", "#8d99ae"]
LIFECYCLE_ORDER = ["prospect", "new", "active", "reactivated", "at risk", "lapsed", "churned"]
LIFECYCLE_COLOURS = {"prospect": "#8d99ae", "new": "#81b29a", "active": "#2f6f8f", "reactivated": "#6d597a",
                     "at risk": "#f2cc8f", "lapsed": "#e07a5f", "churned": "#b56576"}


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 16}}, height=height,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, template="plotly_white",
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
                      legend={"orientation": "h", "y": -0.18})
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


def clv_distribution(customers: pd.DataFrame, money: str) -> go.Figure:
    """Customers per CLV band on log-spaced bands (values span cents to thousands), by value tier."""
    clv = customers["clv"].clip(lower=0).fillna(0.0)
    top = max(float(clv.max()), 1.0)
    # at most 24 bands, each at least 1.5x wide, so that no two band labels read the same ("1.0–1.0")
    n_edges = int(np.clip(np.ceil(np.log(top * 1.0001) / np.log(1.5)), 1, 23)) + 1
    edges = np.unique(np.concatenate([[0.0], np.geomspace(1.0, top * 1.0001, n_edges)]))
    num = lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.1f}"  # noqa: E731
    labels = [f"<{money}1" if lo == 0 else f"{money}{num(lo)}–{num(hi)}" for lo, hi in zip(edges[:-1], edges[1:])]
    fig = go.Figure()
    tiers = ["Low-Value One-Timers", "Medium-Value Occasionals", "High-Value Regulars"]
    for i, tier in enumerate(tiers):
        part = clv[customers["value_tier"] == tier] if "value_tier" in customers else clv
        counts, _ = np.histogram(part, bins=edges)
        fig.add_trace(go.Bar(x=labels, y=counts, name=tier, marker_color=PALETTE[[2, 1, 0][i]],
                             hovertemplate="CLV %{x}: %{y} customers<extra>" + tier + "</extra>"))
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(title=f"predicted customer lifetime value ({money}), bands growing by a constant factor",
                     tickangle=-45)
    fig.update_yaxes(title="customers")
    _layout(fig, "What customers are worth over the horizon", height=480)
    fig.update_layout(legend={"orientation": "h", "y": 1.08, "x": 0.4})
    return fig


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
        customdata=counts.to_numpy(), colorbar={"title": "P(alive)"},
        hovertemplate="repeat purchases %{y}, last purchase %{x} ago: P(alive) %{z:.0%} "
                      "(%{customdata} customers)<extra></extra>"))
    fig.update_xaxes(title="time since last purchase (groups of equal size)")
    fig.update_yaxes(title="repeat purchases so far")
    return _layout(fig, "Who is still active: probability of being alive")


def rfm_grid(customers: pd.DataFrame, grid: dict[int, tuple[str, ...]]) -> go.Figure:
    counts = customers.groupby(["R", "FM"]).size().unstack(fill_value=0).reindex(index=[1, 2, 3, 4, 5],
                                                                                  columns=[1, 2, 3, 4, 5], fill_value=0)
    text = [[f"{grid[r][fm - 1]}<br>{counts.loc[r, fm]:,}" for fm in range(1, 6)] for r in range(1, 6)]
    fig = go.Figure(go.Heatmap(z=counts.to_numpy(), x=[f"FM {i}" for i in range(1, 6)],
                               y=[f"R {i}" for i in range(1, 6)], text=text, texttemplate="%{text}",
                               colorscale="Blues", colorbar={"title": "customers"},
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
    nodes = [f"{s} ({label_before})" for s in left] + [f"{s} ({label_after})" for s in right]
    colour = lambda s: LIFECYCLE_COLOURS.get(s, "#bbb")  # noqa: E731
    fig = go.Figure(go.Sankey(
        node={"label": nodes, "color": [colour(s) for s in left + right], "pad": 12},
        link={"source": [left.index(s) for s in flows["segment_b"]],
              "target": [len(left) + right.index(s) for s in flows["segment_a"]],
              "value": flows["n"].tolist(), "color": ["rgba(120,120,120,0.25)"] * len(flows)}))
    return _layout(fig, f"How customers moved between {label_before} and {label_after}", height=480)


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
    fig.update_xaxes(type="log", title=f"current value: last 12 months ({money}, log scale)")
    fig.update_yaxes(type="log", title=f"growth potential: predicted value ({money}, log scale)")
    return _layout(fig, "Strategic portfolio: current value × growth potential", height=480)


def tracking_chart(track: pd.DataFrame, calibration_end: pd.Timestamp, model_name: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=track["end"], y=track["actual"], name="actual", line={"color": PALETTE[0], "width": 3}))
    fig.add_trace(go.Scatter(x=track["end"], y=track["expected"], name=f"{model_name} expected",
                             line={"color": PALETTE[1], "dash": "dash", "width": 3}))
    fig.add_vline(x=calibration_end, line_dash="dot", line_color="#666")
    fig.add_annotation(x=calibration_end, y=float(track["actual"].max()), text="model fitted up to here → predicts after",
                       showarrow=False, xanchor="left", yanchor="top")
    fig.update_yaxes(title="cumulative repeat purchases")
    return _layout(fig, "Does the model track your sales? (weekly, cumulative)")


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
