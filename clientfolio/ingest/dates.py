"""Reading dates the way shops write them, and refusing to guess silently.

`detect_date_style` looks at a column's values and decides how numeric dates
like 03/04/2024 are ordered.  Values with a first number above 12 prove
day-first, a second number above 12 proves month-first.  When nothing proves
either, the evidence used (the user's option, the layout's usual form, the
file's locale) is returned as a note that the import prints.

`timestamp_sql` builds the DuckDB expression that turns the text into a UTC
timestamp: ISO forms (with offsets), numeric d/m/y or m/d/y with 2- or 4-digit
years, YYYYMMDD, '14-Jan-15', Excel serial days, and Square's separate date,
time and time-zone columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from clientfolio.core.errors import IngestError
from clientfolio.ingest.sqlexpr import lit, text
from clientfolio.ingest.zones import Zone, resolve_zone

NUMERIC_DMY = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?:[ T,]+(\d{1,2})[:.](\d{2})(?:[:.](\d{2})(?:\.\d+)?)?\s*([AaPp][Mm])?)?\s*$"
ISO = r"^\d{4}-\d{1,2}-\d{1,2}"
YMD8 = r"^\d{8}$"
# An ISO date and time, then whatever follows it (a zone, or junk): split so the zone is read on its own.
ISO_SPLIT = r"^(\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?)\s*(.*)$"
FAST_ISO = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?"
# The usual offset forms (Z, ±HH, ±HHMM, ±HH:MM with hours up to 14), read with string functions only.
OFFSET_ISO = (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)? ?"
              r"(?:[Zz]|[+-](?:0\d|1[0-4])(?::?[0-5]\d)?)")
MONTH_NAME = r"^\d{1,2}[ \-/][A-Za-z]{3,9}[ \-/,]+\d{2,4}"

# Names Square (and Rails) write in its "Time Zone" column, mapped to IANA zones.
WINDOWS_ZONES = {
    "pacific time (us & canada)": "America/Los_Angeles",
    "mountain time (us & canada)": "America/Denver",
    "central time (us & canada)": "America/Chicago",
    "eastern time (us & canada)": "America/New_York",
    "alaska": "America/Anchorage",
    "hawaii": "Pacific/Honolulu",
    "arizona": "America/Phoenix",
    "atlantic time (canada)": "America/Halifax",
    "london": "Europe/London",
    "dublin": "Europe/Dublin",
    "edinburgh": "Europe/London",
    "paris": "Europe/Paris",
    "madrid": "Europe/Madrid",
    "berlin": "Europe/Berlin",
    "amsterdam": "Europe/Amsterdam",
    "rome": "Europe/Rome",
    "tokyo": "Asia/Tokyo",
    "sydney": "Australia/Sydney",
    "melbourne": "Australia/Melbourne",
    "brisbane": "Australia/Brisbane",
    "perth": "Australia/Perth",
    "auckland": "Pacific/Auckland",
    "utc": "UTC",
}


@dataclass(frozen=True)
class DateStyle:
    order: str  # "day_first" | "month_first" | "none"
    note: str | None


def detect_date_style(
    con: duckdb.DuckDBPyConnection,
    table: str,
    col: str,
    *,
    path: str,
    column_name: str,
    user_order: str | None,
    layout_order: str | None,
    decimal_comma: bool,
) -> DateStyle:
    """Decide day-first vs month-first for the numeric dates in one column."""
    pat = lit(NUMERIC_DMY)
    row = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE m),
               count(*) FILTER (WHERE m AND a > 12 AND b <= 12),
               count(*) FILTER (WHERE m AND b > 12 AND a <= 12),
               min(v) FILTER (WHERE m AND a > 12 AND b <= 12),
               min(v) FILTER (WHERE m AND b > 12 AND a <= 12),
               min(v) FILTER (WHERE m)
        FROM (
          SELECT v, regexp_matches(v, {pat}) AS m,
                 try_cast(regexp_extract(v, {pat}, 1) AS INT) AS a,
                 try_cast(regexp_extract(v, {pat}, 2) AS INT) AS b
          FROM (SELECT DISTINCT {text(col)} AS v FROM {table})
          WHERE v IS NOT NULL AND substr(v, 5, 1) <> '-'  -- ISO dates need no decision
        )
        """
    ).fetchone()
    n_numeric, n_day_first, n_month_first, ex_day, ex_month, example = row
    if not n_numeric:
        return DateStyle("none", None)
    if user_order:
        return DateStyle(user_order, None)
    if n_day_first and n_month_first:
        raise IngestError(
            path,
            f"dates are written both day-first (e.g. {ex_day!r}) and month-first (e.g. {ex_month!r}) in one column",
            column=column_name,
            hint="the export mixes two date styles; fix the column in a spreadsheet, or split the file and import "
            "each part with --date-order day_first / month_first",
        )
    if n_day_first:
        return DateStyle("day_first", f"dates read day-first (values such as {ex_day!r} prove it)")
    if n_month_first:
        return DateStyle("month_first", f"dates read month-first (values such as {ex_month!r} prove it)")
    # Nothing in the data decides: say which evidence was used.
    if decimal_comma:
        return DateStyle(
            "day_first",
            f"dates such as {example!r} could be day-first or month-first; read day-first because the file uses "
            "decimal commas (a European/Latin-American spreadsheet). If wrong, re-import with --date-order month_first",
        )
    if layout_order:
        word = layout_order.replace("_", "-")
        other = "month_first" if layout_order == "day_first" else "day_first"
        return DateStyle(
            layout_order,
            f"dates such as {example!r} could be day-first or month-first; read {word}, the usual form of this "
            f"export. If wrong, re-import with --date-order {other}",
        )
    raise IngestError(
        path,
        f"dates such as {example!r} could be day-first or month-first and no value decides it",
        column=column_name,
        hint="re-import with --date-order day_first (31/12/2024) or --date-order month_first (12/31/2024)",
    )


