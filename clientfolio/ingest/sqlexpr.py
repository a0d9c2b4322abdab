"""SQL expression builders for cleaning raw text values inside DuckDB.

Every identifier and literal goes through `ident`/`lit`, never raw string
formatting, so header names or mapping values cannot change the query's shape.
"""

from __future__ import annotations

from collections.abc import Iterable

from clientfolio.ingest.currencies import AMBIGUOUS, ISO_4217, SYMBOLS

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


def lit_list_sql(values: Iterable[object]) -> str:
    """A SQL list literal: ['a', 'b']."""
    return "[" + ", ".join(lit(v) for v in values) + "]"


def text(col: str) -> str:
    """Trimmed text without NUL characters (PostgreSQL refuses them), NULL when blank."""
    # replace() copies every value; only the rare one holding a NUL needs it
    return f"nullif(trim(CASE WHEN contains({col}, chr(0)) THEN replace({col}, chr(0), '') ELSE {col} END), '')"


def ident_value(col: str) -> str:
    """An identifier value: blank and NA-like tokens are NULL; '17850.0' becomes '17850'."""
    t = text(col)
    # The cheap tests first (a token is short; only a value with a quote or a dot can change), so a
    # common id skips the IN list (which DuckDB plans as a join) and both regular expressions.
    return (
        f"CASE WHEN length({t}) <= {max(map(len, NULL_TOKENS))} AND upper({t}) IN {lit_list(NULL_TOKENS)} THEN NULL "
        f"WHEN starts_with({t}, '''') OR contains({t}, '.') "
        f"THEN regexp_replace(regexp_replace({t}, '^''', ''), '^([0-9]+)\\.0+$', '\\1') ELSE {t} END"
    )


def email_value(col: str) -> str:
    """Normalised e-mail: trimmed, lower case, NULL unless it contains '@'."""
    t = f"lower({text(col)})"
    return f"CASE WHEN {t} LIKE '%_@_%' THEN {t} ELSE NULL END"


# --- numbers -------------------------------------------------------------------------------------
# A value is read strictly in the file's convention (decimal point or decimal comma): thousands
# separators only between groups of three digits, a currency marker only as a known symbol or ISO
# 4217 code at the start or the end, at most one sign (leading, trailing minus or parentheses).
# Anything else is NULL here and rejected by the caller with `number_problem`'s reason.
# Everything is one regular-expression match (RE2 compiles it to a DFA) and plain string
# functions, so formatted values cost little more than plain ones.

_SP = r"[ \x{00a0}\x{202f}\x{2009}]"  # space, no-break space, narrow no-break space, thin space
_APOS = r"['\x{2019}]"  # 1'234.50 and 1’234.50 (Swiss)
_ANY_MARK = r"[^\d\s().,'\x{2019}\x{00a0}\x{202f}\x{2009}+-]{1,4}"  # anything that could be meant as a currency marker


