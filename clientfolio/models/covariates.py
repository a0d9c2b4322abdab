"""BG/NBD and Pareto/NBD with time-invariant covariates, and separate fits per known group.

Covariates (Fader & Hardie 2007, "Incorporating time-invariant covariates into the Pareto/NBD and
BG/NBD models", note 019) enter through the gamma *scale* parameters, so the likelihood keeps its
closed form with one scale per customer:

* purchase process (both models): ``alpha_i = alpha0 * exp(-gamma_p' x_i)``.  The mean purchase rate
  is ``r / alpha_i = (r / alpha0) * exp(gamma_p' x_i)``: ``exp(gamma_p)`` multiplies it.
* Pareto/NBD drop-out: ``beta_i = beta0 * exp(-gamma_d' x_i)``; ``exp(gamma_d)`` multiplies the mean
  drop-out rate ``s / beta_i``.
* BG/NBD drop-out: the drop-out probability after each purchase is ``p ~ Beta(a_i, b_i)`` with
  ``a_i = a0 * exp(gamma_a' x_i)`` and ``b_i = b0 * exp(gamma_b' x_i)``, a separate coefficient
  vector for each shape parameter, as in the note's BG/NBD section.  (CLVTools constrains
  ``gamma_a = gamma_b``, which moves only the spread of ``p``, not its mean ``a / (a + b)``; we
  estimate both, so a covariate can move the mean drop-out probability.)

With every coefficient at 0 both likelihoods are the plain models' exactly.

Categorical covariates are one-hot encoded against a *reference level*: by default the most
frequent level (ties: the first in sorted order), or the one named in ``reference``; a missing
categorical value is its own level ``"(missing)"``.  Each coefficient is the effect of that level
against the reference.  Numeric (and boolean, as 0/1) columns enter as they are, so
``alpha0``/``beta0``/``a0``/``b0`` are the values at covariate 0: centre a numeric column first if 0
is not a meaningful value.

Rows are collapsed on ``(frequency, recency, T, covariate row)`` -- customers can only share a
likelihood term when their covariates agree too.

`GroupedModel` is the other way to stop pooling unlike customers: one plain model per level of a
known attribute (acquisition channel, region, wholesale vs consumer).  Whether either beats the
plain model is decided on a holdout period: `clientfolio.predict.covariates.compare_covariate_models`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from clientfolio.core.errors import ClientfolioError, ConvergenceError, NotFittedError, SchemaError
from clientfolio.models._base import (
    _LOG_BOUND,
    _SE_LOG_LIMIT,
    _Z95,
    Array,
    Data,
    _fd_hessian,
    _minimize,
    _newton,
    collapse,
    per_row,
    read_rfm,
)
from clientfolio.models._integrals import log_j
from clientfolio.models.bgnbd import BGNBD
from clientfolio.models.paretonbd import ParetoNBD, _power_ratio_term

MISSING_LEVEL = "(missing)"
MAX_LEVELS = 50
_GRAD_TOL = 1e-5


# ----------------------------------------------------------------------------
# Encoding covariates
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CovariateEncoding:
    """How input columns become the design matrix: numeric as-is, categorical one-hot vs a reference."""

    columns: tuple[str, ...]
    numeric: tuple[str, ...]
    levels: Mapping[str, tuple[str, ...]]      # categorical column -> its levels other than the reference
    reference: Mapping[str, str]               # categorical column -> reference level

    @property
    def names(self) -> tuple[str, ...]:
        """Design-matrix column names: ``col`` for numeric, ``col=level`` for a one-hot level."""
        out: list[str] = []
        for c in self.columns:
            if c in self.numeric:
                out.append(c)
            else:
                out.extend(f"{c}={lv}" for lv in self.levels[c])
        return tuple(out)

    def transform(self, data: Data, owner: str) -> Array:
        """The design matrix (rows x names) of ``data``; unknown levels raise `SchemaError`."""
        n = _n_rows(data)
        blocks: list[Array] = []
        for c in self.columns:
            if c not in data:
                raise SchemaError(f"{owner}: data has no covariate column {c!r} (the model was fitted with "
                                  f"{', '.join(self.columns)}).")
            if c in self.numeric:
                blocks.append(_numeric(data[c], c, owner)[:, None])
                continue
            values = _categorical(data[c])
            known = {*self.levels[c], self.reference[c]}
            unknown = sorted(set(values) - known)
            if unknown:
                raise SchemaError(
                    f"{owner}: covariate {c!r} has level(s) {unknown[:5]} the model was not fitted with "
                    f"(known: {sorted(known)}). Map them onto a known level or refit.")
            blocks.append(np.column_stack([values == lv for lv in self.levels[c]]).astype(float)
                          if self.levels[c] else np.zeros((n, 0)))
        return np.hstack(blocks) if blocks else np.zeros((n, 0))


def _n_rows(data: Data) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    return max((np.size(v) for v in data.values()), default=0)


def _numeric(values: Any, column: str, owner: str) -> Array:
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr.astype(float)
    try:
        out = np.asarray(arr, dtype=float)
    except (TypeError, ValueError):
        raise SchemaError(f"{owner}: covariate {column!r} mixes numbers and text; make it numeric or "
                          "pass it as text (a category).") from None
    bad = ~np.isfinite(out)
    if bad.any():
        raise SchemaError(f"{owner}: numeric covariate {column!r} has {int(bad.sum())} missing or infinite "
                          f"value(s) (first at row {int(np.flatnonzero(bad)[0])}); fill or drop them first.")
    return out


def _is_categorical(values: Any) -> bool:
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    return bool(isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s))


def _categorical(values: Any) -> np.ndarray:
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    s = s.astype(object)
    return np.asarray(s.where(s.notna(), MISSING_LEVEL).astype(str), dtype=object)


def fit_encoding(data: Data, columns: Sequence[str], reference: Mapping[str, str] | None = None,
                 *, owner: str = "covariates") -> CovariateEncoding:
    """Decide the encoding of ``columns`` from the fitting data (reference levels, one-hot levels)."""
    reference = dict(reference or {})
    cols = tuple(dict.fromkeys(columns))
    unknown_ref = set(reference) - set(cols)
    if unknown_ref:
        raise ValueError(f"{owner}: reference given for {sorted(unknown_ref)}, which are not covariates.")
    numeric: list[str] = []
    levels: dict[str, tuple[str, ...]] = {}
    refs: dict[str, str] = {}
    for c in cols:
        if c not in data:
            raise SchemaError(f"{owner}: data has no covariate column {c!r}.")
        if not _is_categorical(data[c]):
            if c in reference:
                raise ValueError(f"{owner}: {c!r} is numeric; a reference level applies to text columns only.")
            _numeric(data[c], c, owner)
            numeric.append(c)
            continue
        values = _categorical(data[c])
        counts = pd.Series(values).value_counts()
        if len(counts) > MAX_LEVELS:
            raise SchemaError(f"{owner}: covariate {c!r} has {len(counts)} levels (at most {MAX_LEVELS}); "
                              "group the rare ones first.")
        if c in reference:
            ref = str(reference[c])
            if ref not in counts.index:
                raise ValueError(f"{owner}: reference level {ref!r} of {c!r} is not in the data "
                                 f"(levels: {sorted(counts.index)}).")
        else:  # most frequent, ties broken by name
            top = counts[counts == counts.max()].index
            ref = sorted(top)[0]
        refs[c] = ref
        levels[c] = tuple(sorted(lv for lv in counts.index if lv != ref))
    return CovariateEncoding(cols, tuple(numeric), levels, refs)


# ----------------------------------------------------------------------------
# Pareto/NBD integral with one (alpha, beta) per row
# ----------------------------------------------------------------------------


def log_j_rows(t: Array, alpha: Array, beta: Array, p: Array, q: Array) -> tuple[Array, Array, Array, Array, Array]:
    """`clientfolio.models._integrals.log_j` with ``alpha`` and ``beta`` given per row.

    The same series (quadrature where it would converge slowly) as the plain Pareto/NBD, with
    each row's own bases.
    """
    return log_j(t, alpha, beta, p, q)


# ----------------------------------------------------------------------------
# Per-row log-likelihoods and their gradients in the log of each row's parameters
# ----------------------------------------------------------------------------


def bgnbd_rows(r: float, alpha: Array, a: Array, b: Array, x: Array, tx: Array, t_: Array,
               gradient: bool = True) -> tuple[Array, Array | None]:
    """BG/NBD log-likelihood per row (FHL05 eq. 6) with one ``alpha, a, b`` per row.

    Returns the values and, with ``gradient``, their derivatives in ``(log r, log alpha, log a,
    log b)`` as an ``(n, 4)`` array.
    """
    rx = r + x
    la_t, la_tx = np.log(alpha + t_), np.log(alpha + tx)
    has = x > 0
    bx = np.where(has, b + x - 1.0, 1.0)
    d = np.log(a) - np.log(bx) + rx * (la_t - la_tx)
    d = np.where(has, d, -np.inf)
    soft = np.logaddexp(0.0, d)
    ll = (gammaln(rx) - gammaln(r) + r * np.log(alpha) - rx * la_t
          + betaln(a, b + x) - betaln(a, b) + soft)
    if not gradient:
        return ll, None
    sig = np.where(has, expit(d), 0.0)
    g = np.empty((x.size, 4))
    g[:, 0] = r * (digamma(rx) - digamma(r) + np.log(alpha) - la_t + sig * (la_t - la_tx))
    g[:, 1] = alpha * (r / alpha - rx / (alpha + t_) + sig * rx * (1.0 / (alpha + t_) - 1.0 / (alpha + tx)))
    dab = digamma(a + b)
    dabx = digamma(a + b + x)
    g[:, 2] = a * (dab - dabx) + sig
    g[:, 3] = b * (digamma(b + x) - dabx - digamma(b) + dab - sig / bx)
    return ll, g


def paretonbd_rows(r: float, alpha: Array, s: float, beta: Array, x: Array, tx: Array, t_: Array,
                   gradient: bool = True) -> tuple[Array, Array | None]:
    """Pareto/NBD log-likelihood per row (FH05 eq. 3, in the positive-integral form of
    `clientfolio.models._likelihoods.paretonbd_loglik`) with one ``alpha, beta`` per row.

    Gradient columns: ``(log r, log alpha, log s, log beta)``.
    """
    l1, a1, b1, p1, q1 = log_j_rows(tx, alpha, beta, r + x, np.full_like(x, s + 1.0))
    l2, a2, b2, p2, q2 = log_j_rows(t_, alpha, beta, r + x + 1.0, np.full_like(x, s))
    e1 = np.log(s) + l1
    e2 = np.log(r + x) + l2
    m = np.logaddexp(e1, e2)
    ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + m
    if not gradient:
        return ll, None
    om = np.exp(e1 - m)
    g = np.empty((x.size, 4))
    g[:, 0] = r * (digamma(r + x) - digamma(r) + np.log(alpha) + om * p1 + (1.0 - om) * (1.0 / (r + x) + p2))
    g[:, 1] = alpha * (r / alpha + om * a1 + (1.0 - om) * a2)
    g[:, 2] = s * (np.log(beta) + om * (1.0 / s + q1) + (1.0 - om) * q2)
    g[:, 3] = beta * (s / beta + om * b1 + (1.0 - om) * b2)
    return ll, g


# ----------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------


class _CovariateModel:
    """Shared fitting, errors and plumbing of the covariate models.

    The parameter vector is ``(log r, log <scale0>, log <shape/scale0>, log <scale0>, coefficients)``;
    ``_links`` says, for each of the four row parameters, which design matrix moves it and with which
    sign (``log row_param = log base + sign * X @ gamma``).
    """

    _base_names: ClassVar[tuple[str, str, str, str]]
    _plain: ClassVar[type]
    # per row parameter: (process whose covariates move it or None, sign, coefficient prefix)
    _links: ClassVar[tuple[tuple[str | None, float, str], ...]]

    def __init__(
        self,
        *,
        purchase_covariates: Sequence[str] = (),
        dropout_covariates: Sequence[str] = (),
        reference: Mapping[str, str] | None = None,
        penalizer_coef: float = 0.0,
        max_iter: int = 2000,
    ) -> None:
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
        self.reference = reference
        self.penalizer_coef = penalizer_coef
        self.max_iter = max_iter

    # -- scikit-learn plumbing ---------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor settings, as scikit-learn's ``get_params``."""
        return {"purchase_covariates": self.purchase_covariates, "dropout_covariates": self.dropout_covariates,
                "reference": self.reference, "penalizer_coef": self.penalizer_coef, "max_iter": self.max_iter}

    def set_params(self, **params: Any) -> Self:
        """Change constructor settings, as scikit-learn's ``set_params``."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}; valid: {', '.join(valid)}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        default = type(self)().get_params()
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if default[k] != v)
        text = f"{type(self).__name__}({args})"
        if hasattr(self, "params_"):
            text += "  # fitted: " + ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return text

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: call fit(data) first.")

    # -- design ------------------------------------------------------------------

    def _processes(self) -> dict[str, tuple[str, ...]]:
        def names(v: Sequence[str] | str) -> tuple[str, ...]:
            return (v,) if isinstance(v, str) else tuple(v)

        return {"purchase": names(self.purchase_covariates), "dropout": names(self.dropout_covariates)}

    def _designs(self, data: Data, owner: str) -> dict[str, Array]:
        n = _n_rows(data)
        return {p: (self.encodings_[p].transform(data, owner) if self.encodings_[p].columns else np.zeros((n, 0)))
                for p in ("purchase", "dropout")}

    def _coef_layout(self) -> list[tuple[int, str | None, float, slice]]:
        """Per row parameter: (index of its base parameter, process, sign, slice of its coefficients)."""
        layout, pos = [], 4
        for j, (proc, sign, _) in enumerate(self._links):
            k = len(self.encodings_[proc].names) if proc else 0
            layout.append((j, proc, sign, slice(pos, pos + k)))
            pos += k
        return layout

    def _names(self) -> list[str]:
        names = list(self._base_names)
        for proc, _, prefix in self._links:
            if proc:
                names.extend(f"{prefix}[{n}]" for n in self.encodings_[proc].names)
        return names

    def _row_log_params(self, theta: Array, designs: Mapping[str, Array], n: int) -> list[Array]:
        out = []
        for j, proc, sign, sl in self._coef_layout():
            lp = np.full(n, theta[j])
            if proc and sl.stop > sl.start:
                lp = lp + sign * (designs[proc] @ theta[sl])
            out.append(lp)
        return out

    # -- fitting -------------------------------------------------------------------

    def fit(self, data: Data) -> Self:
        """Estimate base parameters and covariate coefficients by maximum likelihood; returns ``self``.

        ``data``: one row per customer (or per group of customers with ``weights``) with
        ``frequency, recency, T`` and the covariate columns.
        """
        name = type(self).__name__
        procs = self._processes()
        cols = read_rfm(data, owner=name)
        self.encodings_ = {p: fit_encoding(data, c, _ref_for(self.reference, c), owner=name)
                           for p, c in procs.items()}
        unused = set(self.reference or {}) - {c for cs in procs.values() for c in cs}
        if unused:
            raise ValueError(f"{name}: reference given for {sorted(unused)}, which are not covariates.")
        designs = self._designs(data, name)
        v = cols.values
        weights = v.get("weights")
        joint = np.hstack([designs["purchase"], designs["dropout"]])
        values = {"frequency": v["frequency"], "recency": v["recency"], "T": v["T"]}
        values |= {f"_c{i}": joint[:, i] for i in range(joint.shape[1])}
        stats = collapse(values, weights)
        if stats.total_weight <= 0:
            raise SchemaError(f"{name}: no customers to fit (empty data or all weights 0).")
        kp = designs["purchase"].shape[1]
        xc = np.column_stack([stats.values[f"_c{i}"] for i in range(joint.shape[1])]) if joint.shape[1] \
            else np.zeros((stats.n_rows, 0))
        self._stats = (stats.values["frequency"], stats.values["recency"], stats.values["T"], stats.weights,
                       {"purchase": xc[:, :kp], "dropout": xc[:, kp:]})
        try:
            self._fit_stats(stats.total_weight, stats.n_rows)
        finally:
            del self._stats
        return self

    def _plain_start(self) -> Any:
        x, tx, t_, w, _ = self._stats
        frame = pd.DataFrame({"frequency": x, "recency": tx, "T": t_, "weights": w})
        return self._plain().fit(frame)

    def _loglik(self, theta: Array, gradient: bool) -> tuple[float, Array | None]:
        x, tx, t_, w, designs = self._stats
        lp = self._row_log_params(theta, designs, x.size)
        rows = [np.exp(v) for v in lp]
        ll, g = self._rows(float(rows[0][0]), rows[1], rows[2], rows[3], x, tx, t_, gradient)
        total = float(np.dot(w, ll))
        if not gradient:
            return total, None
        assert g is not None
        grad = np.zeros(theta.size)
        for j, proc, sign, sl in self._coef_layout():
            wg = w * g[:, j]
            grad[j] = wg.sum()
            if proc and sl.stop > sl.start:
                grad[sl] = sign * (designs[proc].T @ wg)
        return total, grad

    def _objective(self, total: float, counter: dict[str, int]) -> Any:
        coef = float(self.penalizer_coef)

        def fun(theta: Array) -> tuple[float, Array]:
            counter["n"] += 1
            with np.errstate(all="ignore"):
                ll, grad = self._loglik(theta, True)
            assert grad is not None
            f, g = -ll / total, -grad / total
            if coef:  # L2 on the coefficients only (as CLVTools' reg.lambdas)
                f += coef * float(np.sum(theta[4:] ** 2))
                g = g.copy()
                g[4:] += 2.0 * coef * theta[4:]
            if not (np.isfinite(f) and np.all(np.isfinite(g))):
                return np.inf, np.zeros_like(theta)
            return float(f), g

        return fun

    def _fit_stats(self, total: float, n_distinct: int) -> None:
        name = type(self).__name__
        plain = self._plain_start()
        names = self._names()
        theta0 = np.zeros(len(names))
        theta0[:4] = np.log([plain.params_[n] for n in plain._param_names])
        counter = {"n": 0}
        fun = self._objective(total, counter)
        f0, _ = fun(theta0)
        if not np.isfinite(f0):
            raise ConvergenceError(f"{name}: the log-likelihood is not finite at the plain model's estimates.")
        res = _minimize(fun, theta0, int(self.max_iter))
        theta, f, g = res.x, float(res.fun), np.asarray(res.jac)
        hess = _fd_hessian(fun, theta, g)
        theta, f, g, _ = _newton(fun, theta, f, g, hess, max_steps=5, tol=1e-10)
        hess = _fd_hessian(fun, theta, g)
        grad_max = float(np.max(np.abs(g)))
        shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, self._natural(theta), strict=True))
        if np.any(np.abs(theta) >= _LOG_BOUND - 1e-6):
            raise ConvergenceError(f"{name}: a parameter ran to the edge of the allowed range ({shown}): the data "
                                   "do not pin it down (a level with too few customers, or a level whose customers "
                                   "all behave alike). Merge rare levels, or set penalizer_coef=0.01.")
        if not np.isfinite(f) or grad_max > _GRAD_TOL:
            raise ConvergenceError(f"{name}: the optimiser stopped before the maximum (largest gradient "
                                   f"{grad_max:.2g} at {shown}). Try a larger max_iter or penalizer_coef=0.01.")
        h = 0.5 * (hess + hess.T) * total
        try:
            chol = np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            raise ConvergenceError(f"{name}: the log-likelihood is flat at {shown} (Hessian not positive definite):"
                                   " some coefficient is not identified by these data (e.g. two covariates that "
                                   "always move together). Drop one, or set penalizer_coef=0.01.") from None
        inv = np.linalg.inv(chol)
        cov_theta = inv.T @ inv
        se_theta = np.sqrt(np.diag(cov_theta))
        loose = [n for n, s in zip(names, se_theta, strict=True) if not s <= _SE_LOG_LIMIT]
        if loose:
            raise ConvergenceError(f"{name}: {', '.join(loose)} not identified by these data (95% intervals "
                                   f"spanning orders of magnitude; {shown}). Merge rare levels or drop covariates.")
        values = self._natural(theta)
        jac = np.ones(len(names))
        jac[:4] = values[:4]                     # d param / d log param for the base parameters
        ll = -f * total
        if self.penalizer_coef:
            ll = self._loglik(theta, False)[0]
        k = len(names)
        self.params_ = dict(zip(names, map(float, values), strict=True))
        self.standard_errors_ = dict(zip(names, map(float, jac * se_theta), strict=True))
        lo = np.where(np.arange(k) < 4, np.exp(theta - _Z95 * se_theta), theta - _Z95 * se_theta)
        hi = np.where(np.arange(k) < 4, np.exp(theta + _Z95 * se_theta), theta + _Z95 * se_theta)
        self.confidence_intervals_ = {n: (float(a), float(b)) for n, a, b in zip(names, lo, hi, strict=True)}
        self.covariance_ = pd.DataFrame(cov_theta * np.outer(jac, jac), index=names, columns=names)
        self.log_likelihood_ = float(ll)
        self.n_customers_ = int(round(total)) if total == round(total) else float(total)
        self.n_distinct_ = n_distinct
        self.aic_ = float(2 * k - 2 * ll)
        self.bic_ = float(k * np.log(total) - 2 * ll)
        self.plain_log_likelihood_ = float(plain.log_likelihood_)
        df = k - 4
        self.lr_statistic_ = float(max(2.0 * (ll - plain.log_likelihood_), 0.0))
        self.lr_p_value_ = float(sps.chi2.sf(self.lr_statistic_, df)) if df > 0 else 1.0
        self.convergence_ = {"converged": True, "iterations": int(res.nit), "function_evaluations": counter["n"],
                             "max_abs_gradient": grad_max}

    def _natural(self, theta: Array) -> Array:
        out = theta.copy()
        out[:4] = np.exp(theta[:4])
        return out

    def _theta(self) -> Array:
        self._check_fitted()
        vals = np.array([self.params_[n] for n in self._names()], dtype=float)
        vals[:4] = np.log(vals[:4])
        return vals

    def summary(self) -> pd.DataFrame:
        """Estimates, standard errors, 95% intervals (base: log scale; coefficients: normal) and effects.

        ``rate_multiplier`` is ``exp(coefficient)`` read in the direction of the model: for a purchase
        coefficient, the factor on the mean purchase rate against the reference level (or per unit);
        for a Pareto/NBD drop-out coefficient, the factor on the mean drop-out rate; for BG/NBD,
        the factor on the drop-out Beta's ``a`` or ``b``.
        """
        self._check_fitted()
        names = list(self.params_)
        est = pd.Series(self.params_)
        out = pd.DataFrame({
            "estimate": est, "std_error": pd.Series(self.standard_errors_),
            "lower_95": pd.Series({n: v[0] for n, v in self.confidence_intervals_.items()}),
            "upper_95": pd.Series({n: v[1] for n, v in self.confidence_intervals_.items()}),
        }).loc[names]
        coef = ~out.index.isin(self._base_names)
        out["rate_multiplier"] = np.where(coef, np.exp(out["estimate"]), np.nan)
        if coef.any():
            z = out["estimate"] / out["std_error"]
            out["p_value"] = np.where(coef, 2 * sps.norm.sf(np.abs(z)), np.nan)
        return out

    def row_params(self, data: Data) -> pd.DataFrame:
        """Each row's own model parameters (``r``, ``alpha`` and the drop-out pair) implied by its covariates."""
        theta = self._theta()
        designs = self._designs(data, f"{type(self).__name__}.row_params")
        lp = self._row_log_params(theta, designs, _n_rows(data))
        cols = [n.rstrip("0") for n in self._base_names]
        out = pd.DataFrame({c: np.exp(v) for c, v in zip(cols, lp, strict=True)})
        if isinstance(data, pd.DataFrame):
            out.index = data.index
        return out

    def _prep(self, data: Data, owner: str, rfm: bool = True) -> tuple[tuple[Array, ...], list[Array], Any]:
        self._check_fitted()
        theta = self._theta()
        designs = self._designs(data, owner)
        n = _n_rows(data)
        rows = [np.exp(v) for v in self._row_log_params(theta, designs, n)]
        if rfm:
            cols = read_rfm(data, owner=owner, with_weights=False)
            return tuple(cols.values[c] for c in ("frequency", "recency", "T")), rows, cols.index
        index = data.index if isinstance(data, pd.DataFrame) else None
        return (), rows, index

    def _rows(self, r: float, p1: Array, p2: Array, p3: Array, x: Array, tx: Array, t_: Array,
              gradient: bool) -> tuple[Array, Array | None]:
        raise NotImplementedError

    def loglik_rows(self, data: Data) -> Array:
        """Each row's log-likelihood at the fitted parameters (weights not applied)."""
        (x, tx, t_), rows, _ = self._prep(data, f"{type(self).__name__}.loglik_rows")
        return self._rows(float(rows[0][0]) if rows[0].size else self.params_["r"], rows[1], rows[2], rows[3],
                          x, tx, t_, False)[0]

    @classmethod
    def from_params(cls, params: Mapping[str, float], data: Data, **settings: Any) -> Self:
        """A model with given parameters (base and coefficients), encoding its covariates as ``data`` does."""
        model = cls(**settings)
        name = cls.__name__
        model.encodings_ = {p: fit_encoding(data, c, _ref_for(model.reference, c), owner=name)
                            for p, c in model._processes().items()}
        names = model._names()
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise ValueError(f"{name}.from_params: expected {names}; missing {missing or 'none'}, "
                             f"unknown {extra or 'none'}.")
        model.params_ = {n: float(params[n]) for n in names}
        bad = [n for n in model._base_names if not model.params_[n] > 0]
        if bad:
            raise ValueError(f"{name}.from_params: {bad} must be positive.")
        return model


