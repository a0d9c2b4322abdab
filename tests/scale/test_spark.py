"""DuckDB (the store's SQL) and Spark (local mode) give the same features, scores and memberships.

One small shop (about 700 customers, two years) goes into a DuckDB store the usual way; the
store's transactions table, written to Parquet, is what Spark reads.  One Spark session serves
the whole module.  The SQLFrame test runs the same PySpark-API feature code on DuckDB without a JVM.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.features import rfm_summary
from clientfolio.ingest import import_files
from clientfolio.pipeline import support_at
from clientfolio.scale import frames
from clientfolio.scale.spark import java_missing
from clientfolio.state import PortfolioState, customer_features
from clientfolio.store import open_store



def _shop(n_customers: int = 700, seed: int = 5, churn: bool = False) -> pd.DataFrame:
    """Orders with refunds, categories, channels and discounts over two years.

    With `churn`, customers buy at their rate until they leave (after an exponential time), as
    the purchase models assume: then BG/NBD's parameters are identified.
    """
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.0, 1.0, n_customers) * 3
    start = rng.uniform(0, 500, n_customers)
    rows = []
    for c in range(n_customers):
        if churn:
            end = min(730.0, start[c] + rng.exponential(250.0))
            gaps = np.cumsum(rng.exponential(365.0 / max(rate[c] * 4, 0.5), 200))
            days = np.concatenate([[start[c]], start[c] + gaps[start[c] + gaps < end]])
        else:
            n = 1 + rng.poisson(rate[c])
            days = np.sort(start[c] + rng.uniform(0, 730 - start[c], n))
        days[0] = start[c]
        for i, d in enumerate(days):
            rows.append((f"C{c:04d}", f"O{c}-{i}", pd.Timestamp("2023-01-01") + pd.Timedelta(days=float(d)),
                         round(float(rng.gamma(2.0, 15.0)), 2)))
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "ts", "amount"])
    n = len(df)
    df["category"] = rng.choice(["coffee", "cake", "bread", "gift"], n)
    df["channel"] = rng.choice(["web", "store"], n, p=[0.6, 0.4])
    df["discount"] = np.where(rng.random(n) < 0.2, 2.0, 0.0)
    df["cost"] = (df["amount"] * 0.4).round(2)
    refunds = df.sample(frac=0.03, random_state=seed).assign(
        order_id=lambda d: "R" + d["order_id"], amount=lambda d: -d["amount"],
        ts=lambda d: d["ts"] + pd.Timedelta(days=3))
    return pd.concat([df, refunds], ignore_index=True).assign(ts=lambda d: d["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The DuckDB side: store, features, fitted state applied; and the Parquet the engines read."""
    return _duckdb_side(tmp_path_factory.mktemp("shop"), _shop())


@pytest.fixture(scope="module")
def churn_shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A shop whose customers leave, so that the purchase model is fitted (not the run rate)."""
    got = _duckdb_side(tmp_path_factory.mktemp("churn"), _shop(churn=True, seed=11))
    assert got["state"].purchase_model_ is not None and got["state"].alive_model_ is not None
    return got


@pytest.fixture(scope="module")
def spark():
    """One Spark session (local[2]) for the module's Spark tests: the JVM starts once."""
    if java_missing() is not None:
        pytest.skip(f"Spark cannot start: {java_missing()}")
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'clientfolio[test]')")
    from clientfolio.scale.spark import spark_session

    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


def _duckdb_side(d: Path, orders: pd.DataFrame) -> dict:
    orders.to_csv(d / "orders.csv", index=False)
    with open_store(d / "s.duckdb") as st:
        import_files([d / "orders.csv"], st)
        st.con.execute(f"COPY (SELECT * FROM transactions) TO '{d / 'tx.parquet'}' (FORMAT parquet)")
        span = st.query("SELECT min(ts) AS a, max(ts) AS b FROM transactions")
        as_of = pd.Timestamp(span["b"].iloc[0]).normalize()
        features, _, _ = customer_features(st, as_of)
        support = support_at(rfm_summary(st, cutoff=as_of, unit="W"), pd.Timestamp(span["a"].iloc[0]), as_of)
    assert support.forecasts, support.reason  # the comparison must cover the model scores
    assert features["refunds"].lt(0).any() and "top_channel" in features and "discount_share" in features
    state = PortfolioState(model="bgnbd")
    applied = state.fit_apply(features, as_of, support=support)
    return {"dir": d, "as_of": as_of, "features": features, "state": state, "applied": applied}


