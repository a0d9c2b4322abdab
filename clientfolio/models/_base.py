"""Shared machinery of the customer-base models.

* reading and validating the input columns, with errors that name the column
  and the offending row/customer;
* collapsing rows with identical sufficient statistics into weighted rows, so
  that fitting cost grows with distinct statistics, not customers;
* maximum likelihood on log-parameters (L-BFGS-B, then Newton polishing),
  Hessian-based standard errors and confidence intervals, and convergence
  checks that raise `ConvergenceError` with advice;
* the scikit-learn estimator plumbing (`get_params`, fitted checks, repr).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize

from clientfolio.core.errors import ConvergenceError, NotFittedError, SchemaError

Array = NDArray[np.float64]
Data: TypeAlias = pd.DataFrame | Mapping[str, ArrayLike]

_LOG_BOUND = 30.0          # |log parameter| limit: parameters within e^-30 .. e^30
_GRAD_TOL = 1e-5           # max |gradient| of the mean log-likelihood at the optimum
_SUBSAMPLE_ROWS = 40_000   # above this many distinct rows, warm-start on a sample
_SUBSAMPLE_CUSTOMERS = 50_000
_NEWTON_TOL = 1e-9         # max |gradient| of the mean log-likelihood where exact Newton stops
# where the warm start on a sample stops: its optimum is off the full-data one by sampling noise (a mean
# gradient of ~1e-3 on every customer), so converging it further buys nothing
_WARM_TOL = 1e-5
_Z95 = 1.959963984540054
_SE_LOG_LIMIT = 10.0       # a log-parameter standard error above this: a 95% interval wider than e^+-20


def _dot(a: ArrayLike, b: ArrayLike) -> float:
    """Inner product without BLAS.

    BLAS ``ddot`` starts threads for long vectors; on a busy machine their
    spin-waiting made fits several times slower than this single-threaded loop.
    """
    return float(np.einsum("i,i->", np.asarray(a, dtype=float), np.asarray(b, dtype=float)))


# ----------------------------------------------------------------------------
# Reading and validating columns
# ----------------------------------------------------------------------------


@dataclass
class Columns:
    """Validated numeric columns plus what is needed to name rows in messages."""

    values: dict[str, Array]
    index: pd.Index | None          # set when the input was a DataFrame
    customer_ids: NDArray[Any] | None
    owner: str

    def __len__(self) -> int:
        return len(next(iter(self.values.values())))

    def where(self, position: int) -> str:
        """Describe one row for an error message: position and customer."""
        label: Any = None
        if self.customer_ids is not None:
            label = self.customer_ids[position]
        elif self.index is not None and not isinstance(self.index, pd.RangeIndex):
            label = self.index[position]
        text = f"row {position}"
        if label is not None:
            text += f" (customer {label!r})"
        return text

    def fail(self, column: str, bad: NDArray[np.bool_], problem: str, hint: str) -> None:
        """Raise `SchemaError` if any row is flagged in ``bad``."""
        if not bad.any():
            return
        rows = np.flatnonzero(bad)
        first = int(rows[0])
        shown = ", ".join(f"{c}={_fmt(self.values[c][first])}" for c in self.values if c != "weights")
        more = f" and {rows.size - 1} more row(s)" if rows.size > 1 else ""
        raise SchemaError(
            f"{self.owner}: column '{column}': {problem} at {self.where(first)} "
            f"[{shown}]{more}. {hint}"
        )


def _fmt(value: float) -> str:
    return f"{value:g}" if np.isfinite(value) else str(value)


def read_columns(
    data: Data,
    required: Sequence[str],
    optional: Sequence[str] = (),
    *,
    owner: str,
) -> Columns:
    """Pull ``required`` (and present ``optional``) columns as float arrays.

    ``data`` is a DataFrame or a mapping of column name to array-like (scalars
    are broadcast).  Missing, non-numeric and non-finite values raise
    `SchemaError` naming the column and the first offending row.
    """
    if isinstance(data, pd.DataFrame):
        present = list(data.columns)
        getter: Callable[[str], Any] = lambda c: data[c]  # noqa: E731
        index: pd.Index | None = data.index
    elif isinstance(data, Mapping):
        present = list(data.keys())
        getter = lambda c: data[c]  # noqa: E731
        index = None
    else:
        raise SchemaError(
            f"{owner}: expected a pandas DataFrame or a mapping of column name to "
            f"values with columns {', '.join(required)}; got {type(data).__name__}."
        )
    missing = [c for c in required if c not in present]
    if missing:
        raise SchemaError(
            f"{owner}: data has no column {', '.join(repr(c) for c in missing)} "
            f"(columns found: {', '.join(map(str, present)) or 'none'}). "
            f"Expected columns: {', '.join(required)}"
            + (f" (optional: {', '.join(optional)})" if optional else "")
            + ". See the definitions in clientfolio.models."
        )
    raw: dict[str, Any] = {}
    for name in [*required, *(c for c in optional if c in present)]:
        raw[name] = getter(name)
    arrays: dict[str, Array] = {}
    for name, value in raw.items():
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise SchemaError(
                f"{owner}: column '{name}' must be numeric; found values of type "
                f"{getattr(value, 'dtype', type(value).__name__)}. Convert it with "
                "pd.to_numeric before fitting."
            ) from None
        if arr.ndim > 1:
            raise SchemaError(f"{owner}: column '{name}' must be one-dimensional.")
        arrays[name] = arr
    n = max((a.size for a in arrays.values() if a.ndim == 1), default=1)
    for name, arr in arrays.items():
        if arr.ndim == 0:
            arrays[name] = np.full(n, float(arr))
        elif arr.size != n:
            raise SchemaError(
                f"{owner}: column '{name}' has {arr.size} values but other columns have {n}."
            )
    customer_ids = None
    if isinstance(data, pd.DataFrame) and "customer_id" in data.columns:
        customer_ids = data["customer_id"].to_numpy()
    cols = Columns(arrays, index, customer_ids, owner)
    for name, arr in arrays.items():
        cols.fail(name, ~np.isfinite(arr), "missing or infinite value",
                  "Drop or fill these rows before fitting.")
    if "weights" in arrays:
        cols.fail("weights", arrays["weights"] < 0, "negative weight",
                  "Weights count customers sharing a row and must be >= 0.")
    return cols


def check_count(cols: Columns, name: str, minimum: float = 0.0) -> None:
    """Counts must be whole numbers >= ``minimum``."""
    v = cols.values[name]
    cols.fail(name, v < minimum, f"value below {minimum:g}",
              f"'{name}' counts repeat purchases/periods and cannot be negative.")
    cols.fail(name, v != np.floor(v), "non-integer count",
              f"'{name}' must be a whole number of repeat purchase occasions/periods.")


# ----------------------------------------------------------------------------
# Collapsing identical rows
# ----------------------------------------------------------------------------


@dataclass
class Collapsed:
    """Distinct rows of the sufficient statistics with summed weights.

    ``values[c]`` holds column ``c`` per distinct row; ``uniques[c]`` the
    distinct values of that column and ``codes[c]`` each row's position in it,
    so models can evaluate per-column terms once per distinct value.
    """

    values: dict[str, Array]
    weights: Array
    uniques: dict[str, Array]
    codes: dict[str, NDArray[np.intp]]
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.weights.size)

    @property
    def total_weight(self) -> float:
        return float(self.weights.sum())

    def subset(self, rows: NDArray[np.intp], weights: Array) -> Collapsed:
        """Rows ``rows`` with new ``weights`` (used for warm-start samples)."""
        values = {c: v[rows] for c, v in self.values.items()}
        return collapse(values, weights)


_PARALLEL_ROWS = 200_000


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Two worker threads, created on first use (never at import)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="clientfolio-models")


def _factorize(v: Array) -> tuple[NDArray[np.intp], Array]:
    """Codes and distinct values of one column (a lookup table for small counts)."""
    if v.size and v.min() >= 0 and v.max() <= 100_000:
        as_int = v.astype(np.intp)
        if np.array_equal(as_int, v):
            present = np.bincount(as_int) > 0
            lookup = np.cumsum(present, dtype=np.intp) - 1
            return lookup[as_int], np.flatnonzero(present).astype(float)
    code, uniq = pd.factorize(v, sort=False)
    return code.astype(np.intp, copy=False), np.asarray(uniq, dtype=float)


def collapse(values: Mapping[str, Array], weights: Array | None = None) -> Collapsed:
    """Merge rows with identical values in every column, summing their weights.

    Hash-based (``pandas.factorize``): linear in the number of rows.
    """
    names = list(values)
    n = len(values[names[0]])
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=float)
        keep = w > 0
        if not keep.all():
            values = {c: v[keep] for c, v in values.items()}
            w = w[keep]
    if len(w) >= _PARALLEL_ROWS and len(names) > 1:
        # pandas' hashing releases the GIL: factorize the columns side by side
        factorized = list(_pool().map(_factorize, [values[c] for c in names]))
    else:
        factorized = [_factorize(values[c]) for c in names]
    codes = [code for code, _ in factorized]
    uniques = [uniq for _, uniq in factorized]
    sizes = [max(len(u), 1) for u in uniques]
    if math.prod(sizes) < 2**62:
        key = np.zeros(len(w), dtype=np.int64)
        for code, size in zip(codes, sizes, strict=True):
            key = key * size + code
        if math.prod(sizes) < 2**31:  # hashing int32 is faster
            key = key.astype(np.int32)
        group, key_uniq = pd.factorize(key, sort=False)
        rest = np.asarray(key_uniq, dtype=np.int64)
        row_codes: list[NDArray[np.intp]] = [np.empty(0, np.intp)] * len(names)
        for j in range(len(names) - 1, -1, -1):
            row_codes[j] = (rest % sizes[j]).astype(np.intp)
            rest = rest // sizes[j]
    else:  # pragma: no cover - astronomically many distinct values
        stacked = np.stack(codes, axis=1)
        uniq_rows, group = np.unique(stacked, axis=0, return_inverse=True)
        row_codes = [uniq_rows[:, j].astype(np.intp) for j in range(len(names))]
    n_groups = len(row_codes[0])
    summed = np.bincount(group, weights=w, minlength=n_groups)
    return Collapsed(
        values={c: uniques[j][row_codes[j]] for j, c in enumerate(names)},
        weights=np.asarray(summed, dtype=float),
        uniques=dict(zip(names, uniques, strict=True)),
        codes=dict(zip(names, row_codes, strict=True)),
    )


# ----------------------------------------------------------------------------
# Estimator base class
# ----------------------------------------------------------------------------


class BaseModel:
    """Maximum-likelihood customer-base model with the scikit-learn contract.

    Subclasses define ``_param_names``, ``_read_fit_data`` (validated columns to
    collapse), ``_loglik`` (weighted log-likelihood sum and its gradient on the
    log-parameters) and ``_initial_params``.
    """

    _param_names: ClassVar[tuple[str, ...]] = ()
    # customers in the warm-start sample of big fits (a model whose evaluations cost little per
    # row, but much per call, takes fewer)
    _warm_start_customers: ClassVar[int] = _SUBSAMPLE_CUSTOMERS
    # warm start by a trust-region Newton on the exact Hessian from the first step (instead of BFGS
    # steps, then Newton): fewer evaluations where the Hessian is cheap relative to the gradient
    _warm_trust_region: ClassVar[bool] = False

    def __init__(
        self,
        *,
        penalizer_coef: float = 0.0,
        initial_params: Mapping[str, float] | None = None,
        max_iter: int = 2000,
    ) -> None:
        self.penalizer_coef = penalizer_coef
        self.initial_params = initial_params
        self.max_iter = max_iter

    # -- scikit-learn plumbing ---------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor settings, as scikit-learn's ``get_params``."""
        return {
            "penalizer_coef": self.penalizer_coef,
            "initial_params": self.initial_params,
            "max_iter": self.max_iter,
        }

    def set_params(self, **params: Any) -> Self:
        """Change constructor settings, as scikit-learn's ``set_params``."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for {type(self).__name__}; "
                    f"valid parameters: {', '.join(valid)}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        default = BaseModel().get_params()
        changed = {k: v for k, v in self.get_params().items() if default.get(k) != v}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        text = f"{type(self).__name__}({args})"
        if hasattr(self, "params_"):
            shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            text += f"  # fitted: {shown}"
        return text

    @classmethod
    def from_params(cls, params: Mapping[str, float], **settings: Any) -> Self:
        """A model with given parameters, usable for predictions without fitting.

        Useful to apply published estimates or parameters fitted elsewhere.
        """
        model = cls(**settings)
        names = cls._param_names
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise ValueError(
                f"{cls.__name__}.from_params: expected parameters {', '.join(names)}; "
                f"missing {missing or 'none'}, unknown {extra or 'none'}."
            )
        values = {n: float(params[n]) for n in names}
        bad = [n for n, v in values.items() if not (np.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(
                f"{cls.__name__}.from_params: parameters must be positive and finite; "
                f"got {', '.join(f'{n}={values[n]}' for n in bad)}."
            )
        model.params_ = values
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call "
                "fit(data) first, or build it with from_params(...)."
            )

    def _p(self) -> tuple[float, ...]:
        self._check_fitted()
        return tuple(self.params_[n] for n in self._param_names)

    # -- hooks for subclasses ------------------------------------------------------

    def _read_fit_data(self, data: Any) -> tuple[dict[str, Array], Array | None]:
        raise NotImplementedError

    def _loglik(
        self, log_params: Array, stats: Collapsed, gradient: bool
    ) -> tuple[float, Array | None]:
        raise NotImplementedError

    def _initial_params(self, stats: Collapsed) -> dict[str, float]:
        raise NotImplementedError

    def _loglik_hessian(self, log_params: Array, stats: Collapsed) -> tuple[float, Array, Array] | None:
        """Log-likelihood sum, gradient and Hessian on log-parameters, if available analytically."""
        return None

    # -- fitting -------------------------------------------------------------------

    def fit(self, data: Any) -> Self:
        """Estimate the parameters by maximum likelihood; returns ``self``."""
        values, weights = self._read_fit_data(data)
        stats = collapse(values, weights)
        if stats.total_weight <= 0:
            raise SchemaError(
                f"{type(self).__name__}: no customers to fit (empty data or all weights 0)."
            )
        self._fit_collapsed(stats)
        return self

    def _start(self, stats: Collapsed) -> Array:
        start = dict(self._initial_params(stats))
        if self.initial_params is not None:
            unknown = set(self.initial_params) - set(self._param_names)
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}: initial_params has unknown names "
                    f"{sorted(unknown)}; expected {', '.join(self._param_names)}."
                )
            bad = {k: v for k, v in self.initial_params.items() if not (np.isfinite(v) and v > 0)}
            if bad:
                raise ValueError(
                    f"{type(self).__name__}: initial_params must be positive and finite; got {bad}."
                )
            start.update({k: float(v) for k, v in self.initial_params.items()})
        theta = np.log(np.array([start[n] for n in self._param_names], dtype=float))
        return np.clip(theta, -_LOG_BOUND + 1, _LOG_BOUND - 1)

    def _objective(self, stats: Collapsed) -> Callable[[Array], tuple[float, Array]]:
        """Penalised negative mean log-likelihood and its gradient in log-params."""
        total = stats.total_weight
        coef = float(self.penalizer_coef)
        counter = {"n": 0}

        def fun(theta: Array) -> tuple[float, Array]:
            counter["n"] += 1
            with np.errstate(all="ignore"):
                ll, grad = self._loglik(theta, stats, True)
                if grad is None:
                    grad = _fd_gradient(lambda th: self._loglik(th, stats, False)[0], theta)
            f = -ll / total
            g = -np.asarray(grad) / total
            if coef:
                params = np.exp(theta)
                f += coef * float(np.sum(params**2))
                g = g + 2.0 * coef * params**2
            if not np.isfinite(f) or not np.all(np.isfinite(g)):
                return np.inf, np.zeros_like(theta)
            return float(f), g

        fun.counter = counter  # type: ignore[attr-defined]
        return fun

    def _exact(
        self, stats: Collapsed, counter: dict[str, int]
    ) -> Callable[[Array], tuple[float, Array, Array]] | None:
        """Objective, gradient and analytic Hessian (objective scale), or None."""
        total = stats.total_weight
        coef = float(self.penalizer_coef)
        probe = self._loglik_hessian(np.zeros(len(self._param_names)), _tiny(stats))
        if probe is None:
            return None

        def fgh(theta: Array) -> tuple[float, Array, Array]:
            counter["n"] += 1
            with np.errstate(all="ignore"):
                ll, grad, hess = self._loglik_hessian(theta, stats)  # type: ignore[misc]
            f, g, h = -ll / total, -grad / total, -hess / total
            if coef:
                params2 = np.exp(2.0 * theta)
                f += coef * float(params2.sum())
                g = g + 2.0 * coef * params2
                h = h + np.diag(4.0 * coef * params2)
            if not (np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
                return np.inf, np.zeros_like(theta), np.eye(theta.size)
            return float(f), g, h

        return fgh

    def _fit_collapsed(self, stats: Collapsed) -> None:
        theta0 = self._start(stats)
        fun = self._objective(stats)
        exact = self._exact(stats, fun.counter)  # type: ignore[attr-defined]
        hess: Array | None = None
        n_iter = 0
        if self.initial_params is None and stats.n_rows > _SUBSAMPLE_ROWS:
            theta0, hess = self._warm_start(stats, theta0, need_hessian=exact is None)
        done = False
        if exact is not None and hess is None and stats.n_rows > _SUBSAMPLE_ROWS:
            # warm-started (or given a start): exact Newton converges in a few steps
            theta, f, g, hess, done = _newton_exact(exact, theta0, max_steps=8, tol=_NEWTON_TOL)
            if not np.isfinite(f):
                self._not_finite(theta0)
            if not done and self.initial_params is not None:
                # the given start is too far for Newton (its Hessian not positive definite there): get
                # close on a sample first, as without a start -- far cheaper than BFGS on every row
                near, _ = self._warm_start(stats, theta, need_hessian=False)
                theta, f, g, hess, done = _newton_exact(exact, near, max_steps=8, tol=_NEWTON_TOL)
                if not np.isfinite(f):
                    theta, f, g, hess = theta0, *exact(theta0)
        else:
            f, g = fun(theta0)
            if not np.isfinite(f):
                self._not_finite(theta0)
            theta = theta0
            if hess is not None:
                theta, f, g, done = _newton(fun, theta, f, g, hess, max_steps=12, tol=1e-7)
        if not done:
            res = _minimize(fun, theta, int(self.max_iter))
            theta, f, g, n_iter = res.x, float(res.fun), np.asarray(res.jac), int(res.nit)
            if exact is not None:
                theta, f, g, hess, _ = _newton_exact(exact, theta, max_steps=3, tol=_NEWTON_TOL)
        if exact is None:
            # Polish with Newton steps on a fresh Hessian, which also gives the errors.
            hess = _fd_hessian(fun, theta, g)
            theta, f, g, _ = _newton(fun, theta, f, g, hess, max_steps=3, tol=1e-10)
        assert hess is not None
        self._finish(stats, fun, theta, f, g, hess, n_iter)

    def _not_finite(self, theta0: Array) -> None:
        raise ConvergenceError(
            f"{type(self).__name__}: the log-likelihood is not finite at the starting values "
            f"{self._named(np.exp(theta0))}. Pass initial_params=... closer to "
            "plausible values, or check the data's time unit."
        )

    def _warm_start(
        self, stats: Collapsed, theta0: Array, need_hessian: bool = True
    ) -> tuple[Array, Array | None]:
        """Fit a random sample of customers first: a close start (and its Hessian)."""
        rng = np.random.default_rng(12345)
        # customers drawn with replacement: rows in proportion to their weights
        cum = np.cumsum(stats.weights)
        draws = np.sort(rng.random(self._warm_start_customers)) * cum[-1]  # sorted: faster search
        picks = np.searchsorted(cum, draws, side="right")
        rows, counts = np.unique(np.minimum(picks, stats.n_rows - 1), return_counts=True)
        sample = stats.subset(rows, counts.astype(float))
        fun = self._objective(sample)
        if not np.isfinite(fun(theta0)[0]):
            return theta0, None
        exact = None if need_hessian else self._exact(sample, {"n": 0})
        if exact is not None and self._warm_trust_region:
            theta = _trust_exact(exact, theta0, _WARM_TOL)
            if theta is not None:
                return theta, None
        if exact is not None:
            # a few BFGS steps to get near, then exact Newton (cheaper than BFGS to the end)
            near = _minimize(fun, theta0, 8).x
            theta, _, _, _, ok = _newton_exact(exact, near, max_steps=20, tol=_WARM_TOL)
            if ok:
                return theta, None
        res = _minimize(fun, theta0, int(self.max_iter))
        if not np.all(np.isfinite(res.x)):
            return theta0, None
        if not need_hessian:
            return res.x, None
        hess = _fd_hessian(fun, res.x, np.asarray(res.jac))
        try:
            np.linalg.cholesky(hess)
        except np.linalg.LinAlgError:
            return res.x, None
        return res.x, hess

    def _finish(
        self,
        stats: Collapsed,
        fun: Callable[[Array], tuple[float, Array]],
        theta: Array,
        f: float,
        g: Array,
        hess: Array,
        n_iter: int,
    ) -> None:
        name = type(self).__name__
        names = self._param_names
        params = np.exp(theta)
        at_bound = [n for n, th in zip(names, theta, strict=True) if abs(th) >= _LOG_BOUND - 1e-6]
        if at_bound:
            raise ConvergenceError(
                f"{name}: parameter(s) {', '.join(at_bound)} ran to the edge of the "
                f"allowed range ({self._named(params)}): the data do not pin them down. "
                "Common causes: too few repeat customers, a time unit far from the "
                "purchase rhythm (try weeks instead of days), or data the model does not "
                "describe (e.g. no sign of drop-out). Try penalizer_coef=0.001, "
                "another time unit, or a simpler model."
            )
        grad_max = float(np.max(np.abs(g)))
        if not np.isfinite(f) or grad_max > _GRAD_TOL:
            raise ConvergenceError(
                f"{name}: the optimiser stopped before the maximum (largest gradient "
                f"{grad_max:.2g} at {self._named(params)}). Try initial_params=... from "
                "a fit on a sample, a larger max_iter, or penalizer_coef=0.001."
            )
        total = stats.total_weight
        hess_total = 0.5 * (hess + hess.T) * total
        try:
            chol = np.linalg.cholesky(hess_total)
        except np.linalg.LinAlgError:
            raise ConvergenceError(
                f"{name}: the log-likelihood is flat or not at a maximum at "
                f"{self._named(params)} (Hessian not positive definite), so the "
                "parameters are not identified by these data. Try more data, "
                "penalizer_coef=0.001, or a simpler model."
            ) from None
        inv_chol = np.linalg.inv(chol)
        cov_log = inv_chol.T @ inv_chol
        se_log = np.sqrt(np.diag(cov_log))
        loose = [n for n, s in zip(names, se_log, strict=True) if not s <= _SE_LOG_LIMIT]
        if loose:
            # The optimiser may stop short of the edge on a nearly flat ridge (how far it walks
            # depends on the scipy release); an interval spanning many orders of magnitude is the
            # same verdict, reached independently of where it stopped.
            raise ConvergenceError(
                f"{name}: parameter(s) {', '.join(loose)} are not identified by these data: their "
                f"95% intervals span more than {2 * _Z95 * _SE_LOG_LIMIT / np.log(10):.0f} orders of magnitude "
                f"({self._named(params)}). Common causes: too few repeat customers or no sign of "
                "drop-out. Try more data, penalizer_coef=0.001, or a simpler model."
            )
        cov = cov_log * np.outer(params, params)
        ll = -f * total
        if self.penalizer_coef:
            ll = self._loglik(theta, stats, False)[0]
        k = len(names)
        self.params_ = dict(zip(names, map(float, params), strict=True))
        self.log_likelihood_ = float(ll)
        self.n_customers_ = float(total) if total != round(total) else int(round(total))
        self.n_distinct_ = stats.n_rows
        self.standard_errors_ = dict(zip(names, map(float, params * se_log), strict=True))
        with np.errstate(over="ignore"):  # a huge standard error gives an infinite bound
            self.confidence_intervals_ = {
                n: (float(np.exp(th - _Z95 * s)), float(np.exp(th + _Z95 * s)))
                for n, th, s in zip(names, theta, se_log, strict=True)
            }
        self.covariance_ = pd.DataFrame(cov, index=list(names), columns=list(names))
        self.aic_ = float(2 * k - 2 * ll)
        self.bic_ = float(k * np.log(total) - 2 * ll)
        self.convergence_ = {
            "converged": True,
            "iterations": n_iter,
            "function_evaluations": int(fun.counter["n"]),  # type: ignore[attr-defined]
            "max_abs_gradient": grad_max,
        }

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% confidence intervals (log-scale)."""
        self._check_fitted()
        if not hasattr(self, "standard_errors_"):
            return pd.DataFrame({"estimate": self.params_})
        low = {k: v[0] for k, v in self.confidence_intervals_.items()}
        high = {k: v[1] for k, v in self.confidence_intervals_.items()}
        return pd.DataFrame(
            {"estimate": self.params_, "std_error": self.standard_errors_,
             "lower_95": low, "upper_95": high}
        )

    def _named(self, params: Array) -> str:
        return ", ".join(f"{n}={v:.4g}" for n, v in zip(self._param_names, params, strict=True))


