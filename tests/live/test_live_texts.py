"""Sentiment as customer features and an optional value-score dimension, kept current by live updates.

analyze derives mean sentiment, share negative and texts scored per customer (missing, never 0, without
a text); segments, rules and -- when given a weight -- the value score read them.  Live updates fold new
reviews and tickets into the kept values: the same numbers as a batch over the store at the same day.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import SchemaError
from clientfolio.live import LivePortfolio
from clientfolio.live.portfolio import FEW, LIVE_SOURCE, TEXT_FEATURES
from clientfolio.predict import sentiment as sent
from clientfolio.segments.value import PRESETS, parse_weights, value_references, value_score
from clientfolio.state import customer_features
from clientfolio.store import open_store
from tests.live.shops import D0, held_back_store

WEIGHTS = "retail,sentiment=0.2"
RULES = {"segments": [{"name": "Unhappy writers", "when": {"field": "mean_sentiment", "lte": -0.05}}]}


def test_sentiment_features_are_missing_without_texts_and_fold_like_the_batch():
    ev = pd.DataFrame({"customer_id": ["a", "a", "b", "c"], "ts": pd.to_datetime(["2024-01-01"] * 4, utc=True),
                       "type": ["review", "support_ticket", "review", "review"],
                       "properties": ['{"text": "Lovely bread, great service"}',
                                      '{"text": "The cake was damaged and the staff were rude"}',
                                      '{"text": "Das Brot war sehr gut"}', '{"rating": 5}']})
    f = sent.sentiment_features(sent.scored_texts(ev))
    assert list(f.index) == ["a"]  # b wrote German (not scored), c no text: no row, so missing, never 0
    assert f.loc["a", "texts_scored"] == 2 and f.loc["a", "negative_share"] == 0.5
    scores = sent.score_texts(["Lovely bread, great service", "The cake was damaged and the staff were rude"])
    assert f.loc["a", "mean_sentiment"] == pytest.approx(scores["sentiment"].mean(), abs=1e-15)
    one = sent.fold_sentiment(np.nan, np.nan, 0.0, [scores["sentiment"][0]])
    both = sent.fold_sentiment(*one, [scores["sentiment"][1]])
    assert both == pytest.approx((f.loc["a", "mean_sentiment"], 0.5, 2.0), abs=1e-15)
    assert sent.fold_sentiment(0.3, 0.0, 1.0, [np.nan]) == (0.3, 0.0, 1.0)  # an unscored text changes nothing
    assert TEXT_FEATURES == sent.FEATURES


def test_sentiment_is_an_optional_value_dimension_and_no_text_is_not_a_zero():
    c = pd.DataFrame({"customer_id": list("abcd"), "clv": [10.0, 20.0, 30.0, 40.0], "revenue": [1.0, 2.0, 3.0, 4.0],
                      "mean_sentiment": [0.9, -0.8, np.nan, 0.1]})
    refs = value_references(c)
    plain = value_score(c, "retail", refs)
    assert "sentiment" not in plain.scores and "sentiment" not in plain.weights  # off in every preset
    assert all("sentiment" not in w for w in PRESETS.values())
    with_s = value_score(c, WEIGHTS, refs)
    s = with_s.scores.set_index("customer_id")
    assert np.isnan(s.loc["c", "sentiment"])
    # c has no text: scored on economic alone (the only other dimension with data), not pulled down by a 0
    assert s.loc["c", "value_score"] == pytest.approx(plain.scores.set_index("customer_id").loc["c", "value_score"])
    assert s.loc["a", "sentiment"] > s.loc["d", "sentiment"] > s.loc["b", "sentiment"]
    w = with_s.weights
    assert w["sentiment"] == pytest.approx(0.2 / 0.7) and w["economic"] == pytest.approx(0.5 / 0.7)
    # the score of a customer with a text is the weighted mean of their dimensions
    assert s.loc["b", "value_score"] == pytest.approx(w["economic"] * s.loc["b", "economic"]
                                                      + w["sentiment"] * s.loc["b", "sentiment"])
    assert parse_weights("b2b,sentiment=0.1") == {**PRESETS["b2b"], "sentiment": 0.1}
    with pytest.raises(SchemaError, match="sentiment"):
        parse_weights("retail,sentiment=lots")
    with pytest.raises(SchemaError, match="unknown sector preset 'shop'"):
        parse_weights("shop,sentiment=0.1")


@pytest.fixture(scope="module")
def texts_store(module_store_url):
    """The demo shop analysed at D0 with sentiment in the value score; (store url, held-back lines, events)."""
    from clientfolio.state import PortfolioState

    url = module_store_url
    tx, ev = held_back_store(url, D0, clusters=False, sector=WEIGHTS, rules=RULES)
    with open_store(url) as st:
        state = PortfolioState.from_json(st.load_state()[1])
        c = st.query("SELECT customer_id, mean_sentiment, texts_scored FROM customer_state").set_index("customer_id")
    assert state.feature_flags_["sentiment"] and "sentiment" in state.value_weights_
    assert c["mean_sentiment"].notna().sum() > 100 and c["mean_sentiment"].isna().sum() > 1000
    assert (c.loc[c["mean_sentiment"].isna(), "texts_scored"] == 0).all()
    return url, tx, ev


def _batch(st, day: pd.Timestamp, ids: list[str]) -> pd.DataFrame:
    live = LivePortfolio(st)
    f, _, _ = customer_features(st, day)
    applied = live.state.apply(f[f["customer_id"].isin(ids)], day)
    out = applied.customers.set_index("customer_id").loc[ids]
    rules = applied.segments[applied.segments["segment_kind"] == "rules"]
    out["seg_rules"] = [json.dumps(sorted(rules.loc[rules["customer_id"] == c, "segment"].astype(str))) for c in ids]
    return out


@pytest.mark.slow  # the fixture analyses the demo shop: about 15 s
def test_live_reviews_fold_into_the_kept_sentiment_as_a_batch_gives(texts_store):
    url, tx, ev = texts_store
    with open_store(url) as st:
        live = LivePortfolio(st)
        texts = ev[ev["type"].isin(["review", "support_ticket"])]
        writers = texts["customer_id"].astype(str).unique()
        buyers = set(st.query("SELECT DISTINCT customer_id FROM transactions")["customer_id"].astype(str))
        # One at a time: a buyer's review (few-customer path), then a prospect who writes, then buys.
        first = texts[texts["customer_id"].astype(str).isin(buyers)].head(1)
        who = str(first["customer_id"].iloc[0])
        day = pd.Timestamp(first["ts"].iloc[0]).normalize()
        live.update(None, first, as_of=day)
        review = pd.DataFrame({"event_id": ["p-1"], "customer_id": ["PROSPECT"], "ts": [day + pd.Timedelta(hours=8)],
                               "type": ["review"], "properties": ['{"text": "Terrible coffee and a rude cashier"}']})
        live.update(None, review, as_of=day)
        order = pd.DataFrame({"customer_id": ["PROSPECT"], "order_id": ["P-1"], "ts": [day + pd.Timedelta(hours=9)],
                              "amount": [12.0], "source": [LIVE_SOURCE], "line_key": ["0"], "is_refund": [False]})
        live.update(order, as_of=day)
        kept = st.read_customer_state([who, "PROSPECT"]).set_index("customer_id")
        batch = _batch(st, day, [who, "PROSPECT"])
        for col in TEXT_FEATURES:
            np.testing.assert_allclose(kept[col].to_numpy(float), batch[col].to_numpy(float), rtol=0, atol=1e-12)
        assert kept.loc["PROSPECT", "texts_scored"] == 1 and kept.loc["PROSPECT", "negative_share"] == 1.0
        assert kept.loc["PROSPECT", "seg_rules"] == '["Unhappy writers"]' == batch.loc["PROSPECT", "seg_rules"]
        np.testing.assert_allclose(kept["value_score"].to_numpy(float), batch["value_score"].to_numpy(float),
                                   rtol=0, atol=1e-9)
        # Many at once (the general path): every later order and text up to a day.
        day2 = day + pd.Timedelta(days=20)
        lines = tx[(tx["ts"] >= day + pd.Timedelta(days=1)) & (tx["ts"] < day2)]
        events = ev[(ev["ts"] >= day + pd.Timedelta(days=1)) & (ev["ts"] < day2)]
        assert events["type"].isin(["review", "support_ticket"]).any()
        live.update(lines, events, as_of=day2)
        ids = sorted(set(lines["customer_id"].astype(str)) & set(writers) | {who})
        assert len(set(lines["customer_id"]) | set(events["customer_id"])) > FEW
        kept = st.read_customer_state(ids).set_index("customer_id").loc[ids]
        batch = _batch(st, day2, ids)
        for col in (*TEXT_FEATURES, "value_score"):
            np.testing.assert_allclose(kept[col].to_numpy(float), batch[col].to_numpy(float), rtol=0, atol=1e-9)
        # rules read the sentiment live as in a batch
        assert kept["seg_rules"].tolist() == batch["seg_rules"].tolist()
        assert '["Unhappy writers"]' in kept["seg_rules"].tolist()


@pytest.mark.slow
def test_a_store_set_up_before_sentiment_refits_and_reads_the_texts_live(texts_store):
    from clientfolio.pipeline import refit

    url, tx, ev = texts_store
    old = url  # the module's last test: it turns the store into one set up before sentiment
    with open_store(old) as st:  # customer_state as a version without sentiment wrote it
        st.replace_customer_state(st.read_customer_state().drop(columns=list(TEXT_FEATURES)))
    refit(old)  # the new state has sentiment; its rows have no place for it, and the refit says nothing wrong
    with open_store(old) as st:
        live = LivePortfolio(st)
        assert live.state.feature_flags_["sentiment"]
        last = pd.Timestamp(st.query("SELECT max(ts) AS t FROM transactions")["t"].iloc[0]).normalize()
        buyers = set(st.query("SELECT DISTINCT customer_id FROM transactions")["customer_id"].astype(str))
        texts = ev[ev["type"].isin(["review", "support_ticket"]) & (ev["ts"] > last + pd.Timedelta(days=1))
                   & ev["customer_id"].astype(str).isin(buyers)]
        one = texts.head(1)
        who = str(one["customer_id"].iloc[0])
        day = pd.Timestamp(one["ts"].iloc[0]).normalize()
        live.update(None, one, as_of=day)
        assert not set(TEXT_FEATURES) & set(st.customer_state_columns())
        kept = st.read_customer_state([who]).set_index("customer_id")
        batch = _batch(st, day, [who])
        np.testing.assert_allclose(kept["value_score"].to_numpy(float), batch["value_score"].to_numpy(float),
                                   rtol=0, atol=1e-9)
