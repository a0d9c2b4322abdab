"""The `clientfolio` command as a user runs it: a real subprocess, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from clientfolio.ingest import read
from tests.conftest import DATA


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clientfolio.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_import_prints_layout_accounting_and_checkup(tmp_path: Path) -> None:
    out = run("import", str(DATA / "layouts/stripe_payments.csv"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "detected layout: Stripe payments export" in out.stdout
    assert "rows in 30 = stored 26" in out.stdout and "balanced" in out.stdout
    assert "rejected 4: the payment did not succeed" in out.stdout
    assert "Data check-up" in out.stdout
    rejects = list((tmp_path / "clientfolio.rejects").glob("import-*.csv"))
    assert len(rejects) == 1 and str(rejects[0].name) in out.stdout
    again = run("import", str(DATA / "layouts/stripe_payments.csv"), "--no-audit", cwd=tmp_path)
    assert "stored 0 (new 0, updated 0) + rejected 4 + duplicates 26" in again.stdout


def test_bad_file_is_a_red_message_not_a_traceback(tmp_path: Path) -> None:
    out = run("import", str(DATA / "broken/no_customer_column.csv"), cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    assert "no_customer_column.csv" in out.stderr and "--customer-col" in out.stderr


def test_column_options_import_an_unknown_layout(tmp_path: Path) -> None:
    src = tmp_path / "kasse.csv"
    src.write_text("Kunde;Beleg;Datum;Betrag\nK1;B1;31.12.2024;1.234,50\nK2;B2;01.12.2024;9,99\n", encoding="utf-8")
    out = run("import", str(src), "--customer-col", "Kunde", "--order-col", "Beleg", "--date-col", "Datum",
              "--amount-col", "Betrag", "--no-audit", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "rows in 2 = stored 2" in out.stdout and "day-first" in out.stdout


def test_help_explains(tmp_path: Path) -> None:
    out = run("import", "--help", cwd=tmp_path)
    assert out.returncode == 0
    for words in ("Every row is", "rejects file", "--mapping", "--date-order", "--allow-no-customer"):
        assert words in out.stdout


def test_audit_and_imports_commands(tmp_path: Path) -> None:
    run("import", str(DATA / "layouts/shopify_orders_export.csv"), "--no-audit", cwd=tmp_path)
    audit = run("audit", cwd=tmp_path)
    assert audit.returncode == 0 and "Orders from" in audit.stdout
    imports = run("imports", cwd=tmp_path)
    assert "shopify_orders" in imports.stdout
    layouts = run("layouts", cwd=tmp_path)
    assert "woocommerce_skyverge" in layouts.stdout


def test_read_returns_canonical_frames() -> None:
    out = read(DATA / "layouts/square_item_details.csv")
    tx = out["transactions"]
    assert isinstance(tx, pd.DataFrame) and len(tx) == 60
    assert {"customer_id", "order_id", "ts", "amount", "category"} <= set(tx.columns)
    assert out["result"].files[0].layout == "square_item_details"


def test_validate_compares_models_on_the_users_data(tmp_path: Path) -> None:
    from tests.conftest import corpus_file

    run("import", str(corpus_file("cdnow_sample__lifetimes.txt")), "--no-audit", cwd=tmp_path)
    out = run("validate", "--cutoff", "1997-09-30", "--end", "1998-06-30", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "-9,582.4" in out.stdout and "-9,595.0" in out.stdout  # published log-likelihoods
    assert "predicts the holdout period" in out.stdout and "1,882" in out.stdout


def test_analyze_writes_report_customers_and_rule_segments(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("segments:\n  - name: Big spenders\n    when: {field: revenue, gt: 50}\n"
                     "  - name: Recent\n    when: {orders_in_last: 60 days, gte: 1}\n")
    out = run("analyze", str(DATA / "layouts/shopify_orders_export.csv"), "--rules", str(rules), "--out", "rep",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Your customer portfolio" in out.stdout and "report: rep/report.html" in out.stdout
    customers = pd.read_csv(tmp_path / "rep" / "customers.csv")
    assert {"clv", "p_alive", "rfm_segment", "lifecycle"} <= set(customers.columns)
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "Executive summary" in html and "<script src=" not in html  # plotly.js is inline
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments:\n  - name: x\n    when: {field: revenu, gt: 1}\n")
    err = run("analyze", "--rules", str(bad), cwd=tmp_path)
    assert err.returncode == 1 and "did you mean 'revenue'" in err.stderr and "Traceback" not in err.stderr
