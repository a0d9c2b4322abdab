"""Webhook endpoints of a store: where segment entries and exits are sent, and with which secret.

An endpoint is a URL plus what it wants to hear about (segment kinds, segments, entered/left,
the subscription's action; empty means all) and the consent purpose and channel its messages
serve: a customer without consent for that purpose on that channel is never sent to it.  An
endpoint is enabled or disabled with a reason (the receiver answered 410 Gone, or a person
disabled it).  Its signing secret is shown once when the endpoint is added and once per
rotation; after a rotation the previous secret keeps signing for a grace period, so the
receiver can switch over without losing messages.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from clientfolio.actions.consent import check_purpose
from clientfolio.core.errors import ClientfolioError
from clientfolio.live.kinds import KINDS
from clientfolio.live.triggers import load_triggers
from clientfolio.service.webhooks.signing import new_secret
from clientfolio.service.webhooks.ssrf import ALLOW_KEY, Policy, check_allow_entries, resolve
from clientfolio.store.base import Store
from clientfolio.store.live import UPSERT_META, normalize, now_utc, table_types

TRANSITIONS = ("entered", "left")
DEFAULT_GRACE = timedelta(hours=24)


class EndpointError(ClientfolioError):
    """An endpoint that does not exist, or settings that do not fit."""


@dataclass(frozen=True)
class Endpoint:
    """One receiver and what it subscribes to (empty tuples mean "every")."""

    endpoint_id: str
    url: str
    segment_kinds: tuple[str, ...]
    segments: tuple[str, ...]
    transitions: tuple[str, ...]
    actions: tuple[str, ...]
    purpose: str
    channel: str
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    description: str | None

    def wants(self, segment_kind: str, segment: str, transition: str, action: str) -> bool:
        """Does this endpoint subscribe to an outbox message with these fields?"""
        return ((not self.segment_kinds or segment_kind in self.segment_kinds)
                and (not self.segments or segment in self.segments)
                and transition in self.transitions
                and (not self.actions or action in self.actions))

    def describe(self) -> str:
        """What the endpoint hears about, in words."""
        kinds = ", ".join(self.segment_kinds) or "every kind"
        segs = ", ".join(repr(s) for s in self.segments) or "every segment"
        acts = f"; actions {', '.join(self.actions)}" if self.actions else ""
        return f"{' and '.join(self.transitions)} {segs} of {kinds}{acts}; consent: {self.purpose} by {self.channel}"


def _names(values: Sequence[str] | None, what: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(str(v) for v in (values or ())))
    if any(not v.strip() for v in out):
        raise EndpointError(f"{what}: empty names are not allowed")
    return out


def _opt_time(v: Any) -> datetime | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).to_pydatetime()


def _from_row(r: dict[str, Any]) -> Endpoint:
    return Endpoint(
        endpoint_id=str(r["endpoint_id"]), url=str(r["url"]), segment_kinds=tuple(json.loads(r["segment_kinds"])),
        segments=tuple(json.loads(r["segments"])), transitions=tuple(json.loads(r["transitions"])),
        actions=tuple(json.loads(r["actions"])), purpose=str(r["purpose"]), channel=str(r["channel"]),
        enabled=bool(r["enabled"]), disabled_reason=None if pd.isna(r["disabled_reason"]) else str(r["disabled_reason"]),
        disabled_at=_opt_time(r["disabled_at"]), created_at=pd.Timestamp(r["created_at"]).to_pydatetime(),
        description=None if pd.isna(r["description"]) else str(r["description"]))


def list_endpoints(store: Store, enabled_only: bool = False) -> list[Endpoint]:
    """The store's endpoints, oldest first."""
    df = store.query("SELECT * FROM webhook_endpoints" + (" WHERE enabled" if enabled_only else "")
                     + " ORDER BY created_at, endpoint_id")
    df = normalize(df, table_types("webhook_endpoints"))
    return [_from_row(r) for r in df.to_dict("records")]


def get_endpoint(store: Store, endpoint_id: str) -> Endpoint:
    """One endpoint; an unknown id is an error that says how to list them."""
    df = normalize(store.query("SELECT * FROM webhook_endpoints WHERE endpoint_id = ?", [str(endpoint_id)]),
                   table_types("webhook_endpoints"))
    if df.empty:
        raise EndpointError(f"no webhook endpoint '{endpoint_id}'; `clientfolio webhooks list` shows them")
    return _from_row(df.to_dict("records")[0])


