"""Pareto/NBD's integral against 40-digit mpmath and against the quadrature path, in every region.

``J(t; p, q) = int_t^inf (alpha+y)^-p (beta+y)^-q dy`` is the whole numerical difficulty of the
Pareto/NBD: the fitted shop of benchmarks/_shop.py lands where beta is ~100x alpha, where the
series used before converged too slowly and quadrature took over.  Each evaluation path is checked
against an independent reference to ~1e-9 relative, and the gradient against mpmath's derivatives.
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from clientfolio.models import ParetoNBD
from clientfolio.models._base import collapse
from clientfolio.models._integrals import _log_j_quadrature, log_j
from clientfolio.models._likelihoods import (
    paretonbd_derivatives,
    paretonbd_log_bracket,
    paretonbd_loglik,
    paretonbd_loglik_sum,
)
from clientfolio.models.simulate import simulate_paretonbd

# (alpha, beta) pairs: CDNOW's published fit, the 1M-order shop's fit, its mirror image, and extremes.
REGIONS = [(10.578, 11.669), (1.505, 141.6), (141.6, 1.505), (0.02, 3000.0), (3000.0, 0.02), (5.0, 5.0)]
TIMES = [0.0, 0.3, 4.0, 39.0, 104.0]
XS = [0, 1, 2, 5, 13, 60, 400]
R_S = [(0.777, 3.654), (0.553, 0.606), (1.0, 2.0), (2.4, 0.15)]  # integer r and s included


def _mp_log_j(t: float, alpha: float, beta: float, p: float, q: float) -> mpmath.mpf:
    """log J from its closed form m^(1-P) M^-Q / A * 2F1(1, Q; A+1; 1 - m/M), in 40 digits."""
    with mpmath.workdps(max(40, mpmath.mp.dps)):  # mpmath.diff raises the precision: keep it
        t, alpha, beta, p, q = (mpmath.mpf(float(v)) if not isinstance(v, mpmath.mpf) else v
                                for v in (t, alpha, beta, p, q))
        a, b = alpha + t, beta + t
        (m, pm), (big, qb) = sorted([(a, p), (b, q)], key=lambda v: v[0])
        big_a = pm + qb - 1
        rho = (big - m) / big
        return (1 - pm) * mpmath.log(m) - qb * mpmath.log(big) - mpmath.log(big_a) + mpmath.log(
            mpmath.hyp2f1(1, qb, big_a + 1, rho))


def _grid() -> np.ndarray:
    rows = []
    for (alpha, beta), t, x, (r, s) in itertools.product(REGIONS, TIMES, XS, R_S):
        rows.append((t, alpha, beta, r + x, s + 1.0))       # J(t_x) of the likelihood
        rows.append((t, alpha, beta, r + x + 1.0, s))       # J(T)
    return np.array(rows)


@pytest.fixture(scope="module")
def grid_and_reference() -> tuple[np.ndarray, np.ndarray]:
    grid = _grid()
    ref = np.array([float(_mp_log_j(*row)) for row in grid])
    return grid, ref


def _ours(grid: np.ndarray) -> np.ndarray:
    out = np.empty(len(grid))
    for (alpha, beta) in REGIONS:
        sel = (grid[:, 1] == alpha) & (grid[:, 2] == beta)
        g = grid[sel]
        out[sel] = log_j(g[:, 0], alpha, beta, g[:, 3], g[:, 4])[0]
    return out


def test_log_j_matches_mpmath_in_every_region(grid_and_reference: tuple[np.ndarray, np.ndarray]) -> None:
    grid, ref = grid_and_reference
    err = np.abs(_ours(grid) - ref)          # error in log J = relative error in J
    worst = int(np.argmax(err))
    # series rows agree to ~1e-15; the few rows left to quadrature (small exponent on a base
    # 100x smaller than the other) to ~1e-8 relative in J where log J is ~ -2000
    assert err[worst] < 2e-8, f"log J off by {err[worst]:.2e} at (t, alpha, beta, p, q) = {grid[worst]}"
    assert np.median(err) < 1e-12


def test_log_j_matches_the_quadrature_path(grid_and_reference: tuple[np.ndarray, np.ndarray]) -> None:
    """The fast series agree with the double-exponential quadrature used before where both apply."""
    grid, _ = grid_and_reference
    ours = _ours(grid)
    for (alpha, beta) in REGIONS:
        sel = (grid[:, 1] == alpha) & (grid[:, 2] == beta)
        g = grid[sel]
        with np.errstate(divide="ignore"):  # alpha == beta: the quadrature's knee is at log(0)
            quad = _log_j_quadrature(g[:, 0], alpha, beta, g[:, 3], g[:, 4])
        np.testing.assert_allclose(ours[sel], quad[0], rtol=0, atol=1e-8)


def test_log_j_gradient_matches_mpmath() -> None:
    rows = [(t, alpha, beta, r + x + dx, q)
            for (alpha, beta) in REGIONS for t in (0.0, 4.0, 104.0) for x in (0, 2, 13, 60)
            for (r, s) in R_S[:2] for dx, q in ((0.0, s + 1.0), (1.0, s))]
    g = np.array(rows)
    ours = np.column_stack([
        np.concatenate([np.atleast_1d(v) for v in log_j(g[i : i + 1, 0], g[i, 1], g[i, 2], g[i : i + 1, 3],
                                                         g[i : i + 1, 4])[1:]])
        for i in range(len(g))]).T
    with mpmath.workdps(40):
        ref = np.array([[float(mpmath.diff(lambda v, k=k: _mp_log_j(*(row[:k] + (v,) + row[k + 1 :])), row[k]))
                         for k in (1, 2, 3, 4)] for row in rows])
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-10)


def test_likelihood_and_p_alive_agree_with_mpmath_in_the_shop_region() -> None:
    """Per-customer log-likelihood and P(alive) at the 1M-order shop's fitted parameters."""
    r, alpha, s, beta = 0.777, 1.505, 3.654, 141.6
    x = np.array([0.0, 0.0, 1.0, 3.0, 12.0, 40.0, 111.0])
    tx = np.array([0.0, 0.0, 0.14, 2.0, 20.0, 60.0, 103.0])
    t_ = np.array([0.14, 90.0, 0.3, 2.1, 70.0, 61.0, 104.0])
    ll = paretonbd_loglik((r, alpha, s, beta), x, tx, t_)
    with mpmath.workdps(40):
        ref = []
        for xi, txi, ti in zip(x, tx, t_, strict=True):
            l1 = _mp_log_j(txi, alpha, beta, r + xi, s + 1)
            l2 = _mp_log_j(ti, alpha, beta, r + xi + 1, s)
            bracket = mpmath.log(s * mpmath.exp(l1) + (r + xi) * mpmath.exp(l2))
            ref.append(float(mpmath.loggamma(r + xi) - mpmath.loggamma(r) + r * mpmath.log(alpha)
                             + s * mpmath.log(beta) + bracket))
    np.testing.assert_allclose(ll, ref, rtol=1e-10)
    m = ParetoNBD.from_params({"r": r, "alpha": alpha, "s": s, "beta": beta})
    alive = m.predict_alive({"frequency": x, "recency": tx, "T": t_})
    bracket = paretonbd_log_bracket((r, alpha, s, beta), x, tx, t_)
    expected = np.exp(-(r + x) * np.log(alpha + t_) - s * np.log(beta + t_) - bracket)
    np.testing.assert_allclose(alive, np.minimum(expected, 1.0), rtol=1e-12)
    assert 0.0 < alive.min() and alive.max() <= 1.0


