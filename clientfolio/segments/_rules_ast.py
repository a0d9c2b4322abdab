"""Rule segments: the checked tree, its error type, and the case folding every evaluator shares.

A rule document becomes a tuple of :class:`Segment`; each ``when`` is a tree of
:class:`Group` (all/any), :class:`Not` and :class:`Cond` (one field or window, one
operator, a typed value).  Nothing here touches SQL or data.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Literal, Union

from clientfolio.core.errors import ClientfolioError

FieldType = Literal["number", "string", "bool", "date"]
TYPES: tuple[str, ...] = ("number", "string", "bool", "date")

# Case folding for contains / starts_with / ends_with.  Each engine's lower() differs
# (PostgreSQL follows the server locale; Python maps 'İ' to two characters), so the
# same one-to-one table is applied everywhere: translate() in SQL, str.translate here.
_FOLD_RANGES = ((0x41, 0x5A), (0xC0, 0x24F), (0x370, 0x52F), (0x1E00, 0x1EFF))
FOLD_FROM = "".join(
    chr(c) for lo, hi in _FOLD_RANGES for c in range(lo, hi + 1)
    if len(chr(c).lower()) == 1 and chr(c).lower() != chr(c)
)
FOLD_TO = "".join(c.lower() for c in FOLD_FROM)
_FOLD_TABLE = str.maketrans(FOLD_FROM, FOLD_TO)


def fold(text: str) -> str:
    """The case folding every evaluator uses for the string operators."""
    return text.translate(_FOLD_TABLE)

class RuleError(ClientfolioError):
    """A rule document is invalid; each line names the segment, the path and the fix.

    ``problems`` holds every :class:`Problem` found; ``segment`` and ``path`` are
    those of the first one.
    """

    def __init__(self, problems: list[Problem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(None, None, problems)]
        self.problems = list(problems)
        self.source = source
        self.segment = self.problems[0].segment if self.problems else None
        self.path = self.problems[0].path if self.problems else None
        prefix = f"{source}: " if source else ""
        lines = [p.text() for p in self.problems]
        if len(lines) == 1:
            text = prefix + lines[0]
        else:
            text = f"{prefix}{len(lines)} problems in the rules:\n" + "\n".join(f"  - {x}" for x in lines)
        super().__init__(text)


@dataclass(frozen=True)
class Problem:
    segment: str | None
    path: str | None
    message: str

    def text(self) -> str:
        where = ([f"segment {self.segment!r}"] if self.segment is not None else []) + ([self.path] if self.path else [])
        return (", ".join(where) + ": " if where else "") + self.message


# ----------------------------------------------------------------------------- the tree


@functools.lru_cache(maxsize=4096)
def _shift(day: dt.date, n: int, unit: str) -> dt.date:
    """`day` moved back by n days / weeks / calendar months (the day clamped to the month's end)."""
    if unit == "month":
        m = day.month - 1 - n
        year, month = day.year + m // 12, m % 12 + 1
        return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    return day - dt.timedelta(days=n * (7 if unit == "week" else 1))


@dataclass(frozen=True)
class Window:
    """``orders_in_last`` / ``spend_in_last`` over the n days/weeks/months ending on as_of."""

    kind: Literal["orders", "spend"]
    n: int
    unit: Literal["day", "week", "month"]

    def bounds(self, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) in timestamps: end is midnight after the as_of day (which is included)."""
        end = as_of + dt.timedelta(days=1)
        start = _shift(end, self.n, self.unit)
        return dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())

    def __str__(self) -> str:
        return f"{self.kind}_in_last {self.n} {self.unit}{'s' if self.n != 1 else ''}"


@dataclass(frozen=True)
class RelDate:
    """A date relative to as_of: ``N days ago``, ``N weeks ago``, ``N months ago``, ``today``."""

    n: int
    unit: str

    def resolve(self, as_of: dt.date) -> dt.date:
        return _shift(as_of, self.n, self.unit)


@dataclass(frozen=True)
class Cond:
    """One condition.  ``value`` is typed: float, str, bool, date/RelDate, or a tuple of them.

    For contains / starts_with / ends_with the value is already case-folded.
    """

    path: str
    op: str
    value: Any
    field: str | None = None
    ftype: str | None = None
    window: Window | None = None


@dataclass(frozen=True)
class Group:
    op: Literal["all", "any"]
    items: tuple[Node, ...]
    path: str


@dataclass(frozen=True)
class Not:
    item: Node
    path: str


Node = Union[Cond, Group, Not]


@dataclass(frozen=True)
class Segment:
    name: str
    description: str | None
    when: Node


def walk(node: Node):
    """Every condition under `node`, in document order."""
    if isinstance(node, Cond):
        yield node
    elif isinstance(node, Group):
        for item in node.items:
            yield from walk(item)
    else:
        yield from walk(node.item)
