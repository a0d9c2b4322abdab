"""The actions wired together: consent by purpose and channel, the contact cap and the approval queue
hold on every path that leaves the product (exports, playbook sends, the living portfolio's outbox)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.actions import approvals as ap
from clientfolio.actions.consent import record_consent
from clientfolio.actions.exports import export_segment
from clientfolio.actions.pressure import log_contacts, set_caps
from clientfolio.actions.release import approve_and_carry_out, carry_out, hold_for_approval
from clientfolio.actions.sends import act
from clientfolio.live import LivePortfolio, load_triggers
from clientfolio.live.triggers import OVER_CAP, plan_outbox
from clientfolio.store import open_store
from clientfolio.store.consent import consent_map

AT = pd.Timestamp("2025-01-01")
# a: consent in the customers file; b: refused there; c: granted by e-mail; d: granted then withdrawn for every
# channel; e: granted, but contacted twice this week (at the cap); f: no consent on record
PEOPLE = {"a": True, "b": False, "c": None, "d": None, "e": True, "f": None}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _shop(store) -> None:
    """Six customers in lifecycle 'at risk' with every kind of consent, and one at the contact cap."""
    with store.transaction() as tx:
        tx.insert("customers", pd.DataFrame({"customer_id": list(PEOPLE), "consent_marketing": list(PEOPLE.values()),
                                             "email": [f"{c}@x.org" for c in PEOPLE], "row_hash": "h",
                                             "import_id": 1}))
    store.save_memberships(pd.DataFrame({"customer_id": list(PEOPLE), "segment_kind": "lifecycle",
                                         "segment": "at risk", "as_of": AT}))
    record_consent(store, pd.DataFrame({"customer_id": ["c", "d", "d"], "purpose": "marketing",
                                        "channel": ["email", "email", "any"], "granted": [True, True, False],
                                        "recorded_at": [AT, AT, AT + pd.Timedelta(days=1)]}))
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    log_contacts(store, pd.DataFrame({"customer_id": ["e", "e"], "channel": "email", "purpose": "marketing",
                                      "origin": "test", "ref": ["m1", "m2"],
                                      "contacted_at": [now - pd.Timedelta(days=2), now - pd.Timedelta(days=1)]}))


def test_export_leaves_out_no_consent_and_over_cap_and_logs_the_written(store, tmp_path: Path) -> None:
    _shop(store)
    r = export_segment(store, "At Risk", target="mailchimp", out=tmp_path / "m.csv")
    assert sorted(row["Email Address"] for row in _rows(r.path)) == ["a@x.org", "c@x.org"]
    assert r.left_out == {"does not accept e-mail marketing (customers file)": 1,
                          "consent to marketing by email withdrawn": 1,
                          "no consent on record for marketing by email": 1,
                          "over the contact cap (at most 2 in 7 days and at most 6 in 30 days)": 1}
    assert any("over the contact cap" in line for line in r.summary())
    log = store.query("SELECT customer_id FROM contact_log WHERE origin = 'export'")
    assert sorted(log["customer_id"]) == ["a", "c"]
    # the export counted: with a cap of one contact a week, a second export right away holds nobody
    set_caps(store, {"7d": 1})
    again = export_segment(store, "At Risk", target="mailchimp", out=tmp_path / "m2.csv")
    assert again.rows == 0 and again.left_out["over the contact cap (at most 1 in 7 days)"] == 3


def test_send_list_applies_consent_cap_and_levers(store, tmp_path: Path) -> None:
    _shop(store)
    record_consent(store, pd.DataFrame({"customer_id": ["c"], "purpose": "nudges", "channel": "email",
                                        "granted": [True]}))
    dry = act(store, "At Risk", kind="lifecycle", dry_run=True)
    assert sorted(dry.rows["customer_id"]) == ["a", "c"] and dry.path is None
    assert store.query("SELECT count(*) AS n FROM contact_log WHERE origin = 'playbook'")["n"].iloc[0] == 0
    r = act(store, "At Risk", kind="lifecycle", out=tmp_path / "send.csv")
    rows = {row["customer_id"]: row for row in _rows(r.path)}
    assert sorted(rows) == ["a", "c"]
    assert rows["c"]["email"] == "c@x.org" and rows["c"]["offer"] == r.playbook.offer
    assert rows["c"]["levers"] == ", ".join(r.playbook.levers) and r.playbook.levers  # c consented to nudges
    assert rows["a"]["levers"] == ""  # a did not: the playbook without its levers
    assert r.left_out[[k for k in r.left_out if k.startswith("over the contact cap")][0]] == 1
    assert sum(r.left_out.values()) + len(rows) == r.members == 6
    log = store.query("SELECT customer_id, channel, purpose FROM contact_log WHERE origin = 'playbook'")
    assert sorted(log["customer_id"]) == ["a", "c"] and set(log["purpose"]) == {"marketing"}


def test_export_waits_for_approval_then_writes_exactly_once(store, tmp_path: Path) -> None:
    _shop(store)
    ap.set_required_kinds(store, ["export"])
    out = tmp_path / "k.csv"
    r = export_segment(store, "At Risk", target="klaviyo", out=out)
    assert r.pending and not out.exists() and r.rows == 2
    assert "waiting for approval " + r.approval_id in r.summary()[0]
    assert store.query("SELECT count(*) AS n FROM contact_log WHERE origin = 'export'")["n"].iloc[0] == 0
    assert store.query("SELECT count(*) AS n FROM outputs")["n"].iloc[0] == 0
    done = approve_and_carry_out(store, r.approval_id, "owner")
    assert done.status == "done" and out.exists()
    assert len(_rows(out)) == 2 and done.result["rows"] == 2 and done.result["path"] == str(out.resolve())
    assert ap.get(store, r.approval_id).result["left_out"]["consent to marketing by email withdrawn"] == 1
    written = out.stat().st_mtime_ns
    with pytest.raises(ap.ApprovalError, match="has been sent"):
        approve_and_carry_out(store, r.approval_id, "someone else")
    with pytest.raises(ap.ApprovalError, match="has been sent"):
        carry_out(store, r.approval_id)
    assert out.stat().st_mtime_ns == written
    assert store.query("SELECT count(*) AS n FROM contact_log WHERE origin = 'export'")["n"].iloc[0] == 2
    assert store.query("SELECT count(*) AS n FROM outputs")["n"].iloc[0] == 1


def test_send_waits_for_approval_and_hold_for_approval(store, tmp_path: Path) -> None:
    _shop(store)
    assert hold_for_approval(store, "webhooks", "3 webhooks", {"ids": [1, 2, 3]}, 3) is None  # not required
    ap.set_required_kinds(store, ["playbook_send", "webhooks"])
    held = hold_for_approval(store, "webhooks", "3 webhooks", {"ids": [1, 2, 3]}, 3)
    assert ap.get(store, held).status == "pending" and ap.get(store, held).payload == {"ids": [1, 2, 3]}
    assert approve_and_carry_out(store, held, "owner").status == "approved"  # the webhook worker sends it
    out = tmp_path / "send.csv"
    r = act(store, "at risk", out=out)
    assert r.approval_id and not out.exists()
    # consent withdrawn while the send waited: judged again when it is carried out
    record_consent(store, pd.DataFrame({"customer_id": ["c"], "purpose": "marketing", "channel": "email",
                                        "granted": [False]}))
    done = approve_and_carry_out(store, r.approval_id, "owner")
    assert [row["customer_id"] for row in _rows(out)] == ["a"] and done.result["rows"] == 1


def test_store_consent_by_purpose_feeds_the_outbox(store) -> None:
    """A customer who consented to e-mail marketing but withdrew personalisation gets no personalisation message."""
    _shop(store)
    record_consent(store, pd.DataFrame({"customer_id": ["a", "c", "c"], "purpose": "personalisation",
                                        "channel": ["email", "email", "any"], "granted": [False, True, True]}))
    ids = list(PEOPLE)
    triggers = load_triggers("""
