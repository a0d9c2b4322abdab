"""BG/NBD model (Fader, Hardie & Lee 2005) for non-contractual repeat buying.

While active, a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``;
after each repeat purchase they drop out with probability ``p ~ Beta(a, b)``.
`MBGNBD` (in `mbgnbd.py`) shares everything here, adding a drop-out chance at
time 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betainc, betaln, expit, gammaln, hyp2f1

from clientfolio.models._base import Array, BaseModel, Collapsed, Data, _dot, as_output, per_row, read_rfm
from clientfolio.models._likelihoods import bgnbd_derivatives, bgnbd_loglik_sum


class _BetaGeometricNBD(BaseModel):
    """Shared BG/NBD and MBG/NBD machinery; ``_k`` = 1 adds drop-out at time 0."""

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _k: ClassVar[int] = 0

    # -- fitting hooks -------------------------------------------------------------

    def _read_fit_data(self, data: Data) -> tuple[dict[str, Array], Array | None]:
        cols = read_rfm(data, owner=type(self).__name__)
        v = cols.values
        return {k: v[k] for k in ("frequency", "recency", "T")}, v.get("weights")

    def _loglik(self, log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, Array | None]:
        return bgnbd_loglik_sum(log_params, stats, gradient, dropout_at_zero=bool(self._k))

    def _initial_params(self, stats: Collapsed) -> dict[str, float]:
        return _nbd_start(stats) | {"a": 1.0, "b": 1.0}

    def _loglik_hessian(self, log_params: Array, stats: Collapsed) -> tuple[float, Array, Array]:
        ll, grad, hess = bgnbd_derivatives(log_params, stats, 2, dropout_at_zero=bool(self._k))
        assert grad is not None and hess is not None
        return ll, grad, hess

    # -- predictions ---------------------------------------------------------------

    def predict_alive(self, data: Data) -> Any:
        """P(still active at T | frequency, recency, T) per row (FHL05 eq. 13)."""
        r, alpha, a, b = self._p()
        cols = read_rfm(data, owner=f"{type(self).__name__}.predict_alive", with_weights=False)
        x, tx, t_ = (cols.values[c] for c in ("frequency", "recency", "T"))
        return as_output(self._alive(x, tx, t_), cols, "p_alive")

    def _alive(self, x: Array, tx: Array, t_: Array) -> Array:
        r, alpha, a, b = self._p()
        k = self._k
        pos = x + k > 0
        term = np.full_like(x, -np.inf)
        term[pos] = (
            np.log(a) - np.log(b + x[pos] + k - 1.0)
            + (r + x[pos]) * (np.log(alpha + t_[pos]) - np.log(alpha + tx[pos]))
        )
        return expit(-term)

    def predict_purchases(self, t: ArrayLike, data: Data) -> Any:
        """Expected number of purchases in the next ``t`` periods, per row.

        Conditional expectation given each customer's history (FHL05 eq. 10;
        BDF07 for MBG/NBD).  ``t`` is a scalar or one value per row.
        """
        self._check_fitted()
        cols = read_rfm(data, owner=f"{type(self).__name__}.predict_purchases", with_weights=False)
        x, tx, t_ = (cols.values[c] for c in ("frequency", "recency", "T"))
        horizon = per_row(t, len(x))
        return as_output(self._conditional(horizon, x, tx, t_), cols, "expected_purchases")

    def predict_purchases_curve(self, times: ArrayLike, data: Data, *, with_alive: bool = False) -> Any:
        """Expected purchases in the next ``t`` periods for every ``t`` in ``times``: rows x times.

        Same values as calling :meth:`predict_purchases` once per ``t``, with P(alive)
        computed once (CLV sums the curve month by month).  ``with_alive=True`` also
        returns that P(alive) per row: ``(curve, p_alive)``.
        """
        self._check_fitted()
        cols = read_rfm(data, owner=f"{type(self).__name__}.predict_purchases_curve", with_weights=False)
        x, tx, t_ = (cols.values[c] for c in ("frequency", "recency", "T"))
        alive = self._alive(x, tx, t_)
        grid = np.atleast_1d(np.asarray(times, dtype=float))
        curve = np.column_stack([self._conditional(np.full(len(x), t), x, tx, t_, alive) for t in grid]) \
            if len(grid) else np.zeros((len(x), 0))
        return (curve, alive) if with_alive else curve

    def _conditional(self, t: Array, x: Array, tx: Array, t_: Array, alive: Array | None = None) -> Array:
        r, alpha, a, b = self._p()
        bb = b + self._k
        z = t / (alpha + t_ + t)
        c = a + bb + x - 1.0
        # (1-z)^(r+x) 2F1(r+x, bb+x; c; z) = (1-z)^(a-1) 2F1(c-r-x, a-1; c; z)  (Euler)
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            tail = np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(a + bb - 1.0 - r, a - 1.0, c, z)
            expected = (c / (a - 1.0)) * (1.0 - tail)
        # When a and b are huge (a fit can drift there when the data cannot tell how the dropout
        # probability varies), the Beta mixing distribution is a point p0 = a / (a + b) and the
        # hypergeometric term under- and overflows (0 x inf).  Its limit is exact and stable:
        # E = (1 - ((alpha + T) / (alpha + T + p0 t))^(r + x)) / p0.
        bad = ~np.isfinite(expected)
        if np.any(bad):
            p0 = a / (a + bb)
            base = alpha + t_[bad]
            limit = -np.expm1((r + x[bad]) * (np.log(base) - np.log(base + p0 * t[bad]))) / p0
            expected = expected.copy()
            expected[bad] = limit
        return np.where(t > 0, expected, 0.0) * (self._alive(x, tx, t_) if alive is None else alive)

    def expected_purchases_new_customer(self, t: ArrayLike) -> Array:
        """Unconditional E[X(t)]: purchases in (0, t] of a newly acquired customer.

        FHL05 eq. 9 for BG/NBD; the MBG/NBD analogue (BDF07).
        """
        self._check_fitted()
        horizon = np.atleast_1d(np.asarray(t, dtype=float))
        zeros = np.zeros_like(horizon)
        return self._conditional(horizon, zeros, zeros, zeros)

    def probability_of_purchases(self, n: ArrayLike, t: ArrayLike) -> Array:
        """P(X(t) = n): a new customer makes exactly ``n`` repeat purchases in (0, t].

        FHL05 eq. 8 (BG/NBD); with drop-out at time 0 for MBG/NBD.
        """
        r, alpha, a, b = self._p()
        k = self._k
        n_arr, t_arr = np.broadcast_arrays(
            np.atleast_1d(np.asarray(n, dtype=float)), np.atleast_1d(np.asarray(t, dtype=float))
        )
        base = betaln(a, b)
        log_nb = (
            gammaln(r + n_arr) - gammaln(r) - gammaln(n_arr + 1.0)
            + r * np.log(alpha / (alpha + t_arr))
            + np.where(n_arr > 0, n_arr * np.log(np.where(t_arr > 0, t_arr, 1.0) / (alpha + t_arr)), 0.0)
        )
        log_nb = np.where((t_arr == 0) & (n_arr > 0), -np.inf, log_nb)
        alive = np.exp(betaln(a, b + n_arr + k) - base + log_nb)
        pos = n_arr + k > 0
        surv = np.where(n_arr > 0, betainc(np.maximum(n_arr, 1.0), r, t_arr / (alpha + t_arr)), 1.0)
        dead = np.where(pos, np.exp(betaln(a + 1.0, b + np.maximum(n_arr + k - 1.0, 0.0)) - base) * surv, 0.0)
        return alive + dead


def _nbd_start(stats: Collapsed) -> dict[str, float]:
    """Starting purchase-rate parameters scaled to the data's time unit."""
    w = stats.weights
    total_t = _dot(w, stats.values["T"])
    total_x = _dot(w, stats.values["frequency"])
    rate = total_x / total_t if total_t > 0 and total_x > 0 else 1.0
    return {"r": 1.0, "alpha": float(np.clip(1.0 / rate, 1e-4, 1e8))}


class BGNBD(_BetaGeometricNBD):
    """Beta-geometric/NBD model (Fader, Hardie & Lee 2005).

    Fit on a per-customer summary with columns ``frequency`` (repeat purchase
    occasions), ``recency`` (first to last purchase) and ``T`` (first purchase
    to cut-off), all in one time unit, plus optional ``weights`` (customers per
    row).  Parameters: ``r, alpha`` (purchase rate) and ``a, b`` (drop-out).

    Examples
    --------
    >>> import pandas as pd
    >>> from clientfolio.models import BGNBD
    >>> m = BGNBD.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    >>> one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    >>> round(float(m.predict_purchases(39, one).iloc[0]), 3)
    1.226
    """

    _k = 0
