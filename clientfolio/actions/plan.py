"""The action plan: for every segment of an analysed portfolio, what to do, for how many, and in which order.

Per segment: its size, the value at stake (the customers' predicted CLV over the horizon; the
last 12 months' revenue when the data cannot support forecasts), its playbook (service level,
offer, channel, angle, cadence, KPI), and how many of its customers can actually be reached:
with consent for the playbook's purpose on its channel (:mod:`clientfolio.actions.consent`; a
service playbook needs none) and below the contact cap (:mod:`clientfolio.actions.pressure`).

The priority order is plain: segments with an action of their own, the playbook's service level
first (dedicated, priority, standard, self-service: what the playbook itself says deserves
most attention), then the value at stake of the customers who can be reached.  Segments
without an action are listed apart with the reason: no playbook of their own (the generic one
applies), a playbook that says "no special action", or nobody who can be contacted.
Divestment candidates (unprofitable after cost to serve) get the phased plan of
:func:`~clientfolio.actions.playbooks.divestment_playbook`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.actions.playbooks import (SERVICE_LEVELS, Playbook, Playbooks, divestment_ids, divestment_playbook,
                                           load_playbooks)
from clientfolio.core.money import format_money
from clientfolio.live.kinds import KINDS, kind_label, segment_label
from clientfolio.store.base import Store

__all__ = ["ActionPlan", "Reach", "plan_actions", "reach_from_store", "reach_from_customers"]

#: The consent channels a playbook can need (playbooks.CONSENT_CHANNEL's values), asked for once per analysis.
CONSENT_CHANNELS = ("email", "sms", "phone", "post", "push", "any")
NO_SPECIAL_ACTION = "no special action"
SEGMENT_COLUMNS = ["segment_kind", "segment", "customers", "value_at_stake", "service_level", "offer", "channel",
                   "angle", "cadence", "kpi", "levers", "purpose", "tailored", "consented", "at_cap", "reachable",
                   "reachable_value", "priority", "flag"]


@dataclass
class Reach:
    """Who may be contacted: marketing consent per consent channel, and who is at the contact cap now.

    ``consent``: one row per customer (index customer_id), one bool column per consent channel
    (email, sms, phone, post, push, any); ``at_cap``: customers a further marketing contact would
    put over the cap, with the reason; ``basis``: where the answers come from, in words.
    """

    consent: pd.DataFrame
    at_cap: dict[str, str] = field(default_factory=dict)
    basis: str = ""


def reach_from_store(store: Store, customer_ids: Sequence[str]) -> Reach:
    """Consent per channel (the store's consent records and customers file) and the contact cap, now."""
    from clientfolio.actions.pressure import over_cap
    from clientfolio.store.consent import consent_matrix

    ids = sorted({str(c) for c in customer_ids})
    consent = consent_matrix(store, ids, "marketing", CONSENT_CHANNELS)  # every channel in one read
    consent.index = pd.Index(ids, name="customer_id")
    return Reach(consent, over_cap(store, ids),
                 "consent records and the customers file; contact cap from the contact log")


def reach_from_customers(customers: pd.DataFrame) -> Reach:
    """Without a store: the customers file's ``consent_marketing`` counts as e-mail consent, nothing else does."""
    ids = customers["customer_id"].astype(str)
    consent = pd.DataFrame(False, index=pd.Index(ids, name="customer_id"), columns=list(CONSENT_CHANNELS))
    if "consent_marketing" in customers:
        flag = customers["consent_marketing"]
        consent["email"] = (flag.astype(object).where(flag.notna(), False).astype(bool)).to_numpy()
    return Reach(consent, {}, "the customers file's marketing consent only (e-mail); no consent records or contact "
                              "log were read (pass store= for them)")


@dataclass
class ActionPlan:
    """What to do per segment, for how many customers, and which segments to contact first.

    ``segments``: one row per segment present (columns :data:`SEGMENT_COLUMNS`); ``priority``: the
    segments to act on, first things first; ``no_action``: segments flagged, each with the reason;
    ``divestment``: the divestment candidates (customer_id, revenue, profit, evidence) and
    ``divestment_plan`` the phased plan for them; ``value_basis``: what "value at stake" measures.
    """

    segments: pd.DataFrame
    divestment: pd.DataFrame
    divestment_plan: Playbook
    value_basis: str
    reach_basis: str
    currency: str = ""
    playbook_files: list[str] = field(default_factory=list)
    playbooks: Playbooks | None = None

    @property
    def priority(self) -> pd.DataFrame:
        """The segments with an action, in the order to contact them (priority 1 first)."""
        t = self.segments[self.segments["priority"].notna()].sort_values("priority")
        return t.reset_index(drop=True)

    @property
    def no_action(self) -> pd.DataFrame:
        """The segments flagged: no playbook of their own, nothing to do by design, or nobody reachable."""
        return self.segments[self.segments["flag"] != ""].reset_index(drop=True)

    @property
    def divestment_loss(self) -> float:
        """What the divestment candidates lose together (sum of their negative profit, as a positive amount)."""
        if self.divestment.empty or "profit" not in self.divestment:
            return 0.0
        return float(-self.divestment["profit"].sum())

    def has_action(self, kind: str, segment: str) -> bool:
        """Does `segment` of `kind` have an action of its own (for :func:`~clientfolio.actions.health.segment_health`)?"""
        row = self.segments[(self.segments["segment_kind"] == kind) & (self.segments["segment"] == segment)]
        return bool(len(row)) and bool(row["priority"].notna().iloc[0])

    def service_levels(self) -> dict[tuple[str, str], str]:
        """(kind, segment) -> service level, as the fairness audit takes them."""
        return {(k, s): lv for k, s, lv in zip(self.segments["segment_kind"], self.segments["segment"],
                                              self.segments["service_level"])}

    def lines(self, top: int = 5) -> list[str]:
        """The plan in a few plain sentences: who to contact first, what is flagged, the divestment plan."""
        money = lambda v: format_money(v, self.currency)  # noqa: E731
        out = []
        first = self.priority.head(top)
        if len(first):
            out.append("Contact these first: " + "; ".join(
                f"{r.priority:.0f}. {segment_label(r.segment_kind, r.segment)} ({kind_label(r.segment_kind)}): "
                f"{r.reachable:,} of {r.customers:,} reachable, {money(r.value_at_stake)} at stake, {r.offer}"
                for r in first.itertuples()) + ".")
        flagged = self.no_action
        untailored = flagged[~flagged["tailored"]]
        if len(untailored):
            out.append(f"{len(untailored)} segment(s) have no playbook of their own (the generic one applies): "
                       + ", ".join(f"{segment_label(k, s)} ({kind_label(k)})"
                                   for k, s in zip(untailored["segment_kind"], untailored["segment"])) + ".")
        unreachable = flagged[flagged["tailored"] & (flagged["reachable"] == 0)
                              & ~flagged["offer"].str.casefold().str.startswith(NO_SPECIAL_ACTION)]
        if len(unreachable):
            out.append(f"{len(unreachable)} segment(s) have a playbook but nobody in them can be contacted for it "
                       "(no consent on its channel, or at the contact cap).")
        if len(self.divestment):
            out.append(f"{len(self.divestment):,} divestment candidates lose {money(self.divestment_loss)} together: "
                       f"{self.divestment_plan.steps[0] if self.divestment_plan.steps else self.divestment_plan.offer}")
        return out


def _value(customers: pd.DataFrame, forecasts: bool, horizon: int) -> tuple[pd.Series, str]:
    if forecasts and "clv" in customers and customers["clv"].notna().any():
        return customers["clv"].fillna(0.0).astype(float), f"predicted CLV over the next {horizon} months"
    col = "revenue_12m" if "revenue_12m" in customers else "revenue"
    words = "revenue in the last 12 months" if col == "revenue_12m" else "revenue to date"
    return customers[col].fillna(0.0).astype(float), f"{words} (this data cannot support forecasts)"


def _flag(pb: Playbook, reachable: int) -> str:
    if not pb.tailored:
        return ("no playbook of its own: the generic one applies (add one: `clientfolio playbooks --write "
                "playbooks.yaml`, then --playbooks playbooks.yaml)")
    if pb.offer.casefold().startswith(NO_SPECIAL_ACTION):
        return "no action of its own by design: its customers get the playbooks of their other segments"
    if reachable == 0:
        return (f"nobody can be contacted: no one has consent for {pb.purpose} by {pb.channel}, or everyone is at "
                "the contact cap")
    return ""


def plan_actions(portfolio: Any, playbooks: Playbooks | str | Path | None = None, *, store: Store | None = None,
                 reach: Reach | None = None) -> ActionPlan:
    """The action plan of an analysed portfolio.

    Parameters
    ----------
    portfolio : Portfolio
        The result of :func:`clientfolio.analyze`.
    playbooks : Playbooks or path, optional
        The playbooks in force (default: the built-in ones); a path is read with
        :func:`~clientfolio.actions.playbooks.load_playbooks` (merged over the defaults).
    store : Store, optional
        Where consent records and the contact log are read (reach); without it, ``reach``.
    reach : Reach, optional
        Consent and contact cap already read (what :func:`clientfolio.analyze` keeps as
        ``portfolio.reach``); without either, the customers file's marketing consent only.
    """
    pbs = playbooks if isinstance(playbooks, Playbooks) else load_playbooks(playbooks)
    c = portfolio.customers
    if reach is None:
        reach = reach_from_store(store, c["customer_id"]) if store is not None else reach_from_customers(c)
    value, basis = _value(c, portfolio.support.forecasts, int(portfolio.settings.get("horizon_months", 12)))
    m = portfolio.segments[["customer_id", "segment_kind", "segment"]].dropna()
    # One pass over every membership, on integer codes (hashing each string column once): the customer's
    # row in the customers and consent tables, value and cap, looked up once.
    cids = c["customer_id"].astype(str)
    cons_ids = pd.Series(reach.consent.index, dtype=object).astype(str)
    n_c, n_cons = len(cids), len(cons_ids)
    id_code, id_uniq = pd.factorize(pd.concat([cids, cons_ids, m["customer_id"].astype(str)], ignore_index=True))
    at_row = np.full(len(id_uniq), -1, dtype=np.intp)
    at_row[id_code[:n_c][::-1]] = np.arange(n_c)[::-1]                       # first customers row per id
    at_cons = np.full(len(id_uniq), -1, dtype=np.intp)
    at_cons[id_code[n_c:n_c + n_cons][::-1]] = np.arange(n_cons)[::-1]
    m_id = id_code[n_c + n_cons:]
    kind_code, kind_uniq = pd.factorize(m["segment_kind"].astype(str))
    seg_code, seg_uniq = pd.factorize(m["segment"].astype(str))
    pair_code, pair_key = pd.factorize(kind_code.astype(np.int64) * max(len(seg_uniq), 1) + seg_code)
    # drop repeated memberships (same customer, kind and segment), keeping the first
    dup = pd.Series(m_id.astype(np.int64) * max(len(pair_key), 1) + pair_code).duplicated().to_numpy()
    m_id, codes = m_id[~dup], pair_code[~dup]
    keys = [(str(kind_uniq[k // max(len(seg_uniq), 1)]), str(seg_uniq[k % max(len(seg_uniq), 1)]))
            for k in np.asarray(pair_key, dtype=np.int64)]
    # group order as pandas' groupby(sort=False) over the kept rows gives it: first appearance
    first_seen = np.full(len(keys), np.iinfo(np.int64).max)
    np.minimum.at(first_seen, codes, np.arange(len(codes)))
    present = np.flatnonzero(first_seen < np.iinfo(np.int64).max)
    present = present[np.argsort(first_seen[present], kind="stable")]
    row = at_row[m_id]
    vals = np.where(row >= 0, value.to_numpy()[row], 0.0)
    crow = at_cons[m_id]
    consent = np.vstack([np.zeros(len(CONSENT_CHANNELS), dtype=bool),
                         reach.consent[list(CONSENT_CHANNELS)].to_numpy(dtype=bool)])[crow + 1]  # not found: none
    capped_ids = np.zeros(len(id_uniq) + 1, dtype=bool)
    if reach.at_cap:
        cap_code = pd.Index(id_uniq).get_indexer(pd.Index([str(k) for k in reach.at_cap]))
        capped_ids[cap_code[cap_code >= 0]] = True
    capped = capped_ids[m_id]
    pbs_of = {keys[k]: pbs.for_segment(*keys[k]) for k in present}
    per_code = [pbs_of.get(key) for key in keys]
    service = np.array([pb is not None and pb.purpose == "service" for pb in per_code], dtype=bool)[codes]
    channel = np.array([CONSENT_CHANNELS.index(pb.consent_channel) if pb is not None else 0 for pb in per_code],
                       dtype=int)[codes]
    ok = service | consent[np.arange(len(codes)), channel]
    reached = ok & (service | ~capped)
    n_k = len(keys)
    sums = {name: np.bincount(codes, weights=w, minlength=n_k) for name, w in (
        ("customers", None), ("value_at_stake", vals), ("consented", ok), ("at_cap", ok & capped & ~service),
        ("reachable", reached), ("reachable_value", np.where(reached, vals, 0.0)))}
    g = pd.DataFrame({name: v[present] for name, v in sums.items()},
                     index=pd.MultiIndex.from_tuples([keys[k] for k in present], names=["segment_kind", "segment"])
                     if len(present) else pd.MultiIndex.from_tuples([], names=["segment_kind", "segment"]))
    order = {k: i for i, k in enumerate(KINDS)}
    rows = []
    for (kind, segment), r in zip(g.index, g.itertuples(index=False)):
        pb = pbs_of[(kind, segment)]
        rows.append({"segment_kind": kind, "segment": segment, "customers": int(r.customers),
                     "value_at_stake": float(r.value_at_stake), "service_level": pb.service_level, "offer": pb.offer,
                     "channel": pb.channel, "angle": pb.angle, "cadence": pb.cadence, "kpi": pb.kpi,
                     "levers": ", ".join(pb.levers), "purpose": pb.purpose, "tailored": pb.tailored,
                     "consented": int(r.consented), "at_cap": int(r.at_cap), "reachable": int(r.reachable),
                     "reachable_value": float(r.reachable_value), "flag": _flag(pb, int(r.reachable))})
    t = pd.DataFrame(rows, columns=[c for c in SEGMENT_COLUMNS if c != "priority"])
    t["_kind"] = t["segment_kind"].map(lambda k: order.get(k, len(order)))
    t = t.sort_values(["_kind", "segment_kind", "value_at_stake"], ascending=[True, True, False]).drop(columns="_kind")
    acted = t[t["flag"] == ""].copy()
    acted["_level"] = acted["service_level"].map({lv: i for i, lv in enumerate(SERVICE_LEVELS)})
    acted = acted.sort_values(["_level", "reachable_value", "reachable"], ascending=[True, False, False])
    t["priority"] = pd.Series(np.arange(1, len(acted) + 1, dtype=float), index=acted.index).reindex(t.index)
    t = t[SEGMENT_COLUMNS].reset_index(drop=True)
    ids = set(divestment_ids(portfolio))
    d = getattr(getattr(portfolio, "divestment", None), "customers", None)
    if d is not None and len(ids):
        div = d[d["customer_id"].astype(str).isin(ids)][[k for k in ("customer_id", "revenue", "profit", "evidence")
                                                          if k in d]].reset_index(drop=True)
    else:
        div = pd.DataFrame(columns=["customer_id", "revenue", "profit", "evidence"])
    return ActionPlan(segments=t, divestment=div, divestment_plan=divestment_playbook(pbs), value_basis=basis,
                      reach_basis=reach.basis, currency=getattr(portfolio, "currency", ""),
                      playbook_files=list(pbs.files), playbooks=pbs)
