"""The array helpers give exactly what the NumPy functions they stand in for give."""
from __future__ import annotations

import numpy as np

from clientfolio.core.arrays import isclose, nan_to


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(0.0, 1e3, n)
    v[rng.random(n) < 0.2] = np.nan
    v[rng.random(n) < 0.05] = np.inf
    v[rng.random(n) < 0.05] = -np.inf
    return v


def test_nan_to_is_nan_to_num() -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 50):
        v = _values(rng, n)
        assert np.array_equal(nan_to(v, 0.0), np.nan_to_num(v, nan=0.0))
        assert np.array_equal(nan_to(v, 1.0), np.nan_to_num(v, nan=1.0))
        assert np.array_equal(nan_to(v, 0.0, keep_inf=True), np.nan_to_num(v, nan=0.0, posinf=np.inf, neginf=-np.inf))
    assert nan_to(np.array([np.inf]), 0.0)[0] == np.finfo(float).max  # as nan_to_num: the largest finite number


def test_isclose_is_numpys() -> None:
    rng = np.random.default_rng(2)
    a = _values(rng, 400)
    b = np.where(rng.random(400) < 0.5, a * (1 + rng.normal(0, 1e-9, 400)), _values(rng, 400))
    b[:5] = a[:5]  # equal, infinities included
    for rtol in (1e-9, 1e-3):
        assert np.array_equal(isclose(a, b, rtol), np.isclose(a, b, rtol=rtol, atol=0.0))
