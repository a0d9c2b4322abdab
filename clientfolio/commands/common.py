"""What every `clientfolio` command shares: the app, the consoles, the --store option, error handling.

Commands live in `clientfolio.cli` (import, analyze, the living portfolio) and in the modules of
this package (one per area); each area module has `register(app)`, called once by `clientfolio.cli`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clientfolio.core.errors import ClientfolioError

app = typer.Typer(
    help="clientfolio: a strategic view of your customers from your shop's order history.\n\n"
    "Start with `clientfolio demo`; then `clientfolio analyze orders.csv` writes a report on your own customers "
    "(`clientfolio import` and `clientfolio audit` load and check data step by step).  Analyse into a store you keep "
    "(`--store shop.duckdb`) and `clientfolio update` / `clientfolio sweep` keep every customer current, with "
    "`clientfolio changes` saying who moved and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow to the terminal's width (lines of a paragraph are joined)
)
console = Console()
err = Console(stderr=True)

StoreOpt = Annotated[str, typer.Option("--store", help="DuckDB file (created if missing) or postgresql:// URL.",
                                       envvar="CLIENTFOLIO_STORE")]
LEVEL_STYLE = {"good": "green", "warn": "yellow", "problem": "bold red", "info": ""}
LEVEL_MARK = {"good": "✔", "warn": "!", "problem": "✘", "info": "•"}


def fail(exc: Exception | str) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@contextlib.contextmanager
def handled(interrupted: str) -> Iterator[None]:
    """Library errors become a red message (exit 1); Ctrl-C a plain one (exit 130), never a traceback."""
    try:
        yield
    except ClientfolioError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err.print(f"[bold red]interrupted:[/] {interrupted}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    except OSError as exc:  # a full disk, a folder that vanished: say what, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}; {interrupted}")
    except Exception as exc:
        import duckdb

        if isinstance(exc, duckdb.Error):  # e.g. the disk filled up while the store was written
            fail(f"the store could not be read or written: {str(exc).splitlines()[0]}; {interrupted}")
        raise


def day_option(option: str, value: str | None) -> str | None:
    """A date option checked before any work (YYYY-MM-DD)."""
    import pandas as pd

    if value is not None:
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ClientfolioError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-06-30") from None
    return value


def is_url(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def existing_store(store: str) -> str:
    """`store`, checked to exist: reading commands must not create an empty store by a typo."""
    if not is_url(store):
        p = Path(store)
        if p.is_dir():
            raise ClientfolioError(f"--store {store} is a folder; give the store file (e.g. {p / 'clientfolio.duckdb'})")
        if not p.exists():
            raise ClientfolioError(f"no store at {store}: import data first (`clientfolio import FILE "
                                   f"--store {store}`), or give the store that holds it with --store")
    return store


def check_inputs(files: list[Path] | None) -> None:
    """Every input file exists, checked before a store is opened (or created)."""
    from clientfolio.core.errors import IngestError

    for f in files or []:
        if f.is_dir():
            raise IngestError(f, "is a folder, not an export file", hint="give the files inside it")
        if not f.exists():
            raise IngestError(f, "file not found", hint="check the path and spelling")


def check_out(out: Path, names: tuple[str, ...], option: str = "--out") -> None:
    """Check an output folder before any work: a folder (made if missing) we can write `names` into."""
    if out.exists() and not out.is_dir():
        raise ClientfolioError(f"{option} {out} is a file; {option} takes a folder, where {' and '.join(names)} "
                               f"{'is' if len(names) == 1 else 'are'} written")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / ".clientfolio-write-test", "w") as fh:
            fh.write("")
        os.remove(out / ".clientfolio-write-test")
    except OSError as exc:
        raise ClientfolioError(f"{option} {out}: cannot write in this folder ({exc.strerror or exc}); "
                               f"choose another folder with {option}") from None
    for name in names:
        if (out / name).is_dir():
            raise ClientfolioError(f"{out / name} is a folder, so the {name} file cannot be written there; "
                                   f"move it away or choose another folder with {option}")
