"""Playbooks: defaults for every segment, the owner's file checked and merged, levers only with consent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.actions.playbooks import (LEVERS, SERVICE_LEVELS, PlaybookError, customer_levers, divestment_ids, load_playbooks,
                                           playbook_table, playbook_triggers, trigger_subscriptions,
                                           write_default_playbooks)
from clientfolio.live.kinds import SEGMENT_NAMES
from clientfolio.live.triggers import outbox_rows

OPEN_WITH_DEFAULT = ("category_preference", "channel_preference")  # a kind-level "*" playbook
NO_DEFAULT = ("cluster", "rules")  # names generated or the owner's own: the generic playbook


def test_every_segment_of_the_analysed_demo_has_a_playbook(demo_analysed) -> None:
    _, pf = demo_analysed
    table = playbook_table(pf)
    present = pf.segments[["segment_kind", "segment"]].drop_duplicates()
    table = table[table["segment_kind"] != "divestment"]
    got = set(zip(table["segment_kind"], table["segment"]))
    assert got == set(zip(present["segment_kind"], present["segment"]))
    sizes = pf.segments.groupby(["segment_kind", "segment"])["customer_id"].nunique()
    assert all(sizes[(k, s)] == n for k, s, n in zip(table["segment_kind"], table["segment"], table["size"]))
    assert set(table["service_level"]) <= set(SERVICE_LEVELS)
    for col in ("offer", "channel", "angle", "cadence", "kpi"):
        assert table[col].str.len().gt(3).all(), col
    tailored = table.set_index(["segment_kind", "segment"])["tailored"]
    for (kind, segment), flag in tailored.items():
        assert flag == ("no" if kind in NO_DEFAULT else "yes"), (kind, segment)
    assert "cluster" in set(table["segment_kind"])  # the demo has discovered groups: reported as not tailored


def test_every_built_in_segment_name_has_its_own_default() -> None:
    pb = load_playbooks()
    for kind, names in SEGMENT_NAMES.items():
        for name in names:
            p = pb.for_segment(kind, name)
            assert p.tailored and p.source == "built-in playbooks", (kind, name)
    assert pb.for_segment("lifecycle", "prospect").kpi.startswith("share of prospects")
    for kind in OPEN_WITH_DEFAULT:
        assert pb.for_segment(kind, "Anything at all").tailored
    generic = pb.for_segment("cluster", "Weekend cake buyers")
    assert not generic.tailored and generic.service_level == "standard" and generic.segment == "Weekend cake buyers"
    assert pb.for_segment("lifecycle", "At Risk").levers == ("loss_framing",)  # names match in any case


def test_divestment_candidates_get_a_phased_plan_never_a_firing(demo_analysed) -> None:
    _, pf = demo_analysed
    pb = load_playbooks()
    plan = pb.for_segment("profitability", "Unprofitable")
    assert plan.purpose == "service" and plan.service_level == "self-service"
    text = " ".join(plan.steps).lower()
    assert len(plan.steps) >= 4 and "notice" in text and "help them move" in text and "keep serving" in text
    everything = " ".join(" ".join(map(str, dataclasses.astuple(p))) for p in pb.entries()).lower()
    assert " fire " not in everything and "fire them" not in everything
    # every divestment candidate of the demo is covered by the plan, whichever profitability segment it is in
    d = pf.divestment.customers
    table = playbook_table(pf, pb).set_index("segment_kind")
    row = table.loc["divestment"]
    assert len(d) and row["size"] == len(d) and row["steps"].startswith("Review the price or the service model")
    assert divestment_ids(pf) == sorted(d["customer_id"])
    db, _ = demo_analysed
    from clientfolio.store import open_store

    with open_store(str(db)) as st:  # the store's customer state finds the same customers
        assert divestment_ids(st) == sorted(d["customer_id"])


def test_levers_carry_their_guardrails() -> None:
    for lever in LEVERS.values():
        g = lever.guardrail.lower()
        assert "truthful" in g and "opt-out" in g and "vulnerable" in g
    at_risk = load_playbooks().for_segment("rfm", "At Risk")
    assert at_risk.guardrails()[0].startswith("loss_framing: Only losses that are real")


def test_owner_file_merges_over_the_defaults(tmp_path: Path) -> None:
    f = tmp_path / "pb.yaml"
    f.write_text("""
