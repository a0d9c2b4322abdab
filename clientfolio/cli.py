"""The `clientfolio` command: thin — parses options, calls the library, prints with rich."""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from clientfolio.commands.common import (
    LEVEL_MARK, LEVEL_STYLE, StoreOpt, app, check_inputs, check_out, console, day_option, err, existing_store, handled,
)
from clientfolio.core.errors import ClientfolioError

# -- import options: defined once here, shared by `import` and `analyze` ---------------------------
# A new import option is one more entry in IMPORT_OPTIONS (what the user types) and, where it feeds
# ImportOptions, one more line in ImportArgs.options(); both commands then have it.

def _opt(name: str, kind: Any, help: str, default: Any) -> inspect.Parameter:  # noqa: A002
    option = typer.Option(help=help, rich_help_panel="Import options")
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, option], default=default)


IMPORT_OPTIONS: list[inspect.Parameter] = [
    _opt("mapping", Optional[Path], "YAML mapping file for a layout clientfolio does not know.", None),
    _opt("layout", Optional[str], "Force a built-in layout (see `clientfolio layouts`).", None),
    _opt("customer_col", Optional[str], "Column holding the customer id.", None),
    _opt("email_col", Optional[str], "Column holding the customer's e-mail.", None),
    _opt("order_col", Optional[str], "Column holding the order id.", None),
    _opt("date_col", Optional[str], "Column holding the order date.", None),
    _opt("amount_col", Optional[str], "Column holding the order or line amount.", None),
    _opt("date_order", Optional[str], "day_first (31/12/2024) or month_first (12/31/2024) when the dates "
                                      "cannot tell.", None),
    _opt("date_format", Optional[str], "Exact date format, e.g. '%d.%m.%Y %H:%M'.", None),
    _opt("timezone", str, "Time zone of dates written without one (IANA name).", "UTC"),
    _opt("decimal", Optional[str], "Decimal separator of amounts: '.' or ','.", None),
    _opt("delimiter", Optional[str], "Field separator, if detection fails.", None),
    _opt("allow_no_customer", bool, "Import files without customer columns as guest sales.", False),
    _opt("max_amount", float, "Reject amounts larger than this as implausible.", 1e9),
    _opt("currency", Optional[str], "ISO code (e.g. EUR): import only amounts in this currency (others go to the "
         "rejects file), or convert into it with --rates.", None),
    _opt("rates", Optional[Path], "CSV of currency,rate (one unit's worth in the store's currency) to convert "
         "several currencies into one.", None),
    _opt("keep_repeated_lines", bool, "Keep rows that repeat an earlier row exactly (a till that rings the same "
         "item twice); by default they are counted once and listed as duplicates.", False),
    _opt("rejects_dir", Optional[Path], "Folder for rejects files (default: next to the store).", None),
    # (new import options go here, once: both `import` and `analyze` get them)
]


@dataclass
class ImportArgs:
    """The shared import options as typed on the command line."""

    values: dict[str, Any]

    @property
    def rejects_dir(self) -> Path | None:
        return self.values["rejects_dir"]

    def options(self) -> Any:
        """The :class:`~clientfolio.ingest.ImportOptions` these options ask for (checked)."""
        from clientfolio.ingest import ImportOptions, load_layout_file

        v = self.values
        if v["date_order"] not in (None, "day_first", "month_first"):
            raise ClientfolioError(f"--date-order must be day_first or month_first, got {v['date_order']!r}")
        if v["rejects_dir"] is not None:  # written after the import commits: check it before
            check_out(v["rejects_dir"], ("the rejects file",), "--rejects-dir")
        cols = {k: v[f] for k, f in {"customer_id": "customer_col", "email": "email_col", "order_id": "order_col",
                                     "ts": "date_col", "amount": "amount_col"}.items() if v[f]}
        return ImportOptions(
            layout=v["layout"], mapping=load_layout_file(v["mapping"]) if v["mapping"] else None, columns=cols,
            date_order=v["date_order"], date_format=v["date_format"], timezone=v["timezone"], decimal=v["decimal"],
            delimiter=v["delimiter"], allow_no_customer=v["allow_no_customer"], max_amount=v["max_amount"],
            currency=v["currency"], rates=v["rates"], keep_repeated_lines=v["keep_repeated_lines"],
        )


