"""`clientfolio experiment start|list|assignments|readout|advise`: test an action on a segment against a holdout."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, day_option, existing_store, handled

experiment_app = typer.Typer(
    help="Test whether an action works: hold out part of a segment, act on the rest, compare.\n\n"
    "1. `clientfolio experiment advise --kind rfm --segment \"At Risk\" --effect 0.05` says whether the segment is "
    "big enough.\n2. `clientfolio experiment start winback --kind rfm --segment \"At Risk\"` splits it and records "
    "who is held out; `clientfolio experiment assignments winback --out treated.csv` gives the list to act on.\n"
    "3. After the window, import the new orders and run `clientfolio experiment readout winback`.",
    no_args_is_help=True,
)

KindOpt = Annotated[str, typer.Option("--kind", help="Segment kind, e.g. rfm, lifecycle, value_tier, portfolio.")]
SegmentOpt = Annotated[str, typer.Option("--segment", help="Segment name as the analysis shows it, e.g. \"At Risk\".")]
HoldoutOpt = Annotated[float, typer.Option("--holdout", help="Share of the segment held out (not treated), "
                                                             "between 0 and 1.")]


def _pct(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


@experiment_app.command("start")
def start_cmd(
    name: Annotated[str, typer.Argument(help="A name for the experiment, e.g. winback-2025-03.")],
    kind: KindOpt,
    segment: SegmentOpt,
    store: StoreOpt = "clientfolio.duckdb",
    holdout: HoldoutOpt = 0.2,
    seed: Annotated[Optional[str], typer.Option(help="Seed of the split (default: the name). The same seed gives "
                                                     "the same split on any machine.")] = None,
    metric: Annotated[str, typer.Option(help="Primary metric: conversion, revenue or retention.")] = "conversion",
    window: Annotated[int, typer.Option(help="Days after the start in which an order counts.")] = 60,
    at: Annotated[Optional[str], typer.Option(help="Start date (YYYY-MM-DD); default now.")] = None,
    description: Annotated[Optional[str], typer.Option(help="What the treated customers get, in words, e.g. "
                                                            "\"the win-back offer\" (used in the read-out).")] = None,
) -> None:
    """Split a segment into treatment and holdout and record who is in which."""
    from clientfolio.actions.experiments import start_experiment
    from clientfolio.store import open_store

    with handled("no experiment was recorded."):
        day_option("--at", at)
        with open_store(existing_store(store)) as st:
            e = start_experiment(st, name, kind, segment, holdout_share=holdout, seed=seed, metric=metric,  # type: ignore[arg-type]
                                 window_days=window, at=at, description=description)
    console.print(e.text, highlight=False)
    console.print(f"Next: `clientfolio experiment assignments {name} --out treated.csv` for the customers to act on.",
                  highlight=False)


@experiment_app.command("list")
def list_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """The recorded experiments, newest first."""
    from clientfolio.actions.experiments import experiments
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        df = experiments(st)
    if df.empty:
        console.print("No experiments yet: start one with `clientfolio experiment start`.")
        return
    t = Table("name", "segment", "started", "window", "metric", "treated", "held out", "seed", "what")
    for r in df.itertuples():
        t.add_row(r.name, f"{r.segment} ({r.segment_kind})", f"{r.started_at:%Y-%m-%d}", f"{r.window_days} days",
                  r.metric, f"{int(r.treatment or 0):,}", f"{int(r.holdout or 0):,}", str(r.seed),
                  r.description or "")
    console.print(t)


@experiment_app.command("assignments")
def assignments_cmd(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    out: Annotated[Path, typer.Option(help="CSV file to write (customer_id, arm, assigned_at).")],
    store: StoreOpt = "clientfolio.duckdb",
    arm: Annotated[Optional[str], typer.Option(help="Only this arm: treatment or holdout.")] = None,
) -> None:
    """Write who is treated and who is held out (spreadsheet-safe CSV)."""
    from clientfolio.actions.experiments import ExperimentError, assignments
    from clientfolio.actions.outputs import record_output
    from clientfolio.core.safecsv import write_frame
    from clientfolio.store import open_store

    with handled("no file was written."), open_store(existing_store(store)) as st:
        if arm not in (None, "treatment", "holdout"):
            raise ExperimentError(f"--arm must be treatment or holdout, got {arm!r}")
        df = assignments(st, name)
        if arm:
            df = df[df["arm"] == arm]
        write_frame(df, out)
        record_output(st, out, "experiment", len(df))
    console.print(f"wrote {len(df):,} customers to {out}", highlight=False)


@experiment_app.command("readout")
def readout_cmd(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    store: StoreOpt = "clientfolio.duckdb",
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Use data up to this date (default: the last "
                                                                "order in the store).")] = None,
    alpha: Annotated[float, typer.Option(help="Error rate of the tests; intervals are 1 - alpha.")] = 0.05,
) -> None:
    """Compare the arms: conversion, revenue per customer and retention, with intervals and tests."""
    from clientfolio.actions.experiments import read_out
    from clientfolio.store import open_store

    with handled("nothing was changed."):
        day_option("--as-of", as_of)
        with open_store(existing_store(store)) as st:
            r = read_out(st, name, as_of=as_of, alpha=alpha)
    t = Table("metric", "treated", "held out", "difference", f"{1 - alpha:.0%} CI", "p", "verdict")
    for row in r.table.itertuples():
        if row.metric == "revenue":
            vals = [f"{row.treatment:,.2f}", f"{row.holdout:,.2f}", f"{row.difference:+,.2f}",
                    f"{row.ci_low:,.2f} to {row.ci_high:,.2f}"]
        else:
            vals = [_pct(row.treatment), _pct(row.holdout), f"{row.difference * 100:+.1f} pts",
                    f"{row.ci_low * 100:.1f} to {row.ci_high * 100:.1f} pts"]
        p = "" if math.isnan(row.p_value) else (f"{row.p_value:.3g}" if row.p_value >= 0.001 else "<0.001")
        t.add_row(row.metric, *vals, p, row.verdict)
    console.print(t)
    console.print(r.text, highlight=False)


@experiment_app.command("advise")
def advise_cmd(
    kind: KindOpt,
    segment: SegmentOpt,
    effect: Annotated[float, typer.Option(help="Smallest rise in the rate worth detecting, absolute: 0.05 = "
                                               "5 points (e.g. 20% -> 25%).")],
    store: StoreOpt = "clientfolio.duckdb",
    baseline: Annotated[Optional[float], typer.Option(help="Rate without treatment (0.2 = 20%); default: measured "
                                                           "on an earlier snapshot of the segment.")] = None,
    holdout: HoldoutOpt = 0.2,
    alpha: Annotated[float, typer.Option(help="Two-sided error rate.")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance of detecting the effect if it is there.")] = 0.8,
    window: Annotated[int, typer.Option(help="Days in which an order counts.")] = 60,
) -> None:
    """Before a test: how many customers it needs, and whether the segment has them."""
    from clientfolio.actions.experiments import advise
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        a = advise(st, kind, segment, effect, baseline_rate=baseline, alpha=alpha, power=power,
                   holdout_share=holdout, window_days=window)
    style = "green" if a.enough else "yellow"
    console.print(f"[{style}]{a.text}[/{style}]", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
