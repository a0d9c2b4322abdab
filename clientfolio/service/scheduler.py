"""Periodic jobs run inside the service, per workspace: no cron and no extra process to manage.

`PERIODIC_JOBS` lists them; the first is the daily sweep.  Another job is one more entry
(``PERIODIC_JOBS.append(PeriodicJob("webhooks", 5, deliver))``).  Each job is a function of a
workspace's store and name returning a small dict that says what it did; it runs in a worker
thread while holding that workspace's lock, so it never interleaves with a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store import Store

if TYPE_CHECKING:
    from clientfolio.service.workspaces import Registry

log = logging.getLogger("clientfolio.service.scheduler")


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every `every_seconds` for each workspace: `run(store, workspace) -> what it did`."""

    name: str
    every_seconds: float
    run: Callable[[Store, str], dict]


def daily_sweep(store: Store, workspace: str) -> dict:
    """Bring the workspace's portfolio to today (UTC): the moves time alone causes; once a day at most."""
    from clientfolio.live import LivePortfolio

    if store.load_state() is None:
        return {"skipped": "no fitted portfolio yet"}
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    last = store.get_meta("last_sweep")
    if last is not None and pd.Timestamp(last) >= today:
        return {"skipped": f"already swept to {pd.Timestamp(last):%Y-%m-%d}"}
    live = LivePortfolio(store)
    pending = live.catch_up(today)
    result = live.sweep(today)
    return {"as_of": f"{today:%Y-%m-%d}", "changes": int(len(result.changes) + len(pending.changes)),
            "customers_touched": int(result.customers_touched)}


def _seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment (checked: a typo must not pass as the default)."""
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ClientfolioError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ClientfolioError(f"{name}={raw!r} must be more than 0 seconds")
    return value


def deliver_webhooks(store: Store, workspace: str) -> dict:
    """Send the workspace's due webhook deliveries (one pass of the worker; retries wait their turn).

    ``CLIENTFOLIO_WEBHOOK_TIMEOUT`` (5 s) bounds each request; a delivery claimed by a service that
    stopped mid-send is sent again once its lease (``CLIENTFOLIO_WEBHOOK_LEASE``, 60 s, at least what
    one pass can take) has run out.
    """
    from clientfolio.service.webhooks.delivery import WebhookWorker

    timeout = _seconds("CLIENTFOLIO_WEBHOOK_TIMEOUT", 5.0)
    lease = timedelta(seconds=_seconds("CLIENTFOLIO_WEBHOOK_LEASE", 60.0))
    with WebhookWorker(store, timeout=timeout, lease=lease) as worker:
        return worker.deliver_due()


PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("sweep", 24 * 3600, daily_sweep),
    PeriodicJob("webhooks", _seconds("CLIENTFOLIO_WEBHOOK_EVERY", 5.0), deliver_webhooks),
]


@dataclass
class JobRun:
    """The last run of one job in one workspace."""

    started: float
    seconds: float
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)


class Scheduler:
    """Runs `jobs` for every workspace of `registry` when they are due; remembers each last run."""

    def __init__(self, registry: "Registry", jobs: list[PeriodicJob] | None = None, tick: float = 1.0) -> None:
        self.registry = registry
        self.jobs = PERIODIC_JOBS if jobs is None else jobs
        self.tick = tick
        self.last: dict[tuple[str, str], JobRun] = {}

    def due(self, now: float) -> list[tuple[str, PeriodicJob]]:
        """(workspace, job) pairs whose interval has passed since their last run (never run: due)."""
        out = []
        self._uids = {}
        for ws in self.registry.workspaces():
            self._uids[ws.name] = ws.uid
            for job in self.jobs:
                prev = self.last.get((ws.name, job.name))
                if prev is None or now - prev.started >= job.every_seconds:
                    out.append((ws.name, job))
        return out

    def run_one(self, workspace: str, job: PeriodicJob) -> JobRun:
        """Run one job now, in this thread, holding the workspace's lock; a failure is logged, not raised."""
        started = time.time()
        try:
            held = self.registry.open_workspace(workspace, getattr(self, "_uids", {}).get(workspace))
            with held.lock:
                result = job.run(held.store, workspace)
            run = JobRun(started, time.time() - started, True, dict(result or {}))
        except Exception as exc:  # noqa: BLE001 - one workspace's failure must not stop the others
            log.exception("job %s failed for workspace %s", job.name, workspace)
            run = JobRun(started, time.time() - started, False, {"error": str(exc).splitlines()[0][:300]})
        self.last[(workspace, job.name)] = run
        return run

    def run_due(self, now: float | None = None) -> list[JobRun]:
        """Run every due job once (what one tick of the loop does)."""
        return [self.run_one(ws, job) for ws, job in self.due(time.time() if now is None else now)]

    async def loop(self) -> None:
        """Forever: run what is due (in a worker thread), then sleep one tick."""
        while True:
            try:
                await asyncio.to_thread(self.run_due)
            except Exception:  # noqa: BLE001 - e.g. the registry database briefly unreachable
                log.exception("scheduler tick failed")
            await asyncio.sleep(self.tick)

    def status(self, workspace: str) -> list[dict[str, Any]]:
        """The last run of each job in `workspace` (for GET /v1/jobs)."""
        out = []
        for job in self.jobs:
            run = self.last.get((workspace, job.name))
            out.append({"job": job.name, "every_seconds": job.every_seconds,
                        "last_run": None if run is None else pd.Timestamp(run.started, unit="s").isoformat(),
                        "seconds": None if run is None else round(run.seconds, 3),
                        "ok": None if run is None else run.ok, "result": None if run is None else run.result})
        return out
