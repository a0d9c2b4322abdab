"""Latency of a one-customer live update (commit_live) and the cost of replacing customer_state.

Fills customer_state with N customers x 60 columns (40 float, 10 int, 5 text, 3 time, 1 bool,
and the id), then times K single-event commits: one full state row, one change, one outbox
message, one event key and one meta value, as the per-event updater writes them.

    python benchmarks/live_store.py --store /tmp/live.duckdb
    python benchmarks/live_store.py --store postgresql://clientfolio:clientfolio@127.0.0.1:5432/clientfolio_test
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import numpy as np
import pandas as pd

from clientfolio.store import open_store


def state_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"customer_id": [f"C{i:08d}" for i in rng.permutation(n)]}
    cols.update({f"f{j}": rng.random(n) for j in range(40)})
    cols.update({f"i{j}": rng.integers(0, 1000, n) for j in range(10)})
    cols.update({f"s{j}": rng.choice(["champions", "loyal", "at_risk", "lost", "new"], n) for j in range(5)})
    cols.update({f"t{j}": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s")
                 for j in range(3)})
    cols["b0"] = rng.random(n) < 0.5
    return pd.DataFrame(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="a DuckDB file path or a postgresql:// URL (tables are replaced)")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--commits", type=int, default=500)
    args = ap.parse_args()

    df = state_frame(args.customers)
    with open_store(args.store) as st:
        t = time.perf_counter()
        st.replace_customer_state(df)
        replace_s = time.perf_counter() - t
        sid = st.save_state({"cutoff": pd.Timestamp("2024-06-30"), "format": 1, "reason": "analyze"}, "{}")
        rng = np.random.default_rng(1)
        picks = rng.integers(0, len(df), args.commits)
        lat, reads = [], []
        run = uuid.uuid4().hex[:6]
        for k, i in enumerate(picks):
            row = df.iloc[[i]].reset_index(drop=True).assign(f0=rng.random())
            cid = row["customer_id"].iloc[0]
            changes = pd.DataFrame({"customer_id": [cid], "segment_kind": ["rfm"], "from_segment": ["loyal"],
                                    "to_segment": ["champions"], "changed_at": [pd.Timestamp("2024-07-01")],
                                    "cause": ["behaviour"], "reason": ["ordered again"], "state_id": [sid],
                                    "event_key": [f"{run}-{k}"]})
            outbox = pd.DataFrame({"change_id": [0], "customer_id": [cid], "segment_kind": ["rfm"],
                                   "segment": ["champions"], "transition": ["entered"], "action": ["webhook"],
                                   "payload": ['{"customer": "%s"}' % cid]})
            t = time.perf_counter()
            st.commit_live(state_rows=row, changes=changes, outbox=outbox, event_keys=[f"{run}-{k}"],
                           meta={"last_event": f"{run}-{k}"})
            lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            st.read_customer_state([cid])
            reads.append(time.perf_counter() - t)
        ms = np.array(lat) * 1000
        rd = np.array(reads) * 1000
        print(json.dumps({
            "store": st.kind, "customers": args.customers, "columns": df.shape[1], "commits": args.commits,
            "replace_customer_state_s": round(replace_s, 2),
            "commit_live_ms": {"p50": round(float(np.percentile(ms, 50)), 2),
                               "p99": round(float(np.percentile(ms, 99)), 2), "max": round(float(ms.max()), 2)},
            "read_one_customer_ms": {"p50": round(float(np.percentile(rd, 50)), 2),
                                     "p99": round(float(np.percentile(rd, 99)), 2)},
        }))


if __name__ == "__main__":
    main()