def _fd_gradient(f: Callable[[Array], float], theta: Array, h: float = 1e-6) -> Array:
    """Central-difference gradient (for models without an analytic one)."""
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


def _minimize(
    fun: Callable[[Array], tuple[float, Array]], theta: Array, max_iter: int
) -> optimize.OptimizeResult:
    """BFGS on the log-parameters, kept within +-_LOG_BOUND.

    Plain BFGS rather than L-BFGS-B: with 2-4 parameters its numpy updates are
    cheaper than L-BFGS-B's LAPACK calls, which start BLAS threads every step.
    """

    def bounded(th: Array) -> tuple[float, Array]:
        if np.any(np.abs(th) > _LOG_BOUND):
            return np.inf, np.zeros_like(th)
        return fun(th)

    return optimize.minimize(
        bounded, theta, jac=True, method="BFGS",
        options={"maxiter": max_iter, "gtol": 1e-9, "xrtol": 1e-14},
    )


def _tiny(stats: Collapsed) -> Collapsed:
    """The first row of ``stats``: enough to ask a model whether it has a Hessian."""
    return stats.subset(np.array([0]), stats.weights[:1])


def _newton_exact(
    fgh: Callable[[Array], tuple[float, Array, Array]], theta: Array, max_steps: int, tol: float
) -> tuple[Array, float, Array, Array, bool]:
    """Newton's method with the analytic Hessian and step halving.

    Returns ``(theta, f, g, hessian, converged)``; gives up (converged False)
    where the Hessian is not positive definite, so the caller can fall back to
    BFGS.
    """
    f, g, h = fgh(theta)
    for _ in range(max_steps):
        if np.max(np.abs(g)) < tol:
            return theta, f, g, h, True
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            return theta, f, g, h, False
        step = -np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-3:
            trial = np.clip(theta + scale * step, -_LOG_BOUND, _LOG_BOUND)
            f_new, g_new, h_new = fgh(trial)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * scale * float(g @ step) + 1e-13 * abs(f):
                break
            scale /= 2.0
        else:
            return theta, f, g, h, False
        theta, f, g, h = trial, f_new, g_new, h_new
    return theta, f, g, h, bool(np.max(np.abs(g)) < tol)


