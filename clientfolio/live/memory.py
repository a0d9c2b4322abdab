"""Per-event updates from memory, written behind: what a buffered :class:`~clientfolio.live.LivePortfolio` does.

An unbuffered update reads about a dozen things from the store for one order (the customer's row,
their 12-month value, whether the order or event was applied before, their attributes, ...) and
writes in its own transaction.  A buffered one (``LivePortfolio(store, buffered=True)``) reads them
once, in bulk, into this in-memory copy, computes each event with the very same code
(:meth:`LivePortfolio._plan_few`, reading through :class:`Memory` instead of the store), and keeps
the rows it would write in a buffer that one transaction writes (group commit).

What is kept, and how it stays exact:

- customer_state rows: read in bulk as columns; a customer's row is made a dict when touched, and
  rows computed since stand over the read ones;
- each customer's order days from the 12-month horizon on (revenue and cost per day), plus the lines
  buffered since: the 12-month value at any scoring day inside the horizon, as the store would sum it;
- hashes (64-bit) of every stored order's (source, order_id) and of every applied event key: a
  miss proves "not stored"; a hit (a real one, or a rare collision) sends the event down the
  unbuffered path, which checks exactly;
- customers' attributes (and, for a first order, the customers row the commit will add).

Everything the fast path cannot do exactly goes down the unbuffered path after a flush: cancellations,
back-dated orders (before the customer's last purchase day), edits of stored orders, events already
applied, more than a few customers in one update, a scoring day whose 12-month window starts before
the horizon read.  Outbox rows read consent and contact caps from the store, with buffered messages
counted as waiting.

Durability: an event is in the store only once the flush that holds it committed; a crash before
loses the whole flush and nothing else (one transaction).  Staleness: every write that can change
what is kept raises the store's version counter (live_meta ``store_version``); a flush writes only
if the counter still has the value this copy was read at (compare-and-set in the same transaction),
else the copy is read again and the buffered events are computed again from it.  The counter is
also read (at most every `recheck_seconds`) before an event is served from memory.

Costs and limits (measured on 100k customers, see benchmarks/update.py): the copy takes seconds
to read and about 7 KB per customer; every write by another writer (a sweep, an import, a refit)
makes the next event read the whole copy again; rows touched since the read are kept as dicts
beside the columns (they are not folded back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clientfolio.live.portfolio import (
    FEW, FewPlan, LiveResult, OrderLines, StoreReads, _canonical_events, as_frame, canonical_lines, keyed_items, lines_frame,
    column_lists,
    _missing,
)
from clientfolio.live.texts import kept_sentiment
from clientfolio.state.features import ATTRIBUTES_SQL
from clientfolio.store.live import VERSION_KEY, StoreMoved, new_customer_rows, rows_for, table_types
from clientfolio.store.schema import TABLES

if TYPE_CHECKING:
    from clientfolio.live.portfolio import LivePortfolio

ABSENT = object()  # "known not to be in the store" in an overlay
_EPOCH = np.datetime64("1970-01-01", "D")
_CUSTOMER_NAMES = [c for c, _ in TABLES["customers"][0]]
# customers columns as ATTRIBUTES_SQL names them
_ATTR_FROM_CUSTOMERS = {"customer_id": "customer_id", "region": "region", "customer_country": "country",
                        "industry": "industry", "size": "size", "acquisition_channel": "acquisition_channel",
                        "acquisition_cost": "acquisition_cost", "consent_marketing": "consent_marketing",
                        "first_seen": "first_seen"}


def key_hashes(keys: list[str]) -> np.ndarray:
    """64-bit hashes of keys: Python's own string hash (SipHash), the same for a key within this process --
    all an in-memory copy needs (it is read and asked in one process) -- and a fraction of a microsecond
    for one key, where a hashing call through pandas costs tens."""
    return np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))


def order_key(source: Any, order_id: Any) -> str:
    return f"{source}\x1f{order_id}"


def _py(v: Any) -> Any:
    """A value read in bulk as the store's point reads give it: None for missing, datetimes, plain numbers."""
    t = type(v)
    if t is str or t is int or t is bool:  # most cells: as they are
        return v
    if t is float:
        return None if v != v else v
    if _missing(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v).to_pydatetime()
    if isinstance(v, np.generic):
        return v.item()
    return v


