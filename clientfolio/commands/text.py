"""`clientfolio sentiment` and `clientfolio retention-curves`: what customers write, and how long they keep buying.

(`clientfolio retention` is taken: it is the data-retention policy of the privacy commands.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import pandas as pd
import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, day_option, existing_store, fail, handled

ByOpt = Annotated[Optional[str], typer.Option("--by", help="Segment kind to group by (e.g. lifecycle, value_tier, "
                                                          "rfm_segment) from the last analysis.")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Day to measure at (YYYY-MM-DD); default: the "
                                                               "last day in the data.")]
ToOpt = Annotated[Optional[Path], typer.Option("--to", help="Also write the table to this CSV file.")]


def _check_to(to: Path | None) -> None:
    """--to must be a file in an existing folder, checked before any work."""
    if to is not None and (to.is_dir() or not to.parent.is_dir()):
        fail(f"--to {to}: give a CSV file in an existing folder")


def _segments(st: Any, by: str | None) -> pd.Series | None:
    """customer_id -> segment of kind `by` from the store's last analysis (None without --by)."""
    if by is None:
        return None
    from clientfolio.actions.fairness import customers_from_store
    from clientfolio.core.errors import ClientfolioError

    frame = customers_from_store(st)
    if by not in frame.columns:
        kinds = sorted(c for c in frame.columns if frame[c].dtype == object and c not in ("customer_id",))
        raise ClientfolioError(f"--by {by}: no such segment kind in the last analysis; try one of {', '.join(kinds)}")
    return frame.set_index("customer_id")[by].astype("string")


def _as_of(st: Any, table: str, as_of: str | None) -> pd.Timestamp:
    if as_of is not None:
        return pd.Timestamp(as_of)
    last = st.query(f"SELECT max(ts) AS t FROM {table}")["t"].iloc[0]
    if last is None or pd.isna(last):
        from clientfolio.core.errors import ClientfolioError

        raise ClientfolioError(f"the store has no {table}: import them first")
    return pd.Timestamp(last)


def sentiment_cmd(store: StoreOpt = "clientfolio.duckdb", by: ByOpt = None, as_of: AsOfOpt = None,
                  themes: Annotated[int, typer.Option(help="How many themes to look for.")] = 6,
                  to: ToOpt = None) -> None:
    """Sentiment of reviews and support tickets (English only; other languages are counted, not scored),
    whether it agrees with the star ratings, and what people write about per segment.

    --to writes the themes per segment (with --by) or the per-customer signals.
    """
    from clientfolio.predict import sentiment as s
    from clientfolio.store import open_store

    day_option("--as-of", as_of)
    _check_to(to)
    with handled("the store is unchanged."):
        with open_store(existing_store(store)) as st:
            events = st.query("SELECT customer_id, ts, type, properties FROM events "
                              "WHERE type IN ('review', 'support_ticket')")
            day = _as_of(st, "events", as_of)
            seg = _segments(st, by)
        texts = s.scored_texts(events, day)
        for line in s.summary(texts):
            console.print(f"• {line}", highlight=False)
        signals = s.customer_signals(events, day)
        console.print(f"• {len(signals):,} customers wrote or filed something; "
                      f"{int((signals['negative_texts_90d'] > 0).sum()):,} wrote something negative in the last 90 "
                      f"days; {int((signals['open_complaints'] > 0).sum()):,} have an open complaint. "
                      f"{signals.attrs['note']}", highlight=False)
        table = signals.reset_index()
        if texts["scored"].sum() >= 20:
            th = s.themes_by_segment(texts, seg if seg is not None else pd.Series(dtype="string"),
                                     n_themes=themes)
            if seg is None:
                th["segment"] = "all customers"
            t = Table("segment", "theme", "texts", "share", "mean sentiment", "example", title="What people write about")
            for r in th.itertuples(index=False):
                t.add_row(str(r.segment), r.theme, f"{r.texts:,}", "" if pd.isna(r.share) else f"{r.share:.0%}",
                          "" if pd.isna(r.mean_sentiment) else f"{r.mean_sentiment:+.2f}", r.example)
            console.print(t)
            if by is not None:
                table = th
        else:
            console.print("• Too few English texts (fewer than 20) to find themes.", highlight=False)
    if to is not None:
        from clientfolio.core.safecsv import write_frame

        write_frame(table, to)
        console.print(f"table: [bold]{to}[/]")


def retention_cmd(store: StoreOpt = "clientfolio.duckdb", by: ByOpt = None, as_of: AsOfOpt = None,
                  cohort: Annotated[str, typer.Option(help="Cohort length: quarter or month.")] = "quarter",
                  lapse_days: Annotated[Optional[int], typer.Option(help="Lapse window in days (default: from the "
                                                                         "shop's own purchase rhythm).")] = None,
                  to: ToOpt = None) -> None:
    """Retention curves per acquisition cohort (or per segment with --by): the share still buying N days after
    their first purchase, with 95% intervals, and whether recent customers stay longer than earlier ones."""
    from clientfolio.core.errors import ClientfolioError
    from clientfolio.predict import retention as r
    from clientfolio.store import open_store

    day_option("--as-of", as_of)
    _check_to(to)
    with handled("the store is unchanged."):
        if cohort not in ("quarter", "month"):
            raise ClientfolioError(f"--cohort must be quarter or month, got {cohort!r}")
        if lapse_days is not None and lapse_days < 1:
            raise ClientfolioError(f"--lapse-days must be 1 or more, got {lapse_days}")
        with open_store(existing_store(store)) as st:
            tx = st.query("SELECT customer_id, ts, amount FROM transactions WHERE customer_id IS NOT NULL")
            day = _as_of(st, "transactions", as_of)
            seg = _segments(st, by)
        res = r.retention(tx, day, segments=seg, by=by or "cohort", freq="Q" if cohort == "quarter" else "M",
                          lapse_days=lapse_days)
        for line in res.sentences():
            console.print(f"• {line}", highlight=False)
        days = [c.removeprefix("retained_") for c in res.table.columns if c.startswith("retained_")]
        t = Table(res.by, "customers", "too recent", *[f"still buying at {d} (95% CI)" for d in days], "note",
                  title="Share still buying N days after the first purchase")
        for row in res.table.to_dict("records"):
            cells = []
            for d in days:
                v = row.get(f"retained_{d}")
                cells.append("" if v is None or pd.isna(v) else
                             f"{v:.0%} ({row[f'low_{d}']:.0%}–{row[f'high_{d}']:.0%})")
            t.add_row(str(row[res.by]), f"{row['customers']:,}", f"{row['too_recent']:,}", *cells, row.get("note") or "")
        console.print(t)
        console.print(f"{res.coverage}; empty: not enough follow-up yet.", highlight=False)
    if to is not None:
        from clientfolio.core.safecsv import write_frame

        write_frame(res.table, to)
        console.print(f"table: [bold]{to}[/]")


def register(app: typer.Typer) -> None:
    app.command("sentiment")(sentiment_cmd)
    app.command("retention-curves")(retention_cmd)
