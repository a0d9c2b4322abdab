"""Category propensity on the demo shop: boosted trees against the customer's past category share."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from clientfolio.datasets import load_demo_shop
from clientfolio.predict import Comparison
from clientfolio.predict.propensity import CategoryPropensity, category_features

CUT = date(2024, 6, 30)


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    return load_demo_shop()["transactions"]


@pytest.fixture(scope="module")
def fitted(tx: pd.DataFrame) -> CategoryPropensity:
    return CategoryPropensity(horizon_days=30, max_iter=60).fit(tx)


def test_demo_shop_model_against_past_share(fitted: CategoryPropensity) -> None:
    c = fitted.comparison_
    assert isinstance(c, Comparison) and c.task == "category propensity"
    auc, pr = c.metrics
    # Recorded (cut-off 2024-12-01, next 30 days, 3,328 customers): mean AUC 0.93 against 0.68 for the
    # past share, mean PR-AUC 0.71 against 0.25 (max_iter=150 in the CLI default; 60 here for speed).
    assert auc.model == pytest.approx(0.93, abs=0.02) and auc.baseline == pytest.approx(0.678, abs=0.005)
    assert pr.model == pytest.approx(0.71, abs=0.04) and pr.baseline == pytest.approx(0.252, abs=0.005)
    assert c.chosen == ("model" if auc.model_wins and pr.model_wins else "baseline") == "model"
    assert "boosted-trees propensity is used" in c.sentence
    per = c.details["per_category"]
    assert set(per) == set(fitted.categories_) and per["coffee"]["buyers"] > 100
    scores = fitted.predict_proba(load_demo_shop()["transactions"])
    assert list(scores.columns) == fitted.categories_ and scores.to_numpy().min() >= 0
    assert scores.to_numpy().max() <= 1


def test_rows_after_the_cutoff_change_no_feature(tx: pd.DataFrame) -> None:
    base = category_features(tx, CUT)
    day = pd.to_datetime(tx["ts"]).dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    before = tx[day <= pd.Timestamp(CUT)]
    after = tx[day > pd.Timestamp(CUT)].copy()
    assert len(after) > 1000
    pd.testing.assert_frame_equal(category_features(before, CUT, sorted(base["category"].unique())), base)
    shifted = after.assign(ts=after["ts"] + pd.Timedelta(days=3), category="gift", amount=after["amount"] * 5)
    pd.testing.assert_frame_equal(category_features(pd.concat([before, shifted]), CUT), base)


def test_same_seed_same_scores(tx: pd.DataFrame) -> None:
    a = CategoryPropensity(max_iter=30, random_state=7).fit(tx, cutoff=CUT)
    b = CategoryPropensity(max_iter=30, random_state=7).fit(tx, cutoff=CUT)
    pd.testing.assert_frame_equal(a.predict_proba(tx, at=CUT), b.predict_proba(tx, at=CUT))
    assert a.comparison_.metrics == b.comparison_.metrics


def test_thin_shop_uses_past_share_and_says_why() -> None:
    rows = [{"customer_id": f"c{i % 12}", "order_id": f"o{i}", "ts": pd.Timestamp("2024-01-01", tz="UTC")
             + pd.Timedelta(days=3 * i), "category": "ab"[i % 2]} for i in range(60)]
    p = CategoryPropensity(horizon_days=20).fit(pd.DataFrame(rows))
    c = p.comparison_
    assert c.chosen == "baseline" and "too thin" in c.sentence and "customers were active" in c.sentence
    assert all(np.isnan(m.model) for m in c.metrics)
    s = p.predict_proba(pd.DataFrame(rows))
    assert s.loc["c0", "a"] == 1.0 and s.loc["c0", "b"] == 0.0  # c0 bought only category a: its past share


def test_unfitted_raises() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        CategoryPropensity().predict_proba(pd.DataFrame())
