"""Group commit for single posted events: concurrent POSTs of one workspace share one live update.

A POST of one order, refund or event is checked at the door (its body, its rows), then queued
for its workspace.  One writer per workspace takes what is waiting (at most `max_events`) and
applies it with ONE ``LivePortfolio.update``: one transaction, one commit, the outbox rows in it.
Every request is then answered with its own part: its changes, its outbox messages, whether it
was applied or skipped (sent before), and each is answered only after the commit (a 2xx means
written).  While a group is written the next requests queue, so groups grow with the load and a
lone request waits for nobody.

What keeps each answer the same as if the request had been applied alone:

- a customer, and an event key, is in at most one request of a group; a later request for them
  waits for the next group (in arrival order), so a duplicate is answered "skipped" as before;
- requests are grouped only when their customers would be scored at the same day (the later of
  the event's day and the day their row stands at): a group's update scores everyone at one day;
- a request whose customer cannot take it (an event for someone who never bought) fails alone,
  before the group is applied; a key applied before is answered "skipped" without the update;
- if the group's update fails, its requests are applied one by one, each failing or not alone;
- two workspaces never share a writer, a group or a transaction (the queue is per workspace uid).

Cancellations and ``POST /v1/batch`` are applied on their own, as before (a batch is a group).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from anyio import to_thread

from clientfolio.service.errors import ApiError
from clientfolio.service.schemas import BatchIn, EventIn, OrderIn, RefundIn, UpdateOut

if TYPE_CHECKING:
    from clientfolio.live import LivePortfolio, LiveResult
    from clientfolio.service.deps import Ctx
    from clientfolio.store import Store

log = logging.getLogger("clientfolio.service")
SCAN = 4  # a group is picked from at most SCAN * max_events waiting requests


# ---------------------------------------------------------------------------- rows of a request

def ts_utc(t: Any) -> pd.Timestamp:
    """A posted time as the store keeps it: UTC, without a zone."""
    try:
        ts = pd.Timestamp(t)
        return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    except (OverflowError, ValueError):  # outside what pandas can hold
        raise ApiError(f"time {t} is outside the range of times this service can store", status=422) from None


def order_dicts(orders: list[OrderIn], refunds: list[RefundIn]) -> list[dict[str, Any]]:
    """Order lines (and refunds as negative lines) as dicts; a 422 for an order with both or neither of amount/lines."""
    rows: list[dict[str, Any]] = []
    for o in orders:
        if (o.amount is None) == (o.lines is None):
            raise ApiError(f"order {o.order_id}: give either amount or lines, not both or neither", status=422)
        base = {"customer_id": o.customer_id, "order_id": o.order_id, "ts": ts_utc(o.ts), "source": o.source or "live",
                "channel": o.channel}
        if o.lines is None:
            rows.append({**base, "amount": o.amount, "line_key": "0"})
        else:
            for i, line in enumerate(o.lines):
                rows.append({**base, **line.model_dump(), "line_key": str(i)})
    for r in refunds:
        rows.append({"customer_id": r.customer_id, "order_id": r.refund_id, "ts": ts_utc(r.ts),
                     "source": r.source or "live", "amount": -abs(r.amount), "is_refund": True, "line_key": "0"})
    return rows


def event_dicts(events: list[EventIn]) -> list[dict[str, Any]]:
    return [{"event_id": e.event_id, "customer_id": e.customer_id, "ts": ts_utc(e.ts), "type": e.type,
             "properties": e.properties} for e in events]


def orders_frame(rows: list[dict[str, Any]]) -> pd.DataFrame | None:
    """The order lines as the live update takes them.  One line is given as plain values (the time as ISO text,
    absent values left out), which the update reads without pandas' per-column work (the same lines either way:
    its one-line path gives the frame its general path would)."""
    if not rows:
        return None
    if len(rows) == 1:
        one = {k: v for k, v in rows[0].items() if v is not None}
        one["ts"] = one["ts"].isoformat()
        return pd.DataFrame([one])
    df = pd.DataFrame(rows)
    if "is_refund" in df:
        df["is_refund"] = df["is_refund"].fillna(False).astype(bool)
    return df


def events_frame(rows: list[dict[str, Any]]) -> pd.DataFrame | None:
    return pd.DataFrame(rows) if rows else None


def unknown_customers(st: "Store", wanted: set[str]) -> set[str]:
    """Of `wanted`, those who have not bought (no row, or no purchase day left): one query."""
    from clientfolio.store import IDS_IN

    if not wanted:
        return set()
    known = st.query(f"SELECT customer_id FROM customer_state WHERE {IDS_IN} AND stat_n_days > 0", [sorted(wanted)])
    return set(wanted) - set(known["customer_id"].astype(str))


def not_bought_error(unknown: set[str]) -> ApiError:
    shown = ", ".join(repr(u) for u in sorted(unknown)[:5]) + (" ..." if len(unknown) > 5 else "")
    return ApiError(f"events, refunds and negative orders are applied to customers who have bought; no "
                    f"purchase is known for {shown}: post their order first (in the same batch is fine)", status=422)


def buyers_of(orders: list[OrderIn]) -> set[str]:
    """Customers who buy in these orders: an order with a line that is not a refund (amount 0 or more)."""
    return {o.customer_id for o in orders
            if (o.amount is not None and o.amount >= 0) or any(line.amount >= 0 for line in o.lines or [])}


def answer(result: "LiveResult") -> UpdateOut:
    """The API's answer for a live update's result (the whole of it)."""
    from clientfolio.service.deps import records

    # most events move nobody: no DataFrame work then
    changes = records(result.changes.drop(columns=["state_id", "event_key"], errors="ignore")) \
        if len(result.changes) else []
    return UpdateOut(applied=result.events_applied, skipped=result.events_skipped,
                     customers_touched=result.customers_touched, rescanned=result.rescanned, outbox=result.outbox,
                     changes=changes, notes=list(result.notes))


def check_known(st: "Store", batch: BatchIn) -> None:
    """Refuse, with a plain 422, what the living portfolio cannot apply yet (instead of failing midway).

    A cancellation must name an order the shop holds (or one in the same batch); an event or a
    refund must be for a customer who has bought before (or buys in the same batch): the living
    portfolio scores buyers only.
    """
    posted = {(o.source or "live", o.order_id) for o in batch.orders}
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
    wanted = ({e.customer_id for e in batch.events} | {r.customer_id for r in batch.refunds}
              | {o.customer_id for o in batch.orders}) - buyers_of(batch.orders)
    unknown = unknown_customers(st, wanted)
    if unknown:
        raise not_bought_error(unknown)


@dataclass(eq=False)
class Item:
    """One queued request: its workspace context, its body as a batch of one, its rows, keys and customers."""

    ctx: "Ctx"
    batch: BatchIn
    order_rows: list[dict[str, Any]]
    event_rows: list[dict[str, Any]]
    keys: frozenset[str]
    customers: frozenset[str]
    wanted: frozenset[str]  # customers who must have bought before (events, refunds, negative orders)
    future: "asyncio.Future[UpdateOut]"
    result: UpdateOut | None = None
    error: BaseException | None = None
    deferred: bool = False

    @classmethod
    def of(cls, ctx: "Ctx", batch: BatchIn) -> "Item":
        """A single order, refund or event: rows built (a malformed order fails here, alone) and keyed."""
        orows = order_dicts(batch.orders, batch.refunds)
        erows = event_dicts(batch.events)
        keys = {f"order:{r['source']}:{r['order_id']}" for r in orows} | {f"event:{r['event_id']}" for r in erows}
        customers = {r["customer_id"] for r in orows} | {r["customer_id"] for r in erows}
        return cls(ctx, batch, orows, erows, frozenset(keys), frozenset(customers),
                   frozenset(customers - buyers_of(batch.orders)), asyncio.get_running_loop().create_future())

    @property
    def uid(self) -> str:
        return self.ctx.held.workspace.uid


# ---------------------------------------------------------------------------- one request, alone

def apply_alone(ctx: "Ctx", st: "Store", batch: BatchIn, live: "LivePortfolio | None" = None,
                rows: tuple[list[dict], list[dict]] | None = None) -> UpdateOut:
    """`batch` applied by one update and written before this returns (the caller holds the workspace's store).

    `rows`: its order and event rows, built already (else built here)."""
    live = live if live is not None else ctx.live(st)
    check_known(st, batch)
    orows, erows = rows if rows is not None else (order_dicts(batch.orders, batch.refunds), event_dicts(batch.events))
    result = live.update(orders_frame(orows), events_frame(erows),
                         cancellations=[(c.source, c.order_id) for c in batch.cancellations] or None,
                         as_of=pd.Timestamp(batch.as_of) if batch.as_of else None, durable=True)
    if not result.durable:
        raise ApiError("the update could not be written; nothing of it was kept, post it again", status=503)
    return answer(result)


# ---------------------------------------------------------------------------- a group, in a worker thread

def run_group(group: list[Item]) -> None:
    """Apply `group` (one workspace's requests) and set each item's result, error or deferral; never raises."""
    ctx = group[0].ctx
    try:
        with ctx.session() as st:
            live = ctx.live(st)
            if len(group) == 1:
                _alone(ctx, st, group[0], live)
                return
            live.flush()  # write-behind: what a batch buffered is in the store before the group's checks read it
            todo = _checked(st, group)
            if len(todo) == 1:
                _alone(ctx, st, todo[0], live)
            elif todo:
                _together(ctx, st, live, todo)
    except BaseException as exc:  # the store could not even be used: every unanswered request gets the error
        for it in group:
            if it.result is None and it.error is None and not it.deferred:
                it.error = exc


def _alone(ctx: "Ctx", st: "Store", it: Item, live: "LivePortfolio | None") -> None:
    try:
        it.result = apply_alone(ctx, st, it.batch, live, (it.order_rows, it.event_rows))
    except Exception as exc:
        it.error = exc


def _checked(st: "Store", group: list[Item]) -> list[Item]:
    """What the group's update takes: requests whose customers can take them, not applied before, and
    scored at the same day as the first of them (the others wait for the next group)."""
    # customers who must have bought: one query for the group; a request for someone who has not fails alone
    unknown = unknown_customers(st, set().union(*(it.wanted for it in group)))
    todo = []
    for it in group:
        if it.wanted & unknown:
            it.error = not_bought_error(set(it.wanted & unknown))
        else:
            todo.append(it)
    # sent before: answered as a lone repeat is ("skipped", nothing touched), without the update
    done = st.applied_event_keys(sorted(set().union(*(it.keys for it in todo)))) if todo else set()
    fresh = []
    for it in todo:
        if it.keys <= done:
            it.result = UpdateOut(applied=0, skipped=len(it.keys), customers_touched=0, rescanned=0, outbox=0,
                                  changes=[], notes=[])
        else:
            fresh.append(it)
    if len(fresh) <= 1:
        return fresh
    # the day each would be scored at alone: the later of its latest time and the day its customers' rows stand at
    from clientfolio.store import IDS_IN

    ids = sorted(set().union(*(it.customers for it in fresh)))
    _, rows = st.fetch(f"SELECT customer_id, as_of FROM customer_state WHERE {IDS_IN}", [ids])
    stands = {str(cid): pd.Timestamp(a).normalize() for cid, a in rows if a is not None}
    first = None
    out = []
    for it in fresh:
        times = [r["ts"] for r in it.order_rows] + [r["ts"] for r in it.event_rows]
        day = max([max(times).normalize(), *(stands[c] for c in it.customers if c in stands)])
        if first is None:
            first = day
        if day == first:
            out.append(it)
        else:
            it.deferred = True
    return out


def _together(ctx: "Ctx", st: "Store", live: "LivePortfolio", items: list[Item]) -> None:
    """ONE update for `items` (distinct customers and keys, one scoring day), then each request's own answer.

    If the update fails (nothing of it written), the requests are applied one by one, each failing alone."""
    try:
        result = live.update(orders_frame([r for it in items for r in it.order_rows]),
                             events_frame([r for it in items for r in it.event_rows]), durable=True)
        if not result.durable:
            raise ApiError("the update could not be written; nothing of it was kept, post it again", status=503)
    except Exception as exc:
        log.info("a group of %d events failed together (%s); applied one by one", len(items), exc)
        for it in items:
            _alone(ctx, st, it, None)
        return
    try:
        _answers(st, result, items)
    except Exception as exc:  # written, but not answerable request by request: say so, never a wrong answer
        log.exception("a group of %d events was written but could not be answered one by one", len(items))
        for it in items:
            it.result, it.error = None, exc


def _answers(st: "Store", result: "LiveResult", items: list[Item]) -> None:
    """Each request's part of the group's result."""
    from clientfolio.service.deps import records

    expected = sum(len(it.keys) for it in items)
    if result.events_applied != expected:
        # another process applied some of these keys between the check and the update (PostgreSQL, two
        # writers): which ones cannot be told apart now; posting again answers each exactly (idempotent)
        for it in items:
            it.error = ApiError("another writer applied some of these events at the same moment; post this one "
                                "again (it is idempotent: a repeat is answered as applied before)", status=409)
        return
    by_customer: dict[str, list[dict]] = {}
    if len(result.changes):
        for rec in records(result.changes.drop(columns=["state_id", "event_key"], errors="ignore")):
            by_customer.setdefault(str(rec["customer_id"]), []).append(rec)
    outbox = _outbox_counts(st, result, items, by_customer)
    rescanned = set(result.rescanned_ids)
    if len(rescanned) != result.rescanned:
        raise RuntimeError("the live update counted rescanned customers without naming them")
    for it in items:
        mine = [rec for c in sorted(it.customers) for rec in by_customer.get(c, [])]
        it.result = UpdateOut(applied=len(it.keys), skipped=0, customers_touched=len(it.customers),
                              rescanned=len(it.customers & rescanned), outbox=sum(outbox.get(c, 0) for c in it.customers),
                              changes=mine, notes=list(result.notes))


def _outbox_counts(st: "Store", result: "LiveResult", items: list[Item],
                   by_customer: dict[str, list[dict]]) -> dict[str, int]:
    """Outbox messages the update queued, per customer (read back by change id when several customers moved)."""
    if not result.outbox:
        return {}
    movers = [c for c in by_customer]
    if len(movers) == 1:
        return {movers[0]: result.outbox}
    ids = [int(rec["change_id"]) for recs in by_customer.values() for rec in recs]
    marks = ", ".join("?" * len(ids))
    _, rows = st.fetch(f"SELECT customer_id, count(*) FROM outbox WHERE change_id IN ({marks}) GROUP BY customer_id",
                       ids)
    counts = {str(c): int(n) for c, n in rows}
    if sum(counts.values()) != result.outbox:
        raise RuntimeError(f"the outbox holds {sum(counts.values())} messages of this update's changes; "
                           f"the update queued {result.outbox}")
    return counts


# ---------------------------------------------------------------------------- the queues

class GroupCommit:
    """Per-workspace queues of single events and one writer each (an asyncio task that applies a group in a
    worker thread).  `max_events` 1 turns grouping off (each request is applied alone, in arrival order)."""

    def __init__(self, max_events: int = 64) -> None:
        self.max_events = max(1, int(max_events))
        self._queues: dict[str, deque[Item]] = {}
        self._writers: dict[str, asyncio.Task] = {}
        self.groups = 0  # groups applied, and the requests in them (for tests and the benchmark)
        self.grouped = 0

    async def submit(self, item: Item) -> UpdateOut:
        """Queue `item` for its workspace's writer; its answer once the group holding it is written."""
        uid = item.uid
        self._queues.setdefault(uid, deque()).append(item)
        if uid not in self._writers:
            self._writers[uid] = asyncio.get_running_loop().create_task(self._drain(uid))
        return await item.future

    def _take(self, q: deque[Item]) -> list[Item]:
        """The next group: in arrival order, each customer and event key at most once; a request meeting one
        already taken (or one left waiting) waits, so a customer's requests keep their order."""
        if self.max_events == 1:
            return [q.popleft()]
        group: list[Item] = []
        rest: list[Item] = []
        seen_c: set[str] = set()
        seen_k: set[str] = set()
        uid = q[0].uid
        scanned = 0
        while q and len(group) < self.max_events and scanned < SCAN * self.max_events:
            it = q.popleft()
            scanned += 1
            if it.uid != uid:  # never: the queue is per workspace uid; kept out of any group all the same
                raise RuntimeError("a request of another workspace in this workspace's queue")
            if it.customers & seen_c or it.keys & seen_k:
                rest.append(it)
            else:
                group.append(it)
            seen_c |= it.customers
            seen_k |= it.keys
        q.extendleft(reversed(rest))
        return group

    async def _drain(self, uid: str) -> None:
        q = self._queues[uid]
        try:
            while q:
                group = self._take(q)
                await to_thread.run_sync(run_group, group)
                back = [it for it in group if it.deferred]
                for it in group:
                    if it.deferred:
                        continue
                    if not it.future.done():
                        if it.error is not None:
                            it.future.set_exception(it.error)
                        else:
                            it.future.set_result(it.result)  # type: ignore[arg-type]
                self.groups += 1
                self.grouped += len(group) - len(back)
                for it in back:
                    it.deferred = False
                q.extendleft(reversed(back))
        finally:
            del self._writers[uid]
            if not q:
                del self._queues[uid]
            else:  # cancelled (shutting down): whoever still waits is told
                while q:
                    it = q.popleft()
                    if not it.future.done():
                        it.future.set_exception(ApiError("the service is stopping; post it again", status=503))
