"""Segment health: is each segment big enough, distinct, stable, and acted on?

Per segment: its size (and share of its kind), its largest overlap with a segment of another
kind (Jaccard: shared members over members of either; and the share of its own members also in
that one), its stability across refits (share of members who stayed in it when the state was
last refitted, from the change log), and whether an action is attached (the caller says which
segments have one: a playbook, a trigger, an export routine).  Warnings are plain: no action,
too small to judge, unstable at refits, almost the same customers as another segment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store

MIN_SIZE = 30  # fewer members: too few to judge a segment's results or stability on its own
UNSTABLE = 0.7  # fewer of its members staying through a refit: the segment follows the lines, not behaviour
DUPLICATE = 0.9  # Jaccard at or above: nearly the same customers
NEAR_ALL = 0.9  # a segment holding this share of its kind hardly separates anyone
MAX_OVERLAP_SEGMENTS = 5000
HasAction = Callable[[str, str], bool] | Collection[tuple[str, str]] | None


class HealthError(ClientfolioError):
    """Nothing to report on (no segment memberships)."""


# ----------------------------------------------------------------------------- memberships

def current_memberships(source: Any) -> pd.DataFrame:
    """(customer_id, segment_kind, segment) now: a Portfolio's segments, or a store's customer_state
    (kept current by updates, sweeps and refits), else its latest segment snapshot."""
    from clientfolio.portfolio import Portfolio

    if isinstance(source, Portfolio):
        m = source.segments
    elif isinstance(source, pd.DataFrame):
        m = source
    elif isinstance(source, Store):
        m = _state_memberships(source)
        if m.empty:
            m = source.query("SELECT customer_id, segment_kind, segment FROM segment_memberships WHERE as_of = "
                             "(SELECT max(as_of) FROM segment_memberships)")
    else:
        raise HealthError(f"segment_health takes a Portfolio, a Store or a memberships frame, got "
                          f"{type(source).__name__}")
    m = m[["customer_id", "segment_kind", "segment"]].dropna().astype(str).drop_duplicates()
    if m.empty:
        raise HealthError("no segment memberships to report on: analyse the data first "
                          "(`clientfolio analyze FILE --store STORE`)")
    return m.reset_index(drop=True)


def _state_memberships(store: Store) -> pd.DataFrame:
    cols = [c for c in store.query("SELECT * FROM customer_state LIMIT 0").columns if c.startswith("seg_")]
    if not cols:
        return pd.DataFrame(columns=["customer_id", "segment_kind", "segment"])
    wide = store.query(f"SELECT customer_id, {', '.join(cols)} FROM customer_state")
    long = wide.melt(id_vars="customer_id", var_name="segment_kind", value_name="segment").dropna()
    long["segment_kind"] = long["segment_kind"].str.removeprefix("seg_")
    rules = long["segment_kind"] == "rules"
    if rules.any():  # rule segments: a JSON list of the rule segments a customer is in
        r = long[rules].copy()
        r["segment"] = r["segment"].map(lambda t: json.loads(t) if isinstance(t, str) else [])
        long = pd.concat([long[~rules], r.explode("segment").dropna()], ignore_index=True)
    return long


# -------------------------------------------------------------------------------- overlap

def segment_overlap(memberships: pd.DataFrame) -> pd.DataFrame:
    """Every pair of segments (both ways, each with itself too): members in both, share of A's members
    also in B, and Jaccard (both over either)."""
    from scipy import sparse

    m = memberships[["customer_id", "segment_kind", "segment"]].drop_duplicates()
    cust, cust_keys = pd.factorize(m["customer_id"])
    seg_key = list(zip(m["segment_kind"], m["segment"]))
    seg, seg_keys = pd.factorize(pd.Series(seg_key, dtype=object))
    if len(seg_keys) > MAX_OVERLAP_SEGMENTS:
        raise HealthError(f"{len(seg_keys):,} segments: too many to compare pairwise (at most "
                          f"{MAX_OVERLAP_SEGMENTS:,}); pass fewer segment kinds")
    mat = sparse.csr_matrix((np.ones(len(m)), (cust, seg)), shape=(len(cust_keys), len(seg_keys)))
    both = (mat.T @ mat).toarray()
    size = np.diag(both)
    a, b = np.meshgrid(np.arange(len(seg_keys)), np.arange(len(seg_keys)), indexing="ij")
    a, b = a.ravel(), b.ravel()
    inter = both[a, b]
    keys = list(seg_keys)
    return pd.DataFrame({
        "kind_a": [keys[i][0] for i in a], "segment_a": [keys[i][1] for i in a],
        "kind_b": [keys[i][0] for i in b], "segment_b": [keys[i][1] for i in b],
        "both": inter.astype(int), "share_of_a": inter / size[a], "share_of_b": inter / size[b],
        "jaccard": inter / (size[a] + size[b] - inter),
    })


# ------------------------------------------------------------------------------ stability

def refit_stability(store: Store, sizes: pd.DataFrame) -> pd.DataFrame:
    """Per segment, the share of its members who stayed in it at the latest refit (and the mean over refits).

    The size just before refit j is today's size less the entries plus the exits logged since
    (changes under state j or later); who left at refit j is in the change log with cause
    'refit'.  A refit that moved nobody leaves no rows, so refits are read from the stored
    states (every state after the first was adopted as a refit).
    """
    states = store.query("SELECT state_id, created_at FROM portfolio_states ORDER BY state_id")
    cols = ["segment_kind", "segment", "stability", "stability_mean", "refits", "refit_at"]
    if len(states) < 2:
        return pd.DataFrame(columns=cols)
    refits = states.iloc[1:]
    moves = store.query("SELECT state_id, cause, segment_kind, from_segment, to_segment, count(*) AS n "
                        "FROM segment_changes GROUP BY state_id, cause, segment_kind, from_segment, to_segment")
    moves = moves[moves["state_id"] >= int(refits["state_id"].min())]
    rows = []
    now = sizes.set_index(["segment_kind", "segment"])["customers"]
    for (kind, seg), size_now in now.items():
        leave = moves[(moves["segment_kind"] == kind) & (moves["from_segment"] == seg)]
        enter = moves[(moves["segment_kind"] == kind) & (moves["to_segment"] == seg)]
        shares = []
        for sid in refits["state_id"]:
            since_in = int(enter.loc[enter["state_id"] >= sid, "n"].sum())
            since_out = int(leave.loc[leave["state_id"] >= sid, "n"].sum())
            before = size_now - since_in + since_out
            left = int(leave.loc[(leave["state_id"] == sid) & (leave["cause"] == "refit"), "n"].sum())
            shares.append((before - left) / before if before > 0 else np.nan)
        rows.append({"segment_kind": kind, "segment": seg, "stability": shares[-1],
                     "stability_mean": float(np.nanmean(shares)) if np.isfinite(shares).any() else np.nan,
                     "refits": len(shares), "refit_at": pd.Timestamp(refits["created_at"].iloc[-1])})
    return pd.DataFrame(rows, columns=cols)


def snapshot_stability(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per segment of `before`: the share of its members in the same segment in `after`."""
    b = before[["customer_id", "segment_kind", "segment"]].drop_duplicates()
    a = after[["customer_id", "segment_kind", "segment"]].drop_duplicates().assign(stayed=True)
    j = b.merge(a, on=["customer_id", "segment_kind", "segment"], how="left")
    j["stayed"] = j["stayed"].fillna(False).astype(bool)
    return j.groupby(["segment_kind", "segment"])["stayed"].mean().rename("stability").reset_index()