- {segment_kind: lifecycle, segment: at risk, on: entered, action: winback}
- {segment_kind: lifecycle, segment: at risk, on: entered, action: recommend, purpose: personalisation}
""")
    pairs = {(t.purpose, t.channel) for t in triggers}
    consent_by = {p: consent_map(store, ids, *p) for p in pairs}
    changes = pd.DataFrame({"customer_id": ids, "segment_kind": "lifecycle", "from_segment": "active",
                            "to_segment": "at risk", "changed_at": AT, "cause": "time", "reason": "quiet"})
    plan = plan_outbox(changes, triggers, None, consent_by=consent_by, allowance={c: 2 for c in ids} | {"e": 0})
    got = {(c, a) for c, a in zip(plan.rows["customer_id"], plan.rows["action"])}
    assert got == {("a", "winback"), ("c", "winback"), ("c", "recommend")}
    assert plan.left_out == {"no consent for marketing by email": 3, "no consent for personalisation by email": 5,
                             OVER_CAP: 1}


def test_trigger_purpose_and_channel_are_checked() -> None:
    with pytest.raises(Exception, match="'purpose' must be one of marketing, personalisation, nudges"):
        load_triggers("- {segment_kind: lifecycle, segment: at risk, on: entered, action: x, purpose: sales}")
    t = load_triggers("- {segment_kind: lifecycle, segment: at risk, on: entered, action: x, channel: sms}")[0]
    assert (t.purpose, t.channel, t.capped) == ("marketing", "sms", True)
    assert not load_triggers("- {segment_kind: lifecycle, segment: at risk, on: entered, action: x, "
                             "purpose: personalisation}")[0].capped


def _movers(st, n: int = 4) -> list[str]:
    df = st.query("SELECT customer_id FROM customer_state WHERE seg_lifecycle = 'at risk' ORDER BY customer_id")
    return list(df["customer_id"].astype(str))[:n]


def test_live_outbox_honours_purpose_withdrawal_and_cap(demo_store_path: Path) -> None:
    """On the analysed demo store: orders move four at-risk customers out; the outbox asks the store's consent."""
    with open_store(demo_store_path) as st:
        who = _movers(st)
        last = pd.Timestamp(st.query("SELECT max(ts) AS t FROM transactions")["t"].iloc[0])
        record_consent(st, pd.DataFrame({
            "customer_id": who + who, "purpose": ["marketing"] * 4 + ["personalisation"] * 4, "channel": "email",
            "granted": [True, True, True, True, True, False, True, True]}))
        # who[3] had two marketing contacts this week: at the cap
        log_contacts(st, pd.DataFrame({"customer_id": who[3], "channel": "email", "purpose": "marketing",
                                       "origin": "test", "ref": ["m1", "m2"],
                                       "contacted_at": [last - pd.Timedelta(days=1), last]}))
        live = LivePortfolio(st, triggers="""
- {segment_kind: lifecycle, segment: at risk, on: left, action: welcome_back}
- {segment_kind: lifecycle, segment: at risk, on: left, action: picks_for_you, purpose: personalisation}
""")
        day = last + pd.Timedelta(days=1)
        orders = pd.DataFrame({"customer_id": who, "order_id": [f"W{i}" for i in range(4)], "ts": day,
                               "amount": 20.0})
        r = live.update(orders, as_of=day)
        box = st.query("SELECT customer_id, action, payload FROM outbox")
        left = set(r.changes.loc[(r.changes["segment_kind"] == "lifecycle")
                                 & (r.changes["from_segment"] == "at risk"), "customer_id"])
    assert left == set(who)
    got = {(c, a) for c, a in zip(box["customer_id"], box["action"])}
    # who[1] withdrew personalisation only: the welcome-back (marketing) still goes, the picks do not;
    # who[3] is at the cap: the marketing message is held back, personalisation (not promotion) is not capped
    assert got == {(who[0], "welcome_back"), (who[0], "picks_for_you"), (who[1], "welcome_back"),
                   (who[2], "welcome_back"), (who[2], "picks_for_you"), (who[3], "picks_for_you")}
    assert r.outbox == 6 and r.outbox_left_out == {"no consent for personalisation by email": 1, OVER_CAP: 1}
    assert all(json.loads(p)["transition"] == "left" for p in box["payload"])
    # queued but undelivered messages count towards the cap: with one contact a week, who[0] (one welcome-back
    # waiting in the outbox) gets no second marketing message, only the uncapped personalisation one
    with open_store(demo_store_path) as st:
        set_caps(st, {"7d": 1})
        live = LivePortfolio(st)
        again = pd.DataFrame({"customer_id": [who[0]], "segment_kind": "lifecycle", "from_segment": "at risk",
                              "to_segment": "active", "changed_at": day, "cause": "behaviour", "reason": "ordered"})
        rows, left_out = live._outbox(again)
    assert rows["action"].tolist() == ["picks_for_you"] and left_out == {OVER_CAP: 1}


