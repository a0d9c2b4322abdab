"""PostgreSQL store for production and many workspaces, by URL (postgresql://...)."""

from __future__ import annotations

import tempfile
import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from clientfolio.core.errors import StoreError
from clientfolio.store.base import ImportLogRow, MergeCounts, Store, migration_statements
from clientfolio.store.live import (
    BUMP_VERSION, DUCKDB_TYPES, SMALL_BATCH, Rows, Types, catalog_type, check_state_ids, conform, create_state_table, delete_few_sql,
    delete_sql,
    frame_from_rows, insert_rows_sql, insert_sql, normalize, now_utc, prepare_live, quote, run_commit, state_row, state_types,
    table_types, to_arrow,
)
from clientfolio.store.merge import run_merge
from clientfolio.store.schema import LATEST, TABLES, customer_state_key
from clientfolio.store.tx import Transaction

LIVE_LOCK = 7262  # advisory lock id taken by every writer of the live tables
COPY_SLICE = 100_000  # rows DuckDB formats at a time for COPY


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
            self._staging.execute("SET enable_progress_bar = false")  # as the DuckDB store: no bar in stdout
        return self._staging

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s") if params else sql, params or None)
            cols = [d.name for d in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
        self.conn.commit()
        return pd.DataFrame(rows, columns=cols)

    def fetch(self, sql: str, params: list | tuple | None = None) -> tuple[list[str], list[tuple]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s") if params else sql, params or None)
                cols = [d.name for d in cur.description] if cur.description else []
                rows = cur.fetchall() if cur.description else []
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return cols, rows

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

    # --- the living portfolio ------------------------------------------------------------------

    def save_state(self, meta: dict[str, Any], body: str) -> int:
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [LIVE_LOCK])
                cur.execute("SELECT coalesce(max(state_id), 0) + 1 FROM portfolio_states")
                state_id = int(cur.fetchone()[0])
                row = state_row(meta, state_id, body)
                cur.execute("UPDATE portfolio_states SET is_current = FALSE WHERE is_current")
                cur.execute(_pg(insert_sql("portfolio_states", table_types("portfolio_states"))), row)
                cur.execute(BUMP_VERSION)
            self.conn.commit()
        except BaseException as exc:
            self.conn.rollback()
            self._refused(exc, "save_state")
            raise
        return state_id

    def replace_customer_state(self, df: pd.DataFrame) -> None:
        types = state_types(df)
        rows = conform(df, types, "customer_state")
        check_state_ids(rows)
        try:
            with self.conn.cursor() as cur:
                # Build the new table beside the old one; the old one is locked only for the swap.
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [LIVE_LOCK])
                cur.execute("DROP TABLE IF EXISTS customer_state_next")
                cur.execute(create_state_table(types, "customer_state_next"))
                self._copy_frame(cur, "customer_state_next", rows, types)
                for stmt in customer_state_key("customer_state_next", "postgresql"):
                    cur.execute(stmt.removeprefix("postgresql: "))
                cur.execute("DROP TABLE customer_state")
                cur.execute("ALTER TABLE customer_state_next RENAME TO customer_state")
                cur.execute("ALTER INDEX customer_state_next_pkey RENAME TO customer_state_pkey")
                # the row count and key statistics for the planner now; autovacuum gathers the rest
                cur.execute("ANALYZE customer_state (customer_id)")
                cur.execute(BUMP_VERSION)
            self.conn.commit()
        except BaseException as exc:
            self.conn.rollback()
            self._refused(exc, "replace_customer_state")
            raise

    def read_customer_state(self, customer_ids: list[str] | None = None) -> pd.DataFrame:
        try:
            with self.conn.cursor() as cur:
                types = _catalog_types(cur)
                cols = ", ".join(quote(c) for c in types)
                if customer_ids is None:
                    df = self._read_all(cur, f"SELECT {cols} FROM customer_state ORDER BY customer_id", types)
                else:
                    cur.execute(f"SELECT {cols} FROM customer_state WHERE customer_id = ANY(%s) ORDER BY customer_id",
                                [[str(i) for i in customer_ids]])
                    df = frame_from_rows(cur.fetchall(), types)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return df if customer_ids is not None else normalize(df, types)

    def _read_all(self, cur: Any, sql: str, types: Types) -> pd.DataFrame:
        """A large result through COPY and DuckDB's CSV reader (much faster than fetching Python rows)."""
        with tempfile.TemporaryDirectory(prefix="clientfolio-pg-") as tmp:
            f = Path(tmp) / "out.csv"
            with open(f, "wb") as fh, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, FORCE_QUOTE *, NULL '\\N')") as cp:
                for chunk in cp:
                    fh.write(chunk)
            if f.stat().st_size == 0:
                return pd.DataFrame({c: [] for c in types})
            columns = "{" + ", ".join(f"'{c}': '{DUCKDB_TYPES[t]}'" for c, t in types.items()) + "}"
            return self.staging().execute(
                f"SELECT * FROM read_csv('{f}', header = false, nullstr = '\\N', allow_quoted_nulls = false, "
                f"quote = '\"', escape = '\"', columns = {columns})").df()

    def _state_types(self) -> Types:
        try:
            with self.conn.cursor() as cur:
                types = _catalog_types(cur)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return types

    def commit_live(
        self,
        *,
        state_rows: pd.DataFrame | None,
        changes: pd.DataFrame | None,
        outbox: pd.DataFrame | None,
        event_keys: Sequence[str] = (),
        meta: dict[str, str] | None = None,
        transactions: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        delete_orders: Sequence[tuple[str, str]] = (),
        expect_version: str | None = None,
        new_customers: list[tuple] | None = None,
        predictions: pd.DataFrame | None = None,
        predictions_for: Sequence[str] = (),
    ) -> list[int]:
        now = now_utc()
        batch = prepare_live(state_rows=state_rows, changes=changes, outbox=outbox, event_keys=event_keys,
                             meta=meta, transactions=transactions, events=events, delete_orders=delete_orders,
                             predictions=predictions, predictions_for=predictions_for, now=now,
                             expect_version=expect_version,
                             new_customers=new_customers)
        try:
            with self.conn.cursor() as cur:
                ids = run_commit(_Writer(self, cur), batch, now)
            self.conn.commit()
        except BaseException as exc:
            self.conn.rollback()
            self._refused(exc, "commit_live")
            raise
        return ids

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        try:
            with self.conn.cursor() as cur:
                def run(sql: str, params: Sequence[Any]) -> list[tuple]:
                    cur.execute(_pg(sql), list(params) or None)
                    return cur.fetchall() if cur.description else []

                yield Transaction(_Writer(self, cur), run)
            self.conn.commit()
        except BaseException as exc:
            self.conn.rollback()
            self._refused(exc, "transaction")
            raise

    def mark_outbox(self, message_ids: Sequence[str], *, delivered: bool, at: datetime | None = None) -> int:
        ids = [str(m) for m in message_ids]
        if not ids:
            return 0
        sets = "attempts = attempts + 1" + (", delivered_at = %s" if delivered else "")
        params = ([at or now_utc()] if delivered else []) + [ids]
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"UPDATE outbox SET {sets} WHERE message_id = ANY(%s) RETURNING message_id", params)
                n = len(cur.fetchall())
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return n

    def _copy_frame(self, cur: Any, table: str, frame: pd.DataFrame, types: Types) -> None:
        """COPY a conformed frame into a table as CSV written by DuckDB from Arrow (as imports do).

        A slice at a time: while DuckDB writes the next slice, a psycopg thread sends the last
        one, so the formatting here and PostgreSQL's parsing overlap.
        """
        from psycopg.copy import QueuedLibpqWriter

        tab = to_arrow(frame, types)
        con = self.staging()
        # DuckDB refuses register() while a result is half read, and a failed import can leave one behind
        # (a long-lived store, as the service keeps, then failed every later bulk write): finish it first.
        con.execute("SELECT 1").fetchall()
        cols = ", ".join(quote(c) for c in types)
        with tempfile.TemporaryDirectory(prefix="clientfolio-pg-") as tmp, \
                cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv, NULL '\\N')",
                         writer=QueuedLibpqWriter(cur)) as cp:
            part = Path(tmp) / "part.csv"
            for start in range(0, tab.num_rows, COPY_SLICE):
                con.register("__pg_rows", tab.slice(start, COPY_SLICE))
                try:
                    con.execute(f"COPY (SELECT {cols} FROM __pg_rows) TO '{part}' "
                                "(FORMAT csv, HEADER false, NULLSTR '\\N')")
                finally:
                    con.unregister("__pg_rows")
                cp.write(part.read_bytes())

    def _refused(self, exc: BaseException, what: str) -> None:
        """Re-raise a database refusal (a NOT NULL, key or check violation) as a StoreError."""
        if isinstance(exc, self._psycopg.Error):
            msg = str(exc).strip().splitlines()[0]
            raise StoreError(f"{what}: the store refused the rows, nothing was written: {msg}") from exc

    @property
    def default_rejects_dir(self) -> Path:
        return self._rejects_dir

    def close(self) -> None:
        if self._staging is not None:
            self._staging.close()
        self.conn.close()