playbooks:
  rfm:
    At Risk:
      offer: a handwritten card and a free loaf
  cluster:
    "*":
      service_level: standard
      offer: group newsletter
      channel: email
      angle: for people like you
      cadence: at most one e-mail every 30 days
      kpi: orders per customer over 90 days
  rules:
    VIP wholesale:
      service_level: dedicated
      channel: account_manager
      levers: [reciprocity]
""", encoding="utf-8")
    pb = load_playbooks(f)
    default = load_playbooks().for_segment("rfm", "At Risk")
    mine = pb.for_segment("rfm", "At Risk")
    assert mine.offer == "a handwritten card and a free loaf" and mine.source == str(f)
    assert (mine.kpi, mine.levers, mine.service_level) == (default.kpi, default.levers, default.service_level)
    assert pb.for_segment("cluster", "Bread lovers").tailored and pb.for_segment("cluster", "x").offer == \
        "group newsletter"
    vip = pb.for_segment("rules", "VIP wholesale")
    assert vip.tailored and vip.service_level == "dedicated" and vip.channel == "account_manager"
    assert vip.consent_channel == "any" and vip.kpi  # the rest from the generic playbook
    assert pb.for_segment("rules", "Other rule").tailored is False


@pytest.mark.parametrize("body, expected", [
    ("rfm:\n    At Risk:\n      chanel: email\n", "rfm 'At Risk': unknown key 'chanel' (did you mean 'channel'?)"),
    ("lifecycle:\n    churned:\n      service_level: none\n",
     "lifecycle 'churned': service_level 'none' is not allowed: every segment keeps at least self-service"),
    ("rfm:\n    Lost:\n      service_level: premium\n", "service_level 'premium' is not one of dedicated, priority"),
    ("rfm:\n    At Risk:\n      levers: [fomo]\n", "unknown lever 'fomo'; the levers are loss_framing, social_proof"),
    ("rfm:\n    At Risk:\n      channel: pigeon\n", "channel 'pigeon' is not one of email"),
    ("rfm:\n    At Rsik:\n      offer: x\n", "rfm has no segment 'At Rsik' (did you mean 'At Risk'?)"),
    ("lifecylce:\n    new:\n      offer: x\n", "unknown segment kind 'lifecylce' (did you mean 'lifecycle'?)"),
    ("rfm:\n    At Risk:\n      on_entry: maybe\n", "'on_entry' must be true or false"),
])
def test_bad_files_are_refused_naming_file_segment_and_fix(tmp_path: Path, body: str, expected: str) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("playbooks:\n  " + body, encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_playbooks(f)
    assert str(info.value).startswith(f"{f}: ")
    assert expected in str(info.value)


def test_all_problems_at_once_and_broken_yaml_has_its_line(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("playbooks:\n  rfm:\n    Lost:\n      service_level: none\n      levers: [fomo]\n", encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_playbooks(f)
    assert "service_level 'none'" in str(info.value) and "unknown lever 'fomo'" in str(info.value)
    f.write_text("playbooks:\n  rfm: [\n", encoding="utf-8")
    with pytest.raises(PlaybookError, match=r"mine.yaml: line \d+, column \d+: not valid YAML"):
        load_playbooks(f)
    f.write_text("rfm:\n  Lost: {offer: x}\n", encoding="utf-8")
    with pytest.raises(PlaybookError, match="expected one top-level key 'playbooks'"):
        load_playbooks(f)
    with pytest.raises(PlaybookError, match="no such playbook file"):
        load_playbooks(tmp_path / "missing.yaml")


def test_written_defaults_load_back_unchanged_and_are_not_overwritten(tmp_path: Path) -> None:
    f = write_default_playbooks(tmp_path / "playbooks.yaml")
    assert "service_level" in f.read_text(encoding="utf-8") and f.read_text(encoding="utf-8").startswith("#")
    mine, built_in = load_playbooks(f), load_playbooks()
    for p in built_in.entries():
        q = mine.for_segment(p.segment_kind, p.segment)
        assert dataclasses.replace(q, source=p.source) == p
    with pytest.raises(PlaybookError, match="already exists"):
        write_default_playbooks(f)


def test_a_lever_is_dropped_for_customers_without_nudges_consent(demo_store_path: Path) -> None:
    from clientfolio.actions.consent import record_consent
    from clientfolio.store import open_store

    pb = load_playbooks().for_segment("lifecycle", "at risk")
    with open_store(str(demo_store_path)) as st:
        record_consent(st, pd.DataFrame({
            "customer_id": ["C00001", "C00002", "C00003", "C00004"],
            "purpose": ["nudges", "nudges", "marketing", "nudges"],
            "channel": ["email", "email", "email", "sms"],
            "granted": [True, False, True, True]}))
        got = customer_levers(st, pb, ["C00001", "C00002", "C00003", "C00004", "C00005"]).set_index("customer_id")
    assert got.loc["C00001", "levers"] == ("loss_framing",) and got.loc["C00001", "dropped"] == ()
    for cid in ("C00002", "C00003", "C00004", "C00005"):  # withdrawn, marketing only, SMS only, nothing
        assert got.loc[cid, "levers"] == () and got.loc[cid, "dropped"] == ("loss_framing",), cid
    assert got.loc["C00002", "basis"].startswith("withdrawn")


def test_entering_a_segment_queues_its_playbook(demo_analysed, demo_store_path: Path) -> None:
    _, pf = demo_analysed
    triggers = playbook_triggers(load_playbooks(), pf)
    by = {(t.segment_kind, t.segment): t for t in triggers}
    assert by[("lifecycle", "at risk")].only_with_consent and by[("lifecycle", "at risk")].on == "entered"
    assert not by[("profitability", "Unprofitable")].only_with_consent  # a task for the owner, not a message
    assert ("lifecycle", "active") not in by and not any(k == "cluster" for k, _ in by)  # on_entry false / generic
    assert all(not t.on_refit and t.action == "playbook" for t in triggers)
    changes = pd.DataFrame({
        "customer_id": ["a", "b", "c"], "segment_kind": ["lifecycle"] * 3, "from_segment": ["active"] * 3,
        "to_segment": ["at risk"] * 3, "changed_at": pd.to_datetime(["2025-01-02"] * 3),
        "cause": ["time", "time", "refit"], "reason": ["no order in 74 days"] * 3})
    out = outbox_rows(changes, triggers, {"a": True, "b": False, "c": True})
    assert list(out["customer_id"]) == ["a"] and list(out["action"]) == ["playbook"]
    # the living portfolio takes them as its subscriptions
    from clientfolio.live import LivePortfolio
    from clientfolio.store import open_store

    with open_store(str(demo_store_path)) as st:
        kept = LivePortfolio(st).set_triggers(trigger_subscriptions(triggers))
    assert len(kept) == len(triggers)


def test_cli_writes_lists_and_refuses(tmp_path: Path, demo_analysed) -> None:
    from typer.testing import CliRunner

    from clientfolio.cli import AREAS, app
    from clientfolio.commands import playbooks as area

    assert "playbooks" in AREAS
    if "playbooks" not in {c.name for c in app.registered_commands}:
        area.register(app)
    db, _ = demo_analysed
    runner = CliRunner()
    f = tmp_path / "pb.yaml"
    r = runner.invoke(app, ["playbooks", "--write", str(f)])
    assert r.exit_code == 0 and f.exists()
    r = runner.invoke(app, ["playbooks", "--file", str(f), "--store", str(db)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "Unprofitable" in r.output and "generic: not tailored" in r.output
    f.write_text("playbooks:\n  rfm:\n    Lost:\n      service_level: none\n", encoding="utf-8")
    r = runner.invoke(app, ["playbooks", "--file", str(f)])
    assert r.exit_code == 1 and "minimum service level" in r.output
