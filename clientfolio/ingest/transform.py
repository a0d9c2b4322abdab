"""Turn a staged raw table into canonical rows, marking each row ok, excluded or invalid.

All work is one SQL statement per file inside DuckDB: values are parsed with
`try_cast`-style expressions, so a bad value never stops the import; it marks
its row invalid with the column, the value and a reason a person understands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb

from clientfolio.core.errors import IngestError
from clientfolio.ingest.dates import detect_date_style, square_timestamp_sql, timestamp_sql
from clientfolio.ingest.layouts import Detection, norm_header
from clientfolio.ingest.reader import RawTable, row_numbers_sql
from clientfolio.ingest.sniff import SHEET_COL, SHEET_ROW_COL
from clientfolio.ingest.sqlexpr import (
    MAX_ABS_AMOUNT, boolean, condition, email_value, ident, ident_value, lit, number, text,
)

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
    if opts.decimal:
        return opts.decimal, None
    if layout_decimal:
        return layout_decimal, None
    if not cols:
        return ".", None
    parts = " + ".join(
        f"count(*) FILTER (WHERE regexp_matches({c}, '[0-9],[0-9]{{1,2}}[^0-9]*$'))" for c in cols
    )
    dots = " + ".join(f"count(*) FILTER (WHERE regexp_matches({c}, '[0-9]\\.[0-9]{{1,2}}[^0-9]*$'))" for c in cols)
    euro = " + ".join(f"count(*) FILTER (WHERE regexp_matches({c}, '[0-9]\\.[0-9]{{3}},[0-9]'))" for c in cols)
    n_comma, n_dot, n_euro = con.execute(
        f"SELECT {parts}, {dots}, {euro} FROM (SELECT * FROM {raw.name} LIMIT 200000) AS src"
    ).fetchone()
    if n_euro or (n_comma and not n_dot):
        return ",", "amounts use a decimal comma (e.g. 2,55)"
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
            return square_timestamp_sql(d, r.col(spec.get("time")), r.col(spec.get("timezone")), style.order, tz), d
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
        return timestamp_sql(c, order, tz, fmt), c

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

    def add_number(canon: str, required: bool = False) -> None:
        c = r.canonical_col(canon)
        if not c:
            sel[canon] = "NULL::DOUBLE"
            return
        sel[canon] = P(number(c, decimal))
        checks.append((f"{T(c)} IS NOT NULL AND {canon} IS NULL", T(c),
                       f"cannot read as a number{' (decimal comma)' if decimal == ',' else ''}"))

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
        checks.append((f"{q} IS NULL", T(c),
                       "cannot read as a date (expected e.g. 2024-03-05, 05/03/2024 or 2024-03-05 14:22:31+01:00)"))
        checks.append((f"{q} > {lit(future_limit.isoformat(sep=' '))}::TIMESTAMP", T(c),
                       f"the date lies in the future (after {now:%Y-%m-%d})"))
        checks.append((f"{q} < TIMESTAMP '1970-01-01'", T(c), "the date is before 1970"))

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
        for canon in ("product_id", "description", "category", "channel", "currency", "status", "country"):
            add_text(canon)
        c = r.canonical_col("consent_marketing")
        sel["consent_marketing"] = boolean(c) if c else "NULL::BOOLEAN"
        sel["amount"] = _amount_sql(amount_spec, r, decimal, order_col, path, raw, checks, lay.role, P, T)
        amount_src = amount_spec.get("column") or (amount_spec.get("times") or [None])[-1]
        checks.append((f"abs(amount) > {opts.max_amount!r}", T(r.col(amount_src)) if amount_src else None,
                       f"the amount is implausibly large (over {opts.max_amount:,.0f}; use --max-amount to allow it)"))
        refund = " OR ".join(condition(c["when"], r.col, decimal) for c in lay.refund) or "FALSE"
        sel["is_refund"] = f"({refund}) OR coalesce({sel['amount']} < 0, FALSE)"
        sel["amount"] = f"CASE WHEN {refund} THEN -abs({sel['amount']}) ELSE {sel['amount']} END"
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
    reasons = "[" + ", ".join(lit(reason) for _, _, reason in checks) + "]"
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
    sql = f"""
    CREATE OR REPLACE TEMP TABLE {name} AS
    WITH src AS (SELECT {rownum} AS __row, rowid AS __idx, {', '.join(src_cols)} FROM {raw.name}),
    p0 AS (SELECT src.*{pre_cols} FROM src),
    p1 AS (
      SELECT __row, __idx, {canon_cols}, {attrs} AS attributes, {exclude_sql} AS __excluded{pass_cols}{pass_cols_part}
      FROM p0 AS src
    ),
    p2 AS (SELECT *, {invalid_sql} AS __bad FROM p1)
    SELECT {file_no} AS __file, __row, __idx, {part} AS __part, {', '.join(ident(k) for k in sel)}, attributes,
           CASE WHEN __excluded IS NOT NULL THEN 'excluded' WHEN __bad IS NOT NULL THEN 'invalid' ELSE 'ok' END AS __kind,
           CASE WHEN __excluded IS NOT NULL THEN __excluded ELSE {reasons}[__bad + 1] END AS __reason,
           CASE WHEN __excluded IS NULL AND __bad IS NOT NULL THEN {check_cols}[__bad + 1] END AS __column,
           CASE WHEN __excluded IS NULL AND __bad IS NOT NULL THEN {value_sql} END AS __value
    FROM p2 ORDER BY __idx
    """
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise IngestError(path, "could not be converted to the canonical tables",
                          hint=f"{str(exc).splitlines()[0][:300]} (please report this with the file's header)") from None
    grain = lay.grain if lay.grain and order_col else "line" if (amount_spec.get("split_by") or "times" in amount_spec or r.canonical_col("product_id")
                       or r.canonical_col("quantity")) and order_col else "order"
    return Stage(file_no, path, table, name, det, raw, grain, order_col is not None, notes,
                 stored=lay.role != "amounts")


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
                checks: list, role: str, P, T) -> str:
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
                       f"cannot read as an amount{' (decimal comma)' if decimal == ',' else ''}"))
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
        base = f"({base} - abs(coalesce(list_sum(list_transform({parts}, lambda x: try_cast(x AS DOUBLE))), 0)))"
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

