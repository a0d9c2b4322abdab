"""Layouts: how one kind of export maps onto the canonical tables, written as data.

A layout is a small YAML document (the built-in ones live in ``layouts/``; a
user's mapping file uses the same keys).  Keys:

``name``, ``title``
    identifier and the name shown to people ("Shopify orders export").
``table``
    ``transactions`` (default), ``customers``, ``events`` or ``marketing_spend``.
``role``
    for exports split over several files: ``orders`` (order header rows without
    amounts), ``amounts`` (payments or line items, summed per order and joined on
    ``join_key``), ``customer_map`` (maps the orders' customer key to a person).
``source``
    namespace of order ids, so "1001" from Square and from Shopify never collide.
``detect``
    ``required``: header names that must all be present; ``any``: extra names
    that raise the match score.  Names match ignoring case, spaces and ``_``.
``columns``
    canonical column -> source header.  Source columns not mapped are kept in
    ``attributes``.  ``ts`` may be ``{date: ..., time: ..., timezone: ...}``.
``amount``
    ``{column: X}`` or ``{times: [Q, P]}``; optional ``minus: [...]`` (refunds
    already given back) and ``split_by: [...]`` (spread an order-level total
    over its line rows in proportion to the product of these columns).
``order_level``
    columns an export fills on the first row of an order only (Shopify).
``exclude`` / ``refund`` / ``set``
    row rules: ``when`` a condition holds, the row is excluded with a
    ``reason``, is a refund (stored negative), or gets canonical values set.
``date_order``
    ``day_first`` / ``month_first``: what this export uses when dates alone are
    ambiguous (e.g. every date in the file is on or before the 12th).
``grain``
    ``line`` (several rows per order: items, refunds) or ``order``; inferred when absent.
``timezone``, ``decimal``, ``date_format``, ``customer_required``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clientfolio.core.errors import MappingError

TABLES = ("transactions", "customers", "events", "marketing_spend")
CANONICAL = {
    "transactions": (
        "customer_id", "email", "order_id", "ts", "amount", "quantity", "unit_price", "product_id",
        "description", "category", "channel", "cost", "discount", "currency", "status",
        "consent_marketing", "country", "cost_to_serve", "line_no",
    ),
    "customers": (
        "customer_id", "email", "first_seen", "region", "country", "industry", "size",
        "acquisition_channel", "acquisition_cost", "consent_marketing", "person_id",
    ),
    "events": ("customer_id", "email", "ts", "type", "properties"),
    "marketing_spend": ("channel", "period_start", "period_end", "spend"),
}
_CONDITION_OPS = {"equals", "in", "not_in", "starts_with", "empty", "not_empty", "negative", "zero", "matches"}


def norm_header(name: str) -> str:
    """Header key used for matching: lower case, no BOM, no spaces/underscores/dots."""
    return re.sub(r"[\s_.\-#()]+", "", name.replace("\ufeff", "").strip().lower())


@dataclass
class Layout:
    """One export layout (see the module docstring for the meaning of each key)."""

    name: str
    title: str
    table: str = "transactions"
    role: str = "complete"
    source: str = ""
    join_key: str | None = None
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    columns: dict[str, Any] = field(default_factory=dict)
    amount: dict[str, Any] = field(default_factory=dict)
    order_level: tuple[str, ...] = ()
    exclude: list[dict[str, Any]] = field(default_factory=list)
    refund: list[dict[str, Any]] = field(default_factory=list)
    set_rules: list[dict[str, Any]] = field(default_factory=list)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    date_order: str | None = None
    date_format: str | None = None
    timezone: str | None = None
    decimal: str | None = None
    customer_required: bool = True
    grain: str | None = None  # "line" or "order"; inferred from the columns when not given
    origin: str = "built-in"

    def source_columns(self) -> set[str]:
        """Every source header this layout reads, normalised."""
        names: set[str] = set(self.required) | set(self.order_level)
        for v in self.columns.values():
            if isinstance(v, dict):
                names |= set(v.values())
            elif isinstance(v, list):
                names |= set(v)
            else:
                names |= {v}
        for key in ("column", "times", "minus", "plus", "split_by"):
            v = self.amount.get(key)
            if v:
                names |= {v} if isinstance(v, str) else set(v)
        if isinstance(self.amount.get("minus_extract"), dict):
            names.add(self.amount["minus_extract"].get("column"))
        return {norm_header(n) for n in names if isinstance(n, str)}


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise MappingError(f"{where}: expected a list of column names, got {value!r}")


def _check_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        raise MappingError(f"{where}: a condition must be a mapping, got {cond!r}")
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        if not isinstance(cond[key], list):
            raise MappingError(f"{where}.{key}: expected a list of conditions")
        for i, c in enumerate(cond[key]):
            _check_condition(c, f"{where}.{key}[{i}]")
        return
    if "column" not in cond:
        raise MappingError(f"{where}: a condition needs 'column' (or 'all'/'any'), got keys {sorted(cond)}")
    ops = set(cond) - {"column"}
    if len(ops) != 1 or not ops <= _CONDITION_OPS:
        raise MappingError(f"{where}: use exactly one of {sorted(_CONDITION_OPS)} with 'column', got {sorted(ops)}")


def layout_from_dict(doc: dict[str, Any], origin: str) -> Layout:
    """Validate a parsed YAML mapping and build a Layout; errors name the file and key."""
    if "layout" in doc and isinstance(doc["layout"], dict):
        doc = {**doc["layout"], **{k: v for k, v in doc.items() if k != "layout"}}
    known = {
        "name", "title", "table", "role", "source", "join_key", "detect", "columns", "amount",
        "order_level", "exclude", "refund", "set", "synonyms", "date_order", "date_format",
        "timezone", "decimal", "customer_required", "grain",
    }
    unknown = set(doc) - known
    if unknown:
        raise MappingError(f"{origin}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
    name = doc.get("name") or Path(origin).stem
    table = doc.get("table", "transactions")
    if table not in TABLES:
        raise MappingError(f"{origin}: 'table' must be one of {list(TABLES)}, got {table!r}")
    columns = doc.get("columns") or {}
    if not isinstance(columns, dict):
        raise MappingError(f"{origin}: 'columns' must map canonical names to source headers")
    for canon, src in columns.items():
        if canon not in CANONICAL[table]:
            raise MappingError(
                f"{origin}: columns.{canon}: not a column of the {table} table; "
                f"use one of {list(CANONICAL[table])}"
            )
        if not isinstance(src, (str, dict)) and not (isinstance(src, list) and all(isinstance(x, str) for x in src)):
            raise MappingError(f"{origin}: columns.{canon}: expected a header name, got {src!r}")
    for key in ("exclude", "refund", "set"):
        for i, rule in enumerate(doc.get(key) or []):
            if not isinstance(rule, dict) or "when" not in rule:
                raise MappingError(f"{origin}: {key}[{i}]: a rule needs 'when'")
            _check_condition(rule["when"], f"{origin}: {key}[{i}].when")
            if key == "exclude" and not rule.get("reason"):
                raise MappingError(f"{origin}: exclude[{i}]: say why with 'reason' (shown in the rejects file)")
    for key in ("date_order",):
        if doc.get(key) not in (None, "day_first", "month_first"):
            raise MappingError(f"{origin}: date_order must be day_first or month_first, got {doc.get(key)!r}")
    if doc.get("decimal") not in (None, ".", ","):
        raise MappingError(f"{origin}: decimal must be '.' or ',', got {doc.get('decimal')!r}")
    detect = doc.get("detect") or {}
    required = _as_tuple(detect.get("required"), f"{origin}: detect.required")
    if not required and not doc.get("synonyms"):
        required = tuple(v for v in columns.values() if isinstance(v, str))
    return Layout(
        name=name,
        title=doc.get("title", name),
        table=table,
        role=doc.get("role", "complete"),
        source=doc.get("source", name),
        join_key=doc.get("join_key"),
        required=required,
        any_of=_as_tuple(detect.get("any"), f"{origin}: detect.any"),
        columns=columns,
        amount=doc.get("amount") or {},
        order_level=_as_tuple(doc.get("order_level"), f"{origin}: order_level"),
        exclude=list(doc.get("exclude") or []),
        refund=list(doc.get("refund") or []),
        set_rules=list(doc.get("set") or []),
        synonyms=doc.get("synonyms") or {},
        date_order=doc.get("date_order"),
        date_format=doc.get("date_format"),
        timezone=doc.get("timezone"),
        decimal=doc.get("decimal"),
        customer_required=bool(doc.get("customer_required", True)),
        grain=doc.get("grain"),
        origin=origin,
    )


def load_layout_file(path: str | Path) -> Layout:
    """Read a user's mapping file (YAML or JSON, same keys as the built-in layouts)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"{p}: mapping file not found") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise MappingError(f"{p}: expected a mapping with 'columns:', got {type(doc).__name__}")
    return layout_from_dict(doc, str(p))


