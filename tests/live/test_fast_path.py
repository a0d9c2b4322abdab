"""One event at a time equals one batch: the few-customer code paths of `LivePortfolio.update` give the same numbers.

A single order or event takes plain-Python paths (segment columns, change records, 12-month value)
that a batch of many customers does not; a few hundred random single events from the demo shop,
applied one by one on one copy of a fitted store and as one batch on another, must leave every
customer with the same statistics, scores and memberships -- and the same as applying the state
to a full rescan of the store.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clientfolio.features.incremental import MAP_COLS
from clientfolio.live import LivePortfolio
from clientfolio.live.portfolio import FEW, SEG, STAT, segment_columns
from clientfolio.state import customer_features
from clientfolio.store import open_store
from tests.live.shops import held_back_store

pytestmark = pytest.mark.slow  # 150 single updates: about 30 s on a quiet machine

D0 = pd.Timestamp("2024-12-10")
END = pd.Timestamp("2024-12-31")
# Every kept score, the CLV ranges included: each history has its own random stream, so a customer's
# range is the same whether they are scored alone or in a batch.
SCORES = ("p_alive", "churn_risk", "expected_purchases", "expected_spend", "clv", "clv_low", "clv_high", "value_score", "rfm_r", "rfm_f", "rfm_m", "days_since_last", "rhythm_days", "orders", "revenue",
          "value_12m", "revenue_12m", "frequency", "recency", "t_days", "monetary", "aov", "profit")


@pytest.fixture(scope="module")
def two_ways(tmp_path_factory):
    """(store updated one event at a time, store updated in one batch, the events' customers)."""
    base = tmp_path_factory.mktemp("fast") / "shop.duckdb"
    tx, ev = held_back_store(str(base), D0)
    rng = np.random.default_rng(7)
    orders = tx.groupby(["source", "order_id"], sort=False).ngroup()
    picked = rng.choice(orders.max() + 1, size=min(120, orders.max() + 1), replace=False)
    lines = tx[orders.isin(picked)]
    events = ev.iloc[np.sort(rng.choice(len(ev), size=min(30, len(ev)), replace=False))]
    items = [(g["ts"].min(), "order", g) for _, g in lines.groupby(["source", "order_id"], sort=False)]
    items += [(e["ts"].iloc[0], "event", e) for e in (events.iloc[[i]] for i in range(len(events)))]
    items.sort(key=lambda it: it[0])
    one, batch = base.with_name("one.duckdb"), base.with_name("batch.duckdb")
    one.write_bytes(base.read_bytes())
    batch.write_bytes(base.read_bytes())
    with open_store(one) as st:
        live = LivePortfolio(st)
        for _, kind, frame in items:
            live.update(frame if kind == "order" else None, frame if kind == "event" else None, as_of=END)
    with open_store(batch) as st:
        LivePortfolio(st).update(lines, events, as_of=END)
    ids = sorted(set(lines["customer_id"]) | set(events["customer_id"]))
    assert len(ids) > FEW  # the batch takes the many-customer paths
    return one, batch, ids


def _text(s: pd.Series) -> pd.Series:
    """Segment values as text, every missing value (None, NaN, pd.NA) as the same marker."""
    return s.astype(object).where(s.notna(), "<missing>").astype(str)


def _rows(path, ids) -> pd.DataFrame:
    with open_store(path) as st:
        return st.read_customer_state(ids).set_index("customer_id").sort_index()


def test_single_events_and_one_batch_leave_the_same_statistics_scores_and_memberships(two_ways):
    one, batch, ids = two_ways
    a, b = _rows(one, ids), _rows(batch, ids)
    assert list(a.index) == list(b.index) == ids
    segs = [c for c in b.columns if c.startswith(SEG)]
    assert len(segs) >= 8 and set(segs) == {c for c in a.columns if c.startswith(SEG)}
    for col in segs:
        diff = _text(a[col]) != _text(b[col])
        assert not diff.any(), (col, list(zip(a.loc[diff, col][:3], b.loc[diff, col][:3])))
    stats = [c for c in b.columns if c.startswith(STAT)]
    for col in [c for c in stats if c.removeprefix(STAT) in MAP_COLS]:  # per-category spend, channel counts: JSON
        for x, y in zip(a[col], b[col]):
            x, y = json.loads(x), json.loads(y)
            assert x.keys() == y.keys() and all(x[k] == pytest.approx(y[k], rel=1e-9) for k in x), col
    for col in [c for c in SCORES if c in b] + [c for c in stats if c.removeprefix(STAT) not in MAP_COLS]:
        x, y = a[col], b[col]
        if pd.api.types.is_datetime64_any_dtype(y):
            assert (x.isna() == y.isna()).all() and (x[y.notna()] == y[y.notna()]).all(), col
            continue
        np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True,
                                   err_msg=col)


