"""Rule segments, part 1: check a rule document into a typed tree.

Everything a user wrote is checked here, before any SQL exists: the structure
(``all``/``any``/``not``, one operator per condition), the operators, the window
texts, and -- once a schema is known -- every field name against the schema and
every value against the field's type.  All problems are collected and raised as
one :class:`RuleError` whose lines name the segment and the path of the rule,
e.g. ``segment 'VIP at risk', when.all[2].not: unknown field 'regoin' (did you
mean 'region'?)``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from clientfolio.segments._rules_ast import (
    Cond,
    Group,
    Node,
    Not,
    Problem,
    RelDate,
    Segment,
    Window,
    fold,
)
from clientfolio.segments._rules_load import MAX_CONDITIONS, MAX_DEPTH, MAX_SEGMENTS

_COMPARE = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in")
OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "number": (*_COMPARE, "is_null"),
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "is_null"),
    "bool": ("eq", "ne", "is", "is_null"),
    "date": (*_COMPARE, "before", "after", "is_null"),
}
WINDOW_OPS = _COMPARE
ALL_OPS: tuple[str, ...] = tuple(dict.fromkeys(op for ops in OPS_BY_TYPE.values() for op in ops))
SUBJECTS = ("field", "orders_in_last", "spend_in_last")
COMBINATORS = ("all", "any", "not")
MAX_LIST = 10_000

_UNITS = {"d": "day", "day": "day", "days": "day", "w": "week", "week": "week", "weeks": "week",
          "month": "month", "months": "month"}  # no "m": minutes or months?
_WINDOW_RE = re.compile(r"^\s*(\d{1,6})\s*([a-zA-Z]+)\s*$")
_AGO_RE = re.compile(r"^\s*(\d{1,6})\s*([a-zA-Z]+)\s+ago\s*$", re.IGNORECASE)
_MAX_DAYS = 100 * 366


# ----------------------------------------------------------------------------- checking

class _Bad(Exception):
    """One problem with a value; the message is completed by the caller."""


class _TooMany(Exception):
    """A limit was passed: checking stops at once (the rest could be a file multiplying itself)."""


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    lower = {c.lower(): c for c in choices}
    hit = lower.get(word.lower()) if isinstance(word, str) else None
    if hit is None and isinstance(word, str):
        close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
        hit = close[0] if close else None
    return f" (did you mean {hit!r}?)" if hit else ""


def _describe(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, dt.date):
        return f"the date {v.isoformat()}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, Mapping):
        return "a mapping"
    return f"a {type(v).__name__}"


def _listing(names: list[str], limit: int = 30) -> str:
    names = sorted(names)
    more = f", ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def parse_window(text: Any, kind: str) -> Window:
    """``"30 days"``, ``"8 weeks"``, ``"3 months"`` (also ``30d``, ``1 week``)."""
    hint = "write e.g. '30 days', '8 weeks' or '3 months'"
    if isinstance(text, bool) or not isinstance(text, str):
        raise _Bad(f"{kind}_in_last needs a time window text, got {_describe(text)}; {hint}")
    m = _WINDOW_RE.match(text)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise _Bad(f"bad window {text!r} for {kind}_in_last: {hint}")
    n = int(m.group(1))
    days = n * {"day": 1, "week": 7, "month": 31}[unit]
    if n < 1 or days > _MAX_DAYS:
        raise _Bad(f"bad window {text!r} for {kind}_in_last: the length must be between 1 day and 100 years")
    return Window(kind, n, unit)  # type: ignore[arg-type]


def parse_date(v: Any) -> dt.date | RelDate:
    """An ISO date, a date, ``today`` or ``N days|weeks|months ago``."""
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s.lower() == "today":
            return RelDate(0, "day")
        m = _AGO_RE.match(s)
        if m and _UNITS.get(m.group(2).lower()):
            unit = _UNITS[m.group(2).lower()]
            if int(m.group(1)) * {"day": 1, "week": 7, "month": 31}[unit] <= _MAX_DAYS:
                return RelDate(int(m.group(1)), unit)
        try:
            return dt.date.fromisoformat(s)
        except ValueError:
            pass
    raise _Bad(f"needs a date, got {_describe(v)}; write an ISO date such as '2024-06-30', "
               "'today' or e.g. '60 days ago' (also weeks/months)")


def _scalar(ftype: str | None, v: Any) -> Any:
    """`v` as a value of a field of type `ftype` (None: type unknown, shape only)."""
    if isinstance(v, (list, Mapping)) or v is None:
        raise _Bad(f"needs a single value, got {_describe(v)}"
                   + ("; to test for a missing value use is_null: true" if v is None else ""))
    if isinstance(v, str) and "\x00" in v:
        raise _Bad("needs a value without the NUL character (\\x00)")
    if ftype is None:
        return v
    if ftype == "number":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not math.isfinite(v):
                raise _Bad(f"needs a finite number, got {v!r}")
            return float(v)
        hint = ""
        if isinstance(v, str):
            try:
                float(v)
                hint = f" (write {v.strip()} without quotes)"
            except ValueError:
                pass
        raise _Bad(f"needs a number, got {_describe(v)}{hint}")
    if ftype == "string":
        if isinstance(v, str):
            return v
        hint = (" (YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value)"
                if isinstance(v, bool) else " (quote it to compare as text)")
        raise _Bad(f"needs a string, got {_describe(v)}{hint}")
    if ftype == "bool":
        if isinstance(v, bool):
            return v
        hint = " (write true or false without quotes)" if isinstance(v, str) and v.lower() in ("true", "false") else ""
        raise _Bad(f"needs true or false, got {_describe(v)}{hint}")
    return parse_date(v)


def _op_value(op: str, ftype: str | None, v: Any) -> Any:
    """The typed value of operator `op` on a field of type `ftype`."""
    if op == "is_null":
        if not isinstance(v, bool):
            raise _Bad(f"needs true or false, got {_describe(v)}")
        return v
    if op == "between":
        if not isinstance(v, list) or len(v) != 2:
            raise _Bad(f"needs a list of two bounds [low, high], got {_describe(v)}")
        lo, hi = _scalar(ftype, v[0]), _scalar(ftype, v[1])
        if ftype is not None and type(lo) is type(hi) and not isinstance(lo, RelDate) and lo > hi:
            raise _Bad(f"has its low bound {v[0]!r} above the high bound {v[1]!r}")
        return (lo, hi)
    if op in ("in", "not_in"):
        if not isinstance(v, list) or not v:
            raise _Bad(f"needs a non-empty list of values, got {_describe(v)}")
        if len(v) > MAX_LIST:
            raise _Bad(f"accepts at most {MAX_LIST} values, got {len(v)}")
        return tuple(_scalar(ftype, x) for x in v)
    if op in ("contains", "starts_with", "ends_with"):
        if not isinstance(v, str) or not v:
            raise _Bad(f"needs a non-empty string, got {_describe(v)}")
        return fold(_scalar("string", v))
    if op == "is":
        return _scalar("bool", v)
    if op in ("before", "after"):
        return parse_date(v)
    return _scalar(ftype, v)


class Checker:
    """Walks a rule document, collecting every problem; `schema` None checks the structure only."""

    def __init__(self, schema: dict[str, str] | None) -> None:
        self.schema = schema
        self.problems: list[Problem] = []
        self.nodes = 0  # conditions and groups seen, every YAML alias use counted

    def fail(self, segment: str | None, path: str | None, message: str) -> None:
        self.problems.append(Problem(segment, path, message))

    def document(self, doc: Any) -> tuple[list[Segment], bool]:
        if not isinstance(doc, Mapping):
            self.fail(None, None, f"a rule document is a mapping with a 'segments' list, got {_describe(doc)}")
            return [], False
        for key in doc:
            if key not in ("segments", "exclusive"):
                self.fail(None, None, f"unknown top-level key {key!r}{_suggest(str(key), ['segments', 'exclusive'])}; "
                          "allowed: segments, exclusive")
        exclusive = doc.get("exclusive", False)
        if not isinstance(exclusive, bool):
            self.fail(None, "exclusive", f"needs true or false, got {_describe(exclusive)}")
            exclusive = False
        raw = doc.get("segments")
        if not isinstance(raw, list) or not raw:
            self.fail(None, "segments", f"needs a non-empty list of segments, got {_describe(raw)}")
            return [], exclusive
        if len(raw) > MAX_SEGMENTS:
            self.fail(None, "segments", f"{len(raw):,} segments is more than the limit of {MAX_SEGMENTS}; each "
                      "segment is one more pass over every customer: merge similar segments or split the file")
            return [], exclusive
        segments, seen = [], set()
        for i, item in enumerate(raw):
            try:
                seg = self.segment(i, item)
            except _TooMany as exc:
                self.fail(None, None, str(exc))
                return [], exclusive
            if seg is None:
                continue
            if seg.name in seen:
                self.fail(seg.name, f"segments[{i}]", "the name is used by an earlier segment; names must be unique")
            seen.add(seg.name)
            segments.append(seg)
        return segments, exclusive

    def segment(self, i: int, raw: Any) -> Segment | None:
        where = f"segments[{i}]"
        if not isinstance(raw, Mapping):
            self.fail(None, where, f"a segment is a mapping with name and when, got {_describe(raw)}")
            return None
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            self.fail(None, where, f"needs a 'name' (a non-empty text), got {_describe(name)}")
            name_ok = None
        else:
            name_ok = name
        for key in raw:
            if key not in ("name", "description", "when"):
                self.fail(name_ok, where, f"unknown key {key!r}{_suggest(str(key), ['name', 'description', 'when'])}; "
                          "a segment has name, description (optional) and when")
        desc = raw.get("description")
        if desc is not None and not isinstance(desc, str):
            self.fail(name_ok, where + ".description", f"needs a text, got {_describe(desc)}")
        if "when" not in raw:
            self.fail(name_ok, where, "needs a 'when' condition")
            return None
        when = self.node(name_ok, "when", raw["when"])
        if name_ok is None or when is None:
            return None
        return Segment(name_ok, desc if isinstance(desc, str) else None, when)

    def node(self, seg: str | None, path: str, raw: Any, depth: int = 0) -> Node | None:
        self.nodes += 1
        if self.nodes > MAX_CONDITIONS:
            raise _TooMany(f"the rules have more than {MAX_CONDITIONS:,} conditions (all/any/not count as one, and "
                           "so does every use of a YAML alias); the limit keeps evaluation fast: use in: lists "
                           "or between: instead of one condition per value")
        if depth > MAX_DEPTH:
            self.fail(seg, path, f"nested more than {MAX_DEPTH} levels of all/any/not deep (the limit); "
                      "flatten it (all: [a, all: [b, c]] is all: [a, b, c])")
            return None
        if not isinstance(raw, Mapping) or not raw:
            self.fail(seg, path, f"expected a condition such as {{field: clv, gt: 500}} or all/any/not, got {_describe(raw)}"
                      + (" (empty)" if isinstance(raw, Mapping) else ""))
            return None
        combos = [k for k in raw if k in COMBINATORS]
        if combos:
            if len(raw) > 1:
                others = ", ".join(repr(k) for k in raw if k != combos[0])
                self.fail(seg, path, f"{combos[0]!r} cannot share a mapping with {others}; "
                          f"put each condition in its own list item under all:/any:")
                return None
            key = combos[0]
            value = raw[key]
            if key == "not":
                item = self.node(seg, f"{path}.not", value, depth + 1)
                return Not(item, f"{path}.not") if item is not None else None
            if not isinstance(value, list) or not value:
                self.fail(seg, f"{path}.{key}", f"{key} needs a non-empty list of conditions, got {_describe(value)}"
                          + (" (empty list)" if isinstance(value, list) else ""))
                return None
            items = [self.node(seg, f"{path}.{key}[{i}]", v, depth + 1) for i, v in enumerate(value)]
            if any(x is None for x in items):
                return None
            return Group(key, tuple(items), f"{path}.{key}")  # type: ignore[arg-type]
        return self.cond(seg, path, raw)

    def cond(self, seg: str | None, path: str, raw: Mapping) -> Cond | None:
        subjects = [k for k in raw if k in SUBJECTS]
        others = [k for k in raw if k not in SUBJECTS]
        unknown = [k for k in others if k not in ALL_OPS]
        for k in unknown:
            self.fail(seg, path, f"unknown operator {k!r}"
                      f"{_suggest(str(k), list(ALL_OPS) + list(SUBJECTS) + list(COMBINATORS))}; "
                      f"operators: {', '.join(ALL_OPS)}")
        ops = [k for k in others if k in ALL_OPS]
        if len(subjects) != 1:
            what = "has none" if not subjects else f"has {len(subjects)} ({', '.join(subjects)})"
            self.fail(seg, path, f"a condition needs exactly one of field, orders_in_last, spend_in_last; it {what}")
            return None
        if len(ops) > 1:
            self.fail(seg, path, f"two operators ({', '.join(repr(o) for o in ops)}) in one condition; "
                      "write one condition per operator under all: (or use between: [low, high])")
            return None
        if unknown:
            return None
        subject = subjects[0]
        if not ops:
            self.fail(seg, path, f"the condition on {raw[subject]!r} has no operator; use one of {', '.join(ALL_OPS)}")
            return None
        op = ops[0]
        try:
            if subject != "field":
                window = parse_window(raw[subject], subject.removesuffix("_in_last"))
                if op not in WINDOW_OPS:
                    raise _Bad(f"{op!r} does not apply to {subject} (a count or sum, never missing); "
                               f"use one of {', '.join(WINDOW_OPS)}")
                try:
                    value = _op_value(op, "number", raw[op])
                except _Bad as exc:
                    raise _Bad(f"{op} on {subject} {exc}") from None
                return Cond(path, op, value, None, "number", window)
            field = raw["field"]
            if not isinstance(field, str) or not field:
                raise _Bad(f"field needs a column name, got {_describe(field)}")
            ftype = None
            if self.schema is not None:
                if field not in self.schema:
                    raise _Bad(f"unknown field {field!r}{_suggest(field, list(self.schema))}; "
                               f"known fields: {_listing(list(self.schema))}")
                ftype = self.schema[field]
                if op not in OPS_BY_TYPE[ftype]:
                    raise _Bad(f"{op!r} does not apply to {ftype} field {field!r}; "
                               f"for {ftype} fields use {', '.join(OPS_BY_TYPE[ftype])}")
            try:
                value = _op_value(op, ftype, raw[op])
            except _Bad as exc:
                raise _Bad(f"{op} on {ftype + ' ' if ftype else ''}field {field!r} {exc}") from None
            return Cond(path, op, value, field, ftype)
        except _Bad as exc:
            self.fail(seg, path, str(exc))
            return None
