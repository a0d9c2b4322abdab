"""One parametrised contract test suite run over every estimator (as sklearn's test_common)."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import ClientfolioError, NotFittedError
from clientfolio.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD, ShiftedBetaGeometric
from clientfolio.models.simulate import (
    simulate_bgbb,
    simulate_bgnbd,
    simulate_gammagamma,
    simulate_paretonbd,
    simulate_sbg,
)

pytestmark = pytest.mark.filterwarnings("error")


@dataclass
class Case:
    model: type
    data: Callable[[], pd.DataFrame]
    keys: tuple[str, ...]                       # columns that define a distinct row
    predictions: list[Callable[[Any, pd.DataFrame], Any]]


def _rfm(simulate: Callable[..., pd.DataFrame], params: dict[str, float]) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        t = np.random.default_rng(3).integers(1, 40, 3000).astype(float)
        return simulate(params, t, seed=4, resolution=1.0)
    return make


def _spend() -> pd.DataFrame:
    x = np.random.default_rng(5).integers(0, 6, 3000)
    return simulate_gammagamma({"p": 6.0, "q": 4.0, "gamma": 15.0}, x, seed=6).round(1)


RFM_PREDICTIONS = [
    lambda m, d: m.predict_purchases(10.0, d),
    lambda m, d: m.predict_alive(d),
    lambda m, d: m.expected_purchases_new_customer([1.0, 10.0]),
]

CASES = [
    Case(BGNBD, _rfm(simulate_bgnbd, {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}),
         ("frequency", "recency", "T"), RFM_PREDICTIONS + [lambda m, d: m.probability_of_purchases(2, 10.0)]),
    Case(MBGNBD, _rfm(lambda p, t, **k: simulate_bgnbd(p, t, dropout_at_zero=True, **k),
                      {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}),
         ("frequency", "recency", "T"), RFM_PREDICTIONS + [lambda m, d: m.probability_of_purchases(2, 10.0)]),
    Case(ParetoNBD, _rfm(simulate_paretonbd, {"r": 0.5, "alpha": 5.0, "s": 0.8, "beta": 10.0}),
         ("frequency", "recency", "T"), RFM_PREDICTIONS),
    Case(BGBB, lambda: simulate_bgbb({"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.8}, 3000, 6, seed=8),
         ("frequency", "recency", "n_periods"),
         [lambda m, d: m.predict_purchases(3, d), lambda m, d: m.predict_alive(d),
          lambda m, d: m.expected_purchases_new_customer([1, 5]), lambda m, d: m.probability_of_purchases(2, 6)]),
    Case(ShiftedBetaGeometric, lambda: simulate_sbg({"alpha": 0.7, "beta": 1.2}, 3000, 8, seed=9),
         ("tenure", "churned"),
         [lambda m, d: m.predict_survival(2, d), lambda m, d: m.predict_derl(0.1, d),
          lambda m, d: m.survival_function([1, 2]), lambda m, d: m.retention_rate([1, 2]),
          lambda m, d: m.churn_probability([1, 2]), lambda m, d: m.derl(0.1)]),
    Case(GammaGamma, _spend, ("frequency", "monetary"), [lambda m, d: m.predict_spend(d)]),
]
IDS = [c.model.__name__ for c in CASES]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[Case, pd.DataFrame, Any]:
    c: Case = request.param
    data = c.data()
    return c, data, c.model().fit(data)


def test_constructor_is_keyword_only_and_stores_settings_only(case: tuple) -> None:
    c, _, _ = case
    sig = inspect.signature(c.model.__init__)
    assert all(p.kind is p.KEYWORD_ONLY for n, p in sig.parameters.items() if n != "self")
    m = c.model(penalizer_coef=0.01)
    assert m.get_params()["penalizer_coef"] == 0.01
    assert not [k for k in vars(m) if k.endswith("_")]  # nothing learned before fit
    assert m.set_params(max_iter=50) is m and m.max_iter == 50
    with pytest.raises(ValueError, match="Invalid parameter"):
        m.set_params(nope=1)
    with pytest.raises(TypeError):
        c.model(0.01)


def test_unfitted_model_raises_not_fitted(case: tuple) -> None:
    c, data, _ = case
    m = c.model()
    for predict in c.predictions:
        with pytest.raises(NotFittedError, match="not fitted yet"):
            predict(m, data.head())
    assert issubclass(NotFittedError, ClientfolioError) and issubclass(NotFittedError, AttributeError)


def test_fit_returns_self_with_learned_attributes(case: tuple) -> None:
    c, data, fitted = case
    m = c.model()
    assert m.fit(data) is m
    names = c.model._param_names
    assert tuple(m.params_) == names
    assert all(isinstance(v, float) and v > 0 for v in m.params_.values())
    assert np.isfinite(m.log_likelihood_)
    assert set(m.standard_errors_) == set(names) and all(v > 0 for v in m.standard_errors_.values())
    for name, (low, high) in m.confidence_intervals_.items():
        assert low < m.params_[name] < high
    assert list(m.covariance_.index) == list(names)
    assert m.n_customers_ > 0 and m.n_distinct_ <= m.n_customers_
    assert m.bic_ > m.aic_ - 1e-9 or m.n_customers_ < 8
    assert m.convergence_["converged"]
    assert set(m.summary().columns) == {"estimate", "std_error", "lower_95", "upper_95"}
    assert "fitted" in repr(m)


def test_pickle_round_trip(case: tuple) -> None:
    c, data, fitted = case
    clone = pickle.loads(pickle.dumps(fitted))
    assert clone.params_ == fitted.params_
    for predict in c.predictions:
        np.testing.assert_array_equal(np.asarray(predict(clone, data)), np.asarray(predict(fitted, data)))


def test_collapsed_weighted_rows_give_the_same_fit(case: tuple) -> None:
    c, data, fitted = case
    collapsed = data.groupby(list(c.keys), as_index=False).size().rename(columns={"size": "weights"})
    assert len(collapsed) < len(data)
    m = c.model().fit(collapsed)
    assert m.n_customers_ == fitted.n_customers_
    for name, value in fitted.params_.items():
        assert m.params_[name] == pytest.approx(value, rel=1e-6), name
    assert m.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)
    # weights scale the likelihood, not the estimates
    doubled = collapsed.assign(weights=collapsed["weights"] * 2)
    m2 = c.model().fit(doubled)
    assert m2.log_likelihood_ == pytest.approx(2 * fitted.log_likelihood_, rel=1e-9)
    for name, value in fitted.params_.items():
        assert m2.params_[name] == pytest.approx(value, rel=1e-6), name


def test_predictions_follow_the_input_type(case: tuple) -> None:
    c, data, fitted = case
    per_row = c.predictions[0]
    out = per_row(fitted, data.iloc[5:15])
    assert isinstance(out, pd.Series) and out.index.equals(data.index[5:15])
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    as_dict = {k: data[k].to_numpy()[5:15] for k in c.keys}
    np.testing.assert_allclose(per_row(fitted, as_dict), out.to_numpy())


def test_from_params_predicts_like_the_fitted_model(case: tuple) -> None:
    c, data, fitted = case
    clone = c.model.from_params(fitted.params_)
    for predict in c.predictions:
        np.testing.assert_allclose(np.asarray(predict(clone, data)), np.asarray(predict(fitted, data)))
    with pytest.raises(ValueError, match="expected parameters"):
        c.model.from_params({"nope": 1.0})
    bad = dict(fitted.params_)
    bad[next(iter(bad))] = -1.0
    with pytest.raises(ValueError, match="positive"):
        c.model.from_params(bad)


def test_import_has_no_side_effects() -> None:
    # Dependencies may register their own filters when imported; ours must not.
    code = (
        "import warnings, numpy as np, pandas, scipy.optimize, scipy.special\n"
        "before = (list(warnings.filters), np.geterr())\n"
        "import clientfolio.models, clientfolio.models.simulate\n"
        "after = (list(warnings.filters), np.geterr())\n"
        "assert before == after, (before, after)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", ["bgnbd", "mbgnbd", "paretonbd", "sbg"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"clientfolio.models.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("cls", ["BGNBD", "MBGNBD", "ParetoNBD"])
def test_purchase_curve_equals_predict_purchases_per_horizon(cls, cdnow) -> None:
    import numpy as np

    import clientfolio.models as models

    model = getattr(models, cls)().fit(cdnow)
    data = cdnow[["frequency", "recency", "T"]].iloc[:300]
    times = [0.0, 1.0, 4.33, 26.0, 52.0]
    curve = model.predict_purchases_curve(times, data)
    per_t = np.column_stack([np.asarray(model.predict_purchases(t, data)) for t in times])
    np.testing.assert_allclose(curve, per_t, rtol=1e-12, atol=0)
    _, alive = model.predict_purchases_curve(times, data, with_alive=True)
    np.testing.assert_allclose(alive, np.asarray(model.predict_alive(data)), rtol=1e-12)
