"""Files clientfolio wrote that hold a customer: find them, and take the customer out of them.

Tables (CSV, Parquet) are rewritten without the customer's rows, atomically (a `.part` file
replaces the old one only when complete).  Documents (an HTML report, a Markdown or JSON page)
cannot be edited row by row without leaving traces in charts and summaries, so a document that
names the customer is deleted; the owner re-runs the command that wrote it.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from clientfolio.actions.catalog import Subject, names_customer

TABLE_SUFFIXES = (".csv", ".parquet")
# Columns that hold identifiers: compared with the customer's id, e-mail and pseudonym even when
# every value looks like a number (an id such as 1042).
ID_WORDS = ("customer", "mail", "id", "person", "pseudonym", "subject", "value", "key")

Action = Literal["rewritten", "deleted", "unchanged", "missing", "unreadable"]


@dataclass
class FileOutcome:
    """What happened to one file: rewritten without `rows_removed` rows, deleted, or left as it was."""

    path: str
    action: Action
    rows_removed: int = 0
    why: str = ""


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _id_column(name: str, values: pd.Series) -> bool:
    low = str(name).casefold()
    if any(w in low for w in ID_WORDS):
        return True
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False  # a typed number, date or flag column (Parquet) never holds an id
    text = values.astype(str)
    return not pd.to_numeric(text[text != ""], errors="coerce").notna().all()


def customer_mask(df: pd.DataFrame, needles: list[str]) -> pd.Series:
    """Rows of a table that hold one of `needles` as a whole cell (e-mails compared without case).

    A spreadsheet-safe cell ("'=x") is compared without its protective quote.
    """
    want = {n.casefold() for n in needles}
    hit = pd.Series(False, index=df.index)
    for c in df.columns:
        col = df[c]
        if not _id_column(c, col):
            continue
        text = col.astype(str).str.strip()
        text = text.where(~text.str.startswith("'"), text.str[1:])
        hit |= text.str.casefold().isin(want)
    return hit


def file_mentions(path: Path, subject: Subject, pseudonym: str | None = None) -> int | None:
    """Rows of a table file that hold the customer, 1/0 for a document, None when it cannot be read."""
    needles = subject.needles + ([pseudonym] if pseudonym else [])
    try:
        if path.suffix.lower() in TABLE_SUFFIXES:
            return int(customer_mask(_read_table(path), needles).sum())
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    probe = Subject(subject.customer_id, subject.emails + ([pseudonym] if pseudonym else []))
    return int(names_customer(text, probe) or names_customer(html.unescape(text), probe))


def remove_customer(path: str | Path, subject: Subject, pseudonym: str | None = None) -> FileOutcome:
    """Take the customer out of one file: rewrite a table without their rows, delete a document naming them."""
    p = Path(path)
    if not p.exists():
        return FileOutcome(str(p), "missing", why="the file is no longer there")
    n = file_mentions(p, subject, pseudonym)
    if n is None:
        return FileOutcome(str(p), "unreadable", why="could not be read to check; check and delete it by hand")
    if n == 0:
        return FileOutcome(str(p), "unchanged")
    if p.suffix.lower() not in TABLE_SUFFIXES:
        p.unlink()
        return FileOutcome(str(p), "deleted", why="a document (report or page) that named the customer; charts and "
                                                 "summaries cannot be edited row by row, so write it again")
    df = _read_table(p)
    keep = df[~customer_mask(df, subject.needles + ([pseudonym] if pseudonym else []))]
    tmp = p.with_name(p.name + ".erasing")
    try:
        if p.suffix.lower() == ".parquet":
            keep.to_parquet(tmp, index=False)
        else:
            from clientfolio.core.safecsv import write_frame

            write_frame(keep, tmp)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return FileOutcome(str(p), "rewritten", rows_removed=len(df) - len(keep))
