"""Plain purchase model against separate fits per group and covariates, on a holdout period."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.predict.covariates import compare_covariate_models
from clientfolio.predict.verdict import Comparison

START = pd.Timestamp("2023-01-01")


def _shop(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two kinds of customers pooled in one shop: near-daily trade accounts and occasional consumers
    who drop out.  Returns (transactions, attributes)."""
    rng = np.random.default_rng(seed)
    rows, attrs = [], []
    days = 540
    for i in range(60):                     # trade: ~4 orders a week, a few leave
        first = int(rng.integers(0, 60))
        end = min(days, int(first + rng.exponential(400)))
        buy = np.flatnonzero(rng.random(max(end - first, 0)) < rng.uniform(0.1, 0.8)) + first
        rows += [(f"T{i:03d}", d) for d in np.r_[first, buy[buy > first]]]
        attrs.append((f"T{i:03d}", "trade"))
    for i in range(900):                    # consumers: ~1 order a month, leave at a geometric time
        first = int(rng.integers(0, 400))
        life = first + rng.exponential(120)
        rate = rng.gamma(1.0, 1 / 30)
        t, seen = first, [first]
        while True:
            t += rng.exponential(1 / rate)
            if t >= min(life, days):
                break
            seen.append(int(t))
        rows += [(f"C{i:04d}", d) for d in seen]
        attrs.append((f"C{i:04d}", "consumer" if i % 10 else None))   # some consumers without an attribute
    tx = pd.DataFrame(rows, columns=["customer_id", "day"])
    tx["ts"] = START + pd.to_timedelta(tx["day"], unit="D") + pd.Timedelta(hours=10)
    tx["amount"] = 10.0
    attributes = pd.DataFrame(attrs, columns=["customer_id", "kind"])
    return tx[["customer_id", "ts", "amount"]], attributes


def test_separate_fits_win_where_unlike_customers_are_pooled():
    tx, attributes = _shop()
    comp = compare_covariate_models(tx, attributes, group="kind", covariates=["kind"], model="bgnbd")
    assert isinstance(comp, Comparison)
    table = pd.DataFrame(comp.details["candidates"]).set_index("model")
    assert list(table.index) == ["BG/NBD", "BG/NBD per kind", "BG/NBD with covariates (kind)"]
    plain = table.loc["BG/NBD"]
    # the chosen model is the candidate with the lower holdout error, and only if it beats the plain model
    best = table.drop(index="BG/NBD")["holdout_mae"].idxmin()
    assert comp.model_name == best
    assert comp.chosen == ("model" if table.loc[best, "holdout_mae"] < 0.98 * plain["holdout_mae"] else "baseline")
    assert comp.chosen == "model"   # here the pooled model really is worse
    assert comp.metrics[0].model == pytest.approx(table.loc[best, "holdout_mae"])
    assert comp.metrics[0].baseline == pytest.approx(plain["holdout_mae"])
    assert best in comp.sentence and f"{plain['holdout_mae']:.2f}" in comp.sentence
    # the holdout is measured on the calibration customers; the holdout starts after the cut-off
    assert comp.n_test == comp.n_train > 0
    assert comp.cutoff == (comp.details["calibration_end"]).date()
    assert comp.horizon_days == (comp.details["holdout_end"] - comp.details["calibration_end"]).days
    # the tracking numbers are the actual repeat purchases: identical for every candidate
    tracks = comp.details["tracking"]
    assert len({t["calibration_actual"] for t in tracks.values()}) == 1
    assert not comp.details.get("group_notes")            # every group got its own fit
    # customers without the attribute got the "(missing)" level, not dropped
    cov = comp.details["models"]["BG/NBD with covariates (kind)"]
    assert "(missing)" in {*cov.encodings_["purchase"].levels["kind"], cov.encodings_["purchase"].reference["kind"]}


def test_the_plain_model_is_kept_when_the_attribute_says_nothing():
    tx, attributes = _shop(seed=5)
    rng = np.random.default_rng(0)
    attributes["coin"] = np.where(rng.random(len(attributes)) < 0.5, "heads", "tails")
    comp = compare_covariate_models(tx, attributes, group="coin", model="bgnbd")
    table = pd.DataFrame(comp.details["candidates"]).set_index("model")
    if comp.chosen == "baseline":
        assert comp.sentence.startswith("The single BG/NBD is kept")
    # a random split cannot be much better: within 3% of the plain model's holdout error
    assert table.loc["BG/NBD per coin", "holdout_mae"] > 0.97 * table.loc["BG/NBD", "holdout_mae"]


def test_needs_something_to_compare():
    tx, attributes = _shop()
    with pytest.raises(ValueError, match="group column, covariates"):
        compare_covariate_models(tx, attributes)


@pytest.mark.slow
def test_demo_shop_before_and_after(tmp_path):
    """The demo shop: one BG/NBD for everyone under-tracks the calibration period by 23%.  Separate fits
    for wholesale / visitors / locals crossed with the launch cohort (customers already buying when the
    app launched) predict the holdout better and track closer; the comparison chooses them."""
    from clientfolio.datasets import demo_shop_paths
    from clientfolio.ingest import ImportOptions, import_files
    from clientfolio.predict.covariates import customer_attributes
    from clientfolio.store import open_store

    p = demo_shop_paths()
    st = open_store(tmp_path / "demo.duckdb")
    try:
        import_files([p["customers"], p["transactions"]], st, ImportOptions())
        attrs = customer_attributes(st)
        attrs["customer_type"] = np.where(attrs["industry"].notna(), "wholesale",
                                          np.where(attrs["region"].fillna("").str.startswith("Out of area"),
                                                   "visitor", "local"))
        attrs["type_and_launch"] = attrs["customer_type"] + " / " + attrs["launch_cohort"]
        comp = compare_covariate_models(st, attrs, group="type_and_launch",
                                        covariates=["customer_type", "launch_cohort"])
    finally:
        st.close()
    table = pd.DataFrame(comp.details["candidates"]).set_index("model")
    plain, grouped = table.loc["BG/NBD"], table.loc["BG/NBD per type_and_launch"]
    assert plain["calibration_tracking_gap"] == pytest.approx(-0.23, abs=0.01)      # before
    assert plain["holdout_tracking_gap"] == pytest.approx(0.34, abs=0.01)
    assert abs(grouped["calibration_tracking_gap"]) < 0.20                         # after
    assert abs(grouped["holdout_tracking_gap"]) < 0.15
    assert grouped["holdout_mae"] < 0.98 * plain["holdout_mae"]
    assert comp.chosen == "model" and comp.model_name == "BG/NBD per type_and_launch"
