"""Each layout, dialect and broken input in tests/data, checked against facts.json.

facts.json is written by tests/data/make_test_data.py from the same rows it writes into
the files, so it is an oracle independent of the importer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.core.errors import IngestError
from clientfolio.ingest import ImportOptions, import_files, load_layout_file
from clientfolio.store import open_store
from tests.conftest import DATA

FACTS = json.loads((DATA / "facts.json").read_text())
LAYOUTS = {
    "layouts/shopify_orders_export.csv": "shopify_orders",
    "layouts/shopify_customers_export.csv": "shopify_customers",
    "layouts/woocommerce_analytics_orders.csv": "woocommerce_analytics_orders",
    "layouts/woocommerce_webtoffee_orders.csv": "woocommerce_webtoffee",
    "layouts/woocommerce_skyverge_orders.csv": "woocommerce_skyverge",
    "layouts/square_transactions.csv": "square_transactions",
    "layouts/square_item_details.csv": "square_item_details",
    "layouts/stripe_payments.csv": "stripe_payments",
    "layouts/online_retail.xlsx": "uci_online_retail",
    "layouts/online_retail_II.xlsx": "uci_online_retail_ii",
    "layouts/online_retail_II.csv": "uci_online_retail_ii",
    "layouts/cdnow_master_with_header.txt": "cdnow",
}
DIALECTS = sorted(k for k in FACTS if k.startswith("dialects/"))


def _import(rel: str, tmp_path: Path, store_url: str, **kw):
    db = store_url
    result = import_files([DATA / rel], db, ImportOptions(**kw), rejects_dir=tmp_path / "rej")
    with open_store(db) as st:
        tx = st.table("transactions")
        cu = st.table("customers")
    return result, tx, cu


@pytest.mark.parametrize("rel", sorted(LAYOUTS))
def test_layout_detected_and_accounted(rel: str, tmp_path: Path, store_url: str) -> None:
    facts = FACTS[rel]
    result, tx, cu = _import(rel, tmp_path, store_url)
    (f,) = result.files
    assert f.layout == LAYOUTS[rel]
    assert f.balanced and f.rows_in == facts["data_rows"]
    uci = rel.startswith("layouts/online_retail")
    if "net_revenue" in facts and not uci:
        assert tx["amount"].sum() == pytest.approx(float(facts["net_revenue"]), abs=0.005)
    if f.table == "customers":
        assert len(cu) == facts["data_rows"]


@pytest.mark.parametrize("rel", ["layouts/online_retail.xlsx", "layouts/online_retail_II.csv"])
def test_uci_rules_against_an_independent_computation(rel: str, tmp_path: Path, store_url: str) -> None:
    raw = pd.read_excel(DATA / rel, sheet_name=None, dtype=str) if rel.endswith("xlsx") else {"": pd.read_csv(DATA / rel, dtype=str)}
    df = pd.concat(raw.values(), ignore_index=True)
    inv = "InvoiceNo" if "InvoiceNo" in df else "Invoice"
    price = "UnitPrice" if "UnitPrice" in df else "Price"
    q, p = df["Quantity"].astype(float), df[price].astype(float)
    fee = df["StockCode"].isin(["AMAZONFEE", "BANK CHARGES", "B", "CRUK", "S", "PADS", "ADJUST", "ADJUST2"])
    adjustment = (q < 0) & df[inv].str.match(r"^[0-9]")
    repeat = df.duplicated(keep="first")  # exact repeated lines are counted once
    kept = ~(fee | adjustment) & ~repeat
    result, tx, _ = _import(rel, tmp_path, store_url)
    f = result.files[0]
    assert f.rows_rejected == int((~kept & ~repeat).sum())
    assert f.rows_stored == int(kept.sum())
    assert f.rows_deduplicated == int(repeat.sum())
    assert tx["amount"].sum() == pytest.approx(float((q * p)[kept].sum()), abs=1e-6)
    cancellations = df[inv].str.startswith("C")
    assert f.refund_rows == int((cancellations & kept).sum()) > 0  # cancelled fees stay excluded


def test_shopify_customer_export_links_order_emails(tmp_path: Path, store_url: str) -> None:
    db = store_url
    import_files([DATA / "layouts/shopify_orders_export.csv"], db, rejects_dir=tmp_path / "r")
    res = import_files([DATA / "layouts/shopify_customers_export.csv"], db, rejects_dir=tmp_path / "r")
    assert res.linked_customers > 0
    with open_store(db) as st:
        left = st.query("SELECT count(*) AS n FROM transactions WHERE customer_id = email")["n"].iloc[0]
    assert left == 0  # every order e-mail belongs to a customer of the customers export


@pytest.mark.parametrize("rel", DIALECTS)
def test_every_dialect_gives_the_same_orders(rel: str, tmp_path: Path, store_url: str) -> None:
    expected = pd.DataFrame(FACTS["_dialects_expected_orders"]["rows"])
    result, tx, _ = _import(rel, tmp_path, store_url)
    assert result.files[0].rows_stored == len(expected) == 30
    got = tx.sort_values("order_id").reset_index(drop=True)
    want = expected.sort_values("order_id").reset_index(drop=True)
    assert got["order_id"].tolist() == want["order_id"].astype(str).tolist()
    assert got["customer_id"].tolist() == want["customer_id"].astype(str).tolist()
    assert got["amount"].round(2).tolist() == want["amount"].astype(float).round(2).tolist()
    want_ts = pd.to_datetime(want["ts_utc"], utc=True).dt.tz_localize(None)
    assert got["ts"].tolist() == want_ts.tolist()


def test_user_mapping_file(tmp_path: Path, store_url: str) -> None:
    mapping = load_layout_file(DATA / "layouts/generic_mapping.yaml")
    result, tx, _ = _import("layouts/generic_with_mapping.csv", tmp_path, store_url, mapping=mapping)
    assert result.files[0].rows_stored == FACTS["layouts/generic_with_mapping.csv"]["data_rows"]
    assert tx["amount"].sum() == pytest.approx(float(FACTS["layouts/generic_with_mapping.csv"]["net_revenue"]))


# One line per malformed input: (file, expected outcome, words the message or a reject must contain).
BROKEN = [
    ("empty.csv", "error", "empty"),
    ("header_only.csv", "error", "no data rows"),
    ("whitespace_only.csv", "error", "blank"),
    ("png_bytes.csv", "error", "binary"),
    ("random_bytes.csv", "error", "binary"),
    ("html_page.csv", "error", "web page"),
    ("no_customer_column.csv", "error", "--customer-col"),
    ("no_date_column.csv", "error", "--date-col"),
    ("no_amount_column.csv", "error", "--amount-col"),
    ("ragged_rows.csv", "rows", "fields than the header"),
    ("unterminated_quote.csv", "error", "never closed"),
    ("bad_amounts.csv", "rows", "cannot read as an amount"),
    ("huge_amounts.csv", "rows", "implausibly large"),
    ("bad_dates.csv", "rows", "cannot read as a date"),
    ("future_dates.csv", "rows", "in the future"),
    ("ambiguous_dates.csv", "error", "--date-order"),
    ("mixed_date_order.csv", "error", "both day-first"),
    ("duplicate_order_ids_conflicting.csv", "rows", "appears again with different values"),
    ("exact_duplicate_rows.csv", "dups", ""),
    ("truncated.csv.gz", "error", "truncated"),
    ("null_bytes.csv", "ok", ""),  # NUL characters are dropped from values (PostgreSQL cannot store them)
    ("empty_workbook.xlsx", "error", "no sheet"),
    ("preamble_lines.csv", "ok", ""),
    ("latin1_byte_in_utf8.csv", "ok", ""),
    ("csv_text_named.xlsx", "ok", ""),
]


@pytest.mark.parametrize(("name", "outcome", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_malformed_input(name: str, outcome: str, words: str, tmp_path: Path, store_url: str) -> None:
    path = DATA / "broken" / name
    if outcome == "error":
        with pytest.raises(IngestError) as exc:
            import_files([path], store_url, rejects_dir=tmp_path / "rej")
        assert name in str(exc.value) and words in str(exc.value)
        with open_store(store_url) as st:  # nothing half-imported
            assert len(st.table("transactions")) == 0
        return
    result = import_files([path], store_url, rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced and f.rows_in == FACTS[f"broken/{name}"]["data_rows"]
    if outcome == "rows":
        rejects = pd.read_csv(result.rejects_path, dtype=str, keep_default_na=False)
        assert len(rejects) == f.rows_rejected > 0
        assert rejects["reason"].str.contains(words, regex=False).any()
        assert (rejects["file"] == str(path)).all() and rejects["row"].str.isdigit().all()
        expected = FACTS[f"broken/{name}"].get("bad_rows") or FACTS[f"broken/{name}"].get("rejected_rows")
        if isinstance(expected, list) and expected and isinstance(expected[0], dict) and "row" in expected[0]:
            assert {int(r["row"]) for r in expected} <= set(rejects["row"].astype(int))
    elif outcome == "dups":
        assert f.rows_deduplicated > 0


def test_split_export_joined_on_keys(tmp_path: Path, store_url: str) -> None:
    """orders + order_items + customers of a shop database dump, imported together."""
    paths = [DATA / "split/orders.csv", DATA / "split/order_items.csv", DATA / "split/customers.csv"]
    result = import_files(paths, store_url, rejects_dir=tmp_path / "rej")
    assert result.balanced
    orders, items, customers = result.files
    assert (orders.layout, items.layout, customers.layout) == ("generic_transactions", "generic_order_items",
                                                               "generic_customers")
    facts = FACTS["split/orders.csv"]
    rejects = pd.read_csv(result.rejects_path, dtype=str)
    orphan_rows = rejects[(rejects["file"] == str(paths[1])) & rejects["reason"].str.contains("not found")]["row"]
    assert sorted(orphan_rows.astype(int)) == FACTS["split/order_items.csv"]["orphan_item_rows"]
    no_items = rejects[rejects["reason"].str.contains("no item rows")]["value"]
    assert sorted(no_items) == facts["orders_without_items"]
    with open_store(store_url) as st:
        tx = st.table("transactions")
        cu = st.table("customers")
    assert tx["amount"].sum() == pytest.approx(float(facts["net_revenue"]), abs=0.005)
    assert tx["customer_id"].notna().all() and tx["ts"].notna().all()
    assert len(cu) >= FACTS["split/customers.csv"]["distinct_customers"]
    # order lines alone cannot be imported: they have no customer or date
    with pytest.raises(IngestError, match="together with the orders file"):
        import_files(paths[1:2], store_url, rejects_dir=tmp_path / "rej")


def test_workbook_sheets_overlap_is_stored_once_and_rows_name_their_sheet(tmp_path: Path, store_url: str) -> None:
    facts = FACTS["layouts/online_retail_II.xlsx"]
    result, tx, _ = _import("layouts/online_retail_II.xlsx", tmp_path, store_url)
    (f,) = result.files
    assert f.rows_deduplicated == facts["rows_duplicated_across_sheets"] == 4
    rejects = pd.read_csv(result.rejects_path, dtype=str)
    for sheet, per in facts["per_sheet"].items():
        mine = rejects[rejects["file"].str.endswith(f"[sheet {sheet}]")]
        adjustments = mine[mine["reason"].str.contains("stock adjustment")]["row"].astype(int).tolist()
        assert adjustments == per["stock_adjustment_rows"], sheet
