"""Recognise what a file is before reading it: container, compression, encoding.

Everything that is not plain UTF-8 text (UTF-16, Latin-1/CP1252, Excel) is
converted once into a temporary UTF-8 CSV, streamed in chunks, so the reader
downstream (DuckDB's CSV reader) only ever sees one kind of input.

The encoding of a text file is decided on the whole file, not a sample: one
streaming pass counts valid multi-byte UTF-8 characters and bytes that are not
UTF-8, and notes what the reader needs to know (the longest line, byte-order
marks left in the middle of the file by concatenated exports).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clientfolio.core.errors import IngestError

FileKind = Literal["csv", "whitespace", "xlsx", "parquet"]

_SAMPLE = 256 * 1024
_CHUNK = 1 << 20
_MAX_BAD = 10_000  # bytes that are not UTF-8 whose position is kept (more are only counted)
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape decoding shows a byte that is not UTF-8
_LINE_BOM = re.compile("(?<=[\r\n])\ufeff")
SHEET_COL, SHEET_ROW_COL = "__sheet", "__sheet_row"
_WHITESPACE_LINE = re.compile(r"^\s*\S+(\s+\S+){2,5}\s*$")
_CDNOW_LINE = re.compile(r"^\s*\d+(\s+\d+)?\s+\d{8}\s+-?\d+\s+-?[\d.]+\s*$")


@dataclass(frozen=True)
class FileInfo:
    """What sniffing found out about one input file."""

    path: Path
    kind: FileKind
    encoding: str  # of the original file ("utf-8", "utf-16", "cp1252", "binary")
    compressed: bool
    readable: Path  # the path the reader should open (may be a UTF-8 temp copy)
    notes: tuple[str, ...] = ()
    bad_bytes: tuple[tuple[int, int], ...] = ()  # (offset in `readable`, byte) of bytes that are not UTF-8
    longest_line: int = 0  # bytes, of the longest physical line (lines under 1 MiB may be undercounted)
    longest_line_no: int = 0  # its line number (1-based)
    blank_lines: bool = False  # the file has empty lines (the CSV reader skips them)


@dataclass
class TextScan:
    """What one streaming pass over a text file found (see `scan_text`)."""

    non_ascii: int = 0  # valid multi-byte UTF-8 characters
    n_bad: int = 0  # bytes that are not valid UTF-8
    bad: list[tuple[int, int]] = field(default_factory=list)  # (byte offset, byte), the first _MAX_BAD
    line_boms: int = 0  # U+FEFF at the start of a line other than the first
    longest_line: int = 0
    longest_line_no: int = 0
    blank_lines: bool = False

    def utf8(self) -> bool:
        """UTF-8 unless bytes that are not UTF-8 outnumber valid multi-byte characters 10 to 1.

        A genuine CP1252/Latin-1 file has (almost) no valid multi-byte sequences; a UTF-8 file
        with a few pasted CP1252 bytes has many.  The few bad rows are rejected, not the file.
        """
        return self.n_bad == 0 or self.non_ascii * 10 >= self.n_bad


def _open_bytes(path: Path, compressed: bool) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def _read_head(path: Path, compressed: bool) -> bytes:
    try:
        with _open_bytes(path, compressed) as fh:
            return fh.read(_SAMPLE)
    except (OSError, EOFError) as exc:
        raise IngestError(
            path, "the file is compressed but cannot be decompressed",
            hint=f"the .gz file looks truncated or corrupt ({exc}); export it again",
        ) from None


def _guess_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        return "utf-16-be"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # cut in the middle of a character by the sample
            return "utf-8"
        return "cp1252"


def scan_text(path: Path, compressed: bool) -> TextScan:
    """Stream the whole file once (1 MiB at a time) and collect the evidence `sniff` decides on.

    Pure-ASCII chunks cost a newline count; other chunks one C-speed decode with
    ``surrogateescape`` (each byte that is not UTF-8 becomes one findable surrogate).
    """
    sc = TextScan()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    offset = 0  # bytes read so far
    lines = 1  # line number at the current position
    run = 0  # bytes since the last newline
    prev_end = "\n"  # last character decoded so far (the file start counts as a line start)
    first = True
    with _open_bytes(path, compressed) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            final = not chunk
            if chunk:
                if not sc.blank_lines and (b"\n\n" in chunk or b"\n\r\n" in chunk):
                    sc.blank_lines = True
                nl = chunk.find(b"\n")
                if nl < 0:
                    run += len(chunk)
                else:
                    if run + nl > sc.longest_line:
                        sc.longest_line, sc.longest_line_no = run + nl, lines
                    run = len(chunk) - chunk.rfind(b"\n") - 1
            if chunk.isascii() and not decoder.getstate()[0]:
                lines += chunk.count(b"\n")
                offset += len(chunk)
                if chunk:
                    prev_end = chr(chunk[-1])
                if final:
                    break
                first = False
                continue
            start = offset - len(decoder.getstate()[0])  # byte offset of the text about to be decoded
            text = decoder.decode(chunk, final=final)
            offset += len(chunk)
            if text:
                sc.line_boms += len(_LINE_BOM.findall(text)) + (
                    1 if not first and prev_end in "\r\n" and text[0] == "\ufeff" else 0)
                bad = [m.start() for m in _BAD_BYTE.finditer(text)]
                sc.non_ascii += len(text) - len(text.encode("ascii", "ignore")) - len(bad)
                pos, pos_bytes = 0, start
                for i in bad:
                    sc.n_bad += 1
                    if len(sc.bad) < _MAX_BAD:
                        pos_bytes += len(text[pos:i].encode("utf-8", "surrogateescape"))
                        pos = i
                        sc.bad.append((pos_bytes, ord(text[i]) - 0xDC00))
                lines += text.count("\n")
                prev_end = text[-1]
                first = False
            if final:
                break
    if run > sc.longest_line:
        sc.longest_line, sc.longest_line_no = run, lines
    return sc


def _scan(path: Path, compressed: bool) -> TextScan:
    try:
        return scan_text(path, compressed)
    except (OSError, EOFError) as exc:
        if not compressed:
            raise IngestError(path, "cannot be read", hint=str(exc)) from None
        raise IngestError(path, "the file is compressed but cannot be decompressed",
                          hint=f"the .gz file looks truncated or corrupt ({exc}); export it again") from None


def _strip_line_boms(src: Path, compressed: bool, dst: Path) -> None:
    """Copy `src` to `dst` without the byte-order marks that start lines (bytes kept as they are)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    prev_end = ""
    with _open_bytes(src, compressed) as fin, open(dst, "wb") as fout:
        while True:
            chunk = fin.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if text:
                cleaned = _LINE_BOM.sub("", text)
                if prev_end in "\r\n" and prev_end and cleaned.startswith("\ufeff"):
                    cleaned = cleaned[1:]
                fout.write(cleaned.encode("utf-8", "surrogateescape"))
                prev_end = text[-1]
            if not chunk:
                break


