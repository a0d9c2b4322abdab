"""Recommendations on the demo shop: each method against most popular on a time split, and the choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from clientfolio.datasets import load_demo_shop
from clientfolio.predict import Comparison
from clientfolio.predict.recommend import Recommender


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    return load_demo_shop()["transactions"]


@pytest.fixture(scope="module")
def fitted(tx: pd.DataFrame) -> Recommender:
    return Recommender(k=5, horizon_days=60).fit(tx)


def test_demo_shop_hit_rates_and_the_choice_follows_them(fitted: Recommender) -> None:
    c = fitted.comparison_
    assert isinstance(c, Comparison) and c.task == "recommendations"
    m = c.details["methods"]
    # Recorded numbers (demo shop, cut-off 2024-11-01, next 60 days, 550 customers buying something new):
    # hit rate@5: co-occurrence 0.509, ALS (implicit) 0.545, most popular 0.589.
    assert c.n_test == 550
    assert m["cooccurrence"]["hit_rate"] == pytest.approx(0.509, abs=0.01)
    assert m["factorisation"]["hit_rate"] == pytest.approx(0.545, abs=0.03)
    assert m["popular"]["hit_rate"] == pytest.approx(0.589, abs=0.01)
    for r in m.values():
        assert 0 < r["recall"] <= r["hit_rate"] <= 1 and 0 < r["coverage"] <= 1
    best = max(m["cooccurrence"]["hit_rate"], m["factorisation"]["hit_rate"])
    if best > m["popular"]["hit_rate"]:
        assert c.chosen == "model" and fitted.method_ in ("cooccurrence", "factorisation")
    else:
        assert c.chosen == "baseline" and fitted.method_ == "popular"
        assert "Most popular products are recommended" in c.sentence
    assert c.metrics[0].model == pytest.approx(best) and c.metrics[0].baseline == m["popular"]["hit_rate"]


def test_forced_method_gives_reasons_from_the_customers_own_purchases(tx: pd.DataFrame) -> None:
    rec = Recommender(k=3, method="cooccurrence").fit(tx)
    out = rec.recommend(["C00003"])
    cross = out[out["kind"] == "cross-sell"]
    assert len(cross) == 3
    bought = set(tx.loc[tx["customer_id"] == "C00003", "product_id"])
    assert not set(cross["product_id"]) & bought  # cross-sell offers only products not yet bought
    for why in cross["because"]:
        assert why.startswith("because you bought ")
        named = why.removeprefix("because you bought ").split(" and ")
        assert set(named) <= bought


def test_upsell_is_pricier_same_category_and_new(fitted: Recommender, tx: pd.DataFrame) -> None:
    out = fitted.recommend(["C00003", "C00010", "C00020"])
    up = out[out["kind"] == "up-sell"]
    assert len(up) > 0
    f = fitted.fitted_
    for r in up.itertuples():
        src = r.because.split("because you bought ")[1].split(":")[0]
        assert f.category[f.p_index[src]] == f.category[f.p_index[r.product_id]] == r.category
        assert f.price[f.p_index[r.product_id]] > f.price[f.p_index[src]]
        assert r.product_id not in set(tx.loc[tx["customer_id"] == r.customer_id, "product_id"])


def test_same_seed_same_recommendations(tx: pd.DataFrame) -> None:
    a = Recommender(method="factorisation", random_state=3).fit(tx)
    b = Recommender(method="factorisation", random_state=3).fit(tx)
    ids = ["C00003", "C00050", "W001"]
    pd.testing.assert_frame_equal(a.recommend(ids), b.recommend(ids))
    assert a.comparison_.details == b.comparison_.details
    assert np.array_equal(a.fitted_.item_f, b.fitted_.item_f)


def test_tiny_shop_says_too_thin_and_falls_back_to_most_popular() -> None:
    rows = []
    for i, (c, p) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("c", "z"), ("b", "y"), ("c", "x")]):
        rows.append({"customer_id": c, "order_id": f"o{i}",
                     "ts": pd.Timestamp("2024-01-01") + pd.Timedelta(days=20 * i),
                     "amount": 3.0, "quantity": 1, "product_id": p, "category": "k"})
    rec = Recommender(k=2, horizon_days=30).fit(pd.DataFrame(rows))
    c = rec.comparison_
    assert c.chosen == "baseline" and rec.method_ == "popular"
    assert "too thin" in c.sentence and "customers bought a product new to them" in c.sentence
    assert np.isnan(c.metrics[0].model)
    out = rec.recommend(["a"])
    assert list(out.loc[out["kind"] == "cross-sell", "product_id"]) == ["z"]
    assert "most popular" in out["because"].iloc[0]


def test_unfitted_raises_a_clear_error() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        Recommender().recommend(["a"])


def test_personalised_method_chosen_when_it_beats_most_popular() -> None:
    """Ten product pairs: customers of a pair buy its first product, then its second; co-occurrence
    learns the pairs (from earlier customers who bought both) and most popular cannot."""
    rng = np.random.default_rng(1)
    rows, n = [], 0
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for c in range(400):
        pair = int(rng.integers(0, 10))
        late = c >= 200  # the second half buys the partner product only after the cut-off
        days = [int(rng.integers(0, 150)), int(rng.integers(160, 180) if late else rng.integers(0, 150))]
        for prod, day in zip((f"p{2 * pair}", f"p{2 * pair + 1}"), days):
            n += 1
            rows.append({"customer_id": f"c{c}", "order_id": f"o{n}", "ts": start + pd.Timedelta(days=day),
                         "amount": 2.0, "quantity": 1, "product_id": prod, "category": "k"})
    rows.append({"customer_id": "solo", "order_id": "o-solo", "ts": start, "amount": 2.0, "quantity": 1,
                 "product_id": "p6", "category": "k"})
    tx = pd.DataFrame(rows)
    rec = Recommender(k=2, horizon_days=30).fit(tx, cutoff=pd.Timestamp("2024-06-02").date())
    c, m = rec.comparison_, rec.comparison_.details["methods"]
    assert m["cooccurrence"]["hit_rate"] > 0.95 and m["popular"]["hit_rate"] < 0.4
    assert c.chosen == "model" and rec.method_ in ("cooccurrence", "factorisation")
    assert c.sentence.split(" is used")[0].lower() == c.model_name
    lo, hi = c.details["hit_rate_difference_95ci"]
    assert 0 < lo <= hi
    solo = rec.recommend(["solo"], n=1).iloc[0]
    assert (solo["product_id"], solo["because"]) == ("p7", "because you bought p6")
