"""Import files into a store: sniff, stage, map, check, deduplicate, merge — atomically.

Every input row ends in exactly one place: stored, in the rejects file
(invalid, or excluded as not revenue) or counted as a duplicate.  The counts
are checked before the store transaction commits; if they do not balance the
import is rolled back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from clientfolio.core.errors import ClientfolioError, IngestError
from clientfolio.ingest.erased import ERASED, skip_erased
from clientfolio.ingest.failures import plain_failure
from clientfolio.ingest.money import settle_currencies, store_currencies
from clientfolio.ingest.layouts import Detection, builtin_layouts, detect_layout, layout_from_dict
from clientfolio.ingest.reader import RawTable, drop_raw, load
from clientfolio.ingest.result import FileReport, ImportResult
from clientfolio.ingest.sniff import sniff
from clientfolio.ingest.sqlexpr import lit
from clientfolio.ingest.transform import (
    CU_HASH, EV_HASH, LINE_IDENT, MS_HASH, OK, TX_HASH, ImportOptions, Stage, build_stage, guest_order_id, md5_sql,
)
from clientfolio.store import Store, open_store
from clientfolio.store.base import ImportLogRow, MergeCounts
from clientfolio.store.schema import TABLES

Progress = Callable[[str, float], None]


@contextlib.contextmanager
def _watched(con: duckdb.DuckDBPyConnection, report: Progress, label: str, lo: float, hi: float):
    """Report DuckDB's progress on the running query as a fraction between lo and hi."""
    report(label, lo)
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.25):
            pct = con.query_progress()
            if pct >= 0:
                report(label, lo + (hi - lo) * min(pct, 100.0) / 100.0)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        report(label, hi)


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Cap DuckDB's memory and give it a place to spill, so inputs larger than memory still import.

    The cap is CLIENTFOLIO_MEMORY_LIMIT (default 2GB); beyond it DuckDB writes staged tables, sorts
    and hash tables to CLIENTFOLIO_TEMP_DIR, else next to a store file (`<store>.tmp`), else (an
    in-memory staging database, e.g. for PostgreSQL) to the system's temporary directory rather
    than DuckDB's default `.tmp` in whatever directory the process runs in.
    """
    con.execute(f"SET memory_limit = {lit(os.environ.get('CLIENTFOLIO_MEMORY_LIMIT', '2GB'))}")
    spill = os.environ.get("CLIENTFOLIO_TEMP_DIR")
    if not spill:
        current = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
        if current and os.path.isabs(current):
            return
        spill = os.path.join(tempfile.gettempdir(), f"clientfolio-spill-{os.getpid()}")
    with contextlib.suppress(duckdb.Error):  # refused once something was spilled: keep that directory
        con.execute(f"SET temp_directory = {lit(spill)}")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _detect(raw: RawTable, path: Path, opts: ImportOptions) -> Detection:
    if opts.mapping is not None:
        layouts = [opts.mapping]
    else:
        layouts = builtin_layouts()
        if opts.layout:
            layouts = [lay for lay in layouts if lay.name == opts.layout]
            if not layouts:
                names = ", ".join(lay.name for lay in builtin_layouts())
                raise IngestError(path, f"unknown layout {opts.layout!r}", hint=f"use one of: {names}")
    det = detect_layout(raw.header, layouts)
    if det is None and opts.columns:
        lay = layout_from_dict({"name": "command_line", "title": "columns named on the command line",
                                "columns": dict(opts.columns), "detect": {"required": []},
                                "customer_required": not opts.allow_no_customer}, "command line")
        det = Detection(lay, 0.0, (), {})
    if det is None:
        shown = ", ".join(raw.header[:15]) + (" ..." if len(raw.header) > 15 else "")
        if opts.mapping is not None:
            missing = [c for c in opts.mapping.required
                       if c.lower().replace(" ", "") not in {h.lower().replace(" ", "") for h in raw.header}]
            raise IngestError(path, f"the mapping {opts.mapping.origin} names column(s) the file does not have: "
                              f"{', '.join(missing)} (the header has: {shown})", hint="fix the names in the mapping")
        generic = next((lay for lay in builtin_layouts() if lay.name == "generic_transactions"), None)
        if generic is not None:
            from clientfolio.ingest.layouts import _synonym_match, norm_header

            found = _synonym_match(generic, {norm_header(h): h for h in raw.header}) or {}
            names = {"customer_id": "customer", "ts": "date", "amount": "amount"}
            have = [f"{names[c]} ({found[c]!r})" for c in names if c in found]
            lacking = [names[c] for c in names if c not in found and not (c == "customer_id" and "email" in found)]
            if have and lacking:
                raise IngestError(
                    path, f"no {' or '.join(lacking)} column: found {', '.join(have)} (the header has: {shown})",
                    hint=f"name it with {' and '.join(f'--{w}-col' for w in lacking)}, or use a mapping file (--mapping)",
                )
        if len(raw.header) == 1:
            raise IngestError(path, f"found a single column {raw.header[0]!r}; the delimiter may be unusual",
                              hint="pass --delimiter (e.g. --delimiter ';') or check that this is a table")
        raise IngestError(
            path, f"the columns do not match any known export layout (the header has: {shown})",
            hint="name the columns with --customer-col/--date-col/--amount-col (and --order-col), "
            "or write a mapping file and pass --mapping (see `clientfolio import --help`)",
        )
    return det


_ORDER_FIELDS = ("customer_id", "email", "ts", "status", "currency", "consent_marketing", "country", "channel")


def _join_lines(con: duckdb.DuckDBPyConnection, stages: list[Stage]) -> list[str]:
    """Order headers + order lines (a shop database dump): store the lines, each with its order's
    customer and date; lines without an order and orders without lines are rejected."""
    lines = [s for s in stages if s.detection.layout.role == "lines"]
    if not lines:
        return []
    heads = [s for s in stages if s.table == "transactions" and s.has_order_id and s.detection.layout.role in
             ("orders", "complete")]
    if not heads:
        raise IngestError(lines[0].path, "holds order lines without customers or dates",
                          hint="import it together with the orders file in one command, e.g. "
                          "clientfolio import orders.csv order_items.csv")
    cols = ", ".join(_ORDER_FIELDS)
    h_union = " UNION ALL ".join(f"SELECT order_id, __kind, __reason, {cols} FROM {s.stage}" for s in heads)
    l_union = " UNION ALL ".join(f"SELECT order_id FROM {s.stage} WHERE __kind = 'ok'" for s in lines)
    h_names = ", ".join(Path(s.path).name for s in heads)
    l_names = ", ".join(Path(s.path).name for s in lines)
    for s in lines:
        sets = ", ".join(f"{c} = h.{c}" for c in _ORDER_FIELDS)
        con.execute(f"""UPDATE {s.stage} SET {sets} FROM ({h_union}) h
            WHERE h.order_id = {s.stage}.order_id AND h.__kind = 'ok' AND {s.stage}.__kind = 'ok'""")
        con.execute(f"""UPDATE {s.stage} SET __kind = CASE WHEN h.__kind = 'excluded' THEN 'excluded' ELSE 'invalid' END,
            __reason = 'belongs to an order that was not stored: ' || h.__reason
            FROM ({h_union}) h WHERE h.order_id = {s.stage}.order_id AND h.__kind <> 'ok' AND {s.stage}.__kind = 'ok'""")
        con.execute(f"""UPDATE {s.stage} SET __kind = 'invalid', __column = 'order_id', __value = order_id,
            __reason = {lit('order id not found in ' + h_names)}
            WHERE __kind = 'ok' AND order_id NOT IN (SELECT order_id FROM ({h_union}) WHERE order_id IS NOT NULL)""")
        s.grain = "line"
    for s in heads:
        con.execute(f"""UPDATE {s.stage} SET __kind = 'invalid', __column = 'order_id', __value = order_id,
            __reason = {lit('no item rows for this order in ' + l_names)}
            WHERE __kind = 'ok' AND order_id NOT IN (SELECT order_id FROM ({l_union}))""")
        s.stored = False  # its orders are stored as their lines
    return [f"stored the lines of {l_names} with the customer and date of their order in {h_names}"]


def _join_split_exports(con: duckdb.DuckDBPyConnection, stages: list[Stage]) -> list[str]:
    """Join files of one split export (orders + payments/lines + customer map) on their keys."""
    notes: list[str] = _join_lines(con, stages)
    orders = [s for s in stages if s.detection.layout.role == "orders"]
    amounts = [s for s in stages if s.detection.layout.role == "amounts"]
    cmaps = [s for s in stages if s.detection.layout.role == "customer_map"]
    if amounts and not orders:
        raise IngestError(amounts[0].path, "holds amounts per order but no orders file was given with it",
                          hint="import it together with the orders file, e.g. clientfolio import orders.csv payments.csv")
    if orders and not amounts and not notes:
        raise IngestError(orders[0].path, "holds orders without amounts",
                          hint="import it together with its payments or order-items file in one command")
    if not orders or not amounts:
        return notes
    o_union = " UNION ALL ".join(f"SELECT order_id, __kind, __reason FROM {s.stage}" for s in orders)
    a_union = " UNION ALL ".join(f"SELECT order_id, amount FROM {s.stage} WHERE __kind = 'ok'" for s in amounts)
    o_names = ", ".join(Path(s.path).name for s in orders)
    a_names = ", ".join(Path(s.path).name for s in amounts)
    for s in orders:
        con.execute(f"""UPDATE {s.stage} SET amount = a.total
            FROM (SELECT order_id, sum(amount) AS total FROM ({a_union}) GROUP BY order_id) a
            WHERE {s.stage}.order_id = a.order_id AND {s.stage}.__kind = 'ok'""")
        con.execute(f"""UPDATE {s.stage} SET __kind = 'invalid', __column = 'order_id', __value = order_id,
            __reason = {lit('no payment or item rows for this order in ' + a_names)}
            WHERE __kind = 'ok' AND amount IS NULL""")
    for s in amounts:
        con.execute(f"""UPDATE {s.stage} SET __kind = 'invalid', __column = 'order_id', __value = order_id,
            __reason = {lit('order id not found in ' + o_names)}
            WHERE __kind = 'ok' AND order_id NOT IN (SELECT order_id FROM ({o_union}) WHERE order_id IS NOT NULL)""")
    if cmaps:
        m_union = " UNION ALL ".join(f"SELECT customer_id, person_id FROM {s.stage} WHERE __kind = 'ok'" for s in cmaps)
        c_names = ", ".join(Path(s.path).name for s in cmaps)
        for s in orders:
            con.execute(f"""UPDATE {s.stage} SET customer_id = m.person_id
                FROM (SELECT customer_id, min(person_id) AS person_id FROM ({m_union}) GROUP BY 1) m
                WHERE {s.stage}.customer_id = m.customer_id AND {s.stage}.__kind = 'ok'""")
            con.execute(f"""UPDATE {s.stage} SET __kind = 'invalid', __column = 'customer_id', __value = customer_id,
                __reason = {lit('customer id not found in ' + c_names)}
                WHERE __kind = 'ok' AND customer_id NOT IN (SELECT person_id FROM ({m_union}) WHERE person_id IS NOT NULL)""")
        for s in cmaps:
            con.execute(f"UPDATE {s.stage} SET customer_id = person_id WHERE person_id IS NOT NULL")
        notes.append(f"joined {o_names} with {a_names} on order_id and mapped customers through {c_names}")
    else:
        notes.append(f"joined {o_names} with {a_names} on order_id")
    # Payments or items follow their order: not stored when the order is not.
    for s in amounts:
        con.execute(f"""UPDATE {s.stage} SET __kind = CASE WHEN o.__kind = 'excluded' THEN 'excluded' ELSE 'invalid' END,
            __reason = 'belongs to an order that was not stored: ' || o.__reason
            FROM ({o_union}) o WHERE o.order_id = {s.stage}.order_id AND {s.stage}.__kind = 'ok' AND o.__kind <> 'ok'""")
    return notes


def _add_keys(con: duckdb.DuckDBPyConnection, s: Stage, opts: ImportOptions) -> None:
    """Rebuild a stage table with its store key, content hash and a __dup marker, in one pass.

    Only for stages whose keys could not be made while they were built (files joined with others,
    amounts converted with --rates); the others only have rows sharing a key renumbered (`_renumber`).
    """
    lay = s.detection.layout
    ok = OK
    source = lit(opts.source or lay.source)
    if s.table == "transactions" and s.stored:
        # No order ids in the file: one order per row, with a stable id made from its content.
        oid = "order_id" if s.has_order_id else (
            f"CASE WHEN {ok} THEN " + guest_order_id(
                f"CAST(row_number() OVER (PARTITION BY customer_id, email, ts, __part, {ok} ORDER BY __idx) AS VARCHAR)")
            + " END")
        # A line is known by what it is (product, quantity, price, direction, time), so the same line
        # in two overlapping exports is stored once and a later export's version replaces it.
        # Identical lines inside one order of one file are all kept (#1, #2, ...).
        given = "line_no" in {r[0] for r in con.execute(f"DESCRIBE {s.stage}").fetchall()}
        ident = LINE_IDENT
        if given:
            line = "CAST(line_no AS VARCHAR)"
        elif s.grain == "line":
            # Number identical lines only where an order has some (a cheap aggregate decides).
            repeats = con.execute(f"""SELECT count(*) FROM (SELECT 1 FROM {s.stage} WHERE {ok}
                GROUP BY order_id, {ident}, __part HAVING count(*) > 1)""").fetchone()[0]
            k = (f"CAST(row_number() OVER (PARTITION BY order_id, {ident}, __part, {ok} ORDER BY __idx) AS VARCHAR)"
                 if repeats else "'1'")
            line = f"{ident} || '#' || {k}"
        else:
            line = "'1'"
        source_sql = f"(SELECT * REPLACE ({oid} AS order_id) FROM {s.stage})" if not s.has_order_id else s.stage
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {s.stage} AS
            SELECT *, {source} AS source, CASE WHEN {ok} THEN {line} END AS line_key,
                   CASE WHEN {ok} THEN {md5_sql(TX_HASH)} END AS row_hash, NULL::VARCHAR AS __dup
            FROM {source_sql} AS a""")
    elif s.table == "customers":
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {s.stage} AS
            WITH a AS (SELECT * REPLACE (coalesce(customer_id, email) AS customer_id) FROM {s.stage})
            SELECT *, {source} AS source, CASE WHEN {ok} THEN {md5_sql(CU_HASH)} END AS row_hash,
                   NULL::VARCHAR AS __dup FROM a""")
    elif s.table == "events":
        h = md5_sql(EV_HASH)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {s.stage} AS
            SELECT *, {source} AS source, {h} AS row_hash,
                   CASE WHEN {ok} THEN {h} || '-' || CAST(row_number() OVER (PARTITION BY {h}, {ok} ORDER BY __idx) AS VARCHAR)
                   END AS event_id, NULL::VARCHAR AS __dup
            FROM {s.stage}""")
    else:  # marketing spend, or amounts that are folded into their orders
        h = md5_sql(MS_HASH) if s.table == "marketing_spend" else "NULL"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {s.stage} AS
            SELECT *, {h} AS row_hash, NULL::VARCHAR AS __dup FROM {s.stage}""")


def _renumber(con: duckdb.DuckDBPyConnection, s: Stage) -> None:
    """Number the kept rows of a keyed stage that share a key: #1, #2, ... in file order.

    The pass that built the stage numbered every row 1; which rows are kept is settled only now
    (currencies, erasures), and few rows share a key, so only those are rewritten -- giving each
    the number a window over all kept rows would.
    """
    if s.table == "transactions" and s.stored and not s.has_order_id:
        part, new = "customer_id, email, ts, __part", guest_order_id("CAST(k.__n AS VARCHAR)")
        target = "order_id"
    elif s.table == "transactions" and s.stored and s.grain == "line" and "line_no" not in _columns(con, s.stage):
        part, new, target = "order_id, line_key, __part", "left(line_key, length(line_key) - 2) || '#' || CAST(k.__n AS VARCHAR)", "line_key"
    elif s.table == "events":
        part, new, target = "row_hash", "row_hash || '-' || CAST(k.__n AS VARCHAR)", "event_id"
    else:
        return
    cols = [c.strip() for c in part.split(",")]
    on = " AND ".join(f"t.{c} IS NOT DISTINCT FROM g.{c}" for c in cols)
    # Cheap first: the hash of the columns, grouped; the exact comparison only for rows whose hash repeats.
    h = f"hash({part})"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE renumber_{s.file_no} AS
        WITH hs AS (SELECT {h} AS __h FROM {s.stage} WHERE {OK} GROUP BY 1 HAVING count(*) > 1),
        c AS (SELECT __idx, {part} FROM {s.stage} WHERE {OK} AND {h} IN (SELECT __h FROM hs)),
        g AS (SELECT {part} FROM c GROUP BY ALL HAVING count(*) > 1)
        SELECT * FROM (SELECT t.__idx, row_number() OVER (PARTITION BY {', '.join('t.' + c for c in cols)}
                                                         ORDER BY t.__idx) AS __n
                       FROM c AS t SEMI JOIN g ON {on}) WHERE __n > 1""")
    if con.execute(f"SELECT count(*) FROM renumber_{s.file_no}").fetchone()[0]:
        con.execute(f"""UPDATE {s.stage} SET {target} = {new}
            FROM renumber_{s.file_no} AS k WHERE {s.stage}.__idx = k.__idx""")
    con.execute(f"DROP TABLE renumber_{s.file_no}")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """A table's columns and their types, in order."""
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}