class _Writer:
    """run_commit's statements on PostgreSQL: prepared statements for a few rows, COPY for many."""

    def __init__(self, store: PostgresStore, cur: Any) -> None:
        self.store = store
        self.cur = cur

    def lock(self) -> None:
        # Live writers (and replace_customer_state, save_state) take turns: change ids are max+1.
        self.cur.execute("SELECT pg_advisory_xact_lock(%s)", [LIVE_LOCK])

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self.cur.execute(_pg(sql), list(params) or None)
        return self.cur.fetchall()

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if len(rows) == 1:
            self.cur.execute(_pg(sql), rows[0])
        else:
            self.cur.executemany(_pg(sql), rows)

    def delete_keys(self, table: str, key: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        if len(rows) <= SMALL_BATCH:  # one statement for the few keys of a per-event update
            self.cur.execute(_pg(delete_few_sql(table, key, len(rows))), [v for r in rows for v in r])
        else:
            self.cur.execute(_pg(delete_sql(table, key, many=True)), [list(col) for col in zip(*rows)])

    def insert(self, table: str, rows: Rows) -> None:
        if rows.tuples is not None:
            if rows.tuples:  # one multi-row statement
                self.cur.execute(_pg(insert_rows_sql(table, rows.types, len(rows.tuples))),
                                 [v for r in rows.tuples for v in r])
            return
        self.store._copy_frame(self.cur, table, rows.frame, rows.types)

    def state_types(self) -> Types:
        return _catalog_types(self.cur)


def _catalog_types(cur: Any) -> Types:
    """customer_state's columns and types, read in the caller's transaction."""
    cur.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'customer_state'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")
    return {c: catalog_type("customer_state", c, t) for c, t in cur.fetchall()}


def _pg(sql: str) -> str:
    """`?` parameters as psycopg's `%s` (clientfolio's SQL has no other `?` or `%`)."""
    return sql.replace("?", "%s")


def _redact(url: str) -> str:
    """Hide the password in a connection URL before showing it."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
