"""`clientfolio goal add|list`, `clientfolio budget` and `clientfolio whatif`: plan with the portfolio."""

from __future__ import annotations

import math
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, day_option, existing_store, handled
from clientfolio.core.errors import ClientfolioError

goal_app = typer.Typer(
    help="Goals per segment in SMART form, e.g. cut churn risk in At Risk by 10% by 2027-06-30, tracked against "
    "the data: `clientfolio goal add --kind rfm --segment \"At Risk\" --metric churn_rate --change -10% --by "
    "2027-06-30`, then `clientfolio goal list` after each analysis.",
    no_args_is_help=True,
)


def _fraction(option: str, text: str) -> float:
    """'-10%' or '-0.1' -> -0.1."""
    t = text.strip()
    try:
        return float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ClientfolioError(f"{option} {text!r} is not a number; write e.g. -10% or -0.1") from None


@goal_app.command("add")
def goal_add_cmd(
    kind: Annotated[str, typer.Option("--kind", help="Segment kind, e.g. rfm, lifecycle, value_tier.")],
    segment: Annotated[str, typer.Option("--segment", help="Segment name, e.g. \"At Risk\".")],
    metric: Annotated[str, typer.Option(help="churn_rate, retention, size, revenue, clv, clv_total or aov.")],
    change: Annotated[str, typer.Option(help="Relative change from today: -10% (or -0.1) cuts it by a tenth.",
                                        allow_dash=True)],
    by: Annotated[str, typer.Option("--by", help="Deadline (YYYY-MM-DD).")],
    store: StoreOpt = "clientfolio.duckdb",
    name: Annotated[Optional[str], typer.Option(help="A name for the goal (default goal-1, goal-2, ...).")] = None,
) -> None:
    """Set a goal for a segment; its baseline is measured now."""
    from clientfolio.actions.goals import add_goal
    from clientfolio.store import open_store

    with handled("no goal was stored."):
        day_option("--by", by)
        with open_store(existing_store(store)) as st:
            g = add_goal(st, kind, segment, metric, _fraction("--change", change), by, goal_id=name)
    console.print(f"{g.goal_id}: {g.text}", highlight=False)


@goal_app.command("list")
def goal_list_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """Every goal with its verdict: achieved, on track, behind, missed or too early."""
    from clientfolio.actions.goals import track
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        items = track(st)
    if not items:
        console.print("No goals yet: set one with `clientfolio goal add`.")
        return
    style = {"achieved": "green", "on track": "green", "behind": "yellow", "missed": "red", "too early": ""}
    for p in items:
        s = style[p.verdict]
        console.print(f"[{s}]{p.verdict}[/{s}]  " if s else f"{p.verdict}  ", end="")
        console.print(p.text, highlight=False)


def _assumptions(response: float | None, cost: float | None, floor: float | None, elasticity: float | None):  # noqa: ANN202
    from clientfolio.actions.budget import Assumptions

    a, src = Assumptions(), {}
    for field, value in (("response_rate", response), ("cost_per_customer", cost), ("floor_per_customer", floor),
                         ("elasticity", elasticity)):
        if value is not None:
            setattr(a, field, value)
            src[field] = "set by the caller"
    a.source = src
    return a


def _money_cell(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.2f}"


def budget_cmd(
    amount: Annotated[float, typer.Option(help="The budget to allocate, in the store's currency.")],
    store: StoreOpt = "clientfolio.duckdb",
    kind: Annotated[str, typer.Option(help="Segment kind to allocate across (lifecycle, rfm, portfolio, ...).")]
    = "lifecycle",
    response: Annotated[Optional[float], typer.Option(help="Share of customers responding to a full-strength effort "
                                                           "where staying is most uncertain (default 0.05).")] = None,
    cost: Annotated[Optional[float], typer.Option(help="Spend per customer reaching 63% of the full response "
                                                       "(default 2).")] = None,
    floor: Annotated[Optional[float], typer.Option(help="Minimum service spend every customer keeps (default 0.10).")]
    = None,
) -> None:
    """Retention versus acquisition, and how to split a budget across segments (assumptions stated)."""
    from clientfolio.actions.budget import allocate, retention_vs_acquisition
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        a = _assumptions(response, cost, floor, None)
        advice = retention_vs_acquisition(st, kind, a)
        al = allocate(st, amount, kind, a)
    console.print(advice.text, highlight=False)
    t = Table("segment", "customers", "floor", "spend", "expected extra margin", "range", "per unit", "next unit")
    for r in al.table.itertuples():
        t.add_row(str(r.segment), f"{r.customers:,}", _money_cell(r.floor), _money_cell(r.spend),
                  _money_cell(r.expected_margin), f"{_money_cell(r.expected_margin_low)} – "
                  f"{_money_cell(r.expected_margin_high)}", f"{r.return_per_unit:.2f}", f"{r.marginal_return:.2f}")
    console.print(t)
    console.print(al.text, highlight=False)
    console.print("[bold]Assumptions[/]")
    for line in al.assumptions:
        console.print(f"  • {line}", highlight=False)


def whatif_cmd(
    segment: Annotated[str, typer.Option("--segment", help="The segment to change, e.g. Review.")],
    store: StoreOpt = "clientfolio.duckdb",
    kind: Annotated[str, typer.Option(help="Its segment kind.")] = "portfolio",
    action: Annotated[str, typer.Option(help="drop, reprice or retier.")] = "drop",
    price_change: Annotated[float, typer.Option(help="reprice: price change, 0.05 = +5%.")] = 0.0,
    elasticity: Annotated[Optional[float], typer.Option(help="reprice: own-price elasticity (default -1.5, an "
                                                             "assumption).")] = None,
    service_cost: Annotated[float, typer.Option(help="retier: change in cost to serve per customer over the CLV "
                                                     "horizon.")] = 0.0,
    value_change: Annotated[float, typer.Option(help="retier: assumed relative change in the customers' value, "
                                                     "e.g. -0.05.")] = 0.0,
) -> None:
    """Project customers, CLV and profit if a segment is dropped, repriced or re-tiered (with ranges)."""
    from clientfolio.actions.budget import what_if
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        sc = what_if(st, segment, kind, action, price_change=price_change, elasticity=elasticity,  # type: ignore[arg-type]
                     service_cost_change=service_cost, value_change=value_change)
    t = Table("", "before", "after", "change", "after: range")
    for r in sc.table.itertuples():
        fmt = (lambda v: f"{v:,.0f}") if r.measure == "customers" else _money_cell
        rng = "" if math.isnan(r.after_low) else f"{_money_cell(r.after_low)} – {_money_cell(r.after_high)}"
        t.add_row(str(r.measure), fmt(r.before), fmt(r.after), fmt(r.change), rng)
    console.print(t)
    console.print(sc.text, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(goal_app, name="goal")
    app.command("budget")(budget_cmd)
    app.command("whatif")(whatif_cmd)
