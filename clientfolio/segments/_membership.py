"""The one shape every segmenter returns: (customer_id, segment_kind, segment, as_of)."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["customer_id", "segment_kind", "segment", "as_of"]


def membership(customer_id: pd.Series, kind: str, segment: pd.Series, as_of) -> pd.DataFrame:
    """A membership table for one segment kind (one row per customer)."""
    return pd.DataFrame({
        "customer_id": customer_id.to_numpy(),
        "segment_kind": kind,
        "segment": segment.astype("string").to_numpy(),
        "as_of": pd.Timestamp(as_of) if as_of is not None else pd.NaT,
    })


def as_of_of(df: pd.DataFrame, as_of):
    """The snapshot date: given, else the summary's cut-off."""
    return as_of if as_of is not None else df.attrs.get("cutoff")