class _KeySet:
    """A set of 64-bit key hashes (`key_hashes`): a sorted array read in bulk, and a Python set of those added
    since."""

    def __init__(self, keys: list[str]) -> None:
        self.base = np.unique(key_hashes(keys))
        self.added: set[int] = set()

    def maybe(self, keys: list[str]) -> bool:
        """Could any of these keys be in the set? (False is certain; True may be a collision.)"""
        base, n = self.base, len(self.base)
        for h in map(hash, keys):
            if h in self.added:
                return True
            at = int(base.searchsorted(h))  # a Python int within int64: no conversion of the array
            if at < n and base[at] == h:
                return True
        return False

    def add(self, keys: list[str]) -> None:
        self.added.update(map(hash, keys))


@dataclass
class _Pending:
    """One buffered update: what it writes, and what it was given (to compute it again if the store moved)."""

    plan: FewPlan
    tx: pd.DataFrame | OrderLines | None
    ev: pd.DataFrame | None
    keys: list[str]
    new_customers: list[tuple]
    result: LiveResult
    given: tuple  # (orders, events, as_of) as the caller gave them


@dataclass
class _Copy:
    """The in-memory copy of what per-event updates read (see the module's docstring)."""

    version: str
    cols: list[str]
    state: dict[str, np.ndarray]
    pos: dict[str, int]
    horizon: int  # first day (days since 1970-01-01) of the order days read
    line_slices: dict[str, tuple[int, int]]
    line_day: np.ndarray
    line_rev: np.ndarray
    line_cost: np.ndarray
    attr_cols: list[str]
    attrs: dict[str, np.ndarray]
    attr_pos: dict[str, int]
    orders: _KeySet
    events: _KeySet
    rows: dict[str, Any] = field(default_factory=dict)  # customer -> state row dict (or ABSENT), newer than `state`
    lines: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # customer -> days added since
    lines_replaced: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # read again
    attr_rows: dict[str, Any] = field(default_factory=dict)  # customer -> attributes tuple (or ABSENT)
    checked_at: float = 0.0


