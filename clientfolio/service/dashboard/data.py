"""What each dashboard page shows, read from the workspace's store (no HTML here).

Where the API already answers the same question, its route function is called with the page's
context, so the dashboard and the API cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

import pandas as pd

from clientfolio.live.kinds import kind_label, segment_label
from clientfolio.service.deps import Ctx, records
from clientfolio.service.errors import NotFound
from clientfolio.service.routes.customers import SEG, state_columns
from clientfolio.service.routes.segments import _sizes
from clientfolio.store import Store

LIFECYCLE_ORDER = ["new", "active", "reactivated", "at risk", "lapsed", "churned"]


def currency(ctx: Ctx, st: Store) -> str:
    """The shop's currency prefix ('' before the first fit)."""
    if st.load_state() is None:
        return ""
    return str(getattr(ctx.live(st).state, "currency", "") or "")


def interval_level(ctx: Ctx, st: Store) -> float:
    """How much of a customer's possible value their CLV range covers (the fit's interval setting)."""
    settings = getattr(ctx.live(st).state, "settings", None)
    return float(getattr(settings, "interval", 0.8) or 0.8)


def overview(ctx: Ctx) -> dict[str, Any]:
    """The headline numbers, a plain-language summary and value by segment."""
    with ctx.session() as st:
        cols = state_columns(st)
        if not cols or st.load_state() is None:
            n = int(st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0])
            return {"fitted": False, "transactions": n}
        money = currency(ctx, st)
        c = st.query("SELECT * FROM customer_state")
        health = ctx.live(st).health()
    buyers = c[c["orders"] > 0] if "orders" in c else c
    revenue = float(buyers["revenue"].sum()) if "revenue" in c else 0.0
    top = buyers["revenue"].sort_values(ascending=False) if "revenue" in c else pd.Series(dtype=float)
    k = max(1, int(round(len(top) * 0.2)))
    top20 = float(top.head(k).sum() / revenue) if revenue > 0 else None
    stages = c["seg_lifecycle"].value_counts() if "seg_lifecycle" in c else pd.Series(dtype=int)
    active = int(sum(stages.get(s, 0) for s in ("new", "active", "reactivated")))
    at_risk = int(stages.get("at risk", 0))
    gone = int(stages.get("lapsed", 0) + stages.get("churned", 0))
    clv = c["clv"] if "clv" in c else pd.Series(dtype=float)
    as_of = pd.Timestamp(c["as_of"].max()) if "as_of" in c and c["as_of"].notna().any() else None
    summary = [f"{len(buyers):,} customers have bought from you"
               + (f" up to {as_of:%d %B %Y}" if as_of is not None else "")
               + f"; together they spent {fmt_money(revenue, money)}."]
    if top20 is not None:
        summary.append(f"Your best 20% of customers bring {top20:.0%} of that revenue.")
    if len(stages):
        summary.append(f"{active:,} are active or new, {at_risk:,} are at risk of slipping away and "
                       f"{gone:,} have lapsed or churned.")
    if clv.notna().any():
        summary.append(f"Over the forecast horizon your customers are expected to be worth "
                       f"{fmt_money(float(clv.sum()), money)} together.")
    elif "forecast_note" in c and c["forecast_note"].notna().any():
        summary.append("No forecasts yet: " + str(c["forecast_note"].dropna().iloc[0]).removeprefix("not estimated: ")
                       + ".")
    kpis = [("Customers", f"{len(buyers):,}"), ("Revenue", fmt_money(revenue, money)),
            ("Active or new", f"{active:,}"), ("At risk", f"{at_risk:,}")]
    if clv.notna().any():
        kpis.append(("Expected value (CLV)", fmt_money(float(clv.sum()), money)))
    if "p_alive" in c and c["p_alive"].notna().any():
        kpis.append(("Average chance still a customer", f"{float(c['p_alive'].mean()):.0%}"))
    kind = "lifecycle" if "seg_lifecycle" in c else next((x.removeprefix(SEG) for x in cols
                                                          if x.startswith(SEG) and x != SEG + "rules"), None)
    chart = None
    if kind is not None and "revenue" in c:
        by = c.groupby(SEG + kind)["revenue"].agg(["sum", "count"]).reset_index()
        order = {s: i for i, s in enumerate(LIFECYCLE_ORDER)}
        by = by.sort_values(SEG + kind, key=lambda s: s.map(lambda v: order.get(v, 99))) if kind == "lifecycle" \
            else by.sort_values("sum", ascending=False)
        chart = {"kind": kind_label(kind), "money": money,
                 "x": [segment_label(kind, s) for s in by[SEG + kind]],
                 "y": [round(float(v), 2) for v in by["sum"]], "counts": [int(v) for v in by["count"]]}
    return {"fitted": True, "summary": summary, "kpis": kpis, "chart": chart, "money": money,
            "as_of": as_of, "health": health}


