"""Keys, scopes, rate and size limits of a real server: what gets through and what is refused, over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.service.conftest import Server, copy_shop, start_server

WRITE_OPS = {("post", "/v1/orders"), ("post", "/v1/refunds"), ("post", "/v1/cancellations"), ("post", "/v1/events"),
             ("post", "/v1/batch"), ("post", "/v1/imports"), ("post", "/v1/exports")}
ADMIN_OPS = {("post", "/v1/refit"), ("post", "/v1/sweep"), ("get", "/v1/jobs")}


def operations(server: Server) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI spec, path parameters filled with a harmless value."""
    spec = httpx.get(server.url + "/openapi.json").json()
    out = []
    for path, item in spec["paths"].items():
        for method in item:
            filled = path
            for name in ("customer_id", "segment_kind", "segment", "name"):
                filled = filled.replace("{" + name + "}", "x")
            out.append((method, filled.replace("{export_id}", "exp_0000000000000000"), path))
    return out


def test_every_endpoint_but_health_needs_a_valid_unrevoked_key(duck_server: Server) -> None:
    ops = operations(duck_server)
    assert len(ops) >= 20
    for key in (None, "cf_" + "A" * 43, duck_server.keys["revoked"]):  # none, unknown, revoked
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        bodies = set()
        client = httpx.Client(base_url=duck_server.url, headers=headers, timeout=60)  # one connection
        for method, path, template in ops:
            r = client.request(method, path, json={} if method == "post" else None)
            if template == "/v1/health":
                assert r.status_code == 200
                continue
            assert r.status_code == 401, (method, path, key, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            bodies.add(r.text)
        client.close()
        assert len(bodies) == 1  # unknown, malformed and revoked keys are indistinguishable


def test_scopes_nest_read_write_admin(duck_server: Server) -> None:
    # every write and admin operation, and one read (the other reads are exercised by the API tests)
    ops = [(m, p, t) for m, p, t in operations(duck_server) if m != "get" or t in ("/v1/segments", "/v1/jobs")]
    for scope, refused in (("read", WRITE_OPS | ADMIN_OPS), ("write", ADMIN_OPS), ("admin", set())):
        key = duck_server.keys[scope]
        for method, path, template in ops:
            # a body no endpoint accepts: a key that may write gets 422 (past the key check), and no
            # refit or import actually runs
            r = httpx.request(method, duck_server.url + path, headers={"Authorization": f"Bearer {key}"},
                              json={"not a field": 1} if method == "post" else None, timeout=120)
            if (method, template) in refused:
                assert r.status_code == 403, (scope, method, path, r.text)
                assert "scope" in r.json()["detail"]
            elif method == "post":
                assert r.status_code == 422, (scope, method, path, r.text)
            else:
                assert r.status_code in (200, 404), (scope, method, path, r.text)


@pytest.fixture(scope="module")
def limited(fitted_shop: dict, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("limited")
    server = start_server(copy_shop(fitted_shop, tmp), tmp, CLIENTFOLIO_RATE="1", CLIENTFOLIO_BURST="3",
                          CLIENTFOLIO_MAX_BODY="4096")
    server.keys = dict(fitted_shop["keys"])
    yield server
    server.stop()


def test_rate_limit_per_key_with_retry_after(limited: Server) -> None:
    with limited.client(limited.keys["read"]) as c:
        codes = [c.get("/segments").status_code for _ in range(4)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = c.get("/segments")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/problem+json"
    with limited.client(limited.keys["write"]) as other:  # another key has its own bucket
        assert other.get("/segments").status_code == 200


def test_body_size_limit_by_length_and_while_streaming(limited: Server) -> None:
    key = {"Authorization": f"Bearer {limited.keys['admin']}"}
    big = {"orders": [{"order_id": f"o{i}", "customer_id": "C00001", "ts": "2024-07-01T00:00:00Z", "amount": 1.0}
                      for i in range(100)]}
    r = httpx.post(limited.url + "/v1/batch", json=big, headers=key)
    assert r.status_code == 413 and "4,096 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams (a well-formed upload, too big)
        yield (b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
               b"Content-Type: text/csv\r\n\r\ncustomer_id,order_id,ts,amount\n")
        for i in range(200):
            yield f"c{i},o{i},2024-07-01T00:00:00Z,1.0\n".encode() * 10
        yield b"\r\n--zzz--\r\n"

    r = httpx.post(limited.url + "/v1/imports", content=chunks(),
                   headers={**key, "content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413
    small = httpx.post(limited.url + "/v1/orders", headers=key, json={
        "order_id": "small-1", "customer_id": "C00010", "ts": "2024-07-01T00:00:00Z", "amount": 5.0})
    assert small.status_code == 200, small.text
