"""Notes on an analysis, each made for its reader: the shop owner, or the method notes.

A step that has something to say about its result (a model that needed a fallback, a column
that was missing) says it where it happens, in plain words for the owner; technical detail
(optimiser messages, parameters, model names) goes to the method notes.  Deciding this where
the note is made, not by matching words in the text later, keeps jargon out of the owner's view.

>>> notes = Notes()
>>> notes.append(Note("no product categories in the data", topic="categories"))
>>> notes.append(Note("category preference skipped: no product categories", topic="categories"))
>>> notes.append(method_note("BG/NBD fitted with penalizer_coef=0.001"))
>>> [str(n) for n in notes.for_owner()], [str(n) for n in notes.for_method()]
(['no product categories in the data'], ['BG/NBD fitted with penalizer_coef=0.001'])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, SupportsIndex

Audience = Literal["owner", "method"]


class Note(str):
    """A note's text (it is a ``str``), who it is for, and what it is about.

    ``audience``: "owner" (plain words, shown with the results) or "method" (technical detail,
    shown in the report's method notes).  ``topic``: notes on one topic say the same thing
    (two steps both noticing a missing column); a :class:`Notes` list keeps the first.
    """

    audience: Audience
    topic: str

    def __new__(cls, text: str, audience: Audience = "owner", topic: str = "") -> Note:
        if audience not in ("owner", "method"):
            raise ValueError(f"a note's audience must be 'owner' or 'method', got {audience!r}")
        note = super().__new__(cls, text)
        note.audience = audience
        note.topic = topic or str(text)
        return note

    def __reduce__(self):  # noqa: ANN204 - pickles with its audience and topic
        return (Note, (str(self), self.audience, self.topic))


def method_note(text: str, topic: str = "") -> Note:
    """A note for the method notes (technical detail a shop owner does not need to read)."""
    return Note(text, "method", topic)


def audience_of(note: str) -> Audience:
    """Who `note` is for; a plain string is for the owner."""
    return getattr(note, "audience", "owner")


class Notes(list):
    """A list of :class:`Note` that keeps one note per topic (plain strings are owner notes)."""

    def __init__(self, notes: Iterable[str] = ()) -> None:
        super().__init__()
        self.extend(notes)

    def append(self, note: str) -> None:
        n = note if isinstance(note, Note) else Note(str(note))
        if not any((x.audience, x.topic) == (n.audience, n.topic) for x in self):
            super().append(n)

    def extend(self, notes: Iterable[str]) -> None:
        for n in notes:
            self.append(n)

    def insert(self, index: SupportsIndex, note: str) -> None:
        n = note if isinstance(note, Note) else Note(str(note))
        if not any((x.audience, x.topic) == (n.audience, n.topic) for x in self):
            super().insert(index, n)

    def __iadd__(self, notes: Iterable[str]) -> Notes:  # type: ignore[override]
        self.extend(notes)
        return self

    def for_owner(self) -> list[Note]:
        """The notes in plain words, for the shop owner."""
        return [n for n in self if n.audience == "owner"]

    def for_method(self) -> list[Note]:
        """The technical notes, for the method notes."""
        return [n for n in self if n.audience == "method"]
