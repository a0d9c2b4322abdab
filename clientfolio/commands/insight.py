"""Commands for acquisition insight, the owner's tags and segment health: icp, lookalike, tag, tags, segments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, err, existing_store, handled
from clientfolio.core.errors import ClientfolioError

OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Also write the full table to this CSV "
                                                              "(spreadsheet-safe).")]


def _check_file(out: Path | None, option: str = "--out") -> None:
    """An output file we can write: not a folder, in a folder that exists."""
    if out is None:
        return
    if out.is_dir():
        raise ClientfolioError(f"{option} {out} is a folder; give a file name, e.g. {out / 'scored.csv'}")
    if not out.parent.exists():
        raise ClientfolioError(f"{option} {out}: the folder {out.parent} does not exist; create it or choose another")


def _cell(v: Any, fmt: str = "{}") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return fmt.format(v)


def _write(df: Any, out: Path, store: Any, kind: str) -> None:
    from clientfolio.actions.outputs import record_output
    from clientfolio.core.safecsv import write_frame

    write_frame(df, out)
    record_output(store, out, kind, rows=len(df))


def icp_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    top_share: Annotated[float, typer.Option(help="The top value tier: this share of established customers by "
                                                  "predicted CLV.")] = 0.2,
    new_days: Annotated[int, typer.Option(help="Customers whose first order is this recent are too new to count "
                                               "as evidence.")] = 90,
    out: OutOpt = None,
) -> None:
    """The ideal customer profile: which channels, regions and first purchases bring your best customers.

    For every acquisition channel, region and first order's category or product: customers, mean
    and median predicted CLV (95% interval for the mean), how often they end in the top 20%
    against the average (lift), and whether that is significant (controlled for testing many
    values at once).  Values with fewer than 30 customers are marked too few to conclude.
    """
    from clientfolio.actions.acquisition import ATTRIBUTES, ideal_customer_profile
    from clientfolio.core.money import format_money
    from clientfolio.store import open_store

    with handled("nothing was changed."):
        _check_file(out)
        with open_store(existing_store(store)) as st:
            prof = ideal_customer_profile(st, top_share=top_share, new_days=new_days)
            if out is not None:
                from clientfolio.core.safecsv import write_frame

                write_frame(prof.table, out)  # aggregates only: no customer data
    for line in prof.lines:
        console.print(line, highlight=False)
    t = prof.table[~prof.table["too_small"]].sort_values("lift", ascending=False).head(15)
    tab = Table("attribute", "value", "customers", "mean CLV (95% interval)", "median", "top share", "lift",
                "in profile", title="Largest lifts (values with enough customers)")
    money = lambda v: format_money(v, prof.currency)  # noqa: E731
    for r in t.itertuples():
        tab.add_row(ATTRIBUTES[r.attribute], str(r.value), f"{r.customers:,}",
                    f"{money(r.mean_clv)} ({money(r.mean_clv_low)}-{money(r.mean_clv_high)})", money(r.median_clv),
                    f"{r.top_share:.0%}", f"{r.lift:.1f}x", "yes" if r.in_profile else "")
    console.print(tab)
    if out is not None:
        console.print(f"full table: [bold]{out}[/]")


def lookalike_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    prospects: Annotated[Optional[Path], typer.Option("--prospects", help="CSV of leads to score (columns such as "
                                                      "email, region, channel, first_product_interest).")] = None,
    out: OutOpt = None,
    limit: Annotated[int, typer.Option(help="Show this many on screen.")] = 20,
    new_days: Annotated[int, typer.Option(help="Customers whose first order is this recent are lookalike "
                                               "candidates, not evidence.")] = 90,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="Score the good rows of a prospects file "
                                                "and list the bad ones, instead of refusing the file.")] = False,
) -> None:
    """Prospects and new customers who look like your best customers, each with the reason.

    Without --prospects: the store's prospects (customers without an order) and customers whose
    first order is within --new-days.  With --prospects FILE: the file's leads, scored against the
    profile (`clientfolio lookalike --prospects leads.csv --out scored.csv`).  The score is a
    model's estimate of the chance of joining your top 20%; its holdout AUC says how far to trust
    it.  Consent is not implied: contact leads only on a lawful basis.
    """
    from clientfolio.actions.acquisition import ideal_customer_profile, lookalikes, score_prospects
    from clientfolio.actions.prospects import read_prospects
    from clientfolio.store import open_store

    with handled("nothing was written."):
        _check_file(out)
        with open_store(existing_store(store)) as st:
            prof = ideal_customer_profile(st, new_days=new_days)
            if prospects is None:
                result = lookalikes(st, profile=prof)
                table, head = result.table, result.text
                if out is not None:
                    _write(table, out, st, "lookalikes")
            else:
                if prof.model is None:
                    raise ClientfolioError("no lookalike model could be trained (too few top-tier customers): "
                                           "prospects cannot be scored yet")
                pf = read_prospects(prospects, prof.model.known)
                if len(pf.rejects) and not skip_bad_rows:
                    raise ClientfolioError(f"{len(pf.rejects)} malformed row{'s' if len(pf.rejects) > 1 else ''} "
                                           f"in {prospects}; nothing was scored:\n{pf.problems()}\nFix them, or pass "
                                           "--skip-bad-rows to score the others")
                scored = score_prospects(prof, pf.frame)
                table = scored[[*pf.header, "score", "lift", "matches", "reason"]]
                head = (f"{len(table):,} prospects scored from {prospects}" +
                        (f"; {len(pf.rejects)} malformed rows left out" if len(pf.rejects) else "") + ". "
                        + prof.model.text)
                if out is not None:
                    _write(table, out, st, "prospects")
    console.print(head, highlight=False)
    if prospects is not None and len(pf.rejects):
        err.print(pf.problems(), highlight=False)
    ids = [c for c in ("customer_id", "kind") if c in table] if prospects is None else \
        [pf.columns.get("email", pf.header[0])]
    tab = Table(*ids, "score", "reason", title="Best matches first")
    for r in table.head(limit).to_dict("records"):
        tab.add_row(*[_cell(r[c]) for c in ids], _cell(r["score"], "{:.2f}"), str(r["reason"]))
    console.print(tab)
    if out is not None:
        console.print(f"all {len(table):,}: [bold]{out}[/]")


def tag_cmd(
    customer: Annotated[Optional[str], typer.Argument(help="The customer id to tag.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="TAG=VALUE, e.g. key_account=yes, "
                                                       "strategic_fit=high (repeatable).")] = None,
    label: Annotated[Optional[list[str]], typer.Option("--tag", help="A free tag of your own, e.g. local_supplier "
                                                        "(repeatable).")] = None,
    remove: Annotated[Optional[list[str]], typer.Option("--remove", help="Remove this tag (repeatable).")] = None,
    import_: Annotated[Optional[Path], typer.Option("--import", help="CSV of tags: customer_id,tag,value rows, or "
                                                     "customer_id and one column per tag.")] = None,
    store: StoreOpt = "clientfolio.duckdb",
) -> None:
    """Your own view of a customer, kept beside the measured one.

    Built-in tags: strategic_fit and growth_potential (low/medium/high), key_account and partner
    (yes/no); any other short name is a free tag.  `clientfolio tags` lists tagged customers next
    to the data's view, disagreements first.
    """
    import pandas as pd

    from clientfolio.actions.tags import read_tags, set_tags
    from clientfolio.store import open_store

    with handled("no tags were changed."):
        if import_ is not None:
            if customer or set_ or label or remove:
                raise ClientfolioError("give either --import FILE or a CUSTOMER with --set/--tag/--remove, not both")
            frame = _tag_file(import_)
        else:
            if not customer:
                raise ClientfolioError("name the customer (`clientfolio tag C00042 --set key_account=yes`) or "
                                       "import a file (`clientfolio tag --import tags.csv`)")
            rows = []
            for item in set_ or []:
                if "=" not in item:
                    raise ClientfolioError(f"--set {item!r}: write TAG=VALUE, e.g. --set strategic_fit=high")
                k, v = item.split("=", 1)
                rows.append((customer, k, v))
            rows += [(customer, k, "yes") for k in label or []]
            rows += [(customer, k, None) for k in remove or []]
            if not rows:
                raise ClientfolioError("nothing to do: add --set TAG=VALUE, --tag NAME or --remove TAG")
            frame = pd.DataFrame(rows, columns=["customer_id", "tag", "value"])
        with open_store(existing_store(store)) as st:
            n = set_tags(st, frame)
            shown = read_tags(st, [customer]) if customer else None
    console.print(f"{n:,} tag{'s' if n != 1 else ''} stored" + (f", {int(frame['value'].isna().sum())} removed"
                                                                 if frame["value"].isna().any() else ""))
    if shown is not None:
        console.print(f"{customer}: " + (", ".join(f"{t}={v}" for t, v in zip(shown["tag"], shown["value"]))
                                         or "no tags"), highlight=False)


def _tag_file(path: Path) -> Any:
    import pandas as pd

    if not path.exists() or path.is_dir():
        raise ClientfolioError(f"--import {path}: {'is a folder' if path.is_dir() else 'file not found'}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ClientfolioError(f"--import {path}: not a readable UTF-8 CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "customer_id" not in df:
        raise ClientfolioError(f"--import {path}: needs a customer_id column (and tag,value columns, or one column "
                               "per tag)")
    if {"tag", "value"} <= set(df.columns):
        return df[["customer_id", "tag", "value"]]
    long = df.melt(id_vars="customer_id", var_name="tag", value_name="value")
    return long[long["value"].str.strip() != ""]


def tags_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    out: OutOpt = None,
    limit: Annotated[int, typer.Option(help="Show this many on screen.")] = 30,
) -> None:
    """Tagged customers beside the data's view, disagreements first (the "keep despite the numbers" list)."""
    from clientfolio.actions.tags import read_tags, tagged_portfolio
    from clientfolio.store import open_store

    with handled("nothing was changed."):
        _check_file(out)
        with open_store(existing_store(store)) as st:
            view = tagged_portfolio(st, read_tags(st))
            if out is not None:
                _write(view, out, st, "owner tags")
    if view.empty:
        console.print("no customer is tagged yet: `clientfolio tag CUSTOMER --set strategic_fit=high`")
        return
    n = int((view["disagreement"] != "").sum())
    console.print(f"{len(view):,} tagged customers; owner and data disagree on {n:,}", highlight=False)
    tab = Table("customer", "quadrant", "value tier", "your tags", "where you and the data differ")
    for r in view.head(limit).to_dict("records"):
        tags = ", ".join(f"{k}={r[k]}" for k in ("strategic_fit", "growth_potential", "key_account", "partner")
                         if isinstance(r.get(k), str))
        if isinstance(r.get("other_tags"), str):
            tags = f"{tags}, {r['other_tags']}" if tags else r["other_tags"]
        tab.add_row(str(r["customer_id"]), _cell(r.get("quadrant")), _cell(r.get("value_tier")), tags,
                    r["disagreement"])
    console.print(tab)


