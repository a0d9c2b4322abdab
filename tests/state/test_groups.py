"""Separate purchase models per customer group: chosen by analyze on the holdout, kept in the state, used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clientfolio
from clientfolio.datasets import demo_shop_paths
from clientfolio.features import rfm_summary
from clientfolio.ingest import ImportOptions, import_files
from clientfolio.predict.covariates import compare_covariate_models, customer_attributes
from clientfolio.state import PortfolioState, customer_features
from clientfolio.state.fitted import model_summary
from clientfolio.state.groups import choose_group, informative_attribute
from clientfolio.store import open_store
from tests.predict.test_covariates import _shop

SCORES = ["p_alive", "churn_risk", "expected_purchases", "clv", "clv_low", "clv_high", "next_order_date",
          "value_tier", "lifecycle"]


@pytest.fixture(scope="module")
def trade_shop(tmp_path_factory):
    """Near-daily trade accounts pooled with occasional consumers; the kind is the acquisition channel.

    Returns (store, portfolio) of analyze on a kept store.
    """
    tmp = tmp_path_factory.mktemp("groups")
    tx, attrs = _shop()
    tx.to_csv(tmp / "orders.csv", index=False)
    attrs.rename(columns={"kind": "acquisition_channel"}).to_csv(tmp / "customers.csv", index=False)
    st = open_store(tmp / "shop.duckdb")
    import_files([tmp / "customers.csv", tmp / "orders.csv"], st, ImportOptions())
    pf = clientfolio.analyze(store=st, clusters=False)
    yield st, pf
    st.close()


def test_analyze_uses_what_the_holdout_comparison_picks(trade_shop):
    st, pf = trade_shop
    v = pf.validation
    kind = pf.models["kind"]
    comp = compare_covariate_models(st, customer_attributes(st, launch_weeks=None), group="acquisition_channel",
                                    model=kind, calibration_end=v["calibration_end"], holdout_end=v["holdout_end"])
    assert comp.chosen == "model"          # pooling trade accounts with consumers really is worse here
    groups = v["groups"]
    assert groups["column"] == "acquisition_channel" and groups["used"]
    assert groups["comparison"].metrics[0].model == pytest.approx(comp.metrics[0].model)
    gain = 1 - comp.metrics[0].model / comp.metrics[0].baseline
    assert f"track the holdout period {gain:.0%} better than one pooled" in groups["sentence"]
    assert groups["sentence"].endswith(".)") and "used." in groups["sentence"]
    assert any(groups["sentence"] in str(n) for n in pf.notes.for_method())
    from clientfolio.report.html import _esc, render

    assert _esc(groups["sentence"]) in render(pf)   # in "Can these predictions be trusted?"
    state = pf.state
    assert state.purchase_groups_ is not None and set(state.purchase_groups_.models_) >= {"trade", "consumer"}


def test_each_customer_is_scored_with_the_model_of_their_group(trade_shop):
    _, pf = trade_shop
    state, c = pf.state, pf.customers
    summary = model_summary(c, state.cutoff_)
    repeat = c["frequency"].to_numpy() > 0
    for level in ("trade", "consumer"):
        rows = (c["acquisition_channel"] == level).to_numpy() & repeat
        own = state.purchase_groups_.models_[level].predict_alive(summary.loc[rows, ["frequency", "recency", "T"]])
        pooled = state.purchase_model_.predict_alive(summary.loc[rows, ["frequency", "recency", "T"]])
        np.testing.assert_allclose(c.loc[rows, "p_alive"].to_numpy(), np.asarray(own), rtol=1e-12)
        assert not np.allclose(np.asarray(own), np.asarray(pooled), rtol=1e-3)   # the grouping changes them
    # the trade accounts' forecast is what a near-daily buyer's should be, far above a consumer's
    by = c.groupby("acquisition_channel")["expected_purchases"].mean()
    assert by["trade"] > 20 * by["consumer"]


def test_a_stored_state_gives_identical_scores(trade_shop):
    st, pf = trade_shop
    loaded = PortfolioState.from_json(pf.state.to_json())
    assert loaded.purchase_groups_ is not None
    assert set(loaded.purchase_groups_.models_) == set(pf.state.purchase_groups_.models_)
    features, _, prospects = customer_features(st, pf.as_of)
    again = loaded.apply(features, pf.as_of, prospects=prospects).customers.set_index("customer_id")
    now = pf.customers.set_index("customer_id").loc[again.index]
    for col in SCORES:
        pd.testing.assert_series_equal(again[col], now[col], check_dtype=False, check_exact=False, rtol=1e-12,
                                       obj=col)
    assert loaded.clv_total_interval_ == pf.state.clv_total_interval_


def test_a_state_stored_before_grouped_models_still_loads(trade_shop):
    st, pf = trade_shop
    d = pf.state.to_dict()
    d["models"].pop("purchase_groups")
    old = PortfolioState.from_dict(d)
    assert old.purchase_groups_ is None
    features, _, prospects = customer_features(st, pf.as_of)
    scored = old.apply(features, pf.as_of, prospects=prospects, intervals=False).customers
    pooled = old.purchase_model_.predict_alive(model_summary(scored, pf.as_of)[["frequency", "recency", "T"]])
    repeat = scored["frequency"].to_numpy() > 0
    np.testing.assert_allclose(scored.loc[repeat, "p_alive"], np.asarray(pooled)[repeat], rtol=1e-12)


def test_an_unseen_level_is_scored_with_the_pooled_model(trade_shop):
    st, pf = trade_shop
    state = pf.state
    features, _, _ = customer_features(st, pf.as_of)
    trade = features[features["acquisition_channel"] == "trade"].head(5).copy()
    trade["acquisition_channel"] = "a channel opened after the fit"
    summary = model_summary(trade, pf.as_of)
    scores = state.purchase_groups_.score(summary, state.purchase_model_, state.alive_model_, state.spend_model_,
                                          state.settings)
    assert scores.attrs["pooled_fallback"] == 5
    pooled = state.purchase_model_.predict_alive(summary[["frequency", "recency", "T"]])
    repeat = summary["frequency"].to_numpy() > 0
    np.testing.assert_allclose(scores["p_alive"].to_numpy()[repeat], np.asarray(pooled)[repeat], rtol=1e-12)
    assert any("not seen at the fit" in str(n) and "scored with the model of all customers" in str(n)
               for n in state.notes_)


def test_the_most_informative_attribute_is_the_one_tried():
    cal = pd.DataFrame({"customer_id": [f"c{i}" for i in range(100)], "frequency": [10] * 50 + [1] * 50,
                        "T": [20.0] * 100})
    attrs = pd.DataFrame({"customer_id": cal["customer_id"], "kind": ["a"] * 50 + ["b"] * 50,
                          "noise": ["x", "y"] * 50, "tiny": ["p"] * 95 + ["q"] * 5})
    column, shares = informative_attribute(cal, attrs, ["kind", "noise", "tiny"])
    assert column == "kind" and shares["kind"] == pytest.approx(1.0) and shares["noise"] < 0.05
    assert "tiny" not in shares  # a single level with 20 customers: nothing to compare


def test_a_shop_without_attributes_checks_nothing(tmp_path):
    tx, _ = _shop()
    st = open_store(tmp_path / "bare.duckdb")
    try:
        import_files([_write(tx, tmp_path / "orders.csv")], st, ImportOptions())
        end = pd.Timestamp(tx["ts"].max()).normalize()
        split = (pd.Timestamp(tx["ts"].min()) + (end - pd.Timestamp(tx["ts"].min())) * 2 / 3).normalize()
        cal = rfm_summary(st, cutoff=split, unit="W", holdout_end=end)
        assert choose_group(st, cal, split, end, "bgnbd") == (None, {})
    finally:
        st.close()


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_demo_shop_keeps_the_pooled_model_and_says_so(tmp_path):
    """The demo shop's store attributes: the tried grouping is not better by 2%, so nothing changes."""
    p = demo_shop_paths()
    st = open_store(tmp_path / "demo.duckdb")
    try:
        import_files([p["customers"], p["transactions"]], st, ImportOptions())
        pf = clientfolio.analyze(store=st, clusters=False)
        groups = pf.validation["groups"]
        comp = compare_covariate_models(st, customer_attributes(st, launch_weeks=None), group=groups["column"],
                                        model=pf.models["kind"], calibration_end=pf.validation["calibration_end"],
                                        holdout_end=pf.validation["holdout_end"])
        assert comp.chosen == "baseline" and not groups["used"]
        assert pf.state.purchase_groups_ is None
        assert "so the pooled model is kept" in groups["sentence"]
    finally:
        st.close()


