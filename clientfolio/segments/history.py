"""Segments over time: migration between two snapshots, a Markov forecast, KPIs per segment.

The Markov forecast assumes customers keep moving between segments as they did between the
two snapshots (the transition matrix) and that no new customers arrive; it says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def migration_matrix(before: pd.DataFrame, after: pd.DataFrame, kind: str, normalize: bool = False) -> pd.DataFrame:
    """Customers per (segment before, segment after) for one segment kind.

    Customers only in `after` come from "(new)"; customers only in `before` go to "(gone)".
    """
    b = before[before["segment_kind"] == kind][["customer_id", "segment"]].rename(columns={"segment": "from"})
    a = after[after["segment_kind"] == kind][["customer_id", "segment"]].rename(columns={"segment": "to"})
    m = b.merge(a, on="customer_id", how="outer")
    m["from"] = m["from"].fillna("(new)")
    m["to"] = m["to"].fillna("(gone)")
    table = pd.crosstab(m["from"], m["to"])
    if normalize:
        table = table.div(table.sum(axis=1), axis=0)
    return table


def markov_forecast(before: pd.DataFrame, after: pd.DataFrame, kind: str, steps: int = 4) -> pd.DataFrame:
    """Projected segment sizes for `steps` further periods of the same length as before -> after."""
    counts = migration_matrix(before, after, kind)
    states = sorted((set(counts.index) | set(counts.columns)) - {"(new)", "(gone)"})
    p = counts.reindex(index=states, columns=states, fill_value=0).astype(float)
    rows = p.sum(axis=1)
    p = p.div(rows.where(rows > 0, 1.0), axis=0)
    for s in states:  # a segment nobody was in before keeps whoever enters it
        if rows[s] == 0:
            p.loc[s, s] = 1.0
    now = after[after["segment_kind"] == kind]["segment"].value_counts().reindex(states, fill_value=0).astype(float)
    out = [now.rename(0)]
    v = now.to_numpy()
    for k in range(1, steps + 1):
        v = v @ p.to_numpy()
        out.append(pd.Series(v, index=states, name=k))
    return pd.concat(out, axis=1)


def _codes(*columns: pd.Series) -> list[np.ndarray]:
    """Integer codes of the values of several string columns, one shared code book (hashed once)."""
    codes, _ = pd.factorize(pd.concat([c.astype(str).reset_index(drop=True) for c in columns], ignore_index=True))
    out, at = [], 0
    for c in columns:
        out.append(codes[at:at + len(c)])
        at += len(c)
    return out


def _first_row(keys: np.ndarray, of: np.ndarray, size: int) -> np.ndarray:
    """For each code in `of`: the first row of `keys` holding it (-1 where none does)."""
    where = np.full(size + 1, -1, dtype=np.intp)
    where[keys[::-1]] = np.arange(len(keys))[::-1]
    return where[of]


_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or bool(getattr(pd.options.mode, "copy_on_write", False))


def _attach(frame: pd.DataFrame, rows: pd.DataFrame, cols: list[str], pos: np.ndarray) -> pd.DataFrame:
    """`frame` with `cols` of `rows` at positions `pos` (-1: missing), as a left merge on a unique key gives."""
    # Only new columns are added: where pandas copies on write the memberships (ten rows per customer) are
    # shared, not copied (~0.5 GB fewer at a million customers).
    out = frame.reset_index(drop=True).copy(deep=not _COPY_ON_WRITE)
    found = pos >= 0
    for col in cols:
        src = rows[col]
        if found.all():
            out[col] = src.iloc[pos].to_numpy()
        else:
            out[col] = src.reindex(pd.RangeIndex(len(src))).reset_index(drop=True).reindex(
                np.where(found, pos, len(src))).to_numpy()
    return out


def segment_kpis(customers: pd.DataFrame, memberships: pd.DataFrame, previous: pd.DataFrame | None = None,
                 previous_customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per segment: size and growth, retention, CLV and its change, AOV, revenue, engagement, NPS."""
    measures = (("revenue", "revenue", "sum"), ("aov", "aov", "mean"), ("clv", "mean_clv", "mean"),
                ("p_alive", "mean_p_alive", "mean"), ("email_click_rate", "email_click_rate", "mean"),
                ("nps", "nps", "mean"), ("avg_rating", "avg_rating", "mean"))
    have = [col for col, _, _ in measures if col in customers]
    # Customers are matched on integer codes (one hash of every id) rather than string merges: the
    # membership table has a row per customer and segment kind.
    unique_ids = not customers["customer_id"].duplicated().any()
    if unique_ids:
        cust = customers.reset_index(drop=True)
        c_code, m_code = _codes(cust["customer_id"], memberships["customer_id"])
        size = int(max(c_code.max(initial=-1), m_code.max(initial=-1))) + 1
        m = _attach(memberships, cust, have, _first_row(c_code, m_code, size))
    else:
        m = memberships.merge(customers[["customer_id", *have]], on="customer_id", how="left")
    agg = {"customers": ("customer_id", "size")}
    for col, name, fn in measures:
        if col in have:
            agg[name] = (col, fn)
    k = m.groupby(["segment_kind", "segment"]).agg(**agg).reset_index()
    k["share"] = k["customers"] / k.groupby("segment_kind")["customers"].transform("sum")
    if previous is not None and len(previous):
        prev_size = previous.groupby(["segment_kind", "segment"]).size().rename("customers_before")
        k = k.merge(prev_size.reset_index(), on=["segment_kind", "segment"], how="left")
        k["growth"] = k["customers"] / k["customers_before"] - 1
        # who stayed: the same customer in the same segment of a kind, before and now
        now_id, prev_id, now_kind, prev_kind = _codes(memberships["customer_id"], previous["customer_id"],
                                                      memberships["segment_kind"], previous["segment_kind"])
        width = int(max(now_id.max(initial=-1), prev_id.max(initial=-1), now_kind.max(initial=-1),
                        prev_kind.max(initial=-1))) + 1
        now_pair = now_id.astype(np.int64) * width + now_kind
        prev_pair = prev_id.astype(np.int64) * width + prev_kind
        if pd.Series(now_pair).duplicated().any():  # a customer twice in one kind: the join, as it pairs them
            stay = previous.merge(memberships, on=["customer_id", "segment_kind"], suffixes=("_before", ""))
        else:
            both = pd.factorize(np.concatenate([prev_pair, now_pair]))[0]
            pos = _first_row(both[len(prev_pair):], both[:len(prev_pair)], int(both.max(initial=-1)) + 1)
            hit = np.flatnonzero(pos >= 0)
            stay = pd.DataFrame({"segment_kind": previous["segment_kind"].iloc[hit].reset_index(drop=True),
                                 "segment_before": previous["segment"].iloc[hit].reset_index(drop=True),
                                 "segment": memberships["segment"].iloc[pos[hit]].reset_index(drop=True)})
        stay = stay[stay["segment_before"] == stay["segment"]].groupby(["segment_kind", "segment"]).size()
        k = k.merge(stay.rename("stayed").reset_index(), on=["segment_kind", "segment"], how="left")
        k["retention"] = k["stayed"].fillna(0) / k["customers_before"]
        if previous_customers is not None and "clv" in previous_customers and "mean_clv" in k:
            if not previous_customers["customer_id"].duplicated().any():
                pc = previous_customers.reset_index(drop=True)
                pc_code, pm_code = _codes(pc["customer_id"], previous["customer_id"])
                size = int(max(pc_code.max(initial=-1), pm_code.max(initial=-1))) + 1
                pos = _first_row(pc_code, pm_code, size)
                hit = np.flatnonzero(pos >= 0)  # an inner merge: members without a customer row drop out
                pm = pd.DataFrame({"segment_kind": previous["segment_kind"].iloc[hit].reset_index(drop=True),
                                   "segment": previous["segment"].iloc[hit].reset_index(drop=True),
                                   "clv": pc["clv"].iloc[pos[hit]].reset_index(drop=True)})
            else:
                pm = previous.merge(previous_customers[["customer_id", "clv"]], on="customer_id")
            before = pm.groupby(["segment_kind", "segment"])["clv"].mean().rename("mean_clv_before")
            k = k.merge(before.reset_index(), on=["segment_kind", "segment"], how="left")
            k["clv_change"] = k["mean_clv"] - k["mean_clv_before"]
        k = k.drop(columns=["stayed"])
    return k
