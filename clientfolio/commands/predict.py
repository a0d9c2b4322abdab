"""`clientfolio predict`: churn risk and next order per customer, each measured against BG/NBD first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

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
    save: Annotated[bool, typer.Option(help="Write the scores into the store's predictions table (replacing "
                                            "the previous ones, all or nothing), with the day they are as of.")]
    = True,
) -> None:
    """Churn risk (no order in the next N days; for subscribers, cancelling) and days to the next order.

    Boosted trees are trained on a time split (features before a cut-off, outcomes after) and
    compared with the BG/NBD purchase model on the last N days, which neither saw; the table shows
    AUC, PR-AUC, Brier score and top-decile lift for churn and the mean absolute error for next
    order. Each task uses whichever did better, and says why. With too few customers no ML model is
    trained and BG/NBD is used; with too short a history nothing is predicted and the command says
    why.  On a store the scores go into its predictions table, as of the last order.  Live updates
    and the daily sweep rescore the customers they touch with the models kept in the fitted state,
    which are those of `analyze --predict` or `refit`, not of this command.

    A shop that sends subscription_start and subscription_cancel events also gets, for customers with
    a running subscription, the chance of cancelling in the next N days, measured against the
    renewal model (sBG) the same way.
    """
    from clientfolio.predict.evaluation import predict_shop

    with handled("nothing was written."):
        if demo:
            from clientfolio.datasets import load_demo_shop

            result = predict_shop(load_demo_shop(), horizon_days=horizon, random_state=seed)
        else:
            from clientfolio.predict.stored import save_predictions
            from clientfolio.store import open_store

            with open_store(existing_store(store)) as st:
                result = predict_shop(st, horizon_days=horizon, random_state=seed)
                saved = save_predictions(st, result) if save else None
        if out is not None:
            from clientfolio.core.safecsv import write_frame

            write_frame(result.customers, out)
    for c in result.comparisons:
        print_comparison(c)
    if out is not None:
        console.print(f"Wrote {len(result.customers):,} customers to {out}", highlight=False)
    if not demo and save:
        console.print(f"Stored {saved:,} customers' churn risk and next order in {store} (table predictions), as "
                      f"of {result.customers.attrs['as_of']:%d %B %Y}. Live updates and the daily sweep rescore the "
                      "customers they touch with the models of the last `analyze --predict` or `refit` (kept in the "
                      "fitted state), if any.",
                      highlight=False)


def _num(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) else "n/a"


def print_comparison(c: Any) -> None:
    """One evaluation table (model against baseline on the test split), the choice and what the interval covers."""
    who = "active subscribers" if c.task == "subscription churn" else "customers"
    t = Table("metric", c.model_name, c.baseline_name, "better", title=f"{c.task} (N = {c.horizon_days} days, "
              f"test from {c.cutoff}, {c.n_test:,} {who})")
    for m in c.metrics:
        better = ("n/a" if not (math.isfinite(m.model) and math.isfinite(m.baseline))
                  else c.model_name if m.model_wins else c.baseline_name)
        t.add_row(m.name, _num(m.model), _num(m.baseline), better)
    console.print(t)
    console.print(c.sentence, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
