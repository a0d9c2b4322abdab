"""How the demo shop's tables are written to and read from CSV (one schema for both ways).

Money is written with exactly two decimals, timestamps as ISO 8601 UTC with a ``Z``,
dates as ``YYYY-MM-DD``, booleans as ``True``/``False``, missing values as empty fields.
Gzip members carry no file name and a zero modification time, so the same table
always gives the same bytes (for a given zlib).
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import IO, Any

import pandas as pd

TABLES: tuple[str, ...] = ("transactions", "customers", "events", "marketing_spend")
FILENAMES: dict[str, str] = {
    "transactions": "transactions.csv.gz",
    "customers": "customers.csv",
    "events": "events.csv.gz",
    "marketing_spend": "marketing_spend.csv",
}
# column -> kind: str, int, nint (nullable int), float (money), bool, ts (UTC), date
SCHEMA: dict[str, dict[str, str]] = {
    "transactions": {
        "customer_id": "str", "order_id": "str", "line_no": "int", "ts": "ts", "amount": "float",
        "quantity": "int", "product_id": "str", "category": "str", "channel": "str", "cost": "float",
        "discount": "float", "cost_to_serve": "float", "currency": "str", "gift": "bool",
    },
    "customers": {
        "customer_id": "str", "first_seen": "date", "region": "str", "industry": "str", "size": "str",
        "company": "str", "acquisition_channel": "str", "acquisition_cost": "float",
        "consent_marketing": "bool", "email": "str", "birthday_month": "nint",
    },
    "events": {"customer_id": "str", "ts": "ts", "type": "str", "properties": "str"},
    "marketing_spend": {"channel": "str", "period_start": "date", "period_end": "date", "spend": "float"},
}
_READ_DTYPES: dict[str, Any] = {"str": str, "int": "int64", "nint": "Int64", "float": "float64", "bool": "bool"}


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """The canonical CSV text of a table (columns as given, ``\\n`` line ends, UTF-8)."""
    text = df.to_csv(index=False, lineterminator="\n", float_format="%.2f", na_rep="")
    return text.encode("utf-8")


def write_table(csv: bytes, path: Path) -> None:
    """Write CSV bytes, gzip-compressed reproducibly when the name ends in ``.gz``."""
    data = gzip.compress(csv, compresslevel=9, mtime=0) if path.name.endswith(".gz") else csv
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def csv_bytes_of(path: Path) -> bytes:
    """The uncompressed CSV bytes of a bundled table file."""
    data = Path(path).read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_table(name: str, source: str | Path | bytes | IO[bytes]) -> pd.DataFrame:
    """Read one demo-shop table with its proper dtypes (UTC timestamps, dates, bools, money)."""
    if name not in SCHEMA:
        raise ValueError(f"read_table: unknown table {name!r}; expected one of {', '.join(TABLES)}")
    kinds = SCHEMA[name]
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    dtypes = {c: _READ_DTYPES[k] for c, k in kinds.items() if k in _READ_DTYPES}
    df = pd.read_csv(source, dtype=dtypes, keep_default_na=False, na_values=[""],
                     compression="infer" if isinstance(source, (str, Path)) else None)
    if list(df.columns) != list(kinds):
        raise ValueError(f"read_table: {name} has columns {list(df.columns)}; expected {list(kinds)}")
    for col, kind in kinds.items():
        if kind == "ts":
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
        elif kind == "date":
            df[col] = pd.to_datetime(df[col], format="%Y-%m-%d")
    return df
