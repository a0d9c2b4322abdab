"""Group commit of single events over HTTP: concurrent POSTs share one live update, each answered alone.

Two real servers on copies of the fitted shop (segment subscriptions on, every customer consenting,
so moves queue outbox messages): one groups (the default), one applies each request alone
(``CLIENTFOLIO_GROUP_MAX=1``).  The same requests, a customer's in their order, are sent to both by
many clients at once: every answer of the grouping server must equal the lone one's (change ids
aside), the stores must end the same, and the grouping server must have written fewer commits
than requests (every row of one commit has the same ``applied_at``).
"""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.store import open_store
from tests.service.conftest import Server, copy_shop, fill_shop, start_server

CLIENTS = 12


def subscribe(store: str) -> list[str]:
    """Every lifecycle segment subscribed (entry and exit), every customer consenting; the buyers' ids."""
    from clientfolio.actions.consent import record_consent
    from clientfolio.live import LivePortfolio

    with open_store(store) as st:
        ids = st.query("SELECT customer_id FROM customer_state ORDER BY customer_id")["customer_id"].tolist()
        record_consent(st, pd.DataFrame({"customer_id": ids, "purpose": "marketing", "channel": "email",
                                         "granted": True}))
        segs = st.query("SELECT DISTINCT seg_lifecycle AS s FROM customer_state WHERE seg_lifecycle IS NOT NULL")
        LivePortfolio(st).set_triggers([{"segment_kind": "lifecycle", "segment": str(x), "on": "both",
                                         "action": "crm_sync"} for x in segs["s"]])
        buyers = st.query("SELECT customer_id FROM customer_state WHERE stat_n_days > 0 ORDER BY customer_id")
    return buyers["customer_id"].astype(str).tolist()


@pytest.fixture
def pair(fitted_shop: dict, tmp_path_factory: pytest.TempPathFactory):
    """(grouping server, lone server, the shop's buyers), both on subscribed copies of the fitted shop.

    A DuckDB file is open in one process at a time: a test stops the servers before reading their stores."""
    servers = {}
    buyers: list[str] = []
    for name, env in (("grouped", {}), ("alone", {"CLIENTFOLIO_GROUP_MAX": "1"})):
        tmp = tmp_path_factory.mktemp(name)
        store = copy_shop(fitted_shop, tmp)
        buyers = subscribe(store)
        servers[name] = start_server(store, tmp, **env)
        servers[name].keys = fitted_shop["keys"]
    yield servers["grouped"], servers["alone"], buyers
    for s in servers.values():
        s.stop()


def request_id(path: str, body: dict) -> str:
    return body.get("order_id") or body.get("refund_id") or body["event_id"]


