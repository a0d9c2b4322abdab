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
    pd.Series([1.0, np.nan, 3.0]), pd.Series([1, None, 2], dtype="Int64"), pd.Series([True, False, True])])
@pytest.mark.parametrize("ids", [pd.Series(["C1", "C2", "C3"], dtype="str"), pd.Series(["C1", "C2", "C3"], dtype=object),
                                 pd.Series([7, 8, 9])])
def test_membership_is_what_the_object_route_gives(ids: pd.Series, segment: pd.Series) -> None:
    got = membership(ids, "lifecycle", segment, "2024-12-30")
    pd.testing.assert_frame_equal(got, _by_objects(ids, "lifecycle", segment, "2024-12-30"), check_exact=True)
    assert got["segment"].isna().sum() == segment.isna().sum()  # missing stays missing, never the text "<NA>"