def _ref_for(reference: Mapping[str, str] | None, columns: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in (reference or {}).items() if k in columns}


def _series(values: Array, index: Any, name: str) -> pd.Series | Array:
    return pd.Series(values, index=index, name=name) if index is not None else values


class BGNBDWithCovariates(_CovariateModel):
    """BG/NBD with time-invariant covariates (Fader & Hardie 2007, note 019).

    ``alpha_i = alpha0 exp(-purchase' x)``; ``a_i = a0 exp(dropout_a' x)``, ``b_i = b0 exp(dropout_b' x)``.
    Fit on ``frequency, recency, T`` (+ ``weights``) and the covariate columns.  Parameters:
    ``r, alpha0, a0, b0`` and ``purchase[...]``, ``dropout_a[...]``, ``dropout_b[...]``.

    Examples
    --------
    >>> import pandas as pd
    >>> from clientfolio.models.covariates import BGNBDWithCovariates
    >>> rows = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86], "vip": [0.0]})
    >>> m = BGNBDWithCovariates.from_params(
    ...     {"r": 0.243, "alpha0": 4.414, "a0": 0.793, "b0": 2.426, "purchase[vip]": 0.5,
    ...      "dropout_a[vip]": 0.0, "dropout_b[vip]": 0.0}, rows,
    ...     purchase_covariates=["vip"], dropout_covariates=["vip"])
    >>> round(float(m.predict_purchases(39, rows).iloc[0]), 3)  # vip = 0: the plain model's 1.226
    1.226
    """

    _base_names = ("r", "alpha0", "a0", "b0")
    _plain = BGNBD
    _links = ((None, 1.0, ""), ("purchase", -1.0, "purchase"), ("dropout", 1.0, "dropout_a"),
              ("dropout", 1.0, "dropout_b"))

    def _rows(self, r: float, alpha: Array, a: Array, b: Array, x: Array, tx: Array, t_: Array,
              gradient: bool) -> tuple[Array, Array | None]:
        return bgnbd_rows(r, alpha, a, b, x, tx, t_, gradient)

    def predict_alive(self, data: Data) -> Any:
        """P(still active at T) per row, each with its own parameters (FHL05 eq. 13)."""
        (x, tx, t_), rows, index = self._prep(data, "BGNBDWithCovariates.predict_alive")
        return _series(self._alive(rows, x, tx, t_), index, "p_alive")

    @staticmethod
    def _alive(rows: list[Array], x: Array, tx: Array, t_: Array) -> Array:
        r, alpha, a, b = rows
        pos = x > 0
        term = np.full_like(x, -np.inf)
        term[pos] = (np.log(a[pos]) - np.log(b[pos] + x[pos] - 1.0)
                     + (r[pos] + x[pos]) * (np.log(alpha[pos] + t_[pos]) - np.log(alpha[pos] + tx[pos])))
        return expit(-term)

    def predict_purchases(self, t: ArrayLike, data: Data) -> Any:
        """Expected purchases in the next ``t`` periods per row (FHL05 eq. 10 with each row's parameters)."""
        (x, tx, t_), rows, index = self._prep(data, "BGNBDWithCovariates.predict_purchases")
        horizon = per_row(t, x.size)
        return _series(self._conditional(rows, horizon, x, tx, t_), index, "expected_purchases")

    def expected_purchases_new_customer(self, t: ArrayLike, data: Data) -> Array:
        """Unconditional E[X(t)] of a new customer with each row's covariates (``t`` scalar or per row)."""
        _, rows, _ = self._prep(data, "BGNBDWithCovariates.expected_purchases_new_customer", rfm=False)
        n = rows[0].size
        horizon = per_row(t, n)
        zeros = np.zeros(n)
        return self._conditional(rows, horizon, zeros, zeros, zeros)

    def _conditional(self, rows: list[Array], t: Array, x: Array, tx: Array, t_: Array) -> Array:
        r, alpha, a, b = rows
        z = t / (alpha + t_ + t)
        c = a + b + x - 1.0
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            tail = np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
            expected = (c / (a - 1.0)) * (1.0 - tail)
            bad = ~np.isfinite(expected)
            if np.any(bad):  # huge a, b: the Beta is a point p0 (see bgnbd.py)
                p0 = a[bad] / (a[bad] + b[bad])
                base = alpha[bad] + t_[bad]
                expected = expected.copy()
                expected[bad] = -np.expm1((r[bad] + x[bad]) * (np.log(base) - np.log(base + p0 * t[bad]))) / p0
        return np.where(t > 0, expected, 0.0) * self._alive(rows, x, tx, t_)


