"""How files are read and their rows counted: encodings, workbooks, pasted exports, long lines.

Inputs are the small files in tests/data/trust/reader (written by make_files.py there); the
expected values are the facts those files were built from.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.ingest import ImportOptions, import_files
from clientfolio.store import open_store
from tests.conftest import DATA, corpus_file

HERE = DATA / "trust" / "reader"


def _run(path: Path, store_url: str, tmp_path: Path, **kw):
    result = import_files([path], store_url, ImportOptions(**kw), rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced
    with open_store(store_url) as st:
        tx = st.table("transactions")
    rejects = (pd.read_csv(result.rejects_path, dtype=str, keep_default_na=False) if result.rejects_path
               else pd.DataFrame(columns=["file", "row", "column", "value", "reason", "kind"]))
    return f, tx, rejects


def test_stray_cp1252_bytes_in_utf8_reject_their_rows_only(tmp_path: Path, store_url: str) -> None:
    f, tx, rejects = _run(HERE / "utf8_with_cp1252_bytes.csv", store_url, tmp_path)
    assert (f.rows_in, f.rows_stored, f.rows_rejected) == (20, 18, 2)
    emails = set(tx["email"])
    assert {"josé@example.com", "zoë@example.com", "東京@example.com"} <= emails
    assert not any("Ã" in e for e in emails if e)  # nothing decoded as cp1252
    assert len(tx[tx["email"] == "josé@example.com"]) == 2  # one person, not two
    assert sorted(rejects["row"].astype(int)) == [9, 15]
    assert rejects["reason"].str.startswith("byte 0xE9 is not valid UTF-8").all()
    assert (rejects["kind"] == "invalid").all() and (rejects["column"] == "email").all()
    assert any("encoding: UTF-8" in n for n in f.notes)


def test_genuine_cp1252_file_is_still_converted_and_says_so(tmp_path: Path, store_url: str) -> None:
    f, tx, _ = _run(HERE / "genuine_cp1252.csv", store_url, tmp_path)
    assert f.rows_stored == 6 and f.rows_rejected == 0
    assert {"josé@example.com", "françoise@example.com"} <= set(tx["email"])
    assert any(n.startswith("encoding: cp1252") for n in f.notes)


def test_workbook_rows_beyond_a_wrong_dimension_are_read(tmp_path: Path, store_url: str) -> None:
    from openpyxl import load_workbook

    wb = load_workbook(HERE / "dimension_lies.xlsx", read_only=True)
    assert wb.active.max_row == 6  # the file does lie
    f, tx, _ = _run(HERE / "dimension_lies.xlsx", store_url, tmp_path)
    assert f.rows_in == f.rows_stored == 20
    assert tx["amount"].sum() == pytest.approx(sum(i * 1.5 for i in range(1, 21)))


@pytest.mark.parametrize("name", ["bom_mid_file.csv", "bom_and_header_mid_file.csv"])
def test_pasted_exports_leave_no_bom_and_no_header_row(name: str, tmp_path: Path, store_url: str) -> None:
    f, tx, rejects = _run(HERE / name, store_url, tmp_path)
    assert f.rows_stored == 9
    assert not tx["customer_id"].str.contains("\ufeff").any()
    assert set(tx["customer_id"]) == {f"C{i % 7}" for i in range(1, 10)}
    if "header" in name:
        assert f.rows_in == 10 and f.rows_rejected == 1
        (r,) = rejects.itertuples()
        assert (int(r.row), r.kind) == (7, "repeated header") and "header line again" in r.reason
        assert f.rejected_by_reason[r.reason] == 1


def test_exact_repeated_lines_counted_once_and_listed(tmp_path: Path, store_url: str) -> None:
    f, tx, rejects = _run(HERE / "repeated_header_and_lines.csv", store_url, tmp_path)
    # header, rows 2-6 (orders 1001-1005), header again (row 7), rows 8-12 (orders 1004-1008)
    assert (f.rows_in, f.rows_stored, f.rows_rejected, f.rows_deduplicated) == (11, 8, 1, 2)
    dups = rejects[rejects["kind"] == "duplicate"]
    assert dups["row"].astype(int).tolist() == [8, 9]
    assert dups["reason"].str.contains("exact repeat of row 5").iloc[0]
    assert dups["reason"].str.contains("exact repeat of row 6").iloc[1]
    assert sorted(tx["order_id"]) == [str(1000 + i) for i in range(1, 9)]


def test_repeated_lines_without_order_ids_do_not_make_orders(tmp_path: Path, store_url: str) -> None:
    path = HERE / "repeated_lines_no_order_id.csv"
    f, tx, rejects = _run(path, store_url, tmp_path)
    assert (f.rows_in, f.rows_stored, f.rows_deduplicated) == (11, 8, 3)
    assert tx["order_id"].nunique() == 8 and tx["amount"].sum() == pytest.approx(360.0)
    assert rejects["row"].astype(int).tolist() == [5, 9, 10]
    assert rejects["reason"].str.extract(r"exact repeat of row (\d+)")[0].astype(int).tolist() == [2, 3, 3]


def test_keep_repeated_lines_keeps_them(tmp_path: Path) -> None:
    path = HERE / "repeated_lines_no_order_id.csv"
    f, tx, rejects = _run(path, str(tmp_path / "k.duckdb"), tmp_path, keep_repeated_lines=True)
    assert (f.rows_in, f.rows_stored, f.rows_deduplicated) == (11, 11, 0)
    assert tx["order_id"].nunique() == 11 and tx["amount"].sum() == pytest.approx(360.0 + 10 + 20 + 20)


def test_real_export_with_ten_percent_repeated_lines_stores_the_same_revenue(tmp_path: Path, store_url: str) -> None:
    src = corpus_file("uci_online_retail__R_random_sample_quoted_NA__gulertan.csv")
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    body = lines[1:]
    pasted = tmp_path / "pasted.csv"
    pasted.write_text(lines[0] + "".join(body) + "".join(body[::10]), encoding="utf-8")
    f0, tx0, _ = _run(src, str(tmp_path / "original.duckdb"), tmp_path)
    f, tx, rejects = _run(pasted, store_url, tmp_path)
    assert f.rows_in == f0.rows_in + len(body[::10])
    assert f.rows_stored == f0.rows_stored
    assert f.rows_deduplicated == f0.rows_deduplicated + len(body[::10])
    assert tx["amount"].sum() == pytest.approx(tx0["amount"].sum(), abs=1e-6)
    assert tx["order_id"].nunique() == tx0["order_id"].nunique()
    dups = rejects[rejects["kind"] == "duplicate"]
    first_repeat = len(body) + 2  # the first pasted line repeats file row 2
    assert dups["row"].astype(int).min() == first_repeat and "exact repeat of row 2 " in dups["reason"].iloc[0]


@pytest.mark.parametrize(("name", "rows", "long_row"), [
    ("field_140k_near_top.csv.gz", 1999, 3),
    ("row_11mb_late.csv.gz", 1999, 1502),
    ("quoted_field_12mb_many_lines.csv.gz", 1999, 32),
])
def test_long_fields_and_rows_are_read_whole(name: str, rows: int, long_row: int, tmp_path: Path) -> None:
    path = HERE / name
    f, tx, rejects = _run(path, str(tmp_path / "s.duckdb"), tmp_path)
    assert (f.rows_in, f.rows_stored, f.rows_rejected) == (rows, rows, 0)
    with gzip.open(path, "rt") as fh:
        want = pd.read_csv(fh, dtype=str)
    assert tx["amount"].sum() == pytest.approx(want["amount"].astype(float).sum())
    assert len(want.iloc[long_row - 2]["note"]) > 128 * 1024


def test_row_longer_than_any_table_row_is_refused_naming_its_line(tmp_path: Path, monkeypatch) -> None:
    from clientfolio.core.errors import IngestError
    from clientfolio.ingest import reader

    monkeypatch.setattr(reader, "_MAX_LINE", 5_000_000)
    with pytest.raises(IngestError) as exc:
        import_files([HERE / "row_11mb_late.csv.gz"], str(tmp_path / "s.duckdb"), rejects_dir=tmp_path / "rej")
    assert "line 1,502 is 11 MB long" in str(exc.value)
    with pytest.raises(IngestError) as exc:
        import_files([HERE / "quoted_field_12mb_many_lines.csv.gz"], str(tmp_path / "s.duckdb"),
                     rejects_dir=tmp_path / "rej")
    assert "a row is 12 MB long" in str(exc.value) and "C31,31,2024-01-04,31" in str(exc.value)


@pytest.mark.parametrize("name", ["blank_lines.csv", "blank_lines_and_many_rejects.csv"])
def test_rejected_rows_keep_their_line_numbers_past_empty_lines(name: str, tmp_path: Path, store_url: str) -> None:
    path = HERE / name
    lines = path.read_text().split("\n")
    want = {n for n, line in enumerate(lines, start=1) if ",bad" in line or ",abc" in line or "extra" in line}
    f, tx, rejects = _run(path, store_url, tmp_path)
    assert set(rejects["row"].astype(int)) == want and f.rows_rejected == len(want)
    assert not rejects["value"].str.startswith("\n").any()


def test_pasted_utf16_exports_and_purchase_logs(tmp_path: Path, store_url: str) -> None:
    f, tx, rejects = _run(HERE / "utf16_pasted.csv", store_url, tmp_path)
    assert (f.rows_in, f.rows_stored, f.rows_rejected) == (5, 4, 1)
    assert rejects["kind"].tolist() == ["repeated header"] and rejects["row"].tolist() == ["4"]
    assert "josé@example.com" in set(tx["email"]) and not tx["customer_id"].str.contains("\ufeff").any()


def test_purchase_log_pasted_with_boms_is_still_a_purchase_log(tmp_path: Path) -> None:
    f, tx, _ = _run(HERE / "cdnow_pasted_with_bom.txt", str(tmp_path / "s.duckdb"), tmp_path)
    assert f.layout == "cdnow" and f.rows_stored == 3
    assert sorted(tx["customer_id"].unique()) == ["00001", "00002"]


def test_cp1252_undefined_bytes_keep_customers_apart(tmp_path: Path, store_url: str) -> None:
    f, tx, _ = _run(HERE / "cp1252_undefined_bytes.csv", store_url, tmp_path)
    assert f.rows_stored == 3
    assert sorted(tx["customer_id"]) == ["C\x81", "C\x8d", "José"]  # not 'C\ufffd' twice