def _looks_binary(head: bytes, encoding: str) -> bool:
    if encoding.startswith("utf-16"):
        return False
    sample = head[:8192]
    if not sample:
        return False
    if b"\x00" in sample[:1024] and sample.count(b"\x00") > len(sample) // 10:
        return True
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control > len(sample) // 20


def _cp1252_as_windows(exc: UnicodeError) -> tuple[str, int]:
    """The five bytes CP1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) decode as Windows does,
    to the control character of the same number: kept distinct, where U+FFFD would make 'C\x81'
    and 'C\x8d' one customer."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("clientfolio-cp1252", _cp1252_as_windows)


def _transcode(src: Path, compressed: bool, encoding: str, dst: Path) -> None:
    """Stream `src` in `encoding` into a UTF-8 file `dst` (1 MiB at a time)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="clientfolio-cp1252" if encoding == "cp1252" else "strict")
    last = ""
    with _open_bytes(src, compressed) as fin, open(dst, "w", encoding="utf-8", newline="") as fout:
        while True:
            chunk = fin.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if text:
                text = _LINE_BOM.sub("", text)
                fout.write(text.lstrip("\ufeff") if fout.tell() == 0 or last in "\r\n" else text)
                last = text[-1:] or last
            if not chunk:
                break


def _xlsx_to_csv(src: Path, dst: Path) -> list[str]:
    """Write every sheet of a workbook that looks like a table into one CSV.

    Sheets with the same header (Online Retail II's two years) are stacked;
    the first sheet's header wins and other headers are reported as skipped.
    """
    from openpyxl import load_workbook  # heavy import, only for Excel input

    try:
        wb = load_workbook(src, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise IngestError(src, "cannot open as an Excel workbook", hint=f"{exc}; save it again as .xlsx or .csv") from None
    notes: list[str] = []
    header: list[str] | None = None
    with open(dst, "w", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout)
        for ws in wb.worksheets:
            if hasattr(ws, "reset_dimensions"):
                # Read-only mode trusts the sheet's stored <dimension>, which some writers get wrong
                # (rows beyond it would vanish); forget it and read until the last row.
                ws.reset_dimensions()
            rows = ws.iter_rows(values_only=True)
            first = next(rows, None)
            if first is None or all(v is None for v in first):
                continue
            this_header = [("" if v is None else str(v)).strip() for v in first]
            while this_header and this_header[-1] == "":
                this_header.pop()
            if header is None:
                header = this_header
                # Which sheet and row each record came from: rejects name them, and rows repeated in two
                # overlapping sheets (Online Retail II's years) are recognised as duplicates.
                writer.writerow(header + [SHEET_COL, SHEET_ROW_COL])
            elif this_header != header:
                notes.append(f"sheet '{ws.title}' skipped: its header differs from the first sheet's")
                continue
            else:
                notes.append(f"sheet '{ws.title}' appended (same header)")
            width = len(header)
            for n, row in enumerate(rows, start=2):
                vals = list(row[:width])
                if all(v is None or v == "" for v in vals):
                    continue
                writer.writerow([_cell_text(v) for v in vals] + [ws.title, n])
    wb.close()
    if header is None:
        raise IngestError(src, "the workbook has no sheet with a header row", hint="put the column names in row 1")
    return notes


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()  # type: ignore[call-arg]
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def sniff(path: str | Path, workdir: Path) -> FileInfo:
    """Find out how to read `path`; convert it to UTF-8 CSV in `workdir` if needed."""
    p = Path(path)
    if not p.exists():
        raise IngestError(p, "file not found", hint="check the path and spelling")
    if p.is_dir():
        raise IngestError(p, "is a folder, not a file", hint="pass the export files themselves")
    size = p.stat().st_size
    if size == 0:
        raise IngestError(p, "the file is empty (0 bytes)", hint="export it again; the download may have failed")
    with open(p, "rb") as fh:
        magic = fh.read(8)
    name = p.name.lower()
    compressed = magic[:2] == b"\x1f\x8b"
    if magic[:4] == b"PAR1":
        return FileInfo(p, "parquet", "binary", False, p)
    if magic[:4] == b"PK\x03\x04":
        if not name.endswith((".xlsx", ".xlsm")):
            raise IngestError(p, "is a ZIP archive, not a table", hint="unzip it first, or rename it to .xlsx if it is an Excel workbook")
        dst = workdir / (p.stem + ".csv")
        notes = _xlsx_to_csv(p, dst)
        return FileInfo(p, "xlsx", "binary", False, dst, tuple(notes))
    if name.endswith((".xlsx", ".xls", ".xlsm")):
        if magic[:4] == b"\xd0\xcf\x11\xe0":
            raise IngestError(p, "is an old Excel 97-2003 (.xls) workbook", hint="open it and save it as .xlsx or .csv")
        notes = ("the file is named like an Excel workbook but contains text; read as CSV",)
    else:
        notes = ()
    head = _read_head(p, compressed)
    if not head.strip():
        raise IngestError(p, "the file contains only blank space", hint="export it again; the download may have failed")
    encoding = _guess_encoding(head)
    if _looks_binary(head, encoding):
        raise IngestError(p, "is not a text table (it contains binary data)", hint="export the data as CSV, Excel (.xlsx) or Parquet")
    scan = None
    if not encoding.startswith("utf-16"):
        scan = _scan(p, compressed)
        if scan.utf8():
            encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
        else:
            encoding = "cp1252"
    text = _LINE_BOM.sub("", head.decode(encoding, errors="replace"))
    if text.lstrip("\ufeff \t\r\n")[:15].lower().startswith(("<!doctype html", "<html", "<?xml")):
        raise IngestError(p, "is a web page or XML document, not a CSV export",
                          hint="the download probably saved a login or error page; download the export again")
    readable = p
    if encoding not in ("utf-8", "utf-8-sig"):
        readable = workdir / (p.stem + ".utf8.csv")
        try:
            _transcode(p, compressed, encoding, readable)
        except UnicodeDecodeError as exc:
            raise IngestError(p, f"cannot be decoded as {encoding}", hint=str(exc)) from None
        if scan is not None:
            notes = notes + (f"encoding: cp1252 (Windows Latin-1), converted to UTF-8 ({scan.n_bad:,} bytes are not "
                             f"valid UTF-8, {scan.non_ascii:,} characters are)",)
        else:
            notes = notes + (f"encoding: {encoding.upper()}, converted to UTF-8",)
        scan = _scan(readable, False)  # the converted copy: line lengths and offsets as the reader sees them
    else:
        name_enc = "UTF-8 with byte-order mark" if encoding == "utf-8-sig" else "UTF-8"
        if scan.n_bad:
            notes = notes + (f"encoding: {name_enc} ({scan.non_ascii:,} valid multi-byte characters); {scan.n_bad:,} "
                             "byte(s) that are not UTF-8 make their rows rejected",)
        elif scan.non_ascii or encoding == "utf-8-sig":
            notes = notes + (f"encoding: {name_enc}",)
        if scan.line_boms:
            readable = workdir / (p.stem + ".nobom.csv")
            _strip_line_boms(p, compressed, readable)
            notes = notes + (f"{scan.line_boms:,} byte-order mark(s) at the start of a line removed "
                             "(left by exports pasted together)",)
            scan = _scan(readable, False)
    compressed = compressed and readable == p  # converted copies are plain files
    extra = {"bad_bytes": tuple(scan.bad) if encoding.startswith("utf-8") else (),
             "longest_line": scan.longest_line, "longest_line_no": scan.longest_line_no,
             "blank_lines": scan.blank_lines}
    lines = [ln for ln in text.replace("\r", "").split("\n")[:50] if ln.strip()]
    if len(lines) > 1 and lines[-1] == text.replace("\r", "").split("\n")[-1]:
        lines = lines[:-1] or lines  # the last sampled line may be cut
    data_lines = lines[1:] if lines and not _CDNOW_LINE.match(lines[0]) else lines
    if data_lines and all(_CDNOW_LINE.match(ln) for ln in data_lines) and not any(c in lines[0] for c in ",;\t|"):
        return FileInfo(p, "whitespace", encoding, compressed, readable, notes, **extra)
    return FileInfo(p, "csv", encoding, compressed, readable, notes, **extra)