def with_import_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared import options; it receives them as ``imports: ImportArgs``."""
    sig = inspect.signature(command, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "imports"]
    params = sorted(own + IMPORT_OPTIONS, key=lambda p: p.kind)  # positional arguments first
    names = [p.name for p in IMPORT_OPTIONS]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        values = {n: kwargs.pop(n) for n in names}
        return command(*args, imports=ImportArgs(values), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


def print_import(result) -> None:  # noqa: ANN001 - ImportResult, kept loose to avoid import at start-up
    """Print the per-file row accounting and notes of an import."""
    for f in result.files:
        ok = "[green]balanced[/]" if f.balanced else "[bold red]NOT balanced[/]"
        console.print(f"\n[bold]{f.path}[/]\n  detected layout: [cyan]{f.layout_title}[/] ({f.layout}) → {f.table}")
        console.print(f"  rows in {f.rows_in:,} = stored {f.rows_stored:,} (new {f.rows_new:,}, updated "
                      f"{f.rows_updated:,}) + rejected {f.rows_rejected:,} + duplicates {f.rows_deduplicated:,}"
                      + (f" + erased on request {f.rows_erased:,}" if f.rows_erased else "") + f"  {ok}")
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
    if result.events_expired:
        console.print(f"\ndeleted {result.events_expired:,} events older than the store's retention period "
                      "(`clientfolio retention`)")
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
@with_import_options
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="Export files: CSV (any delimiter/encoding), .csv.gz, .xlsx, "
                                                     ".parquet. Several files of one split export are joined.")],
    store: StoreOpt = "clientfolio.duckdb",
    audit: Annotated[bool, typer.Option(help="Show the data check-up after importing.")] = True,
    *,
    imports: ImportArgs,
) -> None:
    """Import order, customer, event or marketing-spend exports into the store.

    The layout is detected from the header (Shopify, WooCommerce, Square, Stripe, UCI Online
    Retail, CDNOW, Olist, or any file with customer/date/amount columns).  Every row is
    accounted for: stored, rejected (with file, row, column and reason in the rejects file)
    or counted as a duplicate.  Re-importing a file adds nothing.
    """
    from clientfolio.ingest import import_files
    from clientfolio.store import open_store

    with handled("nothing was imported; the store is unchanged."):
        opts = imports.options()
        check_inputs(files)
        with open_store(store) as st, _progress() as prog:
            task = prog.add_task("importing", total=1.0)
            result = import_files(files, st, opts, progress=lambda msg, frac: prog.update(task, description=msg,
                                                                                          completed=frac),
                                  rejects_dir=imports.rejects_dir)
            prog.stop()
            print_import(result)
            if audit:
                print_audit(st)


@app.command("audit")
def audit_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """Plain-language data check-up: what the data covers, what looks wrong, what it is enough for."""
    from clientfolio.store import open_store

    with handled("the store is unchanged."), open_store(existing_store(store)) as st:
        print_audit(st)


@app.command("imports")
def imports_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """List past imports with their row accounting and rejects files."""
    from clientfolio.store import open_store

    with handled("the store is unchanged."), open_store(existing_store(store)) as st:
        df = st.query("SELECT * FROM imports ORDER BY import_id, file_no")
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

    with handled("nothing was changed."):
        day_option("--cutoff", cutoff), day_option("--end", end)
        with open_store(existing_store(store)) as st:
            span = st.query("SELECT min(ts) AS a, max(ts) AS b FROM transactions WHERE customer_id IS NOT NULL")
            first, last = pd.Timestamp(span["a"].iloc[0]), pd.Timestamp(span["b"].iloc[0])
            if pd.isna(first):
                raise ClientfolioError(f"{store}: no orders with customers yet; import some with `clientfolio import`")
            stop = pd.Timestamp(end) if end else last.normalize()
            cut = pd.Timestamp(cutoff) if cutoff else (first + (stop - first) * 2 / 3).normalize()
            summary = rfm_summary(st, cutoff=cut, unit=unit, holdout_end=stop)  # type: ignore[arg-type]
        comp = compare_models(summary)
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


ANALYSIS_STORE = "clientfolio.duckdb"  # inside --out: the store of `analyze FILE` without --store
ANALYSIS_REJECTS = "clientfolio.rejects"


@contextlib.contextmanager
def _analysis_store(out: Path) -> Iterator[tuple[str, Path]]:
    """This analysis's own store (and rejects folder) inside `out`, built afresh on every run.

    The previous run's store is set aside and removed once this run succeeds, or put back when
    it fails or is interrupted, so re-running a command gives the same result and a failed run
    leaves the last good analysis in place.
    """
    db = out / ANALYSIS_STORE
    keep = [db, db.with_name(db.name + ".wal"), out / ANALYSIS_REJECTS]
    aside = [p.with_name(p.name + ".previous") for p in keep]

    def put_back() -> None:  # the store, its WAL and rejects go back together, never mixed
        for p, q in zip(keep, aside):
            _remove(p)
            if q.exists():
                os.replace(q, p)

    if aside[0].exists():  # a run was killed before it finished: what it set aside is the last good one
        put_back()
    for p, q in zip(keep, aside):
        _remove(q)
        if p.exists():
            os.replace(p, q)
    ok = False
    try:
        yield str(db), out / ANALYSIS_REJECTS
        ok = True
    finally:
        if ok:
            for q in aside:
                _remove(q)
        elif aside[0].exists():
            put_back()


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def _run_analyze(files: list[Path] | None, store: str | None, out: Path, *, parquet: bool = False,
                 pseudonymise: bool = False, imports: ImportArgs | None = None, **settings: Any) -> None:
    """`analyze`: outputs checked first, then import (accounting and check-up printed), fit, report."""
    import clientfolio
    from clientfolio.store import open_store

    table_name = "customers.parquet" if parquet else "customers.csv"
    with handled("no report was written; the store is intact (an import is stored whole or not at all)."):
        check_out(out, ("report.html", table_name))
        day_option("--cutoff", settings.get("cutoff"))
        if settings.get("rules") is not None:
            from clientfolio.pipeline import check_rules

            check_rules(settings["rules"])  # a bad rule file fails here, before any store is touched
        if settings.get("playbooks") is not None:
            from clientfolio.pipeline import check_playbooks

            settings["playbooks"] = check_playbooks(settings["playbooks"])  # so does a bad playbooks file
        opts = imports.options() if imports is not None and files else None
        check_inputs(files)
        rejects_dir = imports.rejects_dir if imports is not None else None
        if files and store is None:
            place: Any = _analysis_store(out)  # each analysis of files keeps its own store
        else:
            kept = out / ANALYSIS_STORE
            if not files and store is None and not Path("clientfolio.duckdb").exists() and kept.exists():
                raise ClientfolioError(f"no store at clientfolio.duckdb; to analyse again what `analyze FILE` "
                                       f"imported, give --store {kept}")
            store = store or "clientfolio.duckdb"
            place = contextlib.nullcontext((store if files else existing_store(store), None))
        with place as (where, own_rejects), open_store(where) as st, _progress() as prog:
            task = prog.add_task("analysing", total=1.0)

            def imported(result: Any) -> None:
                prog.stop()
                print_import(result)
                print_audit(st)
                prog.start()

            pf = clientfolio.analyze(files or None, store=st, options=opts, rejects_dir=rejects_dir or own_rejects,
                                     on_import=imported,
                                     progress=lambda m, f: prog.update(task, description=m, completed=f), **settings)
            prog.stop()
            shown = pf
            if pseudonymise:  # for sharing: customers named by keyed pseudonyms, contact columns dropped
                from clientfolio.actions.pseudonym import pseudonym_key, pseudonymise_portfolio

                shown = pseudonymise_portfolio(pf, pseudonym_key(st))
            try:
                report = shown.report(out / "report.html")
                table = shown.to_file(out / table_name)
            except OSError as exc:
                raise ClientfolioError(f"cannot write the results into {out}: {exc.strerror or exc}") from None
            from clientfolio.actions.outputs import record_output  # erasure and access find these files again

            record_output(st, report, "report", len(shown.customers), pseudonymised=pseudonymise)
            record_output(st, table, "customers", len(shown.customers), pseudonymised=pseudonymise)
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
    if pf.actions is not None:
        console.print("[bold]What to do[/] (the report's \u201cWhat to do\u201d section has every segment)")
        for line in pf.actions.lines(top=3):
            console.print(f"  • {line}", highlight=False)
    if pf.predictions is not None:
        _print_predictions(pf.predictions, pf.as_of)
    from clientfolio.core.notes import audience_of

    for note in pf.notes:
        if audience_of(note) == "owner":
            console.print(f"  note: {note}", highlight=False)
    if any(audience_of(n) == "method" for n in pf.notes):
        console.print("  technical details: see Method notes at the end of the report", highlight=False)
    console.print(f"\nreport: [bold]{report}[/]\ncustomers with every score and segment: [bold]{table}[/]")
    if own_rejects is not None:
        console.print(f"the imported data: [bold]{where}[/] (this analysis's own store, rebuilt on every run; "
                      f"`clientfolio audit --store {where}` reads it)", highlight=False)


def _print_predictions(predictions: Any, as_of: Any) -> None:
    """analyze --predict: which method each prediction uses and why, or why there are none."""
    console.print(f"[bold]Churn risk and next order[/] as of {as_of:%d %B %Y} (live updates and the daily sweep "
                  "rescore the customers they touch with these models)")
    if isinstance(predictions, str):
        console.print(f"  • none: {predictions}", highlight=False)
        return
    for c in predictions.comparisons:
        console.print(f"  • {c.sentence}", highlight=False)


def _run_spark(files: list[Path] | None, out: Path, master: str, **settings: Any) -> None:
    """`analyze --engine spark`: Parquet in, Parquet out (clientfolio.scale.spark)."""
    with handled("nothing was written to the output folder's tables."):
        if not files:
            raise ClientfolioError("--engine spark needs the Parquet file(s) or folder(s) of the transactions")
        day_option("--cutoff", settings.get("cutoff"))
        from clientfolio.scale.spark import analyze_spark

        console.print(f"[bold]clientfolio analyze[/] on Spark ({master})", highlight=False)
        res, _, _ = analyze_spark(files, out, master=master, **settings)
        console.print(f"{res.customers:,} customers scored and segmented; "
                      + ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items()), highlight=False)
        for note in res.notes:
            console.print(f"  note: {note}", highlight=False)
        console.print(f"customers: [bold]{out / 'customers.parquet'}[/]\nmemberships: "
                      f"[bold]{out / 'segments.parquet'}[/]\nfitted state: [bold]{out / 'state.json'}[/]")


@app.command("analyze")
@with_import_options
def analyze_cmd(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Export files to import first (optional: "
                                                               "without files, the store is analysed).")] = None,
    store: Annotated[Optional[str], typer.Option(
        "--store", envvar="CLIENTFOLIO_STORE",
        help="Store to analyse (DuckDB file or postgresql:// URL); FILES are added to it.  Default: with FILES, "
             f"a store of their own in the --out folder ({ANALYSIS_STORE}, rebuilt on every run); without FILES, "
             "./clientfolio.duckdb (what `clientfolio import` fills).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.html and customers.csv.")] = Path("clientfolio-report"),
    cutoff: Annotated[Optional[str], typer.Option(help="Analyse as of this day (default: the last order).")] = None,
    horizon: Annotated[int, typer.Option(help="CLV horizon in months.")] = 12,
    discount_rate: Annotated[float, typer.Option(help="Yearly discount rate for CLV.")] = 0.10,
    margin: Annotated[Optional[float], typer.Option(help="Gross margin (0-1) when the data has no cost of goods.")] = None,
    model: Annotated[str, typer.Option(help="auto (chosen on a holdout period), bgnbd, mbgnbd or paretonbd.")] = "auto",
    sector: Annotated[str, typer.Option(help="Value-score weights: retail, services, b2b, subscription, non-profit, "
                                             "or dimension=weight pairs, e.g. 'retail,sentiment=0.1' (sentiment: "
                                             "what customers write, off unless given).")] = "retail",
    rules: Annotated[Optional[Path], typer.Option(help="YAML file of your own rule segments (checked before "
                                                       "anything else runs).")] = None,
    playbooks: Annotated[Optional[Path], typer.Option(help="Your playbooks file (YAML; `clientfolio playbooks "
                                                           "--write FILE` gives one to edit), merged over the "
                                                           "built-in playbooks for the report's action plan.")] = None,
    parquet: Annotated[bool, typer.Option(help="Write customers.parquet instead of customers.csv.")] = False,
    pseudonymise: Annotated[bool, typer.Option(help="For sharing (e.g. with an agency): customers named by keyed "
                                                    "pseudonyms in the report and customers file; e-mail, names and "
                                                    "other contact columns left out.")] = False,
    engine: Annotated[str, typer.Option(help="duckdb (default: import, report, everything) or spark: FILES are "
                                             "Parquet of the canonical transactions (customer_id, order_id, ts, "
                                             "amount, ...); features on Spark, fit on the driver, apply per "
                                             "partition; writes customers.parquet, segments.parquet, state.json "
                                             "(no import, no report). See docs/scaling.md.")] = "duckdb",
    spark_master: Annotated[str, typer.Option(help="Spark master URL for --engine spark (local[2], "
                                                   "spark://host:7077, yarn).")] = "local[2]",
    predict: Annotated[bool, typer.Option(help="Also train churn risk and next order per customer, each checked "
                                               "against BG/NBD on your own recent weeks (as `clientfolio predict`),"
                                               " for the report and the store's predictions table. Off by default:"
                                               " training takes about a minute per 100,000 customers, while the "
                                               "rest of analyze handles a million orders in seconds.")] = False,
    *,
    imports: ImportArgs,
) -> None:
    """Fit, score and segment every customer; write an HTML report and a customers file.

    With FILES, they are imported first (the same options and row accounting as `clientfolio
    import`) into a store of this analysis's own inside --out, so two shops analysed in one
    folder never mix.  The report (works offline) has an executive summary, revenue
    concentration, CLV, who is slipping away, RFM, lifecycle flow, the strategic portfolio,
    customer groups, and how well the models predicted your own recent months.
    """
    if engine == "spark":
        _run_spark(files, out, spark_master, cutoff=cutoff, model=model, horizon_months=horizon,
                   discount_rate=discount_rate, margin=margin, sector=sector)
        return
    if engine != "duckdb":
        raise typer.BadParameter(f"--engine must be duckdb or spark, got {engine!r}")
    _run_analyze(files, store, out, parquet=parquet, pseudonymise=pseudonymise, imports=imports, cutoff=cutoff,
                 horizon_months=horizon,
                 discount_rate=discount_rate, margin=margin, model=model, sector=sector, rules=rules,
                 playbooks=playbooks, predict=predict)


@app.command("demo")
def demo_cmd(
    store: StoreOpt = "clientfolio-demo.duckdb",
    out: Annotated[Path, typer.Option(help="Folder for the demo report and customers file.")] = Path("clientfolio-demo"),
) -> None:
    """Run everything on the bundled demo bakery: import, check the data, analyse, write the report."""
    from clientfolio.datasets import demo_shop_paths
    from clientfolio.ingest import import_files
    from clientfolio.store import open_store

    with handled("the demo was stopped; run `clientfolio demo` again to finish it."):
        check_out(out, ("report.html", "customers.csv"))
        paths = demo_shop_paths()
        console.print(f"[bold]clientfolio demo[/]: a generated bakery-café, imported into {store}")
        with open_store(store) as st, _progress() as prog:
            task = prog.add_task("importing", total=1.0)
            order = [paths[k] for k in ("customers", "transactions", "events", "marketing_spend") if k in paths]
            result = import_files(order, st, progress=lambda m, f: prog.update(task, description=m, completed=f))
            prog.stop()
            print_import(result)
            print_audit(st)
    _run_analyze(None, store, out, predict=True)


# ---------------------------------------------------------------------------- the living portfolio

def print_changes(result: Any, title: str) -> None:  # noqa: ANN401 - LiveResult
    """What an update, sweep or refit moved, in a few plain lines."""
    from clientfolio.live import summary_lines

    n = len(result.changes)
    console.print(f"[bold]{title}[/]: {n:,} segment change{'s' if n != 1 else ''} for "
                  f"{result.changes['customer_id'].nunique() if n else 0:,} customer(s)", highlight=False)
    if result.events_applied or result.events_skipped:
        console.print(f"  {result.events_applied:,} order(s)/event(s) applied, {result.events_skipped:,} already "
                      "applied before (skipped)", highlight=False)
    if result.rescanned:
        console.print(f"  {result.rescanned:,} customer(s) read again from their history (back-dated, edited or "
                      "cancelled orders)", highlight=False)
    for line in summary_lines(result.changes) if n else []:
        console.print(f"  • {line}", highlight=False)
    if result.outbox:
        console.print(f"  {result.outbox:,} message(s) queued for subscribed actions", highlight=False)
    for reason, k in sorted(result.outbox_left_out.items(), key=lambda kv: -kv[1]):
        console.print(f"  {k:,} message(s) not queued: {reason}", highlight=False)
    for note in result.notes:
        console.print(f"  note: {note}", highlight=False)


TriggersOpt = Annotated[Optional[Path], typer.Option(
    "--triggers", help="YAML subscriptions (segment kind, segment, entered/left -> action) to keep for this store.")]


def _live(st: Any, triggers: Path | None):  # noqa: ANN202
    from clientfolio.live import LivePortfolio

    return LivePortfolio(st, triggers=triggers)


@app.command("update")
@with_import_options
def update_cmd(
    files: Annotated[list[Path], typer.Argument(help="New orders, refunds, events or customers (any layout "
                                                     "`import` reads).")],
    store: StoreOpt = "clientfolio.duckdb",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Score the touched customers at this day "
                                                               "(default: their latest order or event).")] = None,
    triggers: TriggersOpt = None,
    *,
    imports: ImportArgs,
) -> None:
    """Add new orders and events to an analysed store and move only the customers they touch.

    The files are imported with the usual row accounting; then each touched customer's
    statistics are brought up to date (incrementally; a back-dated or edited order reads that
    customer's history again), re-scored with the stored state and re-segmented.  Every move is
    recorded with its reason (`clientfolio changes`).  Running it again with the same files
    changes nothing.
    """
    from clientfolio.ingest import import_files
    from clientfolio.store import open_store

    with handled("the store holds what was imported; run `clientfolio update` again to finish (nothing is "
                  "applied twice)."):
        opts = imports.options()
        check_inputs(files)
        day = day_option("--as-of", as_of)
        with open_store(existing_store(store)) as st:
            live = _live(st, triggers)
            with _progress() as prog:
                task = prog.add_task("importing", total=1.0)
                result = import_files(files, st, opts, progress=lambda m, f: prog.update(task, description=m,
                                                                                         completed=f),
                                      rejects_dir=imports.rejects_dir)
            print_import(result)
            moved = live.catch_up(day)
    print_changes(moved, "update")


@app.command("sweep")
def sweep_cmd(
    as_of: Annotated[str, typer.Option("--as-of", help="The day to bring the portfolio to (e.g. today).")],
    store: StoreOpt = "clientfolio.duckdb",
    triggers: TriggersOpt = None,
) -> None:
    """Apply the moves time alone causes by --as-of (P(alive) decays, customers turn at risk or lapse).

    Each customer's next possible move is known in advance, so a daily sweep touches only the
    customers who are due.  Run it daily (e.g. from cron: `clientfolio sweep --as-of $(date +%F)`).
    """
    from clientfolio.store import open_store

    with handled("the store is as before the sweep (a sweep is written whole or not at all)."):
        day = day_option("--as-of", as_of)
        with open_store(existing_store(store)) as st:
            live = _live(st, triggers)
            pending = live.catch_up(day)
            result = live.sweep(day)
    if len(pending.changes):
        print_changes(pending, "imports not yet applied")
    print_changes(result, f"sweep to {pd_day(day)}")


def _text(v: Any) -> str:
    """A cell for a table: missing (None or NaN) is empty."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def pd_day(day: str) -> str:
    import pandas as pd

    return f"{pd.Timestamp(day):%d %b %Y}"


@app.command("refit")
def refit_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    cutoff: Annotated[str | None, typer.Option(help="Fit at this day (default: the last order).")] = None,
) -> None:
    """Fit the portfolio state anew; the moves a refit causes are recorded apart from behaviour's.

    `clientfolio status` says when a refit is due (the state's age, share of new customers,
    how far purchases drift from what it predicted).
    """
    from clientfolio.pipeline import refit

    with handled("the store keeps its previous state."):
        day_option("--cutoff", cutoff)
        with _progress() as prog:
            task = prog.add_task("refitting", total=1.0)
            result = refit(existing_store(store), cutoff=cutoff,
                           progress=lambda m, f: prog.update(task, description=m, completed=f))
    print_changes(result, "refit")