def _re_escape(s: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\-" else ch for ch in s)


def _known_marks() -> str:
    codes = "|".join(sorted(ISO_4217))
    symbols = "|".join(_re_escape(s) for s in sorted(SYMBOLS.keys() | AMBIGUOUS.keys(), key=len, reverse=True))
    return f"(?:(?i:{codes})|{symbols})"


def _grammar(decimal: str, mark: str) -> tuple[str, str]:
    """(plain, full) regular expressions of a number in one convention, with markers `mark`."""
    d = r"\." if decimal == "." else ","
    group = "," if decimal == "." else r"\."
    plain = rf"[+-]?(?:[0-9]+(?:{d}[0-9]*)?|{d}[0-9]+)"
    if decimal == ".":
        plain += r"(?:[eE][+-]?[0-9]+)?"  # 1.2E+05, as spreadsheets write large numbers
    grouped = "|".join(rf"[0-9]{{1,3}}(?:{sep}[0-9]{{3}})+(?:{d}[0-9]+)?" for sep in (group, _APOS, _SP))
    body = rf"(?:{grouped}|[0-9]+(?:{d}[0-9]*)?|{d}[0-9]+)"
    one = rf"(?:{mark}{_SP}?{body}|{body}(?:{_SP}?{mark})?)"  # at most one marker, at the start or the end
    full = rf"\({one}\)|[+-]?{_SP}?{one}|{one}-|{mark}{_SP}?[+-]{_SP}?{body}"
    return plain, full


_BODY = r"[.,]?[0-9](?:[0-9.,'\x{2019} \x{00a0}\x{202f}\x{2009}]*[0-9])?[.,]?"


def money_marker(col: str) -> str:
    """The currency marker of a formatted value ('€', 'USD', 'R$'), else NULL.

    Meaningful only where `number` read the value: its grammar allows one known marker and no
    other letters, so the first run of non-digit, non-sign characters is that marker.
    """
    t = text(col)
    return (f"CASE WHEN {t} IS NULL OR regexp_full_match({t}, '[-+0-9.,eE]*') THEN NULL "
            f"ELSE nullif(regexp_extract({t}, {lit(_ANY_MARK)}), '') END")


def number(col: str, decimal: str) -> str:
    """Parse money/quantity text strictly in the file's convention (NULL when it does not fit).

    Plain numbers ('12.50', '-3', '1.2E+05'; '12,50' in a decimal-comma file) take a fast path;
    formatted ones ('$1,234.50', '1.234,50 €', '(12.00)', '12.00-') are checked against the full
    grammar.  Negative zero becomes zero; infinities and NaN are NULL.
    """
    t = text(col)
    plain, full = _grammar(decimal, _known_marks())
    fast = f"try_cast({t} AS DOUBLE)" if decimal == "." else f"try_cast(replace({t}, ',', '.') AS DOUBLE)"
    digits = f"regexp_extract({t}, {lit(_BODY)})"
    for ch in ("'", "\u2019", " ", "\u00a0", "\u202f", "\u2009", "," if decimal == "." else "."):
        digits = f"replace({digits}, {lit(ch)}, '')"
    if decimal == ",":
        digits = f"replace({digits}, ',', '.')"
    slow = (f"CASE WHEN regexp_full_match({t}, {lit(full)}) THEN "
            f"CASE WHEN contains({t}, '-') OR starts_with({t}, '(') THEN -1 ELSE 1 END * try_cast({digits} AS DOUBLE) END")
    v = f"(CASE WHEN regexp_full_match({t}, {lit(plain)}) THEN {fast} ELSE {slow} END)"
    return f"(CASE WHEN isfinite({v}) THEN {v} + 0.0 END)"


def number_problem(col: str, decimal: str, what: str = "a number") -> str:
    """SQL for why a value is not a number in this file (evaluated only for rejected values).

    Says how to fix it: the other decimal convention, an unknown currency marker, or the grammar
    the file uses.  `what` names the value ("an amount", "a quantity").
    """
    t = text(col)
    head = f"cannot read as {what}: "
    if decimal == ".":
        fits_other = ("it does not fit this file's decimal point (e.g. 1,234.50) but reads with a decimal comma; "
                      "if the file uses decimal commas, import with --decimal ,")
        grammar = ("expected a decimal point, thousands separators only between groups of three digits "
                   "(e.g. 1,234.50) and a currency only as a symbol or ISO code at the start or end "
                   "(e.g. $12.50 or 12.50 EUR)")
    else:
        fits_other = ("it does not fit this file's decimal comma (e.g. 1.234,50) but reads with a decimal point; "
                      "if the file uses decimal points, import with --decimal .")
        grammar = ("expected a decimal comma, thousands separators only between groups of three digits "
                   "(e.g. 1.234,50) and a currency only as a symbol or ISO code at the start or end "
                   "(e.g. 12,50 € or EUR 12,50)")
    _, any_full = _grammar(decimal, _ANY_MARK)
    mark = f"regexp_extract({t}, {lit(_ANY_MARK)})"
    unknown = (f"{lit(head)} || {lit(chr(39))} || {mark} || "
               f"{lit(chr(39) + ' is not a currency symbol or ISO 4217 code (write e.g. 12.50 EUR, €12.50 or a plain number)')}")
    return (f"CASE WHEN {number(col, ',' if decimal == '.' else '.')} IS NOT NULL THEN {lit(head + fits_other)} "
            f"WHEN lower({t}) IN ('inf', '-inf', '+inf', 'nan', 'infinity', '-infinity') "
            f"THEN {lit(head + 'not a finite number')} "
            f"WHEN regexp_full_match({t}, '[-+]?[0-9.,]+ ?%') THEN {lit(head + 'a percentage; export the amount itself')} "
            f"WHEN regexp_full_match({t}, {lit(any_full)}) THEN {unknown} "
            f"ELSE {lit(head + grammar)} END")


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
