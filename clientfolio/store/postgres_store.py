"""PostgreSQL store for production and many workspaces, by URL (postgresql://...)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from clientfolio.core.errors import StoreError
from clientfolio.store.base import ImportLogRow, MergeCounts, Store, migration_statements
from clientfolio.store.merge import run_merge
from clientfolio.store.schema import LATEST, TABLES


class PostgresStore(Store):
    """Canonical tables in a PostgreSQL database; imports are staged in DuckDB, then COPYed in."""

    kind = "postgresql"

    def __init__(self, url: str, rejects_dir: str | Path | None = None) -> None:
        import psycopg  # imported here so the DuckDB path needs no database driver at start-up

        self.url = url
        self._psycopg = psycopg
        try:
            self.conn = psycopg.connect(url, autocommit=False, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {_redact(url)}: {str(exc).strip()} "
                             "(is the server running and the database created?)") from None
        self._rejects_dir = Path(rejects_dir) if rejects_dir else Path.cwd() / "clientfolio.rejects"
        self._staging: duckdb.DuckDBPyConnection | None = None
        self._migrate()

    def _migrate(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7261)")  # one migrator at a time
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            current = cur.fetchone()[0]
            if current > LATEST:
                self.conn.rollback()
                raise StoreError(f"{_redact(self.url)}: schema version {current} is newer than this clientfolio ({LATEST})")
            stmts = migration_statements(current, "postgresql")
            for _version, sql in stmts:
                cur.execute(sql)
            for version in sorted({v for v, _ in stmts}):
                cur.execute("INSERT INTO schema_version VALUES (%s, %s)",
                            [version, datetime.now(timezone.utc).replace(tzinfo=None)])
        self.conn.commit()

    def staging(self) -> duckdb.DuckDBPyConnection:
        if self._staging is None:
            self._staging = duckdb.connect()
            self._staging.execute("SET TimeZone = 'UTC'")
        return self._staging

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s") if params else sql, params or None)
            cols = [d.name for d in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
        self.conn.commit()
        return pd.DataFrame(rows, columns=cols)

    def apply_import(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: list[str],
        log: Callable[[MergeCounts], list[ImportLogRow]],
    ) -> MergeCounts:
        inc_tables = [f"inc_{t}" for t in tables] + (["inc_customers_derived"] if "transactions" in tables else [])
        with tempfile.TemporaryDirectory(prefix="clientfolio-pg-") as tmp:
            files = {}
            for inc in inc_tables:
                base = inc.removeprefix("inc_").removesuffix("_derived")
                cols = [c for c, _ in TABLES[base][0]] + ["__file"]
                f = Path(tmp) / f"{inc}.csv"
                if inc != "inc_customers_derived":
                    con.execute(f"COPY (SELECT {', '.join(cols)} FROM {inc}) TO '{f}' (FORMAT csv, HEADER false, NULLSTR '\\N')")
                files[inc] = (f, cols, base)
            try:
                with self.conn.cursor() as cur:
                    for inc, (f, cols, base) in files.items():
                        types = dict(TABLES[base][0])
                        defs = ", ".join(f"{c} {types[c].replace(' NOT NULL', '')}" for c in cols if c != "__file")
                        cur.execute(f"CREATE TEMP TABLE {inc} ({defs}, __file INTEGER) ON COMMIT DROP")
                        if f.exists():
                            with cur.copy(f"COPY {inc} ({', '.join(cols)}) FROM STDIN (FORMAT csv, NULL '\\N')") as cp, \
                                    open(f, "rb") as fh:
                                while chunk := fh.read(1 << 20):
                                    cp.write(chunk)

                    def fetch(sql: str) -> list[tuple]:
                        cur.execute(sql)
                        return cur.fetchall()

                    counts = run_merge(lambda s: cur.execute(s), fetch, tables, log)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
        return counts

    def save_memberships(self, memberships: pd.DataFrame) -> None:
        df = memberships[["customer_id", "segment_kind", "segment", "as_of"]]
        keys = df[["as_of", "segment_kind"]].drop_duplicates()
        try:
            with self.conn.cursor() as cur:
                for as_of, kind in keys.itertuples(index=False):
                    cur.execute("DELETE FROM segment_memberships WHERE as_of = %s AND segment_kind = %s",
                                [pd.Timestamp(as_of).to_pydatetime(), kind])
                with cur.copy("COPY segment_memberships (customer_id, segment_kind, segment, as_of) FROM STDIN") as cp:
                    for row in df.itertuples(index=False):
                        cp.write_row([row[0], row[1], row[2], pd.Timestamp(row[3]).to_pydatetime()])
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    @property
    def default_rejects_dir(self) -> Path:
        return self._rejects_dir

    def close(self) -> None:
        if self._staging is not None:
            self._staging.close()
        self.conn.close()


def _redact(url: str) -> str:
    """Hide the password in a connection URL before showing it."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
