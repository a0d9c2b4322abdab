"""Predictions in the store (schema 7) and in analyze: written whole or not at all, as of their fit, honest
about thin data.  Real stores (DuckDB and PostgreSQL), real files, the real command line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import clientfolio
from clientfolio.cli import app
from clientfolio.core.errors import ClientfolioError
from clientfolio.ingest import import_files
from clientfolio.predict.evaluation import btyd_interval, predict_shop
from clientfolio.predict.stored import (STALE_NOTE, customer_prediction, read_predictions, save_predictions)
from clientfolio.store import open_store
from clientfolio.store.schema import LATEST
from tests.conftest import DATA, corpus_file


def shop_orders(customers: int, days: int, seed: int = 7, start: str = "2023-01-01") -> pd.DataFrame:
    """A seeded shop: each customer buys at their own rate (every ~10 to ~60 days) until they drop out."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    rows = []
    for i in range(customers):
        first = rng.uniform(0, days * 0.4)
        gap, life = rng.uniform(10, 60), rng.exponential(days * 0.8)
        t, k = first, 0
        while t < min(days, first + life):
            rows.append((f"C{i:05d}", f"O{i:05d}-{k}", t0 + pd.Timedelta(days=float(t)), round(rng.uniform(5, 80), 2)))
            t += rng.exponential(gap)
            k += 1
    return pd.DataFrame(rows, columns=["customer_id", "order_id", "ts", "amount"])


@pytest.fixture(scope="module")
def shop_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("shop") / "orders.csv"
    shop_orders(600, 420).to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def shop_result(shop_csv):
    return predict_shop(pd.read_csv(shop_csv))


def test_predictions_table_is_replaced_whole_and_reruns_are_idempotent(store, shop_csv, shop_result):
    assert store.schema_version() == LATEST >= 7
    import_files([shop_csv], store)
    r = shop_result
    n = save_predictions(store, r)
    first = read_predictions(store)
    assert n == len(first) == len(r.customers) > 300
    assert first["state_id"].isna().all()  # no fitted state in this store: the scores say so
    assert (pd.to_datetime(first["as_of"]) == r.customers.attrs["as_of"]).all()
    assert first["churn_risk"].between(0, 1).all() and set(first["churn_source"]) <= {"BG/NBD", "boosted trees"}
    assert (first["next_order_low"] <= first["next_order_days"] + 1e-9).all()
    assert (first["next_order_days"] <= first["next_order_high"] + 1e-9).all()
    save_predictions(store, r)  # again: the same table, not twice the rows
    again = read_predictions(store)
    pd.testing.assert_frame_equal(first.drop(columns="made_at"), again.drop(columns="made_at"))
    # A write that fails half-way (a repeated customer breaks the key) leaves the previous table as it was.
    broken = type(r)(r.churn, r.next_order, pd.concat([r.customers, r.customers.head(1)]), r.horizon_days)
    broken.customers.attrs["as_of"] = r.customers.attrs["as_of"]
    with pytest.raises(Exception):
        save_predictions(store, broken)
    pd.testing.assert_frame_equal(again, read_predictions(store))
    one = customer_prediction(store, str(first["customer_id"].iloc[0]))
    assert one["note"] == STALE_NOTE and one["as_of"].startswith(str(r.customers.attrs["as_of"].date()))
    assert customer_prediction(store, "nobody") is None


def test_next_order_interval_says_what_it_covers_and_how_often_it_held(shop_result):
    c = shop_result.next_order
    label = c.details["interval_label"]
    m = re.fullmatch(r"80% interval; covered (\d+)% of ([\d,]+) test customers", label)
    assert m and int(m.group(2).replace(",", "")) == c.n_test
    chosen = c.details["interval_coverage"] if c.chosen == "model" else c.details["baseline_interval_coverage"]
    assert int(m.group(1)) == round(chosen * 100)
    assert 0.5 < c.details["baseline_interval_coverage"] <= 1.0
    assert f"80% interval held the actual day for {m.group(1)}% of the {m.group(2)} test" in c.sentence
    assert "10% to 90%" in c.details["interval"]


def test_btyd_interval_holds_its_median_and_quantiles():
    from clientfolio.predict.training import build_training_set

    ts = build_training_set(shop_orders(400, 300, seed=3), "2023-08-01", 40)
    iv = btyd_interval(ts.features, ts.btyd, 40)
    med = ts.features["btyd_days_median"]
    assert (iv["low"] <= med + 1e-9).all() and (med <= iv["high"] + 1e-9).all()
    assert iv.to_numpy().min() >= 0 and iv.to_numpy().max() <= 40
    # The 10% quantile solves P(order by s) = 0.1 under the model: check it on one customer directly.
    f, p = ts.features, ts.btyd.params_
    i = int(np.argmax((f["btyd_p_alive"] > 0.3) & (iv["low"] < 40)))
    A, k, pa = p["alpha"] + f["T"].iloc[i], p["r"] + f["frequency"].iloc[i], f["btyd_p_alive"].iloc[i]
    assert abs(pa * (1 - (A / (A + iv["low"].iloc[i])) ** k) - 0.1) < 1e-6


