"""The store's schema as numbered migrations, written once for DuckDB and PostgreSQL.

Each migration is a list of statements in the SQL both engines accept (a statement
prefixed `postgresql: ` or `duckdb: ` runs on that engine only, e.g. keys and indexes).  A
store records the versions applied in `schema_version`; opening a store
applies the missing ones in order inside one transaction.
"""

from __future__ import annotations

# Columns of each canonical table as stored (name, SQL type), in order.
TRANSACTIONS = [
    ("source", "TEXT NOT NULL"), ("order_id", "TEXT NOT NULL"), ("line_key", "TEXT NOT NULL"),
    ("customer_id", "TEXT"), ("email", "TEXT"), ("ts", "TIMESTAMP NOT NULL"),
    ("amount", "DOUBLE PRECISION NOT NULL"), ("is_refund", "BOOLEAN NOT NULL"),
    ("quantity", "DOUBLE PRECISION"), ("unit_price", "DOUBLE PRECISION"), ("product_id", "TEXT"),
    ("description", "TEXT"), ("category", "TEXT"), ("channel", "TEXT"), ("cost", "DOUBLE PRECISION"),
    ("discount", "DOUBLE PRECISION"), ("cost_to_serve", "DOUBLE PRECISION"), ("currency", "TEXT"),
    ("status", "TEXT"), ("country", "TEXT"), ("consent_marketing", "BOOLEAN"), ("attributes", "TEXT"),
    ("row_hash", "TEXT NOT NULL"), ("import_id", "BIGINT NOT NULL"),
]
CUSTOMERS = [
    ("customer_id", "TEXT NOT NULL"), ("email", "TEXT"), ("first_seen", "TIMESTAMP"), ("region", "TEXT"),
    ("country", "TEXT"), ("industry", "TEXT"), ("size", "TEXT"), ("acquisition_channel", "TEXT"),
    ("acquisition_cost", "DOUBLE PRECISION"), ("consent_marketing", "BOOLEAN"), ("attributes", "TEXT"),
    ("source", "TEXT"), ("row_hash", "TEXT NOT NULL"), ("import_id", "BIGINT NOT NULL"),
]
EVENTS = [
    ("event_id", "TEXT NOT NULL"), ("customer_id", "TEXT"), ("email", "TEXT"), ("ts", "TIMESTAMP NOT NULL"),
    ("type", "TEXT NOT NULL"), ("properties", "TEXT"), ("source", "TEXT"), ("row_hash", "TEXT NOT NULL"),
    ("import_id", "BIGINT NOT NULL"),
]
MARKETING_SPEND = [
    ("channel", "TEXT NOT NULL"), ("period_start", "DATE NOT NULL"), ("period_end", "DATE NOT NULL"),
    ("spend", "DOUBLE PRECISION NOT NULL"), ("row_hash", "TEXT NOT NULL"), ("import_id", "BIGINT NOT NULL"),
]
TABLES = {
    "transactions": (TRANSACTIONS, ("source", "order_id", "line_key")),
    "customers": (CUSTOMERS, ("customer_id",)),
    "events": (EVENTS, ("event_id",)),
    "marketing_spend": (MARKETING_SPEND, ("channel", "period_start", "period_end")),
}


def _create(name: str, dialect: str) -> str:
    """CREATE TABLE for one canonical table.

    PostgreSQL gets a primary key (it also serves the merge's lookups).  DuckDB does not: the
    merge itself guarantees one row per key (DuckDB allows one writing process per file), and
    an ART index over millions of text keys would cost more memory and time than the data.
    """
    cols, key = TABLES[name]
    body = ",\n  ".join(f"{c} {t}" for c, t in cols)
    pk = f",\n  PRIMARY KEY ({', '.join(key)})" if dialect == "postgresql" else ""
    return f"{dialect}: CREATE TABLE {name} (\n  {body}{pk}\n)"


MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "canonical tables and the import log",
        [
            *(_create(t, d) for t in TABLES for d in ("duckdb", "postgresql")),
            """CREATE TABLE imports (
  import_id BIGINT NOT NULL, file_no INTEGER NOT NULL, started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP NOT NULL, file TEXT NOT NULL, file_sha256 TEXT, layout TEXT NOT NULL,
  target TEXT NOT NULL, rows_in BIGINT NOT NULL, rows_stored BIGINT NOT NULL, rows_new BIGINT NOT NULL,
  rows_updated BIGINT NOT NULL, rows_rejected BIGINT NOT NULL, rows_deduplicated BIGINT NOT NULL,
  rejects_path TEXT, notes TEXT,
  PRIMARY KEY (import_id, file_no)
)""",
            "postgresql: CREATE INDEX transactions_customer ON transactions (customer_id)",
            "postgresql: CREATE INDEX customers_email ON customers (email)",
        ],
    ),
]

MIGRATIONS.append((
    2,
    "segment membership snapshots",
    [
        "duckdb: CREATE TABLE segment_memberships (customer_id TEXT NOT NULL, segment_kind TEXT NOT NULL, "
        "segment TEXT NOT NULL, as_of TIMESTAMP NOT NULL)",
        "postgresql: CREATE TABLE segment_memberships (customer_id TEXT NOT NULL, segment_kind TEXT NOT NULL, "
        "segment TEXT NOT NULL, as_of TIMESTAMP NOT NULL, PRIMARY KEY (as_of, segment_kind, customer_id, segment))",
    ],
))

LATEST = MIGRATIONS[-1][0]