def builtin_layouts() -> list[Layout]:
    """All layouts shipped with clientfolio, read from the package's YAML files."""
    out = []
    for entry in sorted(resources.files("clientfolio.ingest").joinpath("layouts").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            docs = yaml.safe_load(entry.read_text(encoding="utf-8"))
            for doc in docs if isinstance(docs, list) else [docs]:
                out.append(layout_from_dict(doc, f"layouts/{entry.name}"))
    return out


@dataclass(frozen=True)
class Detection:
    layout: Layout
    score: float
    matched: tuple[str, ...]
    resolved: dict[str, str]  # canonical -> actual header (for synonym layouts)


def _synonym_match(layout: Layout, headers: dict[str, str]) -> dict[str, str] | None:
    """Canonical -> header for a synonym layout; None when a column listed under `_not` is present."""
    if any(norm_header(n) in headers for n in layout.synonyms.get("_not", [])):
        return None
    resolved: dict[str, str] = {}
    for canon, names in layout.synonyms.items():
        if canon == "_not":
            continue
        for n in names:
            if norm_header(n) in headers:
                resolved[canon] = headers[norm_header(n)]
                break
    return resolved


def detect_layout(header: list[str], layouts: list[Layout]) -> Detection | None:
    """Pick the layout whose signature columns all appear in `header`.

    The most specific wins: the one with most required columns matched, then
    most optional ones.  Synonym-based generic layouts rank last.
    """
    headers = {norm_header(h): h for h in header}
    best: Detection | None = None
    for lay in layouts:
        if lay.synonyms:
            resolved = _synonym_match(lay, headers)
            needed = set(lay.required)
            if resolved is None or not needed <= set(resolved):
                continue
            score = 0.5 + len(resolved) / 100
            det = Detection(lay, score, tuple(resolved.values()), resolved)
        else:
            req = [norm_header(r) for r in lay.required]
            if not req or not all(r in headers for r in req):
                continue
            extra = sum(1 for a in lay.any_of if norm_header(a) in headers)
            score = len(req) + extra / 10
            det = Detection(lay, score, tuple(headers[r] for r in req), {})
        if best is None or det.score > best.score:
            best = det
    return best