def _trust_exact(
    fgh: Callable[[Array], tuple[float, Array, Array]], theta: Array, tol: float, max_iter: int = 60
) -> Array | None:
    """Trust-region Newton (scipy's ``trust-exact``) on the analytic Hessian, from ``theta``.

    Unlike plain Newton it steps safely where the Hessian is not positive definite (far from the
    optimum).  Returns the point where max |gradient| < ``tol``, or None if it did not get there.
    """
    cache: dict[bytes, tuple[float, Array, Array]] = {}

    def get(th: Array) -> tuple[float, Array, Array]:
        key = th.tobytes()
        if key not in cache:
            if np.any(np.abs(th) > _LOG_BOUND):
                cache[key] = (np.inf, np.zeros_like(th), np.eye(th.size))
            else:
                cache[key] = fgh(th)
        return cache[key]

    try:
        res = optimize.minimize(
            lambda th: get(th)[0], theta, jac=lambda th: get(th)[1], hess=lambda th: get(th)[2],
            method="trust-exact", options={"gtol": tol, "maxiter": max_iter},
        )
    except (ValueError, np.linalg.LinAlgError):
        return None
    x = np.asarray(res.x, dtype=float)
    f, g, _ = get(x)
    if not (np.isfinite(f) and np.all(np.isfinite(x)) and np.max(np.abs(g)) < tol):
        return None
    return x