@pytest.mark.slow
def test_analyze_predict_fills_the_portfolio_the_state_and_the_kept_store(tmp_path, shop_csv):
    store = tmp_path / "shop.duckdb"
    pf = clientfolio.analyze(shop_csv, store=store, predict=True, clusters=False)
    p = pf.predictions
    assert not isinstance(p, str), p
    assert {c.task for c in p.comparisons} == {"churn", "next order"}
    assert pf.state.predictions_["as_of"].startswith(str(pf.as_of.date()))
    from clientfolio.actions.pseudonym import pseudonymise_portfolio

    shared = pseudonymise_portfolio(pf, "ab" * 32).predictions  # for sharing: no real id left in them
    assert not set(shared.customers["customer_id"]) & set(p.customers["customer_id"])
    assert len(shared.customers) == len(p.customers) and shared.customers.attrs["as_of"] == pf.as_of
    with open_store(store) as st:
        meta, body = st.load_state()
        stored = read_predictions(st)
        assert '"predictions": {' in body and (stored["state_id"] == meta["state_id"]).all()
        assert len(stored) == len(p.customers)
        assert (pd.to_datetime(stored["as_of"]) == pf.as_of).all()
    from clientfolio.live.portfolio import LivePortfolio
    from clientfolio.state.fitted import PortfolioState

    assert PortfolioState.from_json(body).predictions_ == pf.state.predictions_
    # A live order rescores its customer's predictions at the order's day with the state's models; the others
    # stay as of the fit (tests/live/test_live_predictions.py checks the numbers against the batch).
    who = str(stored["customer_id"].iloc[0])
    day = pf.as_of + pd.Timedelta(days=3)
    with open_store(store) as st:
        LivePortfolio(st).update(pd.DataFrame({"customer_id": [who], "order_id": ["LIVE-1"], "amount": [20.0],
                                               "ts": [day + pd.Timedelta(hours=10)]}))
        after = read_predictions(st)
        assert st.query("SELECT count(*) AS n FROM transactions WHERE order_id = 'LIVE-1'")["n"].iloc[0] == 1
    moved = after["customer_id"] == who
    assert (pd.to_datetime(after.loc[moved, "as_of"]) == day).all() and moved.sum() == 1
    pd.testing.assert_frame_equal(stored[~moved].reset_index(drop=True), after[~moved].reset_index(drop=True))
    # A refit of a state that had predictions makes them again, with the new state's id, and says so.
    from clientfolio.pipeline import refit

    result = refit(store)
    with open_store(store) as st:
        meta2, body2 = st.load_state()
        again = read_predictions(st)
    assert meta2["state_id"] != meta["state_id"] and (again["state_id"] == meta2["state_id"]).all()
    assert len(again) == len(p.customers) + 0 and again["customer_id"].is_unique
    assert (pd.to_datetime(again["as_of"]) == day).all()  # the refit's cut-off: the last order, LIVE-1's day
    assert any(n.startswith("Churn risk and next order made again for") for n in result.notes), result.notes
    refitted = PortfolioState.from_json(body2)
    assert refitted.predictions_["as_of"].startswith(str(day.date())) and refitted.prediction_models_ is not None
    # Off by default: nothing is trained, nothing is claimed.
    assert clientfolio.analyze(shop_csv, clusters=False).predictions is None


@pytest.mark.slow
def test_analyze_predict_at_a_cutoff_uses_no_later_data(shop_csv):
    pf = clientfolio.analyze(shop_csv, cutoff="2024-01-31", predict=True, clusters=False)
    assert pf.predictions.customers.attrs["as_of"] == pd.Timestamp("2024-01-31")
    assert pf.predictions.churn.cutoff < pd.Timestamp("2024-01-31").date()


def test_tiny_shops_get_a_plain_sentence_not_a_number(tmp_path):
    two = clientfolio.analyze(DATA / "trust" / "thin" / "shopify_two_customers_one_day.csv", predict=True)
    assert isinstance(two.predictions, str)
    assert "you have 0 days, 2 customers" in two.predictions and "No predictions were made" in two.predictions
    small = tmp_path / "thirty.csv"
    shop_orders(30, 90, seed=1).to_csv(small, index=False)
    pf = clientfolio.analyze(small, predict=True)
    assert isinstance(pf.predictions, str) and re.search(r"forecasts need at least .* 30 customers", pf.predictions)
    # Above the minimum for forecasts but too short for the time split: said as plainly.
    with pytest.raises(ClientfolioError, match=r"covers 1[45]\d days; .* need at least 211"):
        predict_shop(shop_orders(2000, 150, seed=2), horizon_days=70, require_support=False)
    with pytest.raises(ClientfolioError, match="no transactions with a customer"):
        predict_shop(pd.DataFrame({"customer_id": [None], "ts": ["2024-01-01"], "amount": [1.0]}))
    with pytest.raises(ClientfolioError, match="between 1 and 3650"):
        predict_shop(pd.read_csv(small), horizon_days=0)
    with pytest.raises(ClientfolioError, match="no orders with a customer up to 2020-01-01"):
        predict_shop(pd.read_csv(small), as_of="2020-01-01")


