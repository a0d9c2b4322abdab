"""Reading a prospects file (leads from a fair, a list bought or collected) to score against the profile.

A CSV with a header; columns are recognised by name (case and spaces ignored): e-mail, region,
acquisition channel ("channel", "source"), first product or category of interest
("first_product_interest", "interest", "first_category", "first_product"), industry, size.
Other columns are kept as they are.  Every row is checked; a malformed row (wrong number of
fields, an e-mail that is not one, nothing to score, control characters, an over-long value) is
reported with file, row (the spreadsheet row: the header is row 1), column and reason.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clientfolio.core.errors import ClientfolioError

ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "email_address", "mail"),
    "acquisition_channel": ("acquisition_channel", "channel", "source", "lead_source", "acquired_through"),
    "region": ("region", "area", "location"),
    "interest": ("first_product_interest", "product_interest", "interest", "first_interest"),
    "first_category": ("first_category", "category", "category_interest"),
    "first_product": ("first_product", "product"),
    "industry": ("industry", "sector"),
    "size": ("size", "company_size"),
}
SCORED = ("acquisition_channel", "region", "first_category", "first_product", "industry", "size")
MAX_VALUE = 200
MAX_ROWS = 1_000_000
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
REJECT_COLUMNS = ["file", "row", "column", "value", "reason"]


class ProspectsError(ClientfolioError):
    """A prospects file that cannot be scored (unreadable, no usable column, or malformed rows)."""


@dataclass
class ProspectsFile:
    """The rows that passed (attribute columns under their canonical names), and the rejects."""

    frame: pd.DataFrame
    rejects: pd.DataFrame
    columns: dict[str, str]  # canonical name -> the file's column
    header: list[str]  # the file's own columns, in order

    def problems(self, limit: int = 20) -> str:
        """The rejects as lines: 'prospects.csv: row 3, column 'email': not an e-mail address (found 'x')'."""
        lines = [f"{r.file}: row {r.row}" + (f", column '{r.column}'" if r.column else "") + f": {r.reason}"
                 + (f" (found {r.value!r})" if r.value not in (None, "") else "")
                 for r in self.rejects.head(limit).itertuples()]
        more = len(self.rejects) - limit
        return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def read_prospects(path: str | Path, known: dict[str, set[str]] | None = None) -> ProspectsFile:
    """Read and check a prospects CSV; `known` (attribute -> values seen among customers) resolves a
    generic interest column to category or product and matches values regardless of case."""
    p = Path(path)
    if not p.exists() or p.is_dir():
        raise ProspectsError(f"{p}: {'is a folder' if p.is_dir() else 'file not found'}; give the prospects CSV")
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise ProspectsError(f"{p}: not UTF-8 text; save it as 'CSV UTF-8' from your spreadsheet") from None
    except csv.Error as exc:
        raise ProspectsError(f"{p}: not a readable CSV ({exc})") from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise ProspectsError(f"{p}: empty file; the first row must be a header (e.g. email,region,channel,"
                             "first_product_interest)")
    header = [h.strip() for h in rows[0]]
    if len(rows) - 1 > MAX_ROWS:
        raise ProspectsError(f"{p}: {len(rows) - 1:,} rows; at most {MAX_ROWS:,} can be scored at once (split the file)")
    keys = [_key(h) for h in header]
    dup = sorted({h for h, k in zip(header, keys) if k and keys.count(k) > 1})
    if dup:
        raise ProspectsError(f"{p}: the header names a column twice ({', '.join(dup)}); rename one")
    columns: dict[str, str] = {}
    for canon, names in ALIASES.items():
        for name in names:
            if name in keys:
                columns[canon] = header[keys.index(name)]
                break
    usable = [c for c in columns if c in SCORED or c == "interest"]
    if not usable:
        raise ProspectsError(f"{p}: no column to score on; the header has {', '.join(header)}. Name at least one "
                             "column region, channel (how they found you), first_product_interest, industry or size")
    rejects, good = [], []
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # a blank line: nothing to score, nothing lost
        if len(row) != len(header):
            rejects.append([str(p), i, "", "", f"has {len(row)} fields, the header has {len(header)} (a stray comma "
                                                "or quote?)"])
            continue
        rec = dict(zip(header, row))
        bad = _row_problem(rec, columns)
        if bad:
            rejects.append([str(p), i, bad[0], bad[1], bad[2]])
            continue
        good.append({**rec, "_row": i})
    frame = pd.DataFrame(good, columns=[*header, "_row"])
    frame = _canonical(frame, columns, known or {})
    return ProspectsFile(frame, pd.DataFrame(rejects, columns=REJECT_COLUMNS), columns, header)


def _row_problem(rec: dict[str, str], columns: dict[str, str]) -> tuple[str, str, str] | None:
    for col, v in rec.items():
        if _CONTROL.search(v):
            return col, v[:40], "contains control characters"
        if len(v) > MAX_VALUE:
            return col, v[:40] + "...", f"longer than {MAX_VALUE} characters"
    if "email" in columns:
        e = rec[columns["email"]].strip()
        if e and not _EMAIL.fullmatch(e):
            return columns["email"], e, "not an e-mail address (name@example.com)"
    if not any(rec[columns[c]].strip() for c in columns if c in SCORED or c == "interest"):
        names = ", ".join(columns[c] for c in columns if c in SCORED or c == "interest")
        return "", "", f"nothing to score: {names} all empty"
    return None


def _canonical(frame: pd.DataFrame, columns: dict[str, str], known: dict[str, set[str]]) -> pd.DataFrame:
    """Attribute columns under canonical names, values matched to the customers' spelling (case, spaces
    and punctuation ignored: "Sourdough loaf" is sourdough_loaf)."""
    lower = {a: {_key(v): v for v in vals} for a, vals in known.items()}

    def norm(attr: str, v: str) -> str | None:
        v = v.strip()
        return None if not v else lower.get(attr, {}).get(_key(v), v)

    out = frame.copy()
    for canon in SCORED:
        src = columns.get(canon)
        out[canon] = [norm(canon, v) for v in out[src]] if src else None
    if "interest" in columns:
        cats = lower.get("first_category", {})
        prods = lower.get("first_product", {})
        for idx, v in zip(out.index, out[columns["interest"]]):
            v = v.strip()
            if not v:
                continue
            if _key(v) in cats and pd.isna(out.at[idx, "first_category"]):
                out.at[idx, "first_category"] = cats[_key(v)]
            elif _key(v) in prods and pd.isna(out.at[idx, "first_product"]):
                out.at[idx, "first_product"] = prods[_key(v)]
            elif pd.isna(out.at[idx, "first_product"]) and pd.isna(out.at[idx, "first_category"]):
                out.at[idx, "first_product"] = v
    for canon in SCORED:  # a canonical name that was also the file's own column: keep one
        out[canon] = out[canon].astype(object).where(out[canon].notna(), None)
    return out