_DEDUPE_KEYS = {"transactions": ("source", "order_id", "line_key"), "customers": ("customer_id",),
                "events": ("event_id",), "marketing_spend": ("channel", "period_start", "period_end")}


def _mark_duplicates(con: duckdb.DuckDBPyConnection, stages: list[Stage], opts: ImportOptions) -> None:
    """Give every stage its keys, then mark the rows whose key repeats inside this import (__dup).

    The newest file wins; inside one file a repeated key with other values is a conflict (rejected),
    with the same values a duplicate.
    """
    for s in stages:
        if s.keyed:
            _renumber(con, s)
        else:
            _add_keys(con, s, opts)
    for table, key in _DEDUPE_KEYS.items():
        group = [s for s in stages if s.table == table and s.stored]
        if not group:
            continue
        k_cols = ", ".join(key)
        # Only keys seen more than once need the (sorting) window: a hash aggregate over the keys' 64-bit
        # hash finds the candidates, the exact comparison runs on those rows only.
        hashes = " UNION ALL ".join(f"SELECT hash({k_cols}) AS __h FROM {s.stage} WHERE {OK}" for s in group)
        union = " UNION ALL ".join(
            f"SELECT {s.file_no} AS f, __idx AS r, __row AS shown, row_hash, {k_cols} FROM {s.stage} "
            f"WHERE {OK} AND hash({k_cols}) IN (SELECT __h FROM hs)" for s in group)
        on = " AND ".join(f"u.{c} IS NOT DISTINCT FROM m.{c}" for c in key)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE dups_{table} AS
            WITH hs AS (SELECT __h FROM ({hashes}) GROUP BY 1 HAVING count(*) > 1),
            u AS ({union}),
            m AS (SELECT {k_cols} FROM u GROUP BY {k_cols} HAVING count(*) > 1),
            uu AS (SELECT u.* FROM u SEMI JOIN m ON {on}),
            k AS (SELECT *, first_value(f) OVER w AS kf, first_value(row_hash) OVER w AS kh,
                         first_value(shown) OVER w AS kr, row_number() OVER w AS rn
                  FROM uu WINDOW w AS (PARTITION BY {k_cols} ORDER BY f DESC, r))
            SELECT f, r, CASE WHEN row_hash = kh OR f <> kf OR {lit(table)} = 'customers' THEN 'dup' ELSE 'conflict' END AS kind, kr
            FROM k WHERE rn > 1""")
        if not con.execute(f"SELECT count(*) FROM dups_{table}").fetchone()[0]:
            continue
        for s in group:
            con.execute(f"""UPDATE {s.stage} SET __dup = d.kind,
                __reason = CASE WHEN d.kind = 'conflict' THEN 'the same key appears again with different values (first at row ' || d.kr || '); the first row was kept' END
                FROM dups_{table} d WHERE d.f = {s.file_no} AND d.r = {s.stage}.__idx""")


def _fill_incoming(con: duckdb.DuckDBPyConnection, stages: list[Stage], import_id: int) -> None:
    """Hand the rows to store to the merge as inc_<table> temp tables (store columns + __file).

    A stored file's stage becomes its table's incoming table in place: the rows not to store are
    deleted and the table renamed, so no second copy of the rows is made (at 10M orders two copies
    outgrow the memory cap).  Further files of the same table are appended to it; a stage whose
    columns do not have the store's types (marketing periods are dates) is copied.  Rejects and
    counts must be taken before: the stages are gone afterwards.
    """
    for table in TABLES:
        cols = TABLES[table][0]
        defs = ", ".join(f"{c} {t.replace(' NOT NULL', '').replace('DOUBLE PRECISION', 'DOUBLE')}" for c, t in cols)
        con.execute(f"CREATE OR REPLACE TEMP TABLE inc_{table} ({defs}, __file INTEGER)")
    con.execute("CREATE OR REPLACE TEMP TABLE inc_customers_derived AS SELECT * FROM inc_customers LIMIT 0")
    for table in TABLES:
        group = [s for s in stages if s.table == table and s.stored]
        if not group:
            continue
        want = _columns(con, f"inc_{table}")
        cols = [c for c, _ in TABLES[table][0] if c != "import_id"]
        first = group[0]
        have = _columns(con, first.stage)
        if all(have.get(c) == t for c, t in want.items() if c != "import_id"):
            con.execute(f"DELETE FROM {first.stage} WHERE NOT ({OK} AND __dup IS NULL)")
            con.execute(f"ALTER TABLE {first.stage} ADD COLUMN import_id BIGINT DEFAULT {int(import_id)}")
            con.execute(f"DROP TABLE inc_{table}")
            con.execute(f"ALTER TABLE {first.stage} RENAME TO inc_{table}")
            rest = group[1:]
        else:
            rest = group
        for s in rest:
            have = _columns(con, s.stage)
            sel = ", ".join(c if c in have else f"NULL AS {c}" for c in cols)
            con.execute(f"INSERT INTO inc_{table} ({', '.join(cols)}, import_id, __file) "
                        f"SELECT {sel}, {import_id}, __file FROM {s.stage} WHERE {OK} AND __dup IS NULL")
            con.execute(f"DROP TABLE {s.stage}")


def _write_rejects(con: duckdb.DuckDBPyConnection, stages: list[Stage], dst: Path) -> int:
    """Write every rejected row (invalid, excluded, conflicting) to a CSV; return the count.

    Spreadsheet-safe (formula prefixes neutralised, line breaks quoted) and streamed from the
    staged tables in chunks, so millions of rejected rows never sit in Python at once.
    """
    from clientfolio.core.safecsv import SafeWriter

    dst.parent.mkdir(parents=True, exist_ok=True)
    with SafeWriter(dst, ["file", "row", "column", "value", "reason", "kind"]) as w:
        for s in stages:
            w.writerows([s.path, row, column or "", value or "", reason, "invalid"]
                        for row, column, value, reason in s.raw.rejects)
            # rows the reader took out (exact repeats, repeated header lines): no cell values
            w.writerows([f"{s.path} [sheet {part}]" if part else s.path, row, "", "", reason, kind]
                        for part, row, kind, reason in s.raw.skipped)
            cur = con.execute(
                f"SELECT __part, __row, __column, __value, __reason, CASE WHEN __dup = 'conflict' THEN 'invalid' ELSE __kind END "
                f"FROM {s.stage} WHERE __kind NOT IN ('ok', '{ERASED}') OR __dup = 'conflict' ORDER BY __idx"
            )
            while chunk := cur.fetchmany(_REJECTS_CHUNK):
                w.writerows([f"{s.path} [sheet {part}]" if part else s.path, row, column or "",
                             value if value is not None else "", reason, kind]
                            for part, row, column, value, reason, kind in chunk)
        return w.rows


_REJECTS_CHUNK = 20_000


def import_files(
    paths: Sequence[str | Path],
    store: Store | str | Path | None = None,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
    rejects_dir: str | Path | None = None,
) -> ImportResult:
    """Import one or more export files into a store (see `clientfolio import --help`)."""
    opts = options or ImportOptions()
    own_store = not isinstance(store, Store)
    st = open_store(store) if own_store else store
    report = progress or (lambda msg, frac: None)
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    committed = False
    try:
        con = st.staging()
        bound_memory(con)
        import_id = st.next_import_id()
        stages: list[Stage] = []
        with tempfile.TemporaryDirectory(prefix="clientfolio-import-") as tmp:
            share = 0.7 / max(len(paths), 1)
            for i, p in enumerate(paths, start=1):
                path = Path(p)
                start = (i - 1) * share
                report(f"reading {path.name}", start)
                info = sniff(path, Path(tmp))
                with _watched(con, report, f"reading {path.name}", start, start + share / 2):
                    raw = load(con, info, f"raw_{i}", opts.delimiter, opts.keep_repeated_lines)
                if raw.rows == 0 and not raw.rejects:
                    raise IngestError(path, "has a header but no data rows", hint="export again with a date range that has orders")
                det = _detect(raw, path, opts)
                with _watched(con, report, f"checking {path.name}", start + share / 2, start + share):
                    stage = build_stage(con, raw, det, opts, i, str(path))
                drop_raw(con, raw)  # the stage holds everything needed now
                stage.notes = raw.notes + stage.notes
                stage.sha256 = _file_sha256(path)
                stages.append(stage)
            settle_currencies(con, stages, opts, store_currencies(st))
            with _watched(con, report, "linking and deduplicating", 0.7, 0.8):
                join_notes = _join_split_exports(con, stages)
                skip_erased(con, stages, st)  # customers erased on request are not brought back
                _mark_duplicates(con, stages, opts)

            rdir = Path(rejects_dir) if rejects_dir else st.default_rejects_dir
            final = rdir / f"import-{import_id:04d}.csv"
            tmp_rejects = Path(tmp) / final.name
            n_rejects = _write_rejects(con, stages, tmp_rejects)

            reports: list[FileReport] = []
            for s in stages:
                lay = s.detection.layout
                rep = FileReport(str(s.path), lay.name, lay.title, s.table)
                rep.rows_in = s.raw.rows + len(s.raw.rejects) + len(s.raw.skipped)
                skipped_dups = sum(1 for *_, kind, _r in s.raw.skipped if kind == "duplicate")
                kinds = dict(con.execute(
                    f"SELECT CASE WHEN __dup IS NOT NULL THEN 'dup_' || __dup ELSE __kind END, count(*) "
                    f"FROM {s.stage} GROUP BY 1").fetchall())
                rep.rows_rejected = len(s.raw.rejects) + kinds.get("invalid", 0) + kinds.get("excluded", 0) \
                    + kinds.get("dup_conflict", 0) + len(s.raw.skipped) - skipped_dups
                rep.rows_deduplicated = kinds.get("dup_dup", 0) + skipped_dups
                rep.rows_erased = kinds.get(ERASED, 0)
                for *_, kind, reason in s.raw.skipped:
                    if kind != "duplicate":
                        rep.rejected_by_reason[reason] += 1
                for reason, k in con.execute(
                        f"SELECT __reason, count(*) FROM {s.stage} WHERE __kind NOT IN ('ok', '{ERASED}') OR __dup = 'conflict' "
                        "GROUP BY 1").fetchall():
                    rep.rejected_by_reason[reason] += k
                for _row, _c, _v, reason in s.raw.rejects:
                    rep.rejected_by_reason[reason] += 1
                if s.table == "transactions" and s.stored:
                    g = con.execute(
                        f"SELECT count(*) FILTER (WHERE customer_id IS NOT NULL), "
                        f"count(*) FILTER (WHERE customer_id IS NULL AND email IS NOT NULL), "
                        f"count(*) FILTER (WHERE customer_id IS NULL AND email IS NULL), count(*) FILTER (WHERE is_refund) "
                        f"FROM {s.stage} WHERE __kind = 'ok'").fetchone()
                    rep.identity.update({"by customer id": g[0], "by e-mail": g[1]})
                    rep.guest_rows, rep.refund_rows = g[2], g[3]
                rep.notes = s.notes + (join_notes if lay.role in ("orders", "lines") else [])
                reports.append(rep)

            def log(counts: MergeCounts) -> list[ImportLogRow]:
                rows = []
                finished = datetime.now(timezone.utc).replace(tzinfo=None)
                for s, rep in zip(stages, reports):
                    lay = s.detection.layout
                    if not s.stored:  # folded into the rows of another file
                        rep.rows_new = con.execute(
                            f"SELECT count(*) FROM {s.stage} WHERE __kind = 'ok'").fetchone()[0]
                    else:
                        rep.rows_new = counts.new.get(s.file_no, 0)
                        rep.rows_updated = counts.updated.get(s.file_no, 0)
                        rep.rows_deduplicated += counts.same.get(s.file_no, 0)
                    rep.rows_stored = rep.rows_new + rep.rows_updated
                    if not rep.balanced:
                        raise ClientfolioError(
                            f"internal error: row accounting does not balance for {s.path} "
                            f"({rep.rows_in} in, {rep.rows_stored} stored, {rep.rows_rejected} rejected, "
                            f"{rep.rows_deduplicated} duplicates, {rep.rows_erased} erased on request); "
                            "nothing was imported. Please report this.")
                    rows.append(ImportLogRow(
                        import_id, s.file_no, started, finished, str(s.path), s.sha256,
                        lay.name, s.table, rep.rows_in, rep.rows_stored, rep.rows_new, rep.rows_updated,
                        rep.rows_rejected, rep.rows_deduplicated, str(final) if n_rejects else None,
                        json.dumps({"notes": rep.notes, "rejected": dict(rep.rejected_by_reason),
                                    **({"erased_on_request": rep.rows_erased} if rep.rows_erased else {})})))
                return rows

            tables = sorted({s.table for s in stages})
            # Rejects and counts are taken: a stored file's stage becomes (or joins) its incoming table.
            _fill_incoming(con, stages, import_id)
            with _watched(con, report, "writing to the store", 0.85, 1.0):
                counts = st.apply_import(con, tables, log)
            committed = True
            if n_rejects:  # only once the data is committed, so a failed import leaves no rejects file
                final.parent.mkdir(parents=True, exist_ok=True)
                _move_into_place(tmp_rejects, final)
            _drop_temp(con, stages)
        report("done", 1.0)
        return ImportResult(import_id, reports, final if n_rejects else None, counts.linked,
                            counts.expired_events)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        plain = plain_failure(exc, committed)
        if plain is None:
            raise
        raise plain from None
    finally:
        if own_store:
            st.close()


def _move_into_place(src: Path, dst: Path) -> None:
    """Atomically put `src` at `dst` (copy to a .part file first when they are on different disks)."""
    if src.stat().st_dev == dst.parent.stat().st_dev:
        os.replace(src, dst)
        return
    import shutil

    part = dst.with_suffix(".csv.part")
    shutil.copyfile(src, part)
    os.replace(part, dst)


def _drop_temp(con: duckdb.DuckDBPyConnection, stages: list[Stage]) -> None:
    for s in stages:
        con.execute(f"DROP TABLE IF EXISTS {s.stage}")
        drop_raw(con, s.raw)
    for t in list(TABLES) + ["customers_derived"]:
        con.execute(f"DROP TABLE IF EXISTS inc_{t}; DROP TABLE IF EXISTS dups_{t}")