class ParetoNBDWithCovariates(_CovariateModel):
    """Pareto/NBD with time-invariant covariates (Fader & Hardie 2007, note 019).

    ``alpha_i = alpha0 exp(-purchase' x)``, ``beta_i = beta0 exp(-dropout' x)``.  Parameters:
    ``r, alpha0, s, beta0`` and ``purchase[...]``, ``dropout[...]``.
    """

    _base_names = ("r", "alpha0", "s", "beta0")
    _plain = ParetoNBD
    _links = ((None, 1.0, ""), ("purchase", -1.0, "purchase"), (None, 1.0, ""), ("dropout", -1.0, "dropout"))

    def _rows(self, r: float, alpha: Array, s: Array, beta: Array, x: Array, tx: Array, t_: Array,
              gradient: bool) -> tuple[Array, Array | None]:
        return paretonbd_rows(r, alpha, float(s[0]) if np.size(s) else 1.0, beta, x, tx, t_, gradient)

    def _alive_rows(self, rows: list[Array], x: Array, tx: Array, t_: Array) -> Array:
        r, alpha, s, beta = rows
        l1 = log_j_rows(tx, alpha, beta, r + x, s + 1.0)[0]
        l2 = log_j_rows(t_, alpha, beta, r + x + 1.0, s.copy())[0]
        bracket = np.logaddexp(np.log(s) + l1, np.log(r + x) + l2)
        log_alive = -(r + x) * np.log(alpha + t_) - s * np.log(beta + t_)
        return np.exp(np.minimum(log_alive - bracket, 0.0))

    def predict_alive(self, data: Data) -> Any:
        """P(still active at T) per row (FH05 eq. 11 with each row's parameters)."""
        (x, tx, t_), rows, index = self._prep(data, "ParetoNBDWithCovariates.predict_alive")
        return _series(self._alive_rows(rows, x, tx, t_), index, "p_alive")

    def predict_purchases(self, t: ArrayLike, data: Data) -> Any:
        """Expected purchases in the next ``t`` periods per row (FH05 eq. 13 with each row's parameters)."""
        (x, tx, t_), rows, index = self._prep(data, "ParetoNBDWithCovariates.predict_purchases")
        r, alpha, s, beta = rows
        horizon = per_row(t, x.size)
        s0 = float(s[0]) if s.size else 1.0
        rate = (r + x) / (alpha + t_) * (beta + t_)
        expected = rate * _power_ratio_term(s0 - 1.0, horizon, beta + t_) * self._alive_rows(rows, x, tx, t_)
        return _series(expected, index, "expected_purchases")

    def expected_purchases_new_customer(self, t: ArrayLike, data: Data) -> Array:
        """Unconditional E[X(t)] of a new customer with each row's covariates (FH05 eq. 17)."""
        _, rows, _ = self._prep(data, "ParetoNBDWithCovariates.expected_purchases_new_customer", rfm=False)
        r, alpha, s, beta = rows
        horizon = per_row(t, r.size)
        s0 = float(s[0]) if s.size else 1.0
        return r * beta / alpha * _power_ratio_term(s0 - 1.0, horizon, beta)


