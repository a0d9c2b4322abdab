"""Report section "What customers write": sentiment of reviews and tickets, and themes per segment.

Reads the frames of :mod:`clientfolio.predict.sentiment` (scored texts and themes by segment); nothing
is recomputed here.  Texts, themes and segment names come from the data and are escaped.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from clientfolio.predict import sentiment as s
from clientfolio.report import charts
from clientfolio.report.html import _esc, _fig, _table


def themes_chart(themes: pd.DataFrame) -> go.Figure:
    """Per segment, the share of its texts on each theme (stacked bars), coloured by theme."""
    t = themes[themes["share"].notna()]
    fig = go.Figure()
    names = list(dict.fromkeys(t.sort_values("texts", ascending=False)["theme"]))
    segs = sorted(t["segment"].unique())[::-1]  # plotly draws the first bar at the bottom
    for i, th in enumerate(names):
        # a segment with no text on this theme has a share of 0 (a NaN breaks plotly's stacking in that row)
        sub = t[t["theme"] == th].set_index("segment").reindex(segs).fillna({"share": 0.0})
        fig.add_trace(go.Bar(y=[charts.wrap(x, 22) for x in segs], x=sub["share"] * 100, orientation="h",
                             name=charts.wrap(th, 30), marker_color=charts.PALETTE[i % len(charts.PALETTE)],
                             customdata=sub["mean_sentiment"],
                             hovertemplate=f"{_esc(th)}: %{{x:.0f}}% of texts, mean sentiment "
                                           "%{customdata:+.2f}<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="share of its texts (%)", range=[0, 100])
    return charts._layout(fig, "What people write about, by segment", height=max(360, 70 * len(segs) + 220))


def stars_chart(texts: pd.DataFrame) -> go.Figure:
    """Mean sentiment per star rating: the check that the scores mean what they say."""
    g = texts[texts["scored"] & texts["rating"].notna()].groupby("rating")["sentiment"].agg(["mean", "size"])
    fig = go.Figure(go.Bar(x=[f"{int(r)}★" for r in g.index], y=g["mean"], marker_color=charts.PALETTE[0],
                           customdata=g["size"],
                           hovertemplate="%{x}: mean %{y:+.2f} over %{customdata} reviews<extra></extra>"))
    fig.update_yaxes(title="mean sentiment (−1 to +1)", range=[-1, 1])
    fig.update_xaxes(title="star rating")
    return charts._layout(fig, "Sentiment against the star rating", height=340)


def section(texts: pd.DataFrame, themes: pd.DataFrame | None = None) -> str:
    """The section body: summary sentences (languages covered), the star check, themes with examples."""
    parts = ["<ul>" + "".join(f"<li>{_esc(x)}</li>" for x in s.summary(texts)) + "</ul>"]
    if (texts["scored"] & texts["rating"].notna()).sum() >= 10:
        parts.append(_fig(stars_chart(texts), "sentiment-stars"))
    if themes is not None and not themes.empty:
        parts.append(_fig(themes_chart(themes), "sentiment-themes"))
        show = themes.assign(share=themes["share"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}"),
                             mean_sentiment=themes["mean_sentiment"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}"))
        # One row per segment and theme: long, so folded (the chart above carries the shares).
        parts.append(f"<details class='kind'><summary>Themes per segment, with an example of each "
                     f"({len(show):,} rows)</summary>"
                     + _table(show[["segment", "theme", "texts", "share", "mean_sentiment", "example"]]) + "</details>")
        parts.append(f"<p class='muted'>Themes: the words that go together in what people write (TF-IDF and NMF); "
                     f"each text counts for its strongest theme. {_esc(s.LANGUAGE_NOTE)}</p>")
    return "".join(parts)
