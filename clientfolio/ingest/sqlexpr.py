"""SQL expression builders for cleaning raw text values inside DuckDB.

Every identifier and literal goes through `ident`/`lit`, never raw string
formatting, so header names or mapping values cannot change the query's shape.
"""

from __future__ import annotations

from collections.abc import Iterable

NULL_TOKENS = ("NA", "N/A", "NULL", "NONE", "NAN", "#N/A", "NIL", "-")
MAX_ABS_AMOUNT = 1e9


def ident(name: str) -> str:
    """Quote a column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: object) -> str:
    """Quote a Python value as a SQL literal (strings, numbers, booleans, None)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def lit_list(values: Iterable[object]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


def text(col: str) -> str:
    """Trimmed text without NUL characters (PostgreSQL refuses them), NULL when blank."""
    return f"nullif(trim(replace({col}, chr(0), '')), '')"


def ident_value(col: str) -> str:
    """An identifier value: blank and NA-like tokens are NULL; '17850.0' becomes '17850'."""
    t = text(col)
    return (
        f"CASE WHEN upper({t}) IN {lit_list(NULL_TOKENS)} THEN NULL "
        f"ELSE regexp_replace(regexp_replace({t}, '^''', ''), '^([0-9]+)\\.0+$', '\\1') END"
    )


def email_value(col: str) -> str:
    """Normalised e-mail: trimmed, lower case, NULL unless it contains '@'."""
    t = f"lower({text(col)})"
    return f"CASE WHEN {t} LIKE '%_@_%' THEN {t} ELSE NULL END"


def number(col: str, decimal: str) -> str:
    """Parse money/quantity text: currency signs, thousands separators, (1.00) negatives."""
    t = text(col)
    t = f"regexp_replace({t}, '^\\((.*)\\)$', '-\\1')"
    t = f"regexp_replace({t}, '^(.*[0-9])-$', '-\\1')"
    t = f"regexp_replace({t}, '[\\s\u00a0\u202f$€£¥₹¢]|R\\$|CHF|[A-Z]{{3}}', '', 'g')"
    if decimal == ",":
        t = f"replace(replace(replace({t}, '.', ''), '''', ''), ',', '.')"
    else:
        t = f"replace(replace({t}, ',', ''), '''', '')"
    slow = f"try_cast({t} AS DOUBLE)"
    # Plain numbers ("12.50") skip the clean-up; with a decimal comma nothing can skip it.
    v = f"coalesce(try_cast(trim({col}) AS DOUBLE), {slow})" if decimal == "." else slow
    return f"nullif(nullif(nullif({v}, 'inf'::DOUBLE), '-inf'::DOUBLE), 'nan'::DOUBLE)"


def boolean(col: str) -> str:
    t = f"lower({text(col)})"
    yes = ("yes", "y", "true", "t", "1", "subscribed", "opted_in", "opt-in", "x", "ja", "si", "sí", "oui")
    no = ("no", "n", "false", "f", "0", "not_subscribed", "unsubscribed", "opted_out", "pending", "nein", "non",
          "never_subscribed", "invalid", "redacted")
    return f"CASE WHEN {t} IN {lit_list(yes)} THEN TRUE WHEN {t} IN {lit_list(no)} THEN FALSE ELSE NULL END"


def condition(cond: dict, resolve, decimal: str) -> str:
    """Compile one row-rule condition (see layouts.py) to a SQL boolean."""
    if "all" in cond:
        parts = [condition(c, resolve, decimal) for c in cond["all"]]
        return "(" + " AND ".join(parts) + ")" if parts else "TRUE"
    if "any" in cond:
        parts = [condition(c, resolve, decimal) for c in cond["any"]]
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    col = resolve(cond["column"])
    if col is None:
        return "FALSE"  # the file lacks the column, so the rule cannot apply
    low = f"lower({text(col)})"
    if "equals" in cond:
        return f"coalesce({low} = lower({lit(str(cond['equals']))}), FALSE)"
    if "in" in cond:
        return f"coalesce({low} IN {lit_list(str(v).lower() for v in cond['in'])}, FALSE)"
    if "not_in" in cond:
        return f"coalesce({low}, '') NOT IN {lit_list(str(v).lower() for v in cond['not_in'])}"
    if "starts_with" in cond:
        return f"coalesce(starts_with(upper({text(col)}), upper({lit(str(cond['starts_with']))})), FALSE)"
    if "empty" in cond:
        return f"({text(col)} IS NULL) = {lit(bool(cond['empty']))}"
    if "not_empty" in cond:
        return f"({text(col)} IS NOT NULL) = {lit(bool(cond['not_empty']))}"
    if "negative" in cond:
        return f"coalesce({number(col, decimal)} < 0, FALSE) = {lit(bool(cond['negative']))}"
    if "zero" in cond:
        return f"coalesce({number(col, decimal)} = 0, FALSE) = {lit(bool(cond['zero']))}"
    if "matches" in cond:
        return f"coalesce(regexp_matches({text(col)}, {lit(str(cond['matches']))}), FALSE)"
    raise ValueError(f"unknown condition {cond!r}")