def segments(ctx: Ctx, days: int = 30) -> dict[str, Any]:
    """Every segment kind with its segments: size, share, KPIs, size at the earlier snapshot, recent moves."""
    since = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(days=days)
    with ctx.session() as st:
        sizes = _sizes(st)
        money = currency(ctx, st) if sizes else ""
        snaps = st.query("SELECT segment_kind, segment, as_of, count(*) AS n FROM segment_memberships "
                         "GROUP BY 1, 2, 3 ORDER BY 3")
        moves = st.query("SELECT segment_kind, to_segment, from_segment, count(*) AS n FROM segment_changes "
                         "WHERE recorded_at >= ? GROUP BY 1, 2, 3", [since.to_pydatetime()])
    days_seen = sorted(snaps["as_of"].unique()) if len(snaps) else []
    first = days_seen[0] if len(days_seen) > 1 else None
    kinds: dict[str, dict[str, Any]] = {}
    for s in sizes:
        kind, seg = s["segment_kind"], s["segment"]
        before = None
        if first is not None:
            hit = snaps[(snaps["segment_kind"] == kind) & (snaps["segment"] == seg) & (snaps["as_of"] == first)]
            before = int(hit["n"].sum())
        entered = int(moves[(moves["segment_kind"] == kind) & (moves["to_segment"] == seg)]["n"].sum())
        left = int(moves[(moves["segment_kind"] == kind) & (moves["from_segment"] == seg)]["n"].sum())
        k = kinds.setdefault(kind, {"kind": kind, "label": kind_label(kind), "segments": []})
        k["segments"].append({**s, "label": segment_label(kind, seg), "before": before, "entered": entered,
                              "left": left})
    return {"kinds": list(kinds.values()), "money": money, "days": days,
            "first_snapshot": pd.Timestamp(first) if first is not None else None}


def segment(ctx: Ctx, kind: str, name: str, after: str | None, limit: int = 50, days: int = 30) -> dict[str, Any]:
    """One segment: size and KPIs, its size at every snapshot, recent moves, a page of its members."""
    from clientfolio.service.routes.customers import kind_column, list_customers

    since = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(days=days)
    with ctx.session() as st:
        kind_column(st, kind)  # a 404 naming the kinds there are
        sizes = _sizes(st, kind, name)
        if not sizes:
            raise NotFound(f"no segment {name!r} of kind {kind!r} here")
        money = currency(ctx, st)
        trend = st.query("SELECT as_of, count(*) AS customers FROM segment_memberships WHERE segment_kind = ? "
                         "AND segment = ? GROUP BY as_of ORDER BY as_of", [kind, name])
        moves = st.query("SELECT coalesce(sum(CASE WHEN to_segment = ? THEN 1 ELSE 0 END), 0) AS entered, "
                         "coalesce(sum(CASE WHEN from_segment = ? THEN 1 ELSE 0 END), 0) AS left_ "
                         "FROM segment_changes WHERE segment_kind = ? AND recorded_at >= ?",
                         [name, name, kind, since.to_pydatetime()])
    page = list_customers(ctx, segment_kind=kind, segment=name, after=after, limit=limit)
    seg = {**sizes[0], "entered": int(moves["entered"].iloc[0]), "left": int(moves["left_"].iloc[0]), "days": days}
    chart = None
    if len(trend) > 1:
        chart = {"x": [f"{pd.Timestamp(t):%Y-%m-%d}" for t in trend["as_of"]], "y": [int(v) for v in trend["customers"]]}
    return {"seg": seg, "kind": kind, "name": name, "label": segment_label(kind, name), "kind_label": kind_label(kind),
            "members": page["items"], "next_after": page["next_after"], "after": after, "money": money,
            "chart": chart}


def customer(ctx: Ctx, customer_id: str) -> dict[str, Any]:
    """A customer's scores, order history, why they are in each segment and what changed when."""
    from clientfolio.service.routes.customers import get_customer

    c = get_customer(ctx, customer_id)
    with ctx.session() as st:
        money = currency(ctx, st)
        level = interval_level(ctx, st)
        orders = st.query("SELECT order_id, min(ts) AS ts, sum(amount) AS amount, bool_or(is_refund) AS refund, "
                          "string_agg(DISTINCT category, ', ') AS categories, min(channel) AS channel "
                          "FROM transactions WHERE customer_id = ? GROUP BY order_id ORDER BY 2 DESC LIMIT 200",
                          [customer_id])
        counts = st.query("SELECT count(DISTINCT CASE WHEN is_refund THEN NULL ELSE order_id END) AS orders, "
                          "count(DISTINCT CASE WHEN is_refund THEN order_id END) AS refunds FROM transactions "
                          "WHERE customer_id = ?", [customer_id]).iloc[0]
    why = []
    for kind, entries in c["why"].items():
        for e in entries:
            why.append({**e, "kind": kind, "kind_label": kind_label(kind), "label": segment_label(kind, e["segment"])})
    changes = [{**ch, "kind_label": kind_label(ch["segment_kind"])} for ch in reversed(c["changes"])]
    return {"c": c, "s": c["scores"], "money": money, "level": level, "orders": records(orders),
            "orders_total": int(counts["orders"]), "refunds_total": int(counts["refunds"]), "why": why, "changes": changes}


