"""Percentiles against a fitted reference are the same from the arrays kept per reference as made anew."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from clientfolio.segments.value import percentile_of, percentile_reference


def _check(ref: dict, values: np.ndarray) -> None:
    first = percentile_of(values, ref)
    again = percentile_of(values, ref)  # from the kept arrays
    fresh = percentile_of(values, copy.deepcopy(ref))  # another reference: made anew
    for got in (again, fresh):
        assert np.array_equal(got, first, equal_nan=True)
    for one, want in zip(values, first):  # one customer at a time, as a per-event update scores
        assert np.array_equal(percentile_of(np.array([one]), ref), np.array([want]), equal_nan=True)


def test_exact_and_grid_references() -> None:
    rng = np.random.default_rng(5)
    exact = percentile_reference(pd.Series(rng.integers(0, 50, 500).astype(float)))
    grid = percentile_reference(pd.Series(rng.lognormal(3.0, 1.0, 20000)))
    assert "values" in exact and "grid" in grid
    probe = np.concatenate([rng.integers(-2, 55, 40).astype(float), rng.lognormal(3.0, 1.0, 40),
                            [np.nan, np.inf, 0.0, 12.5, 12.500000000000002]])
    _check(exact, probe)
    _check(grid, probe)


def test_a_reference_given_new_lists_is_read_again() -> None:
    ref = percentile_reference(pd.Series(np.arange(10.0)))
    before = percentile_of(np.array([4.0]), ref)
    ref["values"], ref["counts"] = [100.0, 200.0], [1, 1]
    ref["n"] = 2
    after = percentile_of(np.array([4.0]), ref)
    assert after[0] != before[0] and after[0] == 0.25
