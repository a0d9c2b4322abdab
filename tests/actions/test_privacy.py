"""Privacy on real stores: access complete, erasure everywhere (catalog and files), erased stays erased."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.actions.access import write_access_export
from clientfolio.actions.catalog import store_tables, text_columns
from clientfolio.actions.erasure import ErasureError, erase_customer
from clientfolio.ingest import import_files
from clientfolio.store import open_store
from clientfolio.store.pseudonym import erasure_check, pseudonym_key, pseudonymise_id
from tests.actions.privacy_shop import OTHER, TARGET, build_shop

SKIP = ("schema_version", "erasures")  # bookkeeping, and the tombstones (pseudonyms by design)


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def shop(request, tmp_path_factory):
    """One built shop per engine; the tests below run in order on it (access, then erasure, then re-import)."""
    folder = tmp_path_factory.mktemp(f"shop-{request.param}")
    if request.param == "duckdb":
        url = str(folder / "shop.duckdb")
        yield url, build_shop(url, folder)
        return
    from tests.conftest import _pg_url, drop_pg_schema, pg_schema

    base = _pg_url()
    if base is None:
        pytest.skip("no PostgreSQL server at CLIENTFOLIO_TEST_PG_URL (`bash .ci/run` starts one)")
    url, schema = pg_schema(base)
    try:
        yield url, build_shop(url, folder)
    finally:
        drop_pg_schema(base, schema)


def _mentions(st, needles: list[str]) -> dict[str, int]:
    """Rows per table (every table of the catalog) with a text cell containing any needle."""
    found = {}
    for t, cols in store_tables(st).items():
        txt = text_columns(cols)
        if t in SKIP or not txt:
            continue
        cond = " OR ".join(f"strpos(lower({c}), ?) > 0" for c in txt for _ in needles)
        n = int(st.query(f"SELECT count(*) AS n FROM {t} WHERE {cond}",
                         [n.lower() for _ in txt for n in needles])["n"].iloc[0])
        if n:
            found[t] = n
    return found


def test_access_export_holds_every_row_of_every_table_that_names_the_customer(shop, tmp_path):
    url, s = shop
    with open_store(url) as st:
        tables = store_tables(st)
        a = write_access_export(st, TARGET, tmp_path / "access")
        data = json.loads(a.json_path.read_text())
        for t, cols in tables.items():
            if t in SKIP:
                continue
            conds, params = [], []
            for c in ("customer_id", "email"):
                if c in cols:
                    conds.append(f"{c} = ?")
                    params.append(TARGET if c == "customer_id" else s["email"])
            if conds:
                n = int(st.query(f"SELECT count(*) AS n FROM {t} WHERE {' OR '.join(conds)}", params)["n"].iloc[0])
                assert len(data["tables"].get(t, [])) >= n, t
        # every table holding the customer was found, with the same row counts as the catalog says
        direct = _mentions(st, [TARGET, s["email"]])
    for t, n in direct.items():
        if t == "outputs":
            continue  # paths of files, not rows about the customer
        assert len(data["tables"].get(t, [])) == n, t
    assert {"customers", "transactions", "events", "segment_changes", "outbox", "consents", "contact_log",
            "experiment_assignments", "owner_tags", "customer_state", "approvals"} <= set(data["tables"])
    assert all(r["customer_id"] == TARGET for r in data["tables"]["transactions"])
    decided = {(c["purpose"], c["channel"]): c for c in data["consent_decisions"]}
    assert decided[("marketing", "sms")]["allowed"] and "granted" in decided[("marketing", "sms")]["basis"]
    assert {Path(f["path"]).name for f in data["files"]} >= {"customers.csv", "customers.parquet", "at-risk.html"}
    page = a.html_path.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Why you moved between segments" in page and OTHER not in page  # nobody else's data


def test_erase_leaves_no_row_and_no_file_naming_the_customer(shop):
    url, s = shop
    needles = [TARGET, s["email"]]
    with open_store(url) as st:
        before_other = int(st.query("SELECT count(*) AS n FROM transactions WHERE customer_id = ?", [OTHER])["n"].iloc[0])
        before_all = int(st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0])
        assert _mentions(st, needles)  # the customer is everywhere before
        pseud = pseudonymise_id(pseudonym_key(st), TARGET)
        r = erase_customer(st, TARGET)
        assert _mentions(st, needles) == {}
        # other customers keep their rows; exactly the customer's went
        assert int(st.query("SELECT count(*) AS n FROM transactions WHERE customer_id = ?", [OTHER])["n"].iloc[0]) \
            == before_other
        assert before_all - int(st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0]) \
            == r.rows["transactions"]
        assert r.mentions == {"approvals": 1}
        payload = json.loads(st.query("SELECT payload FROM approvals")["payload"].iloc[0])
        assert payload["customers"] == [OTHER] and payload["to"] == "klaviyo"
        # the tombstone: a pseudonym, counts and paths, no personal data
        tomb = st.query("SELECT subject, detail FROM erasures")
        assert tomb["subject"].tolist() == [pseud]
        assert not any(n.lower() in tomb["detail"].iloc[0].lower() for n in needles)
        assert json.loads(tomb["detail"].iloc[0])["tables"]["transactions"] == r.rows["transactions"]
        files = [Path(p) for p in st.query("SELECT path FROM outputs")["path"]]
        rejects = [Path(p) for p in st.query("SELECT rejects_path FROM imports WHERE rejects_path IS NOT NULL")
                   ["rejects_path"]]
        assert erasure_check(st).empty
        with pytest.raises(ErasureError, match="already erased"):
            erase_customer(st, TARGET)
    assert not s["page"].exists()  # a page naming the customer is deleted, and no longer recorded
    assert s["page"] not in files and s["csv"] in files
    for f in files + rejects:
        text = f.read_text(errors="ignore") if f.suffix != ".parquet" else pd.read_parquet(f).to_csv()
        assert not any(n.lower() in text.lower() for n in needles + [pseud]), f
    assert OTHER in s["csv"].read_text() and OTHER in pd.read_parquet(s["parquet"])["customer_id"].tolist()
    assert {x.action for x in r.files} >= {"rewritten", "deleted"}


def test_an_import_does_not_bring_an_erased_customer_back(shop):
    url, s = shop
    with open_store(url) as st:
        res = import_files([s["files"]["customers"], s["early"], s["files"]["events"]], st,
                           rejects_dir=s["folder"] / "rejects2")
        assert res.balanced and res.rows_erased > 0
        assert {f.rows_erased > 0 for f in res.files} == {True}
        assert int(st.query("SELECT count(*) AS n FROM customers WHERE customer_id = ?", [TARGET])["n"].iloc[0]) == 0
        assert _mentions(st, [TARGET, s["email"]]) == {}
        if res.rejects_path is not None:
            assert TARGET not in res.rejects_path.read_text()
        # written around the import (a database tool, the Python API): the audit says so
        with st.transaction() as tx:
            tx.insert("customers", pd.DataFrame({"customer_id": [TARGET], "row_hash": ["h"], "import_id": [99]}))
        back = erasure_check(st)
        assert back.to_dict("records") == [{"table": "customers", "customers": 1}]
