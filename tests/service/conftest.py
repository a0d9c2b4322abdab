"""Fixtures of the service tests: real `clientfolio serve` processes on free loopback ports, called over HTTP.

A fitted shop is built once per session through the service itself (import, then the first
POST /v1/refit) and copied for each server that changes it, so every test starts from the same
shop without paying for another fit.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import DATA, drop_pg_schema, pg_schema

SHOP = DATA / "service"
ORDERS = SHOP / "orders.csv.gz"
CUSTOMERS = SHOP / "customers.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_key(store: str, *, scope: str, workspace: str | None = None) -> str:
    """A key made through the registry (in this process: the CLI's start-up costs seconds; it is tested apart)."""
    from clientfolio.service.workspaces import Registry

    with Registry(store) as reg:
        return reg.create_key(workspace, scope)[1]


@dataclass
class Server:
    """A running `clientfolio serve` process."""

    store: str
    port: int
    proc: subprocess.Popen
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url + "/v1", headers=headers, timeout=120)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(store: str, tmp: Path, **env: str) -> Server:
    """Start `clientfolio serve --store STORE` on a free port and wait until /v1/health answers."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    environment = {**os.environ, "CLIENTFOLIO_SCHEDULER": "0", "CLIENTFOLIO_FILES": str(tmp / "files"), **env}
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "clientfolio.cli", "serve", "--store", store, "--port",
                                 str(port), "--log-level", "warning"], stdout=fh, stderr=subprocess.STDOUT,
                                env=environment)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return Server(store, port, proc, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not answer within 60 s: {log.read_text()[-3000:]}")


def shop_files(prefix: str = "", customers: int | None = None) -> tuple[bytes, bytes]:
    """The test shop's orders (gzipped CSV) and customers, with customer ids prefixed (another shop's ids)."""
    orders = pd.read_csv(ORDERS, dtype=str)
    people = pd.read_csv(CUSTOMERS, dtype=str)
    if customers is not None:
        keep = sorted(people["customer_id"])[:customers]
        orders, people = orders[orders["customer_id"].isin(keep)], people[people["customer_id"].isin(keep)]
    for df in (orders, people):
        df["customer_id"] = prefix + df["customer_id"]
    orders["order_id"] = prefix + orders["order_id"]
    return gzip.compress(orders.to_csv(index=False).encode()), people.to_csv(index=False).encode()


def fill_shop(client: httpx.Client, prefix: str = "", customers: int | None = None) -> dict:
    """Import the shop's files and fit it through the API; the responses, for the tests to check."""
    orders, people = shop_files(prefix, customers)
    out = {"customers": client.post("/imports", files={"file": ("customers.csv", io.BytesIO(people), "text/csv")}),
           "orders": client.post("/imports", files={"file": ("orders.csv.gz", io.BytesIO(orders),
                                                             "application/gzip")})}
    out["refit"] = client.post("/refit")
    for name, r in out.items():
        assert r.status_code == 200, (name, r.text)
    return out


@pytest.fixture(scope="session")
def fitted_shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A DuckDB shop filled and fitted through a real server, its keys, and the responses of doing so."""
    tmp = tmp_path_factory.mktemp("shop")
    store = str(tmp / "shop.duckdb")
    keys = {scope: new_key(store, scope=scope) for scope in ("read", "write", "admin")}
    from clientfolio.service.workspaces import Registry

    with Registry(store) as reg:
        key_id, revoked = reg.create_key(None, "admin", "revoked at once")
        reg.revoke_key(key_id)
    server = start_server(store, tmp)
    try:
        with server.client(keys["admin"]) as c:
            responses = fill_shop(c)
    finally:
        server.stop()
    from clientfolio.actions.experiments import start_experiment
    from clientfolio.store import open_store

    with open_store(store) as st:  # an experiment started in April, read out through the API
        start_experiment(st, "april-winback", "lifecycle", "active", at=pd.Timestamp("2024-04-01").to_pydatetime())
    return {"store": store, "files": tmp / "files", "keys": keys, "revoked": revoked, "responses": responses}


def copy_shop(shop: dict, dest: Path) -> str:
    """A copy of the fitted shop's store (and its files) for a server that changes it."""
    store = dest / "shop.duckdb"
    shutil.copy(shop["store"], store)
    return str(store)


@pytest.fixture(scope="module")
def duck_server(fitted_shop: dict, tmp_path_factory: pytest.TempPathFactory):
    """A server on a copy of the fitted shop, shared by a module's tests (each uses its own customers)."""
    tmp = tmp_path_factory.mktemp("duck")
    server = start_server(copy_shop(fitted_shop, tmp), tmp)
    server.keys = dict(fitted_shop["keys"], revoked=fitted_shop["revoked"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_registry(tmp_path_factory: pytest.TempPathFactory):
    """A fresh PostgreSQL registry schema; it and its workspace schemas are dropped afterwards."""
    from tests.conftest import _pg_url

    url = _pg_url()
    if url is None:
        pytest.skip("no PostgreSQL server at CLIENTFOLIO_TEST_PG_URL (`bash .ci/run` starts one)")
    reg_url, schema = pg_schema(url)
    yield reg_url
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [schema + "_ws_%"]).fetchall()
        for (name,) in rows:
            c.execute(f'DROP SCHEMA "{name}" CASCADE')
    drop_pg_schema(url, schema)
