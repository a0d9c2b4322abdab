"""Export a segment in the import layout of an e-mail tool, CRM or shop -- only the customers who may get it.

`export_segment(store, "At Risk", kind="rfm", target="klaviyo")` writes the segment's current
members in Klaviyo's list-import layout (see :mod:`clientfolio.actions.export_layouts` for every
layout and the documentation each follows) and returns an :class:`ExportResult` saying how many
rows were written and how many customers were left out, and why.

What holds for every export:

- **Consent.**  A marketing export (every tool's layout, and the generic CSV/Parquet, which
  carry e-mail addresses) holds only customers with consent for marketing on the tool's channel,
  decided by :func:`clientfolio.actions.consent.consent_status`.  Everyone else is counted under
  the reason: withdrawn, refused in the customers file, no consent on record.
- **Contact cap.**  A marketing export leaves out the customers the contact cap
  (:mod:`clientfolio.store.contacts`) does not allow another contact now, counted under one
  reason that states the cap.
- **Exclusions.**  `exclude` (customer id -> reason) leaves those customers out and counts them
  under their reason.
- **Approval.**  When the owner requires approval for exports
  (`clientfolio approvals --require export`), nothing is written: the export's parameters wait in
  the approval queue and the result carries the request's id; once approved,
  :func:`clientfolio.actions.release.carry_out` runs the export (consent and cap judged again
  then) and records what it wrote with the request.
- **Nothing invented.**  clientfolio holds no names or phone numbers; those columns stay empty.
  A customer without an e-mail address cannot be imported into an e-mail tool and is counted.
- **Safe files.**  Written to a temporary file and renamed when complete; CSVs through
  :mod:`clientfolio.core.safecsv` (a name or address starting with ``=`` cannot run as a
  formula); every file recorded with `record_output` so erasure and access find it.
- **Contact log.**  Each exported customer gets a `contact_log` row (origin ``export``, ref =
  file name and time, channel, purpose) so a contact cap counts the export as a contact.
- **Pseudonymised files** (analysis, agency sharing) replace customer ids by an HMAC with a
  per-store secret and drop e-mail addresses.  They are refused for the marketing tools' layouts:
  those tools key on the e-mail address, so a pseudonymised file would be useless there, and a
  marketing file is not what a pseudonymised file is for.  A pseudonymised file contacts nobody,
  so it has no consent filter and writes no contact log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from clientfolio.actions import approvals as ap
from clientfolio.actions.consent import consent_status
from clientfolio.actions.export_layouts import LAYOUTS, PSEUDONYMOUS_TARGETS, SCORE_COLUMNS, TARGETS, Layout
from clientfolio.actions.members import current_members, resolve_segment, segment_title
from clientfolio.actions.outputs import record_output
from clientfolio.core.errors import ClientfolioError
from clientfolio.core.safecsv import write_frame
from clientfolio.store.contacts import _window_words, get_caps, over_cap
from clientfolio.live.triggers import _suggest
from clientfolio.store.base import Store
from clientfolio.store.live import now_utc
from clientfolio.store.pseudonym import pseudonym_key, pseudonymise_id

__all__ = ["APPROVAL_KIND", "ExportError", "ExportResult", "TARGETS", "cap_reason", "export_segment", "pseudonym_key",
           "pseudonymise_ids"]

PURPOSE = "marketing"
NO_EMAIL = "no e-mail address"
APPROVAL_KIND = "export"
SENDER = "export_segment"  # in an approval's payload: clientfolio.actions.release carries it out

_IDS = "WITH ids AS (SELECT DISTINCT unnest(CAST(? AS TEXT[])) AS customer_id) "


class ExportError(ClientfolioError, ValueError):
    """An export that cannot be made as asked: says why and what to do instead."""


@dataclass
class ExportResult:
    """What an export wrote and whom it left out."""

    path: Path
    target: str
    segment_kind: str
    segment: str
    rows: int
    members: int  # customers in the segment (who entered it since --since, when given)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> customers
    pseudonymised: bool = False
    ref: str = ""  # the contact-log reference: file name and time
    notes: list[str] = field(default_factory=list)
    approval_id: str | None = None  # set when the export waits in the approval queue (nothing written yet)

    @property
    def pending(self) -> bool:
        """Is the export waiting for approval (no file written)?"""
        return self.approval_id is not None

    def summary(self) -> list[str]:
        """The result in a few plain lines."""
        title = segment_title(self.segment_kind, self.segment)
        if self.pending:
            lines = [f"waiting for approval {self.approval_id}: {self.rows:,} of {self.members:,} customers in "
                     f"{title} would be written to {self.path} ({LAYOUTS[self.target].title}); nothing is written "
                     f"until `clientfolio approvals approve {self.approval_id}`"]
        else:
            lines = [f"{self.rows:,} of {self.members:,} customers in {title} "
                     f"written to {self.path} ({LAYOUTS[self.target].title}"
                     + (", pseudonymised" if self.pseudonymised else "") + ")"]
        for reason, n in sorted(self.left_out.items(), key=lambda kv: -kv[1]):
            lines.append(f"left out: {n:,} - {reason}")
        return lines + [f"note: {n}" for n in self.notes]


# ----------------------------------------------------------------------------- pseudonyms

def pseudonymise_ids(store: Store, customer_ids: Sequence[str]) -> list[str]:
    """The store's pseudonyms of these ids (clientfolio.store.pseudonym): the same as in every other
    pseudonymised file of this store, so files can be joined and erasure finds them."""
    key = pseudonym_key(store)
    return [pseudonymise_id(key, c) for c in customer_ids]


# ----------------------------------------------------------------------------- the rows

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "segment"


def _tag(kind: str, segment: str) -> str:
    """A tag every tool accepts: the segment with its kind, without commas (tag separators)."""
    return ("clientfolio " + segment_title(kind, segment)).replace(",", " ")[:100]


def _emails(store: Store, ids: list[str]) -> dict[str, str]:
    """E-mail per customer: the customers table's, else the newest one on their orders."""
    got = store.query(_IDS + "SELECT ids.customer_id, c.email FROM ids JOIN customers c "
                      "ON c.customer_id = ids.customer_id WHERE c.email IS NOT NULL", [ids])
    emails = {str(k): str(v) for k, v in zip(got["customer_id"], got["email"]) if str(v).strip()}
    missing = [i for i in ids if i not in emails]
    if missing:
        tx = store.query(_IDS + "SELECT customer_id, email FROM (SELECT t.customer_id, t.email, row_number() OVER "
                         "(PARTITION BY t.customer_id ORDER BY t.ts DESC) AS k FROM transactions t "
                         "WHERE t.email IS NOT NULL AND t.customer_id IN (SELECT customer_id FROM ids)) AS last "
                         "WHERE k = 1", [missing])
        emails.update({str(k): str(v) for k, v in zip(tx["customer_id"], tx["email"]) if str(v).strip()})
    return emails


