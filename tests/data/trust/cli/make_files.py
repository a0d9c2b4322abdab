"""Regenerate the hostile files of this folder (deterministic): python tests/data/trust/cli/make_files.py"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Customer ids and categories a spreadsheet would run as formulas, plus a bare CR and a line break.
HOSTILE_IDS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://example.com/x","click")', "@SUM(1+1)", "+1+1",
               "-2+3", "\tTAB", "C\r7", "C\n8", "-12.5", "C10", "C11", "C12"]
CATEGORIES = ["=1+1", "@cmd", "bread", "-cake", "coffee\rbeans"]


def orders() -> None:
    with open(HERE / "formula_orders.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(["customer_id", "order_id", "date", "amount", "category"])
        n = 0
        for i, cid in enumerate(HOSTILE_IDS):
            for k in range(1 + i % 4):
                n += 1
                day = dt.date(2024, 1, 3) + dt.timedelta(days=(i * 37 + k * 61) % 360)
                w.writerow([cid, f"O{n}", day.isoformat(), f"{10 + (i * 7 + k * 3) % 40}.50",
                            CATEGORIES[(i + k) % len(CATEGORIES)]])
        # rows the importer rejects, whose rejected values are formulas
        w.writerow(["C10", "O900", "2024-05-01", "=1+2", "bread"])
        w.writerow(["C11", "O901", "@SUM(A1)", "12.00", "bread"])
        w.writerow(["C12", "O902", "2024-05-02", "+cmd|' /C calc'!A0", "bread"])


def rules() -> None:
    # Billion laughs: each level refers to the one before ten times (10^5 conditions once expanded).
    lines = ["a0: &a0 {field: revenue, gt: 1}"]
    for lvl in range(1, 6):
        refs = ", ".join([f"*a{lvl - 1}"] * 10)
        lines.append(f"a{lvl}: &a{lvl} {{all: [{refs}]}}")
    text = "x-anchors:\n" + "\n".join("  " + ln for ln in lines) + "\nsegments:\n  - name: boom\n    when: *a5\n"
    (HERE / "rules_alias_bomb.yaml").write_text(text, encoding="utf-8")

    segs = "".join(f"  - name: s{i}\n    when: {{field: revenue, gt: {i}}}\n" for i in range(250))
    (HERE / "rules_many_segments.yaml").write_text("segments:\n" + segs, encoding="utf-8")

    deep = "{field: revenue, gt: 1}"
    for _ in range(300):
        deep = "{not: " + deep + "}"
    (HERE / "rules_deep_nesting.yaml").write_text(f"segments:\n  - name: deep\n    when: {deep}\n", encoding="utf-8")

    conds = ", ".join(f"{{field: revenue, gt: {i}}}" for i in range(2500))
    (HERE / "rules_many_conditions.yaml").write_text(
        f"segments:\n  - name: wide\n    when: {{any: [{conds}]}}\n", encoding="utf-8")

    deep_json = '{"field": "revenue", "gt": 1}'
    for _ in range(1500):
        deep_json = '{"not": ' + deep_json + "}"
    (HERE / "rules_deep_nesting.json").write_text(
        '{"segments": [{"name": "deep", "when": ' + deep_json + "}]}", encoding="utf-8")

    (HERE / "rules_unknown_field.yaml").write_text(
        "segments:\n  - name: typo\n    when: {field: revenu, gt: 1}\n", encoding="utf-8")


if __name__ == "__main__":
    orders()
    rules()
