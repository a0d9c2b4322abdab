"""`clientfolio recommend` on a real store: the evaluation, a customer's reasons, and the consent-aware file."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from clientfolio.actions.consent import record_consent
from clientfolio.store import open_store

ROOT = Path(__file__).resolve().parents[2]  # the checkout under test, not an installed copy


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "clientfolio.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_small_store_falls_back_and_leaves_out_who_refused_personalisation(tmp_path: Path) -> None:
    rows = [{"customer_id": f"c{i % 8}", "order_id": f"o{i}",
             "date": (pd.Timestamp("2024-01-01") + pd.Timedelta(days=5 * i)).strftime("%Y-%m-%d"),
             "amount": 3.0 + i % 4, "quantity": 1, "product_id": ["bun", "loaf", "cake", "tea"][i % 4],
             "category": "food"} for i in range(40)]
    pd.DataFrame(rows).to_csv(tmp_path / "orders.csv", index=False)
    db = tmp_path / "s.duckdb"
    r = _cli("import", "orders.csv", "--store", str(db), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with open_store(str(db)) as st:
        record_consent(st, pd.DataFrame({"customer_id": ["c1"], "purpose": ["personalisation"], "channel": ["any"],
                                         "granted": [False]}))
    r = _cli("recommend", "--store", str(db), "--customer", "c1", "--to", "recs.csv", "--k", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "Most popular products are recommended: the data are too thin" in out
    assert "1 customers who refused personalisation were left out" in out
    assert "c1 refused personalisation" in out
    with open(tmp_path / "recs.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    ids = {w["customer_id"] for w in written}
    assert "c1" not in ids and ids == {f"c{i}" for i in range(8)} - {"c1"}
    assert all(w["because"] for w in written)


def test_demo_shop_table_and_unknown_customer(tmp_path: Path) -> None:
    r = _cli("recommend", "--demo", "--customer", "C00003", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    for word in ("item co-occurrence", "factorisation", "most popular (baseline)", "hit rate@5", "up-sell",
                 "because you bought"):
        assert word in out
    r = _cli("recommend", "--demo", "--customer", "nobody", cwd=tmp_path)
    assert r.returncode == 1 and "customer nobody has no purchases" in " ".join(r.stderr.split())