def post_lanes(server: Server, key: str, lanes: list[list[tuple[str, dict]]]) -> dict[str, list]:
    """POST every lane's requests in its order, the lanes at once; request id -> [(status, body), ...]."""
    got: dict[str, list] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(lanes))

    def run(lane: list[tuple[str, dict]]) -> None:
        with server.client(key) as c:
            start.wait()
            for path, body in lane:
                r = c.post(path, json=body)
                with lock:
                    got.setdefault(request_id(path, body), []).append((r.status_code, r.json()))

    threads = [threading.Thread(target=run, args=(lane,)) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def by_customer_lanes(requests: list[tuple[str, dict]], n: int) -> list[list[tuple[str, dict]]]:
    """`n` lanes; a customer's requests all in one lane, in the order given."""
    lanes: list[list[tuple[str, dict]]] = [[] for _ in range(n)]
    order = sorted({b["customer_id"] for _, b in requests})
    for path, body in requests:
        lanes[order.index(body["customer_id"]) % n].append((path, body))
    return lanes


def commits(store: str, keys: list[str]) -> int:
    """How many commits wrote these event keys (a commit stamps all its rows with one applied_at)."""
    with open_store(store) as st:
        return int(st.query("SELECT count(DISTINCT applied_at) AS n FROM applied_events WHERE event_key IN "
                            "(SELECT unnest(CAST(? AS TEXT[])))", [keys])["n"].iloc[0])


def without_ids(answer: dict) -> dict:
    return {**answer, "changes": [{k: v for k, v in c.items() if k != "change_id"} for c in answer["changes"]]}


def check_changes_are_their_requests(st, answers: dict[str, dict], keys: dict[str, str]) -> None:
    """Every change the store logged for these requests is in the answer of the request whose key it bears,
    and nowhere else; every answer's outbox count is the messages of its changes."""
    logged = st.query("SELECT change_id, event_key FROM segment_changes WHERE event_key IN "
                      "(SELECT unnest(CAST(? AS TEXT[])))", [list(keys.values())])
    owner = {k: rid for rid, k in keys.items()}
    want: dict[str, set[int]] = {rid: set() for rid in answers}
    for cid, key in zip(logged["change_id"], logged["event_key"]):
        want[owner[key]].add(int(cid))
    outbox = st.query("SELECT change_id, count(*) AS n FROM outbox GROUP BY change_id")
    messages = dict(zip(outbox["change_id"].astype(int), outbox["n"].astype(int)))
    for rid, a in answers.items():
        assert {c["change_id"] for c in a["changes"]} == want[rid], rid
        assert a["outbox"] == sum(messages.get(c["change_id"], 0) for c in a["changes"]), rid


@pytest.mark.slow  # two servers started on copies of the shop: about 20 s
def test_concurrent_posts_are_applied_once_each_with_its_own_answer(pair) -> None:
    grouped, alone, buyers = pair
    ids = buyers[:48]
    reqs: list[tuple[str, dict]] = []
    for i, cid in enumerate(ids):  # two scoring days mixed: a group holds one day's requests only
        reqs.append(("/orders", {"order_id": f"G1-{i}", "customer_id": cid, "amount": 20.0 + i,
                                 "ts": f"2024-07-0{1 + 2 * (i % 2)}T10:00:00Z"}))
    for i, cid in enumerate(ids[:12]):  # a customer's second order and an event: after the first, in one lane
        reqs.append(("/orders", {"order_id": f"G1-b{i}", "customer_id": cid, "ts": "2024-07-04T09:00:00Z",
                                 "lines": [{"amount": 5.0, "category": "coffee"}, {"amount": 7.5, "cost": 2.0}]}))
        reqs.append(("/events", {"event_id": f"G1-e{i}", "customer_id": cid, "ts": "2024-07-04T12:00:00Z",
                                 "type": "email_click"}))
    for i, cid in enumerate(ids[20:26]):
        reqs.append(("/refunds", {"refund_id": f"G1-r{i}", "customer_id": cid, "ts": "2024-07-05T10:00:00Z",
                                  "amount": 3.0}))
    lanes = by_customer_lanes(reqs, CLIENTS)
    key = grouped.keys["write"]
    got = post_lanes(grouped, key, lanes)
    ref = post_lanes(alone, key, lanes)
    assert len(got) == len(reqs)
    for rid, answers in got.items():
        assert [s for s, _ in answers] == [200], (rid, answers)
        a = answers[0][1]
        assert a["applied"] == 1 and a["skipped"] == 0 and a["customers_touched"] == 1, (rid, a)
        assert without_ids(a) == without_ids(ref[rid][0][1]), rid  # the same answer as the request alone
    assert sum(a[0][1]["outbox"] for a in got.values()) > 0  # moves queued messages: their split is checked
    grouped.stop()
    alone.stop()
    keys = {request_id(p, b): (f"event:{b['event_id']}" if p == "/events" else f"order:live:{request_id(p, b)}")
            for p, b in reqs}
    n = commits(grouped.store, list(keys.values()))
    assert n < len(reqs) // 2, f"{n} commits for {len(reqs)} requests from {CLIENTS} clients: no grouping"
    assert commits(alone.store, list(keys.values())) == len(reqs)
    with open_store(grouped.store) as st:
        check_changes_are_their_requests(st, {rid: a[0][1] for rid, a in got.items()}, keys)
        mine = st.query("SELECT * FROM customer_state WHERE customer_id IN (SELECT unnest(CAST(? AS TEXT[]))) "
                        "ORDER BY customer_id", [ids])
        lines = st.query("SELECT order_id, count(*) AS n FROM transactions WHERE order_id LIKE 'G1-%' GROUP BY 1")
    with open_store(alone.store) as st:
        theirs = st.query("SELECT * FROM customer_state WHERE customer_id IN (SELECT unnest(CAST(? AS TEXT[]))) "
                          "ORDER BY customer_id", [ids])
    pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=1e-9)  # the same rows, group or alone
    assert dict(zip(lines["order_id"], lines["n"])) == {  # every line stored once
        b.get("order_id") or b.get("refund_id"): len(b.get("lines") or [0]) for p, b in reqs if p != "/events"}