COVARIATE_MODELS: dict[str, type[_CovariateModel]] = {"bgnbd": BGNBDWithCovariates,
                                                       "paretonbd": ParetoNBDWithCovariates}
PLAIN_MODELS: dict[str, type] = {"bgnbd": BGNBD, "paretonbd": ParetoNBD}


# ----------------------------------------------------------------------------
# Separate fits per known group
# ----------------------------------------------------------------------------


class GroupedModel:
    """One plain BG/NBD or Pareto/NBD per level of a known attribute (``group``).

    A level with fewer than ``min_customers`` customers, or whose own fit does not converge, is
    scored with the model fitted on all customers instead (``pooled_levels_`` lists them, with the
    reason, in ``notes_``).  Predictions route each row to its level's model; an unseen level uses
    the pooled model too.
    """

    def __init__(self, *, model: str = "bgnbd", group: str = "group", min_customers: int = 20) -> None:
        self.model = model
        self.group = group
        self.min_customers = min_customers

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor settings, as scikit-learn's ``get_params``."""
        return {"model": self.model, "group": self.group, "min_customers": self.min_customers}

    def set_params(self, **params: Any) -> Self:
        """Change constructor settings."""
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"Invalid parameter {k!r} for GroupedModel.")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"GroupedModel(model={self.model!r}, group={self.group!r}, min_customers={self.min_customers})"

    def fit(self, data: pd.DataFrame) -> Self:
        """Fit the pooled model and one model per level of ``data[group]``; returns ``self``."""
        if self.model not in PLAIN_MODELS:
            raise ValueError(f"GroupedModel: model must be one of {sorted(PLAIN_MODELS)}, got {self.model!r}.")
        if not isinstance(data, pd.DataFrame) or self.group not in data:
            raise SchemaError(f"GroupedModel: data needs a DataFrame with the group column {self.group!r}.")
        cls = PLAIN_MODELS[self.model]
        levels = pd.Series(_categorical(data[self.group]), index=data.index)
        weights = data["weights"] if "weights" in data else pd.Series(1.0, index=data.index)
        self.pooled_ = cls().fit(data)
        self.models_: dict[str, Any] = {}
        self.notes_: list[str] = []
        self.pooled_levels_: list[str] = []
        self.group_sizes_ = weights.groupby(levels).sum().to_dict()
        for level, rows in data.groupby(levels, sort=True):
            size = float(self.group_sizes_[level])
            if size < self.min_customers:
                self.pooled_levels_.append(level)
                self.notes_.append(f"{self.group}={level}: {size:.0f} customers (< {self.min_customers}); "
                                   "scored with the model of all customers")
                continue
            try:
                self.models_[level] = cls().fit(rows)
            except ClientfolioError as exc:
                self.pooled_levels_.append(level)
                self.notes_.append(f"{self.group}={level}: own fit failed ({exc}); scored with the model of all "
                                   "customers")
        ll = 0.0
        for level, rows in data.groupby(levels, sort=True):
            m = self.models_.get(level, self.pooled_)
            ll += float(np.dot(np.asarray(rows["weights"] if "weights" in rows else np.ones(len(rows))),
                               _plain_loglik_rows(m, rows)))
        self.log_likelihood_ = ll
        self.n_params_ = 4 * (len(self.models_) + (1 if self.pooled_levels_ else 0))
        self.n_customers_ = float(weights.sum())
        self.bic_ = float(self.n_params_ * np.log(self.n_customers_) - 2 * ll)
        self.params_ = {lv: dict(m.params_) for lv, m in self.models_.items()} | {"(pooled)": dict(self.pooled_.params_)}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("This GroupedModel instance is not fitted yet: call fit(data) first.")

    def _route(self, data: pd.DataFrame, call: Any) -> Array:
        self._check_fitted()
        if self.group not in data:
            raise SchemaError(f"GroupedModel: data has no group column {self.group!r}.")
        levels = _categorical(data[self.group])
        out = np.empty(len(data))
        for level in pd.unique(levels):
            idx = np.flatnonzero(levels == level)
            out[idx] = np.asarray(call(self.models_.get(level, self.pooled_), data.iloc[idx], idx), dtype=float)
        return out

    def predict_purchases(self, t: ArrayLike, data: pd.DataFrame) -> pd.Series:
        """Expected purchases in the next ``t`` periods per row, from the row's group model."""
        horizon = per_row(t, len(data))
        vals = self._route(data, lambda m, d, idx: m.predict_purchases(horizon[idx], d[["frequency", "recency", "T"]]))
        return pd.Series(vals, index=data.index, name="expected_purchases")

    def predict_alive(self, data: pd.DataFrame) -> pd.Series:
        """P(alive) per row, from the row's group model."""
        vals = self._route(data, lambda m, d, idx: m.predict_alive(d[["frequency", "recency", "T"]]))
        return pd.Series(vals, index=data.index, name="p_alive")

    def expected_purchases_new_customer(self, t: ArrayLike, data: pd.DataFrame) -> Array:
        """E[X(t)] of a new customer in each row's group (``t`` scalar or per row)."""
        self._check_fitted()
        if self.group not in data:
            raise SchemaError(f"GroupedModel: data has no group column {self.group!r}.")
        horizon = per_row(t, len(data))
        levels = _categorical(data[self.group])
        out = np.empty(len(data))
        for level in pd.unique(levels):  # no per-level copy of the rows: only the horizon is needed
            idx = np.flatnonzero(levels == level)
            out[idx] = self.models_.get(level, self.pooled_).expected_purchases_new_customer(horizon[idx])
        return out


def _plain_loglik_rows(model: Any, rows: pd.DataFrame) -> Array:
    x, tx, t_ = (rows[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    p = model.params_
    if isinstance(model, ParetoNBD):
        n = x.size
        return paretonbd_rows(p["r"], np.full(n, p["alpha"]), p["s"], np.full(n, p["beta"]), x, tx, t_, False)[0]
    n = x.size
    return bgnbd_rows(p["r"], np.full(n, p["alpha"]), np.full(n, p["a"]), np.full(n, p["b"]), x, tx, t_, False)[0]


def n_params(model: Any) -> int:
    """Number of estimated parameters (for BIC-style comparisons)."""
    if isinstance(model, GroupedModel):
        return model.n_params_
    return len(model.params_)


__all__ = [
    "BGNBDWithCovariates",
    "COVARIATE_MODELS",
    "CovariateEncoding",
    "GroupedModel",
    "MISSING_LEVEL",
    "ParetoNBDWithCovariates",
    "bgnbd_rows",
    "fit_encoding",
    "log_j_rows",
    "paretonbd_rows",
]
