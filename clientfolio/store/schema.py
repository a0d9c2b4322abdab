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

# The living portfolio (version 3).  Unlike the canonical tables these have keys on DuckDB too:
# per-event updates look single rows up by key, and the keys guard what must never repeat
# (a change id, an outbox message, an applied event).
PORTFOLIO_STATES = [
    ("state_id", "BIGINT NOT NULL"), ("created_at", "TIMESTAMP NOT NULL"), ("cutoff", "TIMESTAMP NOT NULL"),
    ("format", "INTEGER NOT NULL"), ("reason", "TEXT NOT NULL"), ("fingerprint", "TEXT"),
    ("transactions", "BIGINT"), ("customers", "BIGINT"), ("is_current", "BOOLEAN NOT NULL"),
    ("body", "TEXT NOT NULL"),
]
SEGMENT_CHANGES = [
    ("change_id", "BIGINT NOT NULL"), ("customer_id", "TEXT NOT NULL"), ("segment_kind", "TEXT NOT NULL"),
    ("from_segment", "TEXT"), ("to_segment", "TEXT"), ("changed_at", "TIMESTAMP NOT NULL"),
    ("recorded_at", "TIMESTAMP NOT NULL"), ("cause", "TEXT NOT NULL"), ("reason", "TEXT NOT NULL"),
    ("state_id", "BIGINT NOT NULL"), ("event_key", "TEXT"),
]
OUTBOX = [
    ("message_id", "TEXT NOT NULL"), ("change_id", "BIGINT NOT NULL"), ("customer_id", "TEXT NOT NULL"),
    ("segment_kind", "TEXT NOT NULL"), ("segment", "TEXT NOT NULL"), ("transition", "TEXT NOT NULL"),
    ("action", "TEXT NOT NULL"), ("payload", "TEXT NOT NULL"), ("created_at", "TIMESTAMP NOT NULL"),
    ("delivered_at", "TIMESTAMP"), ("attempts", "INTEGER NOT NULL DEFAULT 0"),
]
APPLIED_EVENTS = [("event_key", "TEXT NOT NULL"), ("applied_at", "TIMESTAMP NOT NULL")]
LIVE_META = [("key", "TEXT NOT NULL"), ("value", "TEXT NOT NULL")]
LIVE_TABLES = {
    "portfolio_states": (PORTFOLIO_STATES, ("state_id",), []),
    "segment_changes": (SEGMENT_CHANGES, ("change_id",), [
        "cause IN ('behaviour', 'time', 'refit')",
        "from_segment IS NOT NULL OR to_segment IS NOT NULL",
        "from_segment IS DISTINCT FROM to_segment",
    ]),
    "outbox": (OUTBOX, ("message_id",), ["transition IN ('entered', 'left')"]),
    "applied_events": (APPLIED_EVENTS, ("event_key",), []),
    "live_meta": (LIVE_META, ("key",), []),
}
# customer_state starts with its key only; its other columns are whatever the caller's frame has
# (replace_customer_state recreates the table with them).
CUSTOMER_STATE_KEY = "customer_id"


def base_type(sql_type: str) -> str:
    """The bare SQL type of a column definition ('BIGINT NOT NULL DEFAULT 0' -> 'BIGINT')."""
    return sql_type.split(" NOT NULL")[0].split(" DEFAULT")[0]


def customer_state_key(table: str, dialect: str) -> list[str]:
    """The unique key on customer_id that makes single-customer reads and updates fast.

    PostgreSQL: a primary key named customer_state_pkey once the table is in place.  DuckDB: a
    unique index built after the rows are in (faster than checking a key row by row), which its
    planner uses for `customer_id = ?` and short IN lists.
    """
    if dialect == "postgresql":
        return [f"postgresql: ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({CUSTOMER_STATE_KEY})"]
    return [f"duckdb: CREATE UNIQUE INDEX customer_state_key ON {table} ({CUSTOMER_STATE_KEY})"]


def create_keyed(name: str, spec: tuple[list[tuple[str, str]], tuple[str, ...], list[str]]) -> str:
    """CREATE TABLE with a primary key (on both engines) and CHECK constraints: spec = (columns, key, checks)."""
    cols, key, checks = spec
    body = ",\n  ".join([f"{c} {t}" for c, t in cols] + [f"CHECK ({c})" for c in checks])
    return f"CREATE TABLE {name} (\n  {body},\n  PRIMARY KEY ({', '.join(key)})\n)"


