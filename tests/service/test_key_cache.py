"""The in-process cache of verified API keys: a revocation stops a key at once in the process that revokes,
and within the cache's time-to-live in any other (PostgreSQL, where the CLI revokes while the service runs)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import drop_pg_schema, pg_schema
from tests.service.conftest import start_server


def test_duckdb_key_remembered_then_forgotten_at_once_on_revocation(tmp_path) -> None:
    from clientfolio.service.workspaces import Registry

    with Registry(str(tmp_path / "shop.duckdb")) as reg:
        assert reg.key_ttl == 60.0  # the default on a file no other process can open while it is served
        key_id, key = reg.create_key(None, "write")
        other_id, other = reg.create_key(None, "read")
        info = reg.resolve(key)
        assert info is not None and info.key_id == key_id and info.scope == "write"
        reg._sql.run("UPDATE cf_api_keys SET scope = 'read' WHERE key_id = ?", [key_id])  # behind its back
        assert reg.resolve(key).scope == "write"  # answered from memory: no look-up
        reg.revoke_key(key_id)
        assert reg.resolve(key) is None  # at once, although remembered a moment ago
        assert reg.resolve(other).key_id == other_id  # another key is untouched
        assert reg.resolve("cf_" + "A" * 43) is None


def test_unknown_keys_are_never_remembered(tmp_path) -> None:
    from clientfolio.service.auth import key_hash
    from clientfolio.service.workspaces import Registry

    with Registry(str(tmp_path / "shop.duckdb"), key_ttl=60) as reg:
        key_id, key = reg.create_key(None, "read")
        reg._sql.run("UPDATE cf_api_keys SET revoked_at = now() WHERE key_id = ?", [key_id])
        assert reg.resolve(key) is None
        assert reg._keys == {}  # a refused key is looked up again next time ...
        reg._sql.run("UPDATE cf_api_keys SET revoked_at = NULL WHERE key_id = ?", [key_id])
        assert reg.resolve(key).key_id == key_id  # ... so it works as soon as the database says so
        assert list(reg._keys) == [key_hash(key)]  # held by its hash, never the key itself


def test_ttl_expires_and_setting_is_checked(tmp_path, monkeypatch) -> None:
    from clientfolio.service.workspaces import Registry, WorkspaceError, key_cache_ttl

    monkeypatch.setenv("CLIENTFOLIO_KEY_CACHE", "0.3")
    with Registry(str(tmp_path / "shop.duckdb")) as reg:
        assert reg.key_ttl == 0.3
        key_id, key = reg.create_key(None, "write")
        assert reg.resolve(key) is not None
        reg._sql.run("UPDATE cf_api_keys SET revoked_at = now() WHERE key_id = ?", [key_id])  # not via revoke_key
        time.sleep(0.4)
        assert reg.resolve(key) is None  # asked again once the time-to-live ran out
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("CLIENTFOLIO_KEY_CACHE", bad)
        with pytest.raises(WorkspaceError, match="CLIENTFOLIO_KEY_CACHE"):
            key_cache_ttl("x.duckdb")
    monkeypatch.delenv("CLIENTFOLIO_KEY_CACHE")
    assert key_cache_ttl("postgresql://u@h/db") == 0.0  # PostgreSQL: revoked from another process at once


@pytest.mark.postgres
def test_postgres_other_process_revocation_within_ttl_same_process_at_once(pg_url: str) -> None:
    from clientfolio.service.workspaces import Registry

    url, schema = pg_schema(pg_url)
    try:
        with Registry(url, key_ttl=0.5) as served, Registry(url) as cli:  # the service's registry, the CLI's
            cli.create_workspace("shop-a")
            a_id, a_key = cli.create_key("shop-a", "write")
            b_id, b_key = cli.create_key("shop-a", "read")
            assert served.resolve(a_key).key_id == a_id and served.resolve(b_key).key_id == b_id
            t0 = time.monotonic()
            cli.revoke_key(a_id)  # another registry object: this one's memory is not told
            assert cli.resolve(a_key) is None
            if time.monotonic() - t0 < 0.4:
                assert served.resolve(a_key) is not None  # still trusted: within the time-to-live
            time.sleep(0.6)
            assert served.resolve(a_key) is None  # never longer than the time-to-live
            served.revoke_key(b_id)
            assert served.resolve(b_key) is None  # revoked through the same registry: at once
            c_id, c_key = cli.create_key("shop-a", "admin")
            assert served.resolve(c_key).key_id == c_id
            served.delete_workspace("shop-a")
            assert served.resolve(c_key) is None  # its workspace deleted here: forgotten at once
    finally:
        drop_pg_schema(pg_url, schema)
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as c:
            for (s,) in c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                  [schema + "_ws_%"]).fetchall():
                c.execute(f"DROP SCHEMA {s} CASCADE")


@pytest.mark.postgres
def test_served_key_stops_within_the_ttl_over_http(pg_url: str, tmp_path) -> None:
    """A real server with CLIENTFOLIO_KEY_CACHE=1: a key revoked by the CLI's registry stops within a second."""
    from clientfolio.service.workspaces import Registry

    url, schema = pg_schema(pg_url)
    server = None
    try:
        with Registry(url) as cli:
            cli.create_workspace("shop-a")
            key_id, key = cli.create_key("shop-a", "read")
            server = start_server(url, tmp_path, CLIENTFOLIO_KEY_CACHE="1")
            with server.client(key) as c:
                assert c.get("/customers").status_code == 200
                cli.revoke_key(key_id)
                deadline = time.monotonic() + 1.0
                codes = []
                while time.monotonic() < deadline + 0.5:
                    codes.append(c.get("/customers").status_code)
                    if codes[-1] == 401:
                        break
                    time.sleep(0.05)
                assert codes[-1] == 401 and set(codes) <= {200, 401}
                time.sleep(0.1)
                assert c.get("/customers").status_code == 401  # and stays refused
    finally:
        if server is not None:
            server.stop()
        drop_pg_schema(pg_url, schema)
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as c:
            for (s,) in c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                  [schema + "_ws_%"]).fetchall():
                c.execute(f"DROP SCHEMA {s} CASCADE")


def test_event_loop_fast_path_answers_only_from_memory(tmp_path) -> None:
    """`remembered` and `kept_store` (used on the event loop) never look anything up and never widen access."""
    from dataclasses import replace

    from clientfolio.service.workspaces import Registry

    with Registry(str(tmp_path / "shop.duckdb"), key_ttl=60) as reg:
        key_id, key = reg.create_key(None, "write")
        assert reg.remembered(key) is None  # never verified yet: the caller must look it up
        info = reg.resolve(key)
        assert reg.remembered(key) == info
        assert reg.remembered("cf_" + "B" * 43) is None and reg.remembered("not a key") is None
        assert reg.kept_store(info) is reg.store_for(info)
        assert reg.kept_store(replace(info, workspace_uid="another")) is None  # a replaced workspace: no store
        assert reg.kept_store(replace(info, workspace="elsewhere")) is None
        reg.revoke_key(key_id)
        assert reg.remembered(key) is None and reg.resolve(key) is None
