"""Buffered updates (in-memory reads, write-behind) leave the store exactly as unbuffered ones do.

The demo shop is fitted at 10 Dec 2024 and its later orders and events are replayed one at a time
with subscriptions set: once through the unbuffered path, once through ``LivePortfolio(store,
buffered=True)`` flushing every few events.  Every table the updates write must end the same:
customer_state (every column), the change log with its reasons and ids, the outbox, the applied
event keys, the transactions, events and customers.  Cancellations, back-dated orders, edits and
repeats in the stream take the unbuffered path inside the buffered run.  On DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.live import LivePortfolio
from clientfolio.store import open_store
from tests.conftest import drop_pg_schema, pg_schema
from tests.live.shops import held_back_store

pytestmark = pytest.mark.slow  # the same stream twice on each store

D0 = pd.Timestamp("2024-12-10")
TRIGGERS = """
- segment_kind: lifecycle
  segment: at risk
  on: entered
  action: winback_email
- segment_kind: rfm
  segment: Champions
  on: both
  action: crm_task
  only_with_consent: false
"""
N_ORDERS = 90


def stream(tx: pd.DataFrame, ev: pd.DataFrame) -> list[tuple[str, object]]:
    """Orders and events in time order, with the awkward cases mixed in: a back-dated order, an edit of
    an order applied before, the same event twice, a cancellation, a new customer's two orders."""
    items: list[tuple[pd.Timestamp, str, object]] = []
    for i, (_, g) in enumerate(tx.groupby(["source", "order_id"], sort=False)):
        if i >= N_ORDERS:
            break
        items.append((g["ts"].min(), "order", g))
    last = max(t for t, _, _ in items)
    items += [(e["ts"].iloc[0], "event", e) for e in (ev.iloc[[i]] for i in range(len(ev))) if e["ts"].iloc[0] <= last]
    items.sort(key=lambda it: it[0])
    out: list[tuple[str, object]] = [(k, p) for _, k, p in items]
    first = out[3][1]
    cid = str(first["customer_id"].iloc[0])
    out.insert(20, ("order", pd.DataFrame({"customer_id": [cid], "order_id": ["back-1"], "ts": [D0 - pd.Timedelta(days=30)],
                                           "amount": [12.0], "category": ["cake"]})))
    out.insert(30, ("order", first.assign(amount=first["amount"] + 1.0)))  # an edit of a stored order
    ev_items = [i for i, (k, _) in enumerate(out) if k == "event"]
    if ev_items:
        out.insert(40, out[ev_items[0]])  # the same event again
    out.insert(50, ("cancel", (str(first["source"].iloc[0]), str(first["order_id"].iloc[0]))))
    ts = out[55][1]["ts"].iloc[0] if out[55][0] != "cancel" else D0 + pd.Timedelta(days=5)
    for j, extra in enumerate((0, 2)):
        out.insert(56 + j, ("order", pd.DataFrame({"customer_id": ["brand-new-1"], "order_id": [f"new-{j}"],
                                                   "ts": [pd.Timestamp(ts) + pd.Timedelta(hours=extra)],
                                                   "amount": [40.0 + j], "email": ["new@example.com"],
                                                   "consent_marketing": [True]})))
    return out


def run(live: LivePortfolio, items: list[tuple[str, object]], durable: bool = True) -> list:
    results = []
    for kind, payload in items:
        if kind == "order":
            results.append(live.update(payload, durable=durable))
        elif kind == "event":
            results.append(live.update(events=payload, durable=durable))
        else:
            results.append(live.update(cancellations=[payload], durable=durable))
    live.flush()
    return results


def dump(url: str) -> dict[str, pd.DataFrame]:
    """What the updates wrote, in a fixed order, without the times of writing."""
    with open_store(url) as st:
        return {
            "state": st.query("SELECT * FROM customer_state ORDER BY customer_id"),
            "changes": st.query("SELECT * EXCLUDE (recorded_at) FROM segment_changes ORDER BY change_id")
            if st.kind == "duckdb" else
            st.query("SELECT * FROM segment_changes ORDER BY change_id").drop(columns=["recorded_at"]),
            "outbox": st.query("SELECT * FROM outbox ORDER BY message_id").drop(columns=["created_at"]),
            "keys": st.query("SELECT event_key FROM applied_events ORDER BY event_key"),
            "transactions": st.query("SELECT * FROM transactions ORDER BY source, order_id, line_key"),
            "events": st.query("SELECT * FROM events ORDER BY event_id"),
            "customers": st.query("SELECT * FROM customers ORDER BY customer_id"),
        }


