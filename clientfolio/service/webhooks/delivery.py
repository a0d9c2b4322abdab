"""Delivering outbox messages to webhook endpoints: at least once on the wire, once per id at the receiver.

One pass of :meth:`WebhookWorker.deliver_due`:

1. **Fan out.**  Outbox messages after the stored cursor (``live_meta`` key ``webhooks_cursor``,
   a change id) become one delivery per enabled endpoint that wants them, keyed by (endpoint,
   message id) so running this twice adds nothing.  The message id is the outbox's
   (``msg_<change>_<transition>_<action>``), stable across restarts: it is the ``webhook-id``
   a receiver deduplicates by.  The body is fixed here, so every retry sends the same bytes.
2. **Approval.**  When the owner requires approval for ``webhooks``, new deliveries wait as
   ``awaiting_approval`` in one approval request per pass; approved ones go, rejected ones never do.
3. **Claim.**  Due deliveries (pending and due, or claimed by a worker whose lease ran out) are
   claimed with a conditional UPDATE inside a transaction: two workers never hold the same
   delivery, and a killed worker's claims are retried once their lease expires.
4. **Consent, again.**  Consent may have been withdrawn since the change: each customer is checked
   with :func:`clientfolio.actions.consent.allowed_ids` for the endpoint's purpose and channel;
   a customer without it is marked ``skipped`` and never sent.
5. **Send.**  The URL is checked against the SSRF policy again and the request goes to the
   address that was checked (no redirects), signed with every valid secret, with short timeouts.
6. **Record.**  2xx: delivered.  410 Gone: the endpoint is disabled (its deliveries wait).
   Anything else: retried on the Standard Webhooks schedule (immediately, 5 s, 5 min, 30 min,
   2 h, 5 h, 10 h, 10 h) with jitter, then ``failed``.  A result is recorded only by the worker
   that still holds the claim.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from clientfolio.actions import approvals
from clientfolio.actions.consent import allowed_ids
from clientfolio.actions.pressure import log_contacts
from clientfolio.core.errors import ClientfolioError
from clientfolio.service.webhooks.endpoints import Endpoint, disable_endpoint, list_endpoints, store_policy, valid_secrets
from clientfolio.service.webhooks.signing import sign_headers
from clientfolio.service.webhooks.ssrf import Policy, UnsafeURLError, resolve
from clientfolio.store.base import Store
from clientfolio.store.live import UPSERT_META, normalize, now_utc, table_types
from clientfolio.store.schema import DELIVERY_STATUSES

#: Seconds before each attempt, as the Standard Webhooks spec suggests: 8 attempts over about 28 hours.
SPEC_SCHEDULE: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
CURSOR_KEY = "webhooks_cursor"
USER_AGENT = "clientfolio-webhooks/1"
_LOG_COLUMNS = [c for c, _ in table_types("webhook_deliveries").items() if c not in ("body", "claim_token")]
_KEYS = ("EXISTS (SELECT 1 FROM (SELECT unnest(CAST(? AS TEXT[])) AS e, unnest(CAST(? AS TEXT[])) AS m) k "
         "WHERE k.e = webhook_deliveries.endpoint_id AND k.m = webhook_deliveries.message_id)")
_INSERT_ROWS = 100
_DUE = "((status = 'pending' AND next_attempt_at <= ?) OR (status = 'claimed' AND lease_until < ?))"


class DeliveryError(ClientfolioError):
    """Worker settings that do not fit."""


@dataclass
class _Claim:
    endpoint_id: str
    message_id: str
    customer_id: str
    body: str
    attempts: int
    token: str


@dataclass
class _Outcome:
    claim: _Claim
    status: int | None = None
    error: str | None = None


class WebhookWorker:
    """Sends the store's due webhook deliveries, one pass at a time (see the module's docstring).

    Parameters
    ----------
    store : the store holding the outbox and the webhook tables.
    policy : the SSRF policy (default: the operator's stored allow-list, nothing private).
    schedule : seconds before each attempt; its length is the number of attempts.
    lease : how long a claim holds before another worker may take the delivery over.
    timeout : seconds for one request (connecting takes at most 3 of them).
    batch : deliveries claimed per pass; concurrency : requests in flight at once.
    jitter : each retry delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    """

    def __init__(self, store: Store, *, policy: Policy | None = None, schedule: Sequence[float] = SPEC_SCHEDULE,
                 lease: timedelta = timedelta(seconds=60), timeout: float = 5.0, batch: int = 50,
                 concurrency: int = 8, jitter: float = 0.1, seed: int | None = None) -> None:
        if not schedule or any(s < 0 for s in schedule):
            raise DeliveryError(f"the retry schedule needs at least one delay, none negative; got {list(schedule)}")
        if not 0 <= jitter < 1:
            raise DeliveryError(f"jitter must be in [0, 1), got {jitter}")
        if batch < 1 or concurrency < 1 or timeout <= 0:
            raise DeliveryError("batch, concurrency and timeout must be positive")
        self.store = store
        self.policy = policy if policy is not None else store_policy(store)
        self.schedule = tuple(float(s) for s in schedule)
        self.timeout = float(timeout)
        self.batch = int(batch)
        self.concurrency = int(concurrency)
        # a claim must outlast the slowest pass: every request of the batch timing out in turn
        rounds = -(-self.batch // self.concurrency)
        self.lease = max(lease, timedelta(seconds=rounds * self.timeout + 1))
        self.jitter = float(jitter)
        self._rng = random.Random(seed)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0)),
                                    follow_redirects=False, trust_env=False,
                                    limits=httpx.Limits(max_connections=self.concurrency))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "WebhookWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- 1. fan out ---------------------------------------------------------------------------------
    def enqueue(self, now: datetime | None = None, limit: int = 1000) -> int:
        """Turn new outbox messages into deliveries for the enabled endpoints that want them."""
        now = now or now_utc()
        total = 0
        while True:
            added, full = self._enqueue_changes(now, limit)
            total += added
            if not full:
                return total

    def _enqueue_changes(self, now: datetime, limit: int) -> tuple[int, bool]:
        """Fan out the messages of the next `limit` changes after the cursor: (deliveries added, more may follow)."""
        cursor = int(self.store.get_meta(CURSOR_KEY) or 0)
        ids = self.store.query("SELECT DISTINCT change_id FROM outbox WHERE change_id > ? ORDER BY change_id "
                               f"LIMIT {int(limit)}", [cursor])["change_id"]
        if ids.empty:
            return 0, False
        upper = int(ids.max())
        msgs = normalize(self.store.query("SELECT * FROM outbox WHERE change_id > ? AND change_id <= ? "
                                          "ORDER BY change_id, message_id", [cursor, upper]), table_types("outbox"))
        endpoints = list_endpoints(self.store, enabled_only=True)
        waits = approvals.approval_required(self.store, "webhooks")
        rows = []
        for m in msgs.itertuples(index=False):
            for ep in endpoints:
                if pd.Timestamp(m.created_at) < pd.Timestamp(ep.created_at) or not ep.wants(
                        m.segment_kind, m.segment, m.transition, m.action):
                    continue
                rows.append((ep.endpoint_id, m.message_id, int(m.change_id), m.customer_id, f"segment.{m.transition}",
                             _body(m), "awaiting_approval" if waits else "pending", 0, now, now))
        with self.store.transaction() as tx:
            for i in range(0, len(rows), _INSERT_ROWS):  # many rows per statement: per-statement cost dominates
                part = rows[i:i + _INSERT_ROWS]
                tx.execute("INSERT INTO webhook_deliveries (endpoint_id, message_id, change_id, customer_id, "
                           "event_type, body, status, attempts, next_attempt_at, created_at) VALUES "
                           + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part)) + " ON CONFLICT DO NOTHING",
                           [v for row in part for v in row])
            tx.execute(UPSERT_META, [CURSOR_KEY, str(upper)])
        return len(rows), len(ids) >= limit

    # -- 2. approval --------------------------------------------------------------------------------
    def _approvals(self, now: datetime) -> int:
        """Queue unsubmitted waiting deliveries for approval; release approved ones, drop rejected ones."""
        new = self.store.query("SELECT endpoint_id, message_id, customer_id FROM webhook_deliveries "
                               "WHERE status = 'awaiting_approval' AND approval_id IS NULL ORDER BY change_id")
        if len(new):
            summary = (f"webhooks: {len(new):,} segment entry/exit message(s) for {new['customer_id'].nunique():,} "
                       f"customer(s) to {new['endpoint_id'].nunique()} endpoint(s)")
            aid = approvals.submit(self.store, "webhooks", summary,
                                   {"deliveries": new[["endpoint_id", "message_id"]].values.tolist()},
                                   customers=int(new["customer_id"].nunique()))
            with self.store.transaction() as tx:
                taken = tx.execute(f"UPDATE webhook_deliveries SET approval_id = ? WHERE status = 'awaiting_approval' "
                                   f"AND approval_id IS NULL AND {_KEYS} RETURNING message_id",
                                   [aid, new["endpoint_id"].tolist(), new["message_id"].tolist()])
            if not taken:  # another worker queued the same messages a moment earlier: withdraw this request
                approvals.reject(self.store, aid, by="clientfolio", note="a duplicate of a request another worker "
                                                                         "made for the same messages")
        decided = self.store.query(
            "SELECT DISTINCT a.approval_id, a.status FROM approvals a JOIN webhook_deliveries d "
            "ON d.approval_id = a.approval_id WHERE d.status = 'awaiting_approval' AND a.status IN "
            "('approved', 'rejected', 'done')")
        with self.store.transaction() as tx:
            for aid, status in decided.itertuples(index=False):
                if status == "rejected":
                    tx.execute("UPDATE webhook_deliveries SET status = 'rejected', last_error = ? WHERE approval_id = ? "
                               "AND status = 'awaiting_approval'", ["the approval request was rejected", aid])
                else:
                    tx.execute("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ? "
                               "WHERE approval_id = ? AND status = 'awaiting_approval'", [now, aid])
        finished = self.store.query(
            "SELECT a.approval_id FROM approvals a WHERE a.kind = 'webhooks' AND a.status = 'approved' "
            "AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.approval_id = a.approval_id) "
            "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.approval_id = a.approval_id "
            "AND d.status IN ('pending', 'claimed', 'awaiting_approval'))")
        for aid in finished["approval_id"]:
            try:
                approvals.mark_done(self.store, str(aid))
            except approvals.ApprovalError:
                pass  # another worker marked it first
        return int((self.store.query("SELECT count(*) AS n FROM webhook_deliveries WHERE status = "
                                     "'awaiting_approval'")["n"]).iloc[0])

    # -- 3. claim -----------------------------------------------------------------------------------
    def _claim(self, now: datetime) -> list[_Claim]:
        cand = self.store.query(
            "SELECT d.endpoint_id, d.message_id FROM webhook_deliveries d WHERE ((d.status = 'pending' AND "
            "d.next_attempt_at <= ?) OR (d.status = 'claimed' AND d.lease_until < ?)) AND EXISTS "
            "(SELECT 1 FROM webhook_endpoints e WHERE e.endpoint_id = d.endpoint_id AND e.enabled) "
            f"ORDER BY d.next_attempt_at, d.change_id LIMIT {self.batch}", [now, now])
        if cand.empty:
            return []
        token = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        with self.store.transaction() as tx:
            rows = tx.execute(
                "UPDATE webhook_deliveries SET status = 'claimed', claim_token = ?, lease_until = ?, "
                f"attempts = attempts + 1, last_attempt_at = ? WHERE {_KEYS} AND {_DUE} "
                "RETURNING endpoint_id, message_id, customer_id, body, attempts",
                [token, now + self.lease, now, cand["endpoint_id"].tolist(), cand["message_id"].tolist(), now, now])
        return [_Claim(str(e), str(m), str(c), str(b), int(a), token) for e, m, c, b, a in rows]

    # -- 5. send --------------------------------------------------------------------------------------
    def _send(self, claim: _Claim, ep: Endpoint, secrets_: list[str]) -> _Outcome:
        try:
            target = resolve(ep.url, self.policy)
        except UnsafeURLError as exc:
            return _Outcome(claim, error=f"refused before sending: {exc}")
        body = claim.body.encode("utf-8")
        headers = sign_headers(secrets_, claim.message_id, int(time.time()), body)
        headers.update({"content-type": "application/json", "user-agent": USER_AGENT, "host": target.host_header()})
        ext = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            r = self._client.post(target.connect_url(), content=body, headers=headers, extensions=ext)
        except httpx.TimeoutException:
            return _Outcome(claim, error=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return _Outcome(claim, error=f"{type(exc).__name__}: {exc}"[:300])
        note = None
        if 300 <= r.status_code < 400:
            note = f"answered {r.status_code} (redirects are not followed: give the final URL)"
        elif not 200 <= r.status_code < 300:
            note = f"answered {r.status_code}"
        return _Outcome(claim, status=r.status_code, error=note)

    # -- 6. record ----------------------------------------------------------------------------------
    def _record(self, outcomes: list[_Outcome], now: datetime, endpoints: dict[str, Endpoint]) -> dict[str, int]:
        counts = {"delivered": 0, "retrying": 0, "failed": 0}
        gone: dict[str, str] = {}
        delivered: list[_Claim] = []
        rest = []  # (claim, status, next attempt, answer, error)
        for o in outcomes:
            c = o.claim
            if o.status is not None and 200 <= o.status < 300:
                delivered.append(c)
            elif o.status == 410:
                gone[c.endpoint_id] = f"the receiver answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC"
                rest.append((c, "pending", now, o.status, o.error))
            elif c.attempts >= len(self.schedule):
                counts["failed"] += 1
                rest.append((c, "failed", now, o.status, o.error))
            else:
                counts["retrying"] += 1
                delay = self.schedule[c.attempts] * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
                rest.append((c, "pending", now + timedelta(seconds=delay), o.status, o.error))
        counts["delivered"] = len(delivered)
        done = ", claim_token = NULL, lease_until = NULL"
        with self.store.transaction() as tx:
            # Only the worker that still holds the claim records (its token): a claim taken over after
            # the lease ran out belongs to the other worker now.
            for token, code in {(o.claim.token, o.status) for o in outcomes if o.claim in delivered}:
                mine = [o.claim for o in outcomes if o.claim.token == token and o.status == code]
                tx.execute(f"UPDATE webhook_deliveries SET status = 'delivered', delivered_at = ?, last_status = ?, "
                           f"last_error = NULL{done} WHERE claim_token = ? AND {_KEYS}",
                           [now, code, token, [c.endpoint_id for c in mine], [c.message_id for c in mine]])
            tx.executemany(f"UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, last_status = ?, "
                           f"last_error = ?{done} WHERE endpoint_id = ? AND message_id = ? AND claim_token = ?",
                           [(st, nxt, code, err, c.endpoint_id, c.message_id, c.token) for c, st, nxt, code, err in rest])
        self._log_contacts(delivered, endpoints, now)
        for endpoint_id, reason in gone.items():
            if endpoints[endpoint_id].enabled:
                disable_endpoint(self.store, endpoint_id, reason, at=now)
        counts["endpoints_disabled"] = len(gone)
        return counts

    def _log_contacts(self, delivered: list[_Claim], endpoints: dict[str, Endpoint], now: datetime) -> None:
        """A delivered message is a contact: it counts against the contact cap like an export or a send.

        Logged by message id, so a delivery retried after a lost answer counts once.
        """
        rows = [(c.customer_id, endpoints[c.endpoint_id].channel, endpoints[c.endpoint_id].purpose, "webhook",
                 c.message_id, now) for c in delivered if c.endpoint_id in endpoints]
        if rows:
            log_contacts(self.store, pd.DataFrame(rows, columns=["customer_id", "channel", "purpose", "origin", "ref",
                                                                 "contacted_at"]))

    # -- one pass -----------------------------------------------------------------------------------
    def deliver_due(self, now: datetime | None = None) -> dict[str, int]:
        """One pass: fan out, approvals, claim, consent, send, record; returns what happened, counted."""
        now = now or now_utc()
        result = {"enqueued": self.enqueue(now), "awaiting_approval": self._approvals(now)}
        claims = self._claim(now)
        result["claimed"] = len(claims)
        endpoints = {ep.endpoint_id: ep for ep in list_endpoints(self.store)}
        allowed: dict[tuple[str, str], set[str]] = {}
        for key in {(endpoints[c.endpoint_id].purpose, endpoints[c.endpoint_id].channel) for c in claims}:
            ids = [c.customer_id for c in claims if (endpoints[c.endpoint_id].purpose,
                                                     endpoints[c.endpoint_id].channel) == key]
            allowed[key] = allowed_ids(self.store, ids, *key)
        to_send, skipped = [], []
        for c in claims:
            ep = endpoints[c.endpoint_id]
            (to_send if c.customer_id in allowed[(ep.purpose, ep.channel)] else skipped).append(c)
        if skipped:
            with self.store.transaction() as tx:
                for c in skipped:
                    ep = endpoints[c.endpoint_id]
                    tx.execute("UPDATE webhook_deliveries SET status = 'skipped', last_error = ?, attempts = attempts - 1, "
                               "claim_token = NULL, "
                               "lease_until = NULL WHERE endpoint_id = ? AND message_id = ? AND claim_token = ?",
                               [f"not sent: no consent for {ep.purpose} by {ep.channel} at send time",
                                c.endpoint_id, c.message_id, c.token])
        result["skipped_no_consent"] = len(skipped)
        secrets_ = {e: valid_secrets(self.store, e, now) for e in {c.endpoint_id for c in to_send}}
        if to_send:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(to_send))) as pool:
                outcomes = list(pool.map(lambda c: self._send(c, endpoints[c.endpoint_id], secrets_[c.endpoint_id]),
                                         to_send))
            result.update(self._record(outcomes, now_utc(), endpoints))
        return result

    def run(self, interval: float = 2.0, stop: threading.Event | None = None, max_seconds: float | None = None,
            on_pass: Callable[[dict[str, int]], None] | None = None) -> None:
        """Pass after pass until `stop` is set (or `max_seconds` pass); idle passes wait `interval` seconds.

        `on_pass` gets each pass's counts (the CLI prints the passes that did something).
        """
        stop = stop or threading.Event()
        end = None if max_seconds is None else time.monotonic() + max_seconds
        while not stop.is_set() and (end is None or time.monotonic() < end):
            r = self.deliver_due()
            if on_pass is not None:
                on_pass(r)
            if not r.get("claimed"):
                stop.wait(interval)


def _body(m: Any) -> str:
    """The JSON a receiver gets (Standard Webhooks' type / timestamp / data), fixed once for every retry."""
    data = json.loads(m.payload)
    data.update({"action": m.action, "message_id": m.message_id, "change_id": int(m.change_id)})
    at = pd.Timestamp(m.created_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"type": f"segment.{m.transition}", "timestamp": at, "data": data},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def deliveries(store: Store, endpoint: str | None = None, status: str | None = None,
               limit: int | None = None) -> pd.DataFrame:
    """The delivery log, newest first: per endpoint and message, status, attempts, last answer or error."""
    conds, params = [], []
    if endpoint is not None:
        conds.append("endpoint_id = ?")
        params.append(str(endpoint))
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise DeliveryError(f"unknown delivery status '{status}': use one of {', '.join(DELIVERY_STATUSES)}")
        conds.append("status = ?")
        params.append(status)
    sql = (f"SELECT {', '.join(_LOG_COLUMNS)} FROM webhook_deliveries" + (" WHERE " + " AND ".join(conds) if conds
                                                                          else "")
           + " ORDER BY created_at DESC, change_id DESC, endpoint_id, message_id"
           + (f" LIMIT {int(limit)}" if limit is not None else ""))
    types = table_types("webhook_deliveries")
    return normalize(store.query(sql, params), {c: types[c] for c in _LOG_COLUMNS})