def test_scoring_without_the_group_column_is_refused(trade_shop):
    from clientfolio.core.errors import SchemaError

    st, pf = trade_shop
    features, _, _ = customer_features(st, pf.as_of)
    with pytest.raises(SchemaError, match="no acquisition_channel column"):
        pf.state.apply(features.drop(columns=["acquisition_channel"]).head(3), pf.as_of)


def test_one_customer_path_scores_with_the_model_of_their_group(trade_shop):
    """A live update (apply_columns, one customer at a time) uses the customer's group model, as the batch does."""
    from tests.state.test_apply_columns import _check_one_by_one

    st, pf = trade_shop
    state = pf.state
    features, _, _ = customer_features(st, pf.as_of)
    channel = features["acquisition_channel"].astype(str).to_numpy()
    repeat = features["frequency"].to_numpy() > 0
    rows = np.concatenate([np.flatnonzero((channel == lvl) & repeat)[:15] for lvl in ("trade", "consumer")])
    assert len(rows) == 30
    assert _check_one_by_one(state, features, pf.as_of, rows) >= 40
    sub = features.iloc[rows].reset_index(drop=True)
    hist = model_summary(sub, state.cutoff_)[["frequency", "recency", "T"]]
    for level in ("trade", "consumer"):
        at = np.flatnonzero(channel[rows] == level)
        one, _ = state.apply_columns({c: sub[c].to_numpy()[at] for c in sub.columns}, pf.as_of)
        own = np.asarray(state.purchase_groups_.models_[level].predict_alive(hist.iloc[at]), dtype=float)
        pooled = np.asarray(state.purchase_model_.predict_alive(hist.iloc[at]), dtype=float)
        np.testing.assert_allclose(one["p_alive"], own, rtol=1e-12)
        assert np.abs(own - pooled).max() > 1e-3  # the group's model, not the pooled one