@app.command("status")
def status_cmd(store: StoreOpt = "clientfolio.duckdb") -> None:
    """How old the fitted state is, how well it still tracks, and whether to refit."""
    from clientfolio.store import open_store

    with handled("the store is unchanged."), open_store(existing_store(store)) as st:
        h = _live(st, None).health()
    console.print(f"state {h['state_id']} fitted at {h['fitted_at_cutoff']:%d %b %Y}; customers up to date as of "
                  f"{h['as_of']:%d %b %Y} ({h['age_days']} days later)", highlight=False)
    console.print(f"  {h['customers']:,} customers, {h['new_customers']:,} ({h['new_share']:.0%}) arrived since the fit",
                  highlight=False)
    if h["tracking_drift"] is not None:
        console.print(f"  repeat purchases since the fit: {h['tracking_drift']:+.0%} against the prediction",
                      highlight=False)
    console.print(f"  {h['advice']}", highlight=False)


@app.command("changes")
def changes_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    since: Annotated[str | None, typer.Option(help="Only changes from this day on (default: all).")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer's changes, with every reason.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this segment kind (lifecycle, rfm, value_tier, ...).")] = None,
    segment: Annotated[str | None, typer.Option(help="Only moves into or out of this segment (e.g. 'at risk'); "
                                                     "with --entered, only into it.")] = None,
    entered: Annotated[bool, typer.Option("--entered", help="With --segment: only customers who entered it.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Also write the changes to this CSV (spreadsheet-safe).")] = None,
) -> None:
    """What changed since last time: entries and exits per segment, with reasons and example customers.

    `clientfolio changes --segment "at risk" --entered --since 2025-01-13 --out at_risk.csv` lists who
    turned at risk this week, each with the reason.
    """
    import pandas as pd

    from clientfolio.live import summary_lines
    from clientfolio.store import open_store

    with handled("the store is unchanged."):
        day = day_option("--since", since)
        with open_store(existing_store(store)) as st:
            ch = st.read_changes(since=pd.Timestamp(day) if day else None, customer_id=customer, segment_kind=kind)
        if segment is not None:
            name = segment.casefold()
            into = ch["to_segment"].fillna("").str.casefold() == name
            ch = ch[into if entered else into | (ch["from_segment"].fillna("").str.casefold() == name)]
        elif entered:
            raise ClientfolioError("--entered needs --segment: which segment's entries to list")
        if out is not None:
            from clientfolio.core.safecsv import write_frame

            write_frame(ch, out)
    if ch.empty:
        console.print("no segment changes recorded" + (f" since {pd_day(day)}" if day else ""), highlight=False)
        return
    if customer:
        t = Table("when", "kind", "from", "to", "cause", "why")
        for r in ch.itertuples():
            t.add_row(f"{r.changed_at:%Y-%m-%d}", r.segment_kind, _text(r.from_segment), _text(r.to_segment), r.cause,
                      _text(r.reason))
        console.print(t)
    else:
        console.print(f"[bold]{len(ch):,} segment changes[/] for {ch['customer_id'].nunique():,} customers"
                      + (f" since {pd_day(day)}" if day else ""), highlight=False)
        for line in summary_lines(ch):
            console.print(f"  • {line}", highlight=False)
    if out is not None:
        console.print(f"all changes: [bold]{out}[/]")


# Commands of the other areas, one module each (clientfolio/commands/), added to the same app.
AREAS: list[str] = [
    "playbooks",
    "experiments",
    "planning",
    "insight",
    "approvals",
    "contacts",
    "fairness",
    "privacy",
    "text",
    "webhooks",
    "service",
    "predict",
    "recommend",
]
for _area in AREAS:
    importlib.import_module(f"clientfolio.commands.{_area}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