def _close(a: object, b: object) -> bool:
    """Equal, numbers to 1e-12 relative (Spark adds the same amounts in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


def _same(a: pd.Series, b: pd.Series, name: str) -> None:
    if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
        np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=1e-12, atol=1e-12, equal_nan=True,
                                   err_msg=name)
    else:
        text = lambda s: [None if pd.isna(v) else str(v) for v in s]  # noqa: E731
        assert text(b) == text(a), name


def test_sqlframe_on_duckdb_gives_the_store_features(shop: dict) -> None:
    """The portable feature code, run on DuckDB through SQLFrame (no JVM), equals the store's SQL."""
    import duckdb
    from sqlframe.duckdb import DuckDBSession

    con = duckdb.connect()
    tx = frames.canonical(DuckDBSession(conn=con).read.parquet(str(shop["dir"] / "tx.parquet")))
    lazy, shape = frames.features_frame(tx, shop["as_of"])
    got = frames.finish(con.execute(lazy.sql(dialect="duckdb")).df(), shape, shop["as_of"])
    ref = shop["features"]
    assert len(got) == len(ref) > 600
    assert shape.categories and shape.channels and shape.discounts
    for col in got.columns:
        assert str(got[col].dtype) == str(ref[col].dtype), col
        _same(ref[col], got[col], col)


def _holdout_split(shop: dict) -> tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame]:
    """analyze's holdout split of the shop, and its calibration summary (weeks) from the store."""
    with open_store(shop["dir"] / "s.duckdb") as st:
        span = st.query("SELECT min(ts) AS a FROM transactions WHERE customer_id IS NOT NULL")
        first = pd.Timestamp(span["a"].iloc[0])
        split = (first + (shop["as_of"] - first) * 2 / 3).normalize()
        cal = rfm_summary(st, cutoff=split, unit="W", holdout_end=shop["as_of"])
    return first, split, cal


def test_holdout_histories_on_duckdb_give_the_store_comparison(churn_shop: dict) -> None:
    """The portable holdout frame (SQLFrame on DuckDB, no JVM) gives the store's calibration summary, and the
    comparison on its distinct histories with counts is the one analyze makes on every customer."""
    import duckdb
    from sqlframe.duckdb import DuckDBSession

    from clientfolio.scores.validation import compare_models

    first, split, cal = _holdout_split(churn_shop)
    con = duckdb.connect()
    tx = frames.canonical(DuckDBSession(conn=con).read.parquet(str(churn_shop["dir"] / "tx.parquet")))
    lazy = frames.holdout_frame(tx, split, churn_shop["as_of"])
    got = con.execute(lazy.sql(dialect="duckdb")).df().sort_values("customer_id", ignore_index=True)
    assert list(got["customer_id"]) == list(cal["customer_id"]) and len(got) > 400
    for col in ("frequency", "recency", "T", "frequency_holdout"):
        scale = 1.0 if col.startswith("frequency") else 7.0
        np.testing.assert_array_equal(got[col].to_numpy(float) / scale, cal[col].to_numpy(float), err_msg=col)
    assert cal["frequency_holdout"].sum() > 0
    keys = ["frequency", "recency", "T", "frequency_holdout"]
    stats = got.groupby(keys).size().rename("weights").astype(float).reset_index()
    stats["recency"] /= 7.0
    stats["T"] /= 7.0
    stats["duration_holdout"] = (churn_shop["as_of"] - split).days / 7.0
    assert len(stats) < len(got)
    a, b = compare_models(cal), compare_models(stats)
    assert a.best == b.best
    np.testing.assert_allclose(b.table["holdout_mae"].to_numpy(float), a.table["holdout_mae"].to_numpy(float),
                               rtol=1e-7)


@pytest.mark.slow
def test_spark_chooses_the_purchase_model_as_analyze(churn_shop: dict, spark) -> None:
    """model="auto" on Spark: the holdout comparison on histories collapsed by Spark picks analyze's model with
    its errors, and the state is fitted with it (no output written: the apply is not run)."""
    from clientfolio.scale.spark import analyze_spark
    from clientfolio.scores.validation import compare_models
    from clientfolio.state.models import MODEL_NAMES

    _, split, cal = _holdout_split(churn_shop)
    want = compare_models(cal)
    res, _, _ = analyze_spark(churn_shop["dir"] / "tx.parquet", None, spark=spark, model="auto")
    got = res.comparison
    assert got is not None and got.best == want.best
    assert res.state.model == MODEL_NAMES[want.best]
    a, b = want.table.set_index("model"), got.table.set_index("model")
    for col in ("log_likelihood", "holdout_mae", "holdout_rmse", "predicted_total", "actual_total"):
        np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-7, err_msg=col)
    assert any(f"holdout period ({split:%Y-%m-%d}" in n and want.best in n for n in res.notes)


