"""Per-customer summaries: the literature's definitions, checked against lifetimes on CDNOW."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import SchemaError
from clientfolio.features import rfm_summary
from clientfolio.ingest import import_files
from tests.conftest import corpus_file


@pytest.fixture
def cdnow_store(store, tmp_path: Path):
    import_files([corpus_file("cdnow_sample__lifetimes.txt")], store, rejects_dir=tmp_path / "r")
    return store


def _cdnow_frame() -> pd.DataFrame:
    raw = pd.read_csv(corpus_file("cdnow_sample__lifetimes.txt"), sep=r"\s+", header=None, dtype=str,
                      names=["customer_id", "sample_id", "date", "cds", "amount"])
    return raw.assign(date=pd.to_datetime(raw["date"], format="%Y%m%d"), amount=raw["amount"].astype(float))


def test_cdnow_matches_lifetimes(cdnow_store) -> None:
    lifetimes_utils = pytest.importorskip("lifetimes.utils")
    ours = rfm_summary(cdnow_store, cutoff="1997-09-30", unit="W", holdout_end="1998-06-30").set_index("customer_id")
    ref = lifetimes_utils.calibration_and_holdout_data(
        _cdnow_frame(), "customer_id", "date", calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30", freq="D", monetary_value_col="amount")
    assert len(ours) == len(ref) == 2357
    ref = ref.loc[ours.index]
    np.testing.assert_array_equal(ours["frequency"], ref["frequency_cal"])
    np.testing.assert_allclose(ours["recency"], ref["recency_cal"] / 7, rtol=1e-12)
    np.testing.assert_allclose(ours["T"], ref["T_cal"] / 7, rtol=1e-12)
    np.testing.assert_allclose(ours["monetary"], ref["monetary_value_cal"], rtol=1e-9)
    np.testing.assert_array_equal(ours["frequency_holdout"], ref["frequency_holdout"])
    assert ours["duration_holdout"].iloc[0] == pytest.approx(39.0)
    # the published totals of the BG/NBD paper's data: 2,457 repeat purchases in calibration
    assert ours["frequency"].sum() == 2457


def test_dataframe_and_store_give_the_same_summary(cdnow_store) -> None:
    from_store = rfm_summary(cdnow_store, cutoff="1997-09-30", unit="W")
    from_frame = rfm_summary(_cdnow_frame(), cutoff="1997-09-30", unit="W")
    cols = ["customer_id", "frequency", "recency", "T", "monetary", "orders", "revenue"]
    pd.testing.assert_frame_equal(from_store[cols], from_frame[cols], check_dtype=False)


def test_definitions_on_a_small_history() -> None:
    tx = pd.DataFrame({
        "customer_id": ["a", "a", "a", "a", "a", "b", "c"],
        "order_id": ["1", "2", "3", "4", "5", "6", "7"],
        "ts": ["2024-01-01 09:00", "2024-01-01 17:00", "2024-01-11", "2024-01-21", "2024-01-25",
               "2024-01-05", "2024-02-01"],
        "amount": [10.0, 5.0, 20.0, 40.0, -20.0, 7.0, 99.0],
        "is_refund": [False, False, False, False, True, False, False],
    })
    s = rfm_summary(tx, cutoff="2024-01-31").set_index("customer_id")
    a = s.loc["a"]
    assert a["frequency"] == 2  # two orders on 1 Jan are one occasion; the refund is none
    assert a["recency"] == 20 and a["T"] == 30
    assert a["monetary"] == pytest.approx(30.0)  # mean of the repeat occasions 20 and 40
    assert a["revenue"] == pytest.approx(55.0) and a["refunds"] == pytest.approx(-20.0)
    assert a["orders"] == 4 and a["ipt_mean"] == pytest.approx(10.0) and a["ipt_std"] == pytest.approx(0.0)
    assert s.loc["b", "frequency"] == 0 and s.loc["b", "monetary"] == 0
    assert "c" not in s.index  # first purchase after the cut-off
    weeks = rfm_summary(tx, cutoff="2024-01-31", unit="W").set_index("customer_id")
    assert weeks.loc["a", "T"] == pytest.approx(30 / 7)


def test_bad_arguments_are_explained() -> None:
    tx = pd.DataFrame({"customer": ["a"], "ts": ["2024-01-01"], "amount": [1.0]})
    with pytest.raises(SchemaError, match="lacks column"):
        rfm_summary(tx)
    good = tx.rename(columns={"customer": "customer_id"})
    with pytest.raises(SchemaError, match="'unit'"):
        rfm_summary(good, unit="M")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="must be after cutoff"):
        rfm_summary(good, cutoff="2024-02-01", holdout_end="2024-01-15")


def test_duckdb_and_portable_summary_sql_agree(cdnow_store) -> None:
    """DuckDB's shorter SQL (one window, arg_max) gives what the portable SQL (PostgreSQL too) gives, every
    column, with a holdout period; gaps, first and last gaps included (CDNOW has customers with 0 to 20+ days)."""
    from clientfolio.features.summary import _date_lit, summary_sql

    if cdnow_store.kind != "duckdb":
        pytest.skip("DuckDB's own SQL")
    args = (_date_lit("1997-09-30"), "W", _date_lit("1998-06-30"))
    fast = cdnow_store.query(summary_sql(*args, dialect="duckdb"))
    portable = cdnow_store.query(summary_sql(*args))
    assert summary_sql(*args) != summary_sql(*args, dialect="duckdb")
    assert len(fast) == 2357 and fast["first_gap"].notna().sum() > 900
    pd.testing.assert_frame_equal(fast, portable, check_exact=False, rtol=1e-12)


def test_behaviour_orders_per_month_from_the_summary(cdnow_store) -> None:
    """behaviour_features given the summary takes orders per month from its orders and first purchase day,
    and the weekend share's purchase days from its frequency: the same numbers as counting them again in
    SQL (customers with under a month of history too), whatever order the summary's rows come in."""
    from clientfolio.features import behaviour_features

    short = []
    for cutoff in ("1997-01-20", "1997-09-30"):
        summary = rfm_summary(cdnow_store, cutoff=cutoff)
        short.append((summary["T"] < 30).any())
        counted, _ = behaviour_features(cdnow_store, cutoff)
        reused, _ = behaviour_features(cdnow_store, cutoff, summary=summary)
        pd.testing.assert_frame_equal(reused, counted, check_exact=False, rtol=1e-14)
        shuffled, _ = behaviour_features(cdnow_store, cutoff, summary=summary.sample(frac=1.0, random_state=1))
        pd.testing.assert_frame_equal(shuffled, counted, check_exact=False, rtol=1e-14)
        assert counted["weekend_share"].between(0.01, 0.99).any()  # shares other than 0 and 1 compared
    assert short == [True, False]  # the 30.4375-day floor is exercised