def same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in a:
        x, y = a[name].reset_index(drop=True), b[name].reset_index(drop=True)
        if name == "changes":  # a cancellation's changes are dated when it is applied (the clock)
            for f in (x, y):
                f.loc[f["event_key"].fillna("").str.startswith("cancel:"), "changed_at"] = pd.NaT
        if name == "outbox":  # the same date in the payload (compared in the change log above)
            for f in (x, y):
                f["payload"] = f["payload"].map(lambda v: {k: w for k, w in json.loads(v).items() if k != "changed_at"})
        assert list(x.columns) == list(y.columns), name
        for col in x.columns:  # JSON maps (category spend, ...): the same map, whatever the key order
            if x[col].dtype != object and not pd.api.types.is_string_dtype(x[col]):
                continue
            if x[col].dropna().astype(str).str.startswith("{").all() and x[col].notna().any():
                x[col], y[col] = (f[col].map(lambda v: v if v is None or v != v or isinstance(v, dict) else json.loads(v)) for f in (x, y))
        assert len(x) == len(y), f"{name}: {len(x)} rows unbuffered, {len(y)} buffered"
        # sums of the 12-month value are added in another order in memory: equal to 1e-9, relative
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-9, atol=1e-9, obj=name)


def _urls(kind: str, request, tmp_path_factory, n: int) -> tuple[list[str], list[str]]:
    if kind == "duckdb":
        base = tmp_path_factory.mktemp("mem")
        return [str(base / f"s{i}.duckdb") for i in range(n)], []
    urls, schemas = [], []
    for _ in range(n):
        url, schema = pg_schema(request.getfixturevalue("pg_url"))
        urls.append(url)
        schemas.append(schema)
    return urls, schemas


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def both_ways(request, tmp_path_factory):
    urls, schemas = _urls(request.param, request, tmp_path_factory, 2)
    try:
        tx = ev = None
        for url in urls:
            tx, ev = held_back_store(url, D0)
        items = stream(tx, ev)
        with open_store(urls[0]) as st:
            live = LivePortfolio(st, triggers=TRIGGERS)
            plain = run(live, items)
        with open_store(urls[1]) as st:
            live = LivePortfolio(st, triggers=TRIGGERS, buffered=True, flush_every=7)
            buffered = run(live, items, durable=False)
            mem = live._memory
        yield dump(urls[0]), dump(urls[1]), plain, buffered, mem
    finally:
        for s in schemas:
            drop_pg_schema(request.getfixturevalue("pg_url"), s)


def test_buffered_updates_write_exactly_what_unbuffered_ones_write(both_ways):
    plain_db, buffered_db, plain, buffered, mem = both_ways
    assert len(plain_db["changes"]) > 20 and plain_db["changes"]["reason"].notna().all()
    assert len(plain_db["outbox"]) > 0  # the subscriptions fired
    same(plain_db, buffered_db)


def test_each_result_is_the_unbuffered_one_once_flushed(both_ways):
    _, _, plain, buffered, mem = both_ways
    assert all(r.durable for r in buffered)
    for p, b in zip(plain, buffered):
        assert (p.events_applied, p.events_skipped, p.rescanned, p.outbox) == \
               (b.events_applied, b.events_skipped, b.rescanned, b.outbox)
        cols = [c for c in ("customer_id", "segment_kind", "from_segment", "to_segment", "reason", "change_id")
                if c in p.changes]
        assert len(p.changes) == len(b.changes)
        pd.testing.assert_frame_equal(p.changes[cols].reset_index(drop=True), b.changes[cols].reset_index(drop=True))


def test_what_the_fast_path_cannot_do_went_down_the_unbuffered_path(both_ways):
    *_, mem = both_ways
    # back-dated order, edit, repeated event, cancellation; everything else from memory, read once
    assert mem.fallbacks >= 4
    assert mem.loads == 1 and mem.redone == 0


# ---------------------------------------------------------------------------- another writer

@pytest.fixture
def shop(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("moved") / "shop.duckdb")
    tx, ev = held_back_store(url, D0)
    return url, tx, ev


