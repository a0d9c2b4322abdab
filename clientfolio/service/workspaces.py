"""Workspaces (one per shop) and their API keys, and the ONE place a key becomes a store.

Two shapes:

- PostgreSQL by URL: a registry schema (the URL's ``search_path`` schema, else ``clientfolio``)
  holds the workspaces and keys; each workspace's tables live in a schema of its own,
  ``<registry>_ws_<n>``.  A store is opened on that schema only, so a query cannot reach
  another shop's rows whatever it says.
- A DuckDB file: a single shop.  Its one workspace is ``default``; the registry tables sit
  beside the shop's tables in the same file.

:meth:`Registry.store_for` is the single function that hands a request its store: it resolves
the key to its workspace and returns that workspace's store.  Nothing else opens a store.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from clientfolio.core.errors import ClientfolioError, StoreError
from clientfolio.service.auth import KeyInfo, Scope, check_scope, key_hash, looks_like_key, new_key, new_key_id, same_hash
from clientfolio.store import Store, open_store

DUCKDB_WORKSPACE = "default"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
TABLES = [
    "CREATE TABLE IF NOT EXISTS cf_workspaces (workspace_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "schema_name TEXT NOT NULL, created_at TIMESTAMP NOT NULL, uid TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS cf_api_keys (key_id TEXT PRIMARY KEY, workspace_id INTEGER NOT NULL, "
    "key_hash TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, label TEXT, created_at TIMESTAMP NOT NULL, "
    "revoked_at TIMESTAMP)",
]


class WorkspaceError(ClientfolioError):
    """A workspace or key operation that cannot be done as asked (says what to do instead)."""


@dataclass(frozen=True)
class Workspace:
    """A shop: its name, id, (PostgreSQL) schema, and a uid no later workspace of the same name shares."""

    workspace_id: int
    name: str
    schema_name: str
    created_at: datetime
    uid: str


@dataclass
class OpenStore:
    """A workspace's open store and the lock that serialises its use (one connection per workspace)."""

    workspace: Workspace
    store: Store
    lock: threading.Lock


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _search_path(url: str) -> str | None:
    """The schema a URL's ``options=-csearch_path=...`` names, if any."""
    for k, v in parse_qsl(urlsplit(url).query):
        if k == "options":
            m = re.search(r"-c\s*search_path\s*=\s*([A-Za-z0-9_]+)", unquote(v))
            if m:
                return m.group(1)
    return None


