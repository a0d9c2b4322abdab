"""Numbers in plain words: shared by the change log's reasons and the predictions' reasons."""

from __future__ import annotations


def decimal_text(v: float, decimals: int) -> str:
    """`v` with up to `decimals` decimals and thousands separators, trailing zeros dropped."""
    text = f"{v:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def rhythm_text(v: float) -> str:
    """A usual gap between orders: whole days from 10 days on (it is a habit, not a measurement)."""
    return decimal_text(v, 0) if v >= 10 else decimal_text(v, 1)
