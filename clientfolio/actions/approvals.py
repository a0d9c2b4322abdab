"""The approval queue: anything that leaves the product can wait for a person to say yes.

A sender (an export, a batch of webhooks, a playbook send) asks :func:`approval_required`; when
the owner requires approval for its kind it calls :func:`submit` with everything needed to do
the work later (the payload, plain JSON) instead of sending, and does the work once the request
is approved, then calls :func:`mark_done`.  The states only move forward:

    pending -> approved -> done
    pending -> rejected

Each decision is taken once: approving an approved, rejected or done request is refused with
what happened to it, so two people cannot both release the same send.  The kinds that need
approval are a setting (live_meta key ``approval_required``, a JSON list of kinds).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.live import UPSERT_META, normalize, now_utc, table_types

REQUIRED_KEY = "approval_required"
#: The kinds clientfolio's own senders submit (other kinds are allowed: the queue is generic).
KNOWN_KINDS = ("export", "webhooks", "playbook_send")
STATUSES = ("pending", "approved", "rejected", "done")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ApprovalError(ClientfolioError):
    """A request that does not exist, or a decision its state does not allow."""


@dataclass(frozen=True)
class Approval:
    """One request in the queue, with its payload decoded."""

    approval_id: str
    kind: str
    status: str
    summary: str
    customers: int
    payload: dict[str, Any]
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    note: str | None
    result: dict[str, Any] | None = None  # what carrying it out did (file, rows, left out), once done


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ApprovalError(f"approval kind {kind!r} is not a name: use lower-case letters, digits and _, "
                            f"e.g. {', '.join(KNOWN_KINDS)}")
    return kind


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime, date, pd.Timestamp)):
        return v.isoformat()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    raise TypeError(f"{type(v).__name__} values cannot be kept in an approval payload")


def required_kinds(store: Store) -> list[str]:
    """The kinds that must wait for approval (the owner's setting; none by default)."""
    raw = store.get_meta(REQUIRED_KEY)
    if raw is None:
        return []
    try:
        kinds = json.loads(raw)
        return sorted({_check_kind(k) for k in kinds})
    except (ValueError, TypeError, ApprovalError):
        raise ApprovalError(f"the stored approval setting ({raw!r}) cannot be read; set it again with "
                            "`clientfolio approvals --require export`") from None


def set_required_kinds(store: Store, kinds: list[str]) -> list[str]:
    """Require approval for exactly these kinds (an empty list: nothing waits) and return them."""
    checked = sorted({_check_kind(k) for k in kinds})
    with store.transaction() as tx:
        tx.execute(UPSERT_META, [REQUIRED_KEY, json.dumps(checked)])
    return checked


def approval_required(store: Store, kind: str) -> bool:
    """Must a send of this kind wait in the queue?"""
    return _check_kind(kind) in required_kinds(store)


def submit(store: Store, kind: str, summary: str, payload: dict[str, Any], customers: int) -> str:
    """Queue a send for approval and return its id (8 hex digits, what the owner types to approve it).

    `summary` says in plain words what would leave ("Klaviyo export of At Risk: 412 customers");
    `payload` holds what the sender needs to do it later (JSON values, dates and paths).
    """
    _check_kind(kind)
    if not str(summary).strip():
        raise ApprovalError("an approval request needs a summary saying what would be sent")
    if not isinstance(payload, dict):
        raise ApprovalError(f"an approval payload must be a dict, got {type(payload).__name__}")
    if isinstance(customers, bool) or not isinstance(customers, (int, np.integer)) or customers < 0:
        raise ApprovalError(f"customers must be a count of customers (0 or more), got {customers!r}")
    try:
        body = json.dumps(payload, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ApprovalError(f"the payload of '{summary}' cannot be stored: {exc}") from None
    approval_id = uuid.uuid4().hex[:8]
    with store.transaction() as tx:
        tx.insert("approvals", pd.DataFrame({
            "approval_id": [approval_id], "kind": [kind], "created_at": [now_utc()], "status": ["pending"],
            "summary": [str(summary)], "customers": [int(customers)], "payload": [body],
        }))
    return approval_id


def _read(store: Store, where: str = "", params: list | None = None) -> pd.DataFrame:
    df = store.query(f"SELECT * FROM approvals {where} ORDER BY created_at, approval_id", params or [])
    return normalize(df, table_types("approvals"))


def list_approvals(store: Store, status: str | None = None) -> pd.DataFrame:
    """Every request (or those in one status), oldest first; payload stays JSON text."""
    if status is None:
        return _read(store)
    if status not in STATUSES:
        raise ApprovalError(f"unknown approval status '{status}': use one of {', '.join(STATUSES)}")
    return _read(store, "WHERE status = ?", [status])


def pending(store: Store) -> pd.DataFrame:
    """The requests waiting for a decision, oldest first."""
    return list_approvals(store, "pending")


def get(store: Store, approval_id: str) -> Approval:
    """One request with its payload decoded; an unknown id is an error that says how to list them."""
    df = _read(store, "WHERE approval_id = ?", [str(approval_id)])
    if df.empty:
        raise ApprovalError(f"no approval request '{approval_id}'; `clientfolio approvals list` shows them")
    r = df.iloc[0]
    nat = lambda v: None if pd.isna(v) else v  # noqa: E731
    return Approval(approval_id=str(r["approval_id"]), kind=str(r["kind"]), status=str(r["status"]),
                    summary=str(r["summary"]), customers=int(r["customers"]), payload=json.loads(r["payload"]),
                    created_at=pd.Timestamp(r["created_at"]).to_pydatetime(),
                    decided_at=None if pd.isna(r["decided_at"]) else pd.Timestamp(r["decided_at"]).to_pydatetime(),
                    decided_by=nat(r["decided_by"]), note=nat(r["note"]),
                    result=json.loads(r["result"]) if "result" in r and isinstance(r["result"], str) else None)


def _state_words(a: Approval) -> str:
    who = f" by {a.decided_by}" if a.decided_by else ""
    when = f" on {a.decided_at:%Y-%m-%d %H:%M} UTC" if a.decided_at else ""
    return {"approved": f"it was already approved{who}{when}",
            "rejected": f"it was rejected{who}{when}" + (f" ({a.note})" if a.note else ""),
            "done": f"it was approved{who}{when} and has been sent",
            "pending": "it is still waiting for approval"}[a.status]


def _move(store: Store, approval_id: str, to: str, frm: str, by: str | None, note: str | None,
          result: dict[str, Any] | None = None) -> Approval:
    """Move a request from state `frm` to `to` in one conditional update, so only one decision wins."""
    current = get(store, approval_id)
    if by is not None and not str(by).strip():
        raise ApprovalError("say who decides (by): a name or e-mail, kept with the decision")
    sets = "status = ?" + (", decided_at = ?, decided_by = ?, note = ?" if to in ("approved", "rejected") else "")
    params: list = [to] + ([now_utc(), str(by), note] if to in ("approved", "rejected") else [])
    if result is not None:
        sets += ", result = ?"
        params.append(json.dumps(result, sort_keys=True, default=_json_default))
    with store.transaction() as tx:
        moved = tx.execute(f"UPDATE approvals SET {sets} WHERE approval_id = ? AND status = ? RETURNING approval_id",
                           [*params, current.approval_id, frm])
    if not moved:
        now = get(store, approval_id)
        verb = {"approved": "approve", "rejected": "reject", "done": "mark as sent"}[to]
        raise ApprovalError(f"cannot {verb} request {approval_id} ('{now.summary}'): {_state_words(now)}")
    return get(store, approval_id)


def approve(store: Store, approval_id: str, by: str) -> Approval:
    """Approve a pending request (once); the sender then does the work and calls :func:`mark_done`."""
    return _move(store, approval_id, "approved", "pending", by, None)


def reject(store: Store, approval_id: str, by: str, note: str) -> Approval:
    """Reject a pending request with a note saying why; nothing is sent."""
    if not str(note or "").strip():
        raise ApprovalError("a rejection needs a note saying why (the sender and the log keep it)")
    return _move(store, approval_id, "rejected", "pending", by, str(note))


def mark_done(store: Store, approval_id: str, result: dict[str, Any] | None = None) -> Approval:
    """Record that an approved request has been carried out (sent, written or delivered), with its outcome."""
    return _move(store, approval_id, "done", "approved", None, None, result)
