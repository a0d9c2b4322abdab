"""User-defined rule segments: a small declarative language, compiled safely, evaluated anywhere.

A rule file (YAML or JSON, same structure) names segments and the condition a customer's
features must meet::

    exclusive: false          # true: first matching segment wins (file order); default: overlap
    segments:
      - name: VIP at risk
        description: high value customers who are slipping      # optional
        when:
          all:
            - {field: clv, gt: 500}
            - {field: p_alive, lt: 0.5}
            - not: {field: region, in: [north, south]}
            - any:
                - {field: orders, gte: 5}
                - {field: email, contains: "@example.com"}
            - {orders_in_last: 30 days, gte: 2}
            - {spend_in_last: 90 days, gt: 100}
            - {field: last_purchase, before: 60 days ago}
            - {field: consent_marketing, is: true}

Operators, by field type (from a schema: field -> number | string | bool | date)

- number: eq, ne, gt, gte, lt, lte, between [low, high] (inclusive), in, not_in, is_null
- string: eq, ne, in, not_in (exact, case-sensitive); contains, starts_with, ends_with
  (case-insensitive, with one fixed case-folding table for Latin, Greek and Cyrillic
  letters, so that DuckDB, PostgreSQL under any locale and Python agree); is_null
- bool: is (true/false), eq, ne, is_null
- date: before / after an ISO date, ``today`` or ``N days|weeks|months ago`` (relative to
  as_of), and eq, ne, gt, gte, lt, lte, between, in, not_in with the same values; dates are
  compared by day (timestamps are cut to their UTC day)
- ``orders_in_last`` / ``spend_in_last`` ``N days|weeks|months``: the N days (weeks, calendar
  months) ending on the as_of day, which is included; transactions after as_of are ignored.
  Orders are distinct order ids (``source`` + ``order_id`` where those columns exist, else one
  row = one order) excluding refund rows; spend is the net sum of ``amount`` (refunds count,
  negative).  Both are 0, never missing, for a customer without transactions.
- combinators: ``all: [...]``, ``any: [...]`` (non-empty), ``not: {...}``

Missing values follow SQL's three-valued logic in every evaluator: a comparison with a
missing value is UNKNOWN, ``all``/``any``/``not`` combine TRUE/FALSE/UNKNOWN as SQL's
AND/OR/NOT do, and a segment matches only when its condition is TRUE.  Hence ``ne``,
``not_in`` and ``not: {...}`` do not match a customer whose value is missing; write
``any: [{field: x, is_null: true}, ...]`` to include them.  ``is_null`` is never UNKNOWN.
A missing key in :meth:`RuleSet.evaluate_one`'s dict and NaN are missing values.

Safety: the rules become one parameterised query (see ``_rules_sql``).  Values are always
bound parameters; field names reach the SQL only after being found in the schema and
quoted as identifiers.  Values may not contain NUL (PostgreSQL cannot store it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.segments._membership import COLUMNS
from clientfolio.segments._rules_ast import RuleError, Segment, walk
from clientfolio.segments._rules_eval import (
    evaluate_node,
    is_missing,
    normalize,
    normalize_column,
    to_utc_naive,
    window_values,
)
from clientfolio.segments._rules_load import infer_schema, normalize_schema, read_document
from clientfolio.segments._rules_parse import Checker
from clientfolio.segments._rules_sql import Dialect, TxSpec, columns_probe, compile_rules, windows_of

__all__ = ["RuleError", "RuleSet", "load_rules"]

OrderKey = str | Sequence[str] | None


def _as_of(value: Any) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        ts = to_utc_naive(value)
    except SchemaError:
        ts = None
    if ts is None:
        raise RuleError(f"as_of: cannot read {value!r} as a date; use e.g. '2024-06-30'")
    return ts.date()


def _cid(x: Any) -> str | None:
    """A customer id as text (1 and 1.0 both read as '1')."""
    if is_missing(x):
        return None
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _tx_spec(columns: Sequence[str], order_key: OrderKey | Literal["auto"]) -> TxSpec:
    if isinstance(order_key, str) and order_key == "auto":
        key = tuple(c for c in ("source", "order_id") if c in columns)
    elif order_key is None:
        key = ()
    else:
        key = (order_key,) if isinstance(order_key, str) else tuple(order_key)
    return TxSpec(order_key=key, refund="is_refund" if "is_refund" in columns else None)


class RuleSet:
    """Checked rule segments; build one with :func:`load_rules` or :meth:`RuleSet.from_yaml`."""

    def __init__(self, document: Mapping[str, Any], *, schema: Any = None, source: str | None = None) -> None:
        self.schema: dict[str, str] | None = normalize_schema(schema) if schema is not None else None
        self.source = source
        self._document = document
        checker = Checker(self.schema)
        segments, exclusive = checker.document(document)
        if checker.problems:
            raise RuleError(checker.problems, source)
        self.segments: tuple[Segment, ...] = tuple(segments)
        self.exclusive: bool = exclusive
        self.windows = windows_of(self.segments)
        self.fields: list[str] = list(dict.fromkeys(c.field for s in self.segments for c in walk(s.when) if c.field))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_yaml(cls, text_or_path: str | Path | bytes, schema: Any = None) -> RuleSet:
        """From YAML or JSON text, or a path to a .yaml/.yml/.json file."""
        doc, name = read_document(text_or_path)
        return cls(doc, schema=schema, source=name)

    from_json = from_yaml

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], schema: Any = None) -> RuleSet:
        return cls(document, schema=schema)

    def with_schema(self, schema: Any) -> RuleSet:
        """The same rules checked against `schema` (a mapping field -> type, or a DataFrame)."""
        return RuleSet(self._document, schema=schema, source=self.source)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def to_dict(self) -> Mapping[str, Any]:
        return self._document

    def __repr__(self) -> str:
        mode = "exclusive" if self.exclusive else "overlapping"
        return f"RuleSet({self.names!r}, {mode}, schema={'set' if self.schema else 'none'})"

    def _typed(self, what: str) -> None:
        if self.schema is None:
            raise RuleError(f"{what} needs the field types: load the rules with schema={{field: type}} "
                            "(or a DataFrame), or call .with_schema(...)", self.source)

    # ------------------------------------------------------------------ SQL
    def compile(
        self,
        dialect: Dialect = "duckdb",
        *,
        features_table: str | Sequence[str] = "customer_features",
        transactions_table: str | Sequence[str] = "transactions",
        as_of: Any = None,
        order_key: OrderKey = None,
        refund_column: str | None = "is_refund",
        customer_id: str = "customer_id",
    ) -> tuple[str, list[Any]]:
        """``(sql, params)`` returning membership rows ``(customer_id, segment_kind, segment, as_of)``.

        Parameters
        ----------
        dialect
            ``"duckdb"`` (``?`` placeholders) or ``"postgresql"`` (psycopg ``%s``).
        features_table, transactions_table
            Table or view names (``"schema.table"`` or a tuple of parts), quoted as identifiers.
            The transactions table is read only when a rule uses a window.
        as_of
            The evaluation date (default: today, UTC); windows and ``N days ago`` count back from it.
        order_key, refund_column
            Column(s) identifying an order (None: each non-refund row is an order) and the
            boolean refund flag (None: no refunds).
        """
        self._typed("compile")
        tx = TxSpec(order_key=_tx_spec([], order_key).order_key, refund=refund_column)
        return compile_rules(self.segments, exclusive=self.exclusive, schema=self.schema, dialect=dialect,
                             features_table=features_table, transactions_table=transactions_table,
                             as_of=_as_of(as_of), tx=tx, customer_id=customer_id)

    # ------------------------------------------------------------------ evaluation
    def evaluate_one(
        self,
        features: Mapping[str, Any],
        transactions: Sequence[Mapping[str, Any]] | pd.DataFrame | None = None,
        *,
        as_of: Any = None,
        order_key: OrderKey | Literal["auto"] = "auto",
    ) -> list[str]:
        """Names of the segments one customer is in (file order; at most one if exclusive).

        `transactions` are this customer's rows (``ts``, ``amount``, optional ``is_refund``,
        ``order_id``, ``source``); rows whose ``customer_id`` differs from the features'
        one are ignored.  Same semantics as the SQL, including missing values.
        """
        self._typed("evaluate_one")
        day = _as_of(as_of)
        row = {f: normalize(self.schema[f], features.get(f), f) for f in self.fields}
        wins = {}
        if self.windows:
            records = (transactions.to_dict("records") if isinstance(transactions, pd.DataFrame)
                       else list(transactions or []))
            columns = list(dict.fromkeys(k for r in records for k in r))
            who = _cid(features.get("customer_id"))
            if who is not None:
                records = [r for r in records if "customer_id" not in r or _cid(r["customer_id"]) == who]
            wins = window_values(self.windows, records, day, _tx_spec(columns, order_key))
        matched = [s.name for s in self.segments if evaluate_node(s.when, row, wins, day) is True]
        return matched[:1] if self.exclusive else matched

    def evaluate(
        self,
        features: pd.DataFrame,
        transactions: pd.DataFrame | None = None,
        *,
        as_of: Any = None,
        order_key: OrderKey | Literal["auto"] = "auto",
    ) -> pd.DataFrame:
        """Memberships of every customer in `features` (one row per customer and segment).

        Runs the compiled SQL on an in-memory DuckDB with the frames registered.  Without a
        schema, the field types are inferred from `features`' dtypes.
        """
        rs = self if self.schema is not None else self.with_schema(infer_schema(features))
        day = _as_of(as_of)
        if "customer_id" not in features.columns:
            raise SchemaError(f"evaluate: the features DataFrame needs a customer_id column; it has {list(features.columns)}")
        missing = [f for f in rs.fields if f not in features.columns]
        if missing:
            raise SchemaError(f"evaluate: the features DataFrame lacks column(s) {missing} used by the rules")
        feat = {"customer_id": pd.Series([_cid(x) for x in features["customer_id"].tolist()], dtype="string")}
        for f in rs.fields:
            if f != "customer_id":
                feat[f] = normalize_column(rs.schema[f], features[f], f).reset_index(drop=True)
        con = duckdb.connect()
        try:
            con.register("customer_features", pd.DataFrame(feat))
            columns: list[str] = []
            if rs.windows:
                tx_frame = _transactions_frame(transactions)
                columns = list(tx_frame.columns)
                con.register("transactions", tx_frame)
            sql, params = compile_rules(rs.segments, exclusive=rs.exclusive, schema=rs.schema, dialect="duckdb",
                                        features_table="customer_features", transactions_table="transactions",
                                        as_of=day, tx=_tx_spec(columns, order_key))
            out = con.execute(sql, params).df()
        finally:
            con.close()
        return rs._memberships(out, day)

    def evaluate_store(
        self,
        con_or_store: Any,
        *,
        features_table: str | Sequence[str] = "customer_features",
        transactions_table: str | Sequence[str] = "transactions",
        as_of: Any = None,
        order_key: OrderKey | Literal["auto"] = "auto",
    ) -> pd.DataFrame:
        """Memberships computed where the data lives.

        `con_or_store` is a DuckDB connection, a psycopg connection, or an object with
        ``.query(sql, params) -> DataFrame`` and a ``kind`` of ``"duckdb"``/``"postgresql"``
        (a :class:`clientfolio.store.Store`).  The query is compiled for that dialect.
        """
        self._typed("evaluate_store")
        dialect, run, via_query = _runner(con_or_store)
        day = _as_of(as_of)
        columns: list[str] = []
        if self.windows:  # which optional columns (is_refund, source, order_id) the table has
            columns = list(run(*columns_probe(dialect, transactions_table)).columns)
        sql, params = compile_rules(self.segments, exclusive=self.exclusive, schema=self.schema, dialect=dialect,
                                    features_table=features_table, transactions_table=transactions_table,
                                    as_of=day, tx=_tx_spec(columns, order_key))
        if via_query and dialect == "postgresql" and "?" in sql:
            raise RuleError("a field or table name contains '?', which Store.query turns into a placeholder; "
                            "pass the psycopg connection itself to evaluate_store")
        return self._memberships(run(sql, params), day)

    def _memberships(self, out: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
        order = {name: i for i, name in enumerate(self.names)}
        frame = pd.DataFrame({
            "customer_id": out["customer_id"].astype("string").to_numpy() if len(out) else pd.array([], dtype="string"),
            "segment_kind": "rules",
            "segment": out["segment"].astype("string").to_numpy() if len(out) else pd.array([], dtype="string"),
        })
        frame["as_of"] = pd.Series(pd.Timestamp(as_of), index=frame.index, dtype="datetime64[us]")
        frame["segment_kind"] = frame["segment_kind"].astype("string")
        rank = frame["segment"].map(order)
        frame = frame.assign(_rank=rank).sort_values(["_rank", "customer_id"], kind="stable").drop(columns="_rank")
        return frame[COLUMNS].reset_index(drop=True)


def _transactions_frame(transactions: pd.DataFrame | None) -> pd.DataFrame:
    """The transactions columns the window features read, typed for DuckDB."""
    if transactions is None:
        raise SchemaError("evaluate: the rules use orders_in_last / spend_in_last; pass the transactions DataFrame")
    need = [c for c in ("customer_id", "ts", "amount") if c not in transactions.columns]
    if need:
        raise SchemaError(f"evaluate: the transactions DataFrame lacks column(s) {need}; it has {list(transactions.columns)}")
    ts = transactions["ts"]
    if pd.api.types.is_datetime64_any_dtype(ts.dtype):
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        ts = ts.astype("datetime64[us]")
    else:
        ts = pd.Series([to_utc_naive(x) for x in ts.tolist()], dtype="datetime64[us]")
    frame = pd.DataFrame({
        "customer_id": pd.Series([_cid(x) for x in transactions["customer_id"].tolist()], dtype="string"),
        "ts": ts.reset_index(drop=True),
        "amount": pd.to_numeric(transactions["amount"], errors="raise").astype("float64").reset_index(drop=True),
    })
    if "is_refund" in transactions.columns:
        frame["is_refund"] = normalize_column("bool", transactions["is_refund"], "is_refund").reset_index(drop=True)
    for c in ("source", "order_id"):
        if c in transactions.columns:
            frame[c] = transactions[c].reset_index(drop=True)
    return frame


def _runner(target: Any):
    """(dialect, run(sql, params) -> DataFrame, goes through Store.query)."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        return "duckdb", lambda sql, params: target.execute(sql, params).df(), False
    if hasattr(target, "query") and callable(target.query):
        kind = getattr(target, "kind", "duckdb")
        if kind not in ("duckdb", "postgresql"):
            raise RuleError(f"evaluate_store: unknown store kind {kind!r}; expected 'duckdb' or 'postgresql'")
        return kind, target.query, True
    if type(target).__module__.startswith("psycopg") and hasattr(target, "cursor"):
        def run(sql: str, params: list) -> pd.DataFrame:
            with target.cursor() as cur:
                cur.execute(sql, params)
                cols = [d.name for d in cur.description]
                return pd.DataFrame(cur.fetchall(), columns=cols)
        return "postgresql", run, False
    raise RuleError(f"evaluate_store: expected a DuckDB or psycopg connection or a Store, got {type(target).__name__}")


def load_rules(source: str | Path | bytes | Mapping[str, Any], schema: Any = None) -> RuleSet:
    """Rules from a file path, YAML/JSON text or a dict, checked against `schema` when given.

    `schema`: a mapping field -> ``"number" | "string" | "bool" | "date"``, or a DataFrame
    whose dtypes give the types.  Raises :class:`RuleError` listing every problem.
    """
    doc, name = read_document(source)
    return RuleSet(doc, schema=schema, source=name)
