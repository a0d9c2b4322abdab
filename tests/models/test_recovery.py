"""Parameter recovery: fit 100k customers simulated from each model with known parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from clientfolio.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD, ShiftedBetaGeometric
from clientfolio.models.simulate import (
    simulate_bgbb,
    simulate_bgnbd,
    simulate_gammagamma,
    simulate_paretonbd,
    simulate_sbg,
)

pytestmark = pytest.mark.filterwarnings("error")

N = 100_000
# observed 6 months to 2 years, in weeks, on a daily grid (purchases dated by day)
T_OBS = np.round(np.random.default_rng(0).uniform(26, 104, N) * 7) / 7
DAY = 1 / 7

# Parameters chosen so that every standard error at 100k customers is < 2.5%,
# making "within 5%" a real check (about 2 standard errors or more).
CASES: list[tuple[type, dict[str, float], Callable[[dict[str, float]], pd.DataFrame]]] = [
    (BGNBD, {"r": 1.0, "alpha": 5.0, "a": 0.8, "b": 2.5}, lambda p: simulate_bgnbd(p, T_OBS, seed=1, resolution=DAY)),
    (MBGNBD, {"r": 1.0, "alpha": 5.0, "a": 0.8, "b": 2.5},
     lambda p: simulate_bgnbd(p, T_OBS, seed=2, dropout_at_zero=True, resolution=DAY)),
    # s and beta are strongly correlated in Pareto/NBD; with s < 1 their
    # standard errors at 100k customers approach 5%, so use s = 1 here.
    (ParetoNBD, {"r": 1.0, "alpha": 5.0, "s": 1.0, "beta": 10.0},
     lambda p: simulate_paretonbd(p, T_OBS, seed=3, resolution=DAY)),
    (BGBB, {"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.8}, lambda p: simulate_bgbb(p, N, 10, seed=4)),
    (ShiftedBetaGeometric, {"alpha": 0.7, "beta": 1.2}, lambda p: simulate_sbg(p, N, 12, seed=5)),
    (GammaGamma, {"p": 2.0, "q": 4.0, "gamma": 15.0},
     lambda p: simulate_gammagamma(p, np.random.default_rng(6).integers(1, 10, N), seed=7)),
]


@pytest.mark.parametrize(("model", "truth", "simulate"), CASES, ids=[c[0].__name__ for c in CASES])
def test_recovers_parameters_within_5_percent(model: type, truth: dict[str, float], simulate: Callable) -> None:
    m = model().fit(simulate(truth))
    assert m.n_customers_ == N
    for name, value in truth.items():
        estimate, se = m.params_[name], m.standard_errors_[name]
        assert estimate == pytest.approx(value, rel=0.05), (name, estimate, value)
        # and the reported uncertainty is honest: truth within 4 standard errors
        assert abs(estimate - value) < 4 * se, (name, estimate, value, se)