def _numeric_dmy(v: str, order: str) -> str:
    pat = lit(NUMERIC_DMY)

    def g(i: int) -> str:
        return f"regexp_extract({v}, {pat}, {i})"

    day, month = (g(1), g(2)) if order == "day_first" else (g(2), g(1))
    year = f"try_cast({g(3)} AS INT)"
    year = f"(CASE WHEN {year} < 100 THEN (CASE WHEN {year} < 70 THEN 2000 + {year} ELSE 1900 + {year} END) ELSE {year} END)"
    hour = f"coalesce(try_cast(nullif({g(4)}, '') AS INT), 0)"
    ampm = f"upper({g(7)})"
    hour = f"(CASE WHEN {ampm} = 'PM' AND {hour} < 12 THEN {hour} + 12 WHEN {ampm} = 'AM' AND {hour} = 12 THEN 0 ELSE {hour} END)"
    minute = f"coalesce(try_cast(nullif({g(5)}, '') AS INT), 0)"
    sec = f"coalesce(try_cast(nullif({g(6)}, '') AS INT), 0)"
    s = (f"printf('%04d-%02d-%02d %02d:%02d:%02d', {year}, try_cast({month} AS INT), try_cast({day} AS INT), "
         f"{hour}, {minute}, {sec})")
    return f"try_cast({s} AS TIMESTAMP)"


def _iso(v: str, tz: str, zones: dict[str, Zone]) -> str:
    """ISO date-time with an optional zone after it: '+01:00', '-05', 'Z', 'CEST', 'Europe/Paris'.

    A suffix that `scan_zones` did not recognise gives NULL (the row is rejected with its reason);
    naive values are in `tz`.
    """
    local = f"try_cast(replace(regexp_extract({v}, {lit(ISO_SPLIT)}, 1), ',', '.') AS TIMESTAMP)"
    zone = f"regexp_extract({v}, {lit(ISO_SPLIT)}, 2)"
    return _zoned(local, zone, f"WHEN {zone} = '' THEN {_localize(local, tz)}", zones)


def _zoned(local: str, key: str, naive_case: str, zones: dict[str, Zone] | None) -> str:
    """SQL: `local` (a naive timestamp) in UTC by the zone text `key` (known zones only, else NULL)."""
    cases = [naive_case]
    offsets = {k: z.offset for k, z in (zones or {}).items() if z.offset is not None}
    names = {k: z.name for k, z in (zones or {}).items() if z.name is not None}
    if offsets:
        m = "MAP {" + ", ".join(f"{lit(k)}: {int(o)}" for k, o in offsets.items()) + "}"
        cases.append(f"WHEN {m}[{key}] IS NOT NULL THEN {local} - to_minutes({m}[{key}])")
    if names:
        m = "MAP {" + ", ".join(f"{lit(k)}: {lit(n)}" for k, n in names.items()) + "}"
        cases.append(f"WHEN {m}[{key}] IS NOT NULL THEN timezone({m}[{key}], {local}) AT TIME ZONE 'UTC'")
    return "(CASE " + " ".join(cases) + " END)"


