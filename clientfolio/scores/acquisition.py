"""CLV:CAC per acquisition channel: is each channel bringing customers worth what they cost?

CAC (customer acquisition cost) of a channel comes from the marketing-spend table when it
has the channel (spend in the channel / customers acquired through it while the spend ran),
otherwise from the customers' own ``acquisition_cost``.  A ratio of 3:1 or more is commonly
called healthy in SMB strategy literature (REFERENCE.md); the table says so per channel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HEALTHY_RATIO = 3.0


def clv_to_cac(scores: pd.DataFrame, customers: pd.DataFrame,
               marketing_spend: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per acquisition channel: customers, mean CLV, CAC, CLV:CAC and a health flag.

    `scores` needs ``customer_id, clv``; `customers` ``customer_id, acquisition_channel`` and
    optionally ``acquisition_cost`` and ``first_seen``; `marketing_spend` ``channel,
    period_start, period_end, spend``.
    """
    if "acquisition_channel" not in customers or customers["acquisition_channel"].isna().all():
        return pd.DataFrame(columns=["channel", "customers", "mean_clv", "cac", "clv_cac", "healthy", "cac_source"])
    df = scores[["customer_id", "clv"]].merge(customers, on="customer_id", how="inner")
    df = df[df["acquisition_channel"].notna()]
    rows = []
    spend = marketing_spend if marketing_spend is not None and len(marketing_spend) else None
    for channel, grp in df.groupby("acquisition_channel", sort=True):
        cac, source = np.nan, ""
        if spend is not None and channel in set(spend["channel"]):
            ch = spend[spend["channel"] == channel]
            start, end = pd.Timestamp(ch["period_start"].min()), pd.Timestamp(ch["period_end"].max())
            if "first_seen" in grp and grp["first_seen"].notna().any():
                seen = pd.to_datetime(grp["first_seen"])
                n = int(((seen >= start) & (seen <= end + pd.Timedelta(days=1))).sum())
            else:
                n = len(grp)
            if n:
                cac, source = float(ch["spend"].sum()) / n, "marketing spend / customers acquired"
        if np.isnan(cac) and "acquisition_cost" in grp and grp["acquisition_cost"].notna().any():
            cac, source = float(grp["acquisition_cost"].mean()), "customers' acquisition cost"
        mean_clv = float(grp["clv"].mean())
        ratio = mean_clv / cac if cac and cac > 0 else np.nan
        rows.append({"channel": channel, "customers": len(grp), "mean_clv": mean_clv, "cac": cac,
                     "clv_cac": ratio, "healthy": bool(ratio >= HEALTHY_RATIO) if np.isfinite(ratio) else None,
                     "cac_source": source or "no cost recorded (organic)"})
    return pd.DataFrame(rows).sort_values("clv_cac", ascending=False, na_position="last").reset_index(drop=True)


def customer_cac(customers: pd.DataFrame, by_channel: pd.DataFrame) -> pd.Series:
    """Each customer's acquisition cost: their own, else their channel's CAC (NaN if neither)."""
    return pd.Series(cac_array(customers, cac_lookup(by_channel)), index=customers.index)


def cac_lookup(by_channel: pd.DataFrame | None) -> dict | None:
    """The CAC table as {channel: cac} (None when there is none)."""
    if by_channel is None or by_channel.empty:
        return None
    return dict(zip(by_channel["channel"].tolist(), by_channel["cac"].astype(float).tolist()))


def cac_array(cols, lookup: dict | None) -> np.ndarray:
    """Each customer's acquisition cost from columns (a frame or a dict of arrays): their own, else their
    channel's from `lookup` (:func:`cac_lookup`), NaN if neither."""
    n = len(cols["customer_id"])
    if "acquisition_cost" in cols:
        own = cols["acquisition_cost"]
        own = (own.to_numpy(dtype="float64", na_value=np.nan) if hasattr(own, "to_numpy")
               else np.array([np.nan if v is None else v for v in own], dtype=float))
    else:
        own = np.full(n, np.nan)
    if lookup is None or "acquisition_channel" not in cols:
        return own
    channel = cols["acquisition_channel"]
    channel = channel.tolist() if hasattr(channel, "tolist") else list(channel)
    by = np.array([lookup.get(c, np.nan) if isinstance(c, str) or c is not None and c == c else np.nan
                   for c in channel], dtype=float)
    return np.where(np.isnan(own), by, own)


def clv_to_cac_by_segment(customers: pd.DataFrame, memberships: pd.DataFrame, cac: pd.Series,
                          kinds: tuple[str, ...] = ("portfolio", "value_tier", "lifecycle", "rfm")) -> pd.DataFrame:
    """Mean CLV over mean acquisition cost per segment, for customers whose acquisition cost is known."""
    c = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), "clv": customers["clv"].to_numpy(),
                      "cac": cac.to_numpy()})
    m = memberships[memberships["segment_kind"].isin(kinds)].merge(c, on="customer_id")
    m = m[m["cac"].notna() & (m["cac"] > 0)]
    if m.empty:
        return pd.DataFrame(columns=["segment_kind", "segment", "customers_with_cac", "mean_clv", "mean_cac",
                                     "clv_cac", "healthy"])
    t = m.groupby(["segment_kind", "segment"]).agg(customers_with_cac=("customer_id", "size"), mean_clv=("clv", "mean"),
                                                   mean_cac=("cac", "mean")).reset_index()
    t["clv_cac"] = t["mean_clv"] / t["mean_cac"]
    t["healthy"] = t["clv_cac"] >= HEALTHY_RATIO
    return t
