"""The membership table: the same values and dtypes as building it from Python objects (the old, slower route)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.segments._membership import membership


def _by_objects(customer_id: pd.Series, kind: str, segment: pd.Series, as_of) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": customer_id.to_numpy(), "segment_kind": kind,
                         "segment": segment.astype("string").to_numpy(),
                         "as_of": pd.Timestamp(as_of) if as_of is not None else pd.NaT})


@pytest.mark.parametrize("segment", [
    pd.Series(["Champions", None, "At risk"], dtype="str"), pd.Series(["a", None, "b"], dtype=object),
    pd.Series(["a", pd.NA, "b"], dtype="string"), pd.Series(pd.Categorical(["x", None, "y"])),
    pd.Series([1.0, np.nan, 3.0]), pd.Series([1, None, 2], dtype="Int64"), pd.Series([True, False, True]),
    pd.Series([None, None, None], dtype=object), pd.Series([np.nan] * 3, dtype="str")])
@pytest.mark.parametrize("ids", [pd.Series(["C1", "C2", "C3"], dtype="str"), pd.Series(["C1", "C2", "C3"], dtype=object),
                                 pd.Series([7, 8, 9])])
def test_membership_is_what_the_object_route_gives(ids: pd.Series, segment: pd.Series) -> None:
    got = membership(ids, "lifecycle", segment, "2024-12-30")
    pd.testing.assert_frame_equal(got, _by_objects(ids, "lifecycle", segment, "2024-12-30"), check_exact=True)
    assert got["segment"].isna().sum() == segment.isna().sum()  # missing stays missing, never the text "<NA>"


def test_an_empty_membership_is_what_the_object_route_gives() -> None:
    ids, seg = pd.Series([], dtype="str"), pd.Series([], dtype="str")
    pd.testing.assert_frame_equal(membership(ids, "rfm", seg, None), _by_objects(ids, "rfm", seg, None), check_exact=True)


@pytest.mark.parametrize("values", [pd.Series(["a", None, "b"], dtype="str"), pd.Series([None, None], dtype="str"),
                                    pd.Series([], dtype="str"), pd.Series(["a", pd.NA], dtype="string"),
                                    pd.Series([1.5, np.nan]), pd.Series(["x", None], dtype=object)])
def test_column_values_make_the_column_to_numpy_makes(values: pd.Series) -> None:
    """A column set from column_values has the values and dtype of one set from to_numpy (text stays text,
    all-missing text stays what pandas infers from objects)."""
    from clientfolio.segments._membership import column_values

    a, b = pd.DataFrame(index=values.index), pd.DataFrame(index=values.index)
    a["v"], b["v"] = column_values(values), values.to_numpy()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