def _cli(args: list[str]):
    r = CliRunner().invoke(app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r


def test_predict_command_on_thin_and_bad_input_says_what_is_missing(tmp_path):
    small = tmp_path / "thirty.csv"
    shop_orders(30, 90, seed=1).to_csv(small, index=False)
    st = tmp_path / "thin.duckdb"
    assert _cli(["import", str(small), "--store", str(st)]).exit_code == 0
    r = _cli(["predict", "--store", str(st)])
    assert r.exit_code == 1 and "No predictions were made" in r.output and "AUC" not in r.output
    r = _cli(["predict", "--store", str(tmp_path / "missing.duckdb")])
    assert r.exit_code != 0 and "missing.duckdb" in r.output
    empty = tmp_path / "empty.duckdb"
    open_store(empty).close()
    r = _cli(["predict", "--store", str(empty)])
    assert r.exit_code == 1 and "no transactions" in r.output


@pytest.mark.slow
def test_predict_command_writes_the_store_and_a_safe_csv(tmp_path, shop_csv):
    st = tmp_path / "shop.duckdb"
    assert _cli(["import", str(shop_csv), "--store", str(st)]).exit_code == 0
    out = tmp_path / "pred.csv"
    r = _cli(["predict", "--store", str(st), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert re.search(r"80% interval held the actual day for \d+% of the [\d,]+ test customers",
                     re.sub(r"\s+", " ", r.output))
    said_out = " ".join(r.output.split())  # rich wraps at the terminal width (80 columns in CI)
    assert "Stored" in said_out and "Live updates and the daily sweep rescore the customers they" in said_out, r.output
    with open_store(st) as s:
        assert len(read_predictions(s)) == len(pd.read_csv(out)) > 300
    said = pd.read_csv(out)["next_order_interval"].unique()  # every row says what its interval covers
    assert len(said) == 1 and re.fullmatch(r"80% interval \(10% to 90% quantile\), capped at \d+ days; "
                                           r"covered \d+% of [\d,]+ test customers", said[0])
    assert _cli(["predict", "--store", str(st)]).exit_code == 0  # re-running replaces, never appends
    with open_store(st) as s:
        assert len(read_predictions(s)) == len(pd.read_csv(out))


@pytest.mark.slow
def test_cdnow_head_is_scored_or_told_plainly(tmp_path):
    src = corpus_file("cdnow_master__headerless_head__zhuc5.txt")
    lines = [ln.split() for ln in src.read_text().splitlines() if ln.strip()]
    df = pd.DataFrame({"customer_id": [x[0] for x in lines], "ts": pd.to_datetime([x[1] for x in lines]),
                       "amount": [float(x[3]) for x in lines]})
    r = predict_shop(df)
    assert len(r.customers) == df["customer_id"].nunique()
    for c in r.comparisons:  # each says which method it uses and why, with numbers or the reason none
        assert c.sentence.startswith(("Churn risk uses", "Next order uses"))
        assert all(np.isfinite(m.baseline) for m in c.metrics)
    assert r.customers["churn_risk"].between(0, 1).all()


def test_analyze_predict_flag_on_a_tiny_shop_prints_why_there_are_none(tmp_path):
    r = _cli(["analyze", str(DATA / "trust" / "thin" / "shopify_two_customers_one_day.csv"), "--predict",
              "--out", str(tmp_path / "rep")])
    text = re.sub(r"\s+", " ", r.output)
    assert r.exit_code == 0, r.output
    assert "Churn risk and next order as of" in text and "none: churn risk and next order are forecasts" in text
    assert "No predictions were made" in text and "AUC" not in text
    help_text = re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", _cli(["analyze", "--help"]).output))
    assert "--predict" in help_text and "a minute per 100,000 customers" in help_text


def test_the_models_kept_for_live_updates_give_the_batch_scores(shop_csv, shop_result):
    """What predict_shop scored is what its kept models give when applied again (as a live update applies
    them), also after a round trip through the stored form; one customer's rows alone give their scores."""
    import json

    from clientfolio.predict.applied import PredictionModels
    from clientfolio.predict.training import Tables, load_tables

    r = shop_result
    tables = load_tables(pd.read_csv(shop_csv))
    day = r.customers.attrs["as_of"]
    m = PredictionModels.from_dict(json.loads(json.dumps(r.models.to_dict())))
    assert m.usable and m.horizon_days == r.horizon_days and m.churn_source == r.customers["churn_source"].iloc[0]
    again = m.predict(tables, day)
    cols = ["churn_risk", "next_order_days", "next_order_low", "next_order_high", "reason"]
    pd.testing.assert_frame_equal(again[cols], r.customers.set_index("customer_id")[cols])
    who = str(r.customers["customer_id"].iloc[7])
    own = tables.transactions[tables.transactions["customer_id"] == who]
    alone = m.predict(Tables(own, tables.events, tables.customers), day)
    pd.testing.assert_frame_equal(alone[cols], again.loc[[who], cols])
