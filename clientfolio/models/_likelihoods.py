"""Log-likelihoods of the customer-base models, as pure vectorised functions.

Each ``*_loglik`` function returns one value per customer (row) and cites the
equation it implements.  The ``*_loglik_sum`` variants return the weighted sum
and its gradient on the *log*-parameters; they evaluate every term once per
distinct value (of ``x``, of ``T``, of ``(x, t_x)`` ...) of a `Collapsed`
table, which is what makes fitting cost grow with distinct statistics rather
than with customers.  Both variants share the same term functions.

References
----------
FHL05   Fader, Hardie & Lee (2005), "Counting your customers the easy way: an
        alternative to the Pareto/NBD model", Marketing Science 24(2).
BDF07   Batislam, Denizel & Filiztekin (2007), "Empirical validation and
        comparison of models for customer base analysis", IJRM 24(3).
FH05    Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and
        related expressions" (note 008).
FHS10   Fader, Hardie & Shang (2010), "Customer-base analysis in a
        discrete-time noncontractual setting", Marketing Science 29(6).
FH07    Fader & Hardie (2007), "How to project customer retention", Journal of
        Interactive Marketing 21(1).
FH13    Fader & Hardie (2013), "The Gamma-Gamma model of monetary value"
        (note 025).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln, digamma, gammaln, polygamma

from clientfolio.models._base import _dot
from clientfolio.models._integrals import HESSIAN_PAIRS, log_j_derivatives

if TYPE_CHECKING:
    from clientfolio.models._base import Collapsed

Array = NDArray[np.float64]


def _arr(x: ArrayLike) -> Array:
    return np.atleast_1d(np.asarray(x, dtype=float))


def _logaddexp(a: Array, b: Array) -> Array:
    """``log(exp(a) + exp(b))`` per element, as `numpy.logaddexp` but with numpy's vectorised
    ``exp``/``log1p`` (``numpy.logaddexp`` is not vectorised: it was a tenth of a Pareto/NBD fit)."""
    top = np.maximum(a, b)
    with np.errstate(invalid="ignore"):
        out = top + np.log1p(np.exp(-np.abs(a - b)))
    bad = np.isnan(out)
    if bad.any():  # both -inf (or +inf): the larger one, as numpy.logaddexp
        out[bad] = top[bad]
    return out


# ----------------------------------------------------------------------------
# BG/NBD and MBG/NBD (shared terms)
# ----------------------------------------------------------------------------
#
# With k = 0 (BG/NBD: drop-out only after a repeat purchase) or k = 1
# (MBG/NBD: also at time 0), the individual-level likelihood integrates to
#
#   L = Gamma(r+x) alpha^r / Gamma(r) * B(a, b+x+k) / B(a, b)
#       * [ (alpha+T)^-(r+x) + [x+k > 0] a / (b+x+k-1) * (alpha+t_x)^-(r+x) ]
#
# (FHL05 eq. 6 for k = 0; BDF07 eq. 4 for k = 1).  In logs this is a term in x
# alone plus logaddexp(C3, C4), evaluated below in log space.


def bgnbd_loglik(
    params: tuple[float, float, float, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    dropout_at_zero: bool = False,
) -> Array:
    """Per-customer log-likelihood of BG/NBD (FHL05 eq. 6) or MBG/NBD (BDF07 eq. 4).

    ``params`` is ``(r, alpha, a, b)``; ``dropout_at_zero=True`` gives MBG/NBD.
    """
    r, alpha, a, b = params
    k = 1.0 if dropout_at_zero else 0.0
    x, tx, t_ = _arr(frequency), _arr(recency), _arr(T)
    x, tx, t_ = np.broadcast_arrays(x, tx, t_)
    rx = r + x
    part = (
        gammaln(rx) - gammaln(r) + r * np.log(alpha)
        + gammaln(b + x + k) - gammaln(a + b + x + k) - gammaln(b) + gammaln(a + b)
    )
    c3 = -rx * np.log(alpha + t_)
    pos = x + k > 0
    c4 = np.full_like(c3, -np.inf)
    c4[pos] = np.log(a) - np.log(b + x[pos] + k - 1.0) - rx[pos] * np.log(alpha + tx[pos])
    return part + np.logaddexp(c3, c4)


def bgnbd_loglik_sum(
    log_params: Array, stats: Collapsed, gradient: bool, *, dropout_at_zero: bool = False
) -> tuple[float, Array | None]:
    """Weighted sum of `bgnbd_loglik` over a collapsed table, with its gradient.

    Written as ``part(x) + C3 + softplus(D)``, ``D = C4 - C3``: the terms in
    ``x`` alone are evaluated once per distinct ``x``, ``C3 = -(r+x)
    log(alpha+T)`` is summed per distinct ``T``, and only the softplus term is
    per row.  Gradient on the log-parameters ``log(r, alpha, a, b)``.
    """
    ll, grad, _ = bgnbd_derivatives(log_params, stats, 1 if gradient else 0, dropout_at_zero=dropout_at_zero)
    return ll, grad


def bgnbd_derivatives(
    log_params: Array, stats: Collapsed, order: int, *, dropout_at_zero: bool = False
) -> tuple[float, Array | None, Array | None]:
    """`bgnbd_loglik_sum` with, for ``order=2``, the analytic Hessian on log-parameters."""
    r, alpha, a, b = np.exp(log_params)
    k = 1.0 if dropout_at_zero else 0.0
    d = _bgnbd_design(stats, k)
    ux, wx, total_w = d["ux"], d["wx"], d["total_w"]
    ut, utx, w_t, xw_t = d["uT"], d["utx"], d["w_T"], d["xw_T"]
    # Part in x alone (NBD and beta-geometric normalising terms) + C3 per T.
    part = (
        gammaln(r + ux) - gammaln(r) + gammaln(b + ux + k) - gammaln(a + b + ux + k)
        - gammaln(b) + gammaln(a + b)
    )
    log_t = np.log(alpha + ut)
    ll = _dot(wx, part) + total_w * r * np.log(alpha) - _dot(log_t, r * w_t + xw_t)
    # Per-value tables for the rows with x + k > 0.
    has = ux + k > 0
    bx = np.where(has, b + ux + k - 1.0, 1.0)
    tables = {
        "log_t": log_t, "log_tx": np.log(alpha + utx), "lab": np.log(a) - np.log(bx),
        "inv_t": 1.0 / (alpha + ut), "inv_tx": 1.0 / (alpha + utx), "ibx": np.where(has, 1.0 / bx, 0.0),
    }
    n1 = d["w1"].size
    if order and n1 >= 2 * _ROW_CHUNK:
        # numpy releases the GIL: two halves in two threads
        from clientfolio.models._base import _pool

        half = n1 // 2
        parts = list(_pool().map(lambda sl: _bgnbd_rows(d, tables, r, a, order, sl),
                                 [slice(0, half), slice(half, n1)]))
        rows = [sum(vals) for vals in zip(*parts, strict=True)]
    else:
        rows = list(_bgnbd_rows(d, tables, r, a, order, slice(0, n1)))
    ll += rows[0]
    if order == 0:
        return ll, None, None
    s_gap, s_dg, s_wo, s_ib = rows[1:5]
    g_r = _dot(wx, digamma(r + ux) - digamma(r)) + total_w * np.log(alpha) - _dot(log_t, w_t) + s_gap
    g_alpha = total_w * r / alpha - _dot(tables["inv_t"], r * w_t + xw_t) + s_dg
    g_a = _dot(wx, digamma(a + b) - digamma(a + b + ux + k)) + s_wo / a
    g_b = _dot(wx, digamma(b + ux + k) - digamma(a + b + ux + k) - digamma(b) + digamma(a + b)) - s_ib
    p = np.array([r, alpha, a, b])
    g = np.array([g_r, g_alpha, g_a, g_b])
    if order == 1:
        return ll, g * p, None
    # Hessian in (r, alpha, a, b): x-only part, C3 part, then softplus rows.
    t_ab = _dot(wx, polygamma(1, a + b) - polygamma(1, a + b + ux + k))
    h = np.zeros((4, 4))
    h[0, 0] = _dot(wx, polygamma(1, r + ux) - polygamma(1, r))
    h[0, 1] = total_w / alpha - _dot(tables["inv_t"], w_t)
    h[1, 1] = -total_w * r / alpha**2 + _dot(tables["inv_t"] ** 2, r * w_t + xw_t)
    h[2, 2] = t_ab
    h[2, 3] = t_ab
    h[3, 3] = _dot(wx, polygamma(1, b + ux + k) - polygamma(1, b)) + t_ab
    (v_gg, v_gd, v_g, v_gi, v_dd, v_d, v_di, v_1, v_i, v_ii, o_dg, o_dd2, o_ii) = rows[5:]
    h[0, 0] += v_gg
    h[0, 1] += v_gd + o_dg
    h[0, 2] += v_g / a
    h[0, 3] -= v_gi
    h[1, 1] += v_dd + o_dd2
    h[1, 2] += v_d / a
    h[1, 3] -= v_di
    h[2, 2] += (v_1 - s_wo) / a**2
    h[2, 3] -= v_i / a
    h[3, 3] += v_ii + o_ii
    h = np.triu(h) + np.triu(h, 1).T
    return ll, g * p, h * np.outer(p, p) + np.diag(g * p)


_ROW_CHUNK = 100_000


def _bgnbd_rows(
    d: dict[str, Array], tables: dict[str, Array], r: float, a: float, order: int, sl: slice
) -> tuple[float, ...]:
    """Sums over rows ``sl`` of softplus(D) and, by ``order``, its derivatives.

    ``D = log a - log(b+x+k-1) + (r+x) log((alpha+T)/(alpha+t_x))``; the
    gradient of ``D`` is ``(gap, (r+x) dg, 1/a, -ib)`` in ``(r, alpha, a, b)``.
    """
    w1, x1 = d["w1"][sl], d["x1"][sl]
    c_t, c_tx, c_x = d["T_code1"][sl], d["tx_code1"][sl], d["x_code1"][sl]
    rx = r + x1
    gap = tables["log_t"][c_t] - tables["log_tx"][c_tx]     # log((alpha+T)/(alpha+t_x))
    dd = tables["lab"][c_x] + rx * gap
    soft, sig = _softplus_sigmoid(dd)
    ll = _dot(w1, soft)
    if order == 0:
        return (ll,)
    wo = w1 * sig                                            # weight of "dropped out at t_x"
    it, itx = tables["inv_t"][c_t], tables["inv_tx"][c_tx]
    rdg = rx * (it - itx)                                    # dD/dalpha
    ib = tables["ibx"][c_x]                                  # -dD/db
    first = (ll, _dot(wo, gap), _dot(wo, rdg), float(wo.sum()), _dot(wo, ib))
    if order == 1:
        return first
    v = wo * (1.0 - sig)                                     # w sigma (1 - sigma)
    vg, vd, vi = v * gap, v * rdg, v * ib
    return first + (
        _dot(vg, gap), _dot(vg, rdg), float(vg.sum()), _dot(vg, ib),
        _dot(vd, rdg), float(vd.sum()), _dot(vd, ib),
        float(v.sum()), float(vi.sum()), _dot(vi, ib),
        _dot(wo, it - itx), _dot(wo * rx, itx * itx - it * it), _dot(wo * ib, ib),
    )


def _softplus_sigmoid(z: Array) -> tuple[Array, Array]:
    """``log(1 + e^z)`` and ``1 / (1 + e^-z)`` from one exponential, overflow-free."""
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)                       # e^-|z| in (0, 1]
    soft = np.log1p(e)
    soft += np.maximum(z, 0.0)
    sig = np.add(e, 1.0)
    np.divide(np.where(z >= 0.0, 1.0, e), sig, out=sig)
    return soft, sig


def _bgnbd_design(stats: Collapsed, k: float) -> dict[str, Any]:
    """Per-value weight tables and the rows with x + k > 0, cached on ``stats``."""
    key = f"bgnbd{k}"
    if key in stats.cache:
        return stats.cache[key]
    x, w = stats.values["frequency"], stats.weights
    ux, ut = stats.uniques["frequency"], stats.uniques["T"]
    c_t = stats.codes["T"]
    pos = np.flatnonzero(x + k > 0)
    d = {
        "ux": ux,
        "wx": np.bincount(stats.codes["frequency"], weights=w, minlength=ux.size),
        "uT": ut,
        "w_T": np.bincount(c_t, weights=w, minlength=ut.size),
        "xw_T": np.bincount(c_t, weights=w * x, minlength=ut.size),
        "utx": stats.uniques["recency"],
        "w1": w[pos],
        "x1": x[pos],
        "T_code1": c_t[pos],
        "tx_code1": stats.codes["recency"][pos],
        "x_code1": stats.codes["frequency"][pos],
        "total_w": stats.total_weight,
    }
    stats.cache[key] = d
    return d


# ----------------------------------------------------------------------------
# Pareto/NBD
# ----------------------------------------------------------------------------
#
# FH05 eq. (3) writes L with a difference of two 2F1 terms.  Regrouping the
# individual-level likelihood  lambda^x [mu e^{-(lambda+mu) t_x}
# + lambda e^{-(lambda+mu) T}] / (lambda+mu)  before integrating gives a sum of
# two positive integrals (no cancellation when t_x ~ T):
#
#   L = Gamma(r+x) alpha^r beta^s / Gamma(r)
#       * [ s J(t_x; r+x, s+1) + (r+x) J(T; r+x+1, s) ],
#   J(t; p, q) = int_t^inf (alpha+y)^-p (beta+y)^-q dy,
#
# which is FH05 eq. (3) after the closed form of J (a 2F1) is substituted.


def paretonbd_loglik(
    params: tuple[float, float, float, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> Array:
    """Per-customer Pareto/NBD log-likelihood (FH05 eq. 3), in stable log form.

    ``params`` is ``(r, alpha, s, beta)``.
    """
    r, alpha, s, beta = params
    x, tx, t_ = np.broadcast_arrays(_arr(frequency), _arr(recency), _arr(T))
    l1 = log_j_derivatives(tx, alpha, beta, r + x, np.full_like(x, s + 1.0), order=0)[0]
    l2 = log_j_derivatives(t_, alpha, beta, r + x + 1.0, np.full_like(x, s), order=0)[0]
    return (
        gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        + np.logaddexp(np.log(s) + l1, np.log(r + x) + l2)
    )


def paretonbd_log_bracket(
    params: tuple[float, float, float, float], x: Array, tx: Array, t_: Array
) -> Array:
    """``log[s J(t_x) + (r+x) J(T)]``: the part of the likelihood P(alive) divides by.

    ``J(t_x)`` is evaluated once per distinct ``(x, t_x)`` and ``J(T)`` once per distinct
    ``(x, T)``, so scoring a million customers costs what their distinct histories cost.
    """
    r, alpha, s, beta = params
    x, tx, t_ = np.broadcast_arrays(_arr(x), _arr(tx), _arr(t_))
    if x.size <= 4:  # a few rows (a per-event update): both integrals in one call (each row's value is its own)
        n = x.size
        both = log_j_derivatives(np.concatenate([tx, t_]), alpha, beta, np.concatenate([r + x, r + x + 1.0]),
                                 np.concatenate([np.full_like(x, s + 1.0), np.full_like(x, s)]), order=0)[0]
        return _logaddexp(np.log(s) + both[:n], np.log(r + x) + both[n:])
    c1, (x1, t1) = _distinct_pairs(x, tx)
    c2, (x2, t2) = _distinct_pairs(x, t_)
    l1 = log_j_derivatives(t1, alpha, beta, r + x1, np.full_like(x1, s + 1.0), order=0)[0]
    l2 = log_j_derivatives(t2, alpha, beta, r + x2 + 1.0, np.full_like(x2, s), order=0)[0]
    return _logaddexp(np.log(s) + l1[c1], (np.log(r + x2) + l2)[c2])


def _distinct_pairs(a: Array, b: Array) -> tuple[NDArray[np.intp], tuple[Array, Array]]:
    """Row codes into the distinct ``(a, b)`` pairs, and those pairs."""
    import pandas as pd

    if a.size < 64:
        return np.arange(a.size), (a, b)
    ca, ua = pd.factorize(a, sort=False)
    cb, ub = pd.factorize(b, sort=False)
    nb = max(len(ub), 1)
    code, key = _pairs(ca.astype(np.intp), cb.astype(np.intp), nb)
    return code, (np.asarray(ua, dtype=float)[key // nb], np.asarray(ub, dtype=float)[key % nb])


def paretonbd_loglik_sum(
    log_params: Array, stats: Collapsed, gradient: bool
) -> tuple[float, Array | None]:
    """Weighted sum of `paretonbd_loglik` with its gradient on log-parameters.

    ``J(t_x)`` is evaluated once per distinct ``(x, t_x)`` and ``J(T)`` once per
    distinct ``(x, T)``; gradient sums are aggregated by those pairs.
    """
    ll, grad, _ = paretonbd_derivatives(log_params, stats, 1 if gradient else 0)
    return ll, grad


def paretonbd_derivatives(
    log_params: Array, stats: Collapsed, order: int
) -> tuple[float, Array | None, Array | None]:
    """`paretonbd_loglik_sum` with, for ``order=2``, the analytic Hessian on log-parameters.

    Per customer ``log L = part(x) + logaddexp(g1, g2)`` with ``g1 = log s + log J(t_x)`` and
    ``g2 = log(r+x) + log J(T)``; the Hessian of the logaddexp is ``w H1 + (1-w) H2 +
    w (1-w) d d'`` (``w`` the weight of ``g1``, ``d`` the difference of the gradients).
    Parameter order ``(r, alpha, s, beta)``.
    """
    r, alpha, s, beta = np.exp(log_params)
    d = _paretonbd_design(stats)
    ux, wx, total_w = d["ux"], d["wx"], d["total_w"]
    x1, t1, x2, t2 = d["x1"], d["t1"], d["x2"], d["t2"]
    jobs = [(t1, r + x1, np.full_like(x1, s + 1.0)), (t2, r + x2 + 1.0, np.full_like(x2, s))]

    def run(job: tuple[Array, Array, Array]) -> tuple[Array, list[Array] | None, list[Array] | None]:
        return log_j_derivatives(job[0], alpha, beta, job[1], job[2], order=order)

    if x1.size + x2.size >= _PNBD_PARALLEL_PAIRS:
        # numpy releases the GIL: J(t_x) and J(T) in two threads
        from clientfolio.models._base import _pool

        (l1, gr1, he1), (l2, gr2, he2) = _pool().map(run, jobs)
    else:
        (l1, gr1, he1), (l2, gr2, he2) = (run(j) for j in jobs)
    e1 = np.log(s) + l1
    e2 = np.log(r + x2) + l2
    c1, c2, w = d["code1"], d["code2"], d["w"]
    g1, g2 = e1[c1], e2[c2]
    m = _logaddexp(g1, g2)
    ll = _dot(wx, (gammaln(r + ux) - gammaln(r)))
    ll += total_w * (r * np.log(alpha) + s * np.log(beta)) + _dot(w, m)
    if order == 0:
        return ll, None, None
    assert gr1 is not None and gr2 is not None
    omega = np.exp(g1 - m)
    w_omega = w * omega
    o1 = np.bincount(c1, weights=w_omega, minlength=x1.size)
    o2 = np.bincount(c2, weights=w - w_omega, minlength=x2.size)
    # gradients of g1, g2 per pair, in (r, alpha, s, beta); log J's are in (alpha, beta, p, q)
    inv_rx2 = 1.0 / (r + x2)
    grad1 = [gr1[2], gr1[0], 1.0 / s + gr1[3], gr1[1]]
    grad2 = [inv_rx2 + gr2[2], gr2[0], gr2[3], gr2[1]]
    g = np.array([_dot(o1, a) + _dot(o2, b) for a, b in zip(grad1, grad2, strict=True)])
    g[0] += _dot(wx, (digamma(r + ux) - digamma(r))) + total_w * np.log(alpha)
    g[1] += total_w * r / alpha
    g[2] += total_w * np.log(beta)
    g[3] += total_w * s / beta
    p = np.array([r, alpha, s, beta])
    if order == 1:
        return ll, g * p, None
    assert he1 is not None and he2 is not None
    to_jq = (2, 0, 3, 1)          # (r, alpha, s, beta) -> index in (alpha, beta, p, q)
    pos = {pair: k for k, pair in enumerate(HESSIAN_PAIRS)}
    h = np.zeros((4, 4))
    v = w_omega * (1.0 - omega)   # w omega (1 - omega) per row
    v1 = np.bincount(c1, weights=v, minlength=x1.size)
    v2 = np.bincount(c2, weights=v, minlength=x2.size)
    cross = [np.bincount(c1, weights=v * b[c2], minlength=x1.size) for b in grad2]
    for i in range(4):
        for j in range(i, 4):
            k = pos[tuple(sorted((to_jq[i], to_jq[j])))]  # type: ignore[index]
            h[i, j] = (_dot(o1, he1[k]) + _dot(o2, he2[k]) + _dot(v1, grad1[i] * grad1[j])
                       + _dot(v2, grad2[i] * grad2[j]) - _dot(grad1[i], cross[j]) - _dot(grad1[j], cross[i]))
    h[2, 2] -= _dot(o1, np.full_like(o1, 1.0 / s**2))
    h[0, 0] -= _dot(o2, inv_rx2**2)
    h[0, 0] += _dot(wx, polygamma(1, r + ux) - polygamma(1, r))
    h[0, 1] += total_w / alpha
    h[1, 1] -= total_w * r / alpha**2
    h[2, 3] += total_w / beta
    h[3, 3] -= total_w * s / beta**2
    h = np.triu(h) + np.triu(h, 1).T
    return ll, g * p, h * np.outer(p, p) + np.diag(g * p)


_PNBD_PARALLEL_PAIRS = 20_000


def _paretonbd_design(stats: Collapsed) -> dict[str, Any]:
    if "pnbd" in stats.cache:
        return stats.cache["pnbd"]
    cx, ctx, ct = stats.codes["frequency"], stats.codes["recency"], stats.codes["T"]
    ux, utx, ut = stats.uniques["frequency"], stats.uniques["recency"], stats.uniques["T"]
    code1, key1 = _pairs(cx, ctx, utx.size)
    code2, key2 = _pairs(cx, ct, ut.size)
    d = {
        "w": stats.weights,
        "ux": ux,
        "wx": np.bincount(cx, weights=stats.weights, minlength=ux.size),
        "total_w": stats.total_weight,
        "code1": code1, "x1": ux[key1 // utx.size], "t1": utx[key1 % utx.size],
        "code2": code2, "x2": ux[key2 // ut.size], "t2": ut[key2 % ut.size],
    }
    stats.cache["pnbd"] = d
    return d


def _pairs(a: NDArray[np.intp], b: NDArray[np.intp], nb: int) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
    import pandas as pd

    code, uniq = pd.factorize(a.astype(np.int64) * nb + b, sort=True)
    return code.astype(np.intp), np.asarray(uniq, dtype=np.int64)


# ----------------------------------------------------------------------------
# BG/BB
# ----------------------------------------------------------------------------


def bgbb_loglik(
    params: tuple[float, float, float, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    n_periods: ArrayLike,
) -> Array:
    """Per-customer BG/BB log-likelihood (FHS10 eq. 5).

    ``params`` is ``(alpha, beta, gamma, delta)``; ``frequency`` repeat
    transactions in ``n_periods`` opportunities, the last at ``recency``.
    """
    al, be, ga, de = params
    x, tx, n = np.broadcast_arrays(_arr(frequency), _arr(recency), _arr(n_periods))
    base = betaln(al, be) + betaln(ga, de)
    first = betaln(al + x, be + n - x) + betaln(ga, de + n) - base
    terms = [first]
    n_extra = int(np.max(n - tx)) if x.size else 0
    for i in range(n_extra):
        valid = i <= n - tx - 1
        term = betaln(al + x, be + tx - x + i) + betaln(ga + 1.0, de + tx + i) - base
        terms.append(np.where(valid, term, -np.inf))
    stacked = np.vstack(terms)
    top = stacked.max(axis=0)
    return top + np.log(np.exp(stacked - top).sum(axis=0))


def bgbb_loglik_sum(log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, None]:
    """Weighted sum of `bgbb_loglik` over distinct ``(x, t_x, n)`` rows."""
    ll = bgbb_loglik(
        tuple(np.exp(log_params)), stats.values["frequency"], stats.values["recency"],
        stats.values["n_periods"],
    )
    return _dot(stats.weights, ll), None


# ----------------------------------------------------------------------------
# Shifted beta-geometric
# ----------------------------------------------------------------------------


def sbg_loglik(params: tuple[float, float], tenure: ArrayLike, churned: ArrayLike) -> Array:
    """Per-customer sBG log-likelihood (FH07 eqs. 1-3).

    A customer who churned after ``tenure = t`` periods contributes
    ``log P(T = t) = log B(alpha+1, beta+t-1) - log B(alpha, beta)``; one still
    active after ``t`` periods contributes ``log S(t) = log B(alpha, beta+t) -
    log B(alpha, beta)``.
    """
    al, be = params
    t, c = np.broadcast_arrays(_arr(tenure), _arr(churned))
    base = betaln(al, be)
    churn = betaln(al + 1.0, be + np.maximum(t, 1.0) - 1.0) - base
    alive = betaln(al, be + t) - base
    return np.where(c > 0, churn, alive)


def sbg_loglik_sum(log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, Array | None]:
    """Weighted sum of `sbg_loglik` with its analytic gradient."""
    al, be = np.exp(log_params)
    t, c, w = stats.values["tenure"], stats.values["churned"] > 0, stats.weights
    ll = _dot(w, sbg_loglik((al, be), t, c))
    if not gradient:
        return ll, None
    dab = digamma(al + be)
    tm = np.maximum(t, 1.0)
    # d/dalpha, d/dbeta of the churn and alive terms
    ca = digamma(al + 1.0) - digamma(al + be + tm) - digamma(al) + dab
    cb = digamma(be + tm - 1.0) - digamma(al + be + tm) - digamma(be) + dab
    aa = digamma(al) - digamma(al + be + t) - digamma(al) + dab
    ab = digamma(be + t) - digamma(al + be + t) - digamma(be) + dab
    g_a = _dot(w, np.where(c, ca, aa))
    g_b = _dot(w, np.where(c, cb, ab))
    return ll, np.array([g_a * al, g_b * be])


# ----------------------------------------------------------------------------
# Gamma-Gamma
# ----------------------------------------------------------------------------


def gammagamma_loglik(
    params: tuple[float, float, float], frequency: ArrayLike, monetary: ArrayLike
) -> Array:
    """Per-customer Gamma-Gamma log-likelihood of the mean repeat spend (FH13 eq. 3).

    ``params`` is ``(p, q, gamma)``; rows need ``frequency > 0``, ``monetary > 0``.
    """
    p, q, g = params
    x, z = np.broadcast_arrays(_arr(frequency), _arr(monetary))
    px = p * x
    return (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
        + (px - 1.0) * np.log(z) + px * np.log(x) - (px + q) * np.log(g + x * z)
    )


def gammagamma_loglik_sum(
    log_params: Array, stats: Collapsed, gradient: bool
) -> tuple[float, Array | None]:
    """Weighted sum of `gammagamma_loglik` with its analytic gradient."""
    p, q, g = np.exp(log_params)
    x, z, w = stats.values["frequency"], stats.values["monetary"], stats.weights
    ll = _dot(w, gammagamma_loglik((p, q, g), x, z))
    if not gradient:
        return ll, None
    px = p * x
    lgz = np.log(g + x * z)
    dpq = digamma(px + q)
    g_p = _dot(w, (x * (dpq - digamma(px) + np.log(z) + np.log(x) - lgz)))
    g_q = _dot(w, (dpq - digamma(q) + np.log(g) - lgz))
    g_g = _dot(w, (q / g - (px + q) / (g + x * z)))
    return ll, np.array([g_p * p, g_q * q, g_g * g])