def playbooks(ctx: Ctx) -> dict[str, Any]:
    from clientfolio.service.routes.actions import list_playbooks

    rows = list_playbooks(ctx)["playbooks"]
    for r in rows:
        if "segment_kind" in r and "segment" in r:
            r["label"] = segment_label(str(r["segment_kind"]), str(r["segment"]))
    return {"playbooks": rows, "labels": {"kpi": "Measure of success", "size": "Customers"}}


def exports(ctx: Ctx) -> dict[str, Any]:
    from clientfolio.actions.export_layouts import LAYOUTS
    from clientfolio.service.routes.actions import list_exports

    with ctx.session() as st:
        sizes = _sizes(st)
    return {"exports": list_exports(ctx)["exports"],
            "targets": [(name, layout.title) for name, layout in LAYOUTS.items()],
            "choices": [{"value": f"{s['segment_kind']}|{s['segment']}",
                         "label": f"{kind_label(s['segment_kind'])}: {segment_label(s['segment_kind'], s['segment'])}"
                                  f" ({s['customers']:,})"} for s in sizes]}


def experiments(ctx: Ctx) -> dict[str, Any]:
    from clientfolio.service.routes.actions import list_experiments

    return {"experiments": list_experiments(ctx)["experiments"]}


def experiment(ctx: Ctx, name: str) -> dict[str, Any]:
    from clientfolio.service.routes.actions import get_experiment

    return get_experiment(ctx, name)


def has_table(st: Store, name: str) -> bool:
    """Does the workspace's store have table `name` (in its own schema)?"""
    df = st.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ? "
                  "AND table_schema = current_schema()", [name])
    return int(df["n"].iloc[0]) > 0


def webhooks(ctx: Ctx, limit: int = 200) -> dict[str, Any]:
    """The shop's webhook endpoints (what each hears about, enabled or why not) and the latest deliveries."""
    from clientfolio.service.webhooks import deliveries, list_endpoints

    with ctx.session() as st:
        endpoints = list_endpoints(st)
        log = deliveries(st, limit=limit) if endpoints else None
    if not endpoints:
        return {"set_up": False}
    eps = [{"endpoint_id": e.endpoint_id, "url": e.url, "hears": e.describe(), "enabled": e.enabled,
            "disabled_reason": e.disabled_reason, "description": e.description} for e in endpoints]
    counts = log["status"].value_counts().to_dict() if log is not None and len(log) else {}
    cols = ["created_at", "endpoint_id", "message_id", "customer_id", "event_type", "status", "attempts",
            "last_status", "last_error", "next_attempt_at", "delivered_at"]
    rows = records(log[[c for c in cols if c in log.columns]]) if log is not None and len(log) else []
    return {"set_up": True, "endpoints": eps, "counts": counts, "rows": rows}


def checkup(ctx: Ctx) -> dict[str, Any]:
    """Every import with its row accounting and reasons for rejects, and the data audit's findings."""
    from clientfolio.store.audit import audit

    with ctx.session() as st:
        imports = st.query("SELECT * FROM imports ORDER BY import_id DESC, file_no")
        found = audit(st)
    rows = []
    for r in records(imports):
        notes = json.loads(r["notes"]) if r.get("notes") else {}
        accounted = r["rows_stored"] + r["rows_rejected"] + r["rows_deduplicated"]
        rows.append({**r, "file": PurePath(str(r["file"])).name, "balanced": accounted == r["rows_in"],
                     "rejected_by_reason": notes.get("rejected") or {}, "notes": notes.get("notes") or []})
    totals = {k: sum(int(r[k]) for r in rows) for k in ("rows_in", "rows_stored", "rows_rejected",
                                                         "rows_deduplicated")}
    return {"imports": rows, "totals": totals, "findings": found.findings, "metrics": found.metrics}


def fmt_money(v: float | None, prefix: str = "") -> str:
    """A sum of money with thousands separators, no cents from 100 up (``€12,345``, ``€9.50``)."""
    if v is None or v != v:
        return "–"
    sign = "-" if v < 0 else ""
    v = abs(float(v))
    return f"{sign}{prefix}{v:,.0f}" if v >= 100 else f"{sign}{prefix}{v:,.2f}"
