"""`clientfolio webhooks add|list|disable|enable|rotate|log|deliver|allow`: segment moves pushed to other tools."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, err, existing_store, handled
from clientfolio.core.errors import ClientfolioError

webhooks_app = typer.Typer(
    help="Tell other tools (a CRM, an e-mail flow) the moment a customer enters or leaves a segment.\n\n"
    "Messages are signed per the Standard Webhooks spec (webhook-id, webhook-timestamp, webhook-signature), "
    "retried on its schedule, never sent for customers without consent, and never sent to private or loopback "
    "addresses unless the operator allows them.\n\n"
    "1. `clientfolio webhooks add https://crm.example.com/hooks --kind lifecycle --segment \"at risk\"` prints "
    "the signing secret once.\n2. `clientfolio webhooks deliver --loop` sends as segments change.\n"
    "3. `clientfolio webhooks log` shows every delivery, its attempts and the receiver's last answer.",
    no_args_is_help=True,
)
AllowPrivateOpt = Annotated[bool, typer.Option("--allow-private", help="Operator only: allow private and loopback "
                                                                       "addresses (a CRM on the same network).")]
AllowOpt = Annotated[Optional[list[str]], typer.Option("--allow", help="Operator only: also allow this network or "
                                                                       "host for this run (repeatable).")]


def _policy(st: Any, allow_private: bool, allow: list[str] | None) -> Any:
    from clientfolio.service.webhooks import store_policy

    return store_policy(st, allow_private=allow_private, allow=allow or ())


@webhooks_app.command("add")
def add_cmd(
    url: Annotated[str, typer.Argument(help="The receiver's URL (https://...).")],
    store: StoreOpt = "clientfolio.duckdb",
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="Segment kind to hear about (repeatable; "
                                                                     "default: every kind).")] = None,
    segment: Annotated[Optional[list[str]], typer.Option("--segment", help="Segment to hear about (repeatable; "
                                                                           "default: every segment).")] = None,
    on: Annotated[str, typer.Option("--on", help="entered, left or both.")] = "both",
    action: Annotated[Optional[list[str]], typer.Option("--action", help="Only messages of this subscription "
                                                                         "action (repeatable).")] = None,
    purpose: Annotated[str, typer.Option(help="Consent purpose the messages serve: marketing, personalisation "
                                              "or nudges.")] = "marketing",
    channel: Annotated[str, typer.Option(help="Consent channel: email, sms, phone, post, push or any.")] = "email",
    description: Annotated[Optional[str], typer.Option(help="A note: what this receiver is.")] = None,
    allow_private: AllowPrivateOpt = False,
    allow: AllowOpt = None,
) -> None:
    """Add a receiver; prints its signing secret ONCE (store it in the receiver now)."""
    from clientfolio.service.webhooks import add_endpoint
    from clientfolio.service.webhooks.endpoints import uncovered
    from clientfolio.store import open_store

    with handled("no endpoint was added."):
        if on not in ("entered", "left", "both"):
            raise ClientfolioError(f"--on must be entered, left or both, got {on!r}")
        with open_store(existing_store(store)) as st:
            ep, secret = add_endpoint(st, url, segment_kinds=kind or (), segments=segment or (),
                                      transitions=("entered", "left") if on == "both" else (on,),
                                      actions=action or (), purpose=purpose, channel=channel, description=description,
                                      policy=_policy(st, allow_private, allow))
            warning = uncovered(st, ep)
    console.print(f"added [bold]{ep.endpoint_id}[/] → {ep.url}: {ep.describe()}", highlight=False)
    console.print(f"signing secret (shown once): [bold]{secret}[/]", highlight=False, soft_wrap=True)
    if warning:
        err.print(f"[yellow]note:[/] {warning}", highlight=False, soft_wrap=True)


@webhooks_app.command("list")
def list_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """Every endpoint: URL, what it hears about, enabled or why disabled, deliveries by status."""
    from clientfolio.service.webhooks import list_endpoints
    from clientfolio.store import open_store

    with handled("nothing was changed."), open_store(existing_store(store)) as st:
        eps = list_endpoints(st)
        counts = st.query("SELECT endpoint_id, status, count(*) AS n FROM webhook_deliveries "
                          "GROUP BY endpoint_id, status")
    if not eps:
        console.print("no webhook endpoints; add one with `clientfolio webhooks add URL`", highlight=False)
        return
    t = Table("id", "url", "hears about", "state", "deliveries")
    for ep in eps:
        c = counts[counts["endpoint_id"] == ep.endpoint_id]
        t.add_row(ep.endpoint_id, ep.url, ep.describe(),
                  "enabled" if ep.enabled else f"disabled: {ep.disabled_reason}",
                  ", ".join(f"{s} {int(n):,}" for s, n in zip(c["status"], c["n"])) or "none yet")
    console.print(t)


@webhooks_app.command("disable")
def disable_cmd(endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (see `webhooks list`).")],
                reason: Annotated[str, typer.Option(help="Why (kept and shown in the list).")],
                store: StoreOpt = "clientfolio.duckdb") -> None:
    """Stop sending to an endpoint; its waiting messages are kept until it is enabled again."""
    from clientfolio.service.webhooks import disable_endpoint
    from clientfolio.store import open_store

    with handled("the endpoint is unchanged."), open_store(existing_store(store)) as st:
        ep = disable_endpoint(st, endpoint_id, reason)
    console.print(f"disabled {ep.endpoint_id} ({ep.url}): {ep.disabled_reason}", highlight=False)


@webhooks_app.command("enable")
def enable_cmd(endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (see `webhooks list`).")],
               store: StoreOpt = "clientfolio.duckdb", allow_private: AllowPrivateOpt = False,
               allow: AllowOpt = None) -> None:
    """Send to an endpoint again (its URL is checked again); waiting messages go on the next delivery."""
    from clientfolio.service.webhooks import enable_endpoint
    from clientfolio.store import open_store

    with handled("the endpoint is unchanged."), open_store(existing_store(store)) as st:
        ep = enable_endpoint(st, endpoint_id, _policy(st, allow_private, allow))
    console.print(f"enabled {ep.endpoint_id} ({ep.url})", highlight=False)


@webhooks_app.command("rotate")
def rotate_cmd(endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (see `webhooks list`).")],
               store: StoreOpt = "clientfolio.duckdb",
               grace_hours: Annotated[float, typer.Option(help="Hours the previous secret keeps signing too.")] = 24.0
               ) -> None:
    """A new signing secret (printed once); messages carry both signatures during the grace period."""
    from clientfolio.service.webhooks import rotate_secret
    from clientfolio.store import open_store

    with handled("the secret is unchanged."), open_store(existing_store(store)) as st:
        secret = rotate_secret(st, endpoint_id, grace=timedelta(hours=grace_hours))
    console.print(f"new signing secret for {endpoint_id} (shown once): [bold]{secret}[/]", highlight=False,
                  soft_wrap=True)
    console.print(f"the previous secret keeps signing for {grace_hours:g} hours: update the receiver before then",
                  highlight=False)


@webhooks_app.command("log")
def log_cmd(store: StoreOpt = "clientfolio.duckdb",
            endpoint: Annotated[Optional[str], typer.Option(help="Only this endpoint.")] = None,
            status: Annotated[Optional[str], typer.Option(help="Only this status: pending, claimed, "
                                                               "awaiting_approval, delivered, failed, skipped, "
                                                               "rejected.")] = None,
            limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
            out: Annotated[Optional[Path], typer.Option(help="Write the whole log to this CSV "
                                                             "(spreadsheet-safe).")] = None) -> None:
    """The delivery log: each message per endpoint, its status, attempts and the receiver's last answer."""
    from clientfolio.service.webhooks import deliveries
    from clientfolio.store import open_store

    with handled("nothing was changed."):
        with open_store(existing_store(store)) as st:
            df = deliveries(st, endpoint=endpoint, status=status, limit=None if out else limit)
        if out is not None:
            from clientfolio.core.safecsv import write_frame

            write_frame(df, out)
    if df.empty:
        console.print("no deliveries", highlight=False)
        return
    t = Table("created (UTC)", "endpoint", "message", "customer", "status", "attempts", "last answer")
    for r in df.head(limit).itertuples(index=False):
        answer = r.last_error if isinstance(r.last_error, str) else ("" if r.last_status is None or
                                                                     r.last_status != r.last_status else
                                                                     str(r.last_status))
        t.add_row(f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.endpoint_id, r.message_id, r.customer_id, r.status,
                  str(r.attempts), answer)
    console.print(t)
    if out is not None:
        console.print(f"the whole log: [bold]{out}[/]")


