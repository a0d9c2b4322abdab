"""The API over HTTP against a real `clientfolio serve` on a DuckDB shop: data in, customers, reasons, actions."""

from __future__ import annotations

import io
from urllib.parse import quote

import pytest

from tests.service.conftest import Server


def test_import_accounts_for_every_row_and_the_first_fit_writes_a_report(fitted_shop: dict,
                                                                          duck_server: Server) -> None:
    r = fitted_shop["responses"]
    orders = r["orders"].json()
    f = orders["files"][0]
    assert orders["balanced"] and f["table"] == "transactions"
    assert f["rows_in"] == f["rows_stored"] + f["rows_rejected"] + f["rows_deduplicated"] == 11764
    assert r["refit"].json()["first_fit"] is True and r["refit"].json()["customers"] == 200
    with duck_server.client(duck_server.keys["read"]) as c:
        page = c.get("/customers", params={"limit": 150}).json()
        assert len(page["items"]) == 150 and page["next_after"] == page["items"][-1]["customer_id"]
        rest = c.get("/customers", params={"limit": 150, "after": page["next_after"]}).json()
        ids = [i["customer_id"] for i in page["items"] + rest["items"]]
        assert len(ids) == len(set(ids)) == 200 and rest["next_after"] is None
        one = page["items"][0]
        assert one["segments"]["lifecycle"] and "RFM" in one["scores"] and "stat_n_days" not in one["scores"]
        report = c.get("/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "<html" in report.text[:200].lower()


def test_import_returns_rejected_rows_with_reasons(duck_server: Server) -> None:
    bad = ("customer_id,order_id,ts,amount\nZ1,Z-O1,2024-06-01T10:00:00Z,12.50\n"
           "Z2,Z-O2,not a date,3.00\nZ3,Z-O3,2024-06-02T10:00:00Z,twelve\n")
    with duck_server.client(duck_server.keys["write"]) as c:
        r = c.post("/imports", files={"file": ("late.csv", io.BytesIO(bad.encode()), "text/csv")})
    assert r.status_code == 200, r.text
    body = r.json()
    f = body["files"][0]
    assert (f["rows_in"], f["rows_stored"], f["rows_rejected"]) == (3, 1, 2) and body["balanced"]
    assert len(body["rejects"]) == 2 and all(x["reason"] for x in body["rejects"])
    assert not any("/" in str(x.get("file", "")) for x in body["rejects"])  # no server paths
    assert body["changes"] is not None  # applied to the fitted portfolio at once


def test_an_unreadable_upload_is_a_plain_400_naming_the_file(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["write"]) as c:
        r = c.post("/imports", files={"file": ("prices.csv", io.BytesIO(b"sku,price\nA,1\n"), "text/csv")})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert detail.startswith("prices.csv") and "/tmp" not in detail and "cf-import" not in detail


def test_posted_order_moves_the_customer_with_a_reason(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["write"]) as c:
        before = c.get("/customers/C00001").json()
        r = c.post("/orders", json={"order_id": "T-big-1", "customer_id": "C00001", "ts": "2024-07-02T10:00:00Z",
                                    "lines": [{"amount": 180.0, "category": "cakes"}, {"amount": 70.0}]})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["applied"] == 1 and out["customers_touched"] == 1 and out["changes"]
        moves = {ch["segment_kind"]: ch for ch in out["changes"]}
        assert all(ch["customer_id"] == "C00001" and ch["reason"] for ch in out["changes"])
        assert moves["lifecycle"]["from_segment"] == before["segments"]["lifecycle"]
        assert moves["lifecycle"]["to_segment"] == "reactivated"
        after = c.get("/customers/C00001").json()
        assert after["segments"]["lifecycle"] == "reactivated"
        assert after["scores"]["revenue"] == pytest.approx(before["scores"]["revenue"] + 250.0)
        why = after["why"]["lifecycle"][0]
        assert why["segment"] == "reactivated" and why["entered_because"] == moves["lifecycle"]["reason"]
        history = c.get("/customers/C00001/changes").json()["items"]
        assert {h["change_id"] for h in history} >= {ch["change_id"] for ch in out["changes"]}
        assert all(h["event_key"] == "order:live:T-big-1" for h in history if h["change_id"] in
                   {ch["change_id"] for ch in out["changes"]})


def test_same_batch_twice_records_nothing_new(duck_server: Server) -> None:
    batch = {
        "orders": [{"order_id": "T-b1", "customer_id": "C00004", "ts": "2024-07-03T09:00:00Z", "amount": 40.0},
                   {"order_id": "T-b2", "customer_id": "C00007", "ts": "2024-07-03T09:30:00Z", "amount": 95.5}],
        "refunds": [{"refund_id": "T-r1", "customer_id": "C00004", "ts": "2024-07-04T09:00:00Z", "amount": 10.0}],
        "events": [{"event_id": "T-e1", "customer_id": "C00007", "ts": "2024-07-04T10:00:00Z",
                    "type": "support_ticket", "properties": {"topic": "late delivery"}}],
    }
    with duck_server.client(duck_server.keys["write"]) as c:
        first = c.post("/batch", json=batch)
        assert first.status_code == 200, first.text
        assert first.json()["applied"] == 4 and first.json()["skipped"] == 0
        last_id = max([0] + [ch["change_id"] for ch in c.get("/changes", params={"limit": 1000}).json()["items"]])
        revenue = c.get("/customers/C00004").json()["scores"]["revenue"]
        again = c.post("/batch", json=batch).json()
        assert again["applied"] == 0 and again["skipped"] == 4 and again["changes"] == []
        assert c.get("/changes", params={"after": last_id}).json()["items"] == []
        assert c.get("/customers/C00004").json()["scores"]["revenue"] == revenue
        # cancelling an order takes its amount back out (the customer keeps other orders)
        cancel = c.post("/cancellations", json={"order_id": "T-b2", "source": "live"})
        assert cancel.status_code == 200 and cancel.json()["applied"] == 1
        assert c.post("/cancellations", json={"order_id": "T-b2", "source": "live"}).json()["skipped"] == 1


def test_cancelling_a_new_customers_only_order_leaves_them_without_segments(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["write"]) as c:
        r = c.post("/orders", json={"order_id": "T-only-1", "customer_id": "NEW-ONLY", "ts": "2024-07-05T10:00:00Z",
                                    "amount": 30.0})
        assert r.status_code == 200, r.text
        assert c.get("/customers/NEW-ONLY").json()["segments"]["lifecycle"] == "new"
        gone = c.post("/cancellations", json={"order_id": "T-only-1", "source": "live"})
        assert gone.status_code == 200, gone.text
        left = [ch for ch in gone.json()["changes"] if ch["segment_kind"] == "lifecycle"]
        assert left and left[0]["from_segment"] == "new" and left[0]["to_segment"] is None
        assert "no purchases left after the cancellation" in left[0]["reason"]
        assert c.get("/customers/NEW-ONLY").json()["segments"].get("lifecycle") is None


def test_batch_cancellations_checked_together_unknown_or_other_source_refused_whole(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["write"]) as c:
        orders = [{"order_id": f"T-cx{i}", "customer_id": "C00010", "ts": f"2024-07-06T1{i}:00:00Z", "amount": 20.0 + i}
                  for i in range(3)]
        assert c.post("/batch", json={"orders": orders}).status_code == 200
        revenue = c.get("/customers/C00010").json()["scores"]["revenue"]
        for bad in ({"order_id": "T-cx-none", "source": "live"}, {"order_id": "T-cx1", "source": "pos"}):
            r = c.post("/batch", json={"cancellations": [{"order_id": "T-cx0", "source": "live"}, bad]})
            assert r.status_code == 404 and repr(bad["order_id"]) in r.json()["detail"], r.text
            assert repr(bad["source"]) in r.json()["detail"]
        assert c.get("/customers/C00010").json()["scores"]["revenue"] == revenue  # nothing of a refused batch
        ok = c.post("/batch", json={"cancellations": [{"order_id": "T-cx0", "source": "live"},
                                                      {"order_id": "T-cx2", "source": "live"}]})
        assert ok.status_code == 200 and ok.json()["applied"] == 2, ok.text
        assert c.get("/customers/C00010").json()["scores"]["revenue"] == pytest.approx(revenue - 20.0 - 22.0)


def test_change_log_pages_and_filters(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["read"]) as c:
        everything = c.get("/changes", params={"limit": 1000}).json()["items"]
        assert everything, "earlier tests recorded changes"
        first = c.get("/changes", params={"limit": 2}).json()
        second = c.get("/changes", params={"limit": 2, "after": first["next_after"]}).json()
        assert [x["change_id"] for x in first["items"] + second["items"]] == [x["change_id"] for x in everything[:4]]
        life = c.get("/changes", params={"segment_kind": "lifecycle", "segment": "reactivated"}).json()["items"]
        assert life and all(x["segment_kind"] == "lifecycle" and "reactivated" in (x["from_segment"], x["to_segment"])
                            for x in life)
        assert c.get("/changes", params={"since": "2030-01-01"}).json()["items"] == []


def test_segments_playbooks_exports_and_experiments(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["write"]) as c:
        segs = c.get("/segments").json()["segments"]
        life = [s for s in segs if s["segment_kind"] == "lifecycle"]
        n = c.get("/status").json()["customers"]  # 200, and the customers earlier tests added
        assert sum(s["customers"] for s in life) >= n >= 200 and abs(sum(s["share"] for s in life) - 1) < 1e-9
        name = max(life, key=lambda s: s["customers"])["segment"]
        one = c.get(f"/segments/lifecycle/{name}").json()
        assert one["customers"] == max(s["customers"] for s in life) and one["trend"]
        assert c.get("/segments/lifecycle/no such segment").status_code == 404
        for s in segs:  # every segment opens, also those nobody entered or left lately (an empty window)
            r = c.get(f"/segments/{quote(s['segment_kind'], safe='')}/{quote(s['segment'], safe='')}", params={"days": 1})
            assert r.status_code == 200 and r.json()["recent"]["entered"] >= 0, (s, r.text)
        assert c.get("/playbooks").json()["playbooks"]
        ex = c.post("/exports", json={"segment": name, "segment_kind": "lifecycle", "target": "mailchimp"})
        assert ex.status_code == 201, ex.text
        meta = ex.json()
        assert meta["rows"] + sum(meta["left_out"].values()) == meta["members"] == one["customers"]
        assert meta["rows"] > 0 and meta["left_out"]  # consenting customers in, the others counted out
        got = c.get(duck_server.url + meta["download"])
        assert got.status_code == 200 and got.text.count("\n") == meta["rows"] + 1
        for line in got.text.splitlines()[1:]:  # only consenting customers go into a marketing export
            assert "@" in line
        assert meta["export_id"] in [e["export_id"] for e in c.get("/exports").json()["exports"]]
        (exp,) = c.get("/experiments").json()["experiments"]
        assert exp["name"] == "april-winback" and exp["treatment"] > 0 and exp["holdout"] > 0
        readout = c.get("/experiments/april-winback").json()
        assert readout["complete"] is True and readout["text"].startswith("april-winback")
        by_metric = {m["metric"]: m for m in readout["results"]}
        assert by_metric["conversion"]["treatment_n"] == exp["treatment"]
        assert by_metric["conversion"]["ci_low"] <= by_metric["conversion"]["difference"] <= \
            by_metric["conversion"]["ci_high"]
        assert c.get("/experiments/nothing").status_code == 404


def test_errors_are_json_problems_without_traces(duck_server: Server) -> None:
    with duck_server.client(duck_server.keys["admin"]) as c:
        missing = c.get("/customers/NOPE")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404
        bad = c.post("/orders", json={"order_id": "x", "customer_id": "y", "ts": "yesterday", "amount": 1})
        assert bad.status_code == 422 and "ts" in bad.json()["detail"]
        both = c.post("/orders", json={"order_id": "x", "customer_id": "y", "ts": "2024-07-01T00:00:00Z"})
        assert both.status_code == 422 and "amount or lines" in both.json()["detail"]
        for r in (missing, bad, both):
            assert "Traceback" not in r.text and "File \"" not in r.text
        swept = c.post("/sweep", json={"as_of": "2024-07-20"})
        assert swept.status_code == 200 and swept.json()["as_of"].startswith("2024-07-20")
        assert c.get("/status").json()["fitted"] is True