@pytest.mark.slow  # two servers started on copies of the shop: about 20 s
def test_duplicates_across_concurrent_requests_are_applied_once(pair) -> None:
    grouped, alone, buyers = pair
    orders = [{"order_id": f"G2-{i}", "customer_id": cid, "ts": "2024-07-02T10:00:00Z", "amount": 30.0 + i}
              for i, cid in enumerate(buyers[60:72])]
    events = [{"event_id": f"G2-e{i}", "customer_id": cid, "ts": "2024-07-02T11:00:00Z", "type": "review"}
              for i, cid in enumerate(buyers[72:78])]
    reqs = [("/orders", o) for o in orders for _ in range(3)] + [("/events", e) for e in events for _ in range(3)]
    random.Random(7).shuffle(reqs)
    lanes = [reqs[i::CLIENTS] for i in range(CLIENTS)]  # the three copies of a request race in different lanes
    key = grouped.keys["write"]
    got = post_lanes(grouped, key, lanes)
    again = post_lanes(grouped, key, [[r] for r in [("/orders", o) for o in orders] + [("/events", e) for e in events]])
    ref = post_lanes(alone, key, [[("/orders", o)] for o in orders] + [[("/events", e)] for e in events])
    lone_repeat = {"applied": 0, "skipped": 1, "customers_touched": 0, "rescanned": 0, "outbox": 0, "changes": [],
                   "notes": []}
    for rid, answers in got.items():
        assert [s for s, _ in answers] == [200, 200, 200], (rid, answers)
        applied = [a for _, a in answers if a["applied"]]
        assert len(applied) == 1, (rid, answers)  # exactly one of the racing copies applied it
        assert without_ids(applied[0]) == without_ids(ref[rid][0][1])
        assert [a for _, a in answers if not a["applied"]] == [lone_repeat, lone_repeat]
        assert again[rid] == [(200, lone_repeat)]
    grouped.stop()
    with open_store(grouped.store) as st:
        n = st.query("SELECT count(*) AS n FROM applied_events WHERE event_key LIKE '%G2-%'")["n"].iloc[0]
        lines = st.query("SELECT count(*) AS n FROM transactions WHERE order_id LIKE 'G2-%'")["n"].iloc[0]
    assert (n, lines) == (len(orders) + len(events), len(orders))


