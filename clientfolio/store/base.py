"""The one small interface every store backend implements, and the merge SQL they share.

An import hands the store staged rows (DuckDB temp tables named `inc_<table>`,
with a `__file` column saying which input file each row came from).  The
store merges them in ONE transaction: new keys are inserted, changed rows
replace the stored ones, identical rows are counted as duplicates.  If
anything fails, or the process dies, the transaction is rolled back and the
store is exactly as before.
"""

from __future__ import annotations

import abc
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from clientfolio.store.schema import LATEST, MIGRATIONS, TABLES


@dataclass
class MergeCounts:
    """Per input file: rows inserted, replaced, and identical to what was stored."""

    new: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    updated: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    same: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    linked: int = 0


@dataclass
class ImportLogRow:
    import_id: int
    file_no: int
    started_at: Any
    finished_at: Any
    file: str
    file_sha256: str | None
    layout: str
    target: str
    rows_in: int
    rows_stored: int
    rows_new: int
    rows_updated: int
    rows_rejected: int
    rows_deduplicated: int
    rejects_path: str | None
    notes: str


class Store(abc.ABC):
    """A place the canonical tables live: a DuckDB file or a PostgreSQL database."""

    url: str
    kind: str

    @abc.abstractmethod
    def staging(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection where an import stages and cleans its rows."""

    @abc.abstractmethod
    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run a read-only query and return a DataFrame."""

    @abc.abstractmethod
    def apply_import(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: list[str],
        log: Callable[[MergeCounts], list[ImportLogRow]],
    ) -> MergeCounts:
        """Merge the staged `inc_<table>` tables and write the import log, atomically."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def default_rejects_dir(self) -> Path: ...

    @abc.abstractmethod
    def save_memberships(self, memberships: pd.DataFrame) -> None:
        """Store a segment snapshot, replacing rows of the same dates and segment kinds (atomically)."""

    def next_import_id(self) -> int:
        v = self.query("SELECT coalesce(max(import_id), 0) + 1 AS n FROM imports")["n"].iloc[0]
        return int(v)

    def table(self, name: str) -> pd.DataFrame:
        """A whole canonical table as a DataFrame (for tests and small stores)."""
        if name not in TABLES and name != "imports":
            raise ValueError(f"unknown table {name!r}; use one of {list(TABLES) + ['imports']}")
        return self.query(f"SELECT * FROM {name}")

    def schema_version(self) -> int:
        return int(self.query("SELECT max(version) AS v FROM schema_version")["v"].iloc[0])

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def migration_statements(current: int, dialect: str) -> list[tuple[int, str]]:
    """Statements to bring a store from `current` to the latest schema version."""
    out = []
    for version, _title, stmts in MIGRATIONS:
        if version <= current:
            continue
        for s in stmts:
            engine, sep, rest = s.partition(": ")
            if sep and engine in ("postgresql", "duckdb"):
                if engine != dialect:
                    continue
                s = rest
            out.append((version, s))
    return out


def merge_statements(table: str, inc: str) -> dict[str, str]:
    """SQL (both dialects) to count and merge staged rows `inc` into `table`."""
    cols, key = TABLES[table]
    names = [c for c, _ in cols]
    on = " AND ".join(f"t.{k} = i.{k}" for k in key)
    on_target = " AND ".join(f"{table}.{k} = i.{k}" for k in key)
    counts = (
        f"SELECT i.__file AS file_no, "
        f"count(*) FILTER (WHERE t.row_hash IS NULL) AS new, "
        f"count(*) FILTER (WHERE t.row_hash IS NOT NULL AND t.row_hash <> i.row_hash) AS updated, "
        f"count(*) FILTER (WHERE t.row_hash = i.row_hash) AS same "
        f"FROM {inc} i LEFT JOIN {table} t ON {on} GROUP BY i.__file"
    )
    if table == "customers":
        # Customers arrive from several files (orders, customer lists): keep what is known.
        keep = [c for c in names if c not in key and c not in ("row_hash", "import_id", "source")]
        sets = ", ".join(f"{c} = coalesce(i.{c}, {table}.{c})" for c in keep)
        update = (f"UPDATE {table} SET {sets}, row_hash = i.row_hash, import_id = i.import_id "
                  f"FROM {inc} i WHERE {on_target} AND {table}.row_hash <> i.row_hash")
        delete = None
    else:
        update = None
        delete = (f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {inc} i WHERE {on_target} "
                  f"AND i.row_hash <> {table}.row_hash)")
    insert = (f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join('i.' + n for n in names)} FROM {inc} i "
              f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on})")
    return {"counts": counts, "update": update, "delete": delete, "insert": insert}


# Link rows keyed by e-mail to the customer id a customers file gives that e-mail.
RESOLVE_INCOMING = (
    "UPDATE {inc} SET customer_id = c.customer_id FROM customers c "
    "WHERE {inc}.customer_id IS NULL AND {inc}.email IS NOT NULL AND c.email = {inc}.email"
)
FALLBACK_EMAIL = "UPDATE {inc} SET customer_id = email WHERE customer_id IS NULL AND email IS NOT NULL"
RELINK_STORED = (
    "UPDATE transactions SET customer_id = c.customer_id FROM customers c "
    "WHERE transactions.customer_id = transactions.email AND c.email = transactions.email "
    "AND c.customer_id <> c.email"
)
DROP_EMAIL_KEYED = (
    "DELETE FROM customers WHERE customer_id = email AND EXISTS "
    "(SELECT 1 FROM customers c WHERE c.email = customers.email AND c.customer_id <> c.email)"
)
INSERT_LOG = (
    "INSERT INTO imports (import_id, file_no, started_at, finished_at, file, file_sha256, layout, target, rows_in, "
    "rows_stored, rows_new, rows_updated, rows_rejected, rows_deduplicated, rejects_path, notes) "
    "VALUES ({})"
)
LOG_FIELDS = list(ImportLogRow.__dataclass_fields__)
