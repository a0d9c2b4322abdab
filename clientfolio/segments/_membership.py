"""The one shape every segmenter returns: (customer_id, segment_kind, segment, as_of)."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["customer_id", "segment_kind", "segment", "as_of"]
# pandas 3: "str" is pandas' own text dtype (missing as NaN), the dtype a frame gives text columns
_TEXT_IS_STRING = isinstance(pd.Series(["a"], dtype="str").dtype, pd.StringDtype)


def membership(customer_id: pd.Series, kind: str, segment: pd.Series, as_of) -> pd.DataFrame:
    """A membership table for one segment kind (one row per customer).

    Text columns are handed over as pandas' text arrays, not as Python objects that the frame would
    turn back into text (~15 ms a kind at 87k customers); the values and dtypes are the same."""
    if _TEXT_IS_STRING:
        ids = customer_id.array if isinstance(customer_id.dtype, pd.StringDtype) else customer_id.to_numpy()
        seg = segment.astype("string").astype("str").array
    else:  # pandas 2: "str" is NumPy's text (missing would become "<NA>"); objects as they were
        ids, seg = customer_id.to_numpy(), segment.astype("string").to_numpy()
    return pd.DataFrame({
        "customer_id": ids,
        "segment_kind": kind,
        "segment": seg,
        "as_of": pd.Timestamp(as_of) if as_of is not None else pd.NaT,
    })


def as_of_of(df: pd.DataFrame, as_of):
    """The snapshot date: given, else the summary's cut-off."""
    return as_of if as_of is not None else df.attrs.get("cutoff")