def _schedule(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ClientfolioError(f"--retry-schedule takes seconds separated by commas (e.g. 0,5,300), got {text!r}") \
            from None


@webhooks_app.command("deliver")
def deliver_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    loop: Annotated[bool, typer.Option("--loop", help="Keep delivering until stopped (Ctrl-C or SIGTERM).")] = False,
    interval: Annotated[float, typer.Option(help="With --loop: seconds between idle passes.")] = 2.0,
    allow_private: AllowPrivateOpt = False,
    allow: AllowOpt = None,
    retry_schedule: Annotated[Optional[str], typer.Option(help="Seconds before each attempt, comma-separated "
                                                               "(default: the spec's 0,5,300,1800,7200,18000,36000,"
                                                               "36000).")] = None,
    lease: Annotated[float, typer.Option(help="Seconds a claimed delivery is held before another worker may "
                                              "retry it (after a crash).")] = 60.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a receiver's answer.")] = 5.0,
    batch: Annotated[int, typer.Option(help="Deliveries claimed per pass.")] = 50,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
) -> None:
    """Send due webhook messages: once, or with --loop as a long-running worker."""
    from clientfolio.service.webhooks import SPEC_SCHEDULE, WebhookWorker
    from clientfolio.store import open_store

    with handled("deliveries not yet recorded are retried on the next run."):
        with open_store(existing_store(store)) as st:
            worker = WebhookWorker(st, policy=_policy(st, allow_private, allow),
                                   schedule=_schedule(retry_schedule) or SPEC_SCHEDULE,
                                   lease=timedelta(seconds=lease), timeout=timeout, batch=batch,
                                   concurrency=concurrency)
            with worker:
                if not loop:
                    _print_pass(worker.deliver_due())
                    return
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                console.print(f"delivering webhooks from {st.url if st.kind == 'duckdb' else 'PostgreSQL'}; "
                              "stop with Ctrl-C", highlight=False)
                worker.run(interval, stop, on_pass=lambda r: _print_pass(r) if any(
                    v for k, v in r.items() if k != "awaiting_approval") else None)


def _print_pass(r: dict[str, int]) -> None:
    console.print(", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in r.items() if v) or "nothing due",
                  highlight=False)


@webhooks_app.command("allow")
def allow_cmd(entries: Annotated[Optional[list[str]], typer.Argument(help="Networks (10.0.0.0/8, ::1) or host "
                                                                         "names to allow.")] = None,
              store: StoreOpt = "clientfolio.duckdb",
              clear: Annotated[bool, typer.Option("--clear", help="Remove every entry first.")] = False) -> None:
    """Operator only: networks or hosts webhooks may go to although they are private (kept in the store)."""
    from clientfolio.service.webhooks import set_allowed, store_policy
    from clientfolio.store import open_store

    with handled("the allow-list is unchanged."), open_store(existing_store(store)) as st:
        now = store_policy(st).allow
        if clear or entries:
            now = set_allowed(st, ([] if clear else list(now)) + list(entries or []))
    console.print("webhooks may also go to: " + (", ".join(now) if now else "nothing beyond public addresses"),
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add `webhooks` to the CLI."""
    app.add_typer(webhooks_app, name="webhooks")
