"""Write-behind in the service: concurrent single events are group-committed, and an answered event is durable.

A real server (write-behind on, the default) gets orders from many clients at once; the server is
then killed with SIGKILL, and the store must hold every order it answered 200 for -- with the rows
and change log the answers reported.  The same orders posted without write-behind give the same
customer rows.
"""

from __future__ import annotations

import signal
import threading

import pandas as pd

from clientfolio.store import open_store
from tests.service.conftest import copy_shop, start_server

N = 48


def _orders(prefix: str) -> list[dict]:
    ids = [f"C{i:05d}" for i in range(1, 13)]
    return [{"order_id": f"{prefix}-{k}", "customer_id": ids[k % len(ids)],
             "ts": f"2024-07-{1 + k // 8:02d}T{8 + k % 8:02d}:00:00Z", "amount": 10.0 + k}
            for k in range(N)]


def _post_all(server, key: str, orders: list[dict], clients: int) -> list[dict]:
    """POST the orders from `clients` threads; each customer's orders stay in their time order."""
    by_customer: dict[str, list[dict]] = {}
    for o in orders:
        by_customer.setdefault(o["customer_id"], []).append(o)
    lanes = [[] for _ in range(clients)]
    for i, (_, group) in enumerate(sorted(by_customer.items())):
        lanes[i % clients].extend(group)
    answers: list[dict] = []
    lock = threading.Lock()

    def run(lane: list[dict]) -> None:
        with server.client(key) as c:
            for o in lane:
                r = c.post("/orders", json=o)
                assert r.status_code == 200, r.text
                with lock:
                    answers.append({"order": o, **r.json()})

    threads = [threading.Thread(target=run, args=(lane,)) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_answered_events_survive_a_kill_and_equal_the_unbuffered_service(fitted_shop, tmp_path):
    key = fitted_shop["keys"]["write"]
    orders = _orders("WB")
    stores = {}
    for mode in ("1", "0"):
        d = tmp_path / f"wb{mode}"
        d.mkdir()
        store = copy_shop(fitted_shop, d)
        server = start_server(store, d, CLIENTFOLIO_WRITE_BEHIND=mode)
        try:
            answers = _post_all(server, key, orders, clients=6)
        finally:
            server.proc.send_signal(signal.SIGKILL)  # no shutdown, no flush on the way out
            server.proc.wait()
        assert len(answers) == N and all(a["applied"] == 1 for a in answers)
        with open_store(store) as st:
            keys = set(st.query("SELECT event_key FROM applied_events")["event_key"])
            rows = st.query("SELECT * FROM customer_state WHERE customer_id IN "
                            "(SELECT unnest(CAST(? AS TEXT[]))) ORDER BY customer_id",
                            [sorted({o["customer_id"] for o in orders})])
            logged = st.query("SELECT customer_id, segment_kind, to_segment FROM segment_changes "
                              "WHERE event_key LIKE 'order:live:WB-%'")
        assert {f"order:live:{o['order_id']}" for o in orders} <= keys  # every answered order is in the store
        answered = sum(len(a["changes"]) for a in answers)
        assert len(logged) == answered  # and every change the answers reported
        stores[mode] = rows
    # the lanes interleave differently in the two runs, but each customer's orders came in their order
    cols = [c for c in stores["1"].columns if c not in ("as_of", "next_change")]
    pd.testing.assert_frame_equal(stores["1"][cols], stores["0"][cols], check_exact=False, rtol=1e-9)
