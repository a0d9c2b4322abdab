"""Every amount in the data check-up carries its currency (it printed bare numbers)."""

from __future__ import annotations

import re
from pathlib import Path

from clientfolio.ingest import import_files
from clientfolio.store.audit import audit
from tests.conftest import DATA

TRUST = DATA / "trust"
AMOUNT = re.compile(r"(?<![\w.,])-?[£$€₹]?\d[\d,]*\.\d\d\b")  # an amount with cents, with or without a symbol


def test_checkup_amounts_carry_the_currency(store, tmp_path: Path) -> None:
    import_files([TRUST / "checkup_money_gbp.csv"], store, rejects_dir=tmp_path / "r")
    texts = [f.text for f in audit(store).findings]
    joined = "\n".join(texts)
    assert "revenue £188.24." in joined
    assert "count in revenue (£21.99)" in joined  # guest orders
    assert "totalling -£15.00." in joined  # refunds: the sign before the symbol
    amounts = [m.group(0) for t in texts for m in AMOUNT.finditer(t)]
    assert amounts and all("£" in a for a in amounts), amounts


def test_checkup_says_when_the_file_names_no_currency(store, tmp_path: Path) -> None:
    import_files([TRUST / "no_currency_orders.csv"], store, rejects_dir=tmp_path / "r")
    revenue = next(f.text for f in audit(store).findings if "revenue" in f.text and "orders (" in f.text)
    assert revenue.endswith("revenue 12,783.06 (in the file's own currency: the export does not name it).")
