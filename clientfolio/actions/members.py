"""Who is in a segment: the current members (customer_state) or those of a stored snapshot.

Experiments, goals and budget advice all start from "the customers in At Risk".  The living
portfolio keeps each customer's current segment per kind in customer_state (`seg_<kind>`); the
snapshots of every analysis are in segment_memberships.  Current members come from the former;
members at an earlier date from the latest snapshot on or before it.
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store

SEG = "seg_"  # prefix of the segment columns in customer_state (as clientfolio.live writes them)


class SegmentNotFound(ClientfolioError):
    """A segment kind or segment the store does not have."""


def segment_kinds(store: Store) -> list[str]:
    """The segment kinds the store knows (current state first, else the snapshots)."""
    cols = [c[len(SEG):] for c in store.customer_state_columns() if c.startswith(SEG)]
    if cols:
        return sorted(cols)
    df = store.query("SELECT DISTINCT segment_kind FROM segment_memberships ORDER BY segment_kind")
    return [str(k) for k in df["segment_kind"]]


def _state_has(store: Store, kind: str) -> bool:
    return SEG + kind in store.customer_state_columns()


def current_segments(store: Store, kind: str) -> pd.DataFrame:
    """customer_id, segment for every customer's current segment of `kind` (rule segments: one row each)."""
    if _state_has(store, kind):
        df = store.query(f"SELECT customer_id, {SEG}{kind} AS segment FROM customer_state "
                         f"WHERE {SEG}{kind} IS NOT NULL ORDER BY customer_id")
        if kind == "rules":  # a JSON list per customer
            rows = [(c, s) for c, v in zip(df["customer_id"], df["segment"]) for s in json.loads(v or "[]")]
            df = pd.DataFrame(rows, columns=["customer_id", "segment"])
        return df.astype({"customer_id": str, "segment": str})
    snap = snapshot_segments(store, kind, None)
    return snap


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
