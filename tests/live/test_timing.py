"""Next change dates by time alone: the analytic dates equal applying the state day by day.

For every time-moving kind, on the demo shop (every customer, DuckDB and PostgreSQL) and on CDNOW
(3,000 customers), the first day a kind's membership changes when the full state is applied day by
day (brute force over 45 days) is the date `next_change_dates` gives -- except where it gives a
documented, earlier re-check date (a refund leaving the 12-month window), never a later one.  A
sweep then touches exactly the customers due and leaves every customer where a full batch apply
at that date puts them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.features.incremental import customer_stats, features_at
from clientfolio.ingest import import_files
from clientfolio.live import LivePortfolio
from clientfolio.live.portfolio import segment_columns
from clientfolio.live.timing import RECHECK_DAYS, TIME_KINDS, TimeKinds, next_change_dates, rules_move_with_time
from clientfolio.state import customer_features, value_12m
from clientfolio.state.fitted import model_summary
from clientfolio.state.models import MODELS, fit_one_time_alive_model, fit_spend_model
from clientfolio.scores import ClvSettings, score_customers
from clientfolio.store import open_store
from tests.conftest import drop_pg_schema, pg_schema
from tests.live.shops import D0, held_back_store

WINDOW = 45  # days applied one by one


def brute_first_change(live: LivePortfolio, base: pd.DataFrame, day: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(memberships at `day`, days ahead of each kind's first change within WINDOW, NaN: none), applying the
    whole state at every day with the real 12-month value from the store."""
    st, state = live.store, live.state
    ids = pd.Index(base["customer_id"].astype(str))
    now_applied = state.apply(base, day, intervals=False, next_order=False)
    now = segment_columns(now_applied.segments, ids)
    first = pd.DataFrame(np.nan, index=ids, columns=now.columns)
    for d in range(1, WINDOW + 1):
        at = day + pd.Timedelta(days=d)
        f = features_at(base, at).drop(columns=["value_12m", "revenue_12m"])
        v12 = value_12m(st, at, list(ids)).set_index("customer_id").reindex(ids).fillna(0.0)
        f["value_12m"] = v12["value_12m"].to_numpy()
        f["revenue_12m"] = v12["revenue_12m"].to_numpy()
        later = segment_columns(state.apply(f, at, intervals=False, next_order=False).segments, ids)
        later = later.reindex(columns=now.columns)
        moved = later.astype(str).to_numpy() != now.astype(str).to_numpy()
        first = first.mask(pd.DataFrame(moved, index=ids, columns=now.columns) & first.isna(), float(d))
    return now, first


def check_against_brute_force(live: LivePortfolio, ids: list[str], day: pd.Timestamp) -> dict[str, int]:
    """Assert the per-kind analytic dates against the brute force; returns how many changes each kind had."""
    stats = customer_stats(live.store, day)
    stats = stats[stats["customer_id"].astype(str).isin(set(ids)) & (stats["n_days"] > 0)]
    base = live.features(stats, day)
    exits = live._window_lines(list(base["customer_id"].astype(str)), day)
    now, first = brute_first_change(live, base, day)

    def days(s: pd.Series) -> pd.Series:
        return ((pd.to_datetime(s) - day) / pd.Timedelta(days=1)).reindex(now.index)

    cap = days(next_change_dates(live.state, base, day, exits, kinds=()))
    assert ((cap >= 1) & (cap <= RECHECK_DAYS)).all()
    kinds = TimeKinds(live.state, day).kinds
    assert {"rfm", "lifecycle", "frequency_tier"} <= set(kinds)
    moved: dict[str, int] = {}
    overall = days(next_change_dates(live.state, base, day, exits))
    per_kind = []
    for kind in kinds:
        got = days(next_change_dates(live.state, base, day, exits, kinds=(kind,)))
        per_kind.append(got)
        b = first["seg_" + kind]
        exact = b.notna() & (b < cap)
        assert (got[exact] == b[exact]).all(), (kind, got[exact][got[exact] != b[exact]].head())
        # no change before the cap: the date is the cap (a re-check), never later than a change; or the
        # change comes after the window looked at
        later = ~exact & b.isna() & (got > WINDOW)
        assert (got[~exact & ~later] == cap[~exact & ~later]).all(), kind
        moved[kind] = int(exact.sum())
    assert (overall == pd.concat(per_kind, axis=1).min(axis=1)).all()
    # Kinds time cannot move do not move within the window.
    for col in now.columns:
        if col.removeprefix("seg_") not in TIME_KINDS:
            assert first[col].isna().all(), col
    return moved


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def demo(request, tmp_path_factory):
    schema = None
    if request.param == "duckdb":
        url = str(tmp_path_factory.mktemp("timing") / "shop.duckdb")
    else:
        url, schema = pg_schema(request.getfixturevalue("pg_url"))
    held_back_store(url)
    st = open_store(url)
    yield LivePortfolio(st)
    st.close()
    if schema:
        drop_pg_schema(request.getfixturevalue("pg_url"), schema)


