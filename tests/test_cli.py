"""The `clientfolio` command as a user runs it: a real subprocess, real files, exit codes."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clientfolio.core.fields import CUSTOMER_FIELD_PREFIXES, CUSTOMER_FIELDS
from clientfolio.core.safecsv import is_dangerous
from clientfolio.ingest import read
from tests.conftest import DATA, ROOT

TRUST = DATA / "trust" / "cli"
ENV = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clientfolio.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=ENV)


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


# -- analyze FILE: its own store, the import's accounting, safe CSV outputs ----------------------------

def csv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def store_customers(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT DISTINCT customer_id FROM transactions").fetchall()}


@pytest.fixture(scope="module")
def two_shops(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Shop A analysed into rep/, then shop B into the same rep/, then shop A again (same command)."""
    cwd = tmp_path_factory.mktemp("analyze")
    shop_a, shop_b = str(TRUST / "formula_orders.csv"), str(DATA / "layouts/shopify_orders_export.csv")
    first = run("analyze", shop_a, "--out", "rep", cwd=cwd)
    assert first.returncode == 0, first.stderr
    a_csv = (cwd / "rep/customers.csv").read_bytes()
    a_ids = store_customers(cwd / "rep/clientfolio.duckdb")
    second = run("analyze", shop_b, "--out", "rep", cwd=cwd)
    assert second.returncode == 0, second.stderr
    b_ids = store_customers(cwd / "rep/clientfolio.duckdb")
    third = run("analyze", shop_a, "--out", "rep", cwd=cwd)
    assert third.returncode == 0, third.stderr
    return {"cwd": cwd, "first": first, "second": second, "third": third, "a_csv": a_csv, "a_ids": a_ids,
            "b_ids": b_ids}


def test_analyze_files_keeps_each_analysis_in_its_own_store(two_shops: dict) -> None:
    cwd = two_shops["cwd"]
    assert not (cwd / "clientfolio.duckdb").exists(), "nothing is appended to ./clientfolio.duckdb"
    assert len(two_shops["a_ids"]) == 12
    assert two_shops["b_ids"].isdisjoint(two_shops["a_ids"]), "shop B's store holds none of shop A's customers"
    assert "rep/clientfolio.duckdb" in two_shops["first"].stdout  # says where
    # the same command again gives the same result: a fresh store, the same accounting and customers file
    assert store_customers(cwd / "rep/clientfolio.duckdb") == two_shops["a_ids"]
    assert "rows in 33 = stored 30 (new 30, updated 0) + rejected 3 + duplicates 0" in two_shops["third"].stdout
    assert (cwd / "rep/customers.csv").read_bytes() == two_shops["a_csv"]
    assert not list((cwd / "rep").glob("*.previous"))
    again = run("analyze", "--out", "rep", cwd=cwd)  # no files, no --store: points at the analysis's store
    assert again.returncode == 1 and "give --store rep/clientfolio.duckdb" in again.stderr


def test_analyze_prints_the_import_accounting_and_checkup(two_shops: dict) -> None:
    out = two_shops["first"].stdout
    assert "detected layout:" in out and "rows in 33 = stored 30" in out and "balanced" in out
    assert "rejected 2: cannot read as an amount" in out
    assert "rep/clientfolio.rejects/import-0001.csv" in out
    assert out.index("Data check-up") < out.index("Your customer portfolio")
    b = two_shops["second"].stdout
    assert "Shopify" in b and "Data check-up" in b


def test_customers_csv_is_safe_in_a_spreadsheet(two_shops: dict) -> None:
    path = two_shops["cwd"] / "rep/customers.csv"
    rows = csv_rows(path)
    assert len(rows) == 1 + 12, "one row per customer, a bare CR or LF in an id does not split it"
    frame = pd.read_csv(path, dtype={"customer_id": str}, keep_default_na=False)
    assert len(frame) == 12
    assert [c for row in rows for c in row if is_dangerous(c)] == []
    ids = set(frame["customer_id"])
    assert "'=cmd|' /C calc'!A0" in ids and "'@SUM(1+1)" in ids and "-12.5" in ids  # a plain number stays
    assert "C\r7" in ids and "C\n8" in ids
    assert pd.api.types.is_numeric_dtype(frame["revenue"]) and (frame["revenue"] > 0).all()


