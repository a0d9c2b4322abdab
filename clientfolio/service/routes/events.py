"""Data in: file imports, and orders, refunds, cancellations and events singly or in batches."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, File, UploadFile

from clientfolio.core.errors import ClientfolioError
from clientfolio.service.deps import WriteCtx
from clientfolio.service.errors import ApiError
from clientfolio.service.schemas import BatchIn, CancellationIn, EventIn, OrderIn, RefundIn, UpdateOut

router = APIRouter(tags=["data in"])
REJECTS_SHOWN = 200
SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv", ".xlsx", ".parquet", ".gz")


def _ts(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _order_rows(orders: list[OrderIn], refunds: list[RefundIn]) -> pd.DataFrame | None:
    rows: list[dict[str, Any]] = []
    for o in orders:
        if (o.amount is None) == (o.lines is None):
            raise ApiError(f"order {o.order_id}: give either amount or lines, not both or neither", status=422)
        base = {"customer_id": o.customer_id, "order_id": o.order_id, "ts": _ts(o.ts), "source": o.source or "live",
                "channel": o.channel}
        if o.lines is None:
            rows.append({**base, "amount": o.amount, "line_key": "0"})
        else:
            for i, line in enumerate(o.lines):
                rows.append({**base, **line.model_dump(), "line_key": str(i)})
    for r in refunds:
        rows.append({"customer_id": r.customer_id, "order_id": r.refund_id, "ts": _ts(r.ts), "source": r.source or "live",
                     "amount": -abs(r.amount), "is_refund": True, "line_key": "0"})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    if "is_refund" in df:
        df["is_refund"] = df["is_refund"].fillna(False).astype(bool)
    return df


def _event_rows(events: list[EventIn]) -> pd.DataFrame | None:
    if not events:
        return None
    return pd.DataFrame([{"event_id": e.event_id, "customer_id": e.customer_id, "ts": _ts(e.ts), "type": e.type,
                          "properties": e.properties} for e in events])


def apply_batch(ctx: WriteCtx, batch: BatchIn) -> UpdateOut:
    """One live update (one transaction) for everything in `batch`."""
    from clientfolio.service.deps import records

    orders = _order_rows(batch.orders, batch.refunds)
    events = _event_rows(batch.events)
    cancels = [(c.source, c.order_id) for c in batch.cancellations]
    with ctx.session() as st:
        live = ctx.live(st)
        _check_known(st, batch)
        result = live.update(orders, events, cancellations=cancels or None,
                             as_of=pd.Timestamp(batch.as_of) if batch.as_of else None, durable=False)
    if not result.durable:
        # Group commit: the requests that queued for the lock meanwhile buffered theirs too; whoever
        # gets the lock first writes them all in one transaction.  Answered only once written.
        with ctx.session():
            if not result.durable:
                live.flush()
        if not result.durable:
            raise ApiError("the update could not be written; nothing of it was kept, post it again", status=503)
    # most events move nobody: no DataFrame work then
    changes = records(result.changes.drop(columns=["state_id", "event_key"], errors="ignore")) if len(result.changes) else []
    return UpdateOut(applied=result.events_applied, skipped=result.events_skipped,
                     customers_touched=result.customers_touched, rescanned=result.rescanned, outbox=result.outbox,
                     changes=changes, notes=list(result.notes))


def _check_known(st: Any, batch: BatchIn) -> None:
    """Refuse, with a plain 422, what the living portfolio cannot apply yet (instead of failing midway).

    A cancellation must name an order the shop holds (or one in the same batch); an event or a
    refund must be for a customer who has bought before (or buys in the same batch): the living
    portfolio scores buyers only.
    """
    from clientfolio.store import IDS_IN

    posted = {(o.source or "live", o.order_id) for o in batch.orders}
    # customers who buy in this batch: an order with a line that is not a refund (amount 0 or more)
    buyers = {o.customer_id for o in batch.orders
              if (o.amount is not None and o.amount >= 0) or any(line.amount >= 0 for line in o.lines or [])}
    done = st.applied_event_keys([f"cancel:{c.source}:{c.order_id}" for c in batch.cancellations]) \
        if batch.cancellations else set()
    # in this batch, or cancelled before (then skipped: idempotent); the others are looked up together
    asked = [c for c in batch.cancellations
             if (c.source, c.order_id) not in posted and f"cancel:{c.source}:{c.order_id}" not in done]
    held: set[tuple[str, str]] = set()
    ids = sorted({c.order_id for c in asked})
    for i in range(0, len(ids), 1000):
        part = ids[i:i + 1000]
        _, rows = st.fetch(f"SELECT DISTINCT source, order_id FROM transactions WHERE order_id IN "
                           f"({', '.join('?' * len(part))})", part)
        held.update((str(r[0]), str(r[1])) for r in rows)
    for c in asked:
        if (c.source, c.order_id) not in held:
            raise ApiError(f"no order {c.order_id!r} from source {c.source!r} in this shop to cancel", status=404)
    wanted = sorted(({e.customer_id for e in batch.events} | {r.customer_id for r in batch.refunds}
                     | {o.customer_id for o in batch.orders}) - buyers)
    if wanted:
        known = st.query(f"SELECT customer_id FROM customer_state WHERE {IDS_IN} AND stat_n_days > 0", [wanted])
        unknown = sorted(set(wanted) - set(known["customer_id"].astype(str)))
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise ApiError(f"events, refunds and negative orders are applied to customers who have bought; no "
                           f"purchase is known for {shown}: post their order first (in the same batch is fine)",
                           status=422)


@router.post("/orders", response_model=UpdateOut, summary="Post one order")
def post_order(ctx: WriteCtx, order: OrderIn) -> UpdateOut:
    """Apply one order: the customer is re-scored and re-segmented, every move recorded with its reason.

    Idempotent by (source, order_id): posting it again changes nothing."""
    return apply_batch(ctx, BatchIn(orders=[order]))


@router.post("/refunds", response_model=UpdateOut, summary="Post one refund")
def post_refund(ctx: WriteCtx, refund: RefundIn) -> UpdateOut:
    """Apply a refund (a negative order line keyed by refund_id)."""
    return apply_batch(ctx, BatchIn(refunds=[refund]))


@router.post("/cancellations", response_model=UpdateOut, summary="Cancel one order")
def post_cancellation(ctx: WriteCtx, cancellation: CancellationIn) -> UpdateOut:
    """Take an order back whole; its customer's history is read again."""
    return apply_batch(ctx, BatchIn(cancellations=[cancellation]))