@pytest.mark.slow
def test_demo_shop_next_changes_equal_applying_day_by_day(demo):
    day = D0 + pd.Timedelta(days=1)
    ids = demo.store.read_customer_state()["customer_id"].astype(str).tolist()
    moved = check_against_brute_force(demo, ids, day)
    # the test has teeth: time moves thousands of memberships in 45 days, in every time-moving kind but clusters
    assert moved["rfm"] > 300 and moved["lifecycle"] > 300 and moved["value_tier"] > 30, moved
    assert sum(moved.values()) > 1000


@pytest.mark.slow
def test_a_sweep_touches_the_customers_due_and_gives_the_batch_memberships(demo):
    st = demo.store
    first_day = D0 + pd.Timedelta(days=1)
    demo.sweep(first_day)
    for day in (first_day + pd.Timedelta(days=1), first_day + pd.Timedelta(days=23)):
        rows = st.read_customer_state()
        due = int((pd.to_datetime(rows["next_change"]) <= day).sum())
        result = demo.sweep(day)
        assert result.customers_touched == due > 0
        features, _, _ = customer_features(st, day)
        batch = demo.state.apply(features, day)
        expected = segment_columns(batch.segments, pd.Index(batch.customers["customer_id"].astype(str)))
        stored = st.read_customer_state().set_index("customer_id").loc[expected.index, expected.columns]
        diff = stored.astype(str).to_numpy() != expected.astype(str).to_numpy()
        assert not diff.any(), (day, expected.columns[diff.any(axis=0)].tolist(), int(diff.sum()))
        assert (pd.to_datetime(st.read_customer_state()["next_change"].dropna()) > day).all()


@pytest.mark.slow
def test_cdnow_next_changes_equal_applying_day_by_day(tmp_path):
    from clientfolio.datasets import cdnow_master_path

    import clientfolio

    start = pd.Timestamp("1998-03-31")
    with open_store(tmp_path / "cdnow.duckdb") as st:
        import_files([cdnow_master_path()], st)
        st.query(f"DELETE FROM transactions WHERE ts >= CAST(DATE '{(start + pd.Timedelta(days=1)).date()}' AS TIMESTAMP)")
        clientfolio.analyze(store=st, cutoff=start)
        live = LivePortfolio(st)
        ids = sorted(st.read_customer_state()["customer_id"].astype(str))
        sample = np.random.default_rng(9).choice(ids, 3000, replace=False).tolist()
        moved = check_against_brute_force(live, sample, start + pd.Timedelta(days=1))
    assert moved["rfm"] > 100 and moved["lifecycle"] > 50, moved


@pytest.fixture(scope="module")
def demo_features(tmp_path_factory):
    """The demo shop's customer features at D0 (read once for the model kinds)."""
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    with open_store(str(tmp_path_factory.mktemp("models") / "s.duckdb")) as st:
        import_files([p["customers"], p["transactions"]], st)
        features, _, _ = customer_features(st, D0)
    return features


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_p_alive_and_clv_fall_with_silence_for_every_model(kind, demo_features):
    """The bisection's premise: with no purchase, P(alive) and CLV never rise as days pass (each model kind)."""
    from clientfolio.core.notes import Notes
    from clientfolio.state.models import fit_purchase_model

    features = demo_features
    summary = model_summary(features, D0)
    notes = Notes()
    model = fit_purchase_model(summary, kind, notes)
    spend = fit_spend_model(summary, notes)
    alive = fit_one_time_alive_model(model, summary, notes)
    hist = features.drop_duplicates(["frequency", "recency", "T"]).head(300).reset_index(drop=True)
    steps = np.arange(0, 366, 3)
    # every history at every day, scored in one call: rows are (history, day), days fastest
    grid = hist.loc[hist.index.repeat(len(steps))].reset_index(drop=True)
    grid["T"] = grid["T"].to_numpy() + np.tile(steps, len(hist))
    grid["customer_id"] = np.arange(len(grid)).astype(str)
    sc = score_customers(model_summary(grid, D0), model, spend, ClvSettings(intervals=False, next_order=False),
                         one_time_alive=alive)
    p = sc["p_alive"].to_numpy(dtype=float).reshape(len(hist), len(steps))
    clv = sc["clv"].to_numpy(dtype=float).reshape(len(hist), len(steps))
    dp, dclv = np.diff(p, axis=1), np.diff(clv, axis=1)
    ok = np.isfinite(dp)
    assert (dp[ok] <= 1e-12 * np.abs(p[:, 1:][ok]) + 1e-15).all(), kind
    assert (dclv <= 1e-12 * np.abs(clv[:, 1:]) + 1e-12).all(), kind
    assert np.nanmin(p[:, -1]) < 0.7  # a year of silence moves P(alive) across a lifecycle line
    assert (np.nanmax(-dp, axis=1) > 0).mean() > 0.5  # and P(alive) does fall for most histories


def test_rules_reading_time_make_customers_due_every_day():
    from clientfolio.segments.rules import load_rules

    class State:
        rules_ = load_rules({"segments": [{"name": "Quiet", "when": {"field": "days_since_last", "gt": 30}}]},
                            schema={"days_since_last": "number"})

    class Static:
        rules_ = load_rules({"segments": [{"name": "Big", "when": {"field": "revenue", "gt": 300}}]}, schema={"revenue": "number"})

    assert rules_move_with_time(State())
    assert not rules_move_with_time(Static())