@pytest.mark.slow  # two servers started on copies of the shop: about 20 s
def test_a_bad_request_among_concurrent_good_ones_fails_alone(pair) -> None:
    grouped, _, buyers = pair
    good = [("/orders", {"order_id": f"G3-{i}", "customer_id": cid, "ts": "2024-07-02T10:00:00Z", "amount": 12.0})
            for i, cid in enumerate(buyers[80:110])]
    bad = [("/events", {"event_id": f"G3-x{i}", "customer_id": f"NEVER-{i}", "ts": "2024-07-02T10:00:00Z",
                        "type": "review"}) for i in range(4)]
    bad += [("/refunds", {"refund_id": f"G3-xr{i}", "customer_id": f"NEVER-r{i}", "ts": "2024-07-02T10:00:00Z",
                          "amount": 2.0}) for i in range(2)]
    bad += [("/orders", {"order_id": "G3-xo", "customer_id": buyers[111], "ts": "2024-07-02T10:00:00Z",
                         "amount": 3.0, "lines": [{"amount": 3.0}]})]  # both an amount and lines
    reqs = good + bad
    random.Random(3).shuffle(reqs)
    got = post_lanes(grouped, grouped.keys["write"], [reqs[i::CLIENTS] for i in range(CLIENTS)])
    for _, body in good:
        (status, a), = got[body["order_id"]]
        assert status == 200 and a["applied"] == 1, a
    for path, body in bad:
        (status, a), = got[request_id(path, body)]
        assert status == 422, a
        assert ("no purchase is known for 'NEVER-" in a["detail"]) or ("either amount or lines" in a["detail"]), a
        if "NEVER-" in a["detail"]:
            assert f"'{body['customer_id']}'" in a["detail"] and a["detail"].count("NEVER-") == 1  # its own only
    grouped.stop()
    with open_store(grouped.store) as st:
        keys = set(st.query("SELECT event_key FROM applied_events WHERE event_key LIKE '%G3-%'")["event_key"])
    assert keys == {f"order:live:{b['order_id']}" for _, b in good}


def test_a_group_whose_update_fails_is_applied_one_by_one(fitted_shop: dict, tmp_path: Path) -> None:
    """A row the update cannot read fails the group's update (nothing written); then each request alone."""
    from clientfolio.service.app import Service, Settings
    from clientfolio.service.deps import Ctx
    from clientfolio.service.grouping import Item
    from clientfolio.service.schemas import BatchIn, OrderIn

    store = copy_shop(fitted_shop, tmp_path)
    buyers = subscribe(store)
    svc = Service(store, Settings(files_dir=tmp_path / "files"))
    try:
        info = svc.registry.resolve(fitted_shop["keys"]["write"])
        held = svc.registry.store_for(info)
        ctx = Ctx(info, held, tmp_path, svc)

        async def run() -> list:
            items = [Item.of(ctx, BatchIn.model_construct(orders=[OrderIn(
                order_id=f"G4-{i}", customer_id=cid, ts="2024-07-02T10:00:00Z", amount=10.0)]))
                for i, cid in enumerate(buyers[120:126])]
            items[2].order_rows[0]["amount"] = "twelve"  # past the door's checks: only the update finds it
            return await asyncio.gather(*(svc.groups.submit(it) for it in items), return_exceptions=True)

        out = asyncio.run(run())
        assert svc.groups.groups == 1  # one group was tried for all six
    finally:
        svc.close()
    assert isinstance(out[2], Exception) and "amount" in str(out[2])
    assert all(not isinstance(a, Exception) and a.applied == 1 for i, a in enumerate(out) if i != 2), out
    with open_store(store) as st:
        keys = set(st.query("SELECT event_key FROM applied_events WHERE event_key LIKE '%G4-%'")["event_key"])
    assert keys == {f"order:live:G4-{i}" for i in range(6) if i != 2}


# ------------------------------------------------------------------ PostgreSQL: two workspaces at once

