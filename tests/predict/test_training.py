"""The time split leaks nothing; the models are seeded; the choice follows the metrics (demo and CDNOW)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.datasets import load_cdnow_master, load_demo_shop
from clientfolio.predict.churn import ChurnModel
from clientfolio.predict.training import build_training_set


@pytest.fixture(scope="module")
def demo():
    return load_demo_shop()


def test_rows_after_the_cutoff_change_no_feature(demo):
    cutoff = pd.Timestamp("2024-06-30")
    base = build_training_set(demo, cutoff, 42)
    tx, ev = demo["transactions"], demo["events"]
    after = tx["ts"] >= pd.Timestamp("2024-07-01", tz="UTC")
    assert after.sum() > 1000
    deleted = build_training_set({**demo, "transactions": tx[~after], "events": ev[ev["ts"] < pd.Timestamp("2024-07-01", tz="UTC")]},
                                 cutoff, 42)
    shifted_tx = tx.copy()
    shifted_tx.loc[after, "ts"] += pd.Timedelta(days=3)
    shifted_tx.loc[after, "amount"] *= 2
    shifted = build_training_set({**demo, "transactions": shifted_tx}, cutoff, 42)
    pd.testing.assert_frame_equal(base.features, deleted.features)
    pd.testing.assert_frame_equal(base.features, shifted.features)


def test_same_seed_same_scores_and_unfitted_error(demo):
    ts = build_training_set(demo, "2024-06-30", 42)
    a = ChurnModel(random_state=3).fit(ts.features, ts.labels["churned"]).predict_risk(ts.features)
    b = ChurnModel(random_state=3).fit(ts.features, ts.labels["churned"]).predict_risk(ts.features)
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    assert ((a >= 0) & (a <= 1)).all()
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        ChurnModel().predict_risk(ts.features)


@pytest.mark.slow
@pytest.mark.parametrize("shop", ["demo", "cdnow"])
def test_evaluation_table_and_choice_follow_the_metrics(shop, demo):
    from clientfolio.predict.evaluation import predict_shop

    r = predict_shop(demo if shop == "demo" else load_cdnow_master())
    m = {x.name: x for x in r.churn.metrics}
    assert all(np.isfinite([x.model, x.baseline]).all() for x in m.values())
    wins = m["AUC"].model > m["AUC"].baseline and m["Brier"].model <= m["Brier"].baseline
    assert r.churn.chosen == ("model" if wins else "baseline")
    mae = r.next_order.metrics[0]
    assert r.next_order.chosen == ("model" if mae.model < mae.baseline else "baseline")
    assert len(r.customers) > 1000 and r.customers["churn_risk"].between(0, 1).all()
    print(shop, [c.rows() for c in r.comparisons])


def test_predict_command_writes_one_row_per_customer(tmp_path):
    from typer.testing import CliRunner

    from clientfolio.cli import app

    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(app, ["predict", "--demo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "AUC" in r.output and "MAE" in r.output
    df = pd.read_csv(out)
    assert len(df) == 3600 and df["churn_risk"].between(0, 1).all()
