"""The data check-up says, in words, what the data covers and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clientfolio.ingest import import_files
from clientfolio.store.audit import MIN_REPEAT_BUYERS, audit, forecast_support
from tests.conftest import DATA, corpus_file


def _texts(store) -> list[str]:
    return [f"{f.level}: {f.text}" for f in audit(store).findings]


def test_empty_store(store) -> None:
    assert _texts(store) == ["problem: The store has no orders yet. Import an export with `clientfolio import FILE`."]


def test_suspicious_rows_are_named(store, tmp_path: Path) -> None:
    import_files([DATA / "broken/future_dates.csv", DATA / "broken/duplicate_order_ids_conflicting.csv"], store,
                 rejects_dir=tmp_path / "r")
    texts = "\n".join(_texts(store))
    assert "problem: 2 rows had dates in the future" in texts
    assert "problem: 1 order ids appeared twice with different amounts" in texts
    assert "Not enough history to forecast" in texts
    assert "No marketing-consent information" in texts


def test_guests_refunds_and_readiness(store, tmp_path: Path) -> None:
    import_files([corpus_file("uci_online_retail__by_day_2010-12-01__spark_definitive_guide.csv")], store,
                 rejects_dir=tmp_path / "r")
    a = audit(store)
    texts = "\n".join(f.text for f in a.findings)
    assert a.metrics["history_days"] == 0
    assert "have no customer id or e-mail" in texts
    assert "are refunds or cancellations" in texts
    assert int(a.metrics["orders"]) == int(store.query(
        "SELECT count(DISTINCT order_id) AS n FROM transactions")["n"].iloc[0])


@pytest.mark.slow
def test_demo_shop_is_enough_for_clv(store, tmp_path: Path) -> None:
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    import_files([p["customers"], p["transactions"], p["events"], p["marketing_spend"]], store,
                 rejects_dir=tmp_path / "r")
    a = audit(store)
    assert any(f.level == "good" and "Enough history for forecasts" in f.text for f in a.findings)
    assert a.support.forecasts
    assert not any("No events" in f.text or "No marketing spend" in f.text or "No cost data" in f.text
                   for f in a.findings)
    assert 0.55 < a.metrics["consent"] / a.metrics["customer_rows"] < 0.75


def test_verdict_counts_repeat_buyers(store, tmp_path: Path) -> None:
    """Olist: two years and 2,954 customers, but only 3 of them came back -- not enough to forecast."""
    names = ["olist_orders_dataset__joined_sample__albuquerques.csv",
             "olist_order_payments_dataset__joined_sample__albuquerques.csv",
             "olist_customers_dataset__joined_sample__albuquerques.csv"]
    import_files([corpus_file(n) for n in names], store, rejects_dir=tmp_path / "r")
    a = audit(store)
    assert int(a.metrics["repeat_buyers"]) == 3 and a.metrics["history_days"] >= 365
    assert not a.support.forecasts
    assert not any(f.level == "good" for f in a.findings)
    verdict = next(f for f in a.findings if "forecast" in f.text)
    assert verdict.level == "warn" and f"at least {MIN_REPEAT_BUYERS}" in verdict.text and "3 repeat buyers" in verdict.text


@pytest.mark.parametrize(("days", "customers", "repeat", "ok"), [
    (365, 500, MIN_REPEAT_BUYERS, True), (365, 500, MIN_REPEAT_BUYERS - 1, False), (179, 5000, 3000, False),
    (270, 1000, 400, True), (180, 1999, 900, False), (180, 2000, 900, True), (0, 2, 0, False)])
def test_forecast_support_thresholds(days: int, customers: int, repeat: int, ok: bool) -> None:
    s = forecast_support(days, customers, repeat)
    assert s.forecasts is ok
    assert bool(s.unsupported) is not ok
    assert f"{customers:,} customers" in s.reason