@pytest.mark.postgres
@pytest.mark.slow
def test_two_workspaces_group_apart_on_postgres(pg_registry: str, tmp_path: Path) -> None:
    """Two shops posting at once: each store gets its own requests (grouped), answers name only their customer,
    and the same order id posted to both is applied in both (a key is a shop's own)."""
    from clientfolio.service.workspaces import Registry, with_search_path

    with Registry(pg_registry) as reg:
        keys, schemas = {}, {}
        for name in ("ga", "gb"):
            schemas[name] = reg.create_workspace(name).schema_name
            keys[name] = reg.create_key(name, "admin")[1]
    server = start_server(pg_registry, tmp_path)
    try:
        buyers = {}
        for name, prefix in (("ga", ""), ("gb", "B-")):
            with server.client(keys[name]) as c:
                fill_shop(c, prefix=prefix, customers=60)
            buyers[name] = subscribe(with_search_path(pg_registry, schemas[name]))
        reqs = {name: [("/orders", {"order_id": f"G5-{i}", "customer_id": cid, "ts": "2024-07-02T10:00:00Z",
                                    "amount": 15.0 + i}) for i, cid in enumerate(buyers[name][:40])]
                + [("/events", {"event_id": f"G5-e{i}", "customer_id": cid, "ts": "2024-07-02T11:00:00Z",
                                "type": "review"}) for i, cid in enumerate(buyers[name][40:50])]
                for name in keys}
        got: dict[str, dict] = {}
        threads = []
        for name in keys:
            lanes = by_customer_lanes(reqs[name], CLIENTS // 2)
            t = threading.Thread(target=lambda n=name, ls=lanes: got.__setitem__(n, post_lanes(server, keys[n], ls)))
            threads.append(t)
            t.start()
        for t in threads:
            t.join()
        for name in keys:
            mine = set(buyers[name])
            assert len(got[name]) == len(reqs[name])
            for rid, answers in got[name].items():
                (status, a), = answers
                assert status == 200 and a["applied"] == 1, (name, rid, a)  # G5-0 in both shops: applied in both
                assert {c["customer_id"] for c in a["changes"]} <= mine, (name, a)
            url = with_search_path(pg_registry, schemas[name])
            keyed = {request_id(p, b): (f"event:{b['event_id']}" if p == "/events" else f"order:live:{b['order_id']}")
                     for p, b in reqs[name]}
            with open_store(url) as st:
                stored = set(st.query("SELECT event_key FROM applied_events WHERE event_key LIKE '%G5-%'")["event_key"])
                check_changes_are_their_requests(st, {rid: a[0][1] for rid, a in got[name].items()}, keyed)
                n = int(st.query("SELECT count(DISTINCT applied_at) AS n FROM applied_events WHERE event_key LIKE "
                                 "'%G5-%'")["n"].iloc[0])
                owners = set(st.query("SELECT DISTINCT customer_id FROM transactions WHERE order_id LIKE 'G5-%'")
                             ["customer_id"])
            assert stored == set(keyed.values())
            assert owners <= mine  # nothing of the other shop in this one's store
            assert n < len(reqs[name]), f"{name}: {n} commits for {len(reqs[name])} requests: no grouping"
    finally:
        server.stop()


def test_a_lone_order_line_is_handed_over_as_plain_values_giving_the_same_lines() -> None:
    """A single order's line goes to the update as plain values (ISO time, absent values left out) so that the
    update's one-line path reads it (a few ms less per event); the lines must equal those of the general path."""
    from clientfolio.live.portfolio import _canonical_orders
    from clientfolio.service.grouping import order_dicts, orders_frame
    from clientfolio.service.schemas import OrderIn, RefundIn

    for given in ([OrderIn(order_id="o1", customer_id="c1", ts="2024-07-01T10:00:00.123456+02:00", amount=12.5)], []), \
                 ([OrderIn(order_id="o2", customer_id="c2", ts="2024-07-01T10:00:00", source="pos", channel="web",
                           lines=[{"amount": 3.0, "category": "tea", "cost": 1.25, "quantity": 2}])], []), \
                 ([], [RefundIn(refund_id="r1", customer_id="c1", ts="2024-07-02T09:00:00Z", amount=4.0)]):
        rows = order_dicts(*given)
        plain = orders_frame(rows)
        assert isinstance(plain["ts"].iloc[0], str)  # the one-line form
        pd.testing.assert_frame_equal(_canonical_orders(plain), _canonical_orders(pd.DataFrame(rows)))
