"""Periodic jobs: run per workspace when due, failures kept to their workspace, the daily sweep inside the service."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.service.scheduler import PERIODIC_JOBS, PeriodicJob, Scheduler, daily_sweep
from clientfolio.service.workspaces import Registry
from tests.service.conftest import copy_shop, start_server


def test_jobs_run_when_due_and_a_failure_stays_in_its_run(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    def count(store, workspace: str) -> dict:  # noqa: ANN001
        n = int(store.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0])
        calls.append((workspace, n))
        return {"transactions": n}

    def broken(store, workspace: str) -> dict:  # noqa: ANN001
        raise RuntimeError("receiver exploded")

    with Registry(tmp_path / "shop.duckdb") as reg:
        sched = Scheduler(reg, [PeriodicJob("count", 60, count), PeriodicJob("broken", 60, broken)])
        runs = sched.run_due(now=1000.0)
        assert [r.ok for r in runs] == [True, False] and calls == [("default", 0)]
        assert runs[0].result == {"transactions": 0} and "receiver exploded" in runs[1].result["error"]
        assert sched.due(now=time.time() + 30) == []  # ran a moment ago: not due before 60 s
        assert [j.name for _, j in sched.due(now=time.time() + 61)] == ["count", "broken"]
        status = {s["job"]: s for s in sched.status("default")}
        assert status["count"]["ok"] is True and status["broken"]["ok"] is False
    assert PERIODIC_JOBS[0].name == "sweep" and PERIODIC_JOBS[0].run is daily_sweep


def test_daily_sweep_skips_an_unfitted_shop(tmp_path: Path) -> None:
    with Registry(tmp_path / "shop.duckdb") as reg:
        held = reg.open_workspace("default")
        assert daily_sweep(held.store, "default") == {"skipped": "no fitted portfolio yet"}


@pytest.mark.slow
def test_the_service_sweeps_each_shop_to_today_on_its_own(fitted_shop: dict, tmp_path: Path) -> None:
    server = start_server(copy_shop(fitted_shop, tmp_path), tmp_path, CLIENTFOLIO_SCHEDULER="0.5")
    try:
        with server.client(fitted_shop["keys"]["admin"]) as c:
            deadline = time.time() + 60
            while time.time() < deadline:
                sweep = c.get("/jobs").json()["jobs"][0]
                if sweep["last_run"] is not None:
                    break
                time.sleep(0.3)
            assert sweep["job"] == "sweep" and sweep["ok"] is True, sweep
            today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
            assert sweep["result"]["as_of"] == f"{today:%Y-%m-%d}" and sweep["result"]["changes"] > 0
            assert pd.Timestamp(c.get("/status").json()["as_of"]) == today
            time_moves = c.get("/changes", params={"cause": "time", "limit": 5}).json()["items"]
            assert time_moves and all(m["reason"] for m in time_moves)
    finally:
        server.stop()


def test_the_service_delivers_webhooks_on_its_own_schedule(tmp_path: Path) -> None:
    """Segment moves queued in the outbox reach a real receiver with no process besides `clientfolio serve`."""
    from clientfolio.service.webhooks import add_endpoint, set_allowed
    from clientfolio.store import open_store
    from tests.service.test_webhooks import Receiver, consent, moves

    store = str(tmp_path / "shop.duckdb")
    Registry(store).close()  # a one-shop service file
    with open_store(store) as st:
        set_allowed(st, ["127.0.0.0/8"])  # the operator allows the loopback receiver of this test
        receiver = Receiver(tmp_path, [])
        _, secret = add_endpoint(st, receiver.url, segment_kinds=["lifecycle"])
        receiver.secrets = [secret]
        consent(st, {"c1": True, "c2": True, "c3": False})
        ids = dict(zip(["c1", "c2", "c3"], moves(st, ["c1", "c2", "c3"])))
    receiver.start()
    server = start_server(store, tmp_path, CLIENTFOLIO_SCHEDULER="0.5")
    try:
        deadline = time.time() + 30
        while time.time() < deadline and len(receiver.hits()) < 2:
            time.sleep(0.2)
        hits = receiver.hits()
        assert sorted(h["id"] for h in hits) == sorted([ids["c1"], ids["c2"]])  # each once; c3 never consented
        assert all(h["verified"] for h in hits)
    finally:
        server.stop()
        receiver.stop()
    with open_store(store) as st:
        assert st.query("SELECT count(*) AS n FROM contact_log WHERE origin = 'webhook'")["n"].iloc[0] == 2


@pytest.mark.slow
def test_the_service_killed_mid_delivery_and_restarted_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL on `clientfolio serve` while webhook requests are in flight; the restarted service sends the rest."""
    import signal

    from clientfolio.service.webhooks import add_endpoint, deliveries, set_allowed
    from clientfolio.store import open_store
    from tests.service.test_webhooks import Receiver, consent, moves

    store = str(tmp_path / "shop.duckdb")
    Registry(store).close()
    customers = [f"s{i:02d}" for i in range(24)]
    with open_store(store) as st:
        set_allowed(st, ["127.0.0.0/8"])
        receiver = Receiver(tmp_path, [], delay=0.3)  # answers late: requests are in flight when the kill comes
        _, secret = add_endpoint(st, receiver.url, segment_kinds=["lifecycle"])
        receiver.secrets = [secret]
        consent(st, dict.fromkeys(customers, True))
        expected = set(moves(st, customers))
    receiver.start()
    env = {"CLIENTFOLIO_SCHEDULER": "0.2", "CLIENTFOLIO_WEBHOOK_EVERY": "0.2", "CLIENTFOLIO_WEBHOOK_TIMEOUT": "0.5",
           "CLIENTFOLIO_WEBHOOK_LEASE": "1"}
    server = start_server(store, tmp_path, **env)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and len(receiver.hits()) < 4:
            time.sleep(0.02)
        assert len(receiver.hits()) >= 4, "the first deliveries did not arrive"
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        assert len({h["id"] for h in receiver.hits()}) < len(expected)  # killed before it was done
        server = start_server(store, tmp_path, **env)  # restarted on the same store
        deadline = time.time() + 40
        while time.time() < deadline and {h["id"] for h in receiver.hits()} != expected:
            time.sleep(0.2)
        time.sleep(1.0)  # nothing more should come
    finally:
        server.stop()
        receiver.stop()
    hits = receiver.hits()
    assert {h["id"] for h in hits} == expected and all(h["verified"] for h in hits)  # nothing lost
    first_time = sorted(h["id"] for h in hits if not h["dup"])
    assert first_time == sorted(expected)  # the receiver accepted each id once
    assert len(hits) - len(first_time) <= 8  # only what was in flight at the kill (the worker sends 8 at a time)
    with open_store(store) as st:
        log = deliveries(st)
        assert set(log["message_id"]) == expected and (log["status"] == "delivered").all()
        assert (log["attempts"] >= 2).any()  # claims of the killed service were taken over after their lease
        assert st.query("SELECT count(*) AS n FROM contact_log WHERE origin = 'webhook'")["n"].iloc[0] == len(expected)
