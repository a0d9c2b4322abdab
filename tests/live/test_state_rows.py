"""customer_state rows built for a whole base: the segment columns equal a plain pivot of the memberships."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from clientfolio.live.portfolio import FEW, SEG, segment_columns


def _memberships(n: int, seed: int) -> tuple[pd.DataFrame, pd.Index]:
    """Memberships with every awkward case: a kind given twice for one customer (the first counts), missing
    segments, members who are not among the ids, ids without memberships, rule segments (a JSON list)."""
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"c{i:05d}" for i in range(n)], name="customer_id").astype(str)
    rows = []
    for kind, names in (("lifecycle", ["new", "active", "at_risk"]), ("rfm", ["Champions", "Lost"]),
                        ("value_tier", ["top", "mid", None])):
        who = rng.choice(n + 20, size=n, replace=True)  # repeats: a second membership of the same kind
        for w in who:
            rows.append((f"c{w:05d}", kind, names[rng.integers(len(names))]))
    for w in rng.choice(n, size=n // 3):
        rows.append((f"c{w:05d}", "rules", f"rule{rng.integers(3)}"))
    seg = pd.DataFrame(rows, columns=["customer_id", "segment_kind", "segment"])
    for c in seg.columns:
        seg[c] = seg[c].astype(pd.Series(["a"]).dtype)
    seg["as_of"] = pd.Timestamp("2024-06-30")
    return seg, ids


def _pivot(segments: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    single = segments[segments["segment_kind"] != "rules"].drop_duplicates(["customer_id", "segment_kind"])
    out = pd.DataFrame(index=ids)
    for kind in sorted(single["segment_kind"].unique()):
        part = single[single["segment_kind"] == kind].set_index("customer_id")["segment"]
        col = part.reindex(ids).to_numpy(dtype=object)
        col[pd.isna(col)] = np.nan
        out[SEG + kind] = col
    rules = segments[segments["segment_kind"] == "rules"]
    lists = rules.groupby("customer_id")["segment"].agg(lambda s: json.dumps(sorted(map(str, s))))
    out[SEG + "rules"] = lists.reindex(ids).fillna("[]").to_numpy()
    return out


def test_segment_columns_of_a_whole_base_equal_a_pivot() -> None:
    segments, ids = _memberships(3000, seed=5)
    assert len(ids) > FEW  # the bulk path, not the few-customer one
    got = segment_columns(segments, ids)
    want = _pivot(segments, ids)
    pd.testing.assert_frame_equal(got, want)
    assert got[SEG + "value_tier"].isna().any() and got[SEG + "lifecycle"].isna().any()
    # ids given as objects (not the frame's text dtype) go the general way to the same result
    pd.testing.assert_frame_equal(segment_columns(segments, pd.Index(ids.to_numpy(dtype=object), name="customer_id")),
                                  want, check_index_type=False)