def with_search_path(url: str, schema: str) -> str:
    """`url` with its search_path set to `schema` (other options kept out: one schema, nothing else)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class _SQL:
    """The registry tables' database: `?` parameters on both engines; thread-safe."""

    def __init__(self, url: str, duck: Any = None) -> None:
        self._lock = threading.Lock()
        self.url = url
        if duck is not None:
            self.kind = "duckdb"
            self._con = duck.cursor()  # its own cursor on the shop's file
        else:
            import psycopg

            self.kind = "postgresql"
            self.schema = _search_path(url) or "clientfolio"
            try:
                self._con = psycopg.connect(with_search_path(url, self.schema), autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                raise WorkspaceError(f"cannot connect to the registry database: {str(exc).strip()}") from None
            self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        for sql in TABLES:
            self.run(sql)
        # registries made before workspaces had a uid get one per workspace
        self.run("ALTER TABLE cf_workspaces ADD COLUMN IF NOT EXISTS uid TEXT")
        for (wid,) in self.run("SELECT workspace_id FROM cf_workspaces WHERE uid IS NULL"):
            self.run("UPDATE cf_workspaces SET uid = ? WHERE workspace_id = ?", [secrets.token_hex(8), wid])

    def run(self, sql: str, params: list | None = None) -> list[tuple]:
        with self._lock:
            if self.kind == "duckdb":
                cur = self._con.execute(sql, params or [])
                return cur.fetchall() if cur.description else []
            cur = self._con.execute(sql.replace("?", "%s") if params else sql, params or None)
            return cur.fetchall() if cur.description else []

    @contextmanager
    def transaction(self) -> Iterator["_SQL"]:
        """Statements on the registry that commit together (workspace create and delete)."""
        with self._lock:
            if self.kind == "duckdb":
                self._con.execute("BEGIN TRANSACTION")
                try:
                    yield _Locked(self)
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
            else:
                with self._con.transaction():
                    yield _Locked(self)

    def close(self) -> None:
        self._con.close()


class _Locked:
    """The registry connection inside a transaction whose lock is already held."""

    def __init__(self, sql: _SQL) -> None:
        self._sql = sql

    def run(self, sql: str, params: list | None = None) -> list[tuple]:
        con = self._sql._con
        if self._sql.kind == "duckdb":
            cur = con.execute(sql, params or [])
        else:
            cur = con.execute(sql.replace("?", "%s") if params else sql, params or None)
        return cur.fetchall() if cur.description else []


KEY_CACHE_SIZE = 10_000  # verified keys kept at most; the cache is emptied when full (keys are few)


def key_cache_ttl(url: str) -> float:
    """Seconds a verified key is trusted without asking the database again (``CLIENTFOLIO_KEY_CACHE``).

    Default: 60 on a DuckDB file (no other process can open the file while it is served, so every
    revocation happens in this process, which forgets the key at once); 0 on PostgreSQL, where the
    CLI revokes from another process and the look-up costs well under a millisecond: a revoked key
    stops at once.  Set above 0 on PostgreSQL, a key revoked by another process may still work for
    up to that many seconds (a revocation in this process is always at once).
    """
    raw = os.environ.get("CLIENTFOLIO_KEY_CACHE", "")
    if raw == "":
        return 0.0 if is_postgres(url) else 60.0
    try:
        ttl = float(raw)
    except ValueError:
        raise WorkspaceError(f"CLIENTFOLIO_KEY_CACHE={raw!r} is not a number of seconds") from None
    if not ttl >= 0:
        raise WorkspaceError(f"CLIENTFOLIO_KEY_CACHE={raw!r} must be 0 or more seconds")
    return ttl


class Registry:
    """Workspaces and API keys of one deployment, and the stores of its workspaces.

    Verified keys are remembered for `key_ttl` seconds (default: :func:`key_cache_ttl`) by their
    hash, so most requests skip the key look-up; revoking a key or deleting a workspace through
    this registry forgets its keys at once.  Unknown and revoked keys are never remembered.
    """

    def __init__(self, url: str | Path, key_ttl: float | None = None) -> None:
        self.url = str(url)
        self._stores: dict[str, OpenStore] = {}
        self._stores_lock = threading.Lock()
        self.key_ttl = key_cache_ttl(self.url) if key_ttl is None else float(key_ttl)
        self._keys: dict[str, tuple[KeyInfo, float]] = {}  # key hash -> (what it grants, trusted until)
        self._keys_lock = threading.Lock()
        self._keys_forgotten = 0  # raised by every forget: a look-up that raced one is not remembered
        if is_postgres(self.url):
            self.multi = True
            self._sql = _SQL(self.url)
        else:
            self.multi = False
            try:
                shop = open_store(self.url)  # creates and migrates the file
            except StoreError as exc:
                if "lock" not in str(exc).lower():
                    raise
                raise WorkspaceError(f"{exc}.  A DuckDB store is open in one process at a time: stop `clientfolio "
                                     "serve` to manage its keys, or serve a PostgreSQL URL, whose workspaces and "
                                     "keys can be managed while it runs") from None
            self._sql = _SQL(self.url, duck=shop.con)  # type: ignore[attr-defined]
            if not self._sql.run("SELECT 1 FROM cf_workspaces"):
                self._sql.run("INSERT INTO cf_workspaces VALUES (1, ?, '', ?, ?)",
                              [DUCKDB_WORKSPACE, _now(), secrets.token_hex(8)])
            ws = self.workspace(DUCKDB_WORKSPACE)
            self._stores[DUCKDB_WORKSPACE] = OpenStore(ws, shop, threading.Lock())

    # -- workspaces ---------------------------------------------------------------------------------
    def workspaces(self) -> list[Workspace]:
        """Every workspace, oldest first."""
        rows = self._sql.run("SELECT workspace_id, name, schema_name, created_at, uid FROM cf_workspaces "
                             "ORDER BY workspace_id")
        return [Workspace(int(r[0]), str(r[1]), str(r[2]), r[3], str(r[4])) for r in rows]

    def workspace(self, name: str) -> Workspace:
        """The workspace called `name` (an error listing the known names otherwise)."""
        for ws in self.workspaces():
            if ws.name == name:
                return ws
        known = ", ".join(w.name for w in self.workspaces()) or "none yet"
        raise WorkspaceError(f"no workspace {name!r} (workspaces: {known}); create it with "
                             f"`clientfolio workspace create {name}`")

    def create_workspace(self, name: str) -> Workspace:
        """A new, empty workspace with its own schema (PostgreSQL only: a DuckDB file is one shop)."""
        if not self.multi:
            raise WorkspaceError(f"{self.url} is a DuckDB file, which holds one shop: its workspace is "
                                 f"'{DUCKDB_WORKSPACE}'.  For many shops, serve a PostgreSQL URL")
        if not NAME.match(name):
            raise WorkspaceError(f"workspace name {name!r}: use 1-40 lower-case letters, digits and dashes, "
                                 "starting with a letter or digit (e.g. 'bakery-north')")
        with self._sql.transaction() as tx:
            if tx.run("SELECT 1 FROM cf_workspaces WHERE name = ?", [name]):
                raise WorkspaceError(f"workspace {name!r} exists already")
            n = int(tx.run("SELECT coalesce(max(workspace_id), 0) + 1 FROM cf_workspaces")[0][0])
            schema = f"{self._sql.schema}_ws_{n}"
            tx.run(f'CREATE SCHEMA "{schema}"')
            tx.run("INSERT INTO cf_workspaces VALUES (?, ?, ?, ?, ?)", [n, name, schema, _now(), secrets.token_hex(8)])
        ws = self.workspace(name)
        open_store(with_search_path(self.url, schema)).close()  # create the shop's tables now
        return ws

    def delete_workspace(self, name: str) -> None:
        """Delete a workspace: its keys stop working and all its data is dropped."""
        ws = self.workspace(name)
        if not self.multi:
            raise WorkspaceError("a DuckDB store's one workspace cannot be deleted; delete the file instead")
        self._forget_keys(lambda info: info.workspace_uid == ws.uid)
        with self._stores_lock:
            held = self._stores.pop(name, None)
        if held is not None:
            with held.lock:
                held.store.close()
        with self._sql.transaction() as tx:
            tx.run("DELETE FROM cf_api_keys WHERE workspace_id = ?", [ws.workspace_id])
            tx.run("DELETE FROM cf_workspaces WHERE workspace_id = ?", [ws.workspace_id])
            tx.run(f'DROP SCHEMA IF EXISTS "{ws.schema_name}" CASCADE')
        self._forget_keys(lambda info: info.workspace_uid == ws.uid)  # and any look-up that raced the delete

    # -- keys -------------------------------------------------------------------------------------------
    def create_key(self, workspace: str | None, scope: str, label: str = "") -> tuple[str, str]:
        """A new key for `workspace` (on DuckDB: the one workspace): returns (key_id, key).

        The key itself is returned once and never stored; keep it somewhere safe.
        """
        ws = self.workspace(workspace or self._only_workspace())
        check_scope(scope)
        key, key_id = new_key(), new_key_id()
        self._sql.run("INSERT INTO cf_api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                      [key_id, ws.workspace_id, key_hash(key), scope, label or "", _now()])
        return key_id, key

    def _only_workspace(self) -> str:
        if not self.multi:
            return DUCKDB_WORKSPACE
        raise WorkspaceError("give the workspace the key is for (--workspace NAME); "
                             f"workspaces: {', '.join(w.name for w in self.workspaces()) or 'none yet'}")

    def keys(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Every key's id, workspace, scope, label, created and revoked times (never the key or its hash)."""
        sql = ("SELECT k.key_id, w.name, k.scope, k.label, k.created_at, k.revoked_at FROM cf_api_keys k "
               "JOIN cf_workspaces w ON w.workspace_id = k.workspace_id")
        params: list = []
        if workspace is not None:
            self.workspace(workspace)
            sql += " WHERE w.name = ?"
            params.append(workspace)
        rows = self._sql.run(sql + " ORDER BY k.created_at, k.key_id", params)
        cols = ["key_id", "workspace", "scope", "label", "created_at", "revoked_at"]
        return [dict(zip(cols, r)) for r in rows]

    def revoke_key(self, key_id: str) -> None:
        """Stop a key from working at once (it stays listed, with the time it was revoked)."""
        found = self._sql.run("SELECT revoked_at FROM cf_api_keys WHERE key_id = ?", [key_id])
        if not found:
            raise WorkspaceError(f"no key {key_id!r}; `clientfolio key list` shows the key ids")
        if found[0][0] is None:
            self._sql.run("UPDATE cf_api_keys SET revoked_at = ? WHERE key_id = ?", [_now(), key_id])
        self._forget_keys(lambda info: info.key_id == key_id)  # and any look-up that raced the update

    def _forget_keys(self, which: Any) -> None:
        """Drop the remembered keys for which `which(KeyInfo)` is true."""
        with self._keys_lock:
            self._keys_forgotten += 1
            for h in [h for h, (info, _) in self._keys.items() if which(info)]:
                del self._keys[h]

    def resolve(self, key: str) -> KeyInfo | None:
        """The workspace and scope a key grants, or None for an unknown, malformed or revoked key.

        A key verified less than `key_ttl` seconds ago is answered from memory (see the class)."""
        if not looks_like_key(key):
            return None
        h = key_hash(key)
        if self.key_ttl <= 0:
            return self._lookup(h)
        with self._keys_lock:
            hit = self._keys.get(h)
            generation = self._keys_forgotten
        if hit is not None and time.monotonic() < hit[1]:
            return hit[0]
        info = self._lookup(h)
        if info is not None:
            with self._keys_lock:
                if self._keys_forgotten != generation:  # a revocation ran meanwhile: ask again next time
                    return info
                if len(self._keys) >= KEY_CACHE_SIZE:
                    self._keys.clear()
                self._keys[h] = (info, time.monotonic() + self.key_ttl)
        return info

    def remembered(self, key: str) -> KeyInfo | None:
        """What a key grants if it was verified less than `key_ttl` seconds ago, from memory alone (no I/O,
        no waiting: safe on the event loop); None means "ask :meth:`resolve`", not "refused"."""
        if self.key_ttl <= 0 or not looks_like_key(key):
            return None
        with self._keys_lock:
            hit = self._keys.get(key_hash(key))
        return hit[0] if hit is not None and time.monotonic() < hit[1] else None

    def _lookup(self, h: str) -> KeyInfo | None:
        """The key with hash `h` as the database holds it now (None: unknown or revoked)."""
        rows = self._sql.run("SELECT k.key_id, k.key_hash, k.scope, w.name, w.uid FROM cf_api_keys k "
                             "JOIN cf_workspaces w ON w.workspace_id = k.workspace_id "
                             "WHERE k.key_hash = ? AND k.revoked_at IS NULL", [h])
        if not rows or not same_hash(str(rows[0][1]), h):
            return None
        scope: Scope = check_scope(str(rows[0][2]))
        return KeyInfo(str(rows[0][0]), str(rows[0][3]), scope, str(rows[0][4]))

    def resolve_id(self, key_id: str) -> KeyInfo | None:
        """What a live key grants, by its public id (a dashboard session holds the id, never the key)."""
        rows = self._sql.run("SELECT k.key_id, k.scope, w.name, w.uid FROM cf_api_keys k "
                             "JOIN cf_workspaces w ON w.workspace_id = k.workspace_id "
                             "WHERE k.key_id = ? AND k.revoked_at IS NULL", [key_id])
        if not rows:
            return None
        return KeyInfo(str(rows[0][0]), str(rows[0][2]), check_scope(str(rows[0][1])), str(rows[0][3]))

    # -- stores -----------------------------------------------------------------------------------------
    def store_for(self, key: KeyInfo) -> OpenStore:
        """THE one place a request gets a store: the store of the workspace its key belongs to.

        Every route reads and writes through what this returns, so a key can only ever reach
        its own workspace's tables (on PostgreSQL, a connection whose search_path is that
        workspace's schema alone).  A workspace deleted and created again under the same name
        is another workspace (another uid): nothing kept for the old one is handed out.
        """
        held = self.open_workspace(key.workspace, key.workspace_uid)
        if held.workspace.uid != key.workspace_uid:
            raise WorkspaceError("the key's workspace was replaced while it was used; send the request again")
        return held

    def kept_store(self, key: KeyInfo) -> OpenStore | None:
        """:meth:`store_for` when the key's workspace store is open already, without I/O or waiting
        (None: call :meth:`store_for`).  The same check: only the store of the key's own workspace."""
        if not self._stores_lock.acquire(blocking=False):
            return None
        try:
            held = self._stores.get(key.workspace)
        finally:
            self._stores_lock.release()
        return held if held is not None and held.workspace.uid == key.workspace_uid else None

    def open_workspace(self, name: str, uid: str | None = None) -> OpenStore:
        """A workspace's store, opened once and kept (for the scheduler and `store_for`).

        With `uid`, a store kept for an older workspace of the same name is closed and the
        current one opened.
        """
        with self._stores_lock:
            held = self._stores.get(name)
            if held is not None and (uid is None or held.workspace.uid == uid):
                return held
            if held is not None:
                del self._stores[name]
                with held.lock:
                    held.store.close()
            ws = self.workspace(name)
            st = open_store(with_search_path(self.url, ws.schema_name)) if self.multi else None
            if st is None:
                raise WorkspaceError(f"workspace {name!r} of a DuckDB store has no second store")
            held = self._stores[name] = OpenStore(ws, st, threading.Lock())
            return held

    def close(self) -> None:
        """Close the registry connection and every open store."""
        self._sql.close()
        with self._stores_lock:
            for held in self._stores.values():
                with held.lock:
                    held.store.close()
            self._stores.clear()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
