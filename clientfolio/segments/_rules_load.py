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

_TYPE_ALIASES = {
    "number": "number", "numeric": "number", "float": "number", "double": "number", "int": "number",
    "integer": "number", "decimal": "number", "string": "string", "str": "string", "text": "string",
    "varchar": "string", "bool": "bool", "boolean": "bool", "date": "date", "datetime": "date",
    "timestamp": "date",
}


# ----------------------------------------------------------------------------- reading

class _Loader(yaml.SafeLoader):
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
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


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
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"cannot read the rule file: {exc}", name) from None
    if not isinstance(source, str):
        raise RuleError(f"expected a rule file path, YAML/JSON text or a dict, got {type(source).__name__}")
    text = source.lstrip("\ufeff")
    try:
        if text.lstrip().startswith(("{", "[")):
            try:
                return json.loads(text, object_pairs_hook=_json_pairs), name
            except json.JSONDecodeError as exc:
                raise RuleError(f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
        return yaml.load(text, Loader=_Loader), name  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"{where}invalid YAML: {what}", name) from None
    except RuleError as exc:
        raise RuleError(exc.problems, name) from None


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
