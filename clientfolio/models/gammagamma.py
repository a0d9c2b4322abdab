"""Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005; note 025).

A customer's transaction values are ``Gamma(p, nu)`` with ``nu ~ Gamma(q,
gamma)`` across customers, independent of their purchase frequency.  Fit on
repeat buyers' mean repeat spend; predicts each customer's expected spend.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from clientfolio.models._base import (
    Array,
    BaseModel,
    Collapsed,
    Columns,
    Data,
    _dot,
    as_output,
    check_count,
    read_columns,
)
from clientfolio.models._likelihoods import gammagamma_loglik_sum


def _read_spend(data: Data, owner: str, with_weights: bool = True) -> Columns:
    optional = ("weights",) if with_weights else ()
    cols = read_columns(data, ("frequency", "monetary"), optional, owner=owner)
    check_count(cols, "frequency")
    v = cols.values
    cols.fail("monetary", (v["frequency"] > 0) & (v["monetary"] <= 0), "non-positive mean spend of a repeat buyer",
              "Gamma-Gamma models positive transaction values; drop customers whose refunds "
              "exceed their purchases, or model net values another way.")
    return cols


class GammaGamma(BaseModel):
    """Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie 2013).

    Fit on ``frequency`` (repeat purchases) and ``monetary`` (mean value of the
    repeat purchases) + optional ``weights``; customers with ``frequency == 0``
    carry no spend information and are ignored by ``fit``.  Parameters:
    ``p, q, gamma`` (``gamma`` is called ``v`` in some papers).  The model
    assumes spend is independent of frequency: check the correlation first.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")

    def _read_fit_data(self, data: Data) -> tuple[dict[str, Array], Array | None]:
        cols = _read_spend(data, "GammaGamma")
        v = cols.values
        keep = v["frequency"] > 0
        weights = v["weights"][keep] if "weights" in v else None
        return {"frequency": v["frequency"][keep], "monetary": v["monetary"][keep]}, weights

    def _loglik(self, log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, Array | None]:
        return gammagamma_loglik_sum(log_params, stats, gradient)

    def _initial_params(self, stats: Collapsed) -> dict[str, float]:
        w = stats.weights
        z = stats.values["monetary"]
        mean = _dot(w, z) / float(w.sum())
        # p = q = 2 puts the population mean spend p*gamma/(q-1) at the sample mean
        return {"p": 2.0, "q": 2.0, "gamma": max(mean / 2.0, 1e-8)}

    def predict_spend(self, data: Data) -> Any:
        """Conditional expected mean spend per transaction, per customer (FHL05b eq. 5).

        A weighted average of the population mean and the customer's own mean
        ``monetary``; customers with ``frequency == 0`` get the population mean.
        Infinite when the posterior mean does not exist (``p*x + q <= 1``).
        """
        self._check_fitted()
        cols = _read_spend(data, "GammaGamma.predict_spend", with_weights=False)
        x = cols.values["frequency"]
        z = np.where(x > 0, cols.values["monetary"], 0.0)
        p, q, g = self._p()
        den = p * x + q - 1.0
        with np.errstate(divide="ignore"):
            value = np.where(den > 0, p * (g + x * z) / np.where(den > 0, den, 1.0), np.inf)
        return as_output(value, cols, "expected_spend")

    def population_mean_spend(self) -> float:
        """Mean spend per transaction across customers, ``p*gamma/(q-1)`` (inf if q <= 1)."""
        p, q, g = self._p()
        return float(p * g / (q - 1.0)) if q > 1 else float("inf")
