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
        # more rows than the scalar path takes: the array loop
        two, done2 = integrals._log_j_series(*(np.repeat(v, integrals._FEW_ROWS + 1) for v in (small, big, p, q, rho)), 0)
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
    k = integrals._FEW_ROWS + 1
    res, done = integrals._log_j_series(np.repeat(1.0, k), np.repeat(1e5, k), np.repeat(0.05, k),
                                        np.repeat(0.05, k), np.repeat(0.99999, k), 0)
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


def test_a_few_customers_p_alive_equals_their_rows_in_a_batch() -> None:
    """Up to a few rows, both integrals of P(alive) go through one call and the scalar series: still each
    row's own value, bit for bit (also for rows that need quadrature: tiny exponents, rho next to 1)."""
    rng = np.random.default_rng(11)
    for params in ({"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}, {"r": 2.1, "alpha": 3.0, "s": 0.05, "beta": 40.0},
                   {"r": 0.02, "alpha": 0.5, "s": 0.03, "beta": 300.0}):
        m = ParetoNBD()
        m.params_ = params
        x = rng.integers(0, 40, 300).astype(float)
        t_ = rng.uniform(0.05, 150.0, 300)
        tx = np.where(x > 0, t_ * rng.uniform(0.0, 1.0, 300), 0.0)
        batch = m._alive(x, tx, t_)
        for k in (2, 3, 5):
            for i in range(0, 240, k):
                assert np.array_equal(m._alive(x[i:i + k], tx[i:i + k], t_[i:i + k]), batch[i:i + k])


def test_series_cost_is_the_first_checkpoint_that_is_enough() -> None:
    """The checkpoints taken in one broadcast give what checking them one by one gives."""
    rng = np.random.default_rng(5)
    n = 3000
    p = rng.uniform(0.001, 60.0, n)
    q = rng.uniform(0.01, 5.0, n)
    rho = np.where(rng.random(n) < 0.3, 1.0 - 10.0 ** -rng.uniform(0.0, 12.0, n), rng.random(n))
    a1 = p + q
    lr = np.log(np.maximum(rho, 1e-300))
    want = np.full(n, np.inf)
    for k in integrals._SERIES_CHECKS[::-1]:
        bound = k * lr - p * np.log1p(k / a1) + np.log(integrals._series_tail(p, a1 - 1.0 + k, rho))
        want = np.where(bound < -39.0, float(k), want)
    assert np.array_equal(integrals._series_cost(p, q, rho), want)
    assert np.isfinite(want).any() and np.isinf(want).any()
