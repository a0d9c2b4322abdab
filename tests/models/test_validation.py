"""Input validation names the column and the offending row/customer; bad fits say what to try."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import ConvergenceError, SchemaError
from clientfolio.models import BGBB, BGNBD, GammaGamma, ParetoNBD, ShiftedBetaGeometric

pytestmark = pytest.mark.filterwarnings("error")


def _rfm(**overrides: list[float]) -> pd.DataFrame:
    data = {"frequency": [0.0, 2.0, 1.0, 3.0], "recency": [0.0, 5.0, 2.0, 8.0], "T": [10.0, 10.0, 9.0, 12.0]}
    data.update(overrides)
    return pd.DataFrame(data)


@pytest.mark.parametrize("model", [BGNBD, ParetoNBD])
@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"recency": [0.0, 5.0, 2.0, 13.0]},
         r"column 'recency': recency greater than T at row 3 \[frequency=3, recency=13, T=12\]"),
        ({"frequency": [0.0, -2.0, 1.0, 3.0]}, r"column 'frequency': value below 0 at row 1"),
        ({"frequency": [0.0, 2.5, 1.0, 3.0]}, r"column 'frequency': non-integer count at row 1"),
        ({"T": [10.0, np.nan, 9.0, 12.0]}, r"column 'T': missing or infinite value at row 1"),
        ({"recency": [1.0, 5.0, 2.0, 8.0]}, r"column 'recency': recency > 0 with frequency 0 at row 0"),
        ({"recency": [0.0, -5.0, 2.0, 8.0]}, r"column 'recency': negative recency at row 1"),
    ],
)
def test_rfm_errors_name_column_and_row(model: type, overrides: dict, pattern: str) -> None:
    with pytest.raises(SchemaError, match=pattern):
        model().fit(_rfm(**overrides))


def test_errors_name_the_customer_and_count_the_rest() -> None:
    data = _rfm(recency=[0.0, 50.0, 20.0, 8.0]).assign(customer_id=["a", "b", "c", "d"])
    with pytest.raises(SchemaError, match=r"row 1 \(customer 'b'\).* and 1 more row\(s\).*same time unit"):
        BGNBD().fit(data)
    indexed = _rfm(recency=[0.0, 50.0, 2.0, 8.0]).set_axis(["x1", "x2", "x3", "x4"])
    with pytest.raises(SchemaError, match=r"row 1 \(customer 'x2'\)"):
        BGNBD().fit(indexed)


def test_missing_and_non_numeric_columns() -> None:
    with pytest.raises(SchemaError, match=r"no column 'recency' \(columns found: frequency, T\)"):
        BGNBD().fit(pd.DataFrame({"frequency": [1], "T": [3]}))
    with pytest.raises(SchemaError, match=r"column 'T' must be numeric"):
        BGNBD().fit(pd.DataFrame({"frequency": [1], "recency": [1], "T": ["three"]}))
    with pytest.raises(SchemaError, match="expected a pandas DataFrame"):
        BGNBD().fit([1, 2, 3])
    with pytest.raises(SchemaError, match="negative weight"):
        BGNBD().fit(_rfm().assign(weights=[1, -1, 1, 1]))
    with pytest.raises(SchemaError, match="no customers"):
        BGNBD().fit(_rfm().assign(weights=0.0))


def test_prediction_inputs_are_checked() -> None:
    m = BGNBD.from_params({"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5})
    with pytest.raises(SchemaError, match="column 'recency': recency greater than T"):
        m.predict_alive(_rfm(recency=[0.0, 50.0, 2.0, 8.0]))
    with pytest.raises(SchemaError, match="'t' must be finite and >= 0"):
        m.predict_purchases(-1, _rfm())
    with pytest.raises(SchemaError, match="one value per row"):
        m.predict_purchases([1, 2], _rfm())


def test_gammagamma_spend_checks() -> None:
    data = pd.DataFrame({"frequency": [0, 2, 3], "monetary": [0.0, -4.0, 10.0]})
    with pytest.raises(SchemaError, match=r"column 'monetary': non-positive mean spend of a repeat buyer at row 1"):
        GammaGamma().fit(data)


def test_bgbb_checks() -> None:
    base = {"frequency": [0, 2, 3], "recency": [0, 4, 5], "n_periods": [6, 6, 6]}
    with pytest.raises(SchemaError, match="column 'frequency': frequency greater than recency at row 2"):
        BGBB().fit(pd.DataFrame(base | {"recency": [0, 4, 2]}))
    with pytest.raises(SchemaError, match="column 'recency': recency greater than n_periods at row 1"):
        BGBB().fit(pd.DataFrame(base | {"recency": [0, 7, 5]}))


def test_sbg_checks() -> None:
    with pytest.raises(SchemaError, match="must not increase, but period 2 has 70 after 60"):
        ShiftedBetaGeometric().fit([100, 60, 70])
    with pytest.raises(SchemaError, match="column 'churned': value other than 0/1"):
        ShiftedBetaGeometric().fit(pd.DataFrame({"tenure": [1, 2], "churned": [1, 2]}))
    with pytest.raises(SchemaError, match="column 'tenure': churned with tenure 0"):
        ShiftedBetaGeometric().fit(pd.DataFrame({"tenure": [0, 2], "churned": [True, False]}))
    with pytest.raises(SchemaError, match="expected survivor counts"):
        ShiftedBetaGeometric().fit("1000, 600")


NOT_IDENTIFIED = r"(not identified|ran to the edge).*penalizer_coef=0\.001"


def test_no_repeat_buyers_is_a_convergence_error_with_advice() -> None:
    data = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": np.linspace(1, 30, 200)})
    with pytest.raises(ConvergenceError, match=NOT_IDENTIFIED):
        BGNBD().fit(data)


def test_no_churn_is_a_convergence_error_with_advice() -> None:
    with pytest.raises(ConvergenceError, match=NOT_IDENTIFIED):
        ShiftedBetaGeometric().fit([1000, 1000, 1000, 1000])


def test_penalizer_shrinks_the_parameters() -> None:
    from clientfolio.models.simulate import simulate_bgnbd

    data = simulate_bgnbd({"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}, np.full(500, 40.0), seed=1)
    plain = BGNBD().fit(data)
    shrunk = BGNBD(penalizer_coef=0.1).fit(data)
    assert sum(v**2 for v in shrunk.params_.values()) < sum(v**2 for v in plain.params_.values())
    assert shrunk.log_likelihood_ < plain.log_likelihood_
