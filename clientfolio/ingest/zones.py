"""Time zones written after a time: offsets, names and abbreviations, read without guessing.

An export may end a timestamp with ``Z``, ``UTC``, an offset (``+01:00``, ``+0100``, ``-05`` as
PostgreSQL writes it, ``GMT+2``), an IANA zone name (``America/New_York``) or an abbreviation
(``CEST``).  Offsets must lie between -12:00 and +14:00 with minutes below 60.  Zone names are
checked against the tz database (`zoneinfo`).

Abbreviations are a small fixed table: only those that mean one offset wherever shops use them.
``EST``/``EDT``, ``CST``/``CDT``, ``PST``/``PDT``, ``IST``, ``BST`` and a few more are read only
when ``--timezone`` names a zone that uses them (``--timezone America/New_York`` makes EST -05:00
and EDT -04:00); otherwise the import stops and asks, because each means different offsets in
different countries (EST: US Eastern -05:00 or Australian Eastern +10:00; CST: US Central -06:00,
China +08:00 or Cuba -05:00; IST: India +05:30, Ireland +01:00 or Israel +02:00; BST: British
Summer Time +01:00 or Bangladesh +06:00; PST: US Pacific -08:00 or Philippines +08:00).  A
standard/daylight pair is treated alike, so a file is never half read.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

# Abbreviation -> minutes east of UTC.  Each means one offset in every zone that uses it (tz database).
ABBREVIATIONS: dict[str, int] = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0,
    "WET": 0, "WEST": 60, "CET": 60, "CEST": 120, "MET": 60, "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180,
    "JST": 540, "KST": 540, "HKT": 480, "AWST": 480, "ACST": 570, "ACDT": 630, "AEST": 600, "AEDT": 660,
    "NZST": 720, "NZDT": 780, "HST": -600, "AKST": -540, "AKDT": -480, "NST": -210, "NDT": -150,
}

# Abbreviations that mean different offsets in different countries: read only through --timezone.
AMBIGUOUS_ABBREVIATIONS: dict[str, str] = {
    "EST": "US Eastern -05:00 or Australian Eastern +10:00",
    "EDT": "US Eastern -04:00 or Australian Eastern +11:00",
    "CST": "US Central -06:00, China +08:00 or Cuba -05:00",
    "CDT": "US Central -05:00 or Cuba -04:00",
    "MST": "US Mountain -07:00 or Malaysia +08:00",
    "MDT": "US Mountain -06:00",
    "PST": "US Pacific -08:00 or Philippines +08:00",
    "PDT": "US Pacific -07:00",
    "IST": "India +05:30, Ireland +01:00 or Israel +02:00",
    "IDT": "Israel +03:00 or Ireland +01:00",
    "BST": "British Summer Time +01:00 or Bangladesh +06:00",
    "AST": "Atlantic -04:00 or Arabia +03:00",
    "ADT": "Atlantic -03:00",
    "SST": "Samoa -11:00 or Singapore +08:00",
}

_OFFSET = re.compile(r"^(?:(?:UTC|GMT|UT)\s*(?=[+-]))?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_PLAIN_OFFSET = re.compile(r"^[+-]\d{2}(?::?\d{2})?$")


@dataclass(frozen=True)
class Zone:
    """What a suffix means: a fixed offset (minutes east of UTC) or an IANA name; or why it is refused."""

    offset: int | None = None
    name: str | None = None
    problem: str | None = None
    ambiguous: bool = False


@lru_cache(maxsize=1)
def _iana() -> dict[str, str]:
    return {z.lower(): z for z in zoneinfo.available_timezones()}


def check_timezone(tz: str) -> str:
    """The canonical IANA name for --timezone, or ValueError saying what is allowed."""
    if tz.upper() in ("UTC", "Z", "GMT"):
        return "UTC"
    name = _iana().get(tz.lower())
    if name is None:
        raise ValueError(f"--timezone must be an IANA zone name such as Europe/Paris, America/New_York or UTC, "
                         f"got {tz!r}")
    return name


@lru_cache(maxsize=64)
def zone_abbreviations(tz: str) -> dict[str, int]:
    """Abbreviations a zone has used since 2000 (newest meaning wins): America/New_York -> EST, EDT."""
    if tz == "UTC":
        return {"UTC": 0}
    z = zoneinfo.ZoneInfo(tz)
    out: dict[str, int] = {}
    for year in range(2000, 2031):
        for month in (1, 4, 7, 10):
            d = datetime(year, month, 15, 12, tzinfo=z)
            name, off = d.tzname(), d.utcoffset()
            if name and off is not None and name[0].isalpha():
                out[name.upper()] = int(off / timedelta(minutes=1))
    return out


def resolve_zone(suffix: str, user_tz: str = "UTC") -> Zone:
    """Read the text after a time (see module doc); `user_tz` is --timezone, which settles abbreviations."""
    s = suffix.strip()
    m = _OFFSET.match(s)
    if m and (_PLAIN_OFFSET.match(s) or not s[0] in "+-"):
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        total = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
        if minutes >= 60 or not -12 * 60 <= total <= 14 * 60:
            return Zone(problem=f"the time-zone offset {s!r} is out of range (-12:00 to +14:00, minutes below 60)")
        return Zone(offset=total)
    key = s.upper()
    if key in ("Z", "UTC", "GMT", "UT"):
        return Zone(offset=0)
    from clientfolio.ingest.dates import WINDOWS_ZONES

    name = _iana().get(s.lower()) or WINDOWS_ZONES.get(s.lower())
    if name and "/" in s or (name and s.lower() in WINDOWS_ZONES):
        return Zone(name=name)
    if key.isalpha():
        mine = zone_abbreviations(user_tz)
        if key in mine:
            return Zone(offset=mine[key])
        if key in ABBREVIATIONS:
            return Zone(offset=ABBREVIATIONS[key])
        if key in AMBIGUOUS_ABBREVIATIONS:
            return Zone(problem=f"'{s}' is a time-zone abbreviation with several meanings "
                                f"({AMBIGUOUS_ABBREVIATIONS[key]})", ambiguous=True)
    return Zone(problem=f"unrecognised text {s!r} after the date/time")
