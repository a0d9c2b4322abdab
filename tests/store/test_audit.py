"""The data check-up says, in words, what the data covers and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clientfolio.ingest import import_files
from clientfolio.store.audit import audit
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
    assert "Thin history for CLV models" in texts
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
    assert any(f.level == "good" and "Enough history for CLV models" in f.text for f in a.findings)
    assert not any("No events" in f.text or "No marketing spend" in f.text or "No cost data" in f.text
                   for f in a.findings)
    assert 0.55 < a.metrics["consent"] / a.metrics["customer_rows"] < 0.75
