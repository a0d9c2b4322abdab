"""`clientfolio contacts`: how often customers are contacted, and the cap that keeps it in bounds."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, day_option, existing_store, handled


def contacts_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    customer: Annotated[Optional[str], typer.Option(help="Show one customer's contacts and whether the cap "
                                                         "allows another.")] = None,
    kind: Annotated[str, typer.Option(help="Segment kind to show pressure for (lifecycle, value_tier, rfm, ...).")]
    = "lifecycle",
    cap: Annotated[Optional[list[str]], typer.Option(help="Set the cap: WINDOW=LIMIT, repeated, e.g. --cap 7d=2 "
                                                          "--cap 30d=6 (windows in days d or hours h). Replaces "
                                                          "the caps set before.")] = None,
    at: Annotated[Optional[str], typer.Option(help="Judge as of this day (YYYY-MM-DD); default now.")] = None,
) -> None:
    """Contact pressure: how many marketing contacts each customer (or segment) had in each window,
    who has reached the cap, and the cap itself.

    Every playbook send, export and trigger counts together, on every channel.
    Without a cap of your own the default is at most 2 contacts in 7 days and 6 in 30 days.
    """
    import pandas as pd

    from clientfolio.actions import pressure as pr
    from clientfolio.store import open_store

    with handled("the store is unchanged."):
        day_option("--at", at)
        when = pd.Timestamp(at) if at else None
        with open_store(existing_store(store)) as st:
            if cap:
                caps = pr.set_caps(st, pr.parse_caps(cap))
                console.print("contact cap set: " + _caps_words(caps), highlight=False)
                return
            caps = pr.get_caps(st)
            default = st.get_meta(pr.CAPS_KEY) is None
            console.print("contact cap" + (" (default)" if default else "") + ": " + _caps_words(caps)
                          + " — marketing and nudges, every channel and origin together", highlight=False)
            if customer:
                hist = pr.contact_history(st, customer)
                blocked = pr.over_cap(st, [customer], at=when, caps=caps)
                p = pr.contact_pressure(st, [customer], at=when, caps=caps)
                _print_customer(customer, hist, blocked, p)
                return
            by = pr.pressure_by_segment(st, kind, at=when, caps=caps)
    longest = list(caps)[-1]
    t = Table(f"{kind} segment", "customers", f"contacted in {longest}", *(f"contacts in {w} (mean)" for w in caps),
              "at the cap now", "share")
    for r in by.itertuples(index=False):
        d = r._asdict()
        t.add_row(str(r.segment), f"{r.customers:,}", f"{r.contacted:,}", *(f"{d[f'contacts_{w}']:.2f}" for w in caps),
                  f"{r.at_cap:,}", f"{r.at_cap_share:.1%}")
    console.print(t)


def _caps_words(caps: dict[str, int]) -> str:
    from clientfolio.actions.pressure import _window_words

    return " and ".join(f"at most {n} in {_window_words(w)}" for w, n in caps.items())


def _print_customer(customer: str, hist, blocked: dict[str, str], p) -> None:  # noqa: ANN001
    if hist.empty:
        console.print(f"{customer}: no contacts logged", highlight=False)
    else:
        t = Table("when (UTC)", "channel", "purpose", "origin", "ref")
        for r in hist.itertuples(index=False):
            t.add_row(f"{r.contacted_at:%Y-%m-%d %H:%M}", r.channel, r.purpose, r.origin, r.ref)
        console.print(t)
    if customer in blocked:
        nxt = p["next_allowed"].iloc[0] if len(p) else None
        when = f"; next contact possible after {nxt:%Y-%m-%d %H:%M} UTC" if nxt is not None and not _nat(nxt) else ""
        console.print(f"[yellow]{customer} may not be contacted now[/]: {blocked[customer]}{when}", highlight=False)
    else:
        console.print(f"[green]{customer} is below the cap[/]: another contact is allowed", highlight=False)


def _nat(v) -> bool:  # noqa: ANN001
    import pandas as pd

    return bool(pd.isna(v))


def register(app: typer.Typer) -> None:
    app.command("contacts")(contacts_cmd)