def _offset_iso(v: str) -> str:
    """UTC time of an OFFSET_ISO value: the offset is read from the last characters; outside
    -12:00..+14:00 it is NULL (rejected with date_problem's reason)."""
    def num(start: int, n: int) -> str:
        return f"CAST(substr({v}, {start}, {n}) AS INTEGER)"

    def signed(pos: int, minutes: str) -> str:
        return f"(CASE WHEN substr({v}, {pos}, 1) = '-' THEN -1 ELSE 1 END) * ({minutes})"

    mins = (f"(CASE WHEN right({v}, 1) IN ('Z', 'z') THEN 0 "
            f"WHEN substr({v}, -6, 1) IN ('+', '-') THEN {signed(-6, f'{num(-5, 2)} * 60 + {num(-2, 2)}')} "
            f"WHEN substr({v}, -5, 1) IN ('+', '-') THEN {signed(-5, f'{num(-4, 2)} * 60 + {num(-2, 2)}')} "
            f"ELSE {signed(-3, f'{num(-2, 2)} * 60')} END)")
    return (f"(CASE WHEN {mins} BETWEEN -720 AND 840 "
            f"THEN try_cast({v} AS TIMESTAMP) - to_minutes({mins}) END)")


def scan_zones(con: duckdb.DuckDBPyConnection, table: str, col: str, *, path: str, column_name: str,
               tz: str) -> dict[str, Zone]:
    """Read every distinct text after an ISO time in a column once, in Python (see zones.py).

    An abbreviation with several meanings stops the import and asks for --timezone (like an
    undecidable date order); other unrecognised suffixes are left out, so their rows are rejected.
    """
    rows = con.execute(
        # The plain forms are skipped first, on the raw text: materialised, or DuckDB would run the
        # extraction on every row before that cheap test.
        f"""WITH odd AS MATERIALIZED (
              SELECT {col} AS c FROM {table}
              WHERE NOT coalesce(regexp_full_match({col}, {lit(FAST_ISO + "|" + OFFSET_ISO)}), FALSE))
            SELECT z, min(v) FROM (
              SELECT v, regexp_extract(v, {lit(ISO_SPLIT)}, 2) AS z FROM (SELECT {text('c')} AS v FROM odd)
              WHERE v IS NOT NULL AND regexp_matches(v, {lit(ISO)}))
            GROUP BY z ORDER BY z LIMIT 10000"""
    ).fetchall()
    zones: dict[str, Zone] = {}
    # Every abbreviation that needs the shop's zone is named at once, in a stable order.
    unclear = [(z, example, resolve_zone(z, tz)) for z, example in rows if z]
    unclear = [(z, example, res) for z, example, res in unclear if res.ambiguous]
    if unclear:
        names = " and ".join(f"{z!r} (e.g. {example!r})" for z, example, _ in unclear[:5])
        raise IngestError(
            path, f"times end with {names}: {unclear[0][2].problem}", column=column_name,
            hint="name the shop's time zone with --timezone, e.g. --timezone America/New_York, "
            "Europe/London or Asia/Kolkata; its abbreviations are then read with their offsets")
    for z, example in rows:
        if not z:
            continue
        res = resolve_zone(z, tz)
        if res.problem is None:
            zones[z] = res
    return zones


def date_problem(v: str) -> str:
    """SQL for why a date was not read (evaluated only for rejected values)."""
    v = text(v)
    zone = f"regexp_extract({v}, {lit(ISO_SPLIT)}, 2)"
    offset = r"(?i)^(?:(?:UTC|GMT|UT) ?)?[+-][0-9]{1,2}(?::?[0-9]{2})?$"
    return (
        f"CASE WHEN regexp_matches({v}, {lit(ISO)}) AND {zone} <> '' THEN "
        f"CASE WHEN regexp_matches({zone}, {lit(offset)}) THEN 'the time-zone offset ''' || {zone} || ''' is out of "
        "range (-12:00 to +14:00, minutes below 60)' "
        f"ELSE 'unrecognised text ''' || {zone} || ''' after the date/time (a time zone must be an offset such as "
        "+01:00 or -05, Z or UTC, a zone name such as Europe/Paris, or an abbreviation such as CET)' END "
        f"WHEN regexp_full_match({v}, '[1-9][0-9]{{4}}([.,][0-9]+)?') THEN 'looks like a spreadsheet serial day "
        "number, not a date; format the column as a date in the spreadsheet before exporting' "
        "ELSE 'cannot read as a date (expected e.g. 2024-03-05, 05/03/2024 or 2024-03-05 14:22:31+01:00)' END"
    )


