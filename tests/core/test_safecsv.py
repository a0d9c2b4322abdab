"""The spreadsheet-safe CSV writer: formulas neutralised, numbers untouched, line breaks quoted."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.safecsv import FORMULA_PREFIXES, SafeWriter, is_dangerous, neutralise, write_frame

HOSTILE = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://example.com","x")', "@SUM(1+1)", "+1+1", "-2+3",
           "\tTAB", "\rCR", "\nLF", "  =1+1", "\u00a0@x"]


def unsafe_cells(path: Path) -> list[str]:
    """Cells a spreadsheet would run as a formula: starting with a formula character, not a plain number."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [c for row in csv.reader(fh) for c in row if is_dangerous(c)]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_gets_a_quote_prefix(text: str) -> None:
    assert neutralise(text) == "'" + text
    assert not is_dangerous(neutralise(text))


@pytest.mark.parametrize("text", ["-12.5", "+3", "-1e5", "12,5", "-0,75", "C10", "josé@example.com", "", "1+1"])
def test_plain_numbers_and_ordinary_text_are_left_alone(text: str) -> None:
    assert neutralise(text) == text


def test_non_text_values_are_never_touched() -> None:
    assert neutralise(-12.5) == -12.5 and neutralise(-3) == -3 and neutralise(None) is None


def test_write_frame_round_trips_through_csv_and_pandas(tmp_path: Path) -> None:
    df = pd.DataFrame({
        "customer_id": HOSTILE + ["C\r7", "C\n8"],
        "amount": [-12.5, 3.0, -1.0, 0.0, 2.5, 1.0, 7.0, 8.0, -9.0, 10.0, 11.0, -0.5],
        "orders": list(range(-6, 6)),
        "note": ["x\r\ny", "a\rb", None, "=1", "ok", "-", "--", "+", "@", "=", "", "'already"],
    })
    out = write_frame(df, tmp_path / "c.csv", chunk_rows=5)  # several chunks
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == len(df) + 1  # a bare CR or LF inside a value does not start a new row
    back = pd.read_csv(out, dtype={"customer_id": str, "note": str}, keep_default_na=False)
    assert len(back) == len(df)
    assert back["amount"].tolist() == df["amount"].tolist()  # numbers stay numbers, -12.5 included
    assert back["orders"].tolist() == df["orders"].tolist()
    assert back["customer_id"].tolist() == ["'" + t for t in HOSTILE] + ["C\r7", "C\n8"]
    assert back.loc[0, "note"] == "x\r\ny" and back.loc[1, "note"] == "a\rb"
    assert unsafe_cells(out) == []


def test_header_cells_are_neutralised_too(tmp_path: Path) -> None:
    out = write_frame(pd.DataFrame({"=cmd": [1], "ok": ["-x"]}), tmp_path / "h.csv")
    assert out.read_text(encoding="utf-8").splitlines() == ["'=cmd,ok", "1,'-x"]


def test_safe_writer_streams_rows_in_chunks(tmp_path: Path) -> None:
    def chunks():
        for i in range(3):
            yield [(f"f{i}", i, "amount", "=1+2", "reason\rwith CR", "invalid"), (f"f{i}", -i, None, -12.5, "r", "x")]

    with SafeWriter(tmp_path / "r.csv", ["file", "row", "column", "value", "reason", "kind"]) as w:
        for chunk in chunks():
            w.writerows(chunk)
    assert w.rows == 6
    back = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert len(back) == 6 and back["value"].tolist()[:2] == ["'=1+2", "-12.5"]
    assert back["column"].tolist()[1] == ""  # None is an empty cell
    assert unsafe_cells(tmp_path / "r.csv") == []


def test_every_formula_prefix_is_covered() -> None:
    for p in FORMULA_PREFIXES:
        assert is_dangerous(p + "x")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("soffice") is None,
                    reason="LibreOffice is not installed (apt-get install libreoffice-calc-nogui)")
def test_libreoffice_with_formula_evaluation_on_reads_text_not_formulas(tmp_path: Path) -> None:
    """Open the file as a spreadsheet would, with LibreOffice's 'evaluate formulas' CSV option on."""
    openpyxl = pytest.importorskip("openpyxl")
    df = pd.DataFrame({"customer_id": HOSTILE[:5] + ["-12.5", "C\r7", "ok"], "revenue": [1.5, -12.5, 3, 4, 5, 6, 7, 8]})
    write_frame(df, tmp_path / "c.csv")
    # CSV filter tokens: separator ',', quote '"', UTF-8, from line 1, ..., token 13: evaluate formulas
    options = "44,34,76,1,,0,false,true,false,false,false,-1,true"
    subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
                    f"--infilter=Text - txt - csv (StarCalc):{options}", "--convert-to", "xlsx", "--outdir",
                    str(tmp_path), str(tmp_path / "c.csv")], check=True, capture_output=True, timeout=300)
    ws = openpyxl.load_workbook(tmp_path / "c.xlsx").active
    cells = [(row[0], row[1]) for row in ws.iter_rows(min_row=2)]
    assert len(cells) == len(df), "one spreadsheet row per customer"
    assert [c.data_type for c, _ in cells] == ["s"] * 5 + ["n", "s", "s"], "no formula cell"
    assert [r.value for _, r in cells] == df["revenue"].tolist()


def test_write_frame_replaces_the_file_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "c.csv"
    target.write_text("old,file\r\n", encoding="utf-8")

    class Boom:
        def __str__(self) -> str:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_frame(pd.DataFrame({"a": ["x", Boom()]}), target, chunk_rows=1)
    assert target.read_bytes() == b"old,file\r\n"
    assert list(tmp_path.iterdir()) == [target], "no .part file left behind"


def test_write_frame_neutralises_repeated_and_missing_text_cell_by_cell(tmp_path: Path) -> None:
    """Distinct values are checked once and spread back: every row gets its own value, dangerous
    ones quoted, missing ones empty, in a column of many repeats and in one of unique ids."""
    n = 120_001  # more than two chunks
    seg = np.array(['=HYPERLINK("x")', "champions", None, "-12", "@SUM(A1)"], dtype=object)[np.arange(n) % 5]
    df = pd.DataFrame({"id": [f"-c{i}" if i % 7 == 0 else f"c{i}" for i in range(n)], "segment": seg,
                       "kind": pd.Categorical(["+x", "y"] * (n // 2) + ["y"]), "v": np.arange(n, dtype=float)})
    out = pd.read_csv(write_frame(df, tmp_path / "f.csv"), dtype=str, keep_default_na=False)
    want_seg = ["'=HYPERLINK(\"x\")", "champions", "", "-12", "'@SUM(A1)"]
    assert out["segment"].tolist() == [want_seg[i % 5] for i in range(n)]
    assert out["id"].tolist() == [f"'-c{i}" if i % 7 == 0 else f"c{i}" for i in range(n)]
    assert out["kind"].tolist() == ["'+x", "y"] * (n // 2) + ["y"]
    assert out["v"].iloc[-1] == "120000.0"