def segments_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="Only this segment kind (repeatable).")] = None,
    acted: Annotated[Optional[list[str]], typer.Option("--acted", help="KIND/SEGMENT that has an action attached "
                                                       "(repeatable), besides the store's triggers.")] = None,
    out: OutOpt = None,
) -> None:
    """Segment health: size, largest overlap with another kind, stability across refits, missing actions.

    Stability is the share of a segment's members who stayed in it at the latest refit (from the
    change log); before any refit, between the last two snapshots.  A segment counts as acted on
    when a stored trigger (`--triggers` of update/sweep) or --acted names it.
    """
    from clientfolio.actions.health import actions_from_triggers, health_findings, segment_health
    from clientfolio.store import open_store

    with handled("nothing was changed."):
        _check_file(out)
        pairs = set()
        for item in acted or []:
            if "/" not in item:
                raise ClientfolioError(f"--acted {item!r}: write KIND/SEGMENT, e.g. --acted 'lifecycle/at risk'")
            k, s = item.split("/", 1)
            pairs.add((k.strip(), s.strip()))
        with open_store(existing_store(store)) as st:
            pairs |= actions_from_triggers(st)
            table = segment_health(st, has_action=pairs, kinds=kind)
        if out is not None:
            from clientfolio.core.safecsv import write_frame

            write_frame(table.assign(warnings=table["warnings"].map(" | ".join)), out)  # segment-level only
    tab = Table("kind", "segment", "customers", "largest overlap (Jaccard)", "stayed", "action")
    for r in table.itertuples():
        ov = f"{r.overlap_segment} ({r.overlap_kind}) {r.overlap_jaccard:.2f}" if isinstance(r.overlap_segment,
                                                                                            str) else ""
        tab.add_row(r.segment_kind, r.segment, f"{r.customers:,}", ov, _cell(r.stability, "{:.0%}"),
                    "yes" if r.has_action else "[yellow]none[/]")
    console.print(tab)
    console.print(f"stayed: {table['stability_basis'].iloc[0]}", highlight=False)
    for line in health_findings(table):
        console.print(f"  ! {line}", highlight=False)
    if out is not None:
        console.print(f"table: [bold]{out}[/]")


def register(app: typer.Typer) -> None:
    """Add icp, lookalike, tag, tags and segments to the `clientfolio` command."""
    app.command("icp")(icp_cmd)
    app.command("lookalike")(lookalike_cmd)
    app.command("tag")(tag_cmd)
    app.command("tags")(tags_cmd)
    app.command("segments")(segments_cmd)
