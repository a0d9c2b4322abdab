"""`clientfolio playbooks`, `clientfolio act` and `clientfolio export`: what to do per segment, the send list that
does it, and the segment in your tools' layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, day_option, existing_store, handled
from clientfolio.core.errors import ClientfolioError


def playbooks_cmd(
    store: Annotated[Optional[str], typer.Option(
        "--store", envvar="CLIENTFOLIO_STORE",
        help="An analysed store: list its segments with their sizes and playbooks.  Without it, the playbooks "
             "themselves are listed.")] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", help="Your playbook file (YAML), merged over the built-in defaults and checked entry by entry.")] = None,
    write: Annotated[Optional[Path], typer.Option(
        "--write", help="Write the built-in playbooks to this file for you to edit (an existing file is kept).")] = None,
    install_triggers: Annotated[bool, typer.Option(
        "--install-triggers", help="Subscribe the living portfolio (--store) to the playbooks: a customer entering a "
                                   "segment gets that segment's playbook in the outbox (consent and the contact cap "
                                   "applied).  Replaces the playbook subscriptions installed before; others stay.")]
    = False,
) -> None:
    """What to do for each segment: service level, offer, channel, angle, cadence and the KPI that says it works.

    Every segment keeps at least self-service.  Behavioural levers (loss framing, social proof,
    scarcity, defaults, reciprocity) are used only truthfully, with opt-out honoured, never aimed
    at vulnerable groups, and only for customers who consented to nudges.  Segments marked
    "not tailored" have the generic playbook: write one for them in your file.

    Start with `clientfolio playbooks --write playbooks.yaml`, edit it, then
    `clientfolio playbooks --file playbooks.yaml --store shop.duckdb`.
    """
    from clientfolio.actions.playbooks import install_playbook_triggers, load_playbooks, playbook_table, \
        write_default_playbooks
    from clientfolio.store import open_store

    with handled("nothing was changed."):
        if write is not None:
            write_default_playbooks(write)
            console.print(f"the built-in playbooks are in [bold]{write}[/]: edit them, then pass the file with "
                          f"--file {write}", highlight=False)
            return
        pb = load_playbooks(file)
        if install_triggers:
            if store is None:
                raise ClientfolioError("--install-triggers needs the analysed store: --store shop.duckdb")
            with open_store(existing_store(store)) as st:
                kept, installed = install_playbook_triggers(st, pb)
            console.print(f"installed {installed:,} playbook subscription(s) (on entry, with consent and the contact "
                          f"cap); {kept:,} other subscription(s) kept", highlight=False)
            return
        if store is not None:
            with open_store(existing_store(store)) as st:
                table = playbook_table(st, pb)
        else:
            import pandas as pd

            rows = [(p.segment_kind, p.segment) for p in pb.entries()]
            table = playbook_table(pd.DataFrame(rows, columns=["segment_kind", "segment"]), pb)
            table["size"] = ""
    if table.empty:
        console.print("no segments in this store yet: run `clientfolio analyze --store STORE` first")
        return
    from clientfolio.live.kinds import kind_label, segment_label

    for kind, part in table.groupby("segment_kind", sort=False):
        t = Table("segment", "size", "service", "what to do", "levers", title=kind_label(kind), show_lines=True,
                  title_justify="left")
        for r in part.itertuples():
            name = segment_label(kind, str(r.segment)) if r.segment != "*" else "* (any other)"
            if r.tailored != "yes":
                name += "\n[yellow]generic: not tailored[/]"
            todo = (f"{r.offer}\n[dim]channel:[/] {r.channel}  [dim]angle:[/] {r.angle}\n[dim]cadence:[/] {r.cadence}"
                    f"\n[dim]KPI:[/] {r.kpi}" + (f"\n[dim]plan:[/] {r.steps}" if r.steps else ""))
            t.add_row(name, f"{r.size:,}" if r.size != "" else "", r.service_level, todo, r.levers or "-")
        console.print(t)
    untailored = table[table["tailored"] == "no"]
    if len(untailored):
        console.print(f"[yellow]{len(untailored)} segment(s) have no playbook of their own[/] (generic standard "
                      "service): " + ", ".join(f"{k} {s!r}" for k, s in zip(untailored["segment_kind"],
                                                                           untailored["segment"]))
                      + "; add them to your file (`--write` gives one to start from)", highlight=False)
    console.print("levers are used only for customers who consented to nudges; guardrail: truthful only, opt-out "
                  "honoured, never aimed at vulnerable groups", highlight=False)


def export_cmd(
    segment: Annotated[str, typer.Option("--segment", help="The segment to export, e.g. \"At Risk\" (any case).")],
    to: Annotated[str, typer.Option("--to", help="mailchimp, klaviyo, hubspot, zoho, salesforce, shopify, csv or "
                                                 "parquet.")],
    kind: Annotated[Optional[str], typer.Option("--kind", help="The segment's kind when its name is in several "
                                                                "(rfm, lifecycle, value_tier, ...).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The file to write (default: <to>-<kind>-<segment>.csv "
                                                     "here).")] = None,
    store: StoreOpt = "clientfolio.duckdb",
    since: Annotated[Optional[str], typer.Option(help="Only customers who entered the segment on or after this day "
                                                      "(YYYY-MM-DD, from the change log) and are still in it.")] = None,
    pseudonymise: Annotated[bool, typer.Option("--pseudonymise", help="Replace customer ids by pseudonyms and drop "
                                                                      "e-mail addresses (csv/parquet only: for "
                                                                      "analysis or an agency).")] = False,
) -> None:
    """Export a segment in the import layout of your e-mail tool, CRM or shop.

    Only customers with consent to marketing on the tool's channel are exported; the others are
    counted by reason.  Names and phone numbers are not held by clientfolio, so those columns
    are empty.  Customers at the contact cap are left out and counted.  The file is safe to open
    in a spreadsheet, and each exported customer is logged as contacted (so the cap counts it).
    When exports need approval (`clientfolio approvals --require export`) nothing is written:
    the export waits in the queue and its id is printed.  Example:
    `clientfolio export --segment "At Risk" --kind rfm --to klaviyo --store shop.duckdb`.
    """
    from clientfolio.actions.exports import export_segment
    from clientfolio.store import open_store

    with handled("no file was written."):
        day_option("--since", since)
        with open_store(existing_store(store)) as st:
            result = export_segment(st, segment, kind=kind, target=to, out=out, since=since,
                                    pseudonymise=pseudonymise)
    lines = result.summary()
    console.print(f"[bold]{lines[0]}[/]", highlight=False)
    for line in lines[1:]:
        console.print(f"  {line}", highlight=False)


def act_cmd(
    segment: Annotated[str, typer.Option("--segment", help="The segment to act on, e.g. \"At Risk\" (any case).")],
    kind: Annotated[Optional[str], typer.Option("--kind", help="The segment's kind when its name is in several "
                                                                "(rfm, lifecycle, value_tier, ...).")] = None,
    to: Annotated[Optional[Path], typer.Option("--to", help="The send list to write (CSV; default "
                                                            "send-<kind>-<segment>.csv here).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say who would get it and who is left out; write and "
                                                            "log nothing.")] = False,
    file: Annotated[Optional[Path], typer.Option("--file", help="Your playbook file (YAML), merged over the "
                                                                "built-in ones.")] = None,
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Write the send list of a segment's playbook: customer, e-mail, offer, channel, angle and the levers allowed.

    Only customers with consent to the playbook's purpose on its channel and below the contact
    cap are listed; levers only for those who consented to nudges.  The others are counted by
    reason.  Each listed customer is logged as contacted.  When sends need approval
    (`clientfolio approvals --require playbook_send`), the send waits in the queue.  Example:
    `clientfolio act --segment "At Risk" --kind lifecycle --to at-risk.csv --store shop.duckdb`.
    """
    from clientfolio.actions.sends import act
    from clientfolio.store import open_store

    with handled("no file was written."):
        with open_store(existing_store(store)) as st:
            result = act(st, segment, kind=kind, out=to, playbooks=file, dry_run=dry_run)
    lines = result.summary()
    console.print(f"[bold]{lines[0]}[/]", highlight=False)
    for line in lines[1:]:
        console.print(f"  {line}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `playbooks`, `act` and `export` to the CLI."""
    app.command("playbooks")(playbooks_cmd)
    app.command("act")(act_cmd)
    app.command("export")(export_cmd)
