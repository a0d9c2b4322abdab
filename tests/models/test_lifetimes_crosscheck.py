"""Agreement with the peer library `lifetimes` (test dependency) on CDNOW and donations.

Predictions are compared at the *same* parameters (ours copied into the
lifetimes fitter) for a sample of customers, to 1e-4 relative; fitted
parameters are compared separately (lifetimes' optimiser stops earlier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD

lifetimes = pytest.importorskip("lifetimes", reason="lifetimes is a test-only dependency")

RTOL = 1e-4


@pytest.fixture(scope="module")
def sample(cdnow: pd.DataFrame) -> pd.DataFrame:
    """200 customers: a random draw plus the heaviest buyers (the hard cases)."""
    rng = np.random.default_rng(7)
    ids = set(rng.choice(cdnow.index, 180, replace=False)) | set(cdnow.nlargest(20, "frequency").index)
    return cdnow.loc[sorted(ids)]


def _with_params(fitter: object, params: dict[str, float]) -> object:
    fitter.params_ = pd.Series(params)  # type: ignore[attr-defined]
    return fitter


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(BGNBD, "BetaGeoFitter"), (MBGNBD, "ModifiedBetaGeoFitter"), (ParetoNBD, "ParetoNBDFitter")],
)
def test_frequency_models_match_lifetimes(ours: type, theirs: str, cdnow: pd.DataFrame, sample: pd.DataFrame) -> None:
    m = ours().fit(cdnow)
    lt = getattr(lifetimes, theirs)()
    with np.errstate(all="ignore"):
        lt.fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    # Same maximum: parameters agree to lifetimes' optimiser precision.
    for name, value in m.params_.items():
        assert lt.params_[name] == pytest.approx(value, rel=2e-3), name
    _with_params(lt, m.params_)
    x, tx, t_ = sample["frequency"], sample["recency"], sample["T"]
    for horizon in (1.0, 10.0, 52.0):
        ref = lt.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, t_)
        got = m.predict_purchases(horizon, sample)
        np.testing.assert_allclose(got, ref, rtol=RTOL)
    np.testing.assert_allclose(m.predict_alive(sample), lt.conditional_probability_alive(x, tx, t_), rtol=RTOL)
    horizons = np.array([0.5, 1.0, 10.0, 39.0, 78.0])
    np.testing.assert_allclose(
        m.expected_purchases_new_customer(horizons), lt.expected_number_of_purchases_up_to_time(horizons), rtol=RTOL
    )


def test_bgnbd_probability_of_n_purchases_matches_lifetimes(fitted: dict) -> None:
    m = fitted["bgnbd"]
    lt = _with_params(lifetimes.BetaGeoFitter(), m.params_)
    for t in (1.0, 39.0):
        for n in range(6):
            ref = lt.probability_of_n_purchases_up_to_time(t, n)
            assert m.probability_of_purchases(n, t)[0] == pytest.approx(ref, rel=RTOL)


def test_gammagamma_matches_lifetimes(cdnow: pd.DataFrame, sample: pd.DataFrame) -> None:
    m = GammaGamma().fit(cdnow)
    repeat = cdnow[cdnow["frequency"] > 0]
    lt = lifetimes.GammaGammaFitter()
    lt.fit(repeat["frequency"], repeat["monetary"])
    for name, value in m.params_.items():
        assert lt.params_[name.replace("gamma", "v")] == pytest.approx(value, rel=2e-3), name
    lt.params_ = pd.Series({"p": m.params_["p"], "q": m.params_["q"], "v": m.params_["gamma"]})
    buyers = sample[sample["frequency"] > 0]
    ref = lt.conditional_expected_average_profit(buyers["frequency"], buyers["monetary"])
    np.testing.assert_allclose(m.predict_spend(buyers), ref, rtol=RTOL)


def test_bgbb_matches_lifetimes(donations: pd.DataFrame) -> None:
    m = BGBB().fit(donations)
    lt = lifetimes.BetaGeoBetaBinomFitter()
    with np.errstate(all="ignore"):
        lt.fit(donations["frequency"], donations["recency"], donations["n_periods"], weights=donations["weights"])
    for name, value in m.params_.items():
        assert lt.params_[name] == pytest.approx(value, rel=2e-3), name
    _with_params(lt, m.params_)
    x, tx, n = donations["frequency"], donations["recency"], donations["n_periods"]
    for horizon in (1, 5):
        ref = lt.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, n)
        np.testing.assert_allclose(m.predict_purchases(horizon, donations), ref, rtol=RTOL)
    np.testing.assert_allclose(m.predict_alive(donations), lt.conditional_probability_alive(1, x, tx, n), rtol=RTOL)
    ref = lt.expected_number_of_transactions_in_first_n_periods(6)
    probs = m.probability_of_purchases(np.arange(7), 6)
    np.testing.assert_allclose(probs, ref["model"].to_numpy() / ref["model"].sum(), rtol=RTOL)