def _snapshots(source: Any) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    from clientfolio.portfolio import Portfolio

    if isinstance(source, Portfolio):
        if source.previous_segments is None or source.previous_as_of is None:
            return None
        return (source.previous_segments, source.segments,
                f"between {pd.Timestamp(source.previous_as_of):%d %b %Y} and {pd.Timestamp(source.as_of):%d %b %Y} "
                "under one fitted state (behaviour and time, no refit)")
    if isinstance(source, Store):
        days = source.query("SELECT DISTINCT as_of FROM segment_memberships ORDER BY as_of DESC LIMIT 2")["as_of"]
        if len(days) < 2:
            return None
        snap = source.query("SELECT customer_id, segment_kind, segment, as_of FROM segment_memberships "
                            "WHERE as_of IN (?, ?)", [pd.Timestamp(days.iloc[1]).to_pydatetime(),
                                                      pd.Timestamp(days.iloc[0]).to_pydatetime()])
        old, new = pd.Timestamp(days.iloc[1]), pd.Timestamp(days.iloc[0])
        return (snap[snap["as_of"] == old], snap[snap["as_of"] == new],
                f"between the snapshots of {old:%d %b %Y} and {new:%d %b %Y} (behaviour and time)")
    return None


# -------------------------------------------------------------------------------- actions

def actions_from_triggers(store: Store) -> set[tuple[str, str]]:
    """(kind, segment) pairs that a stored trigger subscription acts on (entry or exit)."""
    text = store.get_meta("triggers")
    if not text:
        return set()
    return {(str(t["segment_kind"]), str(t["segment"])) for t in json.loads(text)}


def _action_check(has_action: HasAction) -> Callable[[str, str], bool] | None:
    if has_action is None:
        return None
    if callable(has_action):
        return has_action
    known = {(str(k).casefold(), str(s).casefold()) for k, s in has_action}
    return lambda kind, seg: (kind.casefold(), seg.casefold()) in known


# --------------------------------------------------------------------------------- health

