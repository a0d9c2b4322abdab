"""Reports shared by the report tests: the demo shop and a 2-customer shop, and a headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    # Per module, not per session: an open Playwright keeps its event loop in the worker's thread, and the
    # dashboard tests (another directory, maybe the same worker) start their own Playwright after it.
    if CHROMIUM is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must test the report in Chromium: install Debian's chromium (bash .ci/run does)")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory) -> tuple[Path, object]:
    import clientfolio
    from clientfolio.datasets import demo_shop_paths

    p = demo_shop_paths()
    pf = clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]])
    out = tmp_path_factory.mktemp("report") / "report.html"
    pf.report(out)
    return out, pf


@pytest.fixture(scope="session")
def tiny_shop_report(tmp_path_factory) -> tuple[Path, object]:
    """Two customers, one day of orders in rupees: the optimiser needs its fallback here."""
    import clientfolio

    pf = clientfolio.analyze(DATA / "trust" / "tiny_shop_2_customers.csv")
    out = tmp_path_factory.mktemp("tiny") / "report.html"
    pf.report(out)
    return out, pf


@pytest.fixture(scope="session")
def no_currency_report(tmp_path_factory) -> tuple[Path, object]:
    """CDNOW's purchase log names no currency, and has the history for forecasts (so money axes are drawn)."""
    import clientfolio

    from tests.conftest import corpus_file

    pf = clientfolio.analyze(corpus_file("cdnow_sample__lifetimes.txt"))
    out = tmp_path_factory.mktemp("nocur") / "report.html"
    pf.report(out)
    return out, pf
