"""Carrying out what waited in the approval queue: an approved export or playbook send is done once.

Senders hold their work with :func:`hold_for_approval` (None when the owner does not require
approval for that kind: send now).  A person approves with `clientfolio approvals approve ID`,
which calls :func:`approve_and_carry_out`: the request moves pending -> approved in one
conditional update (so of two people approving at once only one wins), the work is done with
the stored parameters -- consent and the contact cap judged again at that moment -- and the
request moves approved -> done with its outcome in the ``result`` column.  Approving again is
refused with what happened, so nothing is written twice.

Carried out here: the requests that :func:`~clientfolio.actions.exports.export_segment` and
:func:`~clientfolio.actions.sends.act` queued (their payload names them as ``sender``).  Other
requests (a webhook batch, anything another sender queued) are only approved here; their own
sender looks for approved requests, delivers them and calls
:func:`clientfolio.actions.approvals.mark_done`.
"""

from __future__ import annotations

from typing import Any

from clientfolio.actions import approvals as ap
from clientfolio.actions import exports, sends
from clientfolio.actions.exports import export_segment
from clientfolio.actions.sends import act
from clientfolio.store.base import Store

__all__ = ["CARRIED_OUT_HERE", "approve_and_carry_out", "carry_out", "hold_for_approval"]

#: kind -> the sender whose queued requests are carried out here
CARRIED_OUT_HERE = {exports.APPROVAL_KIND: exports.SENDER, sends.APPROVAL_KIND: sends.SENDER}


def _ours(a: ap.Approval) -> bool:
    return a.kind in CARRIED_OUT_HERE and a.payload.get("sender") == CARRIED_OUT_HERE[a.kind]


def hold_for_approval(store: Store, kind: str, summary: str, payload: dict[str, Any], customers: int) -> str | None:
    """Queue a send of `kind` when the owner requires approval for it and return the request id; None: send now.

    `summary` says in plain words what would leave, `payload` holds what the sender needs to
    do it later (JSON values), `customers` how many customers it concerns.
    """
    if not ap.approval_required(store, kind):
        return None
    return ap.submit(store, kind, summary, payload, customers)


def _export(store: Store, a: ap.Approval) -> dict[str, Any]:
    p = a.payload
    r = export_segment(store, p["segment"], kind=p["kind"], target=p["target"], out=p["out"], since=p.get("since"),
                       exclude=p.get("exclude") or None, pseudonymise=bool(p.get("pseudonymise")),
                       approved=a.approval_id)
    return {"path": str(r.path.resolve()), "rows": r.rows, "members": r.members, "left_out": r.left_out,
            "ref": r.ref, "summary": r.summary()}


def _send(store: Store, a: ap.Approval) -> dict[str, Any]:
    p = a.payload
    r = act(store, p["segment"], kind=p["kind"], out=p["out"], playbooks=p.get("playbooks"), approved=a.approval_id)
    return {"path": str(r.path.resolve()) if r.path else None, "rows": len(r.rows), "members": r.members,
            "left_out": r.left_out, "ref": r.ref, "summary": r.summary()}


def carry_out(store: Store, approval_id: str) -> ap.Approval:
    """Do an approved request's work (export, playbook send) and mark it done with its outcome.

    Refused unless the request is approved and not yet done; a kind carried out by its own sender
    (webhooks) is refused with who sends it.
    """
    a = ap.get(store, approval_id)
    if a.status != "approved":
        raise ap.ApprovalError(f"cannot carry out request {a.approval_id} ('{a.summary}'): {ap._state_words(a)}")
    if not _ours(a):
        raise ap.ApprovalError(f"request {a.approval_id} ('{a.summary}') was queued by another sender (e.g. the "
                               "webhook worker): that sender delivers it now that it is approved")
    result = _export(store, a) if a.kind == exports.APPROVAL_KIND else _send(store, a)
    return ap.mark_done(store, a.approval_id, result)


def approve_and_carry_out(store: Store, approval_id: str, by: str) -> ap.Approval:
    """Approve a pending request and, for the kinds done here, carry it out at once (exactly once)."""
    a = ap.approve(store, approval_id, by)
    if not _ours(a):
        return a
    return carry_out(store, a.approval_id)