def _scores(store: Store, ids: list[str]) -> pd.DataFrame:
    try:
        have = set(store.customer_state_columns())
    except Exception:  # noqa: BLE001 - no living-portfolio table: no scores to add
        have = set()
    cols = [c for c in SCORE_COLUMNS if c in have]
    if not cols:
        return pd.DataFrame({"customer_id": ids})
    return store.query(_IDS + "SELECT ids.customer_id, " + ", ".join(f"s.{c}" for c in cols)
                       + " FROM ids LEFT JOIN customer_state s ON s.customer_id = ids.customer_id", [ids])


def _consent_reason(basis: str, channel: str) -> str:
    if basis.startswith("withdrawn"):
        return f"consent to marketing by {channel} withdrawn"
    if "does not accept" in basis:
        return "does not accept e-mail marketing (customers file)"
    if basis.startswith("no consent on record"):
        return f"no consent on record for marketing by {channel}"
    return f"no consent for marketing by {channel}"


def cap_reason(store: Store) -> str:
    """The reason under which customers at the contact cap are counted, with the cap in words."""
    caps = get_caps(store)
    return "over the contact cap (" + " and ".join(f"at most {n} in {_window_words(w)}" for w, n in caps.items()) + ")"


def _valid_email(v: str | None) -> bool:
    return bool(v) and "@" in str(v) and not any(ch.isspace() for ch in str(v).strip())


def _entered_since(store: Store, kind: str, segment: str, since: Any) -> set[str]:
    try:
        day = pd.Timestamp(since)
    except (ValueError, TypeError):
        raise ExportError(f"since {since!r} is not a date; write it as YYYY-MM-DD") from None
    ch = store.read_changes(since=day.to_pydatetime(), segment_kind=kind)
    return set(ch.loc[ch["to_segment"] == segment, "customer_id"].astype(str))


