"""Numbers are read strictly in the file's decimal convention; anything else is rejected with a reason.

Regression for: in a decimal-point file '12,50' became 1250 and '7,5' 75; in a decimal-comma file
'12.50' became 1250; three capital letters anywhere were stripped ('ABC12' -> 12, '12ABC34' -> 1234).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clientfolio.ingest import ImportOptions, import_files
from clientfolio.ingest.sqlexpr import money_marker, number, number_problem
from clientfolio.store import open_store
from tests.conftest import DATA

VALUES = DATA / "trust" / "values"


def _import(name: str, tmp_path: Path, store_url: str, **kw):
    result = import_files([VALUES / name], store_url, ImportOptions(**kw), rejects_dir=tmp_path / "rej")
    with open_store(store_url) as st:
        tx = st.table("transactions")
    rejects = (pd.read_csv(result.rejects_path, dtype=str, keep_default_na=False)
               if result.rejects_path else pd.DataFrame(columns=["row", "column", "value", "reason", "kind"]))
    (f,) = result.files
    assert f.balanced and f.rows_in == f.rows_stored + f.rows_rejected + f.rows_deduplicated
    return f, tx.set_index("order_id"), rejects.set_index("value")


def test_decimal_point_file_rejects_commas_and_letters(tmp_path: Path, store_url: str) -> None:
    f, tx, rej = _import("decimal_point_with_commas.csv", tmp_path, store_url)
    assert f.rows_in == 12 and f.rows_stored == 6 and f.rows_rejected == 6
    amounts = tx["amount"].to_dict()
    assert amounts == {"1": 12.5, "4": 1234.56, "8": 1234.5, "9": -12.0, "10": 1200.0, "11": 0.0}
    assert "1250" not in {str(v) for v in amounts.values()}
    for value in ("12,50", "7,5"):
        assert rej.loc[value, "row"] in ("3", "4") and rej.loc[value, "column"] == "amount"
        assert "decimal comma" in rej.loc[value, "reason"] and "--decimal ," in rej.loc[value, "reason"]
    assert "'ABC' is not a currency symbol or ISO 4217 code" in rej.loc["ABC12", "reason"]
    for value in ("12ABC34", "1,2345.00"):
        assert rej.loc[value, "reason"].startswith("cannot read as an amount: expected a decimal point")
    assert "not a finite number" in rej.loc["nan", "reason"]
    assert any("2 value(s) written with a decimal comma" in n for n in f.notes)


def test_decimal_comma_file_rejects_points(tmp_path: Path, store_url: str) -> None:
    f, tx, rej = _import("decimal_comma_with_points.csv", tmp_path, store_url)
    assert tx["amount"].to_dict() == {"1": 12.5, "3": 1234.56, "4": 7.5, "5": 1234.5, "6": 0.99}
    assert f.rows_rejected == 1
    assert rej.loc["12.50", "row"] == "3"
    assert "decimal point" in rej.loc["12.50", "reason"] and "--decimal ." in rej.loc["12.50", "reason"]


def test_decimal_option_overrides_detection(tmp_path: Path) -> None:
    f, tx, rej = _import("decimal_comma_with_points.csv", tmp_path, str(tmp_path / "s.duckdb"), decimal=".")
    assert tx["amount"].to_dict() == {"2": 12.5}  # the decimal-comma values are rejected, never re-read
    assert f.rows_rejected == 5


@pytest.mark.parametrize(("decimal", "value", "expected"), [
    (".", "1,234.56", 1234.56), (".", "1'234.56", 1234.56), (".", "1\u2019234.56", 1234.56),
    (".", "1 234.56", 1234.56), (",", "1.234,56", 1234.56), (",", "1 234,56", 1234.56),
    (",", "1\u00a0234,56", 1234.56), (",", "1\u202f234,56", 1234.56), (".", "$ 12.50", 12.5),
    (".", "USD 4.99", 4.99), (".", "12.50 EUR", 12.5), (".", "12.50 eur", 12.5), (",", "12,50 €", 12.5),
    (",", "R$ 9,90", 9.9), (".", "-$15.00", -15.0), (".", "$-15.00", -15.0), (".", "($12.00)", -12.0),
    (".", "(12.00)", -12.0), (".", "12.00-", -12.0), (".", "1.2E+05", 120000.0), (".", "-0", 0.0),
    (".", ".5", 0.5), (",", "7,5", 7.5), (".", "1,234", 1234.0), (",", "1.234", 1234.0),
    # rejected: the other convention, bad groups, unknown markers, several signs or markers, letters inside
    (".", "12,50", None), (".", "7,5", None), (",", "12.50", None), (".", "1,2345.00", None),
    (".", "12,34,567", None), (".", "ABC12", None), (".", "12ABC34", None), (".", "12 XYZ", None),
    (".", "$12 USD", None), (".", "--5", None), (".", "+-5", None), (".", "(-5)", None), (".", "-12-", None),
    (".", "1_000", None), (".", "0x10", None), (".", "nan", None), (".", "inf", None), (".", "1e999", None),
    (".", "12¢", None), (".", "12.5.3", None),
])
def test_number_grammar(decimal: str, value: str, expected: float | None) -> None:
    con = duckdb.connect()
    got, reason = con.execute(f"SELECT {number('v', decimal)}, {number_problem('v', decimal)} FROM (SELECT ? AS v)",
                              [value]).fetchone()
    assert got == expected
    if expected is None:
        assert reason.startswith("cannot read as a number: ")


def test_marker_is_read_only_at_the_ends() -> None:
    con = duckdb.connect()
    rows = con.execute(f"SELECT v, {money_marker('v')} FROM (VALUES ('€12.50'), ('12.50 USD'), ('R$ 9,90'), "
                       "('12.50'), ('-3'), ('1.2E+05')) t(v)").fetchall()
    assert dict(rows) == {"€12.50": "€", "12.50 USD": "USD", "R$ 9,90": "R$", "12.50": None, "-3": None,
                          "1.2E+05": None}


def test_quantities_discounts_and_costs_are_checked_like_amounts(tmp_path: Path, store_url: str) -> None:
    f, tx, rej = _import("lines_odd_values.csv", tmp_path, store_url)
    assert f.rows_stored == 2 and f.rows_rejected == 4
    assert tx["amount"].to_dict() == {"1": 20.0, "6": 0.0}
    assert str(tx.loc["6", "amount"]) == "0.0"  # '-0.00' is zero, not negative zero
    assert not tx.loc["6", "is_refund"]
    assert rej.loc["$3", "column"] == "quantity" and "currency sign on a quantity" in rej.loc["$3", "reason"]
    assert rej.loc["10%", "column"] == "discount" and "a percentage" in rej.loc["10%", "reason"]
    assert rej.loc["1e300", "column"] == "cost" and "the cost is implausibly large" in rej.loc["1e300", "reason"]
    assert "cannot read as a quantity" in rej.loc["1,5", "reason"] and "--decimal ," in rej.loc["1,5", "reason"]


def test_woocommerce_refund_amount_with_a_decimal_comma_is_not_truncated(tmp_path: Path, store_url: str) -> None:
    """'amount:62,82' in refund_items was read as a 62 refund (the order kept 0.82 of revenue)."""
    f, tx, rej = _import("woocommerce_refund_decimal_comma.csv", tmp_path, store_url)
    assert f.rows_stored == 2 and f.rows_rejected == 1
    assert tx.loc["4125", "amount"] == 0.0  # 'amount:42.43' refunds the whole order
    (reason,) = rej["reason"]
    assert "cannot read a refund amount" in reason and rej["column"].tolist() == ["refund_items"]
