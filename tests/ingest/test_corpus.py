"""Every real export in ../shared/corpus imports with balanced row accounting.

Expected values are computed here from the files themselves (with the csv
module / pandas), independently of the importer, so a parsing bug shows up as
a mismatch rather than being copied into the test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.core.errors import IngestError
from clientfolio.ingest import ImportOptions, import_files
from tests.conftest import CORPUS, corpus_file

NO_CUSTOMER_COLUMN = {
    "shopify_orders_export__column_subset_panalysis.csv",
    "stripe_unified_payments__testmode_column_subset_kkk915.csv",
}
SINGLE_FILES = sorted(
    p.name for p in CORPUS.glob("*") if p.suffix in (".csv", ".txt") and not p.name.startswith("olist")
) if CORPUS.exists() else []


def _records(path: Path) -> int:
    if path.suffix == ".txt":
        return sum(1 for line in open(path, encoding="utf-8") if line.strip())
    delim = ";" if "semicolon" in path.name or "csv2" in path.name else ","
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return sum(1 for _ in csv.reader(fh, delimiter=delim)) - 1


@pytest.mark.parametrize("name", SINGLE_FILES)
def test_corpus_file_imports_with_balanced_accounting(name: str, tmp_path: Path, store_url: str) -> None:
    path = corpus_file(name)
    opts = ImportOptions(allow_no_customer=name in NO_CUSTOMER_COLUMN)
    result = import_files([path], store_url, opts, rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced
    assert f.rows_in == _records(path)
    assert f.rows_stored > 0
    # Running the same import again stores nothing new.
    again = import_files([path], store_url, opts, rejects_dir=tmp_path / "rej").files[0]
    assert again.rows_new == 0 and again.rows_updated == 0
    assert again.rows_deduplicated == f.rows_stored + f.rows_deduplicated


@pytest.mark.parametrize("name", sorted(NO_CUSTOMER_COLUMN))
def test_file_without_customer_column_is_a_clear_error(name: str, tmp_path: Path, store_url: str) -> None:
    path = corpus_file(name)
    with pytest.raises(IngestError) as exc:
        import_files([path], store_url, rejects_dir=tmp_path / "rej")
    msg = str(exc.value)
    assert name in msg and "customer" in msg and "--allow-no-customer" in msg


def test_uci_online_retail_amounts_refunds_and_guests(tmp_path: Path, store_url: str) -> None:
    path = corpus_file("uci_online_retail__by_day_2010-12-01__spark_definitive_guide.csv")
    df = pd.read_csv(path, dtype=str)
    result = import_files([path], store_url, rejects_dir=tmp_path / "rej")
    (f,) = result.files
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        tx = st.table("transactions")
    q, p = df["Quantity"].astype(float), df["UnitPrice"].astype(float)
    adjustment = (q < 0) & ~df["InvoiceNo"].str.startswith("C")
    fee = df["StockCode"].isin(["AMAZONFEE", "BANK CHARGES", "B", "CRUK", "S", "PADS", "ADJUST", "ADJUST2"])
    repeat = df.duplicated(keep="first")  # exact repeated lines are counted once
    kept = ~(adjustment | fee) & ~repeat
    assert f.rows_deduplicated == int(repeat.sum()) > 0
    assert f.rows_rejected == int((~kept & ~repeat).sum())
    assert tx["amount"].sum() == pytest.approx(float((q * p)[kept].sum()), abs=1e-6)
    assert f.refund_rows == int(df["InvoiceNo"].str.startswith("C")[kept].sum()) == 26
    assert f.guest_rows == int(df["CustomerID"].isna()[kept].sum())
    assert tx["customer_id"].dropna().str.fullmatch(r"\d+").all()  # 17850.0 -> 17850
    assert (tx["ts"].dt.strftime("%Y-%m-%d") == "2010-12-01").all()
    shipping = tx[tx["product_id"] == "POST"]
    assert (shipping["category"] == "shipping").all() and len(shipping) > 0


def test_same_rows_in_three_dialects_are_stored_once(tmp_path: Path, store_url: str) -> None:
    """ISO dates, M/D/YYYY, and D/M/YYYY with decimal commas and a BOM: same rows, same values."""
    spark = corpus_file("uci_online_retail__by_day_2010-12-01__spark_definitive_guide.csv")
    kaggle = corpus_file("uci_online_retail__kaggle_format_head__Kristina-A.csv")
    latam = corpus_file("uci_online_retail__semicolon_decimal_comma_bom__brunonapoli.csv")
    db, rej = store_url, tmp_path / "rej"
    import_files([spark], db, rejects_dir=rej)
    k = import_files([kaggle], db, rejects_dir=rej).files[0]
    assert k.rows_new == 0 and k.rows_updated == 0 and k.rows_deduplicated == k.rows_in - k.rows_rejected
    latam_result = import_files([latam], db, rejects_dir=rej).files[0]
    assert latam_result.rows_new == 0 and latam_result.rows_updated == 0
    assert any("decimal comma" in n for n in latam_result.notes)
    assert any("day-first" in n for n in latam_result.notes)


def test_mixed_date_forms_in_one_column(tmp_path: Path, store_url: str) -> None:
    path = corpus_file("uci_online_retail__R_csv2_sample_rowindex_mixed_dates__rhozon.csv")
    raw = pd.read_csv(path, sep=";", dtype=str)
    out = import_files([path], store_url, rejects_dir=tmp_path / "rej").files[0]
    assert out.rows_rejected == 0
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        got = st.query("SELECT order_id, min(ts) AS ts FROM transactions GROUP BY 1")
    expected = pd.to_datetime(raw["InvoiceDate"], format="mixed", dayfirst=False)
    want = raw.assign(ts=expected).groupby("InvoiceNo")["ts"].min().to_dict()
    for oid, ts in zip(got["order_id"], got["ts"]):
        assert ts == want[oid], oid


def test_shopify_orders_net_of_refunds_on_line_rows(tmp_path: Path, store_url: str) -> None:
    path = corpus_file("shopify_orders_export__devstore_ramkumar03ace.csv")
    df = pd.read_csv(path, dtype=str)
    first = df.groupby("Name").first()
    paid = first[first["Cancelled at"].isna()]
    net = paid["Total"].astype(float) - paid["Refunded Amount"].fillna("0").astype(float)
    out = import_files([path], store_url, rejects_dir=tmp_path / "rej").files[0]
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        orders = st.query("SELECT order_id, sum(amount) AS a, count(*) AS lines, min(email) AS email "
                          "FROM transactions GROUP BY 1")
        customers = st.table("customers")
    got = dict(zip(orders["order_id"], orders["a"]))
    for name, value in net.items():
        assert got[name] == pytest.approx(value, abs=1e-4), name
    assert out.rows_in == len(df)
    assert orders["lines"].sum() == out.rows_stored
    assert (customers["email"].dropna() == customers["email"].dropna().str.lower()).all()
    assert customers["consent_marketing"].notna().any()


def test_stripe_failed_payments_are_not_revenue(tmp_path: Path, store_url: str) -> None:
    path = corpus_file("stripe_unified_payments__meedi8.csv")
    df = pd.read_csv(path, dtype=str)
    paid = df[df["Status"].str.lower().isin(["paid", "refunded"])]
    out = import_files([path], store_url, rejects_dir=tmp_path / "rej").files[0]
    assert out.rows_stored == len(paid)
    assert out.rows_rejected == len(df) - len(paid)
    assert all("not revenue" in r for r in out.rejected_by_reason)
    rejects = pd.read_csv(next((tmp_path / "rej").glob("*.csv")), dtype=str)
    assert set(rejects["kind"]) == {"excluded"}
    assert rejects["row"].astype(int).tolist() == sorted((df.index[~df.index.isin(paid.index)] + 2).tolist())


def test_olist_split_export_joined_on_keys(tmp_path: Path, store_url: str) -> None:
    names = ["olist_orders_dataset__joined_sample__albuquerques.csv",
             "olist_order_payments_dataset__joined_sample__albuquerques.csv",
             "olist_customers_dataset__joined_sample__albuquerques.csv"]
    paths = [corpus_file(n) for n in names]
    orders, pays, custs = (pd.read_csv(p, dtype=str) for p in paths)
    result = import_files(paths, store_url, rejects_dir=tmp_path / "rej")
    assert result.balanced
    good = orders[~orders["order_status"].isin(["canceled", "unavailable", "created"])]
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        tx = st.table("transactions")
        n_customers = len(st.table("customers"))
    assert len(tx) == len(good)
    expected = pays[pays["order_id"].isin(good["order_id"])]["payment_value"].astype(float).sum()
    assert tx["amount"].sum() == pytest.approx(expected, abs=1e-6)
    # customers are people (customer_unique_id), not Olist's per-order customer ids
    assert set(tx["customer_id"]) <= set(custs["customer_unique_id"])
    assert n_customers == custs["customer_unique_id"].nunique()


def test_olist_inconsistent_heads_reject_unmatched_rows(tmp_path: Path, store_url: str) -> None:
    names = ["olist_orders_dataset__original_quoting_head__ArielCastilla.csv",
             "olist_order_payments_dataset__original_quoting_head__ArielCastilla.csv",
             "olist_customers_dataset__original_quoting_head__ArielCastilla.csv"]
    result = import_files([corpus_file(n) for n in names], store_url, rejects_dir=tmp_path / "rej")
    assert result.balanced
    by_file = {Path(f.path).name: f for f in result.files}
    payments = by_file[names[1]]
    assert payments.rejected_by_reason[f"order id not found in {names[0]}"] > 4000
    rejects = pd.read_csv(result.rejects_path, dtype=str)
    assert len(rejects) == result.rows_rejected


def test_cdnow_sample_customers(tmp_path: Path, store_url: str) -> None:
    path = corpus_file("cdnow_sample__lifetimes.txt")
    out = import_files([path], store_url, rejects_dir=tmp_path / "rej").files[0]
    assert out.rows_stored == 6919
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        m = st.query("SELECT count(DISTINCT customer_id) AS c, min(ts) AS a, max(ts) AS b, sum(amount) AS s "
                     "FROM transactions").iloc[0]
    raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    assert m["c"] == 2357 == raw[0].nunique()
    assert str(m["a"])[:10] == "1997-01-01" and str(m["b"])[:10] == "1998-06-30"
    assert m["s"] == pytest.approx(raw[4].astype(float).sum())


def test_retail_month_name_dates(tmp_path: Path, store_url: str) -> None:
    path = corpus_file("retail_data_transactions__customer_sorted_head__statadvice.csv")
    raw = pd.read_csv(path, dtype=str)
    out = import_files([path], store_url, rejects_dir=tmp_path / "rej").files[0]
    assert out.rows_stored == len(raw)
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        got = st.query("SELECT customer_id, ts FROM transactions ORDER BY customer_id, ts")
    want = raw.assign(ts=pd.to_datetime(raw["trans_date"], format="%d-%b-%y")).sort_values(["customer_id", "ts"])
    assert got["ts"].tolist() == want["ts"].tolist()
