"""What every route receives: the caller's workspace context, resolved from its key in one place.

Routes declare the scope they need with ``ReadCtx``, ``WriteCtx`` or ``AdminCtx``; the
dependency checks the key, spends a rate-limit token, checks the scope and hands over the
workspace's store (from :meth:`Registry.store_for`, the one place stores come from).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from clientfolio.service.auth import KeyInfo, Scope, allows
from clientfolio.service.errors import ApiError, Forbidden, Unauthorized
from clientfolio.service.workspaces import OpenStore
from clientfolio.store import Store

if TYPE_CHECKING:
    from clientfolio.live import LivePortfolio
    from clientfolio.service.app import Service

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cf_...`")


@dataclass
class Ctx:
    """A request's workspace: its key, its store (use inside `session()`), its own folder for files."""

    key: KeyInfo
    held: OpenStore
    files: Path
    service: "Service"

    @property
    def workspace(self) -> str:
        return self.key.workspace

    @contextmanager
    def session(self) -> Iterator[Store]:
        """The workspace's store, used by this request alone until the block ends."""
        with self.held.lock:
            yield self.held.store

    def live(self, store: Store) -> "LivePortfolio":
        """The workspace's living portfolio (kept between requests while its state and triggers stay the same)."""
        return self.service.live_for(self.held.workspace.uid, store)


def _context(needed: Scope) -> Any:
    def finish(svc: "Service", info: KeyInfo | None, held: OpenStore | None) -> Ctx:
        if info is None:
            raise Unauthorized()
        svc.limiter.take(info.key_id)
        if not allows(info.scope, needed):
            raise Forbidden(f"this key has the {info.scope} scope; this request needs {needed} "
                            f"(`clientfolio key create --scope {needed}`)")
        if held is None:
            held = svc.registry.store_for(info)
        return Ctx(info, held, svc.files_for(held.workspace), svc)

    def looked_up(svc: "Service", key: str) -> Ctx:
        return finish(svc, svc.registry.resolve(key), None)

    async def resolve(request: Request,
                      creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> Ctx:
        svc: Service = request.app.state.service
        if "\x00" in request.url.path or "%00" in request.url.query.lower() or "\x00" in request.url.query:
            raise ApiError("the path or query holds a NUL byte, which no id or name can contain", status=422)
        if creds is None:
            raise Unauthorized()
        # A key verified a moment ago whose workspace store is open: answered here, on the event loop
        # (no database, no thread hop).  Anything else is looked up in a worker thread.
        info = svc.registry.remembered(creds.credentials)
        held = svc.registry.kept_store(info) if info is not None else None
        if info is None or held is None:
            return await run_in_threadpool(looked_up, svc, creds.credentials)
        return finish(svc, info, held)

    return resolve


ReadCtx = Annotated[Ctx, Depends(_context("read"))]
WriteCtx = Annotated[Ctx, Depends(_context("write"))]
AdminCtx = Annotated[Ctx, Depends(_context("admin"))]


# What a cached LivePortfolio depends on: the current fitted state and the segment triggers, read in one
# statement (one round trip on PostgreSQL; on DuckDB this form plans faster than scalar subqueries).
CURRENT_SQL = ("SELECT 's', CAST(max(state_id) AS VARCHAR) FROM portfolio_states WHERE is_current "
               "UNION ALL SELECT 't', value FROM live_meta WHERE key = 'triggers'")


class LiveCache:
    """One LivePortfolio per workspace, rebuilt when the store's current state or triggers change.

    `buffered`: each is a buffered LivePortfolio (in-memory reads, write-behind; see
    :mod:`clientfolio.live.memory`) -- an event is answered only after the flush that writes it (single
    events: their group's, see :mod:`clientfolio.service.grouping`; a batch: the next flush, which also
    writes what queued meanwhile), so an acknowledged event is durable.  The in-memory copy costs memory per workspace (about 7 KB per customer)."""

    def __init__(self, buffered: bool = False) -> None:
        self._items: dict[str, tuple[tuple[int, str], Any]] = {}
        self._lock = threading.Lock()
        self.buffered = buffered

    def get(self, workspace: str, store: Store) -> "LivePortfolio":
        from clientfolio.live import LivePortfolio

        got = dict(store.fetch(CURRENT_SQL)[1])  # no DataFrame: this runs on every event
        sig = (-1 if got.get("s") is None else int(got["s"]), str(got.get("t") or ""))
        with self._lock:
            hit = self._items.get(workspace)
        if hit is not None and hit[0] == sig:
            return hit[1]
        if hit is not None:
            hit[1].flush()  # what the old one buffered is written before it goes (the caller holds the lock)
        live = LivePortfolio(store, buffered=self.buffered, flush_every=1000)
        with self._lock:
            self._items[workspace] = (sig, live)
        return live


def records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows: missing values null, times ISO 8601."""
    if frame is None or len(frame) == 0:
        return []
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))
