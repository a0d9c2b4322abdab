"""Playbook sends: the list of customers of a segment to contact with its playbook, safely.

`act(store, "At Risk", kind="lifecycle", out="send.csv")` writes, for every current member who
may get the segment's playbook now: customer, e-mail, offer, channel, message angle and the
behavioural levers allowed for that customer.  The same safeguards as an export hold:

- consent for the playbook's purpose on its channel (:mod:`clientfolio.store.consent`); a
  service playbook (how the customer is served, not a message) needs none;
- the contact cap (:mod:`clientfolio.store.contacts`) for marketing playbooks;
- levers only for customers who consented to nudges (:func:`customer_levers`);
- the approval queue: when sends must be approved (kind ``playbook_send``), nothing is written
  until `clientfolio approvals approve ID`;
- a written list is recorded as an output and every customer on it is logged as contacted
  (origin ``playbook``), so the cap counts it.

Everyone left out is counted under the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from clientfolio.actions import approvals as ap
from clientfolio.actions.consent import consent_status
from clientfolio.actions.exports import (NO_EMAIL, ExportError, _consent_reason, _emails, _slug, _valid_email, cap_reason,
                                         segment_customers)
from clientfolio.actions.members import segment_title
from clientfolio.actions.outputs import record_output
from clientfolio.actions.playbooks import Playbook, Playbooks, customer_levers, load_playbooks
from clientfolio.core.safecsv import write_frame
from clientfolio.store.base import Store
from clientfolio.store.contacts import over_cap
from clientfolio.store.live import now_utc

__all__ = ["APPROVAL_KIND", "SEND_COLUMNS", "SendResult", "act"]

APPROVAL_KIND = "playbook_send"
ORIGIN = "playbook"
SENDER = "act"  # in an approval's payload: clientfolio.actions.release carries it out
SEND_COLUMNS = ["customer_id", "email", "segment", "offer", "channel", "angle", "levers"]


@dataclass
class SendResult:
    """What a playbook send wrote (or would write) and whom it left out."""

    segment_kind: str
    segment: str
    playbook: Playbook
    rows: pd.DataFrame  # SEND_COLUMNS, one row per customer on the list
    members: int
    left_out: dict[str, int] = field(default_factory=dict)
    path: Path | None = None  # None: a dry run
    approval_id: str | None = None  # set when the send waits in the approval queue
    ref: str = ""

    def summary(self) -> list[str]:
        """The result in a few plain lines."""
        title = segment_title(self.segment_kind, self.segment)
        n = len(self.rows)
        if self.approval_id is not None:
            head = (f"waiting for approval {self.approval_id}: {n:,} of {self.members:,} customers in {title} would "
                    f"get the playbook ({self.playbook.channel}); nothing is written until "
                    f"`clientfolio approvals approve {self.approval_id}`")
        elif self.path is None:
            head = f"dry run: {n:,} of {self.members:,} customers in {title} would get the playbook ({self.playbook.channel})"
        else:
            head = f"{n:,} of {self.members:,} customers in {title} written to {self.path} ({self.playbook.channel})"
        lines = [head, f"offer: {self.playbook.offer}; angle: {self.playbook.angle}"]
        for reason, k in sorted(self.left_out.items(), key=lambda kv: -kv[1]):
            lines.append(f"left out: {k:,} - {reason}")
        return lines


def _select(store: Store, pb: Playbook, ids: list[str], when: datetime) -> tuple[pd.DataFrame, dict[str, int]]:
    """The send list for these members under the playbook, and who was left out by reason."""
    left_out: dict[str, int] = {}

    def leave(reason: str, who: list[str]) -> None:
        if who:
            left_out[reason] = left_out.get(reason, 0) + len(who)

    keep = list(ids)
    marketing = pb.purpose == "marketing"
    if marketing and keep:
        st = consent_status(store, keep, "marketing", pb.consent_channel)
        refused = st[~st["allowed"]]
        for reason, grp in refused.groupby(refused["basis"].map(lambda b: _consent_reason(str(b), pb.consent_channel))):
            leave(str(reason), list(grp["customer_id"]))
        allowed = set(st.loc[st["allowed"], "customer_id"])
        keep = [i for i in keep if i in allowed]
        capped = over_cap(store, keep, at=when)
        leave(cap_reason(store), [i for i in keep if i in capped])
        keep = [i for i in keep if i not in capped]
    emails = _emails(store, keep) if keep else {}
    if pb.channel == "email":
        leave(NO_EMAIL, [i for i in keep if not _valid_email(emails.get(i))])
        keep = [i for i in keep if _valid_email(emails.get(i))]
    levers = customer_levers(store, pb, keep).set_index("customer_id") if keep else None
    rows = pd.DataFrame({
        "customer_id": keep, "email": [emails.get(i) for i in keep], "segment": pb.segment,
        "offer": pb.offer, "channel": pb.channel, "angle": pb.angle,
        "levers": [", ".join(levers.at[i, "levers"]) for i in keep] if levers is not None else [],
    }, columns=SEND_COLUMNS)
    return rows, left_out


def act(store: Store, segment: str, kind: str | None = None, out: str | Path | None = None,
        playbooks: Playbooks | str | Path | None = None, dry_run: bool = False, at: datetime | None = None,
        approved: str | None = None) -> SendResult:
    """Write the send list of `segment`'s playbook to `out` (CSV), or say what it would hold (`dry_run`).

    Parameters
    ----------
    segment, kind : the segment (any case) and, when the name is in several kinds, its kind.
    out : the CSV to write (default ``send-<kind>-<segment>.csv`` here).
    playbooks : the playbooks in force, or the owner's playbook file (default: the built-in ones).
    dry_run : compute the list and the left-out counts, write and log nothing.
    at : the moment of the send (default now), for the contact cap and the contact log.
    approved : the approval id that releases this send (set by :mod:`clientfolio.actions.release`).
    """
    pbs = playbooks if isinstance(playbooks, Playbooks) else load_playbooks(playbooks)
    kind, name, ids = segment_customers(store, segment, kind)
    pb = pbs.for_segment(kind, name)
    when = at or now_utc()
    rows, left_out = _select(store, pb, ids, when)
    result = SendResult(kind, name, pb, rows, len(ids), left_out)
    if dry_run:
        return result
    path = Path(out) if out is not None else Path(f"send-{kind}-{_slug(name)}.csv")
    if path.is_dir() or not path.parent.exists():
        raise ExportError(f"{path}: give a file name in an existing folder for the send list (--to FILE)")
    result.path = path
    if approved is None and ap.approval_required(store, APPROVAL_KIND):
        payload: dict[str, Any] = {"sender": SENDER, "segment": name, "kind": kind, "out": str(path.resolve()),
                                   "playbooks": pbs.files[-1] if pbs.files else None}
        what = f"playbook send to {segment_title(kind, name)}: {len(rows):,} customers by {pb.channel} ({path.resolve()})"
        result.approval_id = ap.submit(store, APPROVAL_KIND, what, payload, len(rows))
        return result
    result.ref = f"{path.name}@{pd.Timestamp(when):%Y-%m-%dT%H:%M:%S}"
    write_frame(rows, path)
    try:
        if pb.purpose == "marketing" and len(rows):
            log = pd.DataFrame({"customer_id": rows["customer_id"], "channel": pb.consent_channel,
                                "purpose": "marketing", "origin": ORIGIN, "ref": result.ref, "contacted_at": when})
            with store.transaction() as tx:
                tx.execute("DELETE FROM contact_log WHERE origin = ? AND ref = ?", [ORIGIN, result.ref])
                tx.insert("contact_log", log)
        record_output(store, path, "send", len(rows))
    except BaseException:
        path.unlink(missing_ok=True)  # an unrecorded file of customer data must not stay behind
        raise
    return result