def test_refit_advice_compares_repeat_purchases_with_each_groups_model(trade_shop):
    """`health()`'s tracking drift predicts each customer with their group's model, as the state scores them."""
    from clientfolio.live import LivePortfolio
    from clientfolio.state.features import ATTRIBUTES_SQL

    st, pf = trade_shop
    live = LivePortfolio(st)
    assert live.state.purchase_groups_ is not None
    cut = live.state.cutoff_ - pd.Timedelta(days=56)  # judged as if fitted 8 weeks earlier: a holdout with orders
    live.state.cutoff_ = cut
    last = cut + pd.Timedelta(days=56)
    drift = live._tracking_drift(last)
    then = model_summary(rfm_summary(st, cutoff=cut, unit="D", holdout_end=last), cut)
    then = then.merge(st.query(ATTRIBUTES_SQL)[["customer_id", "acquisition_channel"]], on="customer_id")
    actual = then["frequency_holdout"].sum()
    grouped = pooled = 0.0
    models = live.state.purchase_groups_.models_
    for level, rows in then.groupby(then["acquisition_channel"].fillna("(missing)")):
        hist = rows[["frequency", "recency", "T"]]
        grouped += np.nansum(models.get(level, live.state.purchase_model_).predict_purchases(8.0, hist))
        pooled += np.nansum(live.state.purchase_model_.predict_purchases(8.0, hist))
    assert actual > 0
    assert drift == pytest.approx((actual - grouped) / grouped, rel=1e-9)
    assert abs((actual - pooled) / pooled - drift) > 0.01  # the pooled model would have said something else
