"""What changed since last time: entries and exits per segment, by cause, with example customers.

Works on a change log (``customer_id, segment_kind, from_segment, to_segment, changed_at, cause,
reason``, one row per customer per kind that moved): a move from A to B counts as one exit from A
and one entry into B.  Rows whose from and to are equal are not moves and are not counted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import SchemaError
from clientfolio.core.money import currency_prefix, format_money
from clientfolio.live.kinds import KINDS, kind_label, segment_label

__all__ = ["changes_summary", "summary_lines"]

NEEDED = ("customer_id", "segment_kind", "from_segment", "to_segment", "cause", "reason")
SUMMARY_COLUMNS = ["segment_kind", "segment", "entered", "left", "net", "entered_by_cause", "left_by_cause",
                   "examples"]
# How each cause reads in a sentence ("312 after an order"); other causes are quoted as they are.
CAUSE_WORDS = {"order": "after an order", "refund": "after a refund", "event": "after an event",
               "time": "with the passing of time", "refit": "from a refit of the thresholds"}


def _text_or_none(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _texts(values: pd.Series) -> pd.Series:
    """Values as text, missing ones (None, NaN, NA) as None."""
    present = values.notna().to_numpy()
    out = np.full(len(values), None, dtype=object)
    out[present] = values[present].astype(str).to_numpy()
    return pd.Series(out, dtype=object)


def _moves(changes: pd.DataFrame) -> pd.DataFrame:
    """One row per entry or exit: position, customer_id, segment_kind, segment, transition, cause, reason, to."""
    missing = [c for c in NEEDED if c not in changes.columns]
    if missing:
        raise SchemaError(f"changes_summary: the changes have no column(s) {', '.join(missing)}; "
                          f"they need {', '.join(NEEDED)}")
    base = pd.DataFrame({
        "position": np.arange(len(changes)),
        "customer_id": changes["customer_id"].to_numpy(),
        "segment_kind": changes["segment_kind"].astype(str).to_numpy(),
        "from": _texts(changes["from_segment"]),
        "to": _texts(changes["to_segment"]),
        "cause": _texts(changes["cause"]).fillna("unknown"),
        "reason": _texts(changes["reason"]).fillna(""),
    })
    if "clv" in changes.columns:
        base["clv"] = pd.to_numeric(changes["clv"], errors="coerce").to_numpy()
    base = base[base["from"] != base["to"]]
    left = base[base["from"].notna()].assign(segment=lambda d: d["from"], transition="left")
    entered = base[base["to"].notna()].assign(segment=lambda d: d["to"], transition="entered")
    return pd.concat([left, entered], ignore_index=True).sort_values(["position", "transition"], kind="stable",
                                                                       ascending=[True, False])


def _by_cause(moves: pd.DataFrame) -> dict[str, int]:
    counts = moves["cause"].value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def _example(row: pd.Series, kind: str) -> dict[str, Any]:
    said = str(row["reason"])
    if row["transition"] == "entered" or said.startswith(("left ", "entered ")):
        reason = said  # a change log's reasons already say where the customer came from and went
    else:
        to = _text_or_none(row["to"])  # None may have become NaN in the frame
        reason = f"left for {segment_label(kind, to)}: {row['reason']}" if to is not None else "left"
    return {"customer_id": row["customer_id"], "transition": row["transition"], "reason": reason}


def changes_summary(changes: pd.DataFrame, examples: int = 3) -> pd.DataFrame:
    """Per segment kind and segment: entered, left, net, counts by cause, and example customers.

    Columns: ``segment_kind, segment, entered, left, net`` (entered - left), ``entered_by_cause``
    and ``left_by_cause`` ({cause: count}, most first), ``examples`` (up to `examples` dicts
    ``customer_id, transition, reason``: entries first, in change-log order; an exit's reason
    says where the customer went).  Rows: kinds in the order of :data:`clientfolio.live.kinds.KINDS`
    (others after, by name), then the segments that moved most first.
    """
    if examples < 0:
        raise ValueError(f"changes_summary: examples must be 0 or more, got {examples}")
    return _summary(_moves(changes), examples)


def _summary(moves: pd.DataFrame, examples: int) -> pd.DataFrame:
    rows = []
    for (kind, segment), group in moves.groupby(["segment_kind", "segment"], sort=False):
        ins, outs = group[group["transition"] == "entered"], group[group["transition"] == "left"]
        picked = pd.concat([ins, outs]).head(examples)
        rows.append({"segment_kind": kind, "segment": segment, "entered": len(ins), "left": len(outs),
                     "net": len(ins) - len(outs), "entered_by_cause": _by_cause(ins), "left_by_cause": _by_cause(outs),
                     "examples": [_example(r, str(kind)) for _, r in picked.iterrows()]})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if out.empty:
        return out
    order = {k: i for i, k in enumerate(KINDS)}
    out["_kind"] = [order.get(k, len(order)) for k in out["segment_kind"]]
    out["_moved"] = -(out["entered"] + out["left"])
    out = out.sort_values(["_kind", "segment_kind", "_moved", "segment"], kind="stable")
    return out.drop(columns=["_kind", "_moved"]).reset_index(drop=True)


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _causes_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {CAUSE_WORDS.get(c, f'caused by {c!r}')}" for c, n in counts.items())


def summary_lines(changes: pd.DataFrame, currency: str = "", limit: int = 8) -> list[str]:
    """A few plain sentences on what changed since last time, for the terminal and the report.

    The first line counts the moves and their causes; then one line per segment that moved, the
    most movement first (at most `limit`, then a line saying how many more), e.g.
    ``At Risk (lifecycle): 41 entered, 12 left (net +29), e.g. C123: no order in 74 days, ...``.
    Where the changes carry a ``clv`` column, the predicted value of the customers who entered is
    named in `currency` (a code or symbol; empty: the file's currency).
    """
    moves = _moves(changes)
    if moves.empty:
        return ["No segment changes since last time."]
    moved = moves.drop_duplicates("position")
    lines = [f"{_count(len(moved), 'segment change', 'segment changes')} for "
             f"{_count(moved['customer_id'].nunique(), 'customer', 'customers')}: {_causes_text(_by_cause(moved))}."]
    table = _summary(moves, examples=1)
    table = table.assign(_moved=table["entered"] + table["left"]).sort_values("_moved", ascending=False, kind="stable")
    prefix = currency_prefix(currency)
    for _, row in table.head(limit).iterrows():
        kind = str(row["segment_kind"])
        label = kind_label(kind)
        label = label if label.isupper() else label.lower()
        text = f"{segment_label(kind, row['segment'])} ({label}): {row['entered']:,} entered"
        if "clv" in moves.columns and row["entered"]:
            ins = moves[(moves["segment_kind"] == kind) & (moves["segment"] == row["segment"])
                        & (moves["transition"] == "entered")]
            value = float(ins["clv"].sum(min_count=1))
            if math.isfinite(value):
                text += f" ({format_money(value, prefix)} predicted value)"
        notes = [f"net {row['net']:+,}"]
        refits = row["entered_by_cause"].get("refit", 0) + row["left_by_cause"].get("refit", 0)
        if refits:
            notes.append(f"{_count(refits, 'move', 'moves')} from a refit of the thresholds")
        text += f", {row['left']:,} left ({'; '.join(notes)})"
        if row["examples"]:
            ex = row["examples"][0]
            text += f", e.g. {ex['customer_id']}: {ex['reason']}" if ex["reason"] else f", e.g. {ex['customer_id']}"
        lines.append(text)
    if len(table) > limit:
        rest = len(table) - limit
        lines.append(f"… and {_count(rest, 'more segment', 'more segments')} with changes.")
    return lines
