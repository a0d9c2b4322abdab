"""Many shops on PostgreSQL: workspaces sealed off from each other, keys managed while the service runs,
and schemathesis against the OpenAPI spec.

Shop A is the test shop; shop B has other customers (ids prefixed "B-").  Every endpoint of the
spec (listed from the spec, so a new endpoint is covered without touching this file) is called
with B's key and A's ids: nothing of A may come back, and nothing of A may change.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.service.conftest import Server, fill_shop, start_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # two shops fitted through the API: about 30 s
A_IDS = re.compile(r"(?<![A-Za-z0-9-])C\d{5}\b")  # shop A's customer ids (B's are "B-C...")


@pytest.fixture(scope="module")
def shops(pg_registry: str, tmp_path_factory: pytest.TempPathFactory):
    from clientfolio.service.workspaces import Registry, WorkspaceError

    tmp = tmp_path_factory.mktemp("pg")
    with Registry(pg_registry) as reg:  # the CLI's own calls are tested below and on DuckDB
        for name in ("shop-a", "shop-b"):
            reg.create_workspace(name)
        with pytest.raises(WorkspaceError, match="exists already"):
            reg.create_workspace("shop-a")
        keys = {"a": reg.create_key("shop-a", "admin")[1], "b": reg.create_key("shop-b", "admin")[1],
                "b_read": reg.create_key("shop-b", "read")[1]}
    server = start_server(pg_registry, tmp)
    server.keys = keys
    with server.client(keys["a"]) as a, server.client(keys["b"]) as b:
        fill_shop(a)
        fill_shop(b, prefix="B-", customers=60)
        export = a.post("/exports", json={"segment": "active", "segment_kind": "lifecycle", "target": "csv"})
        assert export.status_code == 201, export.text
        a.post("/orders", json={"order_id": "A-only-1", "customer_id": "C00001", "ts": "2024-07-02T10:00:00Z",
                                "amount": 99.0}).raise_for_status()
    yield server, export.json()
    server.stop()


def snapshot(c: httpx.Client) -> dict:
    """Everything of a shop that a stray write could change."""
    customers, after = [], None
    while True:
        page = c.get("/customers", params={"limit": 1000, **({"after": after} if after else {})}).json()
        customers += page["items"]
        if not (after := page["next_after"]):
            break
    changes = c.get("/changes", params={"limit": 1000}).json()["items"]
    return {"customers": customers, "changes": [x["change_id"] for x in changes],
            "exports": c.get("/exports").json(), "segments": c.get("/segments").json()}


def bodies(export_id: str) -> dict[str, dict]:
    """Request bodies naming shop A's things, per path (what B's key sends)."""
    return {
        "/v1/orders": {"order_id": "B-own-1", "customer_id": "C00001", "ts": "2024-07-03T10:00:00Z", "amount": 1.0},
        "/v1/refunds": {"refund_id": "A-r", "customer_id": "C00001", "ts": "2024-07-03T10:00:00Z", "amount": 1.0},
        "/v1/cancellations": {"order_id": "A-only-1", "source": "live"},
        "/v1/events": {"event_id": "A-e", "customer_id": "C00001", "ts": "2024-07-03T10:00:00Z", "type": "review"},
        "/v1/batch": {"cancellations": [{"order_id": "A-only-1", "source": "live"}]},
        "/v1/exports": {"segment": "active", "segment_kind": "lifecycle", "target": "csv"},
        "/v1/sweep": {"as_of": "2024-07-05"},
        "/v1/refit": {"not a field": 1},  # refused (422) before any work: B's refit would cost seconds
    }


def test_another_workspaces_key_sees_and_changes_nothing_of_it(shops: tuple[Server, dict]) -> None:
    server, export = shops
    spec = httpx.get(server.url + "/openapi.json").json()
    a_ids = {"customer_id": "C00001", "segment_kind": "lifecycle", "segment": "active", "name": "a-experiment",
             "export_id": export["export_id"]}
    with server.client(server.keys["a"]) as a, server.client(server.keys["b"]) as b:
        before = snapshot(a)
        assert any(c["customer_id"] == "C00001" for c in before["customers"])
        tried = 0
        # reads first (B has no customer of A's ids yet), then writes naming A's ids
        ops = sorted(((m, p) for p, item in spec["paths"].items() for m in item), key=lambda mp: mp[0] != "get")
        for method, path in ops:
            url = path
            for name, value in a_ids.items():
                url = url.replace("{" + name + "}", value)
            assert "{" not in url, f"{path}: a path parameter this test does not know; add it to a_ids"
            body = bodies(export["export_id"]).get(path) if method == "post" else None
            if method == "post" and path == "/v1/imports":
                r = b.post("/imports", files={"file": ("x.csv", b"customer_id,order_id,ts,amount\n"
                                                        b"B-new,B-o-new,2024-07-01T00:00:00Z,5\n", "text/csv")})
            else:
                r = b.request(method, server.url + url, json=body)
            tried += 1
            assert r.status_code < 500, (method, url, r.text)
            if method == "get":  # a 404 may repeat the id asked for, nothing else of A
                text = r.text
                for value in a_ids.values() if r.status_code == 404 else ():
                    text = text.replace(value, "")
                assert not A_IDS.search(text), (method, url, r.text[:500])
            assert export["export_id"] not in r.text or r.status_code == 404, (method, url, r.text[:300])
        assert tried == sum(len(v) for v in spec["paths"].values()) >= 24
        # B's posts with A's customer id made a customer C00001 in B, not a change to A's
        assert snapshot(a) == before
        # "not yours" and "does not exist" are the same answer
        theirs = b.get(f"/exports/{export['export_id']}/download")
        nothing = b.get("/exports/exp_0123456789abcdef/download")
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json()["detail"].replace(export["export_id"], "X") == \
            nothing.json()["detail"].replace("exp_0123456789abcdef", "X")


def test_keys_revoked_and_workspaces_deleted_while_the_service_runs(shops: tuple[Server, dict],
                                                                    pg_registry: str) -> None:
    from clientfolio.service.workspaces import Registry

    server, _ = shops
    key = server.keys["b_read"]
    with server.client(key) as c, Registry(pg_registry) as reg:  # another process than the server's
        assert c.get("/segments").status_code == 200
        listed = reg.keys("shop-b")
        assert all(key not in str(k) for k in listed)  # never stored or shown again
        reg.revoke_key([k for k in listed if k["scope"] == "read"][0]["key_id"])
        assert c.get("/segments").status_code == 401
        reg.create_workspace("shop-c")
        c_key = reg.create_key("shop-c", "write")[1]
        one_order = b"customer_id,order_id,ts,amount\nC00001,c-1,2024-07-01T00:00:00Z,5\n"
        with server.client(c_key) as old:
            assert old.get("/customers").json() == {"items": [], "next_after": None}
            assert old.post("/imports", files={"file": ("o.csv", one_order, "text/csv")}).status_code == 200
            assert old.get("/status").json()["transactions"] == 1
            reg.delete_workspace("shop-c")
            assert old.get("/customers").status_code == 401
        assert "shop-c" not in [w.name for w in reg.workspaces()]
        reg.create_workspace("shop-c")  # the same name again is a new, empty shop
        with server.client(reg.create_key("shop-c", "read")[1]) as new:
            assert new.get("/status").json() == {"fitted": False, "transactions": 0, "advice": new.get(
                "/status").json()["advice"]}


def test_schemathesis_finds_no_server_error(shops: tuple[Server, dict], tmp_path) -> None:  # noqa: ANN001
    server, _ = shops
    st = os.path.join(os.path.dirname(sys.executable), "st")
    done = subprocess.run([st, "run", server.url + "/openapi.json", "--url", server.url, "-c", "not_a_server_error",
                           "--phases", "fuzzing", "-n", "3", "--seed", "7", "--exclude-path", "/v1/refit",
                           "-H", f"Authorization: Bearer {server.keys['b']}", "--no-color"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # its cache goes there
    assert done.returncode == 0, done.stdout[-4000:]
    assert re.search(r"\d+ generated, \d+ passed", done.stdout), done.stdout[-2000:]


def test_posted_order_and_idempotent_batch_on_postgresql(shops: tuple[Server, dict]) -> None:
    server, _ = shops
    batch = {"orders": [{"order_id": "PG-1", "customer_id": "C00004", "ts": "2024-07-03T09:00:00Z", "amount": 400.0}],
             "events": [{"event_id": "PG-e1", "customer_id": "C00004", "ts": "2024-07-03T10:00:00Z",
                         "type": "review", "properties": {"stars": 5}}]}
    with server.client(server.keys["a"]) as a:
        first = a.post("/batch", json=batch).json()
        assert first["applied"] == 2 and first["changes"]
        assert all(ch["customer_id"] == "C00004" and ch["reason"] for ch in first["changes"])
        last = max(ch["change_id"] for ch in first["changes"])
        again = a.post("/batch", json=batch).json()
        assert again["applied"] == 0 and again["skipped"] == 2
        assert a.get("/changes", params={"after": last}).json()["items"] == []
        mine = a.get("/customers/C00004").json()
        assert {ch["change_id"] for ch in first["changes"]} <= {ch["change_id"] for ch in mine["changes"]}