SHOP = {"r": 0.777, "alpha": 1.505, "s": 3.654, "beta": 141.6}  # the 1M-order shop's fitted region


def _shop_customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t_obs = (730 - rng.integers(0, 730, n)) / 7.0
    return simulate_paretonbd(SHOP, t_obs, seed=seed + 1, resolution=1 / 7)


def test_analytic_hessian_matches_differences_of_the_gradient() -> None:
    data = _shop_customers(3000, 5)
    stats = collapse({c: data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")})
    for params in (SHOP, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
                   {"r": 1.3, "alpha": 90.0, "s": 0.4, "beta": 1.2}):
        theta = np.log(list(params.values()))
        _, grad, hess = paretonbd_derivatives(theta, stats, 2)
        assert grad is not None and hess is not None
        np.testing.assert_allclose(grad, paretonbd_derivatives(theta, stats, 1)[1], rtol=1e-12)
        step = 1e-6
        def grad_at(th: np.ndarray) -> np.ndarray:
            g = paretonbd_derivatives(th, stats, 1)[1]
            assert g is not None
            return g

        fd = np.column_stack([(grad_at(theta + step * e) - grad_at(theta - step * e)) / (2 * step) for e in np.eye(4)])
        np.testing.assert_allclose(hess, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_big_fit_in_the_shop_region_reaches_the_full_data_optimum() -> None:
    """Warm start on a sample + exact Newton on all rows land where plain BFGS to 1e-12 does."""
    data = _shop_customers(80_000, 9)
    m = ParetoNBD().fit(data)
    assert m.n_distinct_ > 40_000  # the warm-started path
    stats = collapse({c: data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")})
    total = stats.total_weight

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = paretonbd_loglik_sum(theta, stats, True)
        assert grad is not None
        return -ll / total, -grad / total

    res = optimize.minimize(fun, np.log([0.553, 10.578, 0.606, 11.669]), jac=True, method="BFGS",
                            options={"gtol": 1e-12, "maxiter": 10_000})
    ref = dict(zip(("r", "alpha", "s", "beta"), np.exp(res.x), strict=True))
    for k, v in ref.items():
        assert m.params_[k] == pytest.approx(v, rel=1e-6)
    assert m.log_likelihood_ >= -res.fun * total - 1e-6


def test_log_j_with_alpha_and_beta_per_row_equals_the_scalar_evaluation() -> None:
    """Per-row (alpha, beta) -- what the covariate models pass -- give each row exactly what the
    scalar call gives it: value, gradient and Hessian, in both orientations and on both paths."""
    from clientfolio.models._integrals import log_j_derivatives

    rows = [(a, b, t, x + r, s + 1.0) for (a, b), t, x, (r, s) in itertools.product(REGIONS, TIMES, XS[:5], R_S[:2])]
    alpha, beta, t, p, q = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    val, grad, hess = log_j_derivatives(t, alpha, beta, p, q, order=2)
    assert grad is not None and hess is not None
    for (a, b), part in pd.Series(range(len(t))).groupby([alpha, beta]):
        idx = part.to_numpy()
        v1, g1, h1 = log_j_derivatives(t[idx], a, b, p[idx], q[idx], order=2)
        assert g1 is not None and h1 is not None
        np.testing.assert_allclose(val[idx], v1, rtol=1e-13)
        for got, want in zip(grad + hess, g1 + h1, strict=True):
            np.testing.assert_allclose(got[idx], want, rtol=1e-12, atol=1e-300)
    # the public five-output form, as covariates.log_j_rows uses it
    from clientfolio.models.covariates import log_j_rows

    lj = log_j_rows(t, alpha, beta, p, q)
    np.testing.assert_allclose(lj[0], val, rtol=1e-15)
    np.testing.assert_allclose(lj[2], grad[1], rtol=1e-15)
