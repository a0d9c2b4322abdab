"""The ASGI app: ``create_app(registry_url)`` gives the versioned REST API (/v1) and its OpenAPI spec.

Settings come from arguments or the environment (checked at start-up):
``CLIENTFOLIO_MAX_BODY`` (bytes, default 50 MB), ``CLIENTFOLIO_RATE`` (requests a second per key,
default 50; 0 turns the limit off), ``CLIENTFOLIO_BURST`` (default 100), ``CLIENTFOLIO_FILES``
(folder for exports, reports and rejects files; default beside a DuckDB store, else
./clientfolio-files), ``CLIENTFOLIO_SCHEDULER`` (seconds between scheduler ticks; 0 turns the
periodic jobs off; default 5: webhook deliveries go out within seconds), ``CLIENTFOLIO_WRITE_BEHIND``
(0, the default: every update reads and writes the store on its own, and no memory is held per
workspace; 1: per-event updates are computed from an in-memory copy of each workspace's customers
and written in group commits, each event answered once its commit is durable.  The copy costs about
7 KB per customer and a few seconds to read per 100k customers, again after any other writer --
a sweep, an import, a refit -- changes the store, so it is off unless asked for),
``CLIENTFOLIO_KEY_CACHE`` (seconds a verified API key is trusted without a look-up; see
:func:`clientfolio.service.workspaces.key_cache_ttl`), ``CLIENTFOLIO_GROUP_MAX`` (single orders, refunds
and events of one workspace applied together in one update and one commit at most, default 64; 1 applies
each alone; see :mod:`clientfolio.service.grouping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from clientfolio.core.errors import ClientfolioError
from clientfolio.service import dashboard, errors
from clientfolio.service.deps import LiveCache
from clientfolio.service.grouping import GroupCommit
from clientfolio.service.limits import BodyLimit, RateLimiter
from clientfolio.service.scheduler import Scheduler
from clientfolio.service.workspaces import Registry, Workspace, is_postgres
from clientfolio.store import Store

API_VERSION = "1"


@dataclass(frozen=True)
class Settings:
    """The service's limits and folders (validated: a limit must be a positive number)."""

    max_body_bytes: int = 50 * 1024 * 1024
    rate_per_second: float = 50.0
    burst: int = 100
    files_dir: Path | None = None
    scheduler_tick: float = 5.0
    write_behind: bool = False
    group_max: int = 64

    @classmethod
    def from_env(cls, **overrides: Any) -> "Settings":
        def num(name: str, default: float) -> float:
            raw = os.environ.get(name)
            if raw is None or raw == "":
                return default
            try:
                v = float(raw)
            except ValueError:
                raise ClientfolioError(f"{name}={raw!r} is not a number") from None
            if v < 0:
                raise ClientfolioError(f"{name}={raw!r} must not be negative")
            return v

        env: dict[str, Any] = {
            "max_body_bytes": int(num("CLIENTFOLIO_MAX_BODY", cls.max_body_bytes)),
            "rate_per_second": num("CLIENTFOLIO_RATE", cls.rate_per_second),
            "burst": max(1, int(num("CLIENTFOLIO_BURST", cls.burst))),
            "files_dir": Path(os.environ["CLIENTFOLIO_FILES"]) if os.environ.get("CLIENTFOLIO_FILES") else None,
            "scheduler_tick": num("CLIENTFOLIO_SCHEDULER", cls.scheduler_tick),
            "write_behind": num("CLIENTFOLIO_WRITE_BEHIND", 0.0) != 0,
            "group_max": max(1, int(num("CLIENTFOLIO_GROUP_MAX", cls.group_max))),
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        if env["max_body_bytes"] < 1024:
            raise ClientfolioError("CLIENTFOLIO_MAX_BODY must be at least 1024 bytes")
        return cls(**env)


class Service:
    """What the app holds for its lifetime: the registry, the rate limiter, the scheduler, cached portfolios."""

    def __init__(self, registry_url: str, settings: Settings) -> None:
        self.registry_url = registry_url
        self.settings = settings
        self.registry = Registry(registry_url)
        self.limiter = RateLimiter(settings.rate_per_second, settings.burst)
        self.scheduler = Scheduler(self.registry, tick=settings.scheduler_tick or 5.0)
        self._live = LiveCache(buffered=settings.write_behind)
        self.groups = GroupCommit(settings.group_max)
        self._made: set[Path] = set()
        if settings.files_dir is not None:
            self.files_root = settings.files_dir
        elif is_postgres(registry_url):
            self.files_root = Path.cwd() / "clientfolio-files"
        else:
            self.files_root = Path(registry_url).with_name(Path(registry_url).name + ".files")

    def files_for(self, workspace: Workspace) -> Path:
        """The workspace's own folder for exports, reports and rejects files (made on first use).

        Named by name and uid: a workspace deleted and created again never sees the old one's files.
        """
        p = self.files_root / f"{workspace.name}-{workspace.uid}"
        if p not in self._made:  # made once: not a mkdir on every request
            p.mkdir(parents=True, exist_ok=True)
            self._made.add(p)
        return p

    def live_for(self, workspace_uid: str, store: Store) -> Any:
        """The workspace's LivePortfolio, kept between requests (by workspace uid, never by name)."""
        return self._live.get(workspace_uid, store)

    def close(self) -> None:
        self.registry.close()


def create_app(registry_url: str | Path, settings: Settings | None = None) -> FastAPI:
    """The clientfolio API over the workspaces of `registry_url` (a PostgreSQL URL or a DuckDB file)."""
    from clientfolio.service.routes import ROUTERS

    settings = settings or Settings.from_env()
    service = Service(str(registry_url), settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(service.scheduler.loop()) if settings.scheduler_tick > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            service.close()

    app = FastAPI(
        title="clientfolio",
        version=API_VERSION,
        summary="A strategic view of a shop's customers, kept current as orders and events arrive.",
        description="Every request but `GET /v1/health` needs an API key of the shop's workspace "
                    "(`Authorization: Bearer cf_...`, made with `clientfolio key create`).  Keys have a "
                    "scope: read (GET), write (imports, orders, events, exports) or admin (refit, sweep).  "
                    "Errors are JSON problems (`application/problem+json`).",
        lifespan=lifespan,
    )
    app.state.service = service
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    dashboard.install(app)  # the pages under /dashboard
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
