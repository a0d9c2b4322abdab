"""`clientfolio recommend`: what to offer each customer next (cross-sell and up-sell), with reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clientfolio.commands.common import StoreOpt, console, existing_store, handled


def recommend_cmd(
    store: StoreOpt = "clientfolio.duckdb",
    demo: Annotated[bool, typer.Option("--demo", help="Use the bundled demo bakery-café instead of a store.")] = False,
    customer: Annotated[Optional[str], typer.Option("--customer", help="Show this customer's recommendations "
                                                                       "and why.")] = None,
    to: Annotated[Optional[Path], typer.Option("--to", help="Write every customer's recommendations to this CSV "
                                                            "(customers who refused personalisation are left out).")]
    = None,
    k: Annotated[int, typer.Option(help="Recommendations per customer (and the k of hit rate@k).")] = 5,
    horizon: Annotated[int, typer.Option(help="Days after the cut-off in which a recommendation counts as a hit.")]
    = 60,
) -> None:
    """Cross-sell and up-sell recommendations, chosen per shop by how well they predicted real purchases.

    Item co-occurrence and an ALS factorisation are each tested on a time split (fitted on purchases
    up to a cut-off, judged on what customers bought first in the --horizon days after it) against
    simply offering the most popular products; the best by hit rate@k is used, and the table says why.
    Every recommendation carries a "because you bought ..." reason.
    """
    from clientfolio.core.errors import ClientfolioError
    from clientfolio.predict.recommend import Recommender

    with handled("nothing was written."):
        if k < 1 or horizon < 1:
            raise ClientfolioError(f"--k and --horizon must be 1 or more, got {k} and {horizon}")
        if to is not None and to.is_dir():
            raise ClientfolioError(f"--to {to} is a folder; give a file name, e.g. {to / 'recommendations.csv'}")
        if demo:
            from clientfolio.datasets import load_demo_shop

            tx = load_demo_shop()["transactions"]
            refused: set[str] = set()
            source = "the demo shop"
        else:
            from clientfolio.store import open_store

            with open_store(existing_store(store)) as st:
                tx = st.query("SELECT customer_id, order_id, ts, amount, quantity, product_id, category "
                              "FROM transactions WHERE customer_id IS NOT NULL")
                refused = _refused_personalisation(st, sorted(tx["customer_id"].astype(str).unique()))
            source = store
        if tx["product_id"].isna().all():
            raise ClientfolioError(f"{source} has no product ids on its order lines, so there is nothing to "
                                   "recommend; import a file with a product column")
        rec = Recommender(k=k, horizon_days=horizon).fit(tx)
        if customer is not None and str(customer) not in rec.fitted_.c_index:
            raise ClientfolioError(f"customer {customer} has no purchases with a product in {source}")
        comp = rec.comparison_
        table = Table("method", f"hit rate@{k}", f"recall@{k}", f"coverage@{k}", title=(
            f"Recommendations tested on {source}: fitted up to {comp.cutoff}, judged on the next "
            f"{comp.horizon_days} days ({comp.n_test} customers bought something new to them)"))
        names = {"cooccurrence": "item co-occurrence", "factorisation": "factorisation",
                 "popular": "most popular (baseline)"}
        for m, r in comp.details["methods"].items():  # type: ignore[union-attr]
            label = names[m] + (f" [{r['library']}]" if "library" in r else "")
            table.add_row(label, f"{r['hit_rate']:.1%}", f"{r['recall']:.1%}", f"{r['coverage']:.0%}")
        if comp.details["methods"]:
            console.print(table)
        console.print(comp.sentence, highlight=False)
        console.print("Up-sell: a pricier product of the same category that at least "
                      f"{rec.min_movers} customers bought for the first time after the customer's usual one.",
                      highlight=False)
        if customer is not None:
            mine = rec.recommend([customer])
            t = Table("kind", "#", "product", "category", "because", title=f"Customer {customer}")
            for r in mine.itertuples(index=False):
                t.add_row(r.kind, str(r.rank), r.product_id, r.category, r.because)
            console.print(t)
            if str(customer) in refused:
                console.print(f"note: customer {customer} refused personalisation; they are left out of --to files.")
        if to is not None:
            from clientfolio.core.safecsv import write_frame

            everyone = rec.recommend()
            left_out = everyone["customer_id"].isin(refused)
            n_refused = int(everyone.loc[left_out, "customer_id"].nunique())
            out = everyone.loc[~left_out]
            write_frame(out, to)
            console.print(f"{len(out):,} recommendations for {out['customer_id'].nunique():,} customers written to "
                          f"[bold]{to}[/]; {n_refused:,} customers who refused personalisation were left out.")


def _refused_personalisation(st: object, ids: list[str]) -> set[str]:
    """Customers whose newest personalisation record is a withdrawal (no record: not refused)."""
    from clientfolio.store.consent import consent_status

    status = consent_status(st, ids, purpose="personalisation", channel="any")  # type: ignore[arg-type]
    return set(status.loc[status["basis"].str.startswith("withdrawn"), "customer_id"])


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)
