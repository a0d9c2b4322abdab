"""Log-space evaluation of the Pareto/NBD integral, its gradient and its Hessian.

The Pareto/NBD likelihood (Fader & Hardie 2005, note 008, eq. 3) contains
Gauss hypergeometric terms ``2F1(r+s+x, s+1; r+s+x+1; z)`` that overflow and
lose precision when evaluated directly (large ``x``, ``z`` near 1), and whose
difference cancels when ``t_x`` is close to ``T``.  We write the likelihood as
a sum of two *positive* integrals instead (see ``paretonbd_loglik``)::

    J(t; alpha, beta, p, q) = integral from t to infinity of
                              (alpha + y)^(-p) * (beta + y)^(-q) dy

With ``m <= M`` the two bases at ``t`` (``min/max(alpha, beta) + t``), ``P`` and ``Q``
their exponents, ``A = P + Q - 1`` and ``rho = 1 - m/M`` in [0, 1), substituting
``m + y = m / (1 - u)`` gives Euler's integral of a hypergeometric function::

    J = m^(1-P) M^(-Q) / A * 2F1(1, Q; A+1; rho)
      = m^(1-P) M^(-Q) / A * sum_n (Q)_n / (A+1)_n rho^n

-- the Pfaff/Euler transform of FH05's term whose argument stays in [0, 1) in every parameter
region.  Its terms are positive and fall at every step (no cancellation); the tail after term
``n`` is below ``c_n (A+n)/(P-1)``, so it needs few terms unless ``P`` is small *and* ``rho``
is close to 1.  Those rows (a small exponent on a base much smaller than the other: in a
fitted shop, the first few purchase counts at small ``t``) go to double-exponential
quadrature of the integral in log space.  Both paths give ``log J`` with its first and
second derivatives in ``alpha, beta, p, q``, vectorised over rows.

Against 40-digit mpmath the series path's relative error is ~1e-15 and the quadrature's below
2e-8 (tests/models/test_paretonbd_evaluation.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

_SERIES_MAX_TERMS = 400
_SERIES_REL_TOL = 2e-17
_SERIES_CHECKS = (16, 40, 100, 250, 400)
_CHECKS = np.array(_SERIES_CHECKS, dtype=float)
_FEW_ROWS = 8  # up to this many rows, the series is summed row by row in Python floats (`_one_row_sum`)
_SERIES_COMPACT = 0.2  # converged rows leave the loop when they are this share of the rows still in it
_QUAD_CHUNK = 512

# Double-exponential (tanh-sinh / exp-sinh) abscissae in the index variable.
_DE_H = 1.0 / 16.0
_TAU_EXP = np.arange(-4.5, 3.2 + 1e-12, _DE_H)   # exp-sinh on (0, inf)
_TAU_TANH = np.arange(-4.5, 4.5 + 1e-12, _DE_H)  # tanh-sinh on (0, 1)

# Hessian entries, in this order, of the variables (alpha, beta, p, q) = (0, 1, 2, 3).
HESSIAN_PAIRS = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))


def log_j(
    t: Array, alpha: float | Array, beta: float | Array, p: Array | float, q: Array | float
) -> tuple[Array, Array, Array, Array, Array]:
    """Return ``log J`` and its derivatives ``d/dalpha, d/dbeta, d/dp, d/dq``.

    ``t, p, q`` are arrays of equal length (``t >= 0``, ``p + q > 1``); ``alpha, beta > 0`` are
    scalars or one value per row (the covariate models give every customer their own).
    Derivatives are of ``log J``.
    """
    val, grad, _ = log_j_derivatives(t, alpha, beta, p, q, order=1)
    assert grad is not None
    return val, grad[0], grad[1], grad[2], grad[3]


def log_j_derivatives(
    t: Array, alpha: float | Array, beta: float | Array, p: Array | float, q: Array | float, order: int = 2
) -> tuple[Array, list[Array] | None, list[Array] | None]:
    """``log J``; for ``order >= 1`` its gradient in ``(alpha, beta, p, q)`` (4 arrays); for
    ``order == 2`` its Hessian as the 10 arrays of `HESSIAN_PAIRS`.

    ``alpha`` and ``beta`` are scalars or one value per row."""
    return _log_j_rows(t, alpha, beta, p, q, order)


def _log_j_rows(
    t: Array, alpha: float | Array, beta: float | Array, p: Array | float, q: Array | float, order: int
) -> tuple[Array, list[Array] | None, list[Array] | None]:
    """`log_j_derivatives` with ``alpha`` and ``beta`` per row (scalars are broadcast): the rows are split
    by which of the two is smaller, and each part goes through the same series/quadrature with its
    bases per row (the ordering decides the orientation of the series)."""
    t = np.asarray(t, dtype=float)
    alpha, beta, p, q = (np.broadcast_to(np.asarray(v, dtype=float), t.shape) for v in (alpha, beta, p, q))
    n = t.shape[0]
    n_out = 1 + (4 if order >= 1 else 0) + (10 if order >= 2 else 0)
    out = [np.empty(n) for _ in range(n_out)]
    alpha_small = alpha <= beta
    for flag in (True, False):
        part = np.flatnonzero(alpha_small == flag)
        if not part.size:
            continue
        m, big_b = (alpha[part], beta[part]) if flag else (beta[part], alpha[part])
        p_small, q_big = (p[part], q[part]) if flag else (q[part], p[part])
        res = _log_j_internal(t[part], m, big_b, p_small, q_big, order)
        if flag and part.size == n:  # one part, in the variables' own order: no reshuffling
            return res[0], (res[1:5] if order >= 1 else None), (res[5:] if order >= 2 else None)
        perm = (0, 1, 2, 3) if flag else (1, 0, 3, 2)
        mapped = [res[0]]
        if order >= 1:
            mapped += [res[1 + perm[i]] for i in range(4)]
        if order >= 2:
            h_int = {pair: arr for pair, arr in zip(HESSIAN_PAIRS, res[5:], strict=True)}
            mapped += [h_int[tuple(sorted((perm[i], perm[j])))] for i, j in HESSIAN_PAIRS]  # type: ignore[index]
        for o, r in zip(out, mapped, strict=True):
            o[part] = r
    if order == 0:
        return out[0], None, None
    return out[0], out[1:5], (out[5:] if order >= 2 else None)


def _log_j_internal(t: Array, m: Array, big_b: Array, p_small: Array, q_big: Array, order: int) -> list[Array]:
    """``log J`` with derivatives in the internal variables ``(m, M, P, Q)`` (``m <= M`` per row)."""
    n = t.shape[0]
    small, big = m + t, big_b + t
    rho = (big_b - m) / big
    n_out = 1 + (4 if order >= 1 else 0) + (10 if order >= 2 else 0)
    out = [np.empty(n) for _ in range(n_out)]
    cost = _series_cost(p_small, q_big, rho)
    pending = np.ones(n, dtype=bool)
    idx = np.flatnonzero(cost <= _SERIES_MAX_TERMS)
    if idx.size:
        res, ok = _log_j_series(small[idx], big[idx], p_small[idx], q_big[idx], rho[idx], order)
        if idx.size == n and ok.all():  # every row by the series
            return res
        done = idx[ok]
        for o, r in zip(out, res, strict=True):
            o[done] = r[ok]
        pending[done] = False
    idx = np.flatnonzero(pending)
    for lo in range(0, idx.size, _QUAD_CHUNK):
        part = idx[lo : lo + _QUAD_CHUNK]
        res = _log_j_quad(t[part], m[part], big_b[part], p_small[part], q_big[part], order)
        for o, r in zip(out, res, strict=True):
            o[part] = r
    return out


def _series_tail(p_small: Array, a_n: Array, rho: Array) -> Array:
    """Bound on (sum of the terms from ``n`` on) / ``c_n``.

    The term ratio ``(Q+k)/(A+1+k) rho`` rises towards ``rho``, so the tail is below
    ``c_n/(1-rho)``; and since ``sum_{j>=n} Gamma(Q+j)/Gamma(Q+P+j) = Gamma(Q+n)/((P-1)
    Gamma(Q+P+n-1))``, also below ``c_n (A+n)/(P-1)`` when ``P > 1``.
    """
    by_rho = 1.0 / np.maximum(1.0 - rho, 1e-300)
    by_p = np.where(p_small > 1.0, a_n / np.maximum(p_small - 1.0, 1e-300), np.inf)
    return np.minimum(by_rho, by_p)


def _series_cost(p_small: Array, q_big: Array, rho: Array) -> Array:
    """Terms the series needs (an upper bound from a few checkpoints; inf past the cap).

    Uses ``log c_n <= n log rho - P log(1 + n/(A+1))``.
    """
    a1 = (p_small + q_big)[:, None]
    lr = np.log(np.maximum(rho, 1e-300))[:, None]
    n = _CHECKS[None, :]
    # every checkpoint at once (rows x checkpoints): the same elementwise operations as one pass per checkpoint
    bound = n * lr - p_small[:, None] * np.log1p(n / a1) + np.log(_series_tail(p_small[:, None], a1 - 1.0 + n,
                                                                             rho[:, None]))
    ok = bound < -39.0
    return np.where(ok.any(axis=1), _CHECKS[ok.argmax(axis=1)], np.inf)  # the first checkpoint that is enough


def _log_j_series(
    small: Array, big: Array, p_small: Array, q_big: Array, rho: Array, order: int
) -> tuple[list[Array], NDArray[np.bool_]]:
    """``log J = (1-P) log m - Q log M - log A + log S``, ``S = sum_n c_n``, ``c_n = (Q)_n/(A+1)_n rho^n``.

    Sums ``S`` with its derivatives in ``P, Q, rho`` (first, and second for ``order == 2``)
    term by term, dropping rows as they converge.  Returns ``log J``, its gradient in
    ``(m, M, P, Q)`` and the Hessian (`HESSIAN_PAIRS` order) by ``order``, and the rows that
    converged.
    """
    a = p_small + q_big - 1.0
    n_rows = rho.shape[0]
    n_acc = 1 + (3 if order >= 1 else 0) + (7 if order >= 2 else 0)
    few = [_one_row_sum(p_small[i:i + 1], q_big[i:i + 1], rho[i:i + 1], a[i:i + 1]) for i in range(n_rows)] \
        if order == 0 and n_rows <= _FEW_ROWS else [None]
    if None not in few:  # a few rows (a per-event update): the same sums in Python floats, no array calls per term
        res = [np.array([v if v == v else 0.0 for v in few])]
        done = np.array([v == v for v in few], dtype=bool)
        return _log_j_from_sums(res, done, small, big, p_small, q_big, a, order)
    res = [np.zeros(n_rows) for _ in range(n_acc)]
    done = np.zeros(n_rows, dtype=bool)
    active = np.arange(n_rows)
    acc = [np.ones(n_rows)] + [np.zeros(n_rows) for _ in range(n_acc - 1)]
    # Q is usually one value for every row (s or s+1 in the Pareto/NBD): its running sums are then
    # scalars, which saves a third of the array operations per term
    q_one = bool(n_rows) and q_big.min() == q_big.max()
    qa: Array | float = float(q_big[0]) if q_one else q_big.copy()
    h_q: Array | float = 0.0 if q_one else np.zeros(n_rows)     # sum_{k<n} 1/(Q+k)
    h2_q: Array | float = 0.0 if q_one else np.zeros(n_rows)    # sum_{k<n} 1/(Q+k)^2
    c = np.ones(n_rows)          # c_n
    u = np.zeros(n_rows)         # c_n / rho  (0 at n = 0: its coefficient n is 0)
    h_a = np.zeros(n_rows)       # sum_{k<n} 1/(A+1+k)    = -d log c_n / dP
    h2_a = np.zeros(n_rows)      # sum_{k<n} 1/(A+1+k)^2
    pa, ra = p_small, rho
    ak = a + 1.0                 # A + 1 + k
    ia, ratio, v, t1, t2, t3, dq = (np.empty(n_rows) for _ in range(7))
    recorded = np.zeros(n_rows, dtype=bool)  # per row still in the loop: its sums are taken
    for k in range(_SERIES_MAX_TERMS + 8):
        np.divide(1.0, ak, out=ia)
        qk = qa + k
        np.multiply(ia, qk, out=ratio)              # (Q+k)/(A+1+k)
        if order >= 2:
            np.multiply(u, ratio, out=v)            # c_{k+1} / rho^2
        np.multiply(c, ratio, out=u)                # c_{k+1} / rho
        np.multiply(u, ra, out=c)                   # c_{k+1}
        n_k = k + 1.0
        acc[0] += c
        if order >= 1:
            h_a += ia
            h_q = h_q + 1.0 / qk
            dl_q = np.subtract(h_q, h_a, out=dq)    # d log c / dQ; d log c / dP = -h_a
            np.multiply(c, h_a, out=t1)             # c h_a
            acc[1] -= t1
            np.multiply(c, dl_q, out=t2)            # c dl_q
            acc[2] += t2
            if order >= 2:
                np.multiply(ia, ia, out=t3)
                h2_a += t3
                h2_q = h2_q + 1.0 / (qk * qk)
                # d2c/dP2 = c (h_a^2 + h2_a); d2c/dPdQ = c (-h_a dl_q + h2_a); d2c/dQ2 = c (dl_q^2 + h2_a - h2_q);
                # the sum of c h2_a they share is accumulated once (acc[10]) and added after the loop
                np.multiply(c, h2_a, out=t3)
                acc[10] += t3
                np.multiply(t1, h_a, out=t3)
                acc[4] += t3
                np.multiply(t1, dl_q, out=t3)
                acc[5] -= t3
                np.multiply(t2, dl_q, out=t3)
                acc[6] += t3
                np.multiply(c, h2_q, out=t3)
                acc[6] -= t3
                np.multiply(u, n_k, out=t3)         # n c_n / rho
                acc[3] += t3
                np.multiply(t3, h_a, out=t1)
                acc[7] -= t1                        # d2 c / dP drho
                np.multiply(t3, dl_q, out=t1)
                acc[8] += t1                        # d2 c / dQ drho
                v *= n_k * k
                acc[9] += v                         # d2 c / drho2
            else:
                acc[3] += u * n_k                   # d c / drho
        ak += 1.0
        if k % 8 != 7:
            continue
        conv = c * _series_tail(pa, ak - 1.0, ra) <= _SERIES_REL_TOL * acc[0]
        new = conv & ~recorded
        if new.any():  # a row's sums are taken where it first converges, whatever the other rows
            rows = active[new]
            for r_, a_ in zip(res, acc, strict=True):
                r_[rows] = a_[new]
            done[rows] = True
            recorded |= new
        n_rec = int(np.count_nonzero(recorded))
        if n_rec == recorded.size:
            break
        if n_rec < _SERIES_COMPACT * recorded.size:
            # too few rows done to be worth copying the others out: the done ones ride along
            continue
        keep = ~recorded
        active = active[keep]
        acc = [a_[keep] for a_ in acc]
        c, u, h_a, h2_a, pa, ra, ak = (w[keep] for w in (c, u, h_a, h2_a, pa, ra, ak))
        if not q_one:
            qa, h_q, h2_q = (w[keep] for w in (qa, h_q, h2_q))  # type: ignore[index]
        recorded = np.zeros(active.size, dtype=bool)
        ia, ratio, v, t1, t2, t3, dq = (np.empty(active.size) for _ in range(7))
    if order >= 2:
        for j in (4, 5, 6):
            res[j] += res[10]
    return _log_j_from_sums(res, done, small, big, p_small, q_big, a, order)


def _one_row_sum(p_small: Array, q_big: Array, rho: Array, a: Array) -> float | None:
    """`_log_j_series`'s ``S`` (order 0) for one row, term by term in Python floats: the same operations in
    the same order as the array loop, so the same IEEE results; NaN when the series does not converge
    within its terms (the row then goes to quadrature), None when an input is not finite or an operation
    would raise (the array loop then decides)."""
    pa, qa, ra, ak = float(p_small[0]), float(q_big[0]), float(rho[0]), float(a[0]) + 1.0
    if not all(math.isfinite(v) for v in (pa, qa, ra, ak)):
        return None
    c, acc = 1.0, 1.0
    tol = _SERIES_REL_TOL
    try:
        for k in range(_SERIES_MAX_TERMS + 8):
            ia = 1.0 / ak
            u = c * (ia * (qa + k))
            c = u * ra
            acc += c
            ak += 1.0
            if k % 8 != 7:
                continue
            a_n = ak - 1.0
            by_rho = 1.0 / max(1.0 - ra, 1e-300)
            by_p = a_n / max(pa - 1.0, 1e-300) if pa > 1.0 else math.inf
            tail = by_p if by_p < by_rho else by_rho
            if not (math.isfinite(c) and math.isfinite(acc) and tail == tail):
                return None
            if c * tail <= tol * acc:
                return acc
    except ArithmeticError:
        return None
    return math.nan


def _log_j_from_sums(res: list[Array], done: NDArray[np.bool_], small: Array, big: Array, p_small: Array,
                     q_big: Array, a: Array, order: int) -> tuple[list[Array], NDArray[np.bool_]]:
    """`_log_j_series`'s result from its sums (``S`` and its derivatives) and the rows that converged."""
    s = np.where(done, res[0], 1.0)
    log_m, log_big = np.log(small), np.log(big)
    inv_a = 1.0 / a
    out = [(1.0 - p_small) * log_m - q_big * log_big - np.log(a) + np.log(s)]
    if order == 0:
        return out, done
    l_p, l_q, l_r = res[1] / s, res[2] / s, res[3] / s
    r_m, r_big = -1.0 / big, small / big**2          # d rho / dm, d rho / dM
    out += [
        (1.0 - p_small) / small + l_r * r_m,
        -q_big / big + l_r * r_big,
        -log_m - inv_a + l_p,
        -log_big - inv_a + l_q,
    ]
    if order == 1:
        return out, done
    l_pp, l_pq, l_qq = res[4] / s - l_p * l_p, res[5] / s - l_p * l_q, res[6] / s - l_q * l_q
    l_pr, l_qr, l_rr = res[7] / s - l_p * l_r, res[8] / s - l_q * l_r, res[9] / s - l_r * l_r
    inv_a2 = inv_a * inv_a
    out += [
        -(1.0 - p_small) / small**2 + l_rr * r_m * r_m,            # m m
        l_rr * r_m * r_big + l_r / big**2,                         # m M
        -1.0 / small + l_pr * r_m,                                 # m P
        l_qr * r_m,                                                # m Q
        q_big / big**2 + l_rr * r_big * r_big - 2.0 * l_r * small / big**3,  # M M
        l_pr * r_big,                                              # M P
        -1.0 / big + l_qr * r_big,                                 # M Q
        inv_a2 + l_pp,                                             # P P
        inv_a2 + l_pq,                                             # P Q
        inv_a2 + l_qq,                                             # Q Q
    ]
    return out, done


