"""The Pareto/NBD series for one row (Python floats) gives bit for bit what the array loop gives that row."""
from __future__ import annotations

import numpy as np

from clientfolio.models import ParetoNBD
from clientfolio.models import _integrals as integrals


def _rows(rng: np.random.Generator, n: int):
    for i in range(n):
        small = rng.uniform(0.1, 200.0, 1)
        big = small + rng.uniform(0.0, 300.0, 1)
        p, q = rng.uniform(0.05, 30.0, 1), rng.uniform(0.05, 10.0, 1)
        rho = rng.uniform(0.0, 0.999, 1) if i % 3 else rng.uniform(0.95, 1.0, 1)
        yield small, big, p, q, rho


def test_one_row_equals_the_array_loop() -> None:
    rng = np.random.default_rng(7)
    took = 0
    for small, big, p, q, rho in _rows(rng, 1500):
        one, done1 = integrals._log_j_series(small, big, p, q, rho, 0)
        two, done2 = integrals._log_j_series(*(np.repeat(v, 2) for v in (small, big, p, q, rho)), 0)
        assert done1[0] == done2[0]
        assert np.array_equal(one[0], two[0][:1], equal_nan=True)
        took += integrals._one_row_sum(p, q, rho, p + q - 1.0) is not None
    assert took > 1400  # the rows went through the scalar sum, not back to the arrays


def test_slow_and_unreadable_rows_are_left_to_the_array_loop() -> None:
    one = np.array([1.0])
    assert integrals._one_row_sum(one, one, np.array([np.nan]), one) is None
    assert integrals._one_row_sum(one, one, np.array([np.inf]), one) is None
    # rho next to 1 and tiny P: no convergence within the terms: NaN (quadrature), as the array loop says
    got = integrals._one_row_sum(np.array([0.05]), np.array([0.05]), np.array([0.99999]), np.array([-0.9]))
    res, done = integrals._log_j_series(np.repeat(1.0, 2), np.repeat(1e5, 2), np.repeat(0.05, 2),
                                        np.repeat(0.05, 2), np.repeat(0.99999, 2), 0)
    assert (got is not None and got != got) == (not done[0])


def test_p_alive_one_customer_equals_in_a_batch() -> None:
    m = ParetoNBD()
    m.params_ = {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}
    rng = np.random.default_rng(3)
    x = rng.integers(0, 30, 200).astype(float)
    t_ = rng.uniform(1.0, 100.0, 200)
    tx = np.where(x > 0, t_ * rng.uniform(0.0, 1.0, 200), 0.0)
    batch = m._alive(x, tx, t_)
    for i in range(200):
        assert m._alive(x[i:i + 1], tx[i:i + 1], t_[i:i + 1])[0] == batch[i]