MIGRATIONS.append((
    3,
    "the living portfolio: fitted states, per-customer state, change log, outbox",
    [
        *(create_keyed(t, spec) for t, spec in LIVE_TABLES.items()),
        f"CREATE TABLE customer_state ({CUSTOMER_STATE_KEY} TEXT NOT NULL)",
        *customer_state_key("customer_state", "duckdb"),
        *customer_state_key("customer_state", "postgresql"),
        "postgresql: CREATE INDEX segment_changes_customer ON segment_changes (customer_id, change_id)",
        "postgresql: CREATE INDEX segment_changes_changed_at ON segment_changes (changed_at)",
        "postgresql: CREATE INDEX outbox_undelivered ON outbox (change_id) WHERE delivered_at IS NULL",
    ],
))

# Actions (version 4): consent per purpose and channel, what was sent to whom, approvals, experiments,
# goals, the owner's own tags, the files clientfolio wrote, and erasures.  Keys on both engines, as above.
PURPOSES = ("marketing", "personalisation", "nudges")
CHANNELS = ("email", "sms", "phone", "post", "push", "any")
CONSENTS = [
    ("customer_id", "TEXT NOT NULL"), ("purpose", "TEXT NOT NULL"), ("channel", "TEXT NOT NULL"),
    ("granted", "BOOLEAN NOT NULL"), ("recorded_at", "TIMESTAMP NOT NULL"), ("source", "TEXT NOT NULL"),
]
CONTACT_LOG = [
    ("customer_id", "TEXT NOT NULL"), ("channel", "TEXT NOT NULL"), ("purpose", "TEXT NOT NULL"),
    ("origin", "TEXT NOT NULL"), ("ref", "TEXT NOT NULL"), ("contacted_at", "TIMESTAMP NOT NULL"),
]
APPROVALS = [
    ("approval_id", "TEXT NOT NULL"), ("kind", "TEXT NOT NULL"), ("created_at", "TIMESTAMP NOT NULL"),
    ("status", "TEXT NOT NULL"), ("summary", "TEXT NOT NULL"), ("customers", "BIGINT NOT NULL"),
    ("payload", "TEXT NOT NULL"), ("decided_at", "TIMESTAMP"), ("decided_by", "TEXT"), ("note", "TEXT"),
]
EXPERIMENTS = [
    ("experiment_id", "TEXT NOT NULL"), ("segment_kind", "TEXT NOT NULL"), ("segment", "TEXT NOT NULL"),
    ("created_at", "TIMESTAMP NOT NULL"), ("started_at", "TIMESTAMP NOT NULL"), ("ended_at", "TIMESTAMP"),
    ("seed", "TEXT NOT NULL"), ("holdout_share", "DOUBLE PRECISION NOT NULL"), ("metric", "TEXT NOT NULL"),
    ("window_days", "INTEGER NOT NULL"), ("description", "TEXT"),
]
EXPERIMENT_ASSIGNMENTS = [
    ("experiment_id", "TEXT NOT NULL"), ("customer_id", "TEXT NOT NULL"), ("arm", "TEXT NOT NULL"),
    ("assigned_at", "TIMESTAMP NOT NULL"),
]
GOALS = [
    ("goal_id", "TEXT NOT NULL"), ("segment_kind", "TEXT NOT NULL"), ("segment", "TEXT NOT NULL"),
    ("metric", "TEXT NOT NULL"), ("change", "DOUBLE PRECISION NOT NULL"), ("baseline", "DOUBLE PRECISION"),
    ("baseline_at", "TIMESTAMP NOT NULL"), ("deadline", "TIMESTAMP NOT NULL"), ("created_at", "TIMESTAMP NOT NULL"),
    ("text", "TEXT NOT NULL"),
]
OWNER_TAGS = [
    ("customer_id", "TEXT NOT NULL"), ("tag", "TEXT NOT NULL"), ("value", "TEXT NOT NULL"),
    ("set_at", "TIMESTAMP NOT NULL"),
]
OUTPUTS = [
    ("path", "TEXT NOT NULL"), ("kind", "TEXT NOT NULL"), ("written_at", "TIMESTAMP NOT NULL"),
    ("rows", "BIGINT"), ("pseudonymised", "BOOLEAN NOT NULL"),
]
ERASURES = [
    ("subject", "TEXT NOT NULL"), ("erased_at", "TIMESTAMP NOT NULL"), ("detail", "TEXT NOT NULL"),
]
# That a customer's data was corrected (GDPR Art. 16): which field and when, never the old value.
CORRECTIONS = [
    ("customer_id", "TEXT NOT NULL"), ("field", "TEXT NOT NULL"), ("corrected_at", "TIMESTAMP NOT NULL"),
    ("source", "TEXT NOT NULL"),
]
ACTION_TABLES = {
    "consents": (CONSENTS, ("customer_id", "purpose", "channel"), [
        "purpose IN ('marketing', 'personalisation', 'nudges')",
        "channel IN ('email', 'sms', 'phone', 'post', 'push', 'any')",
    ]),
    "contact_log": (CONTACT_LOG, ("customer_id", "origin", "ref"), []),
    "approvals": (APPROVALS, ("approval_id",), ["status IN ('pending', 'approved', 'rejected', 'done')"]),
    "experiments": (EXPERIMENTS, ("experiment_id",), ["holdout_share > 0 AND holdout_share < 1"]),
    "experiment_assignments": (EXPERIMENT_ASSIGNMENTS, ("experiment_id", "customer_id"),
                               ["arm IN ('treatment', 'holdout')"]),
    "goals": (GOALS, ("goal_id",), []),
    "owner_tags": (OWNER_TAGS, ("customer_id", "tag"), []),
    "outputs": (OUTPUTS, ("path",), []),
    "erasures": (ERASURES, ("subject",), []),
    "corrections": (CORRECTIONS, ("customer_id", "field", "corrected_at"), []),
}


