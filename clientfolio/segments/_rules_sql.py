"""Rule segments, part 2: the checked tree as one parameterised query, DuckDB or PostgreSQL.

Nothing a user wrote is ever pasted into the SQL text:

- every value (numbers, strings, dates, segment names, as_of, window bounds, the
  case-folding tables) is a bound parameter (``?`` for DuckDB, ``%s`` for psycopg);
- field names are emitted only after they are found in the schema (the whitelist)
  and always as quoted identifiers (``"a""b"``; ``%`` doubled for psycopg);
- table and column names given by the caller are quoted identifiers too.

The only literals in the text are this module's own (``0``, ``FALSE``, ``':'``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from clientfolio.segments._rules_ast import (
    FOLD_FROM,
    FOLD_TO,
    Cond,
    Group,
    Node,
    Not,
    RelDate,
    RuleError,
    Segment,
    Window,
    walk,
)

Dialect = Literal["duckdb", "postgresql"]
SQLTYPE = {"number": "DOUBLE PRECISION", "string": "VARCHAR", "bool": "BOOLEAN", "date": "DATE"}
WIN_CTE = "clientfolio_rule_windows"
MATCH_CTE = "clientfolio_rule_matches"
_CMP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "before": "<", "after": ">"}


@dataclass(frozen=True)
class TxSpec:
    """Which columns of the transactions table the window features read.

    ``order_key``: the column(s) identifying an order (distinct orders are counted); empty:
    every non-refund row is one order.  ``refund``: a boolean column marking refunds
    (they are not orders, but their amounts count in spend); None: no refunds.
    """

    order_key: tuple[str, ...] = ()
    refund: str | None = "is_refund"
    customer_id: str = "customer_id"
    ts: str = "ts"
    amount: str = "amount"


def windows_of(segments: Sequence[Segment]) -> list[Window]:
    """The distinct windows the rules use, in document order."""
    seen: dict[Window, None] = {}
    for seg in segments:
        for c in walk(seg.when):
            if c.window is not None:
                seen.setdefault(c.window)
    return list(seen)


def resolve(value: Any, as_of: dt.date) -> Any:
    if isinstance(value, RelDate):
        return value.resolve(as_of)
    if isinstance(value, tuple):
        return tuple(resolve(v, as_of) for v in value)
    return value


class _Sql:
    """Builds the text left to right; every bind() appends its parameter in text order."""

    def __init__(self, dialect: Dialect, schema: dict[str, str], as_of: dt.date, windows: list[Window]) -> None:
        if dialect not in ("duckdb", "postgresql"):
            raise RuleError(f"dialect must be 'duckdb' or 'postgresql', got {dialect!r}")
        self.dialect = dialect
        self.placeholder = "?" if dialect == "duckdb" else "%s"
        self.schema = schema
        self.as_of = as_of
        self.windows = {w: f"w{i}" for i, w in enumerate(windows)}
        self.params: list[Any] = []

    def ident(self, name: str) -> str:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise RuleError(f"{name!r} is not a usable SQL name")
        quoted = '"' + name.replace('"', '""') + '"'
        return quoted.replace("%", "%%") if self.dialect == "postgresql" else quoted

    def table(self, name: str | Sequence[str]) -> str:
        parts = name.split(".") if isinstance(name, str) else list(name)
        if any(p.lower() in (WIN_CTE, MATCH_CTE) for p in parts):
            raise RuleError(f"table name {name!r} clashes with the query's own names")
        return ".".join(self.ident(p) for p in parts)

    def bind(self, value: Any, sqltype: str) -> str:
        self.params.append(value)
        return f"CAST({self.placeholder} AS {sqltype})"

    def field(self, name: str) -> str:
        if name not in self.schema:  # the whitelist: checked again right where a name is emitted
            raise RuleError(f"field {name!r} is not in the schema")
        return "f." + self.ident(name)

    # ------------------------------------------------------------------ conditions
    def node(self, node: Node) -> str:
        if isinstance(node, Group):
            joiner = " AND " if node.op == "all" else " OR "
            return "(" + joiner.join(self.node(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item)})"
        return self.cond(node)

    def fold(self, subject: str) -> str:
        return f"translate({subject}, {self.bind(FOLD_FROM, 'VARCHAR')}, {self.bind(FOLD_TO, 'VARCHAR')})"

    def cond(self, c: Cond) -> str:
        if c.window is not None:
            subject = f"coalesce({WIN_CTE}.{self.windows[c.window]}, 0)"
        elif c.ftype == "date":
            subject = f"CAST({self.field(c.field)} AS DATE)"
        else:
            subject = self.field(c.field)
        typ = SQLTYPE[c.ftype or "number"]
        value = resolve(c.value, self.as_of)
        op = c.op
        if op == "is_null":
            return f"({subject} IS {'' if value else 'NOT '}NULL)"
        if op == "is":
            return f"({subject} = {self.bind(value, 'BOOLEAN')})"
        if op in _CMP:
            t = "DATE" if op in ("before", "after") else typ
            return f"({subject} {_CMP[op]} {self.bind(value, t)})"
        if op == "between":
            return f"({subject} BETWEEN {self.bind(value[0], typ)} AND {self.bind(value[1], typ)})"
        if op in ("in", "not_in"):
            items = ", ".join(self.bind(v, typ) for v in value)
            return f"({subject} {'NOT ' if op == 'not_in' else ''}IN ({items}))"
        if op == "contains":
            return f"(strpos({self.fold(subject)}, {self.bind(value, 'VARCHAR')}) > 0)"
        if op in ("starts_with", "ends_with"):
            side = "left" if op == "starts_with" else "right"
            return (f"({side}({self.fold(subject)}, {self.bind(len(value), 'INTEGER')}) = "
                    f"{self.bind(value, 'VARCHAR')})")
        raise RuleError(f"operator {op!r} cannot be compiled")  # unreachable: the checker refuses it

    # ------------------------------------------------------------------ the query
    def window_cte(self, transactions_table: str | Sequence[str], tx: TxSpec) -> str:
        t = {k: "t." + self.ident(getattr(tx, k)) for k in ("customer_id", "ts", "amount")}
        not_refund = f" AND NOT coalesce(t.{self.ident(tx.refund)}, FALSE)" if tx.refund else ""
        if not tx.order_key:
            key = None
        else:
            keys = [f"CAST(t.{self.ident(k)} AS VARCHAR)" for k in tx.order_key]
            # length-prefixed, so that distinct key tuples give distinct texts; NULL if any part is NULL
            key = keys[0] if len(keys) == 1 else " || ':' || ".join(f"CAST(length({k}) AS VARCHAR) || ':' || {k}"
                                                                    for k in keys)
        cols = []
        for w, alias in self.windows.items():
            start = self.bind(w.bounds(self.as_of)[0], "TIMESTAMP")
            if w.kind == "spend":
                cols.append(f"sum(CASE WHEN {t['ts']} >= {start} THEN {t['amount']} END) AS {alias}")
            elif key is None:
                cols.append(f"sum(CASE WHEN {t['ts']} >= {start}{not_refund} THEN 1 ELSE 0 END) AS {alias}")
            else:
                cols.append(f"count(DISTINCT CASE WHEN {t['ts']} >= {start}{not_refund} THEN {key} END) AS {alias}")
        first = min(w.bounds(self.as_of)[0] for w in self.windows)
        end = next(iter(self.windows)).bounds(self.as_of)[1]
        return (f"{WIN_CTE} AS (\n  SELECT CAST({t['customer_id']} AS VARCHAR) AS customer_id, {', '.join(cols)}\n"
                f"  FROM {self.table(transactions_table)} AS t\n"
                f"  WHERE {t['customer_id']} IS NOT NULL AND {t['ts']} >= {self.bind(first, 'TIMESTAMP')} "
                f"AND {t['ts']} < {self.bind(end, 'TIMESTAMP')}\n"
                f"  GROUP BY {t['customer_id']}\n)")


def compile_rules(
    segments: Sequence[Segment],
    *,
    exclusive: bool,
    schema: dict[str, str],
    dialect: Dialect,
    features_table: str | Sequence[str],
    transactions_table: str | Sequence[str],
    as_of: dt.date,
    tx: TxSpec,
    customer_id: str = "customer_id",
) -> tuple[str, list[Any]]:
    """(sql, params) returning membership rows (customer_id, segment_kind, segment, as_of)."""
    windows = windows_of(segments)
    q = _Sql(dialect, schema, as_of, windows)
    ctes = [q.window_cte(transactions_table, tx)] if windows else []
    cid = "f." + q.ident(customer_id)
    flags = ", ".join(f"{q.node(seg.when)} AS s{i}" for i, seg in enumerate(segments))
    join = f"\n  LEFT JOIN {WIN_CTE} ON {WIN_CTE}.customer_id = CAST({cid} AS VARCHAR)" if windows else ""
    ctes.append(f"{MATCH_CTE} AS (\n  SELECT CAST({cid} AS VARCHAR) AS customer_id, {flags}\n"
                f"  FROM {q.table(features_table)} AS f{join}\n  WHERE {cid} IS NOT NULL\n)")
    head = "WITH " + ",\n".join(ctes) + "\n"
    if exclusive:
        kind = q.bind("rules", "VARCHAR")
        names = " ".join(f"WHEN {i} THEN {q.bind(seg.name, 'VARCHAR')}" for i, seg in enumerate(segments))
        first = " ".join(f"WHEN s{i} THEN {i}" for i in range(len(segments)))
        body = (f"SELECT customer_id, {kind} AS segment_kind, CASE k {names} END AS segment, "
                f"{q.bind(as_of, 'DATE')} AS as_of\n"
                f"FROM (SELECT customer_id, CASE {first} END AS k FROM {MATCH_CTE}) AS u\n"
                f"WHERE k IS NOT NULL ORDER BY k, customer_id")
    else:
        parts = [f"  SELECT customer_id, {q.bind('rules', 'VARCHAR')} AS segment_kind, "
                 f"{q.bind(seg.name, 'VARCHAR')} AS segment, {q.bind(as_of, 'DATE')} AS as_of, {i} AS k "
                 f"FROM {MATCH_CTE} WHERE s{i}" for i, seg in enumerate(segments)]
        body = ("SELECT customer_id, segment_kind, segment, as_of FROM (\n" + "\n  UNION ALL\n".join(parts)
                + "\n) AS u ORDER BY k, customer_id")
    return head + body, q.params


def columns_probe(dialect: Dialect, table: str | Sequence[str]) -> tuple[str, list[Any]]:
    """A query returning no rows but the columns of `table` (to see which optional ones exist)."""
    q = _Sql(dialect, {}, dt.date.today(), [])
    return f"SELECT * FROM {q.table(table)} AS t WHERE 1 = {q.bind(0, 'INTEGER')}", q.params