def add_endpoint(
    store: Store,
    url: str,
    *,
    segment_kinds: Sequence[str] = (),
    segments: Sequence[str] = (),
    transitions: Sequence[str] = TRANSITIONS,
    actions: Sequence[str] = (),
    purpose: str = "marketing",
    channel: str = "email",
    description: str | None = None,
    policy: Policy | None = None,
) -> tuple[Endpoint, str]:
    """Add an endpoint and return it with its signing secret (shown once: only the store keeps it).

    The URL is checked against the SSRF policy now (and again before every delivery).
    """
    policy = policy if policy is not None else store_policy(store)
    resolve(url, policy)
    check_purpose(purpose, channel)
    kinds = _names(segment_kinds, "--kind")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise EndpointError(f"unknown segment kind(s) {', '.join(unknown)}: use {', '.join(KINDS)}")
    trans = _names(transitions, "--on")
    bad = [t for t in trans if t not in TRANSITIONS]
    if bad or not trans:
        raise EndpointError(f"transitions must be entered and/or left, got {', '.join(bad) or 'none'}")
    now = now_utc()
    endpoint_id = "ep_" + uuid.uuid4().hex[:12]
    secret = new_secret()
    with store.transaction() as tx:
        tx.insert("webhook_endpoints", pd.DataFrame([{
            "endpoint_id": endpoint_id, "url": url.strip(), "segment_kinds": json.dumps(list(kinds)),
            "segments": json.dumps(list(_names(segments, "--segment"))), "transitions": json.dumps(list(trans)),
            "actions": json.dumps(list(_names(actions, "--action"))), "purpose": purpose, "channel": channel,
            "enabled": True, "created_at": now, "description": description}]))
        tx.insert("webhook_secrets", pd.DataFrame([{"endpoint_id": endpoint_id, "secret_no": 1, "secret": secret,
                                                    "created_at": now}]))
    return get_endpoint(store, endpoint_id), secret


def disable_endpoint(store: Store, endpoint_id: str, reason: str, at: datetime | None = None) -> Endpoint:
    """Stop delivering to an endpoint (its pending deliveries wait until it is enabled again)."""
    get_endpoint(store, endpoint_id)
    if not str(reason or "").strip():
        raise EndpointError("say why the endpoint is disabled (--reason): the delivery log shows it")
    with store.transaction() as tx:
        tx.execute("UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = ?, disabled_at = ? "
                   "WHERE endpoint_id = ?", [str(reason), at or now_utc(), str(endpoint_id)])
    return get_endpoint(store, endpoint_id)


def enable_endpoint(store: Store, endpoint_id: str, policy: Policy | None = None) -> Endpoint:
    """Deliver to an endpoint again (its URL is checked again first); waiting deliveries go now."""
    ep = get_endpoint(store, endpoint_id)
    resolve(ep.url, policy if policy is not None else store_policy(store))
    now = now_utc()
    with store.transaction() as tx:
        tx.execute("UPDATE webhook_endpoints SET enabled = TRUE, disabled_reason = NULL, disabled_at = NULL "
                   "WHERE endpoint_id = ?", [ep.endpoint_id])
        tx.execute("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE endpoint_id = ? AND status = 'pending'",
                   [now, ep.endpoint_id])
    return get_endpoint(store, endpoint_id)


def rotate_secret(store: Store, endpoint_id: str, grace: timedelta = DEFAULT_GRACE,
                  now: datetime | None = None) -> str:
    """A new signing secret for the endpoint (returned once); the previous ones sign for `grace` more."""
    ep = get_endpoint(store, endpoint_id)
    if grace < timedelta(0):
        raise EndpointError(f"the grace period cannot be negative, got {grace}")
    now = now or now_utc()
    secret = new_secret()
    with store.transaction() as tx:
        n = tx.execute("SELECT coalesce(max(secret_no), 0) + 1 FROM webhook_secrets WHERE endpoint_id = ?",
                       [ep.endpoint_id])[0][0]
        tx.execute("UPDATE webhook_secrets SET expires_at = ? WHERE endpoint_id = ? "
                   "AND (expires_at IS NULL OR expires_at > ?)", [now + grace, ep.endpoint_id, now + grace])
        tx.insert("webhook_secrets", pd.DataFrame([{"endpoint_id": ep.endpoint_id, "secret_no": int(n),
                                                    "secret": secret, "created_at": now}]))
    return secret


def valid_secrets(store: Store, endpoint_id: str, now: datetime | None = None) -> list[str]:
    """The secrets that sign messages now: the current one first, then those still in their grace period."""
    df = store.query("SELECT secret FROM webhook_secrets WHERE endpoint_id = ? AND (expires_at IS NULL OR "
                     "expires_at > ?) ORDER BY secret_no DESC", [str(endpoint_id), now or now_utc()])
    return [str(s) for s in df["secret"]]


# ----------------------------------------------------------------------------- the operator's SSRF setting

def store_policy(store: Store, allow_private: bool = False, allow: Sequence[str] = ()) -> Policy:
    """The SSRF policy: the operator's stored allow-list plus what this run adds."""
    raw = store.get_meta(ALLOW_KEY)
    stored = tuple(json.loads(raw)) if raw else ()
    return Policy(allow_private=allow_private, allow=check_allow_entries([*stored, *allow]))


def set_allowed(store: Store, entries: Sequence[str]) -> tuple[str, ...]:
    """Replace the operator's allow-list (networks or host names webhooks may go to despite being private)."""
    checked = tuple(dict.fromkeys(check_allow_entries(entries)))
    with store.transaction() as tx:
        tx.execute(UPSERT_META, [ALLOW_KEY, json.dumps(list(checked))])
    return checked


def uncovered(store: Store, ep: Endpoint) -> str | None:
    """A warning when no stored subscription writes outbox messages this endpoint wants (it would hear nothing)."""
    raw = store.get_meta("triggers")
    triggers = load_triggers(json.loads(raw)) if raw else []
    for t in triggers:
        for transition in t.transitions():
            if ep.wants(t.segment_kind, t.segment, transition, t.action):
                return None
    return ("no subscription of this store sends these moves to the outbox yet, so the endpoint will hear "
            "nothing; add one (segment_kind, segment, on, action) with `clientfolio update --triggers FILE`")
