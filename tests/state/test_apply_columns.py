"""One customer's path (`PortfolioState.apply_columns`, NumPy arrays, no DataFrame) equals the batch `apply`.

Every column the batch gives and every membership, for several hundred demo customers scored one at a
time, with the purchase model (BG/NBD + MBG/NBD for one-time buyers), with the run rate a thin shop
uses instead of a model, with no forecasts at all, and with groups assigned by a Gaussian mixture.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clientfolio
from clientfolio.datasets import demo_shop_paths
from clientfolio.segments.clusters import ClusterAssigner
from clientfolio.state import PortfolioState, customer_features
from clientfolio.store import open_store
from tests.conftest import DATA

N_CUSTOMERS = 300


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(fitted state, every customer's features, the cut-off) of the analysed demo shop."""
    path = tmp_path_factory.mktemp("columns") / "demo.duckdb"
    p = demo_shop_paths()
    pf = clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]], store=path)
    with open_store(path) as st:
        features, _, _ = customer_features(st, pf.as_of)
    return PortfolioState.from_json(pf.state.to_json()), features, pf.as_of


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A features frame as the one-customer path gets it: one NumPy array per column."""
    return {c: frame[c].to_numpy() for c in frame.columns}


def _same(a, b) -> bool:
    """Equal values: numbers to 1e-12 (NaN equal to NaN), dates exactly, text as text (missing equal to missing)."""
    def missing(v) -> bool:
        return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) or (
            isinstance(v, np.datetime64) and np.isnat(v))

    if missing(a) or missing(b):
        return missing(a) and missing(b)
    if isinstance(a, (np.datetime64, pd.Timestamp)) or isinstance(b, (np.datetime64, pd.Timestamp)):
        return pd.Timestamp(a) == pd.Timestamp(b)
    if isinstance(a, (int, float, np.number, bool, np.bool_)) and isinstance(b, (int, float, np.number, bool, np.bool_)):
        return bool(np.isclose(float(a), float(b), rtol=1e-12, atol=0.0))
    return str(a) == str(b)


def _check_one_by_one(state: PortfolioState, features: pd.DataFrame, as_of, rows: np.ndarray) -> int:
    """Apply the state to each row alone through apply_columns and compare with one batch apply; columns compared."""
    batch = state.apply(features.iloc[rows].reset_index(drop=True), as_of)
    customers = batch.customers.set_index("customer_id")
    segs = batch.segments
    want = {cid: sorted((k, str(v)) for k, v in zip(g["segment_kind"], g["segment"].astype(object)))
            for cid, g in segs.groupby("customer_id")}
    compared = set()
    for i in rows:
        one, members = state.apply_columns(_columns(features.iloc[[i]]), as_of)
        cid = str(features["customer_id"].iloc[i])
        ref = customers.loc[cid]
        for col in customers.columns:
            assert col in one, f"apply_columns gives no {col!r}"
            assert _same(one[col][0], ref[col]), (cid, col, one[col][0], ref[col])
            compared.add(col)
        got = sorted((k, str(v)) for c, k, v in members if c == cid)
        assert got == want.get(cid, []), (cid, got, want.get(cid))
    return len(compared)


def _edge_rows(features: pd.DataFrame, n: int) -> np.ndarray:
    """A random sample plus the edge cases: one-order customers, the busiest, the newest, the oldest."""
    rng = np.random.default_rng(11)
    picked = set(rng.choice(len(features), size=min(n, len(features)), replace=False).tolist())
    freq = features["frequency"].to_numpy()
    picked |= set(np.flatnonzero(freq == 0)[:5].tolist())
    picked |= {int(np.argmax(freq)), int(np.argmin(features["T"].to_numpy())), int(np.argmax(features["T"].to_numpy()))}
    return np.array(sorted(picked))


def test_one_customer_path_equals_the_batch_on_every_column_and_membership(demo):
    state, features, as_of = demo
    assert state.purchase_model_ is not None and state.alive_model_ is not None  # BG/NBD + one-time buyers' model
    rows = _edge_rows(features, N_CUSTOMERS)
    assert (features["frequency"].to_numpy()[rows] == 0).any()  # one-order customers are among them
    n_cols = _check_one_by_one(state, features, as_of, rows)
    assert n_cols >= 60  # every score, every segment kind, the value dimensions, CAC


def test_one_customer_path_with_a_run_rate_instead_of_a_model(demo):
    """A thin shop: forecasts supported, but no purchase model converged -- the run rate scores."""
    state, features, as_of = demo
    d = state.to_dict()
    d["models"] = {"purchase": None, "spend": None, "one_time_alive": None}
    d["run_rate"] = 0.42
    thin = PortfolioState.from_dict(d)
    assert thin.purchase_model_ is None and thin.support_.forecasts
    _check_one_by_one(thin, features, as_of, _edge_rows(features, 60))


def test_one_customer_path_with_groups_from_a_gaussian_mixture(demo):
    state, features, as_of = demo
    a = state.cluster_assigner_
    assert a is not None
    k, dim = len(a.centers), len(a.centers[0])
    rng = np.random.default_rng(3)
    chol = tuple(np.diag(rng.uniform(0.5, 2.0, dim)) for _ in range(k))
    gmm = ClusterAssigner("gmm", a.scaling, a.clip, a.centers, a.names, tuple(np.full(k, 1.0 / k).tolist()), chol)
    d = state.to_dict()
    d["clusters"] = gmm.to_dict()
    mixed = PortfolioState.from_dict(d)
    assert mixed.cluster_assigner_.method == "gmm"
    _check_one_by_one(mixed, features, as_of, _edge_rows(features, 60))


def test_one_customer_path_without_forecasts(tmp_path):
    """Data below the minimum: every forecast column empty with the reason, segments from the history alone."""
    pf = clientfolio.analyze(DATA / "trust" / "tiny_shop_2_customers.csv", store=tmp_path / "tiny.duckdb")
    state = PortfolioState.from_json(pf.state.to_json())
    assert not state.support_.forecasts
    with open_store(tmp_path / "tiny.duckdb") as st:
        features, _, _ = customer_features(st, pf.as_of)
    _check_one_by_one(state, features, pf.as_of, np.arange(len(features)))
