"""Bundled data sets: the CDNOW master file and the generated bakery-café demo shop."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio import datasets
from clientfolio.datasets import _io, bakery

CDNOW_SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"
START, END = pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC")


# --------------------------------------------------------------------------- CDNOW
def test_cdnow_file_is_the_lifetimes_copy_byte_for_byte() -> None:
    data = datasets.cdnow_master_path().read_bytes()
    assert hashlib.sha256(data).hexdigest() == CDNOW_SHA256
    assert data.startswith(b" customer_id  date number_of_cds  dollar_value\r\n 00001 19970101  1   11.77\r\n")


def test_load_cdnow_master() -> None:
    df = datasets.load_cdnow_master()
    assert list(df.columns) == ["customer_id", "date", "cds", "amount"]
    assert len(df) == 69_659
    assert df["customer_id"].nunique() == 23_570
    assert df["customer_id"].iloc[0] == "00001"  # the text of the file, not an int
    assert df["customer_id"].str.fullmatch(r"\d{5}").all()
    assert pd.api.types.is_datetime64_any_dtype(df["date"])
    assert df["date"].min() == pd.Timestamp("1997-01-01")
    assert df["date"].max() == pd.Timestamp("1998-06-30")
    assert pd.api.types.is_integer_dtype(df["cds"]) and (df["cds"] >= 0).all()
    assert (df["amount"] >= 0).all()
    # every customer's first purchase is in the first quarter of 1997 (the cohort)
    assert df.groupby("customer_id")["date"].min().max() < pd.Timestamp("1997-04-01")


# --------------------------------------------------------------------------- bundled demo shop
@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return datasets.load_demo_shop()


@pytest.fixture(scope="module")
def orders(shop: dict[str, pd.DataFrame]) -> pd.DataFrame:
    tx = shop["transactions"]
    return tx.groupby("order_id", sort=False).agg(
        customer_id=("customer_id", "first"), ts=("ts", "first"), amount=("amount", "sum"),
        channel=("channel", "first"), n_customers=("customer_id", "nunique"), n_ts=("ts", "nunique"))


def test_demo_shop_files_and_columns(shop: dict[str, pd.DataFrame]) -> None:
    paths = datasets.demo_shop_paths()
    assert set(paths) == set(_io.TABLES) == set(shop)
    assert all(p.is_file() and p.parent == datasets.demo_shop_dir() for p in paths.values())
    for name, df in shop.items():
        assert list(df.columns) == list(_io.SCHEMA[name]), name
    total = sum(p.stat().st_size for p in paths.values())
    assert total < 4_000_000
    raw = gzip.decompress(paths["transactions"].read_bytes()).decode().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw[1].split(",")[3])
    assert re.fullmatch(r"-?\d+\.\d\d", raw[1].split(",")[4])


def test_bundled_files_match_the_manifest_the_generator_wrote() -> None:
    manifest = json.loads((datasets.demo_shop_dir() / "MANIFEST.json").read_text())
    assert manifest["seed"] == bakery.DEFAULT_SEED
    assert manifest["n_customers"] == bakery.DEFAULT_N_CUSTOMERS
    for name, path in datasets.demo_shop_paths().items():
        csv = _io.csv_bytes_of(path)
        entry = manifest["files"][path.name]
        assert hashlib.sha256(csv).hexdigest() == entry["sha256_of_csv"], name
        assert csv.count(b"\n") - 1 == entry["rows"]


def test_sizes(shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> None:
    assert 3000 <= len(shop["customers"]) <= 4000
    assert 60_000 <= len(shop["transactions"]) <= 150_000
    assert len(orders) > 40_000
    assert len(shop["events"]) > 10_000


def test_keys_and_referential_integrity(shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> None:
    tx, cu, ev = shop["transactions"], shop["customers"], shop["events"]
    assert cu["customer_id"].is_unique
    assert cu["customer_id"].str.fullmatch(r"C\d{5}|W\d{3}").all()
    known = set(cu["customer_id"])
    assert set(tx["customer_id"]) <= known
    assert set(ev["customer_id"]) <= known
    assert set(cu["customer_id"]) == set(tx["customer_id"])  # every customer bought something
    assert (orders["n_customers"] == 1).all() and (orders["n_ts"] == 1).all()
    # line numbers are 1..k within each order, and the table is in time order
    k = tx.groupby("order_id", sort=False)["line_no"]
    assert (k.min() == 1).all() and (k.max() == k.size()).all() and (k.nunique() == k.size()).all()
    assert tx["ts"].is_monotonic_increasing and ev["ts"].is_monotonic_increasing
    for t in (tx["ts"], ev["ts"]):
        assert str(t.dt.tz) == "UTC" and t.min() >= START and t.max() < END


def test_first_seen_is_the_first_purchase_day(shop: dict[str, pd.DataFrame]) -> None:
    tx, cu = shop["transactions"], shop["customers"]
    first = tx.groupby("customer_id")["ts"].min().dt.tz_localize(None).dt.normalize()
    got = cu.set_index("customer_id")["first_seen"]
    assert (first.reindex(got.index) == got).all()
    # acquisition is staggered over the two years, not all at the start
    months = got.dt.to_period("M").value_counts()
    assert len(months) == 24 and months.min() >= 30


def test_cost_to_serve_only_on_first_lines(shop: dict[str, pd.DataFrame]) -> None:
    tx = shop["transactions"]
    first = tx["line_no"] == 1
    assert tx.loc[first, "cost_to_serve"].notna().all()
    assert tx.loc[~first, "cost_to_serve"].isna().all()
    assert (tx.loc[first, "cost_to_serve"] >= 0).all()
    cts = tx[first].groupby("channel")["cost_to_serve"].mean()
    assert cts["wholesale"] > 5 * cts["click_collect"] > 5 * cts["in_store"]


def test_order_amounts_refunds_and_discounts(shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> None:
    tx = shop["transactions"]
    refund = tx["order_id"].str.startswith("R")
    sale = tx[~refund]
    assert sale["order_id"].str.fullmatch(r"O\d{7}").all()
    assert (sale["amount"] >= 0).all() and (sale["discount"] >= 0).all()
    assert (sale["quantity"] >= 1).all() and (sale["cost"] > 0).all()
    is_r = orders.index.str.startswith("R")
    assert (orders.loc[~is_r, "amount"] >= 0).all()
    # an order worth 0 is a redeemed loyalty-card drink and nothing else
    zero = orders.index[~is_r & (orders["amount"] == 0)]
    z = sale[sale["order_id"].isin(zero)]
    assert (z["category"] == "coffee").all() and (z["amount"] == 0).all() and (z["discount"] > 0).all()
    assert len(zero) < 0.03 * len(orders)
    # refunds: negative, a handful, each of an earlier order of the same customer
    r = tx[refund]
    assert 20 <= len(r) <= 500
    assert (r["amount"] < 0).all() and (r["quantity"] < 0).all()
    orig = orders.reindex("O" + r["order_id"].str[1:])
    assert orig["customer_id"].tolist() == r["customer_id"].tolist()
    assert (orig["ts"].to_numpy() < r["ts"].to_numpy()).all()
    assert (-r["amount"].to_numpy() <= orig["amount"].to_numpy() + 1e-9).all()
    # discounts are used: loyalty stamps, end-of-day markdowns, promo codes, contracts
    assert 0.02 < sale["discount"].sum() / (sale["amount"] + sale["discount"]).sum() < 0.15


def test_margin_by_category(shop: dict[str, pd.DataFrame]) -> None:
    tx = shop["transactions"]
    sums = tx[~tx["order_id"].str.startswith("R")].groupby("category")[["amount", "cost"]].sum()
    margin = 1 - sums["cost"] / sums["amount"]
    assert set(margin.index) == set(bakery.CATEGORY_MARGIN_RANGES)
    for cat, (lo, hi) in bakery.CATEGORY_MARGIN_RANGES.items():
        assert lo <= margin[cat] <= hi, (cat, margin[cat])
    assert margin["coffee"] > margin["cake"] > margin["gift"] > margin["wholesale_bread"]


def test_wholesale_orders_are_far_larger(shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> None:
    sale = orders[~orders.index.str.startswith("R")]
    b2b = sale["customer_id"].str.startswith("W")
    assert (sale.loc[b2b, "channel"] == "wholesale").all() and (sale.loc[~b2b, "channel"] != "wholesale").all()
    assert sale.loc[b2b, "amount"].median() > 10 * sale.loc[~b2b, "amount"].median()
    cu = shop["customers"].set_index("customer_id")
    w = cu.index.str.startswith("W")
    assert 10 <= w.sum() <= 60
    assert cu.loc[w, ["industry", "size", "company"]].notna().all().all()
    assert cu.loc[~w, ["industry", "size", "company"]].isna().all().all()
    assert set(cu.loc[w, "size"]) <= {"micro", "small", "medium"}


def test_seasonality(shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> None:
    tx = shop["transactions"]
    cake = tx[tx["category"] == "cake"]
    monthly = cake.groupby(cake["ts"].dt.strftime("%Y-%m"))["amount"].sum()
    assert len(monthly) == 24
    for dec in ("2023-12", "2024-12"):  # the Christmas peak
        assert monthly[dec] > 2 * monthly.median()
    assert monthly.idxmax() == "2024-12"
    # closed on Christmas Day and Boxing Day
    md = orders["ts"].dt.strftime("%m-%d")
    assert not md.isin(["12-25", "12-26"]).any()
    # cakes sell at weekends, wholesale deliveries on weekdays
    dow = cake["ts"].dt.day_of_week
    assert cake.loc[dow == 5, "amount"].sum() > 1.5 * cake.loc[dow == 1, "amount"].sum()
    w = orders[orders["channel"] == "wholesale"]["ts"].dt.day_of_week
    assert (w == 6).mean() < 0.05
    gifts = tx[tx["gift"]]
    assert (gifts["ts"].dt.month == 12).mean() > 0.4


def test_some_regulars_churn(orders: pd.DataFrame) -> None:
    cut = pd.Timestamp("2024-07-01", tz="UTC")
    sale = orders[~orders.index.str.startswith("R")]
    before = sale[sale["ts"] < cut].groupby("customer_id").size()
    after = sale[sale["ts"] >= cut].groupby("customer_id").size()
    regular_before = before[before >= 10].index
    churned = regular_before.difference(after.index)
    assert len(churned) >= 50
    assert len(churned) < 0.7 * len(regular_before)  # most regulars stay


def test_customers_table(shop: dict[str, pd.DataFrame]) -> None:
    cu = shop["customers"]
    assert 0.55 <= cu["consent_marketing"].mean() <= 0.75
    assert cu.loc[cu["consent_marketing"], "email"].notna().all()
    emails = cu["email"].dropna()
    assert emails.is_unique
    assert emails.str.fullmatch(r"[a-z0-9.\-]+@example\.(com|org|net)").all()
    paid = cu["acquisition_channel"].isin(["instagram", "google_ads", "local_flyers", "wholesale_sales"])
    assert cu.loc[paid, "acquisition_cost"].gt(0).all() and cu.loc[~paid, "acquisition_cost"].isna().all()
    assert cu["birthday_month"].dropna().between(1, 12).all()
    assert 0.2 < cu["birthday_month"].notna().mean() < 0.6
    assert set(cu["acquisition_channel"]) >= {"walk_in", "referral", "instagram", "google_ads"}


def test_marketing_spend_matches_acquisition_costs(shop: dict[str, pd.DataFrame]) -> None:
    ms, cu = shop["marketing_spend"], shop["customers"]
    assert (ms["spend"] >= 0).all()
    assert (ms["period_end"] >= ms["period_start"]).all()
    assert ms.groupby("channel").size().eq(24).all()
    acq = cu.dropna(subset=["acquisition_cost"])
    got = acq.groupby(["acquisition_channel", acq["first_seen"].dt.strftime("%Y-%m")])["acquisition_cost"].sum()
    spend = ms.set_index(["channel", ms["period_start"].dt.strftime("%Y-%m")])["spend"]
    assert len(got) > 40
    assert np.allclose(got.to_numpy(), spend.reindex(got.index).to_numpy(), atol=0.005)


def test_events(shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> None:
    ev, cu = shop["events"], shop["customers"]
    types = {"email_open", "email_click", "support_ticket", "cart_abandon", "review", "page_view", "survey"}
    assert set(ev["type"]) == types
    props = ev["properties"].map(json.loads)
    reviews = props[ev["type"] == "review"]
    assert len(reviews) >= 100
    assert reviews.map(lambda p: p["rating"] in {1, 2, 3, 4, 5} and len(p["text"]) > 10).all()
    low = reviews[reviews.map(lambda p: p["rating"] <= 2)].map(lambda p: p["text"])
    high = reviews[reviews.map(lambda p: p["rating"] == 5)].map(lambda p: p["text"])
    assert not high.str.contains("Disappointed|Awful|Terrible|Never again").any()
    assert not low.str.contains("Best|outstanding|perfect|Lovely").any()
    nps = props[ev["type"] == "survey"].map(lambda p: p["nps"])
    assert len(nps) >= 100 and nps.between(0, 10).all()
    # e-mail goes to consenting customers only
    mail = ev[ev["type"].isin(["email_open", "email_click"])]["customer_id"]
    assert mail.isin(cu.loc[cu["consent_marketing"], "customer_id"]).all()
    # engagement goes with loyalty: frequent buyers open more e-mails than one-off buyers
    n_orders = orders.groupby("customer_id").size()
    opens = mail[ev["type"] == "email_open"].value_counts()
    consenting = cu.loc[cu["consent_marketing"], "customer_id"]
    per = opens.reindex(consenting, fill_value=0)
    freq = n_orders.reindex(consenting)
    assert per[freq >= 20].mean() > 2 * per[freq == 1].mean()


# --------------------------------------------------------------------------- the generator
def test_generation_is_deterministic() -> None:
    a = bakery.generate(seed=3, n_customers=300)
    b = bakery.generate(seed=3, n_customers=300)
    c = bakery.generate(seed=4, n_customers=300)
    for name in _io.TABLES:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["transactions"].equals(c["transactions"])
    csv1, _ = bakery.csv_tables(seed=3, n_customers=300)
    csv2, _ = bakery.csv_tables(seed=3, n_customers=300)
    assert csv1 == csv2


def test_cli_writes_reproducible_files(tmp_path: Path) -> None:
    out1, out2 = tmp_path / "a", tmp_path / "b"
    assert bakery.main(["--out", str(out1), "--seed", "5", "--n-customers", "150"]) == 0
    cmd = [sys.executable, "-m", "clientfolio.datasets.bakery", "--out", str(out2), "--seed", "5",
           "--n-customers", "150"]
    subprocess.run(cmd, check=True, capture_output=True)
    names = sorted(p.name for p in out1.iterdir())
    assert names == sorted([*_io.FILENAMES.values(), "MANIFEST.json"])
    for name in names:
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    csv, _ = bakery.csv_tables(seed=5, n_customers=150)
    for table, fname in _io.FILENAMES.items():
        assert _io.csv_bytes_of(out1 / fname) == csv[table]


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="n_customers"):
        bakery.generate(n_customers=10)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        bakery.generate(start="01/01/2023")
    with pytest.raises(ValueError, match="seed"):
        bakery.generate(seed=-1)


def test_importing_datasets_has_no_side_effects() -> None:
    code = ("import sys, clientfolio.datasets; "
            "assert 'clientfolio.datasets.bakery' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module", params=[
    pytest.param((11, 1500), id="small"),
    pytest.param((bakery.DEFAULT_SEED, bakery.DEFAULT_N_CUSTOMERS), id="default", marks=pytest.mark.slow),
])
def sim(request: pytest.FixtureRequest) -> bakery.Simulation:
    seed, n = request.param
    return bakery.simulate(seed=seed, n_customers=n)


def test_hidden_behaviour_shows_in_the_data(sim: bakery.Simulation) -> None:
    tx, truth = sim.tables["transactions"], sim.truth.set_index("customer_id")
    sale = tx[~tx["order_id"].str.startswith("R")].drop_duplicates("order_id")
    kind = truth["customer_type"]
    share = kind.value_counts(normalize=True)
    assert 0.15 < share["regular"] < 0.25 and 0.3 < share["tourist"] < 0.5
    # observed purchase rate: orders per week since first seen
    n = sale.groupby("customer_id").size()
    first = sale.groupby("customer_id")["ts"].min()
    weeks = (END - first).dt.total_seconds() / (7 * 86400)
    rate = (n / weeks).groupby(kind).median()
    assert rate["regular"] > 8 * rate["occasional"]
    assert n.groupby(kind).median()["tourist"] == 1
    # heterogeneity: regulars' true rates vary (gamma), and so do occasional buyers' dropouts
    assert truth.loc[kind == "regular", "purchase_rate_per_week"].std() > 0.5
    assert truth.loc[kind == "occasional", "dropout"].std() > 0.1
    # dropout and reactivation: churned regulars stop buying; reactivated ones come back after a gap
    reg = truth[kind == "regular"]
    gone = reg[~reg["alive_at_end"]]
    assert 0.15 < len(gone) / len(reg) < 0.7
    last = sale.groupby("customer_id")["ts"].max()
    assert (last.reindex(gone.index) <= gone["churned_at"] + pd.Timedelta(seconds=1)).all()
    back = reg.index[reg["reactivated"]]
    assert len(back) > 0
    gaps = sale[sale["customer_id"].isin(back)].groupby("customer_id")["ts"].apply(lambda t: t.diff().max())
    assert (gaps >= pd.Timedelta(days=50)).all()


def test_engagement_follows_life(sim: bakery.Simulation) -> None:
    ev, cu = sim.tables["events"], sim.tables["customers"].set_index("customer_id")
    truth = sim.truth.set_index("customer_id")
    opens = ev[ev["type"] == "email_open"].groupby("customer_id").size()
    consenting = cu.index[cu["consent_marketing"]]
    t = truth.loc[consenting]
    per = opens.reindex(consenting, fill_value=0)
    alive_regular = per[(t["customer_type"] == "regular") & t["alive_at_end"]].mean()
    tourist = per[t["customer_type"] == "tourist"].mean()
    assert alive_regular > 5 * tourist
    nps = ev[ev["type"] == "survey"].assign(nps=lambda d: d["properties"].map(lambda p: json.loads(p)["nps"]))
    z = truth["satisfaction"].reindex(nps["customer_id"]).to_numpy()
    assert np.corrcoef(z, nps["nps"])[0, 1] > 0.4


@pytest.mark.slow
def test_bundled_files_equal_a_fresh_generation() -> None:
    t0 = time.perf_counter()
    csv, _ = bakery.csv_tables()  # the default seed and size
    assert time.perf_counter() - t0 < 30
    manifest = json.loads((datasets.demo_shop_dir() / "MANIFEST.json").read_text())
    for name, path in datasets.demo_shop_paths().items():
        assert hashlib.sha256(csv[name]).hexdigest() == manifest["files"][path.name]["sha256_of_csv"], name
        assert csv[name] == _io.csv_bytes_of(path), name
    loaded = datasets.load_demo_shop()
    for name in _io.TABLES:
        pd.testing.assert_frame_equal(_io.read_table(name, csv[name]), loaded[name])
