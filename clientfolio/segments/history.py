"""Segments over time: migration between two snapshots, a Markov forecast, KPIs per segment.

The Markov forecast assumes customers keep moving between segments as they did between the
two snapshots (the transition matrix) and that no new customers arrive; it says so.
"""

from __future__ import annotations

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


def segment_kpis(customers: pd.DataFrame, memberships: pd.DataFrame, previous: pd.DataFrame | None = None,
                 previous_customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per segment: size and growth, retention, CLV and its change, AOV, revenue, engagement, NPS."""
    measures = (("revenue", "revenue", "sum"), ("aov", "aov", "mean"), ("clv", "mean_clv", "mean"),
                ("p_alive", "mean_p_alive", "mean"), ("email_click_rate", "email_click_rate", "mean"),
                ("nps", "nps", "mean"), ("avg_rating", "avg_rating", "mean"))
    have = [col for col, _, _ in measures if col in customers]
    # Join only the measured columns: the membership table has a row per customer and segment kind.
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
        stay = previous.merge(memberships, on=["customer_id", "segment_kind"], suffixes=("_before", ""))
        stay = stay[stay["segment_before"] == stay["segment"]].groupby(["segment_kind", "segment"]).size()
        k = k.merge(stay.rename("stayed").reset_index(), on=["segment_kind", "segment"], how="left")
        k["retention"] = k["stayed"].fillna(0) / k["customers_before"]
        if previous_customers is not None and "clv" in previous_customers and "mean_clv" in k:
            pm = previous.merge(previous_customers[["customer_id", "clv"]], on="customer_id")
            before = pm.groupby(["segment_kind", "segment"])["clv"].mean().rename("mean_clv_before")
            k = k.merge(before.reset_index(), on=["segment_kind", "segment"], how="left")
            k["clv_change"] = k["mean_clv"] - k["mean_clv_before"]
        k = k.drop(columns=["stayed"])
    return k
