"""Privacy commands: consent, correction, erasure, access, event retention."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, err, existing_store, handled
from clientfolio.core.errors import ClientfolioError

consent_app = typer.Typer(help="Consent per purpose (marketing, personalisation, nudges) and channel (email, sms, "
                               "phone, post, push, any): record, import from a file, show.", no_args_is_help=True)


@consent_app.command("set")
def consent_set(
    customer: Annotated[str, typer.Argument(help="The customer's id.")],
    purpose: Annotated[str, typer.Option(help="marketing, personalisation or nudges.")],
    channel: Annotated[str, typer.Option(help="email, sms, phone, post, push, or any (every channel).")],
    grant: Annotated[bool, typer.Option("--grant/--withdraw", help="Record a grant or a withdrawal.")],
    source: Annotated[str, typer.Option(help="Where the decision came from (form, phone call, ...).")] = "manual",
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Record one consent decision; the newest decision for a purpose and channel wins."""
    import pandas as pd

    from clientfolio.actions.consent import consent_status, record_consent
    from clientfolio.store import open_store

    with handled("no consent was recorded."), open_store(existing_store(store)) as st:
        if st.query("SELECT count(*) AS n FROM customers WHERE customer_id = ?", [customer])["n"].iloc[0] == 0:
            raise ClientfolioError(f"no customer '{customer}' in the store; check the id")
        record_consent(st, pd.DataFrame({"customer_id": [customer], "purpose": [purpose], "channel": [channel],
                                         "granted": [grant]}), source=source)
        now = consent_status(st, [customer], purpose, channel).iloc[0]
    console.print(f"{customer}: {purpose} by {channel} {'allowed' if now['allowed'] else 'not allowed'} "
                  f"({now['basis']})", highlight=False)


