"""CSV files that are safe to open in a spreadsheet: one writer for every CSV clientfolio writes.

Two dangers, both seen in real exports:

- **Formula injection.**  A text cell such as ``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0`` or
  ``@SUM(...)`` runs as a formula when the file is opened in Excel or LibreOffice.  Following
  OWASP's advice, a *text* cell whose first non-blank character is ``=``, ``+``, ``-``, ``@``,
  a tab, a carriage return or a line feed gets a leading single quote (``'=HYPERLINK(...)``),
  which spreadsheets show as text.  Numbers are never touched: a numeric column's ``-12.5``
  is written as ``-12.5``.  A text cell that is exactly a plain number (``-12.5``, ``+3``,
  ``-1e5``) is left as it is too: a spreadsheet reads it as that number and runs nothing,
  and a quote would change the value (an id such as ``-12``) for every other reader.
- **Broken rows.**  A value with a line break or a bare carriage return is always quoted
  (RFC 4180, CRLF line ends), so one record stays one row for Python's csv, pandas and
  spreadsheets alike.

Large outputs stream: :class:`SafeWriter` takes rows one at a time (or in chunks from a
database cursor), :func:`write_frame` takes a DataFrame.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
LINE_END = "\r\n"  # csv quotes every field holding a character of the line end: \r and \n
_BLANK = " \u00a0"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")


def is_dangerous(text: str) -> bool:
    """Would a spreadsheet treat this text cell as a formula (or hide a formula behind blanks)?"""
    head = text.lstrip(_BLANK)
    if not head or head[0] not in FORMULA_PREFIXES:
        return False
    return head[0] in "\t\r\n" or _PLAIN_NUMBER.fullmatch(head.rstrip(_BLANK)) is None


def neutralise(value: Any) -> Any:
    """A text cell made inert (``'`` prefixed when dangerous); anything else unchanged."""
    if isinstance(value, str) and is_dangerous(value):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return neutralise(value)


class SafeWriter:
    """A csv writer whose text cells are neutralised and whose line breaks are always quoted.

    Use as ``with SafeWriter(path, header) as w: w.writerows(rows)``; rows may come in chunks
    (e.g. ``cursor.fetchmany``), so nothing needs to fit in memory at once.
    """

    def __init__(self, path: str | Path, header: Sequence[str]) -> None:
        self.path = Path(path)
        self.rows = 0
        self._fh: IO[str] = open(self.path, "w", encoding="utf-8", newline="")
        self._w = csv.writer(self._fh, quoting=csv.QUOTE_MINIMAL, lineterminator=LINE_END)
        self._w.writerow([_cell(h) for h in header])

    def writerow(self, row: Sequence[Any]) -> None:
        self._w.writerow([_cell(v) for v in row])
        self.rows += 1

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> SafeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _safe_column(s: pd.Series) -> pd.Series:
    """Text values of one column neutralised; numbers, dates and booleans untouched."""
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype) \
            or pd.api.types.is_bool_dtype(s.dtype):
        return s
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    try:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists, dicts): one by one
        return s.map(neutralise, na_action="ignore")
    # Each distinct value is checked once (segment names repeat on every row), then spread by code.
    safe = [neutralise(v) for v in uniques]
    if all(a is b for a, b in zip(safe, uniques)):
        return s  # nothing to neutralise: the column as it is
    out = pd.Series(np.asarray(safe, dtype=object)[codes], index=s.index, dtype=object)
    return out.where(codes >= 0, s)


def write_frame(df: pd.DataFrame, path: str | Path, chunk_rows: int = 50_000) -> Path:
    """Write a DataFrame as a spreadsheet-safe CSV (no index); returns the path.

    Written in chunks of `chunk_rows`, so only one chunk's neutralised copy is in memory, into
    a ``.part`` file that replaces `path` only when complete (a full disk leaves the old file).
    """
    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    header = [_cell(str(c)) for c in df.columns]
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator=LINE_END).writerow(header)
            for start in range(0, len(df), chunk_rows):
                part = df.iloc[start:start + chunk_rows]
                part = pd.DataFrame({i: _safe_column(part.iloc[:, i]) for i in range(part.shape[1])})
                part.to_csv(fh, index=False, header=False, quoting=csv.QUOTE_MINIMAL, lineterminator=LINE_END)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