@pytest.mark.slow
def test_spark_gives_the_same_features_scores_and_memberships(shop: dict, tmp_path: Path, spark) -> None:
    """analyze on Spark local[2]: features on Spark, fit on the driver, apply per partition, Parquet out."""
    from clientfolio.scale.spark import analyze_spark

    try:
        # Small batches: apply runs on several pieces per partition, as on a big base.
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "150")
        res, _, _ = analyze_spark(shop["dir"] / "tx.parquet", tmp_path / "out", spark=spark, model="bgnbd")
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    ref_state, ref = shop["state"], shop["applied"]
    # The state fitted on the driver is the one-machine state (models, cut points, clusters).
    mine, theirs = json.loads(res.state.to_json()), json.loads(ref_state.to_json())
    for key in ("models", "rfm_cuts", "value_tier_cuts", "historical_tier_cuts", "frequency_cut", "return_window",
                "quadrant_splits", "value_references", "clusters", "categories", "feature_flags"):
        assert _close(mine[key], theirs[key]), key
    customers = pd.read_parquet(tmp_path / "out" / "customers.parquet").sort_values("customer_id",
                                                                                  ignore_index=True)
    want = ref.customers.sort_values("customer_id", ignore_index=True)
    assert res.customers == len(customers) == len(want)
    assert list(customers.columns) == list(want.columns)
    # every column, the Monte Carlo ranges too: each customer's draws come from a stream seeded by their own
    # history (clientfolio.scores.intervals), so the partition a customer lands in changes nothing
    for col in want.columns:
        _same(want[col], customers[col], col)
    low, clv, high = (customers[c].to_numpy(float) for c in ("clv_low", "clv", "clv_high"))
    assert np.all((low <= clv + 1e-9) & (clv <= high + 1e-9) | np.isnan(low))
    keys = ["customer_id", "segment_kind", "segment"]
    segments = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert (segments["as_of"] == shop["as_of"]).all()
    a = ref.segments[keys].astype(str).sort_values(keys, ignore_index=True)
    b = segments[keys].astype(str).sort_values(keys, ignore_index=True)
    assert len(b) == len(a) and b.equals(a)


def _params_close(a: dict, b: dict, rtol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) <= rtol * max(abs(a[k]), abs(b[k])), (k, a[k], b[k])


def test_purchase_stats_give_the_full_fit_from_a_sample(churn_shop: dict) -> None:
    """Fitted on 150 customers plus every customer's distinct (frequency, recency, T) with counts, the
    purchase and one-time-buyer models are the full fit's; the rest is the sample's."""
    f = churn_shop["features"]
    stats = (f.groupby(["frequency", "recency", "T"]).size().rename("weights").astype(float).reset_index())
    assert len(stats) < len(f)  # collapsed: what the driver holds
    sample = f.sample(150, random_state=1).sort_values("customer_id", ignore_index=True)
    sample.attrs.update(f.attrs)
    st = PortfolioState(model="bgnbd").fit(sample, churn_shop["as_of"], support=churn_shop["state"].support_,
                                           purchase_stats=stats)
    ref = churn_shop["state"]
    _params_close(dict(st.purchase_model_.params_), dict(ref.purchase_model_.params_))
    _params_close(dict(st.alive_model_.params_), dict(ref.alive_model_.params_))
    # Fitted on the sample alone, the purchase model would differ: the test above could not pass by chance.
    alone = PortfolioState(model="bgnbd").fit(sample, churn_shop["as_of"], support=churn_shop["state"].support_)
    assert any(abs(alone.purchase_model_.params_[k] - ref.purchase_model_.params_[k])
               > 1e-3 * abs(ref.purchase_model_.params_[k]) for k in ref.purchase_model_.params_)


@pytest.mark.slow
def test_spark_fits_the_purchase_model_on_collapsed_histories(churn_shop: dict, tmp_path: Path, spark) -> None:
    """With the driver sample forced to 200 of ~700 customers: purchase models equal the full-data fit,
    the rest of the run completes on every customer, and the state names the sample."""
    from clientfolio.scale.spark import analyze_spark

    res, _, _ = analyze_spark(churn_shop["dir"] / "tx.parquet", tmp_path / "out", spark=spark, model="bgnbd",
                              sample_size=200, seed=3)
    ref = churn_shop["state"]
    _params_close(dict(res.state.purchase_model_.params_), dict(ref.purchase_model_.params_))
    _params_close(dict(res.state.alive_model_.params_), dict(ref.alive_model_.params_))
    n = len(churn_shop["features"])
    assert res.state.fitted_on_["customers"] == n and res.state.fitted_on_["buyers"] == n
    sample = res.state.fitted_on_["sample"]
    assert sample["customers"] == 200 and sample["seed"] == 3 and "spend model" in sample["estimated_on_sample"]
    assert sample["estimated_on_all"] == ["purchase model", "one-time buyers' P(alive) model"]
    assert any("random sample of 200 of the" in note for note in res.notes)
    assert res.state.clv_total_interval_ is None  # a sample's total is not the base's
    customers = pd.read_parquet(tmp_path / "out" / "customers.parquet")
    assert res.customers == len(customers) == n and customers["clv"].notna().all()
    # Applying the written state again gives the same model parameters (it round-trips).
    again = PortfolioState.from_json((tmp_path / "out" / "state.json").read_text())
    assert again.fitted_on_["sample"]["customers"] == 200
