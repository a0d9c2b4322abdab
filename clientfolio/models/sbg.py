"""Shifted-beta-geometric model (Fader & Hardie 2007) for contractual settings.

Each customer renews at every period end with probability ``1 - theta``,
``theta ~ Beta(alpha, beta)`` across customers.  Fits subscription data given
either as cohort survivor counts or per customer as (tenure, churned).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import betaln, hyp2f1

from clientfolio.core.errors import SchemaError
from clientfolio.models._base import (
    Array,
    BaseModel,
    Collapsed,
    Columns,
    as_output,
    check_count,
    per_row,
    read_columns,
)
from clientfolio.models._likelihoods import sbg_loglik_sum


def survival_to_tenure(survivors: ArrayLike) -> pd.DataFrame:
    """Turn cohort survivor counts into weighted per-customer rows.

    ``survivors[t]`` is the number of customers still active at the start of
    period ``t`` (``survivors[0]`` = cohort size).  Customers lost between
    ``t-1`` and ``t`` churned with tenure ``t``; those left at the end are
    active with tenure ``len(survivors) - 1``.  Counts may be fractional
    (e.g. percentages).
    """
    s = np.asarray(survivors, dtype=float)
    if s.ndim != 1 or s.size < 2:
        raise SchemaError("ShiftedBetaGeometric: survivor counts must be a 1-D sequence of at least 2 values.")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise SchemaError("ShiftedBetaGeometric: survivor counts must be finite and >= 0.")
    drops = s[:-1] - s[1:]
    if np.any(drops < 0):
        t = int(np.flatnonzero(drops < 0)[0]) + 1
        raise SchemaError(
            f"ShiftedBetaGeometric: survivor counts must not increase, but period {t} has "
            f"{s[t]:g} after {s[t - 1]:g}. Pass the number still active at the start of each period."
        )
    n = s.size - 1
    tenure = np.concatenate([np.arange(1, n + 1), [n]]).astype(float)
    churned = np.concatenate([np.ones(n), [0.0]])
    weights = np.concatenate([drops, [s[-1]]])
    return pd.DataFrame({"tenure": tenure, "churned": churned, "weights": weights})


def _read_tenure(data: Any, owner: str, with_weights: bool = True) -> Columns:
    optional = ("weights",) if with_weights else ()
    cols = read_columns(data, ("tenure", "churned"), optional, owner=owner)
    check_count(cols, "tenure")
    v = cols.values
    cols.fail("churned", ~np.isin(v["churned"], (0.0, 1.0)), "value other than 0/1 (False/True)",
              "churned is True when the customer cancelled at the end of period 'tenure'.")
    cols.fail("tenure", (v["churned"] > 0) & (v["tenure"] < 1), "churned with tenure 0",
              "a customer who cancelled completed at least one period (tenure >= 1).")
    return cols


class ShiftedBetaGeometric(BaseModel):
    """Shifted-beta-geometric (sBG) model of contract renewals (Fader & Hardie 2007).

    ``fit`` takes either a 1-D sequence of cohort survivor counts (active at the
    start of periods 0, 1, ..., n) or a table with ``tenure`` (whole periods
    completed) and ``churned`` (cancelled at the end of period ``tenure``),
    + optional ``weights``.  Parameters: ``alpha, beta`` of the churn
    probability's beta distribution.

    Examples
    --------
    >>> from clientfolio.models import ShiftedBetaGeometric
    >>> m = ShiftedBetaGeometric().fit([1000, 631, 468, 382, 326, 289, 262, 241])
    >>> round(m.params_["alpha"], 3), round(m.params_["beta"], 3)
    (0.704, 1.182)
    """

    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def _read_fit_data(self, data: Any) -> tuple[dict[str, Array], Array | None]:
        if not isinstance(data, (pd.DataFrame, Mapping)):
            if isinstance(data, (str, bytes)) or not isinstance(data, (Sequence, np.ndarray, pd.Series)):
                raise SchemaError(
                    "ShiftedBetaGeometric.fit: expected survivor counts (a 1-D sequence) or a "
                    f"table with columns tenure, churned; got {type(data).__name__}."
                )
            data = survival_to_tenure(data)
        cols = _read_tenure(data, "ShiftedBetaGeometric")
        v = cols.values
        return {"tenure": v["tenure"], "churned": v["churned"]}, v.get("weights")

    def _loglik(self, log_params: Array, stats: Collapsed, gradient: bool) -> tuple[float, Array | None]:
        return sbg_loglik_sum(log_params, stats, gradient)

    def _initial_params(self, stats: Collapsed) -> dict[str, float]:
        return {"alpha": 1.0, "beta": 1.0}

    def survival_function(self, t: ArrayLike) -> Array:
        """S(t): share of a new cohort still active after ``t`` periods (FH07 eq. 3)."""
        al, be = self._p()
        t_arr = np.atleast_1d(np.asarray(t, dtype=float))
        return np.exp(betaln(al, be + t_arr) - betaln(al, be))

    def churn_probability(self, t: ArrayLike) -> Array:
        """P(T = t): probability a new customer cancels at the end of period ``t`` (FH07 eq. 1)."""
        al, be = self._p()
        t_arr = np.atleast_1d(np.asarray(t, dtype=float))
        valid = t_arr >= 1
        safe = np.where(valid, t_arr, 1.0)
        return np.where(valid, np.exp(betaln(al + 1.0, be + safe - 1.0) - betaln(al, be)), 0.0)

    def retention_rate(self, t: ArrayLike) -> Array:
        """r(t) = S(t)/S(t-1): share of those active in period t-1 who renew (FH07 eq. 4)."""
        al, be = self._p()
        t_arr = np.atleast_1d(np.asarray(t, dtype=float))
        return (be + t_arr - 1.0) / (al + be + t_arr - 1.0)

    def predict_survival(self, t: ArrayLike, data: Any) -> Any:
        """P(still active ``t`` periods from now | history), per customer (0 if churned)."""
        self._check_fitted()
        cols = _read_tenure(data, "ShiftedBetaGeometric.predict_survival", with_weights=False)
        n, churned = cols.values["tenure"], cols.values["churned"] > 0
        horizon = per_row(t, len(n))
        al, be = self._p()
        surv = np.exp(betaln(al, be + n + horizon) - betaln(al, be + n))
        return as_output(np.where(churned, 0.0, surv), cols, "p_active")

    def derl(self, discount_rate: float, renewals: ArrayLike = 0) -> Array:
        """Discounted expected residual lifetime (Fader & Hardie 2010, eq. 6).

        Expected discounted number of future payments, counting the one about to
        be made, for a customer who has made ``renewals`` (= n - 1) renewals;
        multiply by the payment per period for the residual value.
        """
        al, be = self._p()
        if not discount_rate > 0:
            raise ValueError(f"discount_rate must be > 0; got {discount_rate!r}.")
        n = np.atleast_1d(np.asarray(renewals, dtype=float)) + 1.0
        return (be + n - 1.0) / (al + be + n - 1.0) * hyp2f1(1.0, be + n, al + be + n, 1.0 / (1.0 + discount_rate))

    def predict_derl(self, discount_rate: float, data: Any) -> Any:
        """DERL per customer from ``tenure`` (renewals made); 0 for churned customers."""
        self._check_fitted()
        cols = _read_tenure(data, "ShiftedBetaGeometric.predict_derl", with_weights=False)
        n, churned = cols.values["tenure"], cols.values["churned"] > 0
        values = np.where(churned, 0.0, self.derl(discount_rate, n))
        return as_output(values, cols, "derl")
