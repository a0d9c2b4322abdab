"""`clientfolio approvals`: the queue of sends waiting for a person's yes, and which kinds must wait."""

from __future__ import annotations

import getpass
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, existing_store, handled
from clientfolio.core.errors import ClientfolioError

ACTIONS = ("list", "approve", "reject", "send")


def approvals_cmd(
    action: Annotated[str, typer.Argument(help="list (the default), approve ID, reject ID --note WHY, or send ID (carry out "
                                             "an approved request whose sending was interrupted).")] = "list",
    approval_id: Annotated[Optional[str], typer.Argument(help="The request's id, as `approvals list` shows it.")]
    = None,
    store: StoreOpt = "clientfolio.duckdb",
    note: Annotated[Optional[str], typer.Option(help="Why a request is rejected (required for reject).")] = None,
    by: Annotated[Optional[str], typer.Option(help="Who decides (default: your user name).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="List decided requests too, not only pending ones.")] = False,
    require: Annotated[Optional[list[str]], typer.Option(help="Make sends of this kind wait for approval "
                                                              "(export, webhooks, playbook_send); repeatable.")]
    = None,
    release: Annotated[Optional[list[str]], typer.Option(help="Let sends of this kind go without approval again; "
                                                              "repeatable.")] = None,
) -> None:
    """The approval queue: exports, webhook batches and playbook sends that wait for a yes.

    Set which kinds must wait with --require (e.g. `clientfolio approvals --require export`);
    then those sends are queued here instead of leaving.  Approving an export or a playbook send
    carries it out at once (consent and the contact cap judged again then); a webhook batch is
    delivered by the webhook worker.  A request is decided once: approving it twice, or
    approving a rejected one, is refused, so nothing is sent twice.
    """
    from clientfolio.actions import approvals as ap
    from clientfolio.store import open_store

    with handled("the queue is unchanged."):
        if action not in ACTIONS:
            raise ClientfolioError(f"unknown action '{action}': use list, approve ID, reject ID --note WHY or send ID")
        if action != "list" and not approval_id:
            raise ClientfolioError(f"{action} needs the request's id: `clientfolio approvals {action} ID` "
                                   "(`clientfolio approvals list` shows the ids)")
        with open_store(existing_store(store)) as st:
            if require or release:
                kinds = (set(ap.required_kinds(st)) | set(require or [])) - set(release or [])
                now = ap.set_required_kinds(st, sorted(kinds))
                console.print("approval required for: " + (", ".join(now) if now else "nothing (every send goes "
                                                                                       "out directly)"),
                              highlight=False)
                if action == "list" and approval_id is None:
                    return
            who = by or getpass.getuser()
            if action in ("approve", "send"):
                from clientfolio.actions.release import approve_and_carry_out, carry_out

                if action == "approve":
                    a = approve_and_carry_out(st, approval_id, who)  # type: ignore[arg-type]
                else:
                    a = carry_out(st, approval_id)  # type: ignore[arg-type]
                if a.status == "done":
                    console.print(f"[green]approved and done[/] {a.approval_id}: {a.summary}", highlight=False)
                    for line in (a.result or {}).get("summary", []):
                        console.print(f"  {line}", highlight=False)
                else:
                    console.print(f"[green]approved[/] {a.approval_id}: {a.summary} ({a.customers:,} customers); "
                                  "its sender sends it the next time it runs", highlight=False)
                return
            if action == "reject":
                a = ap.reject(st, approval_id, who, note or "")  # type: ignore[arg-type]
                console.print(f"[yellow]rejected[/] {a.approval_id}: {a.summary}; nothing is sent", highlight=False)
                return
            kinds = ap.required_kinds(st)
            df = ap.list_approvals(st) if all_ else ap.pending(st)
    console.print("approval required for: " + (", ".join(kinds) if kinds else "nothing (set it with --require "
                                                                             "export)"), highlight=False)
    if df.empty:
        console.print("no requests" + ("" if all_ else " waiting"), highlight=False)
        return
    t = Table("id", "kind", "created (UTC)", "status", "customers", "what", "decided")
    for r in df.itertuples(index=False):
        decided = " — ".join(str(v) for v in (r.decided_by, r.note) if isinstance(v, str) and v)
        t.add_row(r.approval_id, r.kind, f"{r.created_at:%Y-%m-%d %H:%M}", r.status, f"{r.customers:,}", r.summary,
                  decided)
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("approvals")(approvals_cmd)