def test_rejects_csv_is_safe_in_a_spreadsheet(two_shops: dict) -> None:
    path = two_shops["cwd"] / "rep/clientfolio.rejects/import-0001.csv"
    rows = csv_rows(path)
    assert len(rows) == 1 + 3
    assert [c for row in rows for c in row if is_dangerous(c)] == []
    values = [r[3] for r in rows[1:]]
    assert values == ["'=1+2", "'@SUM(A1)", "'+cmd|' /C calc'!A0"]
    assert len(pd.read_csv(path)) == 3


def test_known_customer_fields_match_the_customer_table(two_shops: dict) -> None:
    """The early rule check knows every column rules can use (added after rules: preferences, cac)."""
    header = csv_rows(two_shops["cwd"] / "rep/customers.csv")[0]
    later = {"category_preference", "channel_preference", "discount_reliance", "cac"}
    unknown = [c for c in header if c not in CUSTOMER_FIELDS and c not in later
               and not any(c.startswith(p) for p in CUSTOMER_FIELD_PREFIXES)]
    assert unknown == []


def test_import_and_analyze_share_their_import_options(tmp_path: Path) -> None:
    imp = run("import", "--help", cwd=tmp_path).stdout
    ana = run("analyze", "--help", cwd=tmp_path).stdout
    for opt in ("--mapping", "--layout", "--customer-col", "--date-order", "--decimal", "--timezone",
                "--allow-no-customer", "--max-amount", "--rejects-dir", "Import options"):
        assert opt in imp and opt in ana, opt


