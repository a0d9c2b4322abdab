"""Notes carry who they are for (owner or method notes) and say each thing once."""

from __future__ import annotations

import pickle

import pytest

from clientfolio.core.notes import Note, Notes, audience_of, method_note


def test_a_topic_is_said_once_and_audiences_stay_apart() -> None:
    notes = Notes()
    notes.append(Note("no product categories in the data: category preference skipped", topic="no categories"))
    notes.append(Note("category preference skipped: no product categories", topic="no categories"))
    notes.extend(["fewer than 30 repeat buyers", "fewer than 30 repeat buyers"])  # plain text: owner notes
    notes.append(method_note("BG/NBD fitted with penalizer_coef=0.001", topic="no categories"))
    assert [str(n) for n in notes.for_owner()] == ["no product categories in the data: category preference skipped",
                                                   "fewer than 30 repeat buyers"]
    assert [str(n) for n in notes.for_method()] == ["BG/NBD fitted with penalizer_coef=0.001"]
    assert audience_of("plain") == "owner" and audience_of(notes[-1]) == "method"


def test_notes_pickle_with_their_audience() -> None:
    notes = pickle.loads(pickle.dumps(Notes([method_note("r=1.381e+03", topic="fit")])))
    assert notes[0].audience == "method" and notes[0].topic == "fit" and notes[0] == "r=1.381e+03"


def test_an_unknown_audience_is_refused() -> None:
    with pytest.raises(ValueError, match="'owner' or 'method'"):
        Note("x", "shop")  # type: ignore[arg-type]
