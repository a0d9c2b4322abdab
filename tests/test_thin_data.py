"""Thin data: below the measured minimum the product says what it cannot estimate, and shows history.

Three shops that cannot support a forecast: a 2-customer Shopify shop with one day of orders, the
UCI Online Retail one-day file (95 customers, one day) and the Olist sample (two years and 2,954
customers, of whom 3 came back).  For each: no interval is zero-width, no forecast appears where
the data does not support one (a plain statement instead), the report's revenue is the store's,
and the data check-up is not green.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import clientfolio
from clientfolio.scores.clv import FORECAST_COLUMNS
from clientfolio.store import open_store
from tests.conftest import DATA, corpus_file

OLIST = ["olist_orders_dataset__joined_sample__albuquerques.csv",
         "olist_order_payments_dataset__joined_sample__albuquerques.csv",
         "olist_customers_dataset__joined_sample__albuquerques.csv"]


def _inputs(name: str) -> list[Path]:
    if name == "two_customers":
        return [DATA / "trust" / "thin" / "shopify_two_customers_one_day.csv"]
    if name == "uci_one_day":
        return [corpus_file("uci_online_retail__by_day_2010-12-01__spark_definitive_guide.csv")]
    return [corpus_file(n) for n in OLIST]


@pytest.fixture(scope="module", params=["two_customers", "uci_one_day", "olist"])
def shop(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    store = out / "shop.duckdb"
    pf = clientfolio.analyze(_inputs(request.param), store=store)
    with open_store(store) as st:
        revenue = float(st.query("SELECT sum(amount) AS r FROM transactions")["r"].iloc[0])
    html = pf.report(out / "report.html").read_text(encoding="utf-8")
    customers_csv = pd.read_csv(pf.to_file(out / "customers.csv"))
    return request.param, pf, revenue, html, customers_csv


@pytest.mark.slow
def test_no_forecast_where_the_data_cannot_support_one(shop) -> None:
    name, pf, _, html, customers_csv = shop
    assert not pf.support.forecasts, name
    assert pf.models.get("purchase") is None  # no model was fitted on data it cannot describe
    c = pf.customers
    for col in FORECAST_COLUMNS:
        assert c[col].isna().all(), (name, col)
        assert customers_csv[col].isna().all(), (name, col)
    assert customers_csv["forecast_note"].str.startswith("not estimated: forecasts need at least").all()
    text = " ".join(pf.headline())
    assert "cannot be estimated from this data" in text and "expected to be worth" not in text
    assert "Not estimated." in html and "expected to be worth" not in html
    assert "chart-clv" not in html and "chart-quadrant" not in html and "chart-palive" not in html
    # what the history supports is still there
    assert c["revenue"].notna().all() and c["rfm_segment"].notna().all() and c["lifecycle"].notna().all()
    assert (c["historical_value_tier"].notna()).all()


@pytest.mark.slow
def test_no_zero_width_interval(shop) -> None:
    name, pf, *_ = shop
    c = pf.customers
    both = c["clv_low"].notna() & c["clv_high"].notna()
    assert (c.loc[both, "clv_high"] > c.loc[both, "clv_low"]).all(), name
    total = pf.settings.get("clv_total_interval")
    assert total is None or total["high"] > total["low"]
    assert not re.search(r"between (\S+) and \1\b", " ".join(pf.headline()))


@pytest.mark.slow
def test_report_revenue_is_the_store_revenue(shop) -> None:
    name, pf, revenue, html, _ = shop
    shown = f"{pf.currency}{revenue:,.0f}"
    assert f"<b>{shown}</b>" in html, (name, shown)  # the revenue card
    headline = " ".join(pf.headline())
    assert shown in headline or pf.money(revenue) in headline, name
    assert pf.audit.metrics["revenue"] == pytest.approx(revenue)


@pytest.mark.slow
def test_checkup_is_not_green(shop) -> None:
    name, pf, *_ = shop
    assert not [f.text for f in pf.audit.findings if f.level == "good"], name
    verdict = [f for f in pf.audit.findings if "forecast" in f.text]
    assert verdict and verdict[0].level == "warn" and "Not enough history to forecast" in verdict[0].text


@pytest.mark.slow
def test_no_group_is_named_for_a_habit_nobody_has(shop) -> None:
    name, pf, *_ = shop
    if pf.clusters is None:
        return
    repeaters = float((pf.customers["orders"] > 1).mean())
    names = " ".join(pf.clusters.membership["segment"].unique()).lower()
    if repeaters < 0.05:
        assert "regular" not in names and "frequent" not in names, names



def test_headline_range_says_what_it_covers_and_refuses_a_useless_one() -> None:
    from clientfolio.portfolio import MAX_RANGE_RATIO, Portfolio

    customers = pd.DataFrame({"customer_id": ["a", "b"], "orders": [3, 1], "revenue": [90.0, 30.0],
                              "clv": [50.0, 20.0]})
    covers = "the model's parameter uncertainty and the randomness of who buys how often"
    pf = Portfolio(customers=customers, segments=pd.DataFrame(), kpis=pd.DataFrame(),
                   as_of=pd.Timestamp("2024-12-31"), currency="£",
                   settings={"horizon_months": 12, "clv_total_interval": {"low": 40.0, "high": 110.0, "level": 0.8,
                                                                         "covers": covers}})
    line = next(x for x in pf.headline() if "expected to be worth" in x)
    assert "£70.00" in line and "80% range £40.00 to £110" in line and covers in line
    pf.settings["clv_total_interval"]["high"] = 70.0 * MAX_RANGE_RATIO * 2
    line = next(x for x in pf.headline() if "expected to be worth" in x)
    assert "cannot pin this down" in line and "range" in line and str(int(70 * MAX_RANGE_RATIO * 2)) not in line
