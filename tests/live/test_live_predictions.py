"""Live updates keep churn risk and next order current for the customers they touch.

The demo shop analysed with predictions at a cut-off (its churn model is the boosted trees, which beat
BG/NBD there), then held-back orders and events replayed: after each update, every touched customer's
stored prediction equals what the state's models give in a batch over the whole store at the same day
(`PredictionModels.predict`), on DuckDB and on a real PostgreSQL server; untouched customers keep theirs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clientfolio.live import LivePortfolio
from clientfolio.live.portfolio import FEW, LIVE_SOURCE
from clientfolio.predict.applied import PredictionModels
from clientfolio.predict.stored import read_predictions
from clientfolio.state import PortfolioState
from clientfolio.store import open_store
from tests.live.shops import D0, held_back_store

pytestmark = pytest.mark.slow  # one analyze with predictions per backend: about 20 s each on a quiet machine

NUMBERS = ["churn_risk", "next_order_days", "next_order_low", "next_order_high"]


@pytest.fixture(scope="module")
def shop(module_store_url):
    """(store url, held-back order lines, held-back events) of the demo shop analysed with predictions at D0."""
    url = module_store_url
    tx, ev = held_back_store(url, D0, predict=True, clusters=False)
    with open_store(url) as st:
        state = PortfolioState.from_json(st.load_state()[1])
    assert state.predictions_["churn"] == "model"  # the trees are what is applied live, not only BG/NBD
    return url, tx, ev


def _batch(st, models: PredictionModels, day: pd.Timestamp, ids: list[str]) -> pd.DataFrame:
    return models.predict(st, day).loc[ids]


def _check(st, models: PredictionModels, day: pd.Timestamp, ids: list[str]) -> pd.DataFrame:
    live = read_predictions(st, ids).set_index("customer_id")
    assert sorted(live.index) == sorted(ids)
    assert (pd.to_datetime(live["as_of"]) == day).all()
    batch = _batch(st, models, day, ids)
    for col in NUMBERS:
        np.testing.assert_allclose(live.loc[ids, col].to_numpy(float), batch[col].to_numpy(float), rtol=0, atol=1e-12)
    assert live.loc[ids, "reason"].tolist() == batch["reason"].tolist()
    assert live.loc[ids, "churn_source"].tolist() == batch["churn_source"].tolist()
    return live


def test_live_updates_give_the_batch_predictions_of_the_customers_they_touch(shop):
    url, tx, ev = shop
    with open_store(url) as st:
        live = LivePortfolio(st)
        models = live.state.prediction_models_
        assert isinstance(models, PredictionModels) and models.churn is not None  # stored, loaded, decoded
        before = read_predictions(st).set_index("customer_id")
        # One customer's order (the few-customer path), an event of another, a new customer's first order.
        order = tx[tx["order_id"] == tx["order_id"].iloc[0]]
        buyer = str(order["customer_id"].iloc[0])
        other = str(ev.loc[ev["customer_id"].astype(str) != buyer, "customer_id"].iloc[0])
        event = ev[ev["customer_id"].astype(str) == other].head(1)
        day = pd.Timestamp(max(order["ts"].max(), event["ts"].max())).normalize()
        newcomer = pd.DataFrame({"customer_id": ["NEW-1"], "order_id": ["NEW-1-a"], "ts": [day + pd.Timedelta(hours=9)],
                                 "amount": [42.0], "category": ["bread"], "source": [LIVE_SOURCE],
                                 "line_key": ["0"], "is_refund": [False]})
        live.update(pd.concat([order, newcomer], ignore_index=True), event, as_of=day)
        touched = sorted({buyer, other, "NEW-1"})
        after = _check(st, models, day, touched)
        assert after.loc[buyer, "reason"] != before.loc[buyer, "reason"]  # the new order is in their numbers
        rest = read_predictions(st).set_index("customer_id").drop(index=touched)
        pd.testing.assert_frame_equal(rest, before.drop(index=[c for c in touched if c in before.index]))
        # Many customers at once, with a cancellation: the general path.
        day2 = day + pd.Timedelta(days=10)
        later = tx[(tx["ts"] > day + pd.Timedelta(days=1)) & (tx["ts"] < day2)]
        assert later["customer_id"].nunique() > FEW
        live.update(later, cancellations=[(LIVE_SOURCE, "NEW-1-a")], as_of=day2)
        ids = sorted(set(later["customer_id"].astype(str)))
        _check(st, models, day2, ids)
        # The newcomer's only order is cancelled: no purchase left, no prediction row (as in a batch).
        assert read_predictions(st, ["NEW-1"]).empty


def test_without_prediction_models_an_update_writes_no_predictions(shop):
    url, tx, _ = shop
    with open_store(url) as st:
        live = LivePortfolio(st)
        live.state.prediction_models_ = None
        before = read_predictions(st)
        order = tx[tx["order_id"] == tx["order_id"].iloc[-1]]
        live.update(order)
        pd.testing.assert_frame_equal(read_predictions(st), before)
        assert live._predictions([str(order["customer_id"].iloc[0])], pd.Timestamp(order["ts"].iloc[0])) == {}


def test_the_state_keeps_its_models_and_old_or_unreadable_ones_load(shop):
    url, _, _ = shop
    with open_store(url) as st:
        meta, body = st.load_state()
    d = json.loads(body)
    assert d["prediction_models"]["churn"] is not None and d["prediction_models"]["btyd"]["class"] == "BGNBD"
    again = PortfolioState.from_json(body).prediction_models_
    assert again.usable and again.to_dict() == d["prediction_models"]
    old = dict(d)
    del old["prediction_models"]  # a state stored before the models were kept
    assert PortfolioState.from_json(json.dumps(old)).prediction_models_ is None
    broken = json.loads(body)
    broken["prediction_models"]["churn"]["model"] = "bm90IGEgbW9kZWw="  # not a model this version can read
    models = PortfolioState.from_json(json.dumps(broken)).prediction_models_
    assert not models.usable and "could not be read" in models.error and "refit" in models.error


def test_the_sweep_rescores_the_customers_it_applies(shop):
    """Time moves churn risk too: the customers a sweep applies get the batch predictions at the sweep's day,
    in its commit; the others keep theirs."""
    url, _, _ = shop
    with open_store(url) as st:
        live = LivePortfolio(st)
        models = live.state.prediction_models_
        latest = pd.Timestamp(st.query("SELECT max(as_of) AS d FROM customer_state")["d"].iloc[0]).normalize()
        day = latest + pd.Timedelta(days=45)
        before = read_predictions(st).set_index("customer_id")
        result = live.sweep(day)
        swept = sorted(st.query("SELECT customer_id FROM customer_state WHERE as_of = ? AND stat_n_days > 0",
                                [day.to_pydatetime()])["customer_id"].astype(str))
        assert result.customers_touched >= len(swept) > 20
        _check(st, models, day, swept)
        rest = read_predictions(st).set_index("customer_id").drop(index=swept)
        pd.testing.assert_frame_equal(rest, before.drop(index=[c for c in swept if c in before.index]))
