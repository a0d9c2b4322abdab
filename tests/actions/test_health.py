"""Segment health on the demo shop: sizes, overlap, stability across a real refit, missing actions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clientfolio.actions.health import (
    actions_from_triggers, health_findings, segment_health, segment_overlap,
)


def _latest_snapshot(st) -> pd.DataFrame:
    return st.query("SELECT customer_id, segment_kind, segment FROM segment_memberships "
                    "WHERE as_of = (SELECT max(as_of) FROM segment_memberships)")


def test_sizes_match_memberships_and_self_overlap_is_one(demo_analysed) -> None:
    from clientfolio.store import open_store

    db, pf = demo_analysed
    with open_store(str(db)) as st:
        table = segment_health(st)
        snap = _latest_snapshot(st)
    want = snap.groupby(["segment_kind", "segment"]).size()
    got = table.set_index(["segment_kind", "segment"])["customers"]
    assert got.sort_index().equals(want.sort_index().rename("customers"))
    # from the Portfolio too, with stability between its two cut-offs (same fitted state)
    from_pf = segment_health(pf).set_index(["segment_kind", "segment"])
    assert from_pf["customers"].sort_index().equals(
        pf.segments.groupby(["segment_kind", "segment"]).size().sort_index().rename("customers"))
    assert from_pf["stability_basis"].iloc[0].startswith("share of the earlier members still in it, between")

    ov = segment_overlap(snap)
    same = ov[(ov["kind_a"] == ov["kind_b"]) & (ov["segment_a"] == ov["segment_b"])]
    assert len(same) == len(want) and (same["share_of_a"] == 1).all() and (same["jaccard"] == 1).all()
    # one pair checked by hand: members of both over members of either
    a = set(snap.query("segment_kind == 'lifecycle' and segment == 'at risk'")["customer_id"])
    b = set(snap.query("segment_kind == 'rfm' and segment == 'About to Sleep'")["customer_id"])
    row = ov.query("kind_a == 'lifecycle' and segment_a == 'at risk' and kind_b == 'rfm' "
                   "and segment_b == 'About to Sleep'").iloc[0]
    assert row["both"] == len(a & b)
    assert row["jaccard"] == pytest.approx(len(a & b) / len(a | b))
    assert row["share_of_a"] == pytest.approx(len(a & b) / len(a))
    # segments of one kind never overlap (each customer has one RFM segment)
    rfm = ov[(ov["kind_a"] == "rfm") & (ov["kind_b"] == "rfm") & (ov["segment_a"] != ov["segment_b"])]
    assert (rfm["both"] == 0).all()


def test_segment_without_action_is_warned_about(demo_analysed) -> None:
    from clientfolio.store import open_store

    db, _ = demo_analysed
    with open_store(str(db)) as st:
        acted = segment_health(st, has_action={("rfm", "Champions"), ("lifecycle", "At Risk")})
        by_callable = segment_health(st, has_action=lambda kind, seg: kind == "rfm", kinds=["rfm", "lifecycle"])
        unknown = segment_health(st, kinds=["rfm"])
    t = acted.set_index(["segment_kind", "segment"])
    assert t.loc[("rfm", "Champions"), "has_action"] is True
    assert t.loc[("lifecycle", "at risk"), "has_action"] is True  # names match regardless of case
    need = t.loc[("rfm", "Need Attention")]
    assert need["has_action"] is False
    assert f"'Need Attention' (rfm, {need['customers']:,} customers) has no action attached" in need["warnings"][0]
    assert not any("no action" in w for w in t.loc[("rfm", "Champions"), "warnings"])
    lines = health_findings(acted, limit=1000)
    assert any(line.startswith("'Need Attention' (rfm") and "no action" in line for line in lines)
    assert set(by_callable["segment_kind"]) == {"rfm", "lifecycle"}
    assert by_callable.loc[by_callable["segment_kind"] == "lifecycle", "has_action"].eq(False).all()
    assert unknown["has_action"].isna().all()
    assert "was not checked" in health_findings(unknown)[-1]
    # a segment of fewer than 30 is flagged as too small to judge
    small = t[t["customers"] < 30]
    assert len(small) and all(any("too small to judge" in w for w in ws) for ws in small["warnings"])


def test_stability_after_a_refit_is_the_share_who_stayed(demo_store_path: Path) -> None:
    from clientfolio.live.portfolio import LivePortfolio
    from clientfolio.pipeline import refit
    from clientfolio.store import open_store

    with open_store(str(demo_store_path)) as st:
        before = _latest_snapshot(st)
        # the demo was fitted with BG/NBD; refitting with Pareto/NBD moves CLV, so tiers and quadrants move
        result = refit(st, model="paretonbd")
        assert (result.changes["cause"] == "refit").sum() > 50
        LivePortfolio(st).set_triggers([{"segment_kind": "lifecycle", "segment": "at risk", "on": "entered",
                                         "action": "winback_email"}])
        acted = actions_from_triggers(st)
        table = segment_health(st, has_action=acted)
        after = st.read_customer_state()
    assert ("lifecycle", "at risk") in acted
    after_long = after.melt(id_vars="customer_id", value_vars=[c for c in after if c.startswith("seg_")],
                            var_name="segment_kind", value_name="segment").dropna()
    after_long["segment_kind"] = after_long["segment_kind"].str.removeprefix("seg_")
    now = set(map(tuple, after_long[["customer_id", "segment_kind", "segment"]].values))
    t = table.set_index(["segment_kind", "segment"])
    assert t["stability_basis"].iloc[0].startswith("share of members who stayed at the latest refit")
    checked = 0
    for (kind, seg), grp in before.groupby(["segment_kind", "segment"]):
        if (kind, seg) not in t.index:
            continue
        stayed = sum((c, kind, seg) in now for c in grp["customer_id"])
        assert t.loc[(kind, seg), "stability"] == pytest.approx(stayed / len(grp)), (kind, seg)
        checked += 1
    assert checked > 40
    assert t["stability"].min() < 0.9  # the refit really moved some segment
    assert t.loc[("lifecycle", "at risk"), "has_action"] is True
    unstable = t[t["stability"] < 0.7]
    assert all(any("stayed at the latest refit" in w for w in ws) for ws in unstable.loc[
        unstable["customers"] >= 30, "warnings"])


def test_cli_segments(demo_store_path: Path) -> None:
    from tests.actions.test_acquisition import cli_app

    r = CliRunner().invoke(cli_app(), ["segments", "--store", str(demo_store_path), "--kind", "rfm",
                                       "--acted", "rfm/Champions"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "'Need Attention' (rfm, 140 customers) has no action attached" in r.output
    assert "'Champions' (rfm" not in r.output.split("stayed:")[1]
    r = CliRunner().invoke(cli_app(), ["segments", "--store", str(demo_store_path), "--acted", "Champions"])
    assert r.exit_code == 1 and "KIND/SEGMENT" in r.output