def _localize(naive: str, tz: str) -> str:
    if tz == "UTC":
        return naive
    return f"(timezone({lit(tz)}, {naive}) AT TIME ZONE 'UTC')"


def timestamp_sql(col: str, order: str, tz: str, fmt: str | None = None, zones: dict[str, Zone] | None = None) -> str:
    """Expression turning text in `col` into a naive UTC TIMESTAMP (NULL when unreadable).

    `zones` are the suffixes `scan_zones` recognised in this column (others make the value NULL).
    """
    v = text(col)
    ymd8 = f"try_strptime({v}, {lit('%Y%m%d')})"
    if fmt:
        return _localize(f"try_strptime({v}, {lit(fmt)})", tz)
    cases = [
        # the common cases first, without capturing groups: 'YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]' with nothing
        # after it, or with a numeric offset (DuckDB's TIMESTAMP cast reads the time and ignores the offset)
        f"WHEN regexp_full_match({v}, {lit(FAST_ISO)}) THEN {_localize(f'try_cast({v} AS TIMESTAMP)', tz)}",
        f"WHEN regexp_full_match({v}, {lit(OFFSET_ISO)}) THEN {_offset_iso(v)}",
        f"WHEN regexp_matches({v}, {lit(ISO)}) THEN {_iso(v, tz, zones or {})}",
        f"WHEN regexp_matches({v}, {lit(YMD8)}) THEN {_localize(ymd8, tz)}",
        f"WHEN regexp_matches({v}, {lit(NUMERIC_DMY)}) THEN {_localize(_numeric_dmy(v, order if order != 'none' else 'day_first'), tz)}",
        f"WHEN regexp_matches({v}, {lit(MONTH_NAME)}) THEN {_localize(month_name_sql(v), tz)}",
    ]
    return "(CASE " + " ".join(cases) + " ELSE NULL END)"


def month_name_sql(v: str) -> str:
    fmts = ["%d-%b-%y", "%d-%b-%Y", "%d %b %Y", "%d %B %Y", "%d-%B-%Y", "%d/%b/%Y", "%d %b %y", "%d %b, %Y"]
    return "coalesce(" + ", ".join(f"try_strptime({v}, {lit(f)})" for f in fmts) + ")"


def square_timestamp_sql(date_col: str, time_col: str | None, tz_col: str | None, order: str, default_tz: str,
                         zones: dict[str, Zone] | None = None) -> str:
    """Square writes Date, Time and Time Zone separately; combine them into UTC.

    `zones` maps each Time Zone value to its zone (`scan_zone_column`); an unknown zone or an
    unreadable time gives NULL, so the row is rejected instead of being read as midnight or UTC.
    """
    date_part = timestamp_sql(date_col, order, "UTC")
    if time_col:
        t = f"(CASE WHEN {text(time_col)} IS NULL THEN TIME '00:00:00' ELSE try_cast({text(time_col)} AS TIME) END)"
        local = f"(CAST({date_part} AS DATE) + {t})"
    else:
        local = date_part
    if not tz_col:
        return _localize(local, default_tz)
    key = text(tz_col)
    return _zoned(local, key, f"WHEN {key} IS NULL THEN {_localize(local, default_tz)}", zones)


def scan_zone_column(con: duckdb.DuckDBPyConnection, table: str, col: str, *, path: str, column_name: str,
                     tz: str) -> dict[str, Zone]:
    """Read each distinct value of a time-zone column ('Pacific Time (US & Canada)', '(GMT+01:00) Paris',
    'Europe/Paris', '+01:00'); unknown ones are left out (their rows are rejected)."""
    zones: dict[str, Zone] = {}
    for (value,) in con.execute(f"SELECT DISTINCT {text(col)} FROM {table} WHERE {text(col)} IS NOT NULL").fetchall():
        res = resolve_zone(re.sub(r"^\(GMT[^)]*\)\s*", "", value), tz)
        if res.ambiguous:
            raise IngestError(path, f"the time zone {value!r}: {res.problem}", column=column_name,
                              hint="name the shop's time zone with --timezone, e.g. --timezone America/New_York")
        if res.problem is None:
            zones[value] = res
    return zones
