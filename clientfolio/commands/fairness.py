"""`clientfolio fairness`: do the product's decisions fall harder on some groups of customers?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, existing_store, handled


def fairness_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    attribute: Annotated[Optional[list[str]], typer.Option(help="Attribute to audit: region, country, gender, "
                                                                "age_band, postcode_area or a customers column; "
                                                                "repeatable. Default: every one the data has.")]
    = None,
    min_group: Annotated[int, typer.Option(help="Groups with fewer customers are reported as too small to judge.")]
    = 30,
    all_rows: Annotated[bool, typer.Option("--all", help="Show every comparison, not only the notable ones.")]
    = False,
    out: Annotated[Optional[Path], typer.Option(help="Also write the full table (every group and outcome) to "
                                                     "this CSV file.")] = None,
) -> None:
    """Fairness audit: compare divestment, Review quadrant, top value tier and win-back offers across
    region, country, gender, age band and postcode area, each group against all other customers.

    A disparity is reported with its size in points, its 95% interval, and its likely reason:
    whether customers of the group who spend the same fare the same ("explained by spend") or not
    ("review the rule").  Holm's method keeps the chance of any false alarm in the whole audit at 5%.
    """
    from clientfolio.actions.fairness import fairness_audit
    from clientfolio.store import open_store

    with handled("the store is unchanged."):
        if min_group < 1:
            from clientfolio.core.errors import ClientfolioError

            raise ClientfolioError(f"--min-group must be 1 or more, got {min_group}")
        with open_store(existing_store(store)) as st:
            report = fairness_audit(st, attributes=attribute, min_group=min_group)
        if out is not None:
            from clientfolio.core.safecsv import write_frame

            write_frame(report.table, out)
    for f in report.findings:
        style = "bold red" if f.startswith("Warning") else ("yellow" if ": " in f and "points" in f else "")
        console.print(f"[{style}]•[/] {f}" if style else f"• {f}", highlight=False)
    for n in report.notes:
        console.print(f"  note: {n}", highlight=False)
    rows = report.table if all_rows else report.table[report.table["status"] == "disparity"]
    if len(rows):
        t = Table("group", "outcome", "customers", "rate", "others", "points (95% CI)", "same spend", "status")
        for r in rows.itertuples(index=False):
            judged = r.status != "too small to judge"
            diff = f"{r.diff * 100:+.1f} ({r.diff_low * 100:+.1f} to {r.diff_high * 100:+.1f})" if judged else ""
            adj = f"{r.adjusted_diff * 100:+.1f}" if r.adjusted_diff == r.adjusted_diff else ""
            t.add_row(f"{r.attribute}: {r.group}", r.outcome, f"{r.customers:,}", f"{r.rate:.1%}",
                      f"{r.rest_rate:.1%}", diff, adj, r.status)
        console.print(t)
    console.print("points: the group's rate minus that of all other customers; same spend: the difference within "
                  "bands of past spend" + ("" if all_rows else "; --all shows every comparison"), highlight=False)
    if out is not None:
        console.print(f"full table: [bold]{out}[/]")


def register(app: typer.Typer) -> None:
    app.command("fairness")(fairness_cmd)
