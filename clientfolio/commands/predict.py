"""`clientfolio predict`: churn risk and next order per customer, each measured against BG/NBD first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, existing_store, handled


def predict_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    demo: Annotated[bool, typer.Option("--demo", help="Run on the bundled demo bakery instead of a store.")] = False,
    horizon: Annotated[Optional[int], typer.Option(help="Churn horizon N in days (default: from the shop's rhythm, "
                                                        "the 75th percentile of returning customers' usual gap).")]
    = None,
    out: Annotated[Optional[Path], typer.Option(help="Write one row per customer (churn risk, next order with its "
                                                     "80% interval, which method, reason) to this CSV file.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the boosted trees (same seed, same scores).")] = 0,
) -> None:
    """Churn risk (no order in the next N days) and days to the next order, per customer.

    Boosted trees are trained on a time split (features before a cut-off, outcomes after) and
    compared with the BG/NBD purchase model on the last N days, which neither saw; the table shows
    AUC, PR-AUC, Brier score and top-decile lift for churn and the mean absolute error for next
    order. Each task uses whichever did better, and says why. With too few customers no ML model is
    trained and BG/NBD is used.
    """
    from clientfolio.predict.evaluation import predict_shop

    with handled("nothing was written."):
        if demo:
            from clientfolio.datasets import load_demo_shop

            result = predict_shop(load_demo_shop(), horizon_days=horizon, random_state=seed)
        else:
            from clientfolio.store import open_store

            with open_store(existing_store(store)) as st:
                result = predict_shop(st, horizon_days=horizon, random_state=seed)
        if out is not None:
            from clientfolio.core.safecsv import write_frame

            write_frame(result.customers, out)
    for c in result.comparisons:
        t = Table("metric", c.model_name, c.baseline_name, "better", title=f"{c.task} (N = {c.horizon_days} days, "
                  f"test from {c.cutoff}, {c.n_test:,} customers)")
        for m in c.metrics:
            t.add_row(m.name, f"{m.model:.3f}", f"{m.baseline:.3f}", c.model_name if m.model_wins else c.baseline_name)
        console.print(t)
        console.print(c.sentence, highlight=False)
    if out is not None:
        console.print(f"Wrote {len(result.customers):,} customers to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
