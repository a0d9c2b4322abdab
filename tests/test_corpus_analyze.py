"""`analyze` on every real export in ../shared/corpus: honest on each, whatever its size.

For every export (and the two Olist split exports, each imported as its three files): no
interval is zero-width; a range the data cannot pin down is not printed as one (a plain
statement instead); no forecast appears unless the data supports it, and where it does not,
the summary says so; the revenue the report states is the revenue in the store. Exports that
cannot be analysed (no customer column, no customers) fail with a plain error that says why.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import clientfolio
from clientfolio.core.errors import ClientfolioError
from clientfolio.portfolio import MAX_RANGE_RATIO
from clientfolio.scores.clv import FORECAST_COLUMNS
from clientfolio.store import open_store
from tests.conftest import CORPUS, corpus_file

OLIST = {
    "olist_joined_sample": ["olist_orders_dataset__joined_sample__albuquerques.csv",
                            "olist_order_payments_dataset__joined_sample__albuquerques.csv",
                            "olist_customers_dataset__joined_sample__albuquerques.csv"],
    "olist_original_quoting_head": ["olist_orders_dataset__original_quoting_head__ArielCastilla.csv",
                                    "olist_order_payments_dataset__original_quoting_head__ArielCastilla.csv",
                                    "olist_customers_dataset__original_quoting_head__ArielCastilla.csv"],
}
# Exports that hold no customer at all: analysing them must say so, not invent a portfolio.
NO_CUSTOMERS = {
    "olist_original_quoting_head": "none of the .* rows imported is an order with a customer",
    "shopify_orders_export__column_subset_panalysis.csv": "customer",
    "stripe_unified_payments__testmode_column_subset_kkk915.csv": "customer",
    "stripe_unified_payments__testmode_brknt.csv": "customer",
}
SINGLE = sorted(p.name for p in CORPUS.glob("*") if p.suffix in (".csv", ".txt")
                and not p.name.startswith("olist")) if CORPUS.exists() else []
CASES = SINGLE + sorted(OLIST)


def _paths(case: str) -> list[Path]:
    return [corpus_file(n) for n in OLIST.get(case, [case])]


def _money_in(text: str) -> list[tuple[str, str]]:
    """Every 'between A and B' / 'range A to B' pair in a text."""
    return re.findall(r"(?:between|range) (\S+) (?:and|to) (\S+?)[ ,.;)]", text)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_analyze_is_honest_on_every_corpus_export(case: str, tmp_path: Path) -> None:
    store = tmp_path / "shop.duckdb"
    if case in NO_CUSTOMERS:
        with pytest.raises(ClientfolioError, match=NO_CUSTOMERS[case]):
            clientfolio.analyze(_paths(case), store=store)
        return
    pf = clientfolio.analyze(_paths(case), store=store)
    c = pf.customers
    headline = " ".join(pf.headline())
    html = pf.report(tmp_path / "report.html").read_text(encoding="utf-8")

    # Revenue: each customer's is the store's, and the report states the store's total.
    with open_store(store) as st:
        revenue = float(st.query("SELECT coalesce(sum(amount), 0) AS r FROM transactions")["r"].iloc[0])
        per_customer = st.query("SELECT customer_id, sum(amount) AS r FROM transactions "
                                "WHERE customer_id IS NOT NULL GROUP BY customer_id")
    mine = c.set_index("customer_id")["revenue"]
    theirs = per_customer.set_index("customer_id")["r"].reindex(mine.index)
    assert ((mine - theirs).abs() < 1e-6).all(), case
    card = re.search(r"<b>([^<]*)</b><span>revenue to date", html)
    assert card, case
    assert card.group(1).startswith(pf.currency) or not pf.currency, (case, card.group(1))
    assert abs(float(re.sub(r"[^\d.\-]", "", card.group(1))) - revenue) <= 1.0, (case, card.group(1), revenue)
    stated = re.findall(r"\(([^()]*\d) in all\)|spent (\S+) in total", headline)
    total_stated = [a or b for a, b in stated][-1]  # with guest orders, "(... in all)" comes last
    assert abs(float(re.sub(r"[^\d.\-]", "", total_stated)) - revenue) <= 1.0, (case, headline, revenue)

    # No interval is zero-width: not per customer, not in the summary.
    both = c["clv_low"].notna() & c["clv_high"].notna() if "clv_low" in c else pd.Series(False, index=c.index)
    assert (c.loc[both, "clv_high"] > c.loc[both, "clv_low"]).all(), case
    for lo, hi in _money_in(headline):
        assert lo != hi, (case, headline)

    # No forecast without the data to support it; where there is none, a plain statement.
    if not pf.support.forecasts:
        for col in FORECAST_COLUMNS:
            assert c[col].isna().all(), (case, col)
        assert "cannot be estimated from this data" in headline, (case, headline)
        assert "expected to be worth" not in headline and "Not estimated." in html, case
        assert not [f for f in pf.audit.findings if f.level == "good" and "forecast" in f.text.lower()], case
    else:
        assert c["clv"].notna().all() and "expected to be worth" in headline, case
        total = pf.settings["clv_total_interval"]
        assert total["high"] > total["low"] and total["covers"], case
        if total["high"] > MAX_RANGE_RATIO * max(float(c["clv"].sum()), 1e-9):
            assert "cannot pin this down" in headline, (case, headline)  # too wide to print as a range
        else:
            assert re.search(r"\d+% range", headline), (case, headline)  # the range says what it covers