def _fd_hessian(
    fun: Callable[[Array], tuple[float, Array]], theta: Array, grad: Array, h: float = 1e-6
) -> Array:
    """Forward differences of the analytic gradient, symmetrised."""
    k = theta.size
    hess = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        hess[:, i] = (fun(theta + e)[1] - grad) / h
    return 0.5 * (hess + hess.T)


def _newton(
    fun: Callable[[Array], tuple[float, Array]],
    theta: Array,
    f: float,
    g: Array,
    hess: Array,
    max_steps: int,
    tol: float,
) -> tuple[Array, float, Array, bool]:
    """Newton steps with a fixed Hessian until max |gradient| < ``tol``.

    Returns ``(theta, f, g, converged)``; stops early if a step does not descend.
    """
    for _ in range(max_steps):
        if np.max(np.abs(g)) < tol:
            return theta, f, g, True
        try:
            step = -np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            return theta, f, g, False
        if not np.all(np.isfinite(step)) or g @ step >= 0:
            return theta, f, g, False
        trial = np.clip(theta + step, -_LOG_BOUND, _LOG_BOUND)
        f_new, g_new = fun(trial)
        if not (np.isfinite(f_new) and f_new <= f + 1e-12 * max(1.0, abs(f))):
            return theta, f, g, False
        theta, f, g = trial, f_new, g_new
    return theta, f, g, bool(np.max(np.abs(g)) < tol)