# ----------------------------------------------------------------------------- writing

def _write(frame: pd.DataFrame, path: Path, layout: Layout) -> None:
    """Write the file whole or not at all (a temporary file renamed when complete)."""
    if layout.parquet:
        tmp = path.with_name(path.name + ".part")
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        write_frame(frame, path)


def _default_path(target: str, kind: str, segment: str, pseudonymised: bool) -> Path:
    ext = "parquet" if LAYOUTS[target].parquet else "csv"
    return Path(f"{target}-{kind}-{_slug(segment)}{'-pseudonymised' if pseudonymised else ''}.{ext}")


def segment_customers(store: Store, segment: str, kind: str | None = None) -> tuple[str, str, list[str]]:
    """(kind, segment name, sorted customer ids) of a segment as the store holds it now; the name as typed."""
    members = current_members(store, kind)
    if members.empty:
        raise ExportError("the store holds no segments yet: run `clientfolio analyze --store STORE` first")
    kind, name = resolve_segment(members, segment, kind)
    chosen = (members["segment_kind"] == kind) & (members["segment"] == name)
    return kind, name, sorted(set(members.loc[chosen, "customer_id"].astype(str)))


def export_segment(store: Store, segment: str, kind: str | None = None, target: str = "csv",
                   out: str | Path | None = None, since: Any = None, exclude: Mapping[str, str] | None = None,
                   pseudonymise: bool = False, at: datetime | None = None,
                   approved: str | None = None) -> ExportResult:
    """Write the current members of `segment` in `target`'s import layout; see the module docstring.

    Parameters
    ----------
    segment, kind : the segment's name (any case) and, when the name is in several kinds, its kind.
    target : one of mailchimp, klaviyo, hubspot, zoho, salesforce, shopify, csv, parquet.
    out : the file to write (default ``<target>-<kind>-<segment>.csv`` in the current folder).
    since : only customers who entered the segment on or after this day (from the change log)
        and are still in it.
    exclude : customer id -> reason; these customers are left out and counted under the reason.
    pseudonymise : ids replaced by the store's HMAC pseudonyms, e-mails dropped (csv/parquet only).
    at : the time of the export (default now), recorded in the contact log and used for the cap.
    approved : the id of the approval that releases this export (set by
        :func:`clientfolio.actions.release.carry_out`); without it, an export waits in the queue
        when approval is required for exports.
    """
    if target not in LAYOUTS:
        raise ExportError(f"unknown export target {target!r}{_suggest(target, TARGETS)}; use one of "
                          f"{', '.join(TARGETS)}")
    layout = LAYOUTS[target]
    if pseudonymise and target not in PSEUDONYMOUS_TARGETS:
        raise ExportError(f"a pseudonymised file is for analysis or sharing with an agency, not for {layout.title}: "
                          f"{target} keys its contacts on the e-mail address, which a pseudonymised file leaves out, "
                          f"so it would be useless there; export it --to csv or --to parquet with --pseudonymise, "
                          f"or without --pseudonymise for {target} (only customers with marketing consent go in)")
    kind, name, ids = segment_customers(store, segment, kind)
    notes: list[str] = []
    if since is not None:
        entered = _entered_since(store, kind, name, since)
        ids = [i for i in ids if i in entered]
        notes.append(f"only customers who entered the segment since {pd.Timestamp(since):%Y-%m-%d} (change log) "
                     "and are still in it")
    n_members = len(ids)
    left_out: dict[str, int] = {}

    def leave(reason: str, who: list[str]) -> None:
        if who:
            left_out[reason] = left_out.get(reason, 0) + len(who)

    marketing = layout.marketing and not pseudonymise
    keep = ids
    if marketing and keep:
        st = consent_status(store, keep, PURPOSE, layout.channel)
        refused = st[~st["allowed"]]
        for reason, grp in refused.groupby(refused["basis"].map(lambda b: _consent_reason(str(b), layout.channel))):
            leave(str(reason), list(grp["customer_id"]))
        allowed = set(st.loc[st["allowed"], "customer_id"])
        keep = [i for i in keep if i in allowed]
    when = at or now_utc()
    if marketing and keep:
        capped = over_cap(store, keep, at=when)
        leave(cap_reason(store), [i for i in keep if i in capped])
        keep = [i for i in keep if i not in capped]
    if exclude:
        ex = {str(k): str(v) for k, v in exclude.items()}
        by_reason: dict[str, list[str]] = {}
        for i in keep:
            if i in ex:
                by_reason.setdefault(ex[i], []).append(i)
        for reason, who in by_reason.items():
            leave(reason, who)
        keep = [i for i in keep if i not in ex]
    emails = _emails(store, keep) if keep and not pseudonymise else {}
    if marketing:
        no_mail = [i for i in keep if not _valid_email(emails.get(i))]
        leave(NO_EMAIL, no_mail)
        keep = [i for i in keep if _valid_email(emails.get(i))]

    frame = _scores(store, keep) if keep else pd.DataFrame({"customer_id": pd.Series([], dtype=object)})
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame = frame.set_index("customer_id").reindex(keep).reset_index()
    frame["email"] = [emails.get(i) for i in keep]
    for c in ("first_name", "last_name", "phone"):  # not held by clientfolio: empty, never invented
        frame[c] = None
    frame["segment_kind"], frame["segment"] = kind, name
    frame["tag"], frame["title"] = _tag(kind, name), segment_title(kind, name)
    if "orders" not in frame:
        frame["orders"] = None
    frame["sms_status"] = ""
    if target == "klaviyo" and keep:
        sms = consent_status(store, keep, PURPOSE, "sms").set_index("customer_id")
        frame["sms_status"] = ["Subscribed" if sms.at[i, "allowed"] else
                               "Unsubscribed" if str(sms.at[i, "basis"]).startswith("withdrawn") else ""
                               for i in keep]
    table = layout.fill(frame)
    if pseudonymise:
        table = table.drop(columns=["email"]).rename(columns={"customer_id": "customer_ref"})
        table["customer_ref"] = pseudonymise_ids(store, keep)
    missing = [c for c in layout.required if c not in table.columns and not (pseudonymise and c == "customer_id")]
    if missing:  # a layout bug, never a silent wrong file
        raise ExportError(f"the {layout.title} layout lost its required column(s) {', '.join(missing)}")

    path = Path(out) if out is not None else _default_path(target, kind, name, pseudonymise)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name, e.g. {path / _default_path(target, kind, name, pseudonymise)}")
    if not path.parent.exists():
        raise ExportError(f"{path}: the folder {path.parent} does not exist; create it or choose another --out")
    if approved is None and ap.approval_required(store, APPROVAL_KIND):
        payload = {"sender": SENDER, "segment": name, "kind": kind, "target": target, "out": str(path.resolve()),
                   "since": None if since is None else str(pd.Timestamp(since).date()),
                   "exclude": {str(k): str(v) for k, v in (exclude or {}).items()}, "pseudonymise": pseudonymise}
        what = (f"{layout.title} export of {segment_title(kind, name)}: {len(table):,} customers to {path.resolve()}"
                + (" (pseudonymised)" if pseudonymise else ""))
        approval_id = ap.submit(store, APPROVAL_KIND, what, payload, len(table))
        notes.append("consent and the contact cap are judged again when the export is approved")
        return ExportResult(path=path, target=target, segment_kind=kind, segment=name, rows=len(table),
                            members=n_members, left_out=left_out, pseudonymised=pseudonymise, notes=notes,
                            approval_id=approval_id)
    ref = f"{path.name}@{pd.Timestamp(when):%Y-%m-%dT%H:%M:%S}"
    _write(table, path, layout)
    try:
        if marketing and keep:
            log = pd.DataFrame({"customer_id": keep, "channel": layout.channel, "purpose": PURPOSE,
                                "origin": "export", "ref": ref, "contacted_at": when})
            with store.transaction() as tx:
                tx.execute("DELETE FROM contact_log WHERE origin = 'export' AND ref = ?", [ref])
                tx.insert("contact_log", log)
        record_output(store, path, "export", len(table), pseudonymised=pseudonymise)
    except BaseException:
        path.unlink(missing_ok=True)  # an unrecorded file of customer data must not stay behind
        raise
    notes.extend(n.replace("<the tag>", _tag(kind, name)) for n in layout.notes)
    if not keep:
        notes.append("nobody in the segment could be exported: the file holds only the header row")
    return ExportResult(path=path, target=target, segment_kind=kind, segment=name, rows=len(table),
                        members=n_members, left_out=left_out, pseudonymised=pseudonymise, ref=ref, notes=notes)