@consent_app.command("import")
def consent_import(
    file: Annotated[Path, typer.Argument(help="CSV with customer_id, purpose, channel, granted (and optionally "
                                              "recorded_at, source).")],
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Record consent decisions from a CSV; bad rows go to FILE.rejects.csv with row, column and reason.

    granted takes true/false, yes/no, 1/0 or granted/withdrawn; recorded_at an ISO date or time.
    Nothing is guessed: any other value is rejected.
    """
    from clientfolio.actions.consent_file import import_consent_file
    from clientfolio.store import open_store

    with handled("no consent from this file was recorded."):
        if not file.is_file():
            raise ClientfolioError(f"{file}: file not found; check the path")
        with open_store(existing_store(store)) as st:
            r = import_consent_file(st, file)
    console.print(f"{file}: {r.rows_in:,} rows = recorded {r.recorded:,} + rejected {r.rejected:,}"
                  + (f" + erased on request {r.erased:,} (skipped)" if r.erased else ""), highlight=False)
    for reason, n in sorted(r.reasons.items(), key=lambda kv: -kv[1])[:6]:
        console.print(f"  [yellow]rejected {n:,}[/]: {reason}", highlight=False)
    if r.rejects_path:
        console.print(f"rejected rows, with row, column, value and reason: [bold]{r.rejects_path}[/]")


@consent_app.command("show")
def consent_show(customer: Annotated[str, typer.Argument(help="The customer's id.")],
                 store: StoreOpt = "clientfolio.duckdb") -> None:
    """Every purpose and channel for one customer: allowed or not, and on what basis."""
    from clientfolio.actions.consent import consent_status
    from clientfolio.store import open_store
    from clientfolio.store.schema import CHANNELS, PURPOSES

    t = Table("purpose", "channel", "allowed", "basis")
    with handled("the store is unchanged."), open_store(existing_store(store)) as st:
        if st.query("SELECT count(*) AS n FROM customers WHERE customer_id = ?", [customer])["n"].iloc[0] == 0:
            raise ClientfolioError(f"no customer '{customer}' in the store; check the id")
        for p in PURPOSES:
            for c in CHANNELS:
                s = consent_status(st, [customer], p, c).iloc[0]
                t.add_row(p, c, "yes" if s["allowed"] else "no", str(s["basis"]))
    console.print(t)


def correct_cmd(
    customer: Annotated[str, typer.Argument(help="The customer's id.")],
    set_: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE; repeat for several fields "
                                                          "(an empty VALUE removes it).")],
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Correct a customer's data on request (GDPR Art. 16): e-mail, region, country, industry, size, channel.

    The change and the record that a correction happened (field and time, not the old value) are
    written together.  Correct it in your shop system too, or the next import of an old export
    brings the old value back.
    """
    from clientfolio.actions.correction import correct_customer, parse_assignments
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        c = correct_customer(st, customer, parse_assignments(set_))
    console.print(f"{customer}: corrected {', '.join(c.fields)} ("
                  + ", ".join(f"{t} {n:,} row(s)" for t, n in c.rows.items()) + ")", highlight=False)
    console.print("  scores and segments that use these fields change at the next `clientfolio update` or analysis; "
                  "correct the shop system too, so a later import does not bring the old value back", highlight=False)


def erase_cmd(
    customer: Annotated[str, typer.Argument(help="The customer's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking (for scripts).")] = False,
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Erase a customer on request (GDPR Art. 17) from every table and every file clientfolio wrote.

    Shows what will go and asks first (unless --yes).  Tables and exports lose the customer's rows,
    reports naming them are deleted; a tombstone (a keyed pseudonym, no personal data) keeps later
    imports from bringing them back.
    """
    from clientfolio.actions.erasure import erase_customer, plan_erasure
    from clientfolio.store import open_store

    with handled("nothing was erased (or, if files were already rewritten, run the erasure again to finish)."), \
            open_store(existing_store(store)) as st:
        plan = plan_erasure(st, customer)
        if not plan.empty and not yes:
            _print_plan(plan)
            if not typer.confirm("Erase this customer for good?", default=False):
                err.print("nothing was erased")
                raise typer.Exit(code=1)
        r = erase_customer(st, customer)
    t = Table("where", "removed")
    for name, n in sorted(r.rows.items()):
        t.add_row(name, f"{n:,} row(s)")
    for name, n in sorted(r.mentions.items()):
        t.add_row(name, f"mention removed from {n:,} row(s)")
    for f in r.files:
        t.add_row(f.path, {"rewritten": f"{f.rows_removed:,} row(s); file rewritten", "deleted": "file deleted"}
                  .get(f.action, f.action) + (f" ({f.why})" if f.why else ""))
    console.print(t)
    console.print(f"erased; tombstone {r.pseudonym} keeps later imports from bringing the customer back", highlight=False)
    for note in r.notes:
        console.print(f"  note: {note}", highlight=False)


def _print_plan(plan) -> None:  # noqa: ANN001 - ErasurePlan
    console.print(f"[bold]erasing {plan.customer_id}[/] removes:", highlight=False)
    for name, n in sorted(plan.rows.items()):
        console.print(f"  {name}: {n:,} row(s)", highlight=False)
    for name, n in sorted(plan.mentions.items()):
        console.print(f"  {name}: the customer's name in {n:,} row(s) of others", highlight=False)
    for path, n in plan.files.items():
        console.print(f"  {path}: {n:,} row(s)", highlight=False)


def access_cmd(
    customer: Annotated[str, typer.Argument(help="The customer's id.")],
    out: Annotated[Path, typer.Option(help="Folder for access-ID.json and access-ID.html.")] = Path("access"),
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Everything held about a customer (GDPR Art. 15): a JSON file and a readable page.

    Every table row that belongs to or names them, consent per purpose and channel with its
    basis, scores and segments with the reasons they moved, experiments, contacts, and the files
    clientfolio wrote that contain them.
    """
    from clientfolio.actions.access import write_access_export
    from clientfolio.commands.common import check_out
    from clientfolio.store import open_store

    with handled("no access export was written."):
        check_out(out, ("the access files",))
        with open_store(existing_store(store)) as st:
            a = write_access_export(st, customer, out)
    console.print(f"{customer}: {sum(a.tables.values()):,} row(s) from {len(a.tables)} table(s), "
                  f"{len(a.files)} file(s) that contain them", highlight=False)
    console.print(f"  machine-readable: [bold]{a.json_path}[/]\n  to read: [bold]{a.html_path}[/]")
    console.print("  these files hold the customer's data: hand them over securely; `clientfolio erase` removes them too",
                  highlight=False)


def parse_days(text: str) -> int | None:
    """'400d', '400', '18m' (months of 30 days), '2y' (365 days), or 'off' -> days (None for off)."""
    t = text.strip().lower()
    if t in ("off", "none", "forever"):
        return None
    m = re.fullmatch(r"(\d+)\s*([dmy]?)", t)
    if not m or int(m.group(1)) == 0:
        raise ClientfolioError(f"--events {text!r}: write the period as days (400d), months (18m), years (2y), "
                               "or 'off' to keep events for ever")
    return int(m.group(1)) * {"": 1, "d": 1, "m": 30, "y": 365}[m.group(2)]


def retention_cmd(
    events: Annotated[Optional[str], typer.Option(help="Keep raw events (page views, opens, tickets) this long: "
                                                       "400d, 18m, 2y, or off.")] = None,
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Set how long raw events are kept; older ones are deleted now and at every later import or update.

    Without --events, shows the current setting.  Orders are kept: they are accounting records.
    """
    from clientfolio.store import open_store
    from clientfolio.store.retention import retention_days, set_event_retention

    with handled("the retention period is unchanged."), open_store(existing_store(store)) as st:
        if events is None:
            d = retention_days(st)
            console.print("events are kept for ever (set a period with --events 400d)" if d is None
                          else f"events are kept for {d:,} days", highlight=False)
            return
        days = parse_days(events)
        n = set_event_retention(st, days)
    if days is None:
        console.print("events are now kept for ever", highlight=False)
    else:
        console.print(f"events are kept for {days:,} days; deleted {n:,} older event(s) now, and later ones go at "
                      "each import or update", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the privacy commands to `clientfolio`."""
    app.add_typer(consent_app, name="consent")
    app.command("correct")(correct_cmd)
    app.command("erase")(erase_cmd)
    app.command("access")(access_cmd)
    app.command("retention")(retention_cmd)
