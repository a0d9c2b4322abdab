"""Who is in which segment: now (customer_state) or at an earlier date (the stored snapshots).

Playbooks count members, exports select them, experiments, goals and budget advice start from
"the customers in At Risk".  The living portfolio keeps each customer's current segment per
kind in `customer_state` (one column ``seg_<kind>``, kept current by `update` and `sweep`; rule
segments are a JSON list in ``seg_rules``).  A store without it (analysed before the living
portfolio) falls back to the newest snapshot in `segment_memberships`; members at an earlier
date come from the latest snapshot on or before it.
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.live.kinds import kind_label, segment_label
from clientfolio.store.base import Store

SEG = "seg_"  # prefix of the segment columns in customer_state (as clientfolio.live writes them)
MEMBER_COLUMNS = ["customer_id", "segment_kind", "segment"]


class SegmentNotFound(ClientfolioError, ValueError):
    """The segment asked for is not in the store (or is in several kinds)."""


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in MEMBER_COLUMNS})


def current_members(store: Store, kind: str | None = None) -> pd.DataFrame:
    """Current memberships (customer_id, segment_kind, segment), every kind or only `kind`."""
    cols = [c for c in store.customer_state_columns() if c.startswith(SEG)] if _has_state(store) else []
    if kind is not None:
        cols = [c for c in cols if c == SEG + kind]
    if cols:
        state = store.query("SELECT customer_id, " + ", ".join(f'"{c}"' for c in cols) + " FROM customer_state")
        parts = []
        for c in cols:
            k = c.removeprefix(SEG)
            s = state[["customer_id", c]].dropna()
            if k == "rules":
                rows = [(cid, k, name) for cid, text in zip(s["customer_id"], s[c]) for name in json.loads(text or "[]")]
                parts.append(pd.DataFrame(rows, columns=MEMBER_COLUMNS))
            else:
                parts.append(pd.DataFrame({"customer_id": s["customer_id"].astype(str).to_numpy(), "segment_kind": k,
                                           "segment": s[c].astype(str).to_numpy()}))
        out = pd.concat(parts, ignore_index=True) if parts else _empty()
        return out.astype(object)
    where, params = ("AND segment_kind = ?", [kind]) if kind is not None else ("", [])
    snap = store.query("SELECT customer_id, segment_kind, segment FROM segment_memberships "
                       "WHERE as_of = (SELECT max(as_of) FROM segment_memberships) " + where, params)
    return snap.astype(object) if len(snap) else _empty()


def _has_state(store: Store) -> bool:
    try:
        return len(store.customer_state_columns()) > 1
    except Exception:  # noqa: BLE001 - a store without the living portfolio's table
        return False


def resolve_segment(members: pd.DataFrame, segment: str, kind: str | None = None) -> tuple[str, str]:
    """The (kind, exact stored name) of `segment`, matched without regard to case ("At Risk" -> "at risk").

    Without `kind`, a name held by several kinds is refused with the sizes of each, so the owner
    says which one is meant; an unknown name lists the close ones.
    """
    want = segment.strip().casefold()
    pool = members if kind is None else members[members["segment_kind"] == kind]
    if kind is not None and pool.empty:
        kinds = sorted(set(members["segment_kind"]))
        raise SegmentNotFound(f"the store has no segments of kind {kind!r}; its kinds are {', '.join(kinds)}")
    sizes = pool.groupby(["segment_kind", "segment"]).size()
    hits = [(k, s, n) for (k, s), n in sizes.items() if str(s).casefold() == want]
    if not hits:
        import difflib

        names = sorted({str(s) for s in pool["segment"]})
        close = difflib.get_close_matches(segment, names, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        where = f"of kind {kind}" if kind else "in the store"
        raise SegmentNotFound(f"no segment {segment!r} {where}{hint}; `clientfolio playbooks --store STORE` lists "
                              "every segment with its size")
    if len(hits) > 1:
        which = ", ".join(f"{kind_label(k)} ({n:,} customers: --kind {k})" for k, _, n in hits)
        raise SegmentNotFound(f"{segment!r} is a segment of several kinds: {which}; say which with --kind")
    k, s, _ = hits[0]
    return str(k), str(s)


def segment_title(kind: str, segment: str) -> str:
    """'RFM: At Risk', 'Lifecycle: At Risk' -- a segment named with its kind, as people read it."""
    return f"{kind_label(kind)}: {segment_label(kind, segment)}"


def segment_kinds(store: Store) -> list[str]:
    """The segment kinds the store knows (current state first, else the snapshots)."""
    cols = [c[len(SEG):] for c in store.customer_state_columns() if c.startswith(SEG)]
    if cols:
        return sorted(cols)
    df = store.query("SELECT DISTINCT segment_kind FROM segment_memberships ORDER BY segment_kind")
    return [str(k) for k in df["segment_kind"]]


def current_segments(store: Store, kind: str) -> pd.DataFrame:
    """customer_id, segment for every customer's current segment of `kind` (rule segments: one row each)."""
    df = current_members(store, kind)[["customer_id", "segment"]]
    return df.astype({"customer_id": str, "segment": str}).sort_values("customer_id", ignore_index=True)


def snapshot_segments(store: Store, kind: str, at: datetime | None) -> pd.DataFrame:
    """customer_id, segment from the latest stored snapshot of `kind` taken on or before `at` (any, if None)."""
    cond, params = ("", [kind]) if at is None else (" AND as_of <= ?", [kind, pd.Timestamp(at).to_pydatetime()])
    when = store.query(f"SELECT max(as_of) AS t FROM segment_memberships WHERE segment_kind = ?{cond}", params)
    t = when["t"].iloc[0] if len(when) else None
    if t is None or pd.isna(t):
        return pd.DataFrame({"customer_id": pd.Series([], dtype=str), "segment": pd.Series([], dtype=str)})
    df = store.query("SELECT customer_id, segment FROM segment_memberships WHERE segment_kind = ? AND as_of = ? "
                     "ORDER BY customer_id", [kind, pd.Timestamp(t).to_pydatetime()])
    df = df.astype({"customer_id": str, "segment": str})
    df.attrs["as_of"] = pd.Timestamp(t)
    return df


def segment_members(store: Store, kind: str, segment: str, at: datetime | None = None) -> list[str]:
    """The ids of the customers in `segment` of `kind`, sorted: now (at=None), or as of the snapshot before `at`.

    Raises SegmentNotFound naming the kinds or segments that exist when there is no such segment.
    """
    kinds = segment_kinds(store)
    if kind not in kinds:
        hint = f"use one of: {', '.join(kinds)}" if kinds else "analyse into this store first (`clientfolio analyze "\
            "--store ...`)"
        raise SegmentNotFound(f"no segment kind '{kind}' in the store; {hint}")
    df = current_segments(store, kind) if at is None else snapshot_segments(store, kind, at)
    if at is not None and df.empty:
        raise SegmentNotFound(f"no snapshot of '{kind}' segments on or before {pd.Timestamp(at):%Y-%m-%d}; "
                              "leave out the date to use the current members")
    ids = sorted(df.loc[df["segment"] == segment, "customer_id"].unique())
    if not ids:
        names = sorted(df["segment"].unique())
        raise SegmentNotFound(f"no customers in '{segment}' ({kind}); the {kind} segments are: {', '.join(names)}")
    return ids


def state_settings(store: Store) -> dict:
    """The settings of the current fitted state (currency, CLV horizon, interval, margin); {} without one."""
    loaded = store.load_state()
    if loaded is None:
        return {}
    try:
        return dict(json.loads(loaded[1]).get("settings") or {})
    except (ValueError, AttributeError):
        return {}
