"""The embedded default store: one DuckDB file, nothing to install."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from clientfolio.core.errors import StoreError
from clientfolio.store.base import ImportLogRow, MergeCounts, Store, migration_statements
from clientfolio.store.merge import run_merge
from clientfolio.store.schema import LATEST


class DuckDBStore(Store):
    """Canonical tables in a DuckDB file (``clientfolio.duckdb`` by default)."""

    kind = "duckdb"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            hint = " (is another clientfolio process using it?)" if "lock" in msg.lower() else ""
            raise StoreError(f"{self.path}: cannot open the store: {msg}{hint}") from None
        self.con.execute("SET TimeZone = 'UTC'")
        self._migrate()

    def _migrate(self) -> None:
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
        current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if current > LATEST:
            raise StoreError(f"{self.path}: the store has schema version {current}, newer than this clientfolio "
                             f"({LATEST}); upgrade clientfolio")
        stmts = migration_statements(current, "duckdb")
        if not stmts:
            return
        con.execute("BEGIN TRANSACTION")
        try:
            for version, sql in stmts:
                con.execute(sql)
            for version in sorted({v for v, _ in stmts}):
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, datetime.now(timezone.utc).replace(tzinfo=None)])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{self.path}: migration failed: {exc}") from None

    def staging(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def apply_import(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: list[str],
        log: Callable[[MergeCounts], list[ImportLogRow]],
    ) -> MergeCounts:
        assert con is self.con
        con.execute("BEGIN TRANSACTION")
        try:
            counts = run_merge(lambda s: con.execute(s), lambda s: con.execute(s).fetchall(), tables, log)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return counts

    def save_memberships(self, memberships: pd.DataFrame) -> None:
        con = self.con
        df = memberships[["customer_id", "segment_kind", "segment", "as_of"]]
        con.register("__snapshot", df)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM segment_memberships WHERE EXISTS (SELECT 1 FROM __snapshot s "
                        "WHERE s.as_of = segment_memberships.as_of AND s.segment_kind = segment_memberships.segment_kind)")
            con.execute("INSERT INTO segment_memberships SELECT customer_id, segment_kind, segment, as_of FROM __snapshot")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("__snapshot")

    @property
    def default_rejects_dir(self) -> Path:
        return self.path.with_name(self.path.stem + ".rejects")

    def close(self) -> None:
        self.con.close()
