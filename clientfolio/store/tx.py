"""One transaction on the actions tables (and any other fixed table), the same on DuckDB and PostgreSQL.

The living portfolio writes through `commit_live`; everything else that records what the owner
did (consent, experiments, approvals, erasure, ...) opens `store.transaction()` and runs plain
statements with `?` parameters, or inserts a frame checked against the table's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from clientfolio.store.live import LiveWriter, rows_for, table_types


class Transaction:
    """Statements that commit together or not at all (the store opens and closes it)."""

    def __init__(self, writer: LiveWriter, run: Callable[[str, Sequence[Any]], list[tuple]]) -> None:
        self._writer = writer
        self._run = run

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement (`?` parameters); the rows it returns (use RETURNING to see written rows)."""
        return self._run(sql, list(params))

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        """Run one statement once per parameter tuple."""
        if rows:
            self._writer.executemany(sql, rows)

    def insert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows checked against the table's columns (missing nullable columns stay NULL)."""
        if frame.empty:
            return 0
        rows = rows_for(frame, table_types(table), f"{table} rows")
        self._writer.insert(table, rows)
        return len(rows)
