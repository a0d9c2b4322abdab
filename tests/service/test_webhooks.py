"""Webhooks on segment entry and exit, against a real receiver process on loopback.

The receiver (tests/service/webhook_receiver.py) verifies every request with the
`standardwebhooks` package and logs one line per request; the tests read that log.
Loopback is refused by default (SSRF), so every test allows it explicitly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from clientfolio.actions import approvals
from clientfolio.actions.consent import record_consent
from clientfolio.service.webhooks import (
    Policy, UnsafeURLError, WebhookWorker, add_endpoint, deliveries, enable_endpoint, get_endpoint, new_secret,
    resolve, rotate_secret, sign_headers, signature,
)
from clientfolio.store import open_store

RECEIVER = Path(__file__).with_name("webhook_receiver.py")
ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = Policy(allow=("127.0.0.0/8", "::1/128"))
FAST = (0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2)  # the spec's 8 attempts, in fractions of a second


# ----------------------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A receiver process on a fixed port that can be stopped and started again (same log)."""

    def __init__(self, tmp: Path, secrets: list[str], status: int = 200, delay: float = 0.0) -> None:
        self.port = free_port()
        self.log = tmp / f"hits-{self.port}.jsonl"
        self.secrets, self.status, self.delay = secrets, status, delay
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/hooks"  # a host name that resolves to loopback

    def start(self) -> "Receiver":
        cmd = [sys.executable, str(RECEIVER), "--port", str(self.port), "--log", str(self.log),
               "--status", str(self.status), "--delay", str(self.delay)]
        for s in self.secrets:
            cmd += ["--secret", s]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def hits(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture
def receivers(tmp_path: Path):
    made: list[Receiver] = []

    def make(secrets: list[str], **kw) -> Receiver:
        r = Receiver(tmp_path, secrets, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def moves(st, customers: list[str], segment: str = "at risk", action: str = "crm_sync") -> list[str]:
    """Record one lifecycle move per customer with its outbox message (as the live portfolio does); the ids."""
    n = len(customers)
    changes = pd.DataFrame({
        "customer_id": customers, "segment_kind": "lifecycle", "from_segment": "active", "to_segment": segment,
        "changed_at": pd.Timestamp("2024-06-01"), "cause": "behaviour", "reason": "no order in 74 days, usually every 21",
        "state_id": 1, "event_key": [None] * n})
    outbox = pd.DataFrame({
        "change_id": range(n), "customer_id": customers, "segment_kind": "lifecycle", "segment": segment,
        "transition": "entered", "action": action,
        "payload": [json.dumps({"customer_id": c, "segment": segment}) for c in customers]})
    ids = st.commit_live(state_rows=None, changes=changes, outbox=outbox)
    return [f"msg_{i}_entered_{action}" for i in ids]


def consent(st, granted: dict[str, bool]) -> None:
    record_consent(st, pd.DataFrame({"customer_id": list(granted), "purpose": "marketing", "channel": "email",
                                     "granted": list(granted.values())}))


def run_until(worker: WebhookWorker, done, seconds: float = 15.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        worker.deliver_due()
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(f"not done within {seconds} s: {deliveries(worker.store)[['message_id', 'status']]}")


def statuses(st) -> dict[str, str]:
    log = deliveries(st)
    return dict(zip(log["message_id"], log["status"]))


# ----------------------------------------------------------------------------- signing

def test_our_signatures_are_what_the_reference_package_computes_and_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = json.dumps({"type": "segment.entered", "data": {"customer_id": "é1"}}, ensure_ascii=False).encode()
    ts = int(time.time())
    ref = Webhook(new).sign("msg_1_entered_x", pd.Timestamp(ts, unit="s").to_pydatetime(), body.decode())
    assert signature(new, "msg_1_entered_x", ts, body) == ref
    both = sign_headers([new, old], "msg_1_entered_x", ts, body)
    assert both["webhook-signature"].count("v1,") == 2 and both["webhook-id"] == "msg_1_entered_x"
    for s in (old, new):  # a receiver holding either secret verifies during a rotation
        assert Webhook(s).verify(body, both)["data"]["customer_id"] == "é1"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, both)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace(b"e1", b"e2") + b" ", both)
    with pytest.raises(WebhookVerificationError):  # the id is signed too
        Webhook(new).verify(body, {**both, "webhook-id": "msg_2_entered_x"})


# ----------------------------------------------------------------------------- SSRF

@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://10.20.30.40/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:9000/", "loopback"),
    ("http://localhost:9000/", "localhost resolves to"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://0.0.0.0/", "unspecified"),
    ("ftp://example.org/x", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("http://user:pw@example.org/", "user name or password"),
])
def test_private_and_odd_targets_are_refused_by_default(url: str, why: str) -> None:
    with pytest.raises(UnsafeURLError) as info:
        resolve(url)
    assert why in str(info.value)


def test_the_operator_allows_loopback_explicitly_but_never_the_metadata_service_by_accident() -> None:
    assert str(resolve("http://localhost:9000/x", LOOPBACK).address) in ("127.0.0.1", "::1")
    assert resolve("http://127.0.0.1:9/x", Policy(allow_private=True)).connect_url() == "http://127.0.0.1:9/x"
    assert resolve("http://[::1]:9/x", Policy(allow_private=True)).connect_url() == "http://[::1]:9/x"
    with pytest.raises(UnsafeURLError, match="link-local"):
        resolve("http://169.254.169.254/", Policy(allow_private=True))
    with pytest.raises(UnsafeURLError, match="private"):
        resolve("http://10.1.2.3/", LOOPBACK)  # allowing loopback does not allow the LAN


def test_the_url_is_checked_when_added_and_again_before_each_delivery(store, receivers) -> None:
    with pytest.raises(UnsafeURLError, match="loopback"):
        add_endpoint(store, "http://127.0.0.1:9/hook")
    assert store.query("SELECT count(*) AS n FROM webhook_endpoints")["n"].iloc[0] == 0
    r = receivers([])
    ep, secret = add_endpoint(store, r.url, policy=LOOPBACK)
    r.secrets = [secret]
    r.start()
    consent(store, {"c1": True})
    moves(store, ["c1"])
    # A worker whose operator did not allow loopback refuses at send time (DNS may have changed since).
    with WebhookWorker(store, schedule=FAST) as strict:
        strict.deliver_due()
    log = deliveries(store)
    assert log["status"].tolist() == ["pending"] and "refused before sending" in log["last_error"].iloc[0]
    assert r.hits() == []
    with WebhookWorker(store, policy=LOOPBACK, schedule=FAST) as w:
        run_until(w, lambda: statuses(store) == {"msg_1_entered_crm_sync": "delivered"})
    assert [h["id"] for h in r.hits()] == ["msg_1_entered_crm_sync"]


# ----------------------------------------------------------------------------- delivery

def test_receiver_down_then_back_gets_every_message_once_and_never_a_non_consenting_customer(store, receivers):
    r = receivers([])
    ep, secret = add_endpoint(store, r.url, segment_kinds=["lifecycle"], policy=LOOPBACK)
    r.secrets = [secret]
    customers = [f"c{i}" for i in range(12)]
    # c3 withdrew after the move was queued; c7 never consented; c11 has consent for SMS only
    consent(store, {c: c not in ("c3", "c7", "c11") for c in customers if c != "c7"})
    record_consent(store, pd.DataFrame({"customer_id": ["c11"], "purpose": "marketing", "channel": "sms",
                                        "granted": [True]}))
    ids = dict(zip(customers, moves(store, customers)))
    expected = {ids[c] for c in customers if c not in ("c3", "c7", "c11")}
    with WebhookWorker(store, policy=LOOPBACK, schedule=FAST, timeout=1.0, seed=1) as w:
        first = w.deliver_due()  # the receiver is down: every send fails and waits for a retry
        assert first["enqueued"] == 12 and first["skipped_no_consent"] == 3 and first["retrying"] == 9
        for _ in range(3):
            time.sleep(0.25)
            w.deliver_due()
        log = deliveries(store).set_index("message_id")
        assert (log.loc[list(expected), "status"] == "pending").all()
        assert (log.loc[list(expected), "attempts"] >= 2).all()
        assert log.loc[list(expected), "last_error"].str.contains("ConnectError").all()
        r.start()
        run_until(w, lambda: set(deliveries(store, status="delivered")["message_id"]) == expected)
        assert w.deliver_due()["claimed"] == 0  # nothing left to send
        with WebhookWorker(store, policy=LOOPBACK) as again:
            assert again.enqueue() == 0  # the fan-out is idempotent
    hits = r.hits()
    assert sorted(h["id"] for h in hits) == sorted(expected)  # each once: no duplicates on the wire at all
    assert all(h["verified"] and not h["dup"] for h in hits)
    assert {h["body"]["data"]["customer_id"] for h in hits} == set(customers) - {"c3", "c7", "c11"}
    assert {h["body"]["type"] for h in hits} == {"segment.entered"}
    skipped = deliveries(store, status="skipped")
    assert sorted(skipped["customer_id"]) == ["c11", "c3", "c7"]
    assert skipped["last_error"].str.contains("no consent for marketing by email").all()
    assert (skipped["attempts"] == 0).all()
    # each delivered message is one contact towards the contact cap, logged once by its id
    logged = store.query("SELECT customer_id, origin, ref, purpose, channel FROM contact_log")
    assert sorted(logged["ref"]) == sorted(expected)
    assert set(logged["origin"]) == {"webhook"} and set(logged["purpose"]) == {"marketing"}
    assert set(logged["customer_id"]) == set(customers) - {"c3", "c7", "c11"}


@pytest.mark.parametrize("answer", [503, 307])
def test_after_the_last_attempt_a_delivery_fails_and_stays_failed(store, receivers, answer: int) -> None:
    """A receiver that keeps failing, or keeps redirecting (redirects are never followed)."""
    r = receivers([], status=answer)
    ep, secret = add_endpoint(store, r.url, policy=LOOPBACK)
    r.secrets = [secret]
    r.start()
    consent(store, {"c1": True})
    moves(store, ["c1"])
    with WebhookWorker(store, policy=LOOPBACK, schedule=(0, 0.05, 0.05), jitter=0) as w:
        run_until(w, lambda: statuses(store) == {"msg_1_entered_crm_sync": "failed"})
        assert w.deliver_due()["claimed"] == 0
    log = deliveries(store)
    assert log["attempts"].tolist() == [3] and log["last_status"].tolist() == [answer]
    assert len(r.hits()) == 3 and all(h["verified"] and h["path"] == "/hooks" for h in r.hits())
    if answer == 307:
        assert "redirects are not followed" in log["last_error"].iloc[0]


def test_410_gone_disables_the_endpoint_and_its_messages_wait(store, receivers) -> None:
    gone = receivers([], status=410)
    ep, secret = add_endpoint(store, gone.url, policy=LOOPBACK)
    gone.secrets = [secret]
    gone.start()
    consent(store, {"c1": True, "c2": True})
    moves(store, ["c1"])
    with WebhookWorker(store, policy=LOOPBACK, schedule=FAST) as w:
        assert w.deliver_due()["endpoints_disabled"] == 1
        after = get_endpoint(store, ep.endpoint_id)
        assert not after.enabled and "410 Gone" in after.disabled_reason
        moves(store, ["c2"])  # a move while disabled is not queued for it
        assert w.deliver_due()["claimed"] == 0
        assert len(gone.hits()) == 1
        assert statuses(store) == {"msg_1_entered_crm_sync": "pending"}
        # The receiver comes back and a person enables the endpoint: the waiting message goes.
        gone.stop()
        gone.status = 200
        gone.start()
        enable_endpoint(store, ep.endpoint_id, LOOPBACK)
        run_until(w, lambda: statuses(store) == {"msg_1_entered_crm_sync": "delivered"})


def test_after_a_rotation_the_old_secret_verifies_during_the_grace_period_only(store, receivers) -> None:
    r = receivers([])
    ep, first = add_endpoint(store, r.url, policy=LOOPBACK)
    second = rotate_secret(store, ep.endpoint_id, grace=timedelta(hours=1))
    r.secrets = [first, second]
    r.start()
    consent(store, {"c1": True, "c2": True})
    moves(store, ["c1"])
    with WebhookWorker(store, policy=LOOPBACK, schedule=FAST) as w:
        run_until(w, lambda: len(r.hits()) == 1)
        [during] = r.hits()
        assert during["signatures"] == 2 and during["secrets"] == [0, 1]  # the old secret verifies, and the new
        third = rotate_secret(store, ep.endpoint_id, grace=timedelta(0))  # the grace of the older two ends now
        r.stop()
        r.secrets = [first, second, third]
        r.start()
        moves(store, ["c2"])
        run_until(w, lambda: len(r.hits()) == 2)
    after = r.hits()[1]
    assert after["signatures"] == 1 and after["secrets"] == [2]


def test_with_approval_required_a_batch_waits_until_approved(store, receivers) -> None:
    r = receivers([])
    ep, secret = add_endpoint(store, r.url, policy=LOOPBACK)
    r.secrets = [secret]
    r.start()
    approvals.set_required_kinds(store, ["webhooks"])
    consent(store, {"c1": True, "c2": True, "c3": True})
    ids = moves(store, ["c1", "c2"])
    with WebhookWorker(store, policy=LOOPBACK, schedule=FAST) as w:
        w.deliver_due()
        w.deliver_due()  # a second pass does not queue the same batch twice
        [req] = approvals.pending(store).itertuples()
        assert req.kind == "webhooks" and req.customers == 2 and "2 segment entry/exit message(s)" in req.summary
        assert set(statuses(store).values()) == {"awaiting_approval"} and r.hits() == []
        approvals.approve(store, req.approval_id, by="owner")
        run_until(w, lambda: set(statuses(store).values()) == {"delivered"})
        w.deliver_due()
        assert approvals.get(store, req.approval_id).status == "done"
        more = moves(store, ["c3"])
        w.deliver_due()
        [req2] = approvals.pending(store).itertuples()
        approvals.reject(store, req2.approval_id, by="owner", note="not this one")
        w.deliver_due()
    assert statuses(store)[more[0]] == "rejected"
    assert sorted(h["id"] for h in r.hits()) == sorted(ids)


def test_two_workers_on_postgresql_never_send_the_same_delivery(pg_store_url: str, receivers) -> None:
    """Two workers (two connections) pass side by side; the conditional claim keeps them apart."""
    import threading

    r = receivers([], delay=0.02)
    with open_store(pg_store_url) as st:
        ep, secret = add_endpoint(st, r.url, policy=LOOPBACK)
        customers = [f"p{i:02d}" for i in range(30)]
        consent(st, dict.fromkeys(customers, True))
        expected = set(moves(st, customers))
    r.secrets = [secret]
    r.start()
    claimed: list[int] = []

    def work() -> None:
        with open_store(pg_store_url) as st, WebhookWorker(st, policy=LOOPBACK, schedule=FAST, batch=3) as w:
            for _ in range(40):
                got = w.deliver_due()
                claimed.append(got["claimed"])
                if len(deliveries(st, status="delivered")) == len(expected):
                    return

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    hits = r.hits()
    assert sorted(h["id"] for h in hits) == sorted(expected)  # every one, and none twice on the wire
    assert sum(claimed) == len(expected)  # no delivery claimed by both


# ----------------------------------------------------------------------------- a worker killed mid-delivery

def _worker(store_url: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "clientfolio.cli", "webhooks", "deliver", "--loop", "--store", store_url,
           "--allow", "127.0.0.0/8", "--allow", "::1", "--retry-schedule", ",".join(str(s) for s in FAST),
           "--lease", "1", "--timeout", "0.8", "--batch", "4", "--concurrency", "4", "--interval", "0.1", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def _wait(cond, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {seconds} s")


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_loses_nothing_and_doubles_nothing(store_url: str, receivers) -> None:
    """SIGKILL while requests are in flight; a restarted worker takes over the claims once their lease ends."""
    n = 16
    with open_store(store_url) as st:
        r = receivers([], delay=0.3)
        ep, secret = add_endpoint(st, r.url, policy=LOOPBACK)
        customers = [f"k{i:02d}" for i in range(n)]
        consent(st, dict.fromkeys(customers, True))
        expected = set(moves(st, customers))
    r.secrets = [secret]
    r.start()
    pg = not store_url.endswith(".duckdb")
    # One worker starts and is killed while it holds claims with requests in flight; then one worker is
    # restarted (a DuckDB file has one writer), or two side by side on PostgreSQL (claims keep them apart).
    first = _worker(store_url)
    _wait(lambda: len(r.hits()) >= 6, 30, "the first deliveries did not arrive")
    first.send_signal(signal.SIGKILL)
    first.wait()
    workers = [first] + [_worker(store_url) for _ in range(2 if pg else 1)]
    killed = time.monotonic()

    def settled() -> bool:
        """Every id arrived, the dead worker's leases (1.8 s) ran out, and nothing arrived for a second."""
        hits = r.hits()
        quiet = not hits or time.time() - r.log.stat().st_mtime > 1.0
        return expected <= {h["id"] for h in hits} and time.monotonic() - killed > 2.5 and quiet

    _wait(settled, 40, "not every message arrived")
    for w in workers[1:]:
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=20) == 0, w.stderr.read()
    hits = r.hits()
    assert {h["id"] for h in hits} == expected and all(h["verified"] for h in hits)
    first_time = [h["id"] for h in hits if not h["dup"]]
    assert sorted(first_time) == sorted(expected)  # the receiver accepted each id exactly once
    # Only what the killed worker had in flight (at most its concurrency) may have reached the receiver twice.
    assert len(hits) - len(first_time) <= 4
    with open_store(store_url) as st:
        log = deliveries(st)
    assert set(log["message_id"]) == expected and (log["status"] == "delivered").all()
    assert (log["attempts"] >= 2).any()  # the killed worker's claims were taken over after their lease


# ----------------------------------------------------------------------------- the command line

def test_the_command_line_adds_lists_rotates_disables_and_logs(tmp_path: Path, receivers) -> None:
    """The CLI's own code path, in-process (the killed-worker test runs it as a real process)."""
    from typer.testing import CliRunner

    from clientfolio.cli import app

    cli = CliRunner()
    db = str(tmp_path / "shop.duckdb")
    with open_store(db) as st:
        consent(st, {"c1": True, "=cmd": True})
    refused = cli.invoke(app, ["webhooks", "add", "http://127.0.0.1:9/x", "--store", db])
    assert refused.exit_code == 1 and "loopback" in refused.output and "Traceback" not in refused.output
    r = receivers([])
    added = cli.invoke(app, ["webhooks", "add", r.url, "--store", db, "--kind", "lifecycle", "--segment", "at risk",
                             "--on", "entered", "--allow", "127.0.0.0/8", "--allow", "::1"])
    assert added.exit_code == 0, added.output
    secret = added.output.split("signing secret (shown once): ")[1].split()[0]
    assert secret.startswith("whsec_") and "will hear nothing" in added.output  # no subscription writes these yet
    endpoint_id = added.output.split("added ")[1].split()[0]
    assert cli.invoke(app, ["webhooks", "allow", "127.0.0.0/8", "::1", "--store", db]).exit_code == 0
    listed = cli.invoke(app, ["webhooks", "list", "--store", db])
    assert endpoint_id in listed.output and "enabled" in listed.output and secret not in listed.output
    rotated = cli.invoke(app, ["webhooks", "rotate", endpoint_id, "--store", db, "--grace-hours", "1"])
    new = rotated.output.split("(shown once): ")[1].split()[0]
    r.secrets = [secret, new]
    r.start()
    with open_store(db) as st:
        moves(st, ["c1", "=cmd"])
        moves(st, ["c1"], segment="lapsed")  # a segment the endpoint did not ask for
    sent = cli.invoke(app, ["webhooks", "deliver", "--store", db])  # the stored allow-list admits loopback
    assert sent.exit_code == 0 and "delivered 2" in sent.output, sent.output
    assert all(h["secrets"] == [0, 1] for h in r.hits()) and len(r.hits()) == 2
    out = tmp_path / "log.csv"
    logged = cli.invoke(app, ["webhooks", "log", "--store", db, "--out", str(out)])
    assert logged.exit_code == 0 and "delivered" in logged.output
    rows = out.read_text().splitlines()
    assert len(rows) == 3 and any(",'=cmd," in line for line in rows)  # spreadsheet-safe: no live formula
    off = cli.invoke(app, ["webhooks", "disable", endpoint_id, "--reason", "CRM migration", "--store", db])
    assert off.exit_code == 0
    with open_store(db) as st:
        assert get_endpoint(st, endpoint_id).disabled_reason == "CRM migration"
    bad = cli.invoke(app, ["webhooks", "log", "--store", db, "--status", "sent"])
    assert bad.exit_code == 1 and "use one of pending" in bad.output