def test_analyze_takes_import_options(tmp_path: Path) -> None:
    src = tmp_path / "kasse.csv"
    rows = [f"K{i % 7};B{i};{1 + i % 28:02d}.{1 + i % 12:02d}.2024;{10 + i},50" for i in range(60)]
    src.write_text("Kunde;Beleg;Datum;Betrag\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = run("analyze", str(src), "--customer-col", "Kunde", "--order-col", "Beleg", "--date-col", "Datum",
              "--amount-col", "Betrag", "--decimal", ",", "--date-order", "day_first", "--out", "rep", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "rows in 60 = stored 60" in out.stdout
    bad = run("analyze", str(src), "--date-order", "sideways", "--out", "rep2", cwd=tmp_path)
    assert bad.returncode == 1 and "--date-order must be day_first or month_first" in bad.stderr
    assert not (tmp_path / "rep2" / "clientfolio.duckdb").exists()


# -- output paths and stores checked before any work ----------------------------------------------------

def test_out_pointing_at_a_file_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("mine", encoding="utf-8")
    out = run("analyze", str(TRUST / "formula_orders.csv"), "--out", "report.html", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "--out report.html is a file; --out takes a folder" in out.stderr
    assert "rows in" not in out.stdout and not list(tmp_path.glob("**/*.duckdb")), "nothing was imported"
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == "mine"
    under_file = run("analyze", str(TRUST / "formula_orders.csv"), "--out", "report.html/sub", cwd=tmp_path)
    assert under_file.returncode == 1 and "cannot write in this folder" in under_file.stderr
    (tmp_path / "rep" / "customers.csv").mkdir(parents=True)
    taken = run("analyze", str(TRUST / "formula_orders.csv"), "--out", "rep", cwd=tmp_path)
    assert taken.returncode == 1 and "customers.csv is a folder" in taken.stderr
    demo = run("demo", "--out", "report.html", cwd=tmp_path)
    assert demo.returncode == 1 and "is a file" in demo.stderr and not (tmp_path / "clientfolio-demo.duckdb").exists()


def test_bad_rules_fail_before_any_work(tmp_path: Path) -> None:
    for name, words in [("rules_alias_bomb.yaml", "YAML values"), ("rules_deep_nesting.yaml", "levels of all/any/not"),
                        ("rules_many_segments.yaml", "more than the limit of 200"),
                        ("rules_unknown_field.yaml", "did you mean 'revenue'")]:
        out = run("analyze", str(TRUST / "formula_orders.csv"), "--rules", str(TRUST / name), "--out", "rep",
                  cwd=tmp_path)
        assert out.returncode == 1 and words in out.stderr and str(TRUST / name) in out.stderr
        assert "Traceback" not in out.stderr and "rows in" not in out.stdout
        assert not (tmp_path / "rep" / "clientfolio.duckdb").exists(), "refused before the store was opened"


@pytest.mark.parametrize("command", [["audit"], ["imports"], ["validate"], ["analyze"]])
def test_reading_commands_never_create_an_empty_store(tmp_path: Path, command: list[str]) -> None:
    out = run(*command, "--store", "missing.duckdb", cwd=tmp_path)
    assert out.returncode == 1 and "no store at missing.duckdb" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "missing.duckdb").exists()


def test_bad_cutoff_is_refused_before_any_work(tmp_path: Path) -> None:
    out = run("analyze", str(TRUST / "formula_orders.csv"), "--cutoff", "last tuesday", "--out", "rep", cwd=tmp_path)
    assert out.returncode == 1 and "--cutoff 'last tuesday' is not a date" in out.stderr
    assert "rows in" not in out.stdout


def test_ctrl_c_during_analyze_is_a_plain_message_and_keeps_the_last_store(tmp_path: Path) -> None:
    first = run("analyze", str(TRUST / "formula_orders.csv"), "--out", "rep", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = store_customers(tmp_path / "rep/clientfolio.duckdb")
    proc = subprocess.Popen([sys.executable, "-m", "clientfolio.cli", "analyze",
                             str(DATA / "layouts/shopify_orders_export.csv"), "--out", "rep"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Data check-up" in line:  # the new shop is imported; the models are about to be fitted
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (rest, err)
    assert "interrupted:" in err and "Traceback" not in err
    assert store_customers(tmp_path / "rep/clientfolio.duckdb") == before, "the last good analysis is put back"
    assert not list((tmp_path / "rep").glob("*.previous"))
    audit = run("audit", "--store", "rep/clientfolio.duckdb", cwd=tmp_path)
    assert audit.returncode == 0 and "from 12 identified customers" in audit.stdout


def test_rejects_dir_that_is_a_file_is_refused_before_importing(tmp_path: Path) -> None:
    (tmp_path / "rejects").write_text("", encoding="utf-8")
    out = run("import", str(TRUST / "formula_orders.csv"), "--rejects-dir", "rejects", cwd=tmp_path)
    assert out.returncode == 1 and "--rejects-dir rejects is a file" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "clientfolio.duckdb").exists()


def test_missing_input_file_creates_no_store(tmp_path: Path) -> None:
    for command in (["import", "nope.csv"], ["analyze", "nope.csv", "--out", "rep"]):
        out = run(*command, cwd=tmp_path)
        assert out.returncode == 1 and "nope.csv: file not found" in out.stderr
        assert not list(tmp_path.glob("**/*.duckdb")), command


def test_analysis_store_is_put_back_whole_after_a_failed_or_killed_run(tmp_path: Path) -> None:
    from clientfolio.cli import _analysis_store

    def lay(tag: str, wal: bool = False) -> None:
        (tmp_path / "clientfolio.duckdb").write_text(tag)
        (tmp_path / "clientfolio.rejects").mkdir(exist_ok=True)
        (tmp_path / "clientfolio.rejects" / "import-0001.csv").write_text(tag)
        if wal:
            (tmp_path / "clientfolio.duckdb.wal").write_text(tag)

    def state() -> tuple[str, str, bool]:
        return ((tmp_path / "clientfolio.duckdb").read_text(),
                (tmp_path / "clientfolio.rejects" / "import-0001.csv").read_text(),
                (tmp_path / "clientfolio.duckdb.wal").exists())

    lay("good")
    with pytest.raises(RuntimeError), _analysis_store(tmp_path):
        lay("half", wal=True)
        raise RuntimeError("failed run")
    assert state() == ("good", "good", False)
    # a run killed mid-way leaves its predecessor aside and a half-written store (with its WAL) in place
    (tmp_path / "clientfolio.duckdb.previous").write_text("good")
    (tmp_path / "clientfolio.rejects.previous").mkdir()
    (tmp_path / "clientfolio.rejects.previous" / "import-0001.csv").write_text("good")
    lay("half", wal=True)
    with pytest.raises(RuntimeError), _analysis_store(tmp_path):
        raise RuntimeError("the next run fails too")
    assert state() == ("good", "good", False), "the last good analysis, without the killed run's WAL"
    with _analysis_store(tmp_path):
        lay("new")
    assert state() == ("new", "new", False) and not list(tmp_path.glob("*.previous"))
