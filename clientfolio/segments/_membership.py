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
    ids, seg = customer_id.to_numpy(), segment.astype("string")
    # pandas 2: "str" is NumPy's text (missing would become "<NA>"); and objects that are all missing (or none)
    # make an object column, not a text one: those keep the object route
    seg = seg.astype("str").array if _TEXT_IS_STRING and seg.notna().any() else seg.to_numpy()
    if _TEXT_IS_STRING and isinstance(customer_id.dtype, pd.StringDtype) and customer_id.notna().any():
        ids = customer_id.array
    return pd.DataFrame({
        "customer_id": ids,
        "segment_kind": kind,
        "segment": seg,
        "as_of": pd.Timestamp(as_of) if as_of is not None else pd.NaT,
    })


def column_values(s: pd.Series):
    """The values of `s` to put into another frame's column: what ``s.to_numpy()`` gives there, without turning a
    text column into Python objects and back (pandas 3's text arrays are handed over as they are)."""
    if _TEXT_IS_STRING and isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is not pd.NA and s.notna().any():
        return s.array
    return s.to_numpy()


def as_of_of(df: pd.DataFrame, as_of):
    """The snapshot date: given, else the summary's cut-off."""
    return as_of if as_of is not None else df.attrs.get("cutoff")
