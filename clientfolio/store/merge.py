"""The sequence of merge steps an import runs inside one store transaction.

Written once against a tiny `execute`/`fetch` pair so that DuckDB and
PostgreSQL run exactly the same statements in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

from clientfolio.store.base import (
    DROP_EMAIL_KEYED, FALLBACK_EMAIL, INSERT_LOG, LOG_FIELDS, RELINK_STORED, RESOLVE_INCOMING,
    ImportLogRow, MergeCounts, merge_statements,
)
from clientfolio.store.live import BUMP_VERSION
from clientfolio.store.retention import expire_events

DERIVE_CUSTOMERS = """
INSERT INTO inc_customers_derived (customer_id, email, first_seen, country, consent_marketing, source,
                                   row_hash, import_id, __file)
SELECT customer_id, max(email), min(ts), max(country),
       {last_consent}, max(source),
       md5(concat_ws('|', customer_id, max(email), max(country), CAST({last_consent} AS TEXT))),
       max(import_id), min(__file)
FROM inc_transactions WHERE customer_id IS NOT NULL
GROUP BY customer_id
"""
# The consent of a customer's latest order.  DuckDB's arg_max_null is one hash-aggregate pass; the
# portable array_agg(... ORDER BY) sorts every customer's orders (most of a second per million orders).
LAST_CONSENT = {"duckdb": "arg_max_null(consent_marketing, ts)",
                "postgresql": "(array_agg(consent_marketing ORDER BY ts DESC))[1]"}


def run_merge(
    execute: Callable[[str], None],
    fetch: Callable[[str], list[tuple]],
    tables: list[str],
    log: Callable[[MergeCounts], list[ImportLogRow]],
    dialect: str = "postgresql",
) -> MergeCounts:
    """Merge staged tables in dependency order and write the import log rows.

    `dialect` ("duckdb" or "postgresql") only picks faster equivalents of portable statements.
    """
    counts = MergeCounts()

    def merge(table: str, inc: str, counted: bool) -> None:
        st = merge_statements(table, inc)
        all_new = False
        if counted:
            kept = 0
            for file_no, new, updated, same in fetch(st["counts"]):
                counts.new[file_no] += new
                counts.updated[file_no] += updated
                counts.same[file_no] += same
                # rows whose key stays in the table: identical ones, and changed customers (updated in place)
                kept += same + (updated if st["update"] else 0)
            all_new = kept == 0
        for key in ("update", "delete", "insert"):
            if st[key]:
                # No incoming key is left in the table (first import, or only changed rows, deleted just
                # before): the NOT EXISTS lookup would keep every row, so insert without it.
                execute(st["insert_all"] if key == "insert" and all_new else st[key])

    if "customers" in tables:
        merge("customers", "inc_customers", True)
    for inc_table in ("transactions", "events"):
        if inc_table in tables:
            execute(RESOLVE_INCOMING.format(inc=f"inc_{inc_table}"))
            execute(FALLBACK_EMAIL.format(inc=f"inc_{inc_table}"))
    if "transactions" in tables:
        execute(DERIVE_CUSTOMERS.format(last_consent=LAST_CONSENT[dialect]))
        merge("customers", "inc_customers_derived", False)
        merge("transactions", "inc_transactions", True)
    if "events" in tables:
        merge("events", "inc_events", True)
    if "marketing_spend" in tables:
        merge("marketing_spend", "inc_marketing_spend", True)
    if "customers" in tables:
        before = fetch("SELECT count(*) FROM transactions WHERE customer_id = email")[0][0]
        execute(RELINK_STORED)
        after = fetch("SELECT count(*) FROM transactions WHERE customer_id = email")[0][0]
        counts.linked = int(before - after)
        execute(DROP_EMAIL_KEYED)
    counts.expired_events = expire_events(execute, fetch)
    for row in log(counts):
        values = ", ".join(_sql_value(getattr(row, f)) for f in LOG_FIELDS)
        execute(INSERT_LOG.format(values))
    execute(BUMP_VERSION)  # what a buffered live update read may have changed
    return counts


def _sql_value(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return repr(v)
    if hasattr(v, "isoformat"):
        return "TIMESTAMP '" + v.isoformat(sep=" ") + "'"  # type: ignore[call-arg]
    return "'" + str(v).replace("'", "''") + "'"
