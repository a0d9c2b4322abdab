"""`clientfolio serve`, `clientfolio workspace ...` and `clientfolio key ...`: the always-on service."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import console, err, handled

StoreOpt = Annotated[str, typer.Option(
    "--store", envvar="CLIENTFOLIO_STORE",
    help="A DuckDB file (one shop: its workspace is 'default') or a postgresql:// URL (many shops, one schema "
         "each, plus a registry schema: the URL's search_path schema, else 'clientfolio').")]

workspace_app = typer.Typer(help="Workspaces: one per shop, each sealed off from the others (PostgreSQL).",
                            no_args_is_help=True)
key_app = typer.Typer(help="API keys of a workspace: created (shown once), listed, revoked.", no_args_is_help=True)


def serve_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every "
                                           "interface, put it behind TLS).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Run the API (and its daily sweep) for every workspace of --store.

    The API is under /v1 with its OpenAPI spec at /openapi.json and docs at /docs.  Requests need a
    key (`clientfolio key create`).  Limits come from the environment: CLIENTFOLIO_MAX_BODY (bytes),
    CLIENTFOLIO_RATE and CLIENTFOLIO_BURST (requests a second per key), CLIENTFOLIO_FILES (folder for
    exports and reports), CLIENTFOLIO_SCHEDULER (seconds between checks for due jobs; 0: off).
    """
    import uvicorn

    from clientfolio.service.app import create_app

    with handled("the service did not start."):
        app = create_app(store)
    console.print(f"clientfolio API on http://{host}:{port}/v1 (docs: http://{host}:{port}/docs)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@workspace_app.command("create")
def workspace_create(name: Annotated[str, typer.Argument(help="Short name: lower-case letters, digits, dashes.")],
                     store: StoreOpt = "clientfolio.duckdb") -> None:
    """Create a workspace for a shop (PostgreSQL only: a DuckDB file is one shop)."""
    from clientfolio.service.workspaces import Registry

    with handled("nothing was created."), Registry(store) as reg:
        ws = reg.create_workspace(name)
    console.print(f"workspace [bold]{ws.name}[/] created; give it a key: "
                  f"`clientfolio key create --workspace {ws.name} --scope write`", highlight=False)


@workspace_app.command("list")
def workspace_list(store: StoreOpt = "clientfolio.duckdb") -> None:
    """List the workspaces."""
    from clientfolio.service.workspaces import Registry

    with handled("nothing was changed."), Registry(store) as reg:
        rows = reg.workspaces()
        keys = reg.keys()
    t = Table("workspace", "created", "active keys")
    for ws in rows:
        n = sum(1 for k in keys if k["workspace"] == ws.name and k["revoked_at"] is None)
        t.add_row(ws.name, f"{ws.created_at:%Y-%m-%d %H:%M}", str(n))
    console.print(t)


@workspace_app.command("delete")
def workspace_delete(name: str, store: StoreOpt = "clientfolio.duckdb",
                     yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False) -> None:
    """Delete a workspace with ALL its data and keys (cannot be undone)."""
    from clientfolio.service.workspaces import Registry

    if not yes:
        typer.confirm(f"Delete workspace {name!r} with all its data and keys?", abort=True)
    with handled("nothing was deleted."), Registry(store) as reg:
        reg.delete_workspace(name)
    console.print(f"workspace {name} deleted", highlight=False)


@key_app.command("create")
def key_create(
    store: StoreOpt = "clientfolio.duckdb",
    workspace: Annotated[Optional[str], typer.Option(help="The workspace the key opens (not needed for a DuckDB "
                                                          "store).")] = None,
    scope: Annotated[str, typer.Option(help="read (GET only), write (also imports, orders, events, exports) or "
                                            "admin (also refit and sweep).")] = "read",
    label: Annotated[str, typer.Option(help="A note to recognise the key by (e.g. 'shopify webhook').")] = "",
) -> None:
    """Create an API key.  It is printed ONCE: only its hash is stored, so it cannot be shown again."""
    from clientfolio.service.workspaces import Registry

    with handled("no key was created."), Registry(store) as reg:
        key_id, key = reg.create_key(workspace, scope, label)
    err.print(f"key {key_id} ({scope}) created.  Copy it now: it is shown only this once and cannot be recovered "
              "(revoke it and make a new one if it is lost or leaked).", highlight=False)
    typer.echo(key)


@key_app.command("list")
def key_list(store: StoreOpt = "clientfolio.duckdb",
             workspace: Annotated[Optional[str], typer.Option(help="Only this workspace's keys.")] = None) -> None:
    """List keys: id, workspace, scope, label, created, revoked (never the keys themselves)."""
    from clientfolio.service.workspaces import Registry

    with handled("nothing was changed."), Registry(store) as reg:
        keys = reg.keys(workspace)
    t = Table("key id", "workspace", "scope", "label", "created", "revoked")
    for k in keys:
        t.add_row(k["key_id"], k["workspace"], k["scope"], k["label"] or "", f"{k['created_at']:%Y-%m-%d %H:%M}",
                  f"{k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "")
    console.print(t)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `clientfolio key list`).")],
               store: StoreOpt = "clientfolio.duckdb") -> None:
    """Revoke a key: it stops working at once."""
    from clientfolio.service.workspaces import Registry

    with handled("nothing was revoked."), Registry(store) as reg:
        reg.revoke_key(key_id)
    console.print(f"key {key_id} revoked", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `serve`, `workspace` and `key` to the clientfolio command."""
    app.command("serve")(serve_cmd)
    app.add_typer(workspace_app, name="workspace")
    app.add_typer(key_app, name="key")
