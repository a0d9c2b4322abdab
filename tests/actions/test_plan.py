"""The action plan on the analysed demo shop: every segment, honest reach, a plain priority order, divestment."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clientfolio.actions.consent import allowed_ids, record_consent
from clientfolio.actions.playbooks import SERVICE_LEVELS, PlaybookError, divestment_ids, load_playbooks
from clientfolio.actions.plan import ActionPlan
from clientfolio.actions.pressure import log_contacts
from clientfolio.store import open_store


def _row(plan: ActionPlan, kind: str, segment: str) -> pd.Series:
    t = plan.segments
    return t[(t["segment_kind"] == kind) & (t["segment"] == segment)].iloc[0]


def test_analyze_keeps_a_plan_with_a_row_for_every_segment(demo_analysed) -> None:
    _, pf = demo_analysed
    plan = pf.actions
    assert isinstance(plan, ActionPlan)
    sizes = pf.segments.groupby(["segment_kind", "segment"])["customer_id"].nunique()
    got = plan.segments.set_index(["segment_kind", "segment"])["customers"]
    assert len(plan.segments) == len(sizes) and not got.index.duplicated().any()
    assert got.sort_index().to_dict() == sizes.sort_index().to_dict()
    # value at stake adds up to each kind's total CLV: every customer counted once per kind
    clv = float(pf.customers["clv"].sum())
    for kind, part in plan.segments.groupby("segment_kind"):
        members = pf.segments.loc[pf.segments["segment_kind"] == kind, "customer_id"].nunique()
        if members == len(pf.customers):
            assert part["value_at_stake"].sum() == pytest.approx(clv, rel=1e-9), kind
    assert "predicted CLV" in plan.value_basis


def test_reach_never_exceeds_consent_and_matches_the_consent_records(demo_analysed) -> None:
    db, pf = demo_analysed
    t = pf.actions.segments
    assert (t["reachable"] <= t["consented"]).all() and (t["consented"] <= t["customers"]).all()
    assert (t["reachable"] < t["customers"]).any()  # the demo has customers without marketing consent
    marketing = t[t["purpose"] == "marketing"]
    assert (marketing["reachable"] == marketing["consented"] - marketing["at_cap"]).all()
    service = t[t["purpose"] == "service"]
    assert len(service) and (service["reachable"] == service["customers"]).all()  # no consent needed to serve
    members = pf.segments[(pf.segments["segment_kind"] == "lifecycle") & (pf.segments["segment"] == "at risk")]
    with open_store(str(db)) as st:
        ok = allowed_ids(st, members["customer_id"].tolist(), "marketing", "email")
    assert _row(pf.actions, "lifecycle", "at risk")["consented"] == len(ok) > 0


def test_a_withdrawal_and_the_contact_cap_take_customers_out_of_reach(demo_analysed, demo_store_path: Path) -> None:
    _, pf = demo_analysed
    members = pf.segments[(pf.segments["segment_kind"] == "lifecycle") & (pf.segments["segment"] == "at risk")]
    before = _row(pf.actions, "lifecycle", "at risk")
    with open_store(str(demo_store_path)) as st:
        ok = sorted(allowed_ids(st, members["customer_id"].tolist(), "marketing", "email"))
        withdrawn, capped = ok[:3], ok[3:8]
        record_consent(st, pd.DataFrame({"customer_id": withdrawn, "purpose": "marketing", "channel": "email",
                                         "granted": False}))
        log_contacts(st, pd.DataFrame({"customer_id": capped * 2, "channel": "email", "purpose": "marketing",
                                       "origin": "test", "ref": ["a"] * 5 + ["b"] * 5}))
        plan = pf.plan_actions(store=st)
    after = _row(plan, "lifecycle", "at risk")
    assert after["consented"] == before["consented"] - 3
    assert after["at_cap"] == 5  # default cap: 2 contacts in 7 days
    assert after["reachable"] == before["reachable"] - 8


def test_priority_is_service_level_then_reachable_value(demo_analysed) -> None:
    _, pf = demo_analysed
    order = pf.actions.priority
    assert list(order["priority"]) == list(range(1, len(order) + 1))
    levels = order["service_level"].map(SERVICE_LEVELS.index)
    assert levels.is_monotonic_increasing
    for _, part in order.groupby("service_level"):
        assert part["reachable_value"].is_monotonic_decreasing
    assert order["segment"].iloc[0] == "Can't Lose Them"  # the only dedicated playbook of the demo
    flagged = pf.actions.no_action
    assert flagged["priority"].isna().all() and (flagged["flag"] != "").all()
    groups = flagged[flagged["segment_kind"] == "cluster"]
    assert len(groups) == pf.segments.query("segment_kind == 'cluster'")["segment"].nunique()
    assert groups["flag"].str.contains("no playbook of its own").all()
    assert "no action of its own by design" in _row(pf.actions, "support", "Low support")["flag"]


def test_divestment_candidates_get_the_phased_plan(demo_analysed) -> None:
    _, pf = demo_analysed
    plan = pf.actions
    ids = divestment_ids(pf)
    assert len(ids) > 0 and sorted(plan.divestment["customer_id"]) == ids
    assert plan.divestment_loss == pytest.approx(-float(pf.divestment.customers["profit"].sum()))
    assert plan.divestment_loss > 0
    steps = load_playbooks().for_segment("profitability", "Unprofitable").steps
    assert plan.divestment_plan.steps == steps and len(steps) >= 3
    assert any(f"{len(ids):,} divestment candidates" in line for line in plan.lines())


def test_an_owner_playbook_file_changes_the_plan(demo_analysed, tmp_path: Path) -> None:
    _, pf = demo_analysed
    f = tmp_path / "playbooks.yaml"
    f.write_text("playbooks:\n"
                 "  lifecycle:\n"
                 "    at risk:\n"
                 "      service_level: dedicated\n"
                 "      channel: sms\n"
                 "      offer: a call-back from the owner\n"
                 "  cluster:\n"
                 "    \"*\":\n"
                 "      service_level: standard\n"
                 "      offer: a note about what their group buys most\n"
                 "      channel: email\n"
                 "      angle: more of what you like\n"
                 "      cadence: at most one e-mail every 30 days\n"
                 "      kpi: orders per customer over 90 days\n"
                 "  profitability:\n"
                 "    Unprofitable:\n"
                 "      steps: [Talk to them first., Then change the terms with 60 days' notice.]\n", encoding="utf-8")
    plan = pf.plan_actions(f)
    risk = _row(plan, "lifecycle", "at risk")
    assert (risk["service_level"], risk["channel"], risk["offer"]) == ("dedicated", "sms", "a call-back from the owner")
    # nobody in the demo consented to SMS marketing: out of reach, flagged, not in the priority order
    assert risk["consented"] == 0 and risk["reachable"] == 0 and pd.isna(risk["priority"])
    assert "nobody can be contacted" in risk["flag"]
    assert not (plan.no_action["segment_kind"] == "cluster").any()  # the groups have a playbook now
    assert plan.divestment_plan.steps == ("Talk to them first.", "Then change the terms with 60 days' notice.")
    assert plan.playbook_files == [str(f)]
    assert pf.actions.playbook_files == []  # the analysis's own plan is unchanged


def test_analyze_playbooks_option_names_the_line_of_a_yaml_mistake(tmp_path: Path) -> None:
    from clientfolio.cli import app

    bad = tmp_path / "playbooks.yaml"
    bad.write_text("playbooks:\n  lifecycle:\n    at risk:\n      offer: a call\n     channel: sms\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["analyze", "--store", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "o"),
                                   "--playbooks", str(bad)])
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "line 5" in text and "not valid YAML" in text and "indentation" in text
    assert not (tmp_path / "none.duckdb").exists()  # refused before any store was touched
    with pytest.raises(PlaybookError, match="unknown lever"):
        import clientfolio

        (tmp_path / "lever.yaml").write_text("playbooks:\n  rfm:\n    Lost:\n      levers: [fear]\n")
        clientfolio.analyze(pd.DataFrame({"customer_id": ["a"], "ts": ["2024-01-01"], "amount": [1.0]}),
                            playbooks=tmp_path / "lever.yaml")


def test_portfolio_methods_answer_from_the_analysis(demo_analysed) -> None:
    from clientfolio.actions.acquisition import Profile
    from clientfolio.actions.budget import retention_vs_acquisition
    from clientfolio.actions.fairness import FairnessReport

    db, pf = demo_analysed
    table = pf.playbooks()
    assert {"segment_kind", "segment", "size", "service_level", "offer", "kpi"} <= set(table.columns)
    assert (table["segment_kind"] == "divestment").sum() == 1
    fair = pf.fairness()
    assert isinstance(fair, FairnessReport) and "priority" in fair.outcomes  # the plan's service levels were used
    health = pf.segment_health()
    acted = health.set_index(["segment_kind", "segment"])["has_action"]
    assert acted[("cluster", health.loc[health["segment_kind"] == "cluster", "segment"].iloc[0])] is False
    assert acted[("rfm", "Can't Lose Them")] is True
    prof = pf.ideal_customer_profile()
    assert isinstance(prof, Profile) and prof.established > 0 and (prof.table["customers"] > 0).all()
    advice = pf.retention_advice()
    with open_store(str(db)) as st:
        from_store = retention_vs_acquisition(st)
    assert advice.text == from_store.text  # the Portfolio and its store give the same advice
    pd.testing.assert_frame_equal(advice.segments, from_store.segments)


@pytest.mark.slow
def test_the_plan_reads_consent_from_a_postgresql_store(pg_store_url: str) -> None:
    import numpy as np

    import clientfolio

    rng = np.random.default_rng(7)
    n = 120
    orders = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in rng.integers(0, n, 600)],
                           "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 360, 600), unit="D"),
                           "amount": rng.gamma(2.0, 15.0, 600).round(2)})
    orders["order_id"] = [f"o{i}" for i in range(len(orders))]
    pf = clientfolio.analyze(orders, store=pg_store_url)
    life = pf.actions.segments[pf.actions.segments["segment_kind"] == "lifecycle"]
    assert life["customers"].sum() == orders["customer_id"].nunique() and life["consented"].sum() == 0
    granted = sorted(orders["customer_id"].unique())[:10]
    with open_store(pg_store_url) as st:
        record_consent(st, pd.DataFrame({"customer_id": granted, "purpose": "marketing", "channel": "email",
                                         "granted": True}))
        plan = pf.plan_actions(store=st)
    life = plan.segments[plan.segments["segment_kind"] == "lifecycle"]
    marketing = life[life["purpose"] == "marketing"]
    members = pf.segments[pf.segments["segment_kind"] == "lifecycle"]
    expected = members[members["customer_id"].isin(granted) & members["segment"].isin(marketing["segment"])]
    assert marketing["consented"].sum() == marketing["reachable"].sum() == len(expected) > 0
