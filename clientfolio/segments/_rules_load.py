"""Rule segments: reading a rule document (a path, YAML/JSON text, a dict) and the schema."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from clientfolio.segments._rules_ast import TYPES, Problem, RuleError

# Limits on what one rule document may ask for.  Checked while reading, before anything is
# built, so a hostile or runaway file is refused in milliseconds with the limit named.
MAX_FILE_BYTES = 500_000  # characters: 2,000 conditions take about 70,000
MAX_SEGMENTS = 200  # each segment is one more pass over the customers (measured: 1,000 took 36 s)
MAX_CONDITIONS = 2_000  # conditions and all/any/not groups in total, every alias use counted
MAX_DEPTH = 20  # all/any/not nested inside each other
MAX_YAML_NODES = 100_000  # YAML values once aliases are expanded (a "billion laughs" file)
MAX_YAML_DEPTH = 2 * MAX_DEPTH + 10  # YAML nesting; all/any take two levels (mapping + list)

_TYPE_ALIASES = {
    "number": "number", "numeric": "number", "float": "number", "double": "number", "int": "number",
    "integer": "number", "decimal": "number", "string": "string", "str": "string", "text": "string",
    "varchar": "string", "bool": "bool", "boolean": "bool", "date": "date", "datetime": "date",
    "timestamp": "date",
}


# ----------------------------------------------------------------------------- reading

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ~4x faster where installed


class _Loader(_SafeLoader):  # type: ignore[misc, valid-type]
    """safe_load that refuses a key written twice (``{gt: 1, gt: 2}`` would keep only one)."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
            seen.add(key)
        except TypeError:
            continue
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise RuleError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_document(source: Any) -> tuple[Any, str | None]:
    """A rule document from a dict, a path, or YAML/JSON text; returns (document, file name)."""
    if isinstance(source, Mapping):
        return source, None
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    name = None
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        name = str(path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise RuleError(_too_big(size), name)
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"cannot read the rule file: {exc}", name) from None
    if not isinstance(source, str):
        raise RuleError(f"expected a rule file path, YAML/JSON text or a dict, got {type(source).__name__}")
    if len(source) > MAX_FILE_BYTES:
        raise RuleError(_too_big(len(source)), name)
    text = source.lstrip("\ufeff")
    try:
        if text.lstrip().startswith(("{", "[")):
            try:
                return json.loads(text, object_pairs_hook=_json_pairs), name
            except json.JSONDecodeError as exc:
                raise RuleError(f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
            except RecursionError:
                raise RuleError(_too_deep(), name) from None
        check_yaml_size(text, name)
        return yaml.load(text, Loader=_Loader), name  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"{where}invalid YAML: {what}", name) from None
    except RuleError as exc:
        raise RuleError(exc.problems, name) from None


def _too_big(size: int) -> str:
    return (f"the rule file has {size:,} characters; the limit is {MAX_FILE_BYTES:,} "
            "(split it, or use in: lists instead of one condition per value)")


def _too_deep() -> str:
    return (f"the rules nest deeper than the limit of {MAX_DEPTH} levels of all/any/not; "
            "flatten them (all: [a, all: [b, c]] is all: [a, b, c])")


def check_yaml_size(text: str, name: str | None = None) -> None:
    """Refuse YAML whose nesting or alias expansion exceeds the limits, before it is built.

    Walks the parser's event stream (no tree, no recursion): each anchor remembers how many
    values and levels it stands for, so ``*alias`` counts as everything it would expand to.
    A "billion laughs" file is refused after reading its few lines, not after expanding them.
    """
    stack: list[list[int]] = []  # per open mapping/sequence: [values inside, deepest level inside]
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels) it expands to

    def add(size: int, depth: int) -> None:
        if not stack:
            return
        top = stack[-1]
        top[0] += size
        top[1] = max(top[1], depth)
        if top[0] > MAX_YAML_NODES:
            raise RuleError(f"the rules expand to more than {MAX_YAML_NODES:,} YAML values once aliases (*name) "
                            "are expanded; the limit guards against files that multiply themselves through "
                            "aliases: write the conditions out, or use fewer aliases", name)
        if len(stack) + depth > MAX_YAML_DEPTH:
            raise RuleError(_too_deep(), name)

    try:
        for ev in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append([1, 0, ev.anchor])  # type: ignore[list-item]
                if len(stack) > MAX_YAML_DEPTH:
                    raise RuleError(_too_deep(), name)
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                size, depth, anchor = stack.pop()
                if anchor:
                    anchors[anchor] = (size, depth + 1)  # type: ignore[index]
                add(size, depth + 1)
            elif isinstance(ev, yaml.ScalarEvent):
                if ev.anchor:
                    anchors[ev.anchor] = (1, 1)
                add(1, 1)
            elif isinstance(ev, yaml.AliasEvent):
                add(*anchors.get(ev.anchor, (1, 1)))
    except yaml.YAMLError:
        return  # yaml.load reports syntax errors with their line and column


def _looks_like_path(s: str) -> bool:
    if "\n" in s or "\x00" in s or len(s) > 1024:
        return False
    if s.strip().lower().endswith((".yaml", ".yml", ".json")):
        return True
    try:
        return Path(s).is_file()
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------- schema

def normalize_schema(schema: Any) -> dict[str, str]:
    """A field -> type mapping from a mapping (types number/string/bool/date) or a DataFrame."""
    if isinstance(schema, pd.DataFrame):
        return infer_schema(schema)
    if not isinstance(schema, Mapping):
        raise RuleError(f"schema must be a mapping field -> type or a DataFrame, got {type(schema).__name__}")
    out, bad = {}, []
    for field, typ in schema.items():
        t = _TYPE_ALIASES.get(str(typ).lower()) if isinstance(typ, str) else None
        if not isinstance(field, str) or not field or "\x00" in field:
            bad.append(Problem(None, "schema", f"field name {field!r} is not a usable column name"))
        elif t is None:
            bad.append(Problem(None, "schema", f"field {field!r} has type {typ!r}; use one of {', '.join(TYPES)}"))
        else:
            out[field] = t
    if bad:
        raise RuleError(bad)
    return out


def infer_schema(df: pd.DataFrame) -> dict[str, str]:
    """Field types from a DataFrame's dtypes (object columns are judged by their values)."""
    out: dict[str, str] = {}
    for col in df.columns:
        if not isinstance(col, str) or not col or "\x00" in col:
            continue
        s = df[col]
        if col == "customer_id":
            out[col] = "string"  # ids are text, whatever their dtype
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[col] = "bool"
        elif pd.api.types.is_numeric_dtype(s.dtype):
            out[col] = "number"
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[col] = "date"
        elif pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
            out[col] = "string"
        elif pd.api.types.is_object_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype):
            values = s.dropna()
            kinds = {_value_kind(v) for v in values.head(1000)}
            out[col] = kinds.pop() if len(kinds) == 1 and None not in kinds else "string"
    return out


def _value_kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (dt.date, pd.Timestamp)):
        return "date"
    if isinstance(v, str):
        return "string"
    return None
