"""Segments (sizes, KPIs, trends from snapshots) and the change log."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Query

from clientfolio.service.deps import ReadCtx, records
from clientfolio.service.errors import NotFound
from clientfolio.service.routes.customers import SEG, kind_column, state_columns
from clientfolio.service.schemas import Page
from clientfolio.store import Store

router = APIRouter(tags=["segments"])
KPI_COLUMNS = {"clv": ("avg_clv", "avg"), "p_alive": ("avg_p_alive", "avg"), "churn_risk": ("avg_churn_risk", "avg"),
               "revenue": ("revenue", "sum"), "value_12m": ("value_12m", "sum"), "orders": ("avg_orders", "avg")}


def _sizes(st: Store, kind: str | None = None, segment: str | None = None) -> list[dict[str, Any]]:
    cols = state_columns(st)
    if not cols:
        return []
    kinds = [c for c in cols if c.startswith(SEG) and c != SEG + "rules"]
    if kind is not None:
        kinds = [kind_column(st, kind)] if kind != "rules" else []
    kpis = [f"{fn}({c}) AS {name}" for c, (name, fn) in KPI_COLUMNS.items() if c in cols]
    # the base is the customers who have bought (one whose only order was cancelled has no segments)
    buyers = " WHERE stat_n_days > 0" if "stat_n_days" in cols else ""
    total = int(st.query(f"SELECT count(*) AS n FROM customer_state{buyers}")["n"].iloc[0]) or 1
    out = []
    for col in kinds:
        where, params = f'"{col}" IS NOT NULL', []
        if segment is not None:
            where += f' AND "{col}" = ?'
            params.append(segment)
        df = st.query(f'SELECT "{col}" AS segment, count(*) AS customers{", " if kpis else ""}{", ".join(kpis)} '
                      f"FROM customer_state WHERE {where} GROUP BY 1 ORDER BY 2 DESC", params)
        for r in records(df):
            out.append({"segment_kind": col.removeprefix(SEG), **r, "share": r["customers"] / total})
    return out


@router.get("/segments", summary="Every segment with its size and KPIs")
def list_segments(ctx: ReadCtx) -> dict:
    """Per segment kind and segment: customers, share of the base, average CLV and P(alive), revenue."""
    with ctx.session() as st:
        return {"segments": _sizes(st)}


Kind = Annotated[str, Path(min_length=1, max_length=100)]
Segment = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/segments/{segment_kind}/{segment}", summary="One segment: size, KPIs, trend, recent moves")
def get_segment(ctx: ReadCtx, segment_kind: Kind, segment: Segment,
                days: Annotated[int, Query(ge=1, le=3650, description="Window of the entries/exits count.")] = 30
                ) -> dict:
    """The segment's size and KPIs now, its size in every stored snapshot, and who entered or left lately."""
    with ctx.session() as st:
        sizes = _sizes(st, segment_kind, segment)
        if not sizes:
            raise NotFound(f"no segment {segment!r} of kind {segment_kind!r} here")
        trend = st.query("SELECT as_of, count(*) AS customers FROM segment_memberships WHERE segment_kind = ? "
                         "AND segment = ? GROUP BY as_of ORDER BY as_of", [segment_kind, segment])
        since = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(days=days)
        moves = st.query("SELECT coalesce(sum(CASE WHEN to_segment = ? THEN 1 ELSE 0 END), 0) AS entered, "
                         "coalesce(sum(CASE WHEN from_segment = ? THEN 1 ELSE 0 END), 0) AS left_ FROM segment_changes "
                         "WHERE segment_kind = ? AND recorded_at >= ?",
                         [segment, segment, segment_kind, since.to_pydatetime()])
    m = moves.iloc[0] if len(moves) else None
    return {**sizes[0], "trend": records(trend),
            "recent": {"days": days, "entered": _count(m, "entered"), "left": _count(m, "left_")}}


def _count(row: pd.Series | None, col: str) -> int:
    """A count from a one-row aggregate: none (no row, NULL or NaN from an empty window) is 0."""
    return 0 if row is None or pd.isna(row[col]) else int(row[col])


def change_page(st: Store, *, after: int = 0, limit: int = 100, customer_id: str | None = None,
                segment_kind: str | None = None, segment: str | None = None, since: date | None = None,
                cause: str | None = None) -> dict:
    """A page of the change log after change id `after`, filtered; `next_after` continues it."""
    conds, params = ["change_id > ?"], [int(after)]
    for col, val in (("customer_id", customer_id), ("segment_kind", segment_kind), ("cause", cause)):
        if val is not None:
            conds.append(f"{col} = ?")
            params.append(val)
    if segment is not None:
        conds.append("(to_segment = ? OR from_segment = ?)")
        params += [segment, segment]
    if since is not None:
        conds.append("changed_at >= ?")
        params.append(pd.Timestamp(since).to_pydatetime())
    df = st.query("SELECT change_id, customer_id, segment_kind, from_segment, to_segment, changed_at, recorded_at, "
                  "cause, reason, event_key FROM segment_changes WHERE " + " AND ".join(conds)
                  + f" ORDER BY change_id LIMIT {int(limit)}", params)
    return {"items": records(df), "next_after": None if len(df) < limit else int(df["change_id"].iloc[-1])}


@router.get("/changes", summary="The change log, paged", response_model=Page)
def list_changes(
    ctx: ReadCtx,
    after: Annotated[int, Query(ge=0, le=2**62, description="Change id to continue after.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    segment_kind: Annotated[str | None, Query(max_length=100)] = None,
    segment: Annotated[str | None, Query(max_length=200, description="Moves into or out of this segment.")] = None,
    since: Annotated[date | None, Query(description="Only changes on or after this day.")] = None,
    cause: Annotated[str | None, Query(pattern="^(behaviour|time|refit)$")] = None,
) -> dict:
    """Who moved between segments, when, why (in words) and for what cause, oldest first."""
    with ctx.session() as st:
        return change_page(st, after=after, limit=limit, segment_kind=segment_kind, segment=segment, since=since,
                           cause=cause)
