"""Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

While active, a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``;
their lifetime is exponential with rate ``mu ~ Gamma(s, beta)``.  The
likelihood's hypergeometric terms are evaluated in log space (`_integrals.py`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from clientfolio.models._base import Array, BaseModel, Collapsed, Data, _dot, as_output, per_row, read_rfm
from clientfolio.models._likelihoods import paretonbd_derivatives, paretonbd_log_bracket, paretonbd_loglik_sum
from clientfolio.models.bgnbd import _nbd_start


def _power_ratio_term(exponent: float, horizon: Array, base: Array) -> Array:
    """``[1 - (base/(base+t))^e] / e`` without cancellation (``log1p(t/base)`` at e=0)."""
    y = np.log1p(horizon / base)
    if abs(exponent) < 1e-12:
        return y
    return -np.expm1(-exponent * y) / exponent


class ParetoNBD(BaseModel):
    """Pareto/NBD model (Schmittlein, Morrison & Colombo 1987; Fader & Hardie 2005).

    Fit on ``frequency, recency, T`` (+ optional ``weights``), as `BGNBD`.
    Parameters: ``r, alpha`` (purchase rate) and ``s, beta`` (lifetime).

    Examples
    --------
    >>> from clientfolio.models import ParetoNBD
    >>> m = ParetoNBD.from_params({"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669})
    >>> round(float(m.expected_purchases_new_customer(52)[0]), 3)
    1.473
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    # the series' cost per call barely falls with the sample: a smaller one is as good a start
    _warm_start_customers: ClassVar[int] = 20_000
    # from the BG/NBD-like start the Hessian is indefinite; trust-region Newton gets there in ~6
    # evaluations on the sample, where BFGS and Newton took ~16
    _warm_trust_region: ClassVar[bool] = True

    def _read_fit_data(self, data: Data) -> tuple[dict[str, Array], Array | None]:
        cols = read_rfm(data, owner=type(self).__name__)
        v = cols.values
        return {k: v[k] for k in ("frequency", "recency", "T")}, v.get("weights")

    def _loglik(self, log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, Array | None]:
        return paretonbd_loglik_sum(log_params, stats, gradient)

    def _loglik_hessian(self, log_params: Array, stats: Collapsed) -> tuple[float, Array, Array]:
        ll, grad, hess = paretonbd_derivatives(log_params, stats, 2)
        assert grad is not None and hess is not None
        return ll, grad, hess

    def _initial_params(self, stats: Collapsed) -> dict[str, float]:
        start = _nbd_start(stats)
        w = stats.weights
        mean_t = _dot(w, stats.values["T"]) / float(w.sum())
        return start | {"s": 1.0, "beta": float(np.clip(mean_t, 1e-4, 1e8)) or 1.0}

    def predict_alive(self, data: Data) -> Any:
        """P(still active at T | frequency, recency, T) per row (FH05 eq. 11)."""
        self._check_fitted()
        cols = read_rfm(data, owner="ParetoNBD.predict_alive", with_weights=False)
        x, tx, t_ = (cols.values[c] for c in ("frequency", "recency", "T"))
        return as_output(self._alive(x, tx, t_), cols, "p_alive")

    def _alive(self, x: Array, tx: Array, t_: Array) -> Array:
        r, alpha, s, beta = self._p()
        log_alive = -(r + x) * np.log(alpha + t_) - s * np.log(beta + t_)
        return np.exp(np.minimum(log_alive - paretonbd_log_bracket((r, alpha, s, beta), x, tx, t_), 0.0))

    def predict_purchases(self, t: ArrayLike, data: Data) -> Any:
        """Expected number of purchases in the next ``t`` periods, per row (FH05 eq. 13)."""
        self._check_fitted()
        cols = read_rfm(data, owner="ParetoNBD.predict_purchases", with_weights=False)
        x, tx, t_ = (cols.values[c] for c in ("frequency", "recency", "T"))
        horizon = per_row(t, len(x))
        r, alpha, s, beta = self._p()
        rate = (r + x) / (alpha + t_) * (beta + t_)
        expected = rate * _power_ratio_term(s - 1.0, horizon, beta + t_) * self._alive(x, tx, t_)
        return as_output(expected, cols, "expected_purchases")

    def predict_purchases_curve(self, times: ArrayLike, data: Data, *, with_alive: bool = False) -> Any:
        """Expected purchases in the next ``t`` periods for every ``t`` in ``times``: rows x times.

        Same values as :meth:`predict_purchases` per ``t``; P(alive), the expensive part of
        the Pareto/NBD, is computed once (``with_alive=True`` returns it too: ``(curve, p_alive)``).
        """
        self._check_fitted()
        cols = read_rfm(data, owner="ParetoNBD.predict_purchases_curve", with_weights=False)
        x, tx, t_ = (cols.values[c] for c in ("frequency", "recency", "T"))
        r, alpha, s, beta = self._p()
        alive = self._alive(x, tx, t_)
        rate = (r + x) / (alpha + t_) * (beta + t_) * alive
        grid = np.atleast_1d(np.asarray(times, dtype=float))
        # the whole grid in one broadcast (rows x times): the same elementwise operations as one call per t
        curve = rate[:, None] * _power_ratio_term(s - 1.0, grid[None, :], (beta + t_)[:, None])
        return (curve, alive) if with_alive else curve

    def expected_purchases_new_customer(self, t: ArrayLike) -> Array:
        """Unconditional E[X(t)] for a newly acquired customer (FH05 eq. 17)."""
        r, alpha, s, beta = self._p()
        horizon = np.atleast_1d(np.asarray(t, dtype=float))
        return r * beta / alpha * _power_ratio_term(s - 1.0, horizon, np.full_like(horizon, beta))
