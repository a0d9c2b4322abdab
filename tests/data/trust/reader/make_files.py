"""Write the small input files of tests/ingest/test_reading*.py (run from this folder).

Each file reproduces one way a real export goes wrong at the byte level: stray CP1252 bytes in
UTF-8, a workbook whose <dimension> lies, exports pasted together (byte-order marks, a repeated
header, repeated lines), fields and rows longer than CSV readers expect.
"""

from __future__ import annotations

import gzip
import re
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
H = "customer_id,email,order_id,date,amount\n"


def rows(n: int, start: int = 1) -> list[str]:
    return [f"C{i % 7},c{i}@example.com,{1000 + i},2024-03-{(i % 28) + 1:02d},{i}.50\n" for i in range(start, start + n)]


def utf8_with_cp1252_bytes() -> None:
    """UTF-8 (josé, Zoë, 東京 in valid multi-byte form) with raw CP1252 0xE9 on data rows 9 and 15."""
    body = rows(20)
    body[4] = "C5,josé@example.com,1005,2024-03-06,5.50\n"
    body[11] = "C1,josé@example.com,1012,2024-03-13,12.50\n"
    body[16] = "C3,zoë@example.com,1017,2024-03-18,17.50\n"
    body[18] = "C5,東京@example.com,1019,2024-03-20,19.50\n"
    data = (H + "".join(body)).encode("utf-8")
    data = data.replace(b"c8@example.com", b"ren\xe9@example.com")  # file row 9
    data = data.replace(b"c14@example.com", b"andr\xe9@example.com")  # file row 15
    (HERE / "utf8_with_cp1252_bytes.csv").write_bytes(data)


def genuine_cp1252() -> None:
    body = rows(6)
    body[1] = "C2,josé@example.com,1002,2024-03-03,2.50\n"
    body[3] = "C4,françoise@example.com,1004,2024-03-05,4.50\n"
    (HERE / "genuine_cp1252.csv").write_bytes((H + "".join(body)).encode("cp1252"))


def cp1252_undefined_bytes() -> None:
    """CP1252 with two of the five bytes it leaves undefined, as customer ids that must stay apart."""
    data = b"customer_id,order_id,date,amount\nC\x81,1,2024-01-01,10\nC\x8d,2,2024-01-02,20\nJos\xe9,3,2024-01-03,30\n"
    (HERE / "cp1252_undefined_bytes.csv").write_bytes(data)


def workbook_dimension_lies() -> None:
    """20 data rows, but the sheet's <dimension> says A1:E6 (header + 5 rows)."""
    import io

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(["customer_id", "order_id", "date", "amount", "note"])
    for i in range(1, 21):
        ws.append([f"C{i % 6}", 100 + i, f"2024-02-{i:02d}", i * 1.5, "x"])
    buf = io.BytesIO()
    wb.save(buf)
    zin = zipfile.ZipFile(buf)
    with zipfile.ZipFile(HERE / "dimension_lies.xlsx", "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data, n = re.subn(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1:E6"/>', data)
                assert n == 1
            zout.writestr(item, data)


def pasted_exports() -> None:
    """Two exports pasted together: each part starts with a BOM; with and without the second header."""
    a = H + "".join(rows(5))
    b = "".join(rows(4, start=6))
    bom = b"\xef\xbb\xbf"
    (HERE / "bom_mid_file.csv").write_bytes(bom + a.encode() + bom + b.encode())
    (HERE / "bom_and_header_mid_file.csv").write_bytes(bom + a.encode() + bom + (H + b).encode())
    # the second export overlaps the first by two lines (rows 5 and 6 of the file) and repeats the header
    (HERE / "repeated_header_and_lines.csv").write_text(H + "".join(rows(5)) + H + "".join(rows(5, start=4)))


def pasted_other_formats() -> None:
    """Two UTF-16 exports (each with its BOM and header) and two CDNOW logs (each with a BOM) pasted together."""
    part = H + "C1,josé@example.com,1,2024-01-01,10\nC2,b@example.com,2,2024-01-02,20\n"
    later = part.replace(",1,2024-01-01", ",3,2024-01-03").replace(",2,2024-01-02", ",4,2024-01-04")
    (HERE / "utf16_pasted.csv").write_bytes(part.encode("utf-16") + later.encode("utf-16"))
    bom = b"\xef\xbb\xbf"
    log = b"00001 19970101 1 11.77\r\n00001 19970112 1 12.00\r\n"
    (HERE / "cdnow_pasted_with_bom.txt").write_bytes(bom + log + bom + b"00002 19970112 2 12.00\r\n")


def repeated_lines_no_order_id() -> None:
    """Orders without order ids; 3 lines repeated exactly (rows 5, 9 and 10 repeat rows 2, 3, 3)."""
    lines = [f"C{i % 4},2024-04-{i:02d} 10:00:00,{10 * i}.00\n" for i in range(1, 9)]
    out = lines[:3] + [lines[0]] + lines[3:6] + [lines[1], lines[1]] + lines[6:]
    (HERE / "repeated_lines_no_order_id.csv").write_text("customer_id,date,amount\n" + "".join(out))


def long_fields() -> None:
    """A 140 KiB field on row 3; an 11 MB field on row 1502; an 11 MB quoted field over many lines."""
    head = "customer_id,order_id,date,amount,note\n"
    body = [f"C{i},{i},2024-01-{i % 28 + 1:02d},{i},n\n" for i in range(1, 2000)]
    big = body.copy()
    big[1] = f"C2,2,2024-01-03,2,{'x' * 140_000}\n"
    (HERE / "field_140k_near_top.csv.gz").write_bytes(gzip.compress((head + "".join(big)).encode(), mtime=0))
    big = body.copy()
    big[1500] = f"C1501,1501,2024-01-18,1501,{'y' * 11_000_000}\n"
    (HERE / "row_11mb_late.csv.gz").write_bytes(gzip.compress((head + "".join(big)).encode(), mtime=0))
    big = body.copy()
    big[30] = 'C31,31,2024-01-04,31,"' + ("z" * 999 + "\n") * 12_000 + '"\n'
    (HERE / "quoted_field_12mb_many_lines.csv.gz").write_bytes(gzip.compress((head + "".join(big)).encode(), mtime=0))


def blank_lines_and_many_rejects() -> None:
    """Empty lines (the CSV reader skips them) and >64 rejected rows: every reject keeps its line number."""
    out = ["customer_id,order_id,date,amount\n"]
    for i in range(1, 1501):
        out.append(f"C{i % 50},{i},2024-01-{i % 28 + 1:02d},{'bad' if i % 15 == 0 else f'{i}.00'}\n")
        if i % 400 == 0:
            out.append("\n")
        if i % 700 == 0:
            out.append(f"C{i},x{i},2024-01-01,1,extra\n")
    (HERE / "blank_lines_and_many_rejects.csv").write_text("".join(out))
    small = "customer_id,order_id,date,amount\nC1,1,2024-01-01,10\n\nC2,2,2024-01-02,20,extra\n\n\nC3,3,2024-01-03,abc\n"
    (HERE / "blank_lines.csv").write_text(small + "C4,4,2024-01-04,40\n")


if __name__ == "__main__":
    utf8_with_cp1252_bytes()
    genuine_cp1252()
    cp1252_undefined_bytes()
    workbook_dimension_lies()
    pasted_exports()
    repeated_lines_no_order_id()
    pasted_other_formats()
    long_fields()
    blank_lines_and_many_rejects()