def _log_j_quadrature(
    t: Array, alpha: float, beta: float, p: Array, q: Array
) -> tuple[Array, Array, Array, Array, Array]:
    """``log J`` and its gradient in ``(alpha, beta, p, q)`` by quadrature alone (a reference)."""
    alpha_small = alpha <= beta
    m, big = (alpha, beta) if alpha_small else (beta, alpha)
    p_small, q_big = (p, q) if alpha_small else (q, p)
    val, d_m, d_big, d_p, d_q = _log_j_quad(t, m, big, p_small, q_big, 1)
    if alpha_small:
        return val, d_m, d_big, d_p, d_q
    return val, d_big, d_m, d_q, d_p


def _log_j_quad(t: Array, m: float | Array, big: float | Array, small_p: Array, big_p: Array,
                order: int) -> list[Array]:
    """Quadrature path, for rows where the series converges slowly.

    With ``c = m + t``, ``delta = (M - m)/c`` and ``m + y = c e^v`` (``M`` the larger base)::

        J = c^-A * integral_0^inf exp(g(v)) dv,  g(v) = (1-P) v - Q log(e^v + delta)

    where ``P`` is the exponent on the smaller base and ``Q`` on the other.  ``g`` is
    concave, with slope ``1-P-Q/(1+delta)`` at 0 turning to ``-A`` past the knee
    ``v = log(delta)``.  The range is split at the knee (tanh-sinh before, exp-sinh after),
    each rule scaled to where its mass lies, which keeps the double-exponential rules at
    full accuracy.  Derivatives of ``log J`` are moments of the normalised integrand.
    Returns value, gradient in ``(m, M, P, Q)`` and Hessian, by ``order``.
    """
    a = small_p + big_p - 1.0
    c = m + t
    delta = (big - m) / c
    with np.errstate(divide="ignore"):
        knee = np.maximum(np.log(delta), 0.0)
    slope0 = small_p - 1.0 + big_p / (1.0 + delta)      # -g'(0)
    slope_knee = small_p - 1.0 + big_p * delta / (np.exp(knee) + delta)  # -g'(knee)
    # Mass far before the knee: one exp-sinh rule from 0 scaled by 1/slope0.
    early = slope0 * knee > 50.0
    start = np.where(early, 0.0, knee)
    rate = np.where(early, slope0, slope_knee)
    # Past the knee the decay rate rises from `rate` to A; if it is still
    # rising there, the mode lies at log((1-P)/A) beyond it.
    mode = np.log(np.maximum((1.0 - small_p) / a, 1.0))
    scale = np.where(rate >= 0.25 * a, 2.0 / (rate + a), mode + 1.0 / a)
    two_parts = (~early) & (knee > 0.0)

    n_mom = 1 + (4 if order >= 1 else 0) + (10 if order >= 2 else 0)
    mom = [np.empty_like(t) for _ in range(n_mom)]
    for rows, use_tanh in ((np.flatnonzero(two_parts), True), (np.flatnonzero(~two_parts), False)):
        if not rows.size:
            continue
        v = start[rows, None] + scale[rows, None] * _ES_X[None, :]
        lw = np.log(scale[rows])[:, None] + _ES_LW[None, :]
        if use_tanh:
            kr = knee[rows, None]
            v = np.concatenate([kr * _TS_X[None, :], v], axis=1)
            lw = np.concatenate([np.log(kr) + _TS_LW[None, :], lw], axis=1)
        for o, r in zip(mom, _de_sums(v, lw, small_p[rows], big_p[rows], delta[rows], order), strict=True):
            o[rows] = r
    log_c = np.log(c)
    out = [-a * log_c + mom[0]]
    if order == 0:
        return out
    # moments of x_a = c/(m+y), x_b = c/(M+y), l_a = log((m+y)/c), l_b = log((M+y)/c)
    e_a, e_b, e_la, e_lb = mom[1:5]
    out += [-small_p * e_a / c, -big_p * e_b / c, -(log_c + e_la), -(log_c + e_lb)]
    if order == 1:
        return out
    e_aa, e_ab, e_bb, e_ala, e_alb, e_bla, e_blb, e_lala, e_lalb, e_lblb = mom[5:]
    c2 = c * c
    out += [
        small_p * e_aa / c2 + small_p**2 * (e_aa - e_a * e_a) / c2,    # m m
        small_p * big_p * (e_ab - e_a * e_b) / c2,                     # m M
        -e_a / c + small_p * (e_ala - e_a * e_la) / c,                 # m P
        small_p * (e_alb - e_a * e_lb) / c,                            # m Q
        big_p * e_bb / c2 + big_p**2 * (e_bb - e_b * e_b) / c2,        # M M
        big_p * (e_bla - e_b * e_la) / c,                              # M P
        -e_b / c + big_p * (e_blb - e_b * e_lb) / c,                   # M Q
        e_lala - e_la * e_la,                                          # P P
        e_lalb - e_la * e_lb,                                          # P Q
        e_lblb - e_lb * e_lb,                                          # Q Q
    ]
    return out


