"""Data in: file imports, and orders, refunds, cancellations and events singly or in batches."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, File, UploadFile

from clientfolio.core.errors import ClientfolioError
from clientfolio.service.deps import Ctx, WriteCtx
from clientfolio.service.errors import ApiError
from clientfolio.service.grouping import Item, answer, check_known, event_dicts, events_frame, order_dicts, orders_frame
from clientfolio.service.schemas import BatchIn, CancellationIn, EventIn, OrderIn, RefundIn, UpdateOut

router = APIRouter(tags=["data in"])
REJECTS_SHOWN = 200
SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv", ".xlsx", ".parquet", ".gz")


def apply_batch(ctx: WriteCtx, batch: BatchIn) -> UpdateOut:
    """One live update (one transaction) for everything in `batch`."""
    orders = orders_frame(order_dicts(batch.orders, batch.refunds))
    events = events_frame(event_dicts(batch.events))
    cancels = [(c.source, c.order_id) for c in batch.cancellations]
    with ctx.session() as st:
        live = ctx.live(st)
        check_known(st, batch)
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
    return answer(result)


def _one(**given: Any) -> BatchIn:
    """A batch of one, unchecked (its item was checked as the body), every field given: pydantic's
    model_construct inspects a default factory's signature each time, about a millisecond a request."""
    return BatchIn.model_construct(**{"orders": [], "refunds": [], "cancellations": [], "events": [], "as_of": None,
                                      **given})


async def _queued(ctx: Ctx, batch: BatchIn) -> UpdateOut:
    """A single order, refund or event, through its workspace's group commit (:mod:`clientfolio.service.grouping`)."""
    return await ctx.service.groups.submit(Item.of(ctx, batch))


@router.post("/orders", response_model=UpdateOut, summary="Post one order")
async def post_order(ctx: WriteCtx, order: OrderIn) -> UpdateOut:
    """Apply one order: the customer is re-scored and re-segmented, every move recorded with its reason.

    Idempotent by (source, order_id): posting it again changes nothing."""
    return await _queued(ctx, _one(orders=[order]))


@router.post("/refunds", response_model=UpdateOut, summary="Post one refund")
async def post_refund(ctx: WriteCtx, refund: RefundIn) -> UpdateOut:
    """Apply a refund (a negative order line keyed by refund_id)."""
    return await _queued(ctx, _one(refunds=[refund]))


@router.post("/cancellations", response_model=UpdateOut, summary="Cancel one order")
def post_cancellation(ctx: WriteCtx, cancellation: CancellationIn) -> UpdateOut:
    """Take an order back whole; its customer's history is read again."""
    return apply_batch(ctx, BatchIn(cancellations=[cancellation]))


@router.post("/events", response_model=UpdateOut, summary="Post one event")
async def post_event(ctx: WriteCtx, event: EventIn) -> UpdateOut:
    """Apply one event (support ticket, cart abandon, e-mail click, ...); idempotent by event_id."""
    return await _queued(ctx, _one(events=[event]))


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