MIGRATIONS.append((
    4,
    "actions: consent, contacts, approvals, experiments, goals, owner tags, written files, erasures, corrections",
    [
        *(create_keyed(t, spec) for t, spec in ACTION_TABLES.items()),
        "postgresql: CREATE INDEX contact_log_customer ON contact_log (customer_id, contacted_at)",
    ],
))

# Webhooks (version 5): endpoints per store, their signing secrets (the previous one stays valid for a
# grace period after a rotation), and one delivery per (endpoint, outbox message) with its retry state.
WEBHOOK_ENDPOINTS = [
    ("endpoint_id", "TEXT NOT NULL"), ("url", "TEXT NOT NULL"), ("segment_kinds", "TEXT NOT NULL"),
    ("segments", "TEXT NOT NULL"), ("transitions", "TEXT NOT NULL"), ("actions", "TEXT NOT NULL"),
    ("purpose", "TEXT NOT NULL"), ("channel", "TEXT NOT NULL"), ("enabled", "BOOLEAN NOT NULL"),
    ("disabled_reason", "TEXT"), ("disabled_at", "TIMESTAMP"), ("created_at", "TIMESTAMP NOT NULL"),
    ("description", "TEXT"),
]
WEBHOOK_SECRETS = [
    ("endpoint_id", "TEXT NOT NULL"), ("secret_no", "INTEGER NOT NULL"), ("secret", "TEXT NOT NULL"),
    ("created_at", "TIMESTAMP NOT NULL"), ("expires_at", "TIMESTAMP"),
]
WEBHOOK_DELIVERIES = [
    ("endpoint_id", "TEXT NOT NULL"), ("message_id", "TEXT NOT NULL"), ("change_id", "BIGINT NOT NULL"),
    ("customer_id", "TEXT NOT NULL"), ("event_type", "TEXT NOT NULL"), ("body", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"), ("attempts", "INTEGER NOT NULL"), ("next_attempt_at", "TIMESTAMP NOT NULL"),
    ("claim_token", "TEXT"), ("lease_until", "TIMESTAMP"), ("last_attempt_at", "TIMESTAMP"),
    ("last_status", "INTEGER"), ("last_error", "TEXT"), ("approval_id", "TEXT"), ("created_at", "TIMESTAMP NOT NULL"),
    ("delivered_at", "TIMESTAMP"),
]
DELIVERY_STATUSES = ("pending", "claimed", "awaiting_approval", "delivered", "failed", "skipped", "rejected")
WEBHOOK_TABLES = {
    "webhook_endpoints": (WEBHOOK_ENDPOINTS, ("endpoint_id",), [
        "purpose IN ('marketing', 'personalisation', 'nudges')",
        "channel IN ('email', 'sms', 'phone', 'post', 'push', 'any')",
    ]),
    "webhook_secrets": (WEBHOOK_SECRETS, ("endpoint_id", "secret_no"), ["secret LIKE 'whsec_%'"]),
    "webhook_deliveries": (WEBHOOK_DELIVERIES, ("endpoint_id", "message_id"), [
        "status IN (" + ", ".join(f"'{s}'" for s in DELIVERY_STATUSES) + ")",
        "attempts >= 0",
    ]),
}

MIGRATIONS.append((
    5,
    "webhooks: endpoints, signing secrets, deliveries",
    [
        *(create_keyed(t, spec) for t, spec in WEBHOOK_TABLES.items()),
        "postgresql: CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)",
    ],
))


# Version 6: an approval keeps the outcome of what was carried out once
# approved (the file written, rows, customers left out), as JSON text.  Migration 4 above was built
# before this column is added to the spec, so a new store gets it from this step, like an old one.
APPROVAL_RESULT = ("result", "TEXT")
ACTION_TABLES["approvals"] = (APPROVALS + [APPROVAL_RESULT], *ACTION_TABLES["approvals"][1:])
MIGRATIONS.append((
    6,
    "approvals keep the outcome of the send they released",
    ["ALTER TABLE approvals ADD COLUMN result TEXT"],
))

# Version 7: churn risk and next order per customer (clientfolio.predict), written by `clientfolio predict`
# and `analyze --predict`.  A table of its own, not columns of customer_state: customer_state is rebuilt
# with whatever columns each fit gives and upserted by every live update, while predictions belong to the
# fit they were made at (``as_of``, ``state_id``).  Each batch write replaces the whole table in one
# transaction; a live update replaces the rows of the customers it touches (clientfolio.live.predictions).
PREDICTIONS = [
    ("customer_id", "TEXT NOT NULL"), ("churn_risk", "DOUBLE PRECISION"), ("churn_source", "TEXT NOT NULL"),
    ("next_order_days", "DOUBLE PRECISION"), ("next_order_low", "DOUBLE PRECISION"),
    ("next_order_high", "DOUBLE PRECISION"), ("next_order_source", "TEXT NOT NULL"),
    ("horizon_days", "INTEGER NOT NULL"), ("reason", "TEXT"), ("as_of", "TIMESTAMP NOT NULL"),
    ("state_id", "BIGINT"), ("made_at", "TIMESTAMP NOT NULL"),
]
PREDICTION_TABLES = {
    "predictions": (PREDICTIONS, ("customer_id",), [
        "churn_risk IS NULL OR (churn_risk >= 0 AND churn_risk <= 1)",
        "horizon_days > 0",
    ]),
}
MIGRATIONS.append((
    7,
    "predictions: churn risk and next order per customer, as of the fit they were made at",
    [create_keyed(t, spec) for t, spec in PREDICTION_TABLES.items()],
))

# Version 8: indexes for the per-event update's lookups, so that one order reads a few rows instead of
# scanning the history.  The update reads a customer's transactions (12-month value, rule inputs) by
# customer_id, asks whether an order is already stored by (source, order_id), and looks a customer's
# attributes and row up in `customers` by customer_id.  PostgreSQL already has transactions_customer and
# the primary keys of transactions (source, order_id, line_key) and customers; DuckDB gets ART indexes
# (used by its planner for `col = ?` and short `col IN (...)` lists, chosen when the query runs -- EXPLAIN
# ANALYZE shows "Index Scan").  DuckDB ART indexes are single-column here: its index scan takes one column.
LOOKUP_INDEXES = [
    "duckdb: CREATE INDEX transactions_customer ON transactions (customer_id)",
    "duckdb: CREATE INDEX transactions_order ON transactions (order_id)",
    "duckdb: CREATE INDEX customers_customer ON customers (customer_id)",
    "postgresql: CREATE INDEX IF NOT EXISTS transactions_customer ON transactions (customer_id)",
]
MIGRATIONS.append((
    8,
    "indexes for per-event lookups: transactions by customer and by order, customers by id",
    LOOKUP_INDEXES,
))

MIGRATIONS.sort(key=lambda m: m[0])  # branches add steps in any order; they run by number
LATEST = MIGRATIONS[-1][0]
