"""Rule segments, part 3: the same tree evaluated in memory, with SQL's three-valued logic.

A condition is TRUE, FALSE or UNKNOWN (None).  A comparison with a missing value is
UNKNOWN, ``all``/``any``/``not`` follow Kleene logic exactly as SQL's AND/OR/NOT do,
and a segment matches only when its ``when`` is TRUE -- so ``not`` of UNKNOWN is not a
match, and ``ne``/``not_in`` never match a missing value.  ``is_null`` is the one
operator that is never UNKNOWN.  The compiled SQL (``WHERE <expr>``) has the same rules.

This module also holds the value normalisation both evaluators share: what counts as a
missing value, how numbers, booleans and dates are read from a dict or a DataFrame.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.segments._rules_ast import Cond, Group, Node, Window, fold
from clientfolio.segments._rules_sql import TxSpec, resolve


def is_missing(x: Any) -> bool:
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    if isinstance(x, (float, np.floating)):
        return math.isnan(x)
    if isinstance(x, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(x))
    return False


def to_utc_naive(x: Any) -> dt.datetime | None:
    """A timestamp in UTC without a time zone (dates: midnight); None when missing."""
    if isinstance(x, dt.datetime) and x.tzinfo is None and x is not pd.NaT:
        return x  # the common case, kept cheap: the service calls this per event
    if is_missing(x):
        return None
    if isinstance(x, dt.date) and not isinstance(x, dt.datetime):
        x = dt.datetime.combine(x, dt.time())
    try:
        ts = pd.Timestamp(x)
    except (ValueError, TypeError):
        raise SchemaError(f"cannot read {x!r} as a date or timestamp; use ISO 8601 such as '2024-06-30'") from None
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def normalize(ftype: str, x: Any, field: str) -> Any:
    """A feature value as its schema type: float, str, bool or date; None when missing."""
    if is_missing(x):
        return None
    if ftype == "number":
        if isinstance(x, (bool, np.bool_, int, float, np.integer, np.floating, Decimal)):
            return float(x)
        try:
            return float(x)
        except (TypeError, ValueError):
            raise SchemaError(f"feature {field!r} should be a number, got {x!r}") from None
    if ftype == "string":
        return x if isinstance(x, str) else str(x)
    if ftype == "bool":
        if isinstance(x, (bool, np.bool_)):
            return bool(x)
        if isinstance(x, (int, np.integer)) and x in (0, 1):
            return bool(x)
        if isinstance(x, str) and x.strip().lower() in ("true", "false"):
            return x.strip().lower() == "true"
        raise SchemaError(f"feature {field!r} should be true or false, got {x!r}")
    try:
        ts = to_utc_naive(x)
    except SchemaError:
        raise SchemaError(f"feature {field!r} should be a date, got {x!r}") from None
    return ts.date() if ts is not None else None


def normalize_column(ftype: str, s: pd.Series, field: str) -> pd.Series:
    """A feature column typed for DuckDB, with the same reading as :func:`normalize`."""
    if ftype == "number" and pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    if ftype == "bool" and pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean")
    if ftype == "date" and pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.dt.floor("D").astype("datetime64[us]")
    values = [normalize(ftype, x, field) for x in s.tolist()]
    if ftype == "number":
        return pd.Series(values, index=s.index, dtype="float64")
    if ftype == "string":
        return pd.Series(values, index=s.index, dtype="string")
    if ftype == "bool":
        return pd.Series(values, index=s.index, dtype="boolean")
    return pd.Series(pd.to_datetime(values), index=s.index).astype("datetime64[us]")


# ----------------------------------------------------------------------------- windows

def window_values(
    windows: Sequence[Window],
    rows: Iterable[Mapping[str, Any]],
    as_of: dt.date,
    tx: TxSpec,
) -> dict[Window, float]:
    """Orders / spend per window for one customer's transaction rows."""
    bounds = {w: w.bounds(as_of) for w in windows}
    orders: dict[Window, set] = {w: set() for w in windows if w.kind == "orders"}
    count: dict[Window, int] = {w: 0 for w in windows}
    spend: dict[Window, float] = {w: 0.0 for w in windows if w.kind == "spend"}
    for r in rows:
        ts = to_utc_naive(r.get(tx.ts))
        if ts is None:
            continue
        refund = bool(r.get(tx.refund)) if tx.refund and not is_missing(r.get(tx.refund)) else False
        amount = r.get(tx.amount)
        key = tuple(r.get(k) for k in tx.order_key)
        for w, (start, end) in bounds.items():
            if not (start <= ts < end):
                continue
            if w.kind == "spend":
                if not is_missing(amount):
                    spend[w] += float(amount)
            elif not refund:
                if not tx.order_key:
                    count[w] += 1
                elif not any(is_missing(k) for k in key):
                    orders[w].add(key)
    return {w: (spend[w] if w.kind == "spend" else float(len(orders[w]) if tx.order_key else count[w]))
            for w in windows}


# ----------------------------------------------------------------------------- logic

def evaluate_node(node: Node, row: Mapping[str, Any], wins: Mapping[Window, float], as_of: dt.date) -> bool | None:
    """TRUE / FALSE / UNKNOWN (None) of `node` for one customer (Kleene logic, as in SQL)."""
    if isinstance(node, Group):
        seen_unknown = False
        for item in node.items:
            r = evaluate_node(item, row, wins, as_of)
            if r is None:
                seen_unknown = True
            elif r is (node.op == "any"):
                return r  # any: a TRUE decides; all: a FALSE decides
        return None if seen_unknown else node.op == "all"
    if isinstance(node, Cond):
        return _cond(node, row, wins, as_of)
    inner = evaluate_node(node.item, row, wins, as_of)
    return None if inner is None else not inner


def _cond(c: Cond, row: Mapping[str, Any], wins: Mapping[Window, float], as_of: dt.date) -> bool | None:
    x = wins[c.window] if c.window is not None else row.get(c.field)
    op = c.op
    if op == "is_null":
        return (x is None) == c.value
    if x is None:
        return None
    v = resolve(c.value, as_of)
    if op in ("eq", "is"):
        return x == v
    if op == "ne":
        return x != v
    if op in ("gt", "after"):
        return x > v
    if op == "gte":
        return x >= v
    if op in ("lt", "before"):
        return x < v
    if op == "lte":
        return x <= v
    if op == "between":
        return v[0] <= x <= v[1]
    if op == "in":
        return x in v
    if op == "not_in":
        return x not in v
    folded = fold(x)
    if op == "contains":
        return v in folded
    if op == "starts_with":
        return folded.startswith(v)
    return folded.endswith(v)
