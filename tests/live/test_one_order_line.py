"""The one-line fast path of `_canonical_orders` gives exactly the general path's frame, or its error."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clientfolio.live.portfolio import LiveError, _canonical_orders, _general_orders, _one_order_line, column_lists

BASE = {"customer_id": "C1", "order_id": "o-1", "ts": "2024-12-03 00:01:52", "amount": 40.21}

FAST = [
    {},
    {"order_id": 686543},
    {"customer_id": 17},
    {"ts": "2024-12-03T10:00:00+02:00"},
    {"ts": "2024-12-03T23:30:00-05:30"},
    {"ts": "2024-12-03T10:00:00Z"},
    {"ts": "2024-12-03"},
    {"ts": "2024-12-03 10:00:00.123456"},
    {"amount": -12.5},
    {"amount": 3},
    {"amount": 0.0},
    {"amount": -5.0, "is_refund": False},
    {"source": "shopify"},
    {"line_key": "7"},
    {"category": "cake", "channel": "web", "cost": 15.63, "discount": 2.0},
    {"cost": 4},
    {"cost": np.nan, "quantity": 2.0, "currency": "EUR"},
    {"unrelated": object()},
]
SLOW = [  # not plain: the general path decides (same frame, or its error)
    {"ts": pd.Timestamp("2024-12-03 10:00", tz="Europe/Paris")},
    {"ts": "03/12/2024"},
    {"ts": "yesterday"},
    {"ts": "2024-02-30"},
    {"ts": "2024-12-03 10:00:00.123456789"},
    {"amount": "40.21"},
    {"amount": "abc"},
    {"amount": np.nan},
    {"amount": np.inf},
    {"amount": True},
    {"customer_id": None},
    {"order_id": np.nan},
    {"order_id": 1.5},
    {"product_id": 123},
    {"consent_marketing": True},
    {"category": None},
    {"is_refund": 1},
]


def _frame(extra: dict) -> pd.DataFrame:
    row = {**BASE, **extra}
    return pd.DataFrame({k: [v] for k, v in row.items()})


def _outcome(fn, frame: pd.DataFrame):
    try:
        return fn(frame)
    except LiveError as exc:
        return f"LiveError: {exc}"


@pytest.mark.parametrize("extra", FAST + SLOW, ids=[str(sorted(e)) + str(i) for i, e in enumerate(FAST + SLOW)])
def test_same_as_general(extra: dict) -> None:
    frame = _frame(extra)
    got, want = _outcome(_canonical_orders, frame), _outcome(_general_orders, frame)
    if isinstance(want, str):
        assert got == want
    else:
        assert not isinstance(got, str), got
        pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.mark.parametrize("extra", FAST, ids=[str(sorted(e)) + str(i) for i, e in enumerate(FAST)])
def test_plain_lines_take_the_fast_path(extra: dict) -> None:
    assert _one_order_line(_frame(extra)) is not None


@pytest.mark.parametrize("extra", SLOW, ids=[str(sorted(e)) + str(i) for i, e in enumerate(SLOW)])
def test_other_lines_leave_it(extra: dict) -> None:
    assert _one_order_line(_frame(extra)) is None


def test_missing_column_same_error() -> None:
    frame = pd.DataFrame({"customer_id": ["C1"], "order_id": ["o"], "amount": [1.0]})
    with pytest.raises(LiveError, match="need the column"):
        _canonical_orders(frame)
    assert _one_order_line(frame) is None


def test_a_slice_of_a_larger_frame() -> None:
    frame = pd.concat([_frame({}), _frame({"order_id": "o-2", "amount": -3.0})]).iloc[[1]]
    pd.testing.assert_frame_equal(_canonical_orders(frame), _general_orders(frame), check_exact=True)
    assert _one_order_line(frame) is not None


def _same_values(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        type(x) is type(y) and (x == y or (isinstance(x, float) and x != x and y != y)) for x, y in zip(a, b))


@pytest.mark.parametrize("extra", FAST, ids=[str(sorted(e)) + str(i) for i, e in enumerate(FAST)])
def test_column_lists_are_the_frames_values(extra: dict) -> None:
    frame = _canonical_orders(_frame(extra))
    lists = column_lists(frame)
    assert list(lists) == list(frame.columns)
    for c in frame.columns:
        assert _same_values(lists[c], frame[c].tolist()), c
    other = frame.copy()  # any other frame is read, not taken from the last one made
    other["amount"] = [99.0]
    assert column_lists(other)["amount"] == [99.0]


def test_no_changes_is_a_fresh_empty_change_frame() -> None:
    from clientfolio.live.portfolio import CHANGE_COLUMNS, no_changes

    a = no_changes()
    pd.testing.assert_frame_equal(a, pd.DataFrame([], columns=CHANGE_COLUMNS))
    a["extra"] = []  # a caller changing its copy changes no other
    assert list(no_changes().columns) == CHANGE_COLUMNS


def test_a_flush_makes_one_frame_equal_to_the_lines_frames_concatenated() -> None:
    """Buffered lines (OrderLines, or frames) into one frame for the flush: exactly ``pd.concat`` of their frames,
    whether every line builds its columns the same way (one frame at once) or not (concatenated)."""
    from clientfolio.live.portfolio import OrderLines, as_frame, canonical_lines, lines_frame

    alike = [canonical_lines(_frame({"order_id": f"o-{i}", "amount": 10.0 + i, "category": "cake"})) for i in range(5)]
    assert all(isinstance(x, OrderLines) for x in alike)
    mixed = alike[:2] + [canonical_lines(_frame(extra)) for extra in FAST[:14]] + [_general_orders(_frame({}))]
    for items in (alike, mixed):
        got = lines_frame(items)
        want = pd.concat([as_frame(x) for x in items], ignore_index=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert len(got) == len(items)
