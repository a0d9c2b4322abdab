"""The `clientfolio` command: thin — parses options, calls the library, prints with rich."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from clientfolio.core.errors import ClientfolioError

app = typer.Typer(
    help="clientfolio: a strategic view of your customers from your shop's order history.\n\n"
    "Start with `clientfolio demo`; then `clientfolio analyze orders.csv` writes a report on your own customers "
    "(`clientfolio import` and `clientfolio audit` load and check data step by step).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

StoreOpt = Annotated[str, typer.Option("--store", help="DuckDB file (created if missing) or postgresql:// URL.",
                                       envvar="CLIENTFOLIO_STORE")]
LEVEL_STYLE = {"good": "green", "warn": "yellow", "problem": "bold red", "info": ""}
LEVEL_MARK = {"good": "✔", "warn": "!", "problem": "✘", "info": "•"}


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


def print_import(result) -> None:  # noqa: ANN001 - ImportResult, kept loose to avoid import at start-up
    """Print the per-file row accounting and notes of an import."""
    for f in result.files:
        ok = "[green]balanced[/]" if f.balanced else "[bold red]NOT balanced[/]"
        console.print(f"\n[bold]{f.path}[/]\n  detected layout: [cyan]{f.layout_title}[/] ({f.layout}) → {f.table}")
        console.print(f"  rows in {f.rows_in:,} = stored {f.rows_stored:,} (new {f.rows_new:,}, updated "
                      f"{f.rows_updated:,}) + rejected {f.rows_rejected:,} + duplicates {f.rows_deduplicated:,}  {ok}")
        if f.identity:
            parts = [f"{k} {v:,}" for k, v in f.identity.items() if v]
            if f.guest_rows:
                parts.append(f"no customer (guest sales) {f.guest_rows:,}")
            console.print("  customers matched: " + ", ".join(parts))
        if f.refund_rows:
            console.print(f"  refund or cancellation rows stored as negative amounts: {f.refund_rows:,}")
        for reason, n in f.rejected_by_reason.most_common(6):
            console.print(f"  [yellow]rejected {n:,}[/]: {reason}", highlight=False)
        for note in f.notes:
            console.print(f"  note: {note}", highlight=False)
    if result.linked_customers:
        console.print(f"\nlinked {result.linked_customers:,} earlier rows keyed by e-mail to customer ids")
    if result.rejects_path:
        console.print(f"\nrejected rows, with file, row, column, value and reason: [bold]{result.rejects_path}[/]")


def print_audit(store) -> None:  # noqa: ANN001
    from clientfolio.store.audit import audit

    a = audit(store)
    console.print("\n[bold]Data check-up[/]")
    for f in a.findings:
        style = LEVEL_STYLE[f.level]
        console.print(f"  [{style}]{LEVEL_MARK[f.level]}[/{style}] " if style else f"  {LEVEL_MARK[f.level]} ",
                      end="")
        console.print(f.text, highlight=False)


@app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="Export files: CSV (any delimiter/encoding), .csv.gz, .xlsx, "
                                                     ".parquet. Several files of one split export are joined.")],
    store: StoreOpt = "clientfolio.duckdb",
    mapping: Annotated[Optional[Path], typer.Option(help="YAML mapping file for a layout clientfolio does not know.")] = None,
    layout: Annotated[Optional[str], typer.Option(help="Force a built-in layout (see `clientfolio layouts`).")] = None,
    customer_col: Annotated[Optional[str], typer.Option(help="Column holding the customer id.")] = None,
    email_col: Annotated[Optional[str], typer.Option(help="Column holding the customer's e-mail.")] = None,
    order_col: Annotated[Optional[str], typer.Option(help="Column holding the order id.")] = None,
    date_col: Annotated[Optional[str], typer.Option(help="Column holding the order date.")] = None,
    amount_col: Annotated[Optional[str], typer.Option(help="Column holding the order or line amount.")] = None,
    date_order: Annotated[Optional[str], typer.Option(help="day_first (31/12/2024) or month_first (12/31/2024) "
                                                           "when the dates cannot tell.")] = None,
    date_format: Annotated[Optional[str], typer.Option(help="Exact date format, e.g. '%d.%m.%Y %H:%M'.")] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of dates written without one (IANA name).")] = "UTC",
    decimal: Annotated[Optional[str], typer.Option(help="Decimal separator of amounts: '.' or ','.")] = None,
    delimiter: Annotated[Optional[str], typer.Option(help="Field separator, if detection fails.")] = None,
    allow_no_customer: Annotated[bool, typer.Option(help="Import files without customer columns as guest sales.")] = False,
    max_amount: Annotated[float, typer.Option(help="Reject amounts larger than this as implausible.")] = 1e9,
    rejects_dir: Annotated[Optional[Path], typer.Option(help="Folder for rejects files (default: next to the store).")] = None,
    audit: Annotated[bool, typer.Option(help="Show the data check-up after importing.")] = True,
) -> None:
    """Import order, customer, event or marketing-spend exports into the store.

    The layout is detected from the header (Shopify, WooCommerce, Square, Stripe, UCI Online
    Retail, CDNOW, Olist, or any file with customer/date/amount columns).  Every row is
    accounted for: stored, rejected (with file, row, column and reason in the rejects file)
    or counted as a duplicate.  Re-importing a file adds nothing.
    """
    from clientfolio.ingest import ImportOptions, import_files, load_layout_file
    from clientfolio.store import open_store

    cols = {k: v for k, v in {"customer_id": customer_col, "email": email_col, "order_id": order_col,
                               "ts": date_col, "amount": amount_col}.items() if v}
    try:
        if date_order not in (None, "day_first", "month_first"):
            raise ClientfolioError(f"--date-order must be day_first or month_first, got {date_order!r}")
        opts = ImportOptions(
            layout=layout, mapping=load_layout_file(mapping) if mapping else None, columns=cols,
            date_order=date_order, date_format=date_format, timezone=timezone, decimal=decimal,
            delimiter=delimiter, allow_no_customer=allow_no_customer, max_amount=max_amount,
        )
        with open_store(store) as st, _progress() as prog:
            task = prog.add_task("importing", total=1.0)
            result = import_files(files, st, opts, progress=lambda msg, frac: prog.update(task, description=msg,
                                                                                          completed=frac),
                                  rejects_dir=rejects_dir)
            prog.stop()
            print_import(result)
            if audit:
                print_audit(st)
    except ClientfolioError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] nothing was imported; the store is unchanged.")
        raise typer.Exit(code=130) from None


@app.command("audit")
def audit_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """Plain-language data check-up: what the data covers, what looks wrong, what it is enough for."""
    from clientfolio.store import open_store

    try:
        with open_store(store) as st:
            print_audit(st)
    except ClientfolioError as exc:
        _fail(exc)


@app.command("imports")
def imports_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """List past imports with their row accounting and rejects files."""
    from clientfolio.store import open_store

    try:
        with open_store(store) as st:
            df = st.query("SELECT * FROM imports ORDER BY import_id, file_no")
    except ClientfolioError as exc:
        _fail(exc)
    t = Table("import", "when", "file", "layout", "in", "stored", "rejected", "duplicates", "rejects file")
    for r in df.itertuples():
        t.add_row(str(r.import_id), f"{r.finished_at:%Y-%m-%d %H:%M}", Path(r.file).name, r.layout,
                  f"{r.rows_in:,}", f"{r.rows_stored:,}", f"{r.rows_rejected:,}", f"{r.rows_deduplicated:,}",
                  r.rejects_path or "")
    console.print(t)


@app.command("layouts")
def layouts_cmd() -> None:
    """List the export layouts clientfolio recognises, with the columns that identify each."""
    from clientfolio.ingest import builtin_layouts

    t = Table("layout", "what", "table", "recognised by")
    for lay in builtin_layouts():
        t.add_row(lay.name, lay.title, lay.table, ", ".join(lay.required) or "column names (synonyms)")
    console.print(t)


@app.command("validate")
def validate_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    cutoff: Annotated[Optional[str], typer.Option(help="End of the calibration period (YYYY-MM-DD). Default: "
                                                       "two thirds into the history.")] = None,
    end: Annotated[Optional[str], typer.Option(help="End of the holdout period. Default: the last order.")] = None,
    unit: Annotated[str, typer.Option(help="Time unit of the models: D (days) or W (weeks).")] = "W",
) -> None:
    """Check the purchase models on your own data: fit on the history up to --cutoff, predict
    the rest, and compare BG/NBD, MBG/NBD and Pareto/NBD (fit, BIC, holdout error)."""
    import pandas as pd

    from clientfolio.features import rfm_summary
    from clientfolio.scores.validation import compare_models, holdout_comparison
    from clientfolio.store import open_store

    try:
        with open_store(store) as st:
            span = st.query("SELECT min(ts) AS a, max(ts) AS b FROM transactions WHERE customer_id IS NOT NULL")
            first, last = pd.Timestamp(span["a"].iloc[0]), pd.Timestamp(span["b"].iloc[0])
            if pd.isna(first):
                raise ClientfolioError(f"{store}: no orders with customers yet; import some with `clientfolio import`")
            stop = pd.Timestamp(end) if end else last.normalize()
            cut = pd.Timestamp(cutoff) if cutoff else (first + (stop - first) * 2 / 3).normalize()
            summary = rfm_summary(st, cutoff=cut, unit=unit, holdout_end=stop)  # type: ignore[arg-type]
        comp = compare_models(summary)
    except ClientfolioError as exc:
        _fail(exc)
    console.print(f"\n[bold]Calibration[/] {first:%d %b %Y} – {cut:%d %b %Y}, [bold]holdout[/] to {stop:%d %b %Y} "
                  f"({len(summary):,} customers, time unit {unit})")
    t = Table("model", "log-likelihood", "BIC", "holdout MAE", "holdout RMSE", "predicted", "actual")
    for r in comp.table.itertuples():
        if not r.converged:
            t.add_row(r.model, "did not converge", "", "", "", "", "")
            continue
        t.add_row(r.model, f"{r.log_likelihood:,.1f}", f"{r.bic:,.1f}", f"{r.holdout_mae:.3f}",
                  f"{r.holdout_rmse:.3f}", f"{r.predicted_total:,.0f}", f"{r.actual_total:,.0f}")
    console.print(t)
    console.print(comp.recommendation, highlight=False)
    _, by = holdout_comparison(comp.models[comp.best], summary)
    b = Table("purchases before cut-off", "customers", "actual after (mean)", f"{comp.best} predicted (mean)")
    for r in by.itertuples():
        b.add_row(r.bucket, f"{r.customers:,}", f"{r.actual:.2f}", f"{r.predicted:.2f}")
    console.print(b)


@app.command("analyze")
def analyze_cmd(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Export files to import first (optional: "
                                                               "without files, the store is analysed).")] = None,
    store: StoreOpt = "clientfolio.duckdb",
    out: Annotated[Path, typer.Option(help="Folder for report.html and customers.csv.")] = Path("clientfolio-report"),
    cutoff: Annotated[Optional[str], typer.Option(help="Analyse as of this day (default: the last order).")] = None,
    horizon: Annotated[int, typer.Option(help="CLV horizon in months.")] = 12,
    discount_rate: Annotated[float, typer.Option(help="Yearly discount rate for CLV.")] = 0.10,
    margin: Annotated[Optional[float], typer.Option(help="Gross margin (0-1) when the data has no cost of goods.")] = None,
    model: Annotated[str, typer.Option(help="auto (chosen on a holdout period), bgnbd, mbgnbd or paretonbd.")] = "auto",
    sector: Annotated[str, typer.Option(help="Value-score weights: retail, services, b2b, subscription, non-profit.")] = "retail",
    rules: Annotated[Optional[Path], typer.Option(help="YAML file of your own rule segments.")] = None,
    parquet: Annotated[bool, typer.Option(help="Write customers.parquet instead of customers.csv.")] = False,
) -> None:
    """Fit, score and segment every customer; write an HTML report and a customers file.

    The report (works offline) has an executive summary, revenue concentration, CLV, who is
    slipping away, RFM, lifecycle flow, the strategic portfolio, customer groups, and how well
    the models predicted your own recent months.
    """
    import clientfolio

    try:
        with open_store_cli(store) as st, _progress() as prog:
            task = prog.add_task("analysing", total=1.0)
            pf = clientfolio.analyze(files or None, store=st, cutoff=cutoff, horizon_months=horizon,
                                     discount_rate=discount_rate, margin=margin, model=model, sector=sector,
                                     rules=rules, progress=lambda m, f: prog.update(task, description=m, completed=f))
            prog.stop()
        out.mkdir(parents=True, exist_ok=True)
        report = pf.report(out / "report.html")
        table = pf.to_file(out / ("customers.parquet" if parquet else "customers.csv"))
    except ClientfolioError as exc:
        _fail(exc)
    console.print(f"\n[bold]Your customer portfolio[/] as of {pf.as_of:%d %B %Y}")
    for line in pf.headline():
        console.print(f"  • {line}", highlight=False)
    if pf.currency_note():
        console.print(f"  {pf.currency_note()}", highlight=False)
    t = Table("lifecycle", "customers", "share")
    life = pf.kpis[pf.kpis["segment_kind"] == "lifecycle"].sort_values("customers", ascending=False)
    for r in life.itertuples():
        t.add_row(r.segment, f"{r.customers:,}", f"{r.share:.0%}")
    console.print(t)
    from clientfolio.core.notes import audience_of

    for note in pf.notes:
        if audience_of(note) == "owner":
            console.print(f"  note: {note}", highlight=False)
    if any(audience_of(n) == "method" for n in pf.notes):
        console.print("  technical details: see Method notes at the end of the report", highlight=False)
    console.print(f"\nreport: [bold]{report}[/]\ncustomers with every score and segment: [bold]{table}[/]")


def open_store_cli(store: str):
    from clientfolio.store import open_store

    return open_store(store)


@app.command("demo")
def demo_cmd(
    store: StoreOpt = "clientfolio-demo.duckdb",
    out: Annotated[Path, typer.Option(help="Folder for the demo report and customers file.")] = Path("clientfolio-demo"),
) -> None:
    """Run everything on the bundled demo bakery: import, check the data, analyse, write the report."""
    from clientfolio.datasets import demo_shop_paths
    from clientfolio.ingest import import_files

    try:
        paths = demo_shop_paths()
        console.print(f"[bold]clientfolio demo[/]: a generated bakery-café, imported into {store}")
        with open_store_cli(store) as st, _progress() as prog:
            task = prog.add_task("importing", total=1.0)
            order = [paths[k] for k in ("customers", "transactions", "events", "marketing_spend") if k in paths]
            result = import_files(order, st, progress=lambda m, f: prog.update(task, description=m, completed=f))
            prog.stop()
            print_import(result)
            print_audit(st)
    except ClientfolioError as exc:
        _fail(exc)
    analyze_cmd(files=None, store=store, out=out, cutoff=None, horizon=12, discount_rate=0.10, margin=None,
                model="auto", sector="retail", rules=None, parquet=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
