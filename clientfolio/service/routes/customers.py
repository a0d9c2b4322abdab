"""Customers: scores, memberships, the reasons for them, and their change history."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Query

from clientfolio.service.deps import ReadCtx, records
from clientfolio.service.errors import ApiError, NotFound
from clientfolio.service.schemas import CustomerPage, Page
from clientfolio.store import Store

router = APIRouter(tags=["customers"])
SEG = "seg_"
SCORE_NAMES = {"rfm_r": "R", "rfm_f": "F", "rfm_m": "M", "rfm_code": "RFM", "t_days": "T"}
HIDDEN = ("stat_", "state_id")


def state_columns(st: Store) -> list[str]:
    """customer_state's columns ([] before the first analysis)."""
    try:
        return st.customer_state_columns()
    except Exception:  # noqa: BLE001 - no table yet
        return []


def kind_column(st: Store, kind: str) -> str:
    """The column of a segment kind, checked against the table (never a name built from input into SQL)."""
    cols = state_columns(st)
    col = SEG + kind
    if col not in cols:
        kinds = sorted(c.removeprefix(SEG) for c in cols if c.startswith(SEG))
        raise NotFound(f"no segment kind {kind!r} here" + (f"; kinds: {', '.join(kinds)}" if kinds else
                                                           "; the shop has no fitted portfolio yet (POST /v1/refit)"))
    return col


def shape(row: dict[str, Any]) -> dict[str, Any]:
    """A customer_state row as the API shows it: id, scores, segments (rule segments as a list)."""
    scores, segments = {}, {}
    for k, v in row.items():
        if k == "customer_id" or k.startswith(HIDDEN):
            continue
        if k.startswith(SEG):
            kind = k.removeprefix(SEG)
            segments[kind] = json.loads(v) if kind == "rules" and isinstance(v, str) else v
        else:
            scores[SCORE_NAMES.get(k, k)] = v
    return {"customer_id": row["customer_id"], "scores": scores, "segments": segments}


@router.get("/customers", summary="List customers with scores and segments", response_model=CustomerPage)
def list_customers(
    ctx: ReadCtx,
    segment_kind: Annotated[str | None, Query(max_length=100, description="With `segment`: only its members.")] = None,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[str | None, Query(max_length=200, description="Customer id to continue after (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    """Customers ordered by id, a page at a time (`next_after`)."""
    with ctx.session() as st:
        if not state_columns(st):
            return {"items": [], "next_after": None}
        conds, params = [], []
        if segment is not None or segment_kind is not None:
            if segment is None or segment_kind is None:
                raise ApiError("give segment_kind and segment together", status=422)
            col = kind_column(st, segment_kind)
            if segment_kind == "rules":
                conds.append(f'"{col}" LIKE ?')
                params.append("%" + json.dumps(segment)[1:-1].replace("%", "").replace("_", "") + "%")
            else:
                conds.append(f'"{col}" = ?')
                params.append(segment)
        if after is not None:
            conds.append("customer_id > ?")
            params.append(after)
        sql = ("SELECT * FROM customer_state" + (" WHERE " + " AND ".join(conds) if conds else "")
               + f" ORDER BY customer_id LIMIT {int(limit)}")
        df = st.query(sql, params)
    items = [shape(r) for r in records(df)]
    if segment_kind == "rules" and segment is not None:
        items = [i for i in items if segment in (i["segments"].get("rules") or [])]
    return {"items": items, "next_after": None if len(df) < limit else str(df["customer_id"].iloc[-1])}


def _one(st: Store, customer_id: str) -> dict[str, Any]:
    if not state_columns(st):
        raise NotFound(f"no customer {customer_id!r}")
    df = st.query("SELECT * FROM customer_state WHERE customer_id = ?", [customer_id])
    if df.empty:
        raise NotFound(f"no customer {customer_id!r}")
    return records(df)[0]


CustomerId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/customers/{customer_id}", summary="One customer: scores, segments, why, what changed")
def get_customer(ctx: ReadCtx, customer_id: CustomerId) -> dict:
    """The customer's scores and segments, why they are in each segment now, and their last changes."""
    from clientfolio.live.reasons import explain

    with ctx.session() as st:
        row = _one(st, customer_id)
        changes = st.read_changes(customer_id=customer_id)
        live = ctx.live(st)
        thresholds, currency = live.state.thresholds(), live.state.currency
        from clientfolio.predict.stored import customer_prediction

        stored = customer_prediction(st, customer_id)
    out = shape(row)
    plain = {SCORE_NAMES.get(k, k): v for k, v in row.items() if not k.startswith(HIDDEN)}
    why = {}
    for kind, seg in out["segments"].items():
        names = seg if isinstance(seg, list) else [] if seg is None else [seg]
        for name in names:
            since = changes[(changes["segment_kind"] == kind) & (changes["to_segment"] == name)]
            entry: dict[str, Any] = {"segment": name}
            try:
                entry["why"] = explain(kind, None, {**plain, "segment": name}, thresholds, currency)
            except Exception:  # noqa: BLE001 - a kind without a reason builder: say when it entered instead
                entry["why"] = None
            if len(since):
                last = since.iloc[-1]
                entry["since"] = pd.Timestamp(last["changed_at"]).isoformat()
                entry["entered_because"] = last["reason"]
            why.setdefault(kind, []).append(entry)
    out["why"] = why
    out["changes"] = records(changes.drop(columns=["state_id"], errors="ignore").tail(50))
    # Churn risk (no order in the next N days) and next order when predictions were made: as of their own day.
    out["predictions"] = stored
    return out


@router.get("/customers/{customer_id}/changes", summary="One customer's change history", response_model=Page)
def customer_changes(ctx: ReadCtx, customer_id: CustomerId,
                     after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """Every segment change of the customer, oldest first, with cause and reason."""
    from clientfolio.service.routes.segments import change_page

    with ctx.session() as st:
        _one(st, customer_id)
        return change_page(st, after=after, limit=limit, customer_id=customer_id)
