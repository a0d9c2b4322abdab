"""Churn of subscribers is cancellation: events read, spells, sBG against the trees, kept and applied live.

The shop is generated (``clientfolio.datasets.subscriptions``) with known renewal parameters, so the
renewal model's fit can be checked against the truth, and every other check runs on data shaped like a
real subscription box (charges as orders, tickets, newsletter opens, restarts).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clientfolio.datasets.subscriptions import subscription_shop, write_subscription_shop
from clientfolio.predict.applied import PredictionModels
from clientfolio.predict.churn import ChurnModel
from clientfolio.predict.evaluation import predict_shop
from clientfolio.predict.subscriptions import (
    MONTH,
    SubscriptionChurn,
    default_period,
    fit_sbg,
    p_cancel,
    period_of,
    spells,
    subscriber_features,
    subscription_base,
    subscription_events,
    subscription_training_set,
    tenure_table,
)
from clientfolio.predict.training import DAY, build_training_set, load_tables

T0 = pd.Timestamp("2024-01-01")


def _events(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "ts", "type", "properties"]).assign(
        ts=lambda d: pd.to_datetime(d["ts"]))


@pytest.fixture(scope="module")
def shop():
    return subscription_shop(1500, seed=11)


@pytest.fixture(scope="module")
def result(shop):
    return predict_shop(shop)


def test_billing_periods_are_read_from_the_properties_or_left_missing():
    assert period_of({"interval": "month"}) == pytest.approx(MONTH)
    assert period_of({"interval": "month", "interval_count": 3}) == pytest.approx(3 * MONTH)
    assert period_of({"interval": "Yearly"}) == pytest.approx(365.25)
    assert period_of({"period_days": "14"}) == 14.0
    for bad in ({"interval": "fortnightish"}, {"period_days": -3}, {"interval": "week", "interval_count": "x"}, {},
                {"period_days": 1e308}, {"interval": "year", "interval_count": 50}):
        assert np.isnan(period_of(bad))  # never guessed here: the shop's default fills it, and the notes say so


def test_spells_follow_starts_cancels_restarts_and_plan_changes():
    ev = _events([
        ("A", "2024-01-05", "subscription_start", json.dumps({"subscription_id": "a1", "plan": "small", "price": 10,
                                                              "interval": "month"})),
        ("A", "2024-03-01", "subscription_start", json.dumps({"subscription_id": "a1", "plan": "large", "price": 20})),
        ("A", "2024-04-20", "subscription_cancel", json.dumps({"subscription_id": "a1"})),
        ("A", "2024-06-01", "subscription_start", json.dumps({"subscription_id": "a2", "plan": "small", "price": 10,
                                                              "interval": "month"})),
        ("B", "2024-02-01", "subscription_cancel", "{}"),  # cancels nothing that runs: ignored
        ("B", "2024-02-10", "subscription_start", "{\"interval\": \"week\"}"),  # no id: one subscription per customer
        ("C", "2024-02-10", "page_view", "{}"),
    ])
    subs = subscription_events(ev)
    assert set(subs["type"]) == {"subscription_start", "subscription_cancel"}
    sp = spells(subs, pd.Timestamp("2024-07-01")).set_index("subscription_id")
    assert sp.loc["a1", "start"] == pd.Timestamp("2024-01-05") and sp.loc["a1", "stop"] == pd.Timestamp("2024-04-20")
    assert sp.loc["a1", "plan"] == "large" and sp.loc["a1", "price"] == 20.0  # the change kept the start
    assert pd.isna(sp.loc["a2", "stop"]) and sp.loc["", "period_days"] == 7.0
    # Before a2 started, A has no running subscription; B's stray cancel opened nothing.
    early = spells(subs, pd.Timestamp("2024-05-01"))
    assert early["stop"].isna().sum() == 1 and early.loc[early["stop"].isna(), "customer_id"].item() == "B"


def test_the_tenure_table_counts_whole_periods_paid():
    ev = _events([
        ("A", "2024-01-01", "subscription_start", json.dumps({"period_days": 30})),
        ("A", "2024-01-10", "subscription_cancel", "{}"),  # cancelled in the first period: paid one
        ("B", "2024-01-01", "subscription_start", json.dumps({"period_days": 30})),
        ("B", "2024-03-05", "subscription_cancel", "{}"),  # in the third period: paid three
        ("C", "2024-01-01", "subscription_start", json.dumps({"period_days": 30})),  # runs: 2 whole periods by 3 Mar
    ])
    base = subscription_base(subscription_events(ev), pd.Timestamp("2024-03-05"), 30.0)
    t = tenure_table(base).sort_values(["churned", "tenure"]).reset_index(drop=True)
    assert t.to_dict("records") == [{"tenure": 2.0, "churned": 0.0, "weights": 1.0},
                                    {"tenure": 1.0, "churned": 1.0, "weights": 1.0},
                                    {"tenure": 3.0, "churned": 1.0, "weights": 1.0}]


def test_the_renewal_model_recovers_the_parameters_the_shop_was_made_with():
    t = load_tables(subscription_shop(3000, seed=3, issue_rate=0.0, restart_rate=0.0, alpha=0.9, beta=5.0))
    period, how = default_period(t.subscriptions, t.transactions)
    m = fit_sbg(subscription_base(t.subscriptions, t.last_day, period))
    assert m.params_["alpha"] == pytest.approx(0.9, rel=0.15) and m.params_["beta"] == pytest.approx(5.0, rel=0.15)
    # P(cancel within h periods | n survived) is sBG's own survival ratio, and falls with tenure (survivors are loyal)
    a, b = m.params_["alpha"], m.params_["beta"]
    assert p_cancel(a, b, np.array([0.0]), np.array([1.0]))[0] == pytest.approx(a / (a + b))
    assert np.all(np.diff(p_cancel(a, b, np.arange(10.0), np.ones(10))) < 0)


def test_rows_after_the_cutoff_change_no_subscription_feature(shop):
    t = load_tables(shop)
    cut = pd.Timestamp("2025-06-30")
    period, _ = default_period(t.subscriptions, t.transactions)
    general = build_training_set(t, cut, 35)
    before = subscription_training_set(t, cut, 35, general, period).features
    later = shop["events"]["ts"] >= pd.Timestamp(cut + DAY, tz="UTC")
    moved = dict(shop, events=pd.concat([shop["events"][~later],
                                         shop["events"][later].assign(ts=lambda d: d["ts"] + pd.Timedelta(days=3))]))
    cut_tx = shop["transactions"]["ts"] < pd.Timestamp(cut + DAY, tz="UTC")
    dropped = dict(shop, events=shop["events"][~later], transactions=shop["transactions"][cut_tx])
    for other in (moved, dropped):
        t2 = load_tables(other)
        after = subscription_training_set(t2, cut, 35, build_training_set(t2, cut, 35), period).features
        pd.testing.assert_frame_equal(before, after)


def test_subscribers_churn_risk_is_measured_against_sbg_and_said(result, shop):
    comp = result.subscriptions
    assert comp is not None and comp in result.comparisons
    assert comp.task == "subscription churn" and comp.baseline_name == "sBG"
    names = [m.name for m in comp.metrics]
    assert names == ["AUC", "PR-AUC", "Brier", "top-decile lift"]
    auc = {m.name: m for m in comp.metrics}["AUC"]
    assert 0.5 < auc.baseline < 1.0  # sBG ranks cancellations better than chance on this shop
    assert comp.n_test > 300 and "cancellation in the next" in comp.metrics[0].note
    uses = "boosted trees" if comp.chosen == "model" else "renewal model (sBG)"
    assert comp.sentence.startswith("Subscribers' churn risk (cancelling) uses") and uses in comp.sentence


def test_active_subscribers_get_the_cancellation_risk_others_the_purchase_one(result, shop):
    c = result.customers.set_index("customer_id")
    t = load_tables(shop)
    run = subscription_base(t.subscriptions, t.last_day, 30.0).running
    active = set(run["customer_id"].astype(str)) & set(c.index)
    assert len(active) > 100
    is_sub = c["churn_source"].str.endswith("(cancellation)")
    assert set(c.index[is_sub]) == active
    assert set(c.loc[~is_sub, "churn_source"]) <= {"BG/NBD", "boosted trees"}
    assert c.loc[is_sub, "reason"].str.startswith("subscriber for").all()
    assert c["churn_risk"].between(0, 1).all()
    # with sBG chosen, the risk shown is sBG's own probability for the subscriber's tenure
    models = result.models
    if models.subscriptions.churn is None:
        f = models.features(t, t.last_day)  # with the subscription features: the state has the subscription model
        np.testing.assert_allclose(c.loc[sorted(active), "churn_risk"], f.loc[sorted(active), "sbg_p_cancel"], atol=1e-12)


def test_a_small_subscription_shop_trains_no_trees_and_says_why():
    small = predict_shop(subscription_shop(320, seed=5), require_support=False)
    comp = small.subscriptions
    assert comp.chosen == "baseline" and "no machine-learning model was trained, only" in comp.sentence
    assert "active subscribers" in comp.sentence
    assert all(np.isnan(m.model) for m in comp.metrics) and np.isfinite(comp.metrics[2].baseline)


def test_the_subscription_models_round_trip_through_the_state(result, shop):
    """sBG alone, and with trees (fitted here directly, whatever the shop's choice): stored, read, same scores."""
    t = load_tables(shop)
    models = result.models
    day = t.last_day
    period, how = default_period(t.subscriptions, t.transactions)
    general = build_training_set(t, day - 70 * DAY, result.horizon_days)
    train = subscription_training_set(t, day - 70 * DAY, result.horizon_days, general, period)
    trees = ChurnModel(random_state=0).fit(train.features, train.labels["churned"])
    for churn in (None, trees):
        models._subscriptions = SubscriptionChurn(sbg=models.subscriptions.sbg, default_period_days=period,
                                                  period_note=how, churn=churn)
        models._raw = None
        want = models.predict(t, day)
        again = PredictionModels.from_dict(json.loads(json.dumps(models.to_dict())))
        got = again.predict(t, day)
        pd.testing.assert_frame_equal(got, want)
        sources = set(got["churn_source"])
        assert ("boosted trees (cancellation)" in sources) == (churn is not None)


def test_features_of_one_subscriber_read_only_their_own_rows(shop):
    t = load_tables(shop)
    base = subscription_base(t.subscriptions, t.last_day, 30.0)
    every = subscriber_features(base, t.events)
    one = str(every.index[5])
    only = {k: v[v["customer_id"].astype(str) == one] for k, v in shop.items()}
    t1 = load_tables(only)
    mine = subscriber_features(subscription_base(t1.subscriptions, t.last_day, 30.0), t1.events)
    pd.testing.assert_frame_equal(mine, every.loc[[one]], check_categorical=False)


@pytest.mark.slow
def test_a_live_cancellation_moves_the_subscriber_off_the_cancellation_risk(shop, tmp_path):
    """Imported into a store and analysed with predictions; the held-back cancel of an active subscriber
    arrives as a live event: their stored prediction then equals the batch over the store at that day."""
    import clientfolio
    from clientfolio.ingest import import_files
    from clientfolio.live import LivePortfolio
    from clientfolio.predict.stored import read_predictions
    from clientfolio.store import open_store

    paths = write_subscription_shop(shop, str(tmp_path / "csv"))
    url = str(tmp_path / "subs.duckdb")
    cut = pd.Timestamp("2025-10-31")
    nxt = f"CAST(DATE '{(cut + DAY).date()}' AS TIMESTAMP)"
    with open_store(url) as st:
        import_files([paths["customers"], paths["transactions"], paths["events"]], st)
        ev = st.query(f"SELECT * FROM events WHERE ts >= {nxt} ORDER BY ts, event_id")
        st.query(f"DELETE FROM transactions WHERE ts >= {nxt}")
        st.query(f"DELETE FROM events WHERE ts >= {nxt}")
        clientfolio.analyze(store=st, cutoff=cut, predict=True, clusters=False)
        live = LivePortfolio(st)
        models = live.state.prediction_models_
        assert models.subscriptions is not None
        before = read_predictions(st).set_index("customer_id")
        cancel = ev[ev["type"] == "subscription_cancel"].head(1)
        who = str(cancel["customer_id"].iloc[0])
        assert before.loc[who, "churn_source"].endswith("(cancellation)")
        day = pd.Timestamp(cancel["ts"].iloc[0]).normalize()
        live.update(None, cancel, as_of=day)
        after = read_predictions(st, [who]).set_index("customer_id")
        batch = models.predict(st, day).loc[[who]]
        assert after.loc[who, "churn_source"] == batch.loc[who, "churn_source"]
        assert not after.loc[who, "churn_source"].endswith("(cancellation)")  # no longer a subscriber
        assert after.loc[who, "churn_risk"] == pytest.approx(batch.loc[who, "churn_risk"], abs=1e-12)


def test_the_report_section_shows_the_subscribers_comparison_and_says_what_churn_means(result):
    from clientfolio.report.predictions import section

    html = section(result)
    assert "Subscribers: who will cancel in the next" in html
    assert result.subscriptions.sentence.replace("'", "&#x27;") in html
    assert "sBG (used)" in html or "boosted trees (used)" in html
    assert f"Judged on {result.subscriptions.n_test:,} active subscribers" in html
    # the at-risk table's intro says what churn means for subscribers only when one is in the scores
    assert "or, for customers with a running subscription, to cancel it" in html


def test_the_command_line_table_names_who_was_measured(result):
    from clientfolio.commands.common import console
    from clientfolio.commands.predict import print_comparison

    with console.capture() as cap:
        print_comparison(result.subscriptions)
    text = " ".join(cap.get().split())
    assert f"{result.subscriptions.n_test:,} active subscribers" in text and "sBG" in text
    assert result.subscriptions.sentence.split(":")[0] in text