def segment_health(portfolio_or_store: Any, has_action: HasAction = None, *,
                   kinds: Collection[str] | None = None) -> pd.DataFrame:
    """One row per segment: size, largest overlap with another kind, stability, action, warnings.

    Parameters
    ----------
    portfolio_or_store : Portfolio, Store or memberships frame
        Where the segments come from (a store: its current customers; stability from its change log).
    has_action : callable (kind, segment) -> bool, or a set of (kind, segment), optional
        Which segments have an action attached (a tailored playbook, a trigger).  None: not checked.
    kinds : optional
        Only these segment kinds.

    Columns: segment_kind, segment, customers, share_of_kind, overlap_kind, overlap_segment,
    overlap_jaccard, overlap_share (share of this segment's members also in that one),
    stability (share who stayed), stability_basis (what it compares), refits, has_action,
    warnings (a list of plain sentences).
    """
    m = current_memberships(portfolio_or_store)
    if kinds is not None:
        m = m[m["segment_kind"].isin(list(kinds))]
        if m.empty:
            raise HealthError(f"no segments of the kinds {', '.join(kinds)}")
    sizes = m.groupby(["segment_kind", "segment"]).size().rename("customers").reset_index()
    per_kind = m.groupby("segment_kind")["customer_id"].nunique()
    sizes["share_of_kind"] = sizes["customers"] / sizes["segment_kind"].map(per_kind)
    ov = segment_overlap(m)
    ov = ov[ov["kind_a"] != ov["kind_b"]].sort_values(["jaccard", "share_of_a"], ascending=False)
    best = ov.drop_duplicates(["kind_a", "segment_a"]).rename(columns={
        "kind_a": "segment_kind", "segment_a": "segment", "kind_b": "overlap_kind", "segment_b": "overlap_segment",
        "jaccard": "overlap_jaccard", "share_of_a": "overlap_share"})
    t = sizes.merge(best[["segment_kind", "segment", "overlap_kind", "overlap_segment", "overlap_jaccard",
                          "overlap_share"]], on=["segment_kind", "segment"], how="left")
    t = _with_stability(t, portfolio_or_store)
    check = _action_check(has_action)
    t["has_action"] = pd.Series([bool(check(k, s)) if check else None for k, s in zip(t["segment_kind"], t["segment"])],
                                index=t.index, dtype=object)  # True / False, or None: not checked
    t["warnings"] = [_warnings(r) for r in t.itertuples(index=False)]
    return t.sort_values(["segment_kind", "customers"], ascending=[True, False]).reset_index(drop=True)


def _with_stability(t: pd.DataFrame, source: Any) -> pd.DataFrame:
    t = t.assign(stability=np.nan, stability_basis="no refit or earlier snapshot to compare with", refits=0)
    if isinstance(source, Store):
        st = refit_stability(source, t)
        if len(st):
            at = pd.Timestamp(st["refit_at"].iloc[0])
            t = t.drop(columns=["stability", "refits"]).merge(st[["segment_kind", "segment", "stability", "refits"]],
                                                             on=["segment_kind", "segment"], how="left")
            t["stability_basis"] = f"share of members who stayed at the latest refit ({at:%d %b %Y})"
            return t
    snap = _snapshots(source)
    if snap is not None:
        before, after, basis = snap
        st = snapshot_stability(before, after)
        t = t.drop(columns=["stability"]).merge(st, on=["segment_kind", "segment"], how="left")
        t["stability_basis"] = "share of the earlier members still in it, " + basis
    return t


def _warnings(r: Any) -> list[str]:
    out = []
    name = f"'{r.segment}' ({r.segment_kind}, {r.customers:,} customers)"
    if r.has_action is not None and not r.has_action:
        out.append(f"{name} has no action attached: give it a playbook, or fold it into a segment that has one")
    if r.customers < MIN_SIZE:
        out.append(f"{name} is too small to judge on its own (fewer than {MIN_SIZE}): results and stability "
                   "figures for it are mostly noise")
    if pd.notna(r.stability) and r.stability < UNSTABLE and r.customers >= MIN_SIZE and r.refits:
        out.append(f"{name}: only {r.stability:.0%} of its members stayed at the latest refit; membership follows "
                   "where the lines fall more than what customers do")
    if r.share_of_kind >= NEAR_ALL and r.customers >= MIN_SIZE:
        out.append(f"{name} holds {r.share_of_kind:.0%} of the customers of its kind: it hardly tells customers "
                   "apart, so an action for it is an action for nearly everyone")
    elif pd.notna(r.overlap_jaccard) and r.overlap_jaccard >= DUPLICATE:
        out.append(f"{name} is almost the same customers as '{r.overlap_segment}' ({r.overlap_kind}; Jaccard "
                   f"{r.overlap_jaccard:.2f}): one action for both is enough")
    return out


def health_findings(table: pd.DataFrame, limit: int = 30) -> list[str]:
    """The warnings of a :func:`segment_health` table as plain sentences, largest segments first."""
    t = table.sort_values("customers", ascending=False)
    lines = [w for ws in t["warnings"] for w in ws]
    if t["has_action"].isna().all():
        lines.append("Which segments have an action attached was not checked (no playbooks or triggers given).")
    more = len(lines) - limit
    return lines[:limit] + ([f"... and {more} more warnings"] if more > 0 else [])
