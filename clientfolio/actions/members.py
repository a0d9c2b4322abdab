"""Who is in which segment now, read from a store: what playbooks count and exports select.

The current membership is the living portfolio's `customer_state` (one column ``seg_<kind>``
per kind, kept current by `update` and `sweep`; rule segments are a JSON list in ``seg_rules``).
A store without it (analysed before the living portfolio) falls back to the newest snapshot in
`segment_memberships`.
"""

from __future__ import annotations

import json

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.live.kinds import kind_label, segment_label
from clientfolio.store.base import Store

SEG = "seg_"
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
