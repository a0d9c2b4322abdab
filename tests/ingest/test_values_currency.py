"""Currencies are never added up: each amount's currency is known, or the import stops and asks.

Regression for: €, $, £ and JPY amounts in one column were summed as one currency without a
warning; a second shop's INR file went into a GBP store.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clientfolio.core.errors import ClientfolioError, IngestError
from clientfolio.ingest import ImportOptions, import_files
from clientfolio.store import open_store
from tests.conftest import DATA

VALUES = DATA / "trust" / "values"


def _run(name: str, tmp_path: Path, store_url: str, **kw):
    result = import_files([VALUES / name], store_url, ImportOptions(**kw), rejects_dir=tmp_path / "rej")
    with open_store(store_url) as st:
        tx = st.table("transactions").set_index("order_id").sort_index()
    rejects = (pd.read_csv(result.rejects_path, dtype=str, keep_default_na=False)
               if result.rejects_path else pd.DataFrame(columns=["row", "column", "value", "reason", "kind"]))
    (f,) = result.files
    assert f.balanced
    return f, tx, rejects


def test_several_currencies_stop_the_import_with_counts_and_choices(tmp_path: Path, store_url: str) -> None:
    with pytest.raises(IngestError) as exc:
        import_files([VALUES / "mixed_currencies.csv"], store_url, rejects_dir=tmp_path / "rej")
    msg = str(exc.value)
    assert "mixed_currencies.csv" in msg and "4 currencies" in msg
    for part in ("EUR 3 rows", "USD 1 row ('$' read as USD)", "GBP 1 row", "JPY 1 row", "--currency EUR", "--rates"):
        assert part in msg
    with open_store(store_url) as st:
        assert len(st.table("transactions")) == 0


def test_currency_option_keeps_one_and_excludes_the_rest(tmp_path: Path, store_url: str) -> None:
    f, tx, rej = _run("mixed_currencies.csv", tmp_path, store_url, currency="eur")
    assert f.rows_stored == 3 and f.rows_rejected == 3
    assert tx["amount"].to_dict() == {"1": 12.5, "5": 3.0, "6": 4.5}
    assert set(tx["currency"]) == {"EUR"}
    assert (rej["kind"] == "excluded").all() and sorted(rej["value"]) == ["GBP", "JPY", "USD"]
    assert rej["reason"].str.contains("only EUR is imported").all()


def test_rates_convert_into_one_currency_and_say_so(tmp_path: Path, store_url: str) -> None:
    f, tx, _ = _run("mixed_currencies.csv", tmp_path, store_url, rates=VALUES / "rates.csv")
    assert f.rows_stored == 6 and set(tx["currency"]) == {"GBP"}
    assert tx["amount"].to_dict() == pytest.approx(
        {"1": 12.5 * 0.85, "2": 20 * 0.80, "3": 7.5, "4": 1200 * 0.005, "5": 3 * 0.85, "6": 4.5 * 0.85})
    note = next(n for n in f.notes if n.startswith("converted"))
    assert "5 rows into GBP" in note and "rates.csv" in note and "EUR 3 rows at 0.85" in note


def test_rates_must_cover_every_currency(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("currency,rate\nEUR,0.85\nGBP,1\n")
    with pytest.raises(IngestError, match="has no rate for JPY, USD"):
        import_files([VALUES / "mixed_currencies.csv"], tmp_path / "s.duckdb", ImportOptions(rates=rates),
                     rejects_dir=tmp_path / "rej")


def test_store_with_another_currency_refuses_the_file(tmp_path: Path, store_url: str) -> None:
    _run("shop_gbp.csv", tmp_path, store_url)
    with pytest.raises(IngestError) as exc:
        import_files([VALUES / "shop_inr.csv"], store_url, rejects_dir=tmp_path / "rej")
    assert "this store holds GBP; the file is INR" in str(exc.value) and "--store" in str(exc.value)
    with open_store(store_url) as st:
        assert set(st.table("transactions")["currency"]) == {"GBP"}


def test_dollar_sign_is_read_as_usd_with_a_note_or_as_the_currency_given(tmp_path: Path) -> None:
    f, tx, _ = _run("dollars.csv", tmp_path, str(tmp_path / "a.duckdb"))
    assert set(tx["currency"]) == {"USD"}
    assert any("'$' read as USD" in n and "--currency CAD" in n for n in f.notes)
    assert any("1 row without a currency taken as USD" in n for n in f.notes)
    f, tx, _ = _run("dollars.csv", tmp_path, str(tmp_path / "b.duckdb"), currency="CAD")
    assert set(tx["currency"]) == {"CAD"} and tx["amount"].sum() == pytest.approx(59.99)


def test_yen_sign_is_not_guessed(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"Japanese yen \(JPY\) or Chinese yuan \(CNY\).*--currency JPY"):
        import_files([VALUES / "yen.csv"], tmp_path / "s.duckdb", rejects_dir=tmp_path / "rej")
    f, tx, _ = _run("yen.csv", tmp_path, str(tmp_path / "t.duckdb"), currency="JPY")
    assert set(tx["currency"]) == {"JPY"} and tx["amount"].sum() == 2000


def test_marker_against_currency_column(tmp_path: Path) -> None:
    f, tx, rej = _run("currency_column_conflict.csv", tmp_path, str(tmp_path / "s.duckdb"), currency="USD")
    assert tx["amount"].to_dict() == {"1": 12.5, "5": 5.0}  # 'usd' in the column is USD
    by_row = rej.set_index("row")
    assert by_row.loc["4", "reason"].startswith("the amount is marked €, but the currency column says USD")
    assert "'US Dollar' is not an ISO 4217 currency code" in by_row.loc["5", "reason"]
    assert by_row.loc["4", "kind"] == by_row.loc["5", "kind"] == "invalid"
    assert by_row.loc["3", "kind"] == "excluded"  # '$20.00' with CAD: a Canadian-dollar row


def test_currency_option_must_be_an_iso_code() -> None:
    with pytest.raises(ClientfolioError, match="--currency must be an ISO 4217 code"):
        ImportOptions(currency="euro")
