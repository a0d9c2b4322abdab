"""`clientfolio key ...` and `clientfolio workspace ...` as a user types them (the real commands, in process)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from clientfolio.cli import app


def test_key_shown_once_listed_without_secret_and_revoked(tmp_path: Path) -> None:
    store = str(tmp_path / "shop.duckdb")
    run = CliRunner()
    made = run.invoke(app, ["key", "create", "--store", store, "--scope", "write", "--label", "till"])
    assert made.exit_code == 0, made.output
    key = [w for w in made.output.split() if w.startswith("cf_")][0]
    assert "shown only this once" in made.output
    listed = run.invoke(app, ["key", "list", "--store", store])
    assert "till" in listed.output and "write" in listed.output and "cf_" not in listed.output
    key_id = [w for w in listed.output.split() if w.startswith("key_")][0]
    from clientfolio.service.workspaces import Registry

    with Registry(store) as reg:
        assert reg.resolve(key) is not None and reg.resolve(key).scope == "write"
    assert run.invoke(app, ["key", "revoke", key_id, "--store", store]).exit_code == 0
    with Registry(store) as reg:
        assert reg.resolve(key) is None
        assert reg.resolve(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    bad = run.invoke(app, ["key", "create", "--store", store, "--scope", "owner"])
    assert bad.exit_code == 1 and "read, write, admin" in bad.output
    one_shop = run.invoke(app, ["workspace", "create", "other", "--store", store])
    assert one_shop.exit_code == 1 and "PostgreSQL" in one_shop.output
    assert "default" in run.invoke(app, ["workspace", "list", "--store", store]).output


def test_help_texts_say_what_each_command_does() -> None:
    run = CliRunner()
    assert "workspace" in run.invoke(app, ["serve", "--help"]).output
    assert "ONCE" in run.invoke(app, ["key", "create", "--help"]).output
    assert "ALL its data" in run.invoke(app, ["workspace", "delete", "--help"]).output