class Memory(StoreReads):
    """The buffered, in-memory side of a LivePortfolio (made by ``LivePortfolio(store, buffered=True)``)."""

    def __init__(self, live: "LivePortfolio", flush_every: int = 256, recheck_seconds: float = 1.0) -> None:
        super().__init__(live)
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        self.flush_every = int(flush_every)
        self.recheck_seconds = float(recheck_seconds)
        self.copy: _Copy | None = None
        self.pending: list[_Pending] = []
        self._pending_events = 0  # events in `pending`
        self.loads = 0  # how often the copy was read (tests and benchmarks look)
        self.redone = 0  # flushes refused because the store moved, then computed again
        self.fallbacks = 0  # updates sent down the unbuffered path

    # ------------------------------------------------------------------------ the copy
    def invalidate(self) -> None:
        """Drop the copy (read again before the next event); buffered events must have been flushed."""
        assert not self.pending, "flush before dropping the in-memory copy"
        self.copy = None

    def _version(self) -> str:
        store = self.live.store
        _, rows = store.fetch("SELECT value FROM live_meta WHERE key = ?", [VERSION_KEY])
        if rows:
            return str(rows[0][0])
        with store.transaction() as tx:  # a store from before the counter: start it
            tx.execute("INSERT INTO live_meta (key, value) VALUES (?, '0') ON CONFLICT (key) DO NOTHING",
                       [VERSION_KEY])
        return str(store.fetch("SELECT value FROM live_meta WHERE key = ?", [VERSION_KEY])[1][0][0])

    def load(self) -> _Copy:
        """Read everything per-event updates need, in bulk (a few seconds for 100k customers)."""
        store = self.live.store
        version = self._version()
        rows = store.read_customer_state()
        cols = list(rows.columns)
        state = {c: rows[c].to_numpy(dtype=object) for c in cols}
        ids = [str(c) for c in state["customer_id"]]
        pos = dict(zip(ids, range(len(ids))))
        as_of = pd.to_datetime(rows["as_of"]) if "as_of" in rows and len(rows) else pd.Series([], dtype="datetime64[ns]")
        first = as_of.min() if len(as_of) and as_of.notna().any() else pd.Timestamp.now().normalize()
        start = pd.Timestamp(first).normalize() - pd.Timedelta(days=365)
        lines = store.query("SELECT customer_id, CAST(ts AS DATE) AS day, sum(amount) AS revenue, "
                            "sum(coalesce(cost, 0)) AS cost FROM transactions WHERE customer_id IS NOT NULL "
                            "AND ts >= ? GROUP BY customer_id, CAST(ts AS DATE) ORDER BY customer_id, day",
                            [start.to_pydatetime()])
        lid = lines["customer_id"].astype(str).to_numpy(dtype=object)
        days = (pd.to_datetime(lines["day"]).to_numpy().astype("datetime64[D]") - _EPOCH).astype(np.int64)
        slices: dict[str, tuple[int, int]] = {}
        if len(lid):
            change = np.flatnonzero(lid[1:] != lid[:-1]) + 1
            starts = np.concatenate([[0], change])
            ends = np.concatenate([change, [len(lid)]])
            slices = {str(lid[a]): (int(a), int(b)) for a, b in zip(starts, ends)}
        attrs = store.query(ATTRIBUTES_SQL)
        acols = list(attrs.columns)
        aids = [str(c) for c in attrs["customer_id"]]
        okeys = store.query("SELECT DISTINCT source, order_id FROM transactions")
        ekeys = store.query("SELECT event_key FROM applied_events")
        self.copy = _Copy(
            version=version, cols=cols, state=state, pos=pos,
            horizon=int((start.to_datetime64().astype("datetime64[D]") - _EPOCH).astype(np.int64)),
            line_slices=slices, line_day=days, line_rev=lines["revenue"].to_numpy(dtype=float),
            line_cost=lines["cost"].to_numpy(dtype=float), attr_cols=acols,
            attrs={c: attrs[c].to_numpy(dtype=object) for c in acols}, attr_pos=dict(zip(aids, range(len(aids)))),
            orders=_KeySet([order_key(s, o) for s, o in zip(okeys["source"].astype(str), okeys["order_id"].astype(str))]),
            events=_KeySet([str(k) for k in ekeys["event_key"]]), checked_at=time.monotonic())
        self.loads += 1
        return self.copy

    def _ready(self) -> _Copy:
        """The copy, read (again) when there is none or the store moved since it was read."""
        c = self.copy
        if c is None:
            return self.load()
        if not self.pending and time.monotonic() - c.checked_at >= self.recheck_seconds:
            if self._version() != c.version:
                return self.load()
            c.checked_at = time.monotonic()
        return c

    # ------------------------------------------------------------------------ reads, as StoreReads gives them
    def _row(self, c: _Copy, cid: str) -> dict | None:
        got = c.rows.get(cid)
        if got is ABSENT:
            return None
        if got is not None:
            return {k: got.get(k) for k in c.cols}
        i = c.pos.get(cid)
        if i is None:
            return None
        state = c.state
        out = {}
        for k in c.cols:
            v = state[k][i]
            t = type(v)  # _py's first cases, inlined: most cells are plain text and numbers
            if t is str or t is int or t is bool:
                out[k] = v
            elif t is float:
                out[k] = None if v != v else v
            else:
                out[k] = _py(v)
        return out

    def rows(self, ids: list[str]) -> tuple[list[str], dict[str, dict]]:
        c = self.copy
        assert c is not None
        out = {}
        for cid in ids:
            r = self._row(c, cid)
            if r is not None:
                out[cid] = r
        return list(c.cols), out

    def _days(self, c: _Copy, cid: str) -> list[tuple[int, float, float]]:
        if cid in c.lines_replaced:
            base = c.lines_replaced[cid]
        else:
            a, b = c.line_slices.get(cid, (0, 0))
            base = list(zip(c.line_day[a:b].tolist(), c.line_rev[a:b].tolist(), c.line_cost[a:b].tolist()))
        return base + c.lines.get(cid, [])

    def v12_edited(self, ids: list[str], tx: pd.DataFrame | OrderLines | None, day: pd.Timestamp
                   ) -> tuple[dict[str, tuple[float, float]], bool] | None:
        c = self.copy
        assert c is not None
        d = int((np.datetime64(day.date(), "D") - _EPOCH).astype(np.int64))
        if d - 365 < c.horizon:
            return None  # the window starts before the days read
        v12 = {}
        for cid in ids:
            win = [(r, k) for dd, r, k in self._days(c, cid) if d - 365 <= dd <= d]
            if win:
                rev = sum(r for r, _ in win)
                v12[cid] = (rev, rev - sum(k for _, k in win))
        edited = False
        if tx is not None:
            lists = column_lists(tx)
            pairs = sorted(set(zip(lists["source"], lists["order_id"])))
            edited = c.orders.maybe([order_key(s, o) for s, o in pairs])
        return v12, edited

    def attributes(self, ids: list[str]) -> tuple[list[str], dict[str, tuple]]:
        c = self.copy
        assert c is not None
        out = {}
        for cid in ids:
            got = c.attr_rows.get(cid)
            if got is ABSENT:
                continue
            if got is not None:
                out[cid] = got
                continue
            i = c.attr_pos.get(cid)
            if i is not None:
                out[cid] = tuple(_py(c.attrs[k][i]) for k in c.attr_cols)
        return list(c.attr_cols), out

    def rule_tx(self, ids: list[str], tx: pd.DataFrame | OrderLines | None) -> pd.DataFrame | None:
        frames = [as_frame(p.tx) for p in self.pending if p.tx is not None]
        if tx is not None:
            frames.append(as_frame(tx))
        extra = pd.concat(frames, ignore_index=True) if frames else None
        if extra is not None:
            extra = extra[extra["customer_id"].isin(ids)]
        return self.live._rule_transactions(ids, extra)

    def outbox(self, frame: pd.DataFrame) -> tuple[pd.DataFrame | None, dict[str, int]]:
        waiting = [p.plan.outbox for p in self.pending if p.plan.outbox is not None]
        return self.live._outbox(frame, pd.concat(waiting, ignore_index=True) if waiting else None)

    # ------------------------------------------------------------------------ updates
    def pending_events(self) -> int:
        return self._pending_events

    def update(self, orders: pd.DataFrame | None, events: pd.DataFrame | None,
               cancellations: list[tuple[str, str]] | None, as_of: Any, durable: bool,
               result: LiveResult | None = None) -> LiveResult:
        """See :meth:`LivePortfolio.update`; `result`: fill this object (a redo after the store moved)."""
        given = (orders, events, as_of)
        # one plain order line stays Python values (OrderLines): its frame is made when a flush writes it
        tx = canonical_lines(orders) if orders is not None and len(orders) else None
        ev = _canonical_events(events) if events is not None and len(events) else None
        cancels = [(str(s), str(o)) for s, o in (cancellations or [])]
        out = result if result is not None else LiveResult()
        plan = None if cancels else self._try(tx, ev, as_of, out, given)
        if plan is None:
            self._fallback(as_frame(tx), ev, cancels, as_of, out)
            return out
        if durable or self.pending_events() >= self.flush_every:
            self.flush()
        return out

    def _try(self, tx: pd.DataFrame | OrderLines | None, ev: pd.DataFrame | None, as_of: Any, out: LiveResult,
             given: tuple) -> _Pending | None:
        """Compute the update from memory and buffer it; None when it must take the unbuffered path."""
        if getattr(self.live.state, "prediction_models_", None) is not None:
            # churn risk and next order read the customer's recent history from the store, which does not hold
            # buffered orders yet: a state with prediction models takes the unbuffered path
            return None
        keyed = keyed_items(tx, ev)
        if not keyed:
            return None
        c = self._ready()
        if c.events.maybe(list(keyed)):
            return None  # applied before (or a hash collision): the unbuffered path checks and skips
        touched: dict[str, pd.Timestamp] = {}
        for kind, payload in keyed.values():
            for cid, ts in ([(line["customer_id"], line["ts"]) for line in payload] if kind == "order"
                            else [(str(payload["customer_id"]), payload["ts"])]):
                touched[cid] = max(touched.get(cid, pd.Timestamp(ts)), pd.Timestamp(ts))
        if len(touched) > FEW:
            return None
        if self.live.state.feature_flags_.get("sentiment") and self.pending:
            # a customer whose row keeps no sentiment yet has it read from their stored texts, which lack
            # their buffered events: the unbuffered path (after a flush) reads them
            waiting = {str(x) for p in self.pending if p.ev is not None for x in p.ev["customer_id"].tolist()}
            if any(cid in waiting and kept_sentiment(self._row(c, cid)) is None for cid in touched):
                return None
        if self.live.triggers and any(cid in self._new_pending() for cid in touched):
            self.flush()  # their consent comes from the customers row that flush writes
            c = self._ready()
        plan = self.live._plan_few(keyed, touched, tx, ev, as_of, self)
        if plan is None:
            return None
        # the copy moves on as the store will once the buffer is written
        new_customers: list[tuple] = []
        unknown = tx is not None and any(
            (c.attr_rows.get(cid) is ABSENT) or (cid not in c.attr_rows and cid not in c.attr_pos)
            for cid in set(column_lists(tx)["customer_id"]))
        if tx is not None and unknown:  # a first order: the customers row the commit adds, as it derives it
            for row in new_customer_rows(rows_for(as_frame(tx), table_types("transactions"), "order lines")):
                cid = str(row[0])
                got = c.attr_rows.get(cid)
                if (got is not None and got is not ABSENT) or (got is None and cid in c.attr_pos):
                    continue  # the store knows them (or a buffered order already adds them)
                new_customers.append(row)
                named = dict(zip(_CUSTOMER_NAMES, row))
                c.attr_rows[cid] = tuple(named.get(_ATTR_FROM_CUSTOMERS.get(k, k)) for k in c.attr_cols)
        if tx is not None:
            lists = column_lists(tx)
            for cid, ts, amount, cost in zip(lists["customer_id"], lists["ts"], lists["amount"], lists["cost"]):
                day = int((np.datetime64(pd.Timestamp(ts).date(), "D") - _EPOCH).astype(np.int64))
                c.lines.setdefault(str(cid), []).append((day, float(amount), 0.0 if _missing(cost) else float(cost)))
            c.orders.add([order_key(s, o) for s, o in set(zip(lists["source"], lists["order_id"]))])
        for rec in plan.rows:
            c.rows[rec["customer_id"]] = rec
        c.events.add(list(keyed))
        pend = _Pending(plan, tx, ev, list(keyed), new_customers, out, given)
        self.pending.append(pend)
        self._pending_events += plan.n_events
        plan.result(out, [])
        out.durable = False
        return pend

    def _new_pending(self) -> set[str]:
        return {str(r[0]) for p in self.pending for r in p.new_customers}

    def _fallback(self, tx: pd.DataFrame | None, ev: pd.DataFrame | None, cancels: list[tuple[str, str]],
                  as_of: Any, out: LiveResult) -> None:
        """The unbuffered path (after a flush), then the copy brought up to what it wrote."""
        self.flush()
        self.fallbacks += 1
        store = self.live.store
        touched = set()
        for frame in (tx, ev):
            if frame is not None:
                touched |= set(frame["customer_id"].astype(str))
        if cancels:
            for src, oid in cancels:
                _, found = store.fetch("SELECT DISTINCT customer_id FROM transactions WHERE source = ? AND order_id = ?",
                                       [src, oid])
                touched |= {str(r[0]) for r in found}
        c = self.copy
        before = c.version if c is not None else None
        res = self.live._apply_batch(tx, ev, cancels, as_of, stored_import=None)
        for k, v in vars(res).items():
            setattr(out, k, v)
        out.durable = True
        if c is None:
            return
        wrote = res.events_applied > 0
        now = self._version()
        if now != (str(int(before) + 1) if wrote else before):
            self.copy = None  # another writer too: read everything again
            return
        c.version = now
        if wrote:
            self._reread(c, sorted(touched))
            keys = []
            if tx is not None:
                keys += [f"order:{s}:{o}" for s, o in set(zip(tx["source"].tolist(), tx["order_id"].tolist()))]
                c.orders.add([order_key(s, o) for s, o in set(zip(tx["source"].tolist(), tx["order_id"].tolist()))])
            if ev is not None:
                keys += [f"event:{e}" for e in ev["event_id"].astype(str)]
            keys += [f"cancel:{s}:{o}" for s, o in cancels]
            c.events.add(keys)

    def _reread(self, c: _Copy, ids: list[str]) -> None:
        """Read these customers' rows, order days and attributes from the store again."""
        if not ids:
            return
        cols, rows = StoreReads(self.live).rows(ids)
        for cid in ids:
            c.rows[cid] = rows.get(cid, ABSENT)
            c.lines.pop(cid, None)
        start = (_EPOCH + np.timedelta64(c.horizon, "D")).astype("datetime64[us]").astype(object)
        lines = self.live.store.query(
            "SELECT customer_id, CAST(ts AS DATE) AS day, sum(amount) AS revenue, sum(coalesce(cost, 0)) AS cost "
            "FROM transactions WHERE customer_id IN (SELECT unnest(CAST(? AS TEXT[]))) AND ts >= ? "
            "GROUP BY customer_id, CAST(ts AS DATE) ORDER BY customer_id, day", [ids, start])
        for cid in ids:
            c.lines_replaced[cid] = []
        for cid, day, rev, cost in zip(lines["customer_id"].astype(str), pd.to_datetime(lines["day"]),
                                       lines["revenue"].tolist(), lines["cost"].tolist()):
            d = int((np.datetime64(day.date(), "D") - _EPOCH).astype(np.int64))
            c.lines_replaced[cid].append((d, float(rev), float(cost)))
        _, attrs = StoreReads(self.live).attributes(ids)
        for cid in ids:
            c.attr_rows[cid] = attrs.get(cid, ABSENT)

    # ------------------------------------------------------------------------ write-behind
    def flush(self) -> int:
        """Write every buffered update in ONE transaction (if the store is where the copy read it)."""
        if not self.pending:
            return 0
        c = self.copy
        assert c is not None
        pend, self.pending, self._pending_events = self.pending, [], 0
        rows: dict[str, dict] = {}
        changes: list[dict] = []
        outboxes: list[pd.DataFrame] = []
        keys: list[str] = []
        new_customers: list[tuple] = []
        for p in pend:
            for rec in p.plan.rows:
                rows[rec["customer_id"]] = rec
            if p.plan.outbox is not None:
                outboxes.append(p.plan.outbox.assign(change_id=p.plan.outbox["change_id"] + len(changes)))
            changes.extend(p.plan.changes)
            keys.extend(p.keys)
            new_customers.extend(p.new_customers)
        txs = [p.tx for p in pend if p.tx is not None]
        evs = [p.ev for p in pend if p.ev is not None]
        try:
            ids = self.live.store.commit_live(
                state_rows=self.live._kept_only(list(rows.values())), changes=changes or None,
                outbox=pd.concat(outboxes, ignore_index=True) if outboxes else None, event_keys=keys,
                transactions=lines_frame(txs) if txs else None,
                events=pd.concat(evs, ignore_index=True) if evs else None, delete_orders=[],
                expect_version=c.version, new_customers=new_customers)
        except StoreMoved:
            self.redone += 1
            self.copy = None
            for p in pend:  # computed again from the store as it is now, into the same result objects
                orders, events, as_of = p.given
                self.update(orders, events, None, as_of, durable=False, result=p.result)
            return self.flush()
        except BaseException:
            self.copy = None  # nothing was written: the copy ran ahead of the store
            raise
        c.version = str(int(c.version) + 1)
        c.checked_at = time.monotonic()
        at = 0
        for p in pend:
            n = len(p.plan.changes)
            p.plan.result(p.result, ids[at:at + n])
            p.result.durable = True
            at += n
        return sum(p.plan.n_events for p in pend)