def test_single_events_equal_applying_the_state_to_a_full_rescan(two_ways):
    one, _, ids = two_ways
    with open_store(one) as st:
        live = LivePortfolio(st)
        features, _, _ = customer_features(st, END)
        ref = live.state.apply(features, END)
    rows = _rows(one, ids)
    buyers = ref.customers.set_index("customer_id").loc[[i for i in ids if i in set(ref.customers["customer_id"])]]
    expected = segment_columns(ref.segments, pd.Index(buyers.index))
    for col in expected.columns:
        diff = _text(rows.loc[buyers.index, col]) != _text(expected[col])
        assert not diff.any(), (col, int(diff.sum()))
    for col, stored in (("p_alive", "p_alive"), ("clv", "clv"), ("clv_low", "clv_low"), ("clv_high", "clv_high"), ("expected_purchases", "expected_purchases"),
                        ("value_score", "value_score"), ("R", "rfm_r"), ("value_12m", "value_12m")):
        np.testing.assert_allclose(rows.loc[buyers.index, stored].astype(float), buyers[col].astype(float),
                                   rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=col)


def test_one_customer_path_after_their_only_order_was_cancelled(two_ways, tmp_path):
    """A customer with no purchase left (their only order cancelled) who orders again: the one-customer path
    starts from their empty statistics and gives what applying the state to a full rescan gives."""
    _, batch, _ = two_ways
    path = tmp_path / "cancelled.duckdb"
    path.write_bytes(batch.read_bytes())
    with open_store(path) as st:
        live = LivePortfolio(st)
        one = st.query("SELECT customer_id, min(source) AS source, min(order_id) AS order_id FROM transactions "
                       "GROUP BY customer_id HAVING count(DISTINCT source || order_id) = 1 "
                       "AND bool_and(NOT is_refund) ORDER BY customer_id LIMIT 1")
        cid, src, oid = (str(v) for v in one.iloc[0])
        gone = live.update(cancellations=[(src, oid)], as_of=END)
        assert len(gone.changes) and gone.changes["to_segment"].isna().all()
        assert gone.changes["reason"].str.endswith("no purchases left after the cancellation").all()
        assert int(st.read_customer_state([cid])["stat_n_days"].iloc[0]) == 0
        again = live.update(pd.DataFrame({"customer_id": [cid], "order_id": ["again-1"], "ts": [END - pd.Timedelta(days=2)],
                                          "amount": [23.5]}), as_of=END)
        assert again.rescanned == 0 and again.customers_touched == 1
        assert set(again.changes["from_segment"].dropna()) == set()  # entered every kind afresh
        row = st.read_customer_state([cid]).set_index("customer_id")
        features, _, _ = customer_features(st, END)
        ref = live.state.apply(features[features["customer_id"] == cid].reset_index(drop=True), END)
    expected = segment_columns(ref.segments, pd.Index([cid]))
    for col in expected.columns:
        assert _text(row[col]).iloc[0] == _text(expected[col]).iloc[0], col
    c = ref.customers.iloc[0]
    for col, stored in (("p_alive", "p_alive"), ("clv", "clv"), ("value_score", "value_score"), ("R", "rfm_r"),
                        ("value_12m", "value_12m"), ("orders", "orders")):
        np.testing.assert_allclose(float(row[stored].iloc[0]), float(c[col]), rtol=1e-9, atol=1e-9, err_msg=col)