# ----------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------


def as_output(values: Array, cols: Columns, name: str) -> pd.Series | Array:
    """A Series on the input's index for DataFrame input, else an array."""
    if cols.index is not None:
        return pd.Series(values, index=cols.index, name=name)
    return values


def per_row(t: ArrayLike, n: int, name: str = "t") -> Array:
    """Broadcast a horizon (scalar or one per row) to ``n`` rows, checking it."""
    arr = np.asarray(t, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    elif arr.shape != (n,):
        raise SchemaError(f"'{name}' must be a scalar or have one value per row ({n}); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise SchemaError(f"'{name}' must be finite and >= 0.")
    return arr


def read_rfm(data: Data, *, owner: str, with_weights: bool = True) -> Columns:
    """Read and check ``frequency, recency, T`` (+ ``weights``) for BG/NBD-like models.

    Definitions (time in one unit, e.g. weeks): ``frequency`` = repeat purchase
    occasions after the first; ``recency`` = time from first to last purchase
    (0 if none); ``T`` = time from first purchase to the cut-off.
    """
    optional = ("weights",) if with_weights else ()
    cols = read_columns(data, ("frequency", "recency", "T"), optional, owner=owner)
    v = cols.values
    check_count(cols, "frequency")
    cols.fail("recency", v["recency"] < 0, "negative recency",
              "recency is the time from first to last purchase and must be >= 0.")
    cols.fail("T", v["T"] < 0, "negative T",
              "T is the time from first purchase to the cut-off and must be >= 0.")
    slack = 1e-9 * np.maximum(v["T"], 1.0)
    cols.fail("recency", v["recency"] > v["T"] + slack, "recency greater than T",
              "recency must lie between 0 and T; check that both use the same time "
              "unit and the same cut-off date.")
    cols.fail("recency", (v["frequency"] == 0) & (v["recency"] > 0),
              "recency > 0 with frequency 0",
              "a customer without repeat purchases has recency 0 (recency counts "
              "from the first purchase to the last repeat purchase).")
    v["recency"] = np.minimum(v["recency"], v["T"])
    return cols