@pytest.mark.slow
def test_install_triggers_and_cli_act_and_approve(demo_store_path: Path, tmp_path: Path) -> None:
    from tests.test_cli import run

    db = str(demo_store_path)
    out = run("playbooks", "--store", db, "--install-triggers", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "playbook subscription(s)" in out.stdout
    with open_store(db) as st:
        live = LivePortfolio(st)
        mine = [t for t in live.triggers if t.action == "playbook"]
        assert any(t.segment_kind == "lifecycle" and t.segment == "at risk" and t.on == "entered" for t in mine)
        assert all(t.purpose == "marketing" for t in mine)
        ap.set_required_kinds(st, ["playbook_send"])
    dry = run("act", "--segment", "At Risk", "--kind", "lifecycle", "--dry-run", "--store", db, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "dry run:" in dry.stdout and "left out:" in dry.stdout
    held = run("act", "--segment", "At Risk", "--kind", "lifecycle", "--to", str(tmp_path / "s.csv"), "--store", db,
               cwd=tmp_path)
    assert held.returncode == 0, held.stderr
    assert not (tmp_path / "s.csv").exists()
    with open_store(db) as st:
        approval_id = ap.pending(st)["approval_id"].iloc[0]
    assert approval_id in held.stdout
    ok = run("approvals", "approve", approval_id, "--store", db, "--by", "owner", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "approved and done" in ok.stdout and (tmp_path / "s.csv").exists()
    twice = run("approvals", "approve", approval_id, "--store", db, "--by", "owner", cwd=tmp_path)
    assert twice.returncode == 1 and "has been sent" in twice.stderr


def test_cli_export_prints_the_approval_id_and_writes_nothing(demo_store_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clientfolio.cli import app

    with open_store(demo_store_path) as st:
        ap.set_required_kinds(st, ["export"])
    out = tmp_path / "k.csv"
    r = CliRunner().invoke(app, ["export", "--segment", "At Risk", "--kind", "rfm", "--to", "klaviyo", "--out", str(out),
                                 "--store", str(demo_store_path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    with open_store(demo_store_path) as st:
        waiting = ap.pending(st)
    assert len(waiting) == 1 and waiting["approval_id"].iloc[0] in r.output and not out.exists()
    assert "waiting for approval" in r.output and "left out:" in r.output
    assert waiting["customers"].iloc[0] > 0 and "RFM: At Risk" in waiting["summary"].iloc[0]


def test_an_interrupted_carry_out_stays_approved_and_can_be_sent_again(store, tmp_path: Path) -> None:
    _shop(store)
    ap.set_required_kinds(store, ["export"])
    folder = tmp_path / "out"
    folder.mkdir()
    r = export_segment(store, "At Risk", target="csv", out=folder / "x.csv")
    folder.rmdir()  # the folder went away while the request waited
    with pytest.raises(Exception, match="does not exist"):
        approve_and_carry_out(store, r.approval_id, "owner")
    assert ap.get(store, r.approval_id).status == "approved"  # approved, not done: nothing was written
    with pytest.raises(ap.ApprovalError, match="already approved"):
        approve_and_carry_out(store, r.approval_id, "owner")  # a second approval does not send it
    folder.mkdir()
    done = carry_out(store, r.approval_id)  # `clientfolio approvals send ID`
    assert done.status == "done" and len(_rows(folder / "x.csv")) == 2
