"""Turn a staged raw table into canonical rows, marking each row ok, excluded or invalid.

All work is one SQL statement per file inside DuckDB: values are parsed with
`try_cast`-style expressions, so a bad value never stops the import; it marks
its row invalid with the column, the value and a reason a person understands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from clientfolio.core.errors import ClientfolioError, IngestError
from clientfolio.ingest.currencies import ISO_4217
from clientfolio.ingest.dates import (
    date_problem, detect_date_style, scan_zone_column, scan_zones, square_timestamp_sql, timestamp_sql,
)
from clientfolio.ingest.layouts import Detection, norm_header
from clientfolio.ingest.money import code_sql, compatible_sql
from clientfolio.ingest.reader import RawTable, row_numbers_sql
from clientfolio.ingest.sniff import SHEET_COL, SHEET_ROW_COL
from clientfolio.ingest.sqlexpr import (
    MAX_ABS_AMOUNT, boolean, condition, email_value, ident, ident_value, lit, money_marker, number, number_problem,
    text,
)
from clientfolio.ingest.zones import check_timezone

MONEY_COLUMNS = ("unit_price", "cost", "discount", "cost_to_serve", "acquisition_cost", "spend")

# What a stored row's content hash covers (a changed value makes a re-imported row an update).
TX_HASH = ("customer_id", "email", "ts", "amount", "quantity", "unit_price", "product_id", "category",
           "channel", "cost", "discount", "cost_to_serve", "status", "is_refund")
CU_HASH = ("customer_id", "email", "first_seen", "region", "country", "industry", "size",
           "acquisition_channel", "acquisition_cost", "consent_marketing")
EV_HASH = ("customer_id", "email", "ts", "type", "properties")
MS_HASH = ("channel", "period_start", "period_end", "spend")
OK = "__kind = 'ok'"
# Roles whose rows a later step joins with another file's (changing values the keys are made of).
JOINED_ROLES = ("orders", "amounts", "lines", "customer_map")


def md5_sql(cols: tuple[str, ...] | list[str], prefix: str = "") -> str:
    """SQL: the md5 of the columns' text, '\\N' for NULL, joined by '|' (a row's content hash)."""
    parts = ", ".join(f"coalesce(CAST({prefix}{c} AS VARCHAR), '\\N')" for c in cols)
    return f"md5(concat_ws('|', {parts}))"


# A line is known by what it is (product, quantity, price, direction, time): 16 hex digits.
LINE_IDENT = f"substr({md5_sql(('product_id', 'description', 'quantity', 'unit_price', 'sign(amount)', 'ts'))}, 1, 16)"


def guest_order_id(number: str) -> str:
    """SQL: the order id of a row in a file without order ids -- customer, time and `number` (its
    place among the file's rows of the same customer and time)."""
    return f"coalesce(customer_id, email, 'guest') || '@' || strftime(ts, '%Y-%m-%dT%H:%M:%S') || '#' || {number}"


class Why(str):
    """A rejection reason computed per row in SQL (e.g. which convention a value breaks), not a literal."""


# Columns with personal data that are not needed for the analysis and are not stored.
_PII = re.compile(r"(name|street|address|phone|zip|postcode|postal|ipaddress|useragent|card|pan|iban|birth|company)")


@dataclass
class ImportOptions:
    """Settings a user can give for one import (CLI flags / Python keyword arguments)."""

    layout: str | None = None
    mapping: Any = None  # a Layout from a mapping file
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> header overrides
    date_order: str | None = None
    date_format: str | None = None
    timezone: str = "UTC"
    decimal: str | None = None
    delimiter: str | None = None
    source: str | None = None
    allow_no_customer: bool = False
    max_amount: float = MAX_ABS_AMOUNT
    now: datetime | None = None
    keep_repeated_lines: bool = False  # keep exact repeated rows (a till that rings the same item twice)
    currency: str | None = None  # keep only this currency (others are excluded), or convert into it with `rates`
    rates: str | Path | None = None  # CSV currency,rate: convert every amount into one currency

    def __post_init__(self) -> None:
        if self.currency is not None:
            code = str(self.currency).strip().upper()
            if code not in ISO_4217:
                raise ClientfolioError(f"--currency must be an ISO 4217 code such as EUR, USD or GBP, got "
                                       f"{self.currency!r}")
            self.currency = code
        if self.timezone:
            try:
                self.timezone = check_timezone(self.timezone)
            except ValueError as exc:
                raise ClientfolioError(str(exc)) from None
        if self.decimal not in (None, ".", ","):
            raise ClientfolioError(f"--decimal must be '.' or ',', got {self.decimal!r}")


@dataclass
class Stage:
    """One file's canonical rows in a DuckDB temp table, and what was learned on the way."""

    file_no: int
    path: str
    table: str  # canonical target table
    stage: str  # temp table name
    detection: Detection
    raw: RawTable
    grain: str
    has_order_id: bool
    notes: list[str] = field(default_factory=list)
    stored: bool = True  # False when its rows are folded into another file's rows (payments, order headers)
    sha256: str | None = None  # of the input file, kept in the import log
    currency_column: str | None = None  # header that says the currency (rejects file), if any
    # Store key, content hash and __dup were computed in the pass that built the table (numbered '#1';
    # rows sharing a key among the rows finally kept are renumbered afterwards), so no rewrite is needed.
    keyed: bool = False


class _Resolver:
    def __init__(self, raw: RawTable, det: Detection, opts: ImportOptions) -> None:
        self.headers = {norm_header(h): h for h in raw.header}
        self.det = det
        self.opts = opts

    def header(self, name: Any) -> str | None:
        """Actual header for a name or list of alternative names, or None if absent."""
        if isinstance(name, (list, tuple)):
            for n in name:
                h = self.header(n)
                if h is not None:
                    return h
            return None
        if not isinstance(name, str):
            return None
        return self.headers.get(norm_header(name))

    def col(self, name: Any) -> str | None:
        if isinstance(name, str) and name.startswith("@"):  # "@status": whatever column holds the status
            return self.canonical_col(name[1:])
        h = self.header(name)
        return None if h is None else f"src.{ident(h)}"

    def canonical(self, canon: str) -> Any:
        """The source spec for a canonical column: override, layout column, or synonym."""
        if canon in self.opts.columns:
            return self.opts.columns[canon]
        lay = self.det.layout
        if canon in lay.columns:
            return lay.columns[canon]
        return self.det.resolved.get(canon)

    def canonical_col(self, canon: str) -> str | None:
        spec = self.canonical(canon)
        return None if isinstance(spec, dict) else self.col(spec)


def _missing(path: str, what: str, raw: RawTable, hint: str) -> IngestError:
    shown = ", ".join(raw.header[:12]) + (" ..." if len(raw.header) > 12 else "")
    return IngestError(path, f"no {what} column (the header has: {shown})", hint=hint)


def _decimal_for(con: duckdb.DuckDBPyConnection, raw: RawTable, cols: list[str], opts: ImportOptions,
                 layout_decimal: str | None) -> tuple[str, str | None]:
    """The file's decimal separator, from the values that prove one (12,50 or 1.234,50 prove a comma).

    The majority decides; values of the other convention are later rejected with a reason, never
    re-read.  Values such as 1,234 prove nothing: when only those exist, the note says how they were read.
    """
    if opts.decimal:
        return opts.decimal, None
    if layout_decimal:
        return layout_decimal, None
    if not cols:
        return ".", None
    tests = {
        "comma": r"([0-9],([0-9]{1,2}|[0-9]{4,})[^0-9.,]*$)|([0-9]\.[0-9]{3},[0-9])",
        "dot": r"([0-9]\.([0-9]{1,2}|[0-9]{4,})[^0-9.,]*$)|([0-9],[0-9]{3}\.[0-9])",
        "either": r"^[^0-9]*[0-9]{1,3}([,.][0-9]{3})+[^0-9.,]*$",
    }
    union = " UNION ALL ".join(f"SELECT trim({c}) AS v FROM (SELECT * FROM {raw.name} LIMIT 200000)" for c in cols)
    agg = ", ".join(f"count(*) FILTER (WHERE regexp_matches(v, {lit(p)})), "
                    f"arg_min(v, length(v)) FILTER (WHERE regexp_matches(v, {lit(p)}))"
                    for p in tests.values())
    n_comma, ex_comma, n_dot, ex_dot, n_either, ex_either = con.execute(f"SELECT {agg} FROM ({union})").fetchone()
    if n_comma > n_dot:
        note = f"amounts use a decimal comma (e.g. {ex_comma!r})"
        if n_dot:
            note += (f"; {n_dot:,} value(s) written with a decimal point (e.g. {ex_dot!r}) are rejected; "
                     "if the file uses decimal points, import with --decimal .")
        return ",", note
    if n_dot and n_comma:
        return ".", (f"amounts use a decimal point (e.g. {ex_dot!r}); {n_comma:,} value(s) written with a decimal "
                     f"comma (e.g. {ex_comma!r}) are rejected; if the file uses decimal commas, import with --decimal ,")
    if n_either and not n_dot:
        return ".", (f"values such as {ex_either!r} were read with ',' as a thousands separator and '.' as the "
                     "decimal point (nothing in the file shows otherwise); if that is wrong, import with --decimal ,")
    return ".", None


def build_stage(con: duckdb.DuckDBPyConnection, raw: RawTable, det: Detection, opts: ImportOptions,
                file_no: int, path: str) -> Stage:
    """Create temp table `stage_<n>` with canonical columns and a verdict per row."""
    lay = det.layout
    r = _Resolver(raw, det, opts)
    notes: list[str] = []
    table = lay.table
    now = (opts.now or datetime.now(timezone.utc)).replace(tzinfo=None)
    future_limit = now + timedelta(days=2)

    # --- which source columns hold money, dates, ids --------------------------------------------
    amount_spec = dict(lay.amount)
    if not amount_spec and r.canonical("amount") is not None:
        amount_spec = {"column": r.canonical("amount")}
    if "amount" in opts.columns:
        amount_spec = {"column": opts.columns["amount"]}
    money_cols = []
    for key in ("column", "times", "minus", "plus", "split_by"):
        v = amount_spec.get(key)
        for name in [v] if isinstance(v, str) else (v or []):
            c = r.col(name)
            if c:
                money_cols.append(c)
    for canon in ("cost", "discount", "unit_price", "acquisition_cost", "spend", "cost_to_serve"):
        c = r.canonical_col(canon)
        if c:
            money_cols.append(c)
    decimal, dnote = _decimal_for(con, raw, [c.replace("src.", "") for c in money_cols], opts, lay.decimal)
    if dnote:
        notes.append(dnote)

    order_col = r.canonical_col("order_id")
    tz = opts.timezone or lay.timezone or "UTC"
    if lay.timezone and opts.timezone == "UTC":
        tz = lay.timezone

    def ts_expr(canon: str) -> tuple[str | None, str | None]:
        """(sql, raw column) for a timestamp canonical column."""
        spec = r.canonical(canon)
        if spec is None:
            return None, None
        if isinstance(spec, dict):
            d = r.col(spec.get("date"))
            if d is None:
                return None, None
            style = _style(con, raw, d, path, opts, lay, decimal)
            if style.note:
                notes.append(style.note)
            tcol, zcol = r.col(spec.get("time")), r.col(spec.get("timezone"))
            zones = None
            if zcol:
                zones = scan_zone_column(con, raw.name, zcol.replace("src.", ""), path=path,
                                         column_name=_header_of(zcol) or zcol, tz=tz)
                known = "[" + ", ".join(lit(k) for k in zones) + "]"
                checks.append((f"{T(zcol)} IS NOT NULL AND NOT list_contains({known}, {T(zcol)})", T(zcol),
                               "unrecognised time zone (expected e.g. Pacific Time (US & Canada), Europe/Paris "
                               "or +01:00)"))
            if tcol:
                checks.append((f"{T(tcol)} IS NOT NULL AND try_cast({T(tcol)} AS TIME) IS NULL", T(tcol),
                               "cannot read as a time of day (expected e.g. 14:22:31)"))
            return square_timestamp_sql(d, tcol, zcol, style.order, tz, zones), d
        c = r.col(spec)
        if c is None:
            return None, None
        fmt = opts.date_format or lay.date_format
        order = "none"
        if not fmt:
            style = _style(con, raw, c, path, opts, lay, decimal)
            order = style.order
            if style.note:
                notes.append(style.note)
        zones = None if fmt else scan_zones(con, raw.name, c.replace("src.", ""), path=path,
                                             column_name=_header_of(c) or c, tz=tz)
        return timestamp_sql(c, order, tz, fmt, zones), c

    # --- select list ---------------------------------------------------------------------------
    # Each parsed value is computed once, in level p0, under an alias; canonical columns (p1) and
    # the validity checks (p2) refer to the aliases instead of repeating the parsing.
    sel: dict[str, str] = {}
    checks: list[tuple[str, str | None, str]] = []  # (condition on p1 columns, raw-text alias, reason)
    pre: dict[str, str] = {}
    raw_alias: dict[str, str] = {}

    def P(expr: str) -> str:
        for alias, e in pre.items():
            if e == expr:
                return alias
        alias = f"__p{len(pre)}"
        pre[alias] = expr
        return alias

    def T(col: str | None) -> str | None:
        """Alias of a source column's trimmed text (kept for the rejects file)."""
        if col is None:
            return None
        if col not in raw_alias:
            raw_alias[col] = P(text(col))
        return raw_alias[col]

    def add_text(canon: str, fn=text) -> None:
        c = r.canonical_col(canon)
        sel[canon] = fn(c) if c else "NULL::VARCHAR"

    markers: list[tuple[str, str]] = []  # (parsed value alias, currency marker alias) of money columns

    def add_number(canon: str, required: bool = False) -> None:
        c = r.canonical_col(canon)
        if not c:
            sel[canon] = "NULL::DOUBLE"
            return
        sel[canon] = P(number(c, decimal))
        what = "an amount" if canon in MONEY_COLUMNS else f"a {canon.replace('_', ' ')}"
        checks.append((f"{T(c)} IS NOT NULL AND {canon} IS NULL", T(c), Why(number_problem(T(c), decimal, what))))
        checks.append((f"abs({canon}) > {opts.max_amount!r}", T(c),
                       f"the {canon.replace('_', ' ')} is implausibly large (over {opts.max_amount:,.0f}; "
                       "use --max-amount to allow it)"))
        if canon in MONEY_COLUMNS:
            markers.append((sel[canon], P(money_marker(c))))
        else:  # a count or a share: '$5' is no quantity
            checks.append((f"{P(money_marker(c))} IS NOT NULL AND {canon} IS NOT NULL", T(c),
                           f"a currency sign on a {canon.replace('_', ' ')}, which is not an amount"))

    def add_ts(canon: str, required: bool) -> None:
        expr, c = ts_expr(canon)
        if expr is None:
            if required:
                raise _missing(path, f"date ({canon})", raw,
                               "name the date column with --date-col, or use a mapping file (--mapping)")
            sel[canon] = "NULL::TIMESTAMP"
            return
        sel[canon] = P(expr)
        q = ident(canon)
        checks.append((f"{T(c)} IS NULL", T(c), "the date is empty"))
        checks.append((f"{q} IS NULL", T(c), Why(date_problem(T(c)))))
        checks.append((f"{q} > {lit(future_limit.isoformat(sep=' '))}::TIMESTAMP", T(c),
                       f"the date lies in the future (after {now:%Y-%m-%d})"))
        checks.append((f"{q} < TIMESTAMP '1970-01-01'", T(c), "the date is before 1970"))

    currency_col = amount_src = None
    if table == "transactions":
        cust, email = r.canonical_col("customer_id"), r.canonical_col("email")
        partial = lay.role in ("amounts", "lines")  # joined to an orders file that has the customer and date
        if cust is None and email is None and lay.customer_required and not partial and not opts.allow_no_customer:
            raise _missing(path, "customer (customer id or e-mail)", raw,
                           "name it with --customer-col (or --email-col); to import sales without customers "
                           "(revenue only, no customer models) pass --allow-no-customer")
        if cust is None and email is None and not partial:
            notes.append("no customer column: rows are stored as guest sales (revenue only)")
        sel["customer_id"] = ident_value(cust) if cust else "NULL::VARCHAR"
        sel["email"] = email_value(email) if email else "NULL::VARCHAR"
        sel["order_id"] = ident_value(order_col) if order_col else "NULL::VARCHAR"
        if order_col:
            checks.append(("order_id IS NULL", T(order_col), "the order id is empty"))
        add_ts("ts", not partial)
        for canon in ("quantity", "unit_price", "cost", "discount", "cost_to_serve"):
            add_number(canon)
        if r.canonical_col("line_no"):
            add_text("line_no")
        for canon in ("product_id", "description", "category", "channel", "status", "country"):
            add_text(canon)
        c = r.canonical_col("consent_marketing")
        sel["consent_marketing"] = boolean(c) if c else "NULL::BOOLEAN"
        sel["amount"] = _amount_sql(amount_spec, r, decimal, order_col, path, raw, checks, lay.role, P, T, markers)
        currency_col = _currency_sql(r, sel, checks, markers, P, T)
        amount_src = amount_spec.get("column") or (amount_spec.get("times") or [None])[-1]
        checks.append((f"abs(amount) > {opts.max_amount!r}", T(r.col(amount_src)) if amount_src else None,
                       f"the amount is implausibly large (over {opts.max_amount:,.0f}; use --max-amount to allow it)"))
        refund = " OR ".join(condition(c["when"], r.col, decimal) for c in lay.refund) or "FALSE"
        sel["is_refund"] = f"({refund}) OR coalesce({sel['amount']} < 0, FALSE)"
        sel["amount"] = f"CASE WHEN {refund} THEN -abs({sel['amount']}) + 0.0 ELSE {sel['amount']} END"  # no -0
        for rule in lay.set_rules:
            cond = condition(rule["when"], r.col, decimal)
            for k, v in rule.items():
                if k != "when" and k in sel:
                    sel[k] = f"CASE WHEN {cond} THEN {lit(v)} ELSE {sel[k]} END"
    elif table == "customers":
        cust, email = r.canonical_col("customer_id"), r.canonical_col("email")
        person = r.canonical_col("person_id")
        if cust is None and email is None:
            raise _missing(path, "customer id or e-mail", raw, "name it with --customer-col or --email-col")
        sel["customer_id"] = ident_value(cust) if cust else "NULL::VARCHAR"
        sel["person_id"] = ident_value(person) if person else "NULL::VARCHAR"
        sel["email"] = email_value(email) if email else "NULL::VARCHAR"
        checks.append(("coalesce(customer_id, email) IS NULL", T(cust or email),
                       "the customer has neither an id nor an e-mail address"))
        add_ts("first_seen", False)
        for canon in ("region", "country", "industry", "size", "acquisition_channel"):
            add_text(canon)
        add_number("acquisition_cost")
        c = r.canonical_col("consent_marketing")
        sel["consent_marketing"] = boolean(c) if c else "NULL::BOOLEAN"
        if c:
            checks.append((f"{T(c)} IS NOT NULL AND consent_marketing IS NULL", T(c),
                           "consent must be yes/no or true/false"))
    elif table == "events":
        cust, email = r.canonical_col("customer_id"), r.canonical_col("email")
        if cust is None and email is None:
            raise _missing(path, "customer id or e-mail", raw, "name it with --customer-col or --email-col")
        sel["customer_id"] = ident_value(cust) if cust else "NULL::VARCHAR"
        sel["email"] = email_value(email) if email else "NULL::VARCHAR"
        checks.append(("coalesce(customer_id, email) IS NULL", T(cust or email), "the event has no customer"))
        add_ts("ts", True)
        add_text("type", lambda c: f"lower({text(c)})")
        checks.append(("type IS NULL", T(r.canonical_col("type")), "the event type is empty"))
        add_text("properties")
    else:  # marketing_spend
        for canon in ("channel",):
            add_text(canon)
        checks.append(("channel IS NULL", T(r.canonical_col("channel")), "the channel is empty"))
        add_ts("period_start", True)
        add_ts("period_end", True)
        add_number("spend")
        checks.append(("spend IS NULL", T(r.canonical_col("spend")), "the spend is empty"))

    # --- exclusion rules (not errors: rows that are not revenue) ---------------------------------
    excl = [(condition(rule["when"], r.col, decimal), rule["reason"]) for rule in lay.exclude]
    exclude_sql = "CASE " + " ".join(f"WHEN {c} THEN {lit(reason)}" for c, reason in excl) + " END" if excl else "NULL"
    invalid_sql = "CASE " + " ".join(f"WHEN {c} THEN {i}" for i, (c, _, _) in enumerate(checks)) + " END" if checks else "NULL"
    reasons = "CASE __bad " + " ".join(f"WHEN {i} THEN {why if isinstance(why, Why) else lit(why)}"
                                       for i, (_, _, why) in enumerate(checks)) + " END"
    header_of_alias = {alias: _header_of(col) for col, alias in raw_alias.items()}
    check_cols = "[" + ", ".join(lit(header_of_alias.get(a)) for _, a, _ in checks) + "]"
    value_sql = ("CASE __bad " + " ".join(f"WHEN {i} THEN {a}" for i, (_, a, _) in enumerate(checks) if a)
                 + " END") if any(a for _, a, _ in checks) else "NULL::VARCHAR"

    # --- attributes: unmapped, non-personal columns as JSON ------------------------------------
    used = lay.source_columns() | {norm_header(v) for v in opts.columns.values()}
    used |= {norm_header(h) for h in det.resolved.values()}
    internal = {"__row", SHEET_COL, SHEET_ROW_COL}
    extra = [h for h in raw.header if norm_header(h) not in used and h not in internal]
    personal = [h for h in extra if _PII.search(norm_header(h))]
    keep = [h for h in extra if h not in personal][:60]
    if personal:
        notes.append(f"{len(personal)} personal-data column(s) not stored ({', '.join(personal[:4])}"
                     f"{', ...' if len(personal) > 4 else ''})")
    attrs = ("json_object(" + ", ".join(f"{lit(h)}, {text('src.' + ident(h))}" for h in keep) + ")::VARCHAR") if keep else "NULL::VARCHAR"

    # --- order-level fields filled on the first row of an order (Shopify) -----------------------
    src_cols = []
    ffill = {norm_header(c) for c in lay.order_level}
    for h in raw.header:
        q = ident(h)
        if order_col and norm_header(h) in ffill:
            src_cols.append(
                f"first_value(nullif(trim({q}), '') IGNORE NULLS) OVER (PARTITION BY {order_col.replace('src.', '')} "
                f"ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS {q}"
            )
        elif h not in ("__row", SHEET_ROW_COL):
            src_cols.append(q)
    rownum = row_numbers_sql(raw)
    canon_cols = ", ".join(f"{expr} AS {ident(k)}" for k, expr in sel.items())
    name = f"stage_{file_no}"
    part = ident(SHEET_COL) if SHEET_COL in raw.header else "NULL::VARCHAR"
    pass_cols_part = f", src.{ident(SHEET_COL)}" if SHEET_COL in raw.header else ""
    pre_cols = "".join(f", {expr} AS {alias}" for alias, expr in pre.items())
    pass_cols = "".join(f", {alias}" for alias in pre)
    # A window (order-level fields, amounts spread over lines) reorders rows; without one DuckDB keeps
    # the file's order as it is (insertion order is preserved), so the sort of every row is skipped.
    order = " ORDER BY __idx" if " OVER (" in canon_cols + " ".join(src_cols) + pre_cols else ""
    grain = lay.grain if lay.grain and order_col else "line" if (amount_spec.get("split_by") or "times" in amount_spec or r.canonical_col("product_id")
                       or r.canonical_col("quantity")) and order_col else "order"
    replaced, added = _keys_in_pass(table, lay.role, opts, order_col is not None, grain, "line_no" in sel,
                                    lit(opts.source or lay.source)) or ({}, {})
    keyed = bool(added)
    replace = f" REPLACE ({', '.join(f'{e} AS {c}' for c, e in replaced.items())})" if replaced else ""
    extra = "".join(f", {e} AS {c}" for c, e in added.items())
    sql = f"""
    CREATE OR REPLACE TEMP TABLE {name} AS
    WITH src AS (SELECT {rownum} AS __row, rowid AS __idx, {', '.join(src_cols)} FROM {raw.name}),
    p0 AS (SELECT src.*{pre_cols} FROM src),
    p1 AS (
      SELECT __row, __idx, {canon_cols}, {attrs} AS attributes, {exclude_sql} AS __excluded{pass_cols}{pass_cols_part}
      FROM p0 AS src
    ),
    p2 AS (SELECT *, {invalid_sql} AS __bad FROM p1),
    p3 AS (
    SELECT {file_no} AS __file, __row, __idx, {part} AS __part, {', '.join(ident(k) for k in sel)}, attributes,
           CASE WHEN __excluded IS NOT NULL THEN 'excluded' WHEN __bad IS NOT NULL THEN 'invalid' ELSE 'ok' END AS __kind,
           CASE WHEN __excluded IS NOT NULL THEN __excluded ELSE {reasons} END AS __reason,
           CASE WHEN __excluded IS NULL AND __bad IS NOT NULL THEN {check_cols}[__bad + 1] END AS __column,
           CASE WHEN __excluded IS NULL AND __bad IS NOT NULL THEN {value_sql} END AS __value
    FROM p2),
    p4 AS (SELECT *{replace} FROM p3)
    SELECT *{extra} FROM p4{order}
    """
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise IngestError(path, "could not be converted to the canonical tables",
                          hint=f"{str(exc).splitlines()[0][:300]} (please report this with the file's header)") from None
    return Stage(file_no, path, table, name, det, raw, grain, order_col is not None, notes,
                 stored=lay.role != "amounts",
                 currency_column=_header_of(currency_col or (r.col(amount_src) if amount_src else None))
                 if table == "transactions" else None, keyed=keyed)


def _keys_in_pass(table: str, role: str | None, opts: ImportOptions, has_order_id: bool, grain: str,
                  given_line: bool, source: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """(columns replaced, columns added) that give a stage its store key and content hash while it is built.

    The same expressions the engine's key pass uses on a built stage, with every number among equal
    keys taken as 1 (the engine renumbers the few rows that share one).  None when a later step can
    change what the keys are made of: files joined with others, amounts converted with --rates.
    """
    if opts.rates or role in JOINED_ROLES:
        return None
    if table == "transactions":
        first = guest_order_id("'1'")
        replaced = {} if has_order_id else {"order_id": f"CASE WHEN {OK} THEN {first} END"}
        line = ("CAST(line_no AS VARCHAR)" if given_line else f"{LINE_IDENT} || '#1'" if grain == "line"
                else "'1'")
        return replaced, {"source": source, "line_key": f"CASE WHEN {OK} THEN {line} END",
                          "row_hash": f"CASE WHEN {OK} THEN {md5_sql(TX_HASH)} END", "__dup": "NULL::VARCHAR"}
    if table == "customers":
        return ({"customer_id": "coalesce(customer_id, email)"},
                {"source": source, "row_hash": f"CASE WHEN {OK} THEN {md5_sql(CU_HASH)} END",
                 "__dup": "NULL::VARCHAR"})
    if table == "events":
        h = md5_sql(EV_HASH)
        return {}, {"source": source, "row_hash": h, "event_id": f"CASE WHEN {OK} THEN {h} || '-1' END",
                    "__dup": "NULL::VARCHAR"}
    if table == "marketing_spend":
        return {}, {"row_hash": md5_sql(MS_HASH), "__dup": "NULL::VARCHAR"}
    return None


def _header_of(col: str | None) -> str | None:
    if col is None:
        return None
    h = col[4:] if col.startswith("src.") else col
    return h[1:-1].replace('""', '"') if h.startswith('"') else h


def _style(con, raw: RawTable, col: str, path: str, opts: ImportOptions, lay, decimal: str):
    return detect_date_style(
        con, raw.name, col.replace("src.", ""), path=path, column_name=_header_of(col) or col,
        user_order=opts.date_order, layout_order=lay.date_order, decimal_comma=decimal == ",",
    )


def _amount_sql(spec: dict, r: _Resolver, decimal: str, order_col: str | None, path: str, raw: RawTable,
                checks: list, role: str, P, T, markers: list) -> str:
    """Net amount of a row: a column or quantity x price, less refunds, maybe spread over lines."""
    if not spec:
        if role == "orders":
            return "NULL::DOUBLE"  # amounts come from a payments / line-items file
        raise _missing(path, "amount", raw, "name it with --amount-col, or use a mapping file (--mapping)")

    def money(name: str, required: bool) -> str:
        c = r.col(name)
        if c is None:
            if required:
                raise _missing(path, f"amount ('{name}')", raw, "name the amount column with --amount-col")
            return "0"
        v = P(number(c, decimal))
        checks.append((f"{T(c)} IS NOT NULL AND {v} IS NULL", T(c),
                       Why(number_problem(T(c), decimal, "an amount"))))
        markers.append((v, P(money_marker(c))))
        if required:
            checks.append((f"{T(c)} IS NULL", T(c), "the amount is empty"))
        return v if required else f"coalesce({v}, 0)"

    if "times" in spec:
        a, b = spec["times"]
        base = f"({money(a, True)} * {money(b, True)})"
    else:
        base = money(spec["column"], True)
    for m in spec.get("minus") or []:
        base = f"({base} - abs({money(m, False)}))"
    for m in spec.get("plus") or []:
        base = f"({base} + {money(m, False)})"
    extract = spec.get("minus_extract")
    if extract and r.col(extract.get("column")):
        c = r.col(extract["column"])
        parts = f"regexp_extract_all(coalesce({c}, ''), {lit(extract['pattern'])}, 1)"
        values = P(f"list_transform({parts}, lambda x: {number('x', decimal)})")
        checks.append((f"list_contains(list_transform({values}, lambda y: y IS NULL), TRUE)", T(c),
                       f"cannot read a refund amount in this column (expected e.g. amount:12{decimal}50)"))
        base = f"({base} - abs(coalesce(list_sum({values}), 0)))"
    split = spec.get("split_by")
    if split and order_col:
        cols = [r.col(s) for s in split]
        if all(cols):
            w = " * ".join(f"coalesce({P(number(c, decimal))}, 0)" for c in cols)
            part = f"PARTITION BY {order_col}"
            total = f"sum({w}) OVER ({part})"
            base = (f"round(CASE WHEN {total} <> 0 THEN {base} * ({w}) / {total} "
                    f"ELSE {base} / count(*) OVER ({part}) END, 6)")
    return base


def _currency_sql(r: _Resolver, sel: dict, checks: list, markers: list, P, T) -> str | None:
    """Each row's currency: the currency column, else the marker on its amounts ('€', 'USD', '$').

    Shared symbols stay as written ('$') until `money.settle_currencies` sees the whole import.
    Returns the currency column (for the rejects file), if the file has one.
    """
    c = r.canonical_col("currency")
    col_code = P(code_sql(c)) if c else None
    marks = [f"CASE WHEN {v} IS NOT NULL THEN {code_sql(m)} END" for v, m in markers]
    sel["currency"] = f"coalesce({', '.join(([col_code] if col_code else []) + marks + ['NULL::VARCHAR'])})"
    if c:
        checks.append((f"{T(c)} IS NOT NULL AND {col_code} IS NULL", T(c),
                       Why(f"'''' || {T(c)} || ''' is not an ISO 4217 currency code (such as EUR or USD) "
                           "or a currency symbol'")))
    first = col_code or (marks[0] if marks else None)
    for (_, m), mark in zip(markers, marks):
        if mark == first:
            continue
        said = (f"the currency column says ' || {col_code} || '" if col_code
                else f"another amount in the row is marked ' || {first} || '")
        checks.append((f"NOT {compatible_sql(first, mark)}", m,
                       Why(f"'the amount is marked ' || {m} || ', but {said}: one row cannot hold two currencies'")))
    return c
