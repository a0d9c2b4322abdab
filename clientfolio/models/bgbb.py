"""BG/BB model (Fader, Hardie & Shang 2010) for discrete transaction opportunities.

Each period an active customer transacts with probability ``p ~ Beta(alpha,
beta)``; at the start of each period they may become inactive with
probability ``theta ~ Beta(gamma, delta)``.  Typical uses: annual donations,
event attendance, weekly visits recorded as yes/no.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, gammaln

from clientfolio.models._base import (
    Array,
    BaseModel,
    Collapsed,
    Columns,
    Data,
    as_output,
    check_count,
    per_row,
    read_columns,
)
from clientfolio.models._likelihoods import bgbb_loglik, bgbb_loglik_sum


def _read_bgbb(data: Data, owner: str, with_weights: bool = True) -> Columns:
    """Read ``frequency, recency, n_periods`` (+ ``weights``) and check their order."""
    optional = ("weights",) if with_weights else ()
    cols = read_columns(data, ("frequency", "recency", "n_periods"), optional, owner=owner)
    for name in ("frequency", "recency", "n_periods"):
        check_count(cols, name)
    v = cols.values
    cols.fail("frequency", v["frequency"] > v["recency"], "frequency greater than recency",
              "with one opportunity per period, x repeat transactions end no earlier than period x.")
    cols.fail("recency", v["recency"] > v["n_periods"], "recency greater than n_periods",
              "recency is the period of the last transaction, at most n_periods.")
    cols.fail("recency", (v["frequency"] == 0) & (v["recency"] > 0), "recency > 0 with frequency 0",
              "a customer without repeat transactions has recency 0.")
    return cols


class BGBB(BaseModel):
    """Beta-geometric/beta-Bernoulli model (Fader, Hardie & Shang 2010).

    Fit on ``frequency`` (repeat transactions), ``recency`` (period of the last
    one, 0 if none) and ``n_periods`` (opportunities observed), + optional
    ``weights``.  Parameters: ``alpha, beta`` (transaction probability) and
    ``gamma, delta`` (drop-out probability).
    """

    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gamma", "delta")

    def _read_fit_data(self, data: Data) -> tuple[dict[str, Array], Array | None]:
        cols = _read_bgbb(data, "BGBB")
        v = cols.values
        return {k: v[k] for k in ("frequency", "recency", "n_periods")}, v.get("weights")

    def _loglik(self, log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, Array | None]:
        return bgbb_loglik_sum(log_params, stats, gradient)

    def _initial_params(self, stats: Collapsed) -> dict[str, float]:
        return {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "delta": 1.0}

    def _p(self) -> tuple[float, ...]:
        al, be, ga, de = super()._p()
        # Predictions divide by (gamma - 1); step off the removable singularity.
        if abs(ga - 1.0) < 1e-7:
            ga = 1.0 + 1e-7
        return al, be, ga, de

    def _history(self, data: Data, owner: str) -> tuple[Columns, Array, Array, Array]:
        self._check_fitted()
        cols = _read_bgbb(data, f"BGBB.{owner}", with_weights=False)
        v = cols.values
        return cols, v["frequency"], v["recency"], v["n_periods"]

    def predict_alive(self, data: Data) -> Any:
        """P(active in period n_periods + 1 | history) per row (FHS10 eq. 11)."""
        cols, x, tx, n = self._history(data, "predict_alive")
        al, be, ga, de = self._p()
        ll = bgbb_loglik((al, be, ga, de), x, tx, n)
        log_num = betaln(al + x, be + n - x) - betaln(al, be) + betaln(ga, de + n + 1.0) - betaln(ga, de)
        return as_output(np.exp(np.minimum(log_num - ll, 0.0)), cols, "p_alive")

    def predict_purchases(self, t: ArrayLike, data: Data) -> Any:
        """Expected transactions in the next ``t`` opportunities, per row (FHS10 eq. 13)."""
        cols, x, tx, n = self._history(data, "predict_purchases")
        horizon = per_row(t, len(x))
        al, be, ga, de = self._p()
        ll = bgbb_loglik((al, be, ga, de), x, tx, n)
        lead = betaln(al + x + 1.0, be + n - x) - betaln(al, be) + gammaln(ga + de) - gammaln(1.0 + de)
        a1 = gammaln(1.0 + de + n) - gammaln(ga + de + n)
        a2 = gammaln(1.0 + de + n + horizon) - gammaln(ga + de + n + horizon)
        # delta/(gamma-1) * (e^a1 - e^a2), written to stay accurate near gamma = 1
        diff = _ratio_expm1(a1, a2, ga - 1.0)
        return as_output(np.exp(lead - ll + a1) * de * diff, cols, "expected_purchases")

    def expected_purchases_new_customer(self, t: ArrayLike) -> Array:
        """Unconditional E[X(n)]: transactions in the first ``n`` opportunities (FHS10 eq. 7)."""
        al, be, ga, de = self._p()
        n = np.atleast_1d(np.asarray(t, dtype=float))
        a1 = 0.0 * n
        a2 = gammaln(ga + de) + gammaln(1.0 + de + n) - gammaln(ga + de + n) - gammaln(1.0 + de)
        return al / (al + be) * de * _ratio_expm1(a1, a2, ga - 1.0)

    def probability_of_purchases(self, x: ArrayLike, n: ArrayLike) -> Array:
        """P(X(n) = x): a new customer makes ``x`` transactions in ``n`` opportunities (FHS10 eq. 8)."""
        al, be, ga, de = self._p()
        xs, ns = np.broadcast_arrays(np.atleast_1d(np.asarray(x, dtype=float)),
                                     np.atleast_1d(np.asarray(n, dtype=float)))
        base = betaln(al, be) + betaln(ga, de)
        out = np.where(
            xs <= ns,
            np.exp(_log_comb(ns, xs) + betaln(al + xs, be + ns - xs) + betaln(ga, de + ns) - base),
            0.0,
        )
        top = int(np.max(ns)) if ns.size else 0
        for i in range(top):
            ok = (i >= xs) & (i <= ns - 1)
            xc = np.minimum(xs, i)  # keeps every argument valid; masked out below
            term = (_log_comb(np.full_like(xs, i), xc) + betaln(al + xc, be + i - xc)
                    + betaln(ga + 1.0, de + i) - base)
            out = out + np.where(ok, np.exp(term), 0.0)
        return out


def _log_comb(n: Array, k: Array) -> Array:
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def _ratio_expm1(a1: Array, a2: Array, gm1: float) -> Array:
    """``(e^a1 - e^a2) / (gamma - 1) / e^a1`` = ``-expm1(a2 - a1) / (gamma - 1)``."""
    return -np.expm1(a2 - a1) / gm1