def _de_sums(v: Array, lw: Array, small_p: Array, big_p: Array, delta: Array, order: int) -> list[Array]:
    """log of sum exp(g(v) + lw) over nodes, and the weighted moments the derivatives need."""
    ev = np.exp(-v)
    dev = delta[:, None] * ev
    log_big = v + np.log1p(dev)                               # log(e^v + delta)
    ell = (1.0 - small_p)[:, None] * v - big_p[:, None] * log_big + lw
    top = ell.max(axis=1)
    wgt = np.exp(ell - top[:, None])
    total = wgt.sum(axis=1)
    wgt /= total[:, None]
    out = [top + np.log(total)]
    if order == 0:
        return out

    def mean(x: Array) -> Array:
        return np.einsum("ij,ij->i", wgt, x)

    x_b = ev / (1.0 + dev)
    out += [mean(ev), mean(x_b), mean(v), mean(log_big)]
    if order >= 2:
        out += [mean(ev * ev), mean(ev * x_b), mean(x_b * x_b), mean(ev * v), mean(ev * log_big),
                mean(x_b * v), mean(x_b * log_big), mean(v * v), mean(v * log_big), mean(log_big * log_big)]
    return out


# Double-exponential nodes (abscissae and log weights) on (0, 1) and (0, inf).
_TS_E = np.exp(0.5 * np.pi * np.sinh(_TAU_TANH))
_TS_X = 1.0 / (1.0 + 1.0 / _TS_E)
_TS_S = 0.5 * np.pi * np.sinh(_TAU_TANH)
# log of h (pi/2) cosh(tau) x (1 - x), with x (1 - x) = e^s / (1 + e^s)^2
_TS_LW = np.log(_DE_H * 0.5 * np.pi * np.cosh(_TAU_TANH)) + _TS_S - 2.0 * np.logaddexp(0.0, _TS_S)
_ES_X = np.exp(0.5 * np.pi * np.sinh(_TAU_EXP))
_ES_LW = np.log(_DE_H * 0.5 * np.pi * np.cosh(_TAU_EXP) * _ES_X)
