"""A small shop (part of the demo bakery) in a store, with one customer in every place the product writes.

The customer is analysed, moved by a live update (change log and outbox rows), exported to CSV and
Parquet, named in the HTML report, given consents, a contact, an experiment, tags and an approval,
and named in a consent rejects file; other customers share every table with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import clientfolio
from clientfolio.actions.consent import record_consent
from clientfolio.actions.consent_file import import_consent_file
from clientfolio.actions.outputs import record_output
from clientfolio.datasets import demo_shop_paths
from clientfolio.ingest import import_files
from clientfolio.live import LivePortfolio
from clientfolio.store import open_store

TARGET = "C00071"
OTHER = "C00037"
CUTOFF = pd.Timestamp("2024-09-30")
TRIGGERS = """
- segment_kind: lifecycle
  segment: active
  on: both
  action: crm_sync
  only_with_consent: false
- segment_kind: rfm
  segment: Champions
  on: both
  action: vip_task
  only_with_consent: false
"""


def shop_files(folder: Path, customers: int = 160) -> dict[str, Path]:
    """The demo bakery's first `customers` customers as CSV files in `folder`."""
    p = demo_shop_paths()
    keep = {f"C{i:05d}" for i in range(1, customers + 1)}
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("customers", "transactions", "events"):
        df = pd.read_csv(p[name], dtype=str, keep_default_na=False)
        df = df[df["customer_id"].isin(keep)]
        out[name] = folder / f"{name}.csv"
        df.to_csv(out[name], index=False)
    return out


def build_shop(url: str, folder: Path) -> dict:
    """Fill the store at `url`; returns what the tests need (files, email, report paths, ...)."""
    files = shop_files(folder / "in")
    tx_all = pd.read_csv(files["transactions"], dtype=str, keep_default_na=False)
    early = folder / "in" / "transactions_early.csv"
    tx_all[pd.to_datetime(tx_all["ts"]) <= CUTOFF.tz_localize("UTC") + pd.Timedelta(days=1)].to_csv(early, index=False)
    late = tx_all[(pd.to_datetime(tx_all["ts"]) > CUTOFF.tz_localize("UTC") + pd.Timedelta(days=1))]
    email = pd.read_csv(files["customers"], dtype=str).set_index("customer_id").loc[TARGET, "email"]
    bad = folder / "in" / "bad_orders.csv"  # a rejects file of an import (another customer's bad row)
    bad.write_text("customer_id,order_id,ts,amount\nC00050,X1,not a date,3.50\n")
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    trig = folder / "triggers.yaml"
    trig.write_text(TRIGGERS)
    with open_store(url) as st:
        if st.kind == "postgresql":
            st._rejects_dir = folder / "rejects"
        import_files([files["customers"], early, files["events"]], st, rejects_dir=folder / "rejects")
        import_files([bad], st, rejects_dir=folder / "rejects")
        pf = clientfolio.analyze(store=st, cutoff=CUTOFF)
        live = LivePortfolio(st, triggers=trig)
        orders = late[late["customer_id"].isin([TARGET, OTHER])].copy()
        orders["ts"] = pd.to_datetime(orders["ts"])
        orders["amount"] = orders["amount"].astype(float)
        live.update(orders.head(40))
        live.sweep(pd.Timestamp("2025-03-01"))
        # files the product wrote
        report = pf.report(out / "report.html")
        record_output(st, report, "report", len(pf.customers))
        csv = pf.to_file(out / "customers.csv")
        record_output(st, csv, "customers", len(pf.customers))
        pq = pf.to_file(out / "customers.parquet")
        record_output(st, pq, "customers", len(pf.customers))
        page = out / "at-risk.html"  # a page that names the customer (the report names only a few examples)
        page.write_text(f"<html><body><ul><li>{TARGET}: no order in 74 days</li><li>{OTHER}</li></ul></body></html>")
        record_output(st, page, "report", 2)
        # consents, a consent file with a bad row naming the customer
        record_consent(st, pd.DataFrame({"customer_id": [TARGET, OTHER], "purpose": ["marketing", "nudges"],
                                         "channel": ["sms", "email"], "granted": [True, False]}), source="test")
        cf = folder / "out" / "consents.csv"
        cf.write_text(f"customer_id,purpose,channel,granted\n{TARGET},marketing,email,perhaps\n"
                      f"{OTHER},marketing,email,yes\n")
        import_consent_file(st, cf)
        # tables whose modules others write: rows put in directly
        now = pd.Timestamp("2025-01-05")
        with st.transaction() as tx:
            tx.insert("experiments", pd.DataFrame({
                "experiment_id": ["winback-1"], "segment_kind": ["lifecycle"], "segment": ["at risk"],
                "created_at": [now], "started_at": [now], "seed": ["s"], "holdout_share": [0.2],
                "metric": ["conversion"], "window_days": [30]}))
            tx.insert("experiment_assignments", pd.DataFrame({
                "experiment_id": ["winback-1", "winback-1"], "customer_id": [TARGET, OTHER],
                "arm": ["treatment", "holdout"], "assigned_at": [now, now]}))
            tx.insert("contact_log", pd.DataFrame({
                "customer_id": [TARGET, OTHER], "channel": ["email", "email"], "purpose": ["marketing"] * 2,
                "origin": ["playbook"] * 2, "ref": ["winback-jan"] * 2, "contacted_at": [now, now]}))
            tx.insert("owner_tags", pd.DataFrame({
                "customer_id": [TARGET, OTHER], "tag": ["key_account", "key_account"],
                "value": ["<script>alert(1)</script>", "no"], "set_at": [now, now]}))
            tx.insert("approvals", pd.DataFrame({
                "approval_id": ["a1"], "kind": ["export"], "created_at": [now], "status": ["pending"],
                "summary": [f"2 customers ({TARGET} and {OTHER}) for klaviyo"], "customers": [2],
                "payload": [json.dumps({"customers": [TARGET, OTHER], "emails": [email], "to": "klaviyo"})]}))
    return {"files": files, "email": email, "report": report, "csv": csv, "parquet": pq, "consent_file": cf,
            "page": page, "early": early,
            "folder": folder, "late": late}
