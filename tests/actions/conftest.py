"""The demo shop analysed once into a DuckDB store; tests that write copy it first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """(path of a DuckDB store holding the analysed demo shop, its Portfolio). Do not write to it."""
    import clientfolio
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    db = tmp_path_factory.mktemp("demo-store") / "demo.duckdb"
    pf = clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]], store=str(db))
    return db, pf


@pytest.fixture
def demo_store_path(demo_analysed: tuple[Path, object], tmp_path: Path) -> Path:
    """A private copy of the analysed demo store that a test may change."""
    src, _ = demo_analysed
    dst = tmp_path / "demo.duckdb"
    shutil.copy(src, dst)
    return dst