@router.post("/events", response_model=UpdateOut, summary="Post one event")
def post_event(ctx: WriteCtx, event: EventIn) -> UpdateOut:
    """Apply one event (support ticket, cart abandon, e-mail click, ...); idempotent by event_id."""
    return apply_batch(ctx, BatchIn(events=[event]))


@router.post("/batch", response_model=UpdateOut, summary="Post orders, refunds, cancellations and events together")
def post_batch(ctx: WriteCtx, batch: BatchIn) -> UpdateOut:
    """Apply a batch in one transaction (all or nothing); items applied before are skipped."""
    return apply_batch(ctx, batch)


@router.post("/imports", summary="Import an export file")
def post_import(ctx: WriteCtx, file: Annotated[UploadFile, File(description="An order, customer, event or "
                                                                              "marketing-spend export")]) -> dict:
    """Import a file with the usual row accounting (every row stored, rejected with a reason, or a duplicate).

    If the shop has a fitted portfolio, the imported orders and events are applied to it at once.
    """
    from clientfolio.ingest import import_files

    name = Path(file.filename or "upload.csv").name
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-120:] or "upload.csv"
    if not safe.lower().endswith(SUFFIXES):
        safe += ".csv"
    with tempfile.TemporaryDirectory(prefix="cf-import-") as tmp:
        path = Path(tmp) / safe
        with open(path, "wb") as fh:
            while chunk := file.file.read(1 << 20):
                fh.write(chunk)
        with ctx.session() as st:
            try:
                result = import_files([path], st, rejects_dir=ctx.files / "rejects")
            except ClientfolioError as exc:  # said about the uploaded file, not the server's temporary copy
                raise ApiError(str(exc).replace(str(path), name).replace(tmp, "")) from None
            moved = None
            if st.load_state() is not None:
                moved = ctx.live(st).catch_up()
    rejects = _rejects(result.rejects_path)
    return {
        "import_id": result.import_id,
        "balanced": result.balanced,
        "files": [{"file": name, "layout": f.layout, "table": f.table, "rows_in": f.rows_in,
                   "rows_stored": f.rows_stored, "rows_new": f.rows_new, "rows_updated": f.rows_updated,
                   "rows_rejected": f.rows_rejected, "rows_deduplicated": f.rows_deduplicated,
                   "rows_erased": f.rows_erased, "balanced": f.balanced,
                   "rejected_by_reason": dict(f.rejected_by_reason), "notes": [str(n) for n in f.notes]}
                  for f in result.files],
        "rejects": rejects,
        "rejects_shown": len(rejects),
        "changes": None if moved is None else int(len(moved.changes)),
    }


def _rejects(path: Path | None) -> list[dict]:
    """The first rejected rows (row, column, value, reason), without the server's file paths."""
    if path is None or not Path(path).exists():
        return []
    from clientfolio.service.deps import records

    df = pd.read_csv(path, dtype=str, nrows=REJECTS_SHOWN, keep_default_na=False)
    if "file" in df:
        df["file"] = df["file"].map(lambda p: Path(p).name)
    return records(df)