def test_a_flush_after_another_write_is_computed_again_from_the_store(shop):
    url, tx, ev = shop
    copy = Path(url).with_name("copy.duckdb")
    copy.write_bytes(Path(url).read_bytes())
    orders = [g for _, g in tx.groupby(["source", "order_id"], sort=False)][:6]
    cid = str(orders[0]["customer_id"].iloc[0])
    # another writer adds an order of the same customer while one of theirs waits in the buffer
    extra = orders[0].assign(order_id="other-1", ts=orders[0]["ts"] - pd.Timedelta(hours=1), amount=99.0)
    with open_store(url) as st:
        live = LivePortfolio(st, buffered=True, flush_every=100)
        other = LivePortfolio(st)
        live.update(orders[0], durable=False)
        before = live._memory.copy.version
        other.update(extra)
        r = live.update(orders[1], durable=False)
        assert not r.durable
        live.flush()
        assert r.durable and live._memory.redone == 1 and live._memory.copy.version != before
        got = st.query("SELECT * FROM customer_state WHERE customer_id = ?", [cid])
    # what the unbuffered path gives for the same writes in the order they reached the store
    with open_store(copy) as st:
        plain = LivePortfolio(st)
        for o in (extra, orders[0], orders[1]):
            plain.update(o)
        want = st.query("SELECT * FROM customer_state WHERE customer_id = ?", [cid])
    assert int(got["stat_orders"].iloc[0]) == int(want["stat_orders"].iloc[0])
    same({"state": want}, {"state": got})


def test_an_import_between_events_is_seen_before_the_next_event(shop):
    url, tx, _ = shop
    orders = [g for _, g in tx.groupby(["source", "order_id"], sort=False)][:3]
    with open_store(url) as st:
        live = LivePortfolio(st, buffered=True, recheck_seconds=0.0)
        live.update(orders[0])
        loads = live._memory.loads
        # an erasure-like write by another writer: the counter moves, the copy is read again
        with st.transaction() as t:
            from clientfolio.store.live import BUMP_VERSION
            t.execute(BUMP_VERSION)
        live.update(orders[1])
        assert live._memory.loads == loads + 1


# ---------------------------------------------------------------------------- kill -9

KILLER = """
import sys, pandas as pd
from clientfolio.live import LivePortfolio
from clientfolio.store import open_store
tx = pd.read_parquet(sys.argv[2])
with open_store(sys.argv[1]) as st:
    live = LivePortfolio(st, buffered=True, flush_every=5)
    live._memory.load()
    print("ready", flush=True)
    while True:
        for i, (_, g) in enumerate(tx.groupby(["source", "order_id"], sort=False)):
            live.update(g, durable=False)
            if i % 5 == 4:
                print("flushed", i + 1, flush=True)
        break
    live.flush()
print("done", flush=True)
"""


def test_kill_9_mid_stream_leaves_whole_flushes_only(shop, tmp_path):
    url, tx, _ = shop
    data = tmp_path / "tx.parquet"
    tx.to_parquet(data)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    orders = list(tx.groupby(["source", "order_id"], sort=False))
    seen = set()
    for delay in (0.3, 1.0, 2.5):
        work = tmp_path / f"w{delay}.duckdb"
        work.write_bytes(Path(url).read_bytes())
        proc = subprocess.Popen([sys.executable, str(script), str(work), str(data)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with open_store(work) as st:
            keys = set(st.query("SELECT event_key FROM applied_events")["event_key"])
            n_tx = int(st.query("SELECT count(*) AS n FROM transactions WHERE import_id = 0")["n"].iloc[0])
            state = st.query("SELECT customer_id, stat_orders FROM customer_state")
            stored = st.query("SELECT customer_id, count(DISTINCT CASE WHEN NOT is_refund THEN order_id END) AS n "
                              "FROM transactions GROUP BY customer_id")
        n = len(keys)
        assert n % 5 == 0, f"{n} events applied: a flush landed in part"
        # exactly the first n orders, their lines, and rows that count them
        assert keys == {f"order:{s}:{o}" for (s, o), _ in orders[:n]}
        assert n_tx == sum(len(g) for _, g in orders[:n])
        merged = state.merge(stored, on="customer_id")
        assert (merged["stat_orders"] == merged["n"]).all()
        seen.add(n)
    assert seen  # every kill left whole flushes only
