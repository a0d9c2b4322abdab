"""Subscriptions: strict reading with plain errors; outbox rows honour consent and refits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.core.errors import SchemaError
from clientfolio.live import Trigger, TriggerError, load_triggers, outbox_rows

GOOD = """\
# who hears about what
- segment_kind: lifecycle
  segment: at risk
  on: entered
  action: winback_email
- segment_kind: lifecycle
  segment: active
  on: left
  action: crm_note
  only_with_consent: false
- segment_kind: rfm
  segment: Champions
  on: both
  action: crm_sync
  only_with_consent: false
  on_refit: true
"""


def _write(tmp_path: Path, text: str, name: str = "triggers.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(source, **kw) -> str:
    with pytest.raises(TriggerError) as info:
        load_triggers(source, **kw)
    return str(info.value)


# ----------------------------------------------------------------------------- reading

def test_a_file_text_and_list_give_the_same_subscriptions(tmp_path: Path) -> None:
    from_file = load_triggers(_write(tmp_path, GOOD))
    assert from_file == load_triggers(str(tmp_path / "triggers.yaml")) == load_triggers(GOOD)
    assert from_file == [
        Trigger("lifecycle", "at risk", "entered", "winback_email"),
        Trigger("lifecycle", "active", "left", "crm_note", only_with_consent=False),
        Trigger("rfm", "Champions", "both", "crm_sync", only_with_consent=False, on_refit=True),
    ]
    as_list = [{"segment_kind": t.segment_kind, "segment": t.segment, "on": t.on, "action": t.action,
                "only_with_consent": t.only_with_consent, "on_refit": t.on_refit} for t in from_file]
    assert load_triggers(as_list) == from_file
    assert load_triggers("triggers:\n" + "".join("  " + line + "\n" for line in GOOD.splitlines())) == from_file
    assert load_triggers("") == [] and load_triggers("[]") == []


def test_on_is_a_key_and_yes_is_not_a_boolean() -> None:
    """YAML 1.1 reads `on:` as the boolean true and `yes` as true; subscriptions use YAML 1.2's true/false."""
    [t] = load_triggers("- {segment_kind: cluster, segment: 'No', on: both, action: tag}")
    assert (t.on, t.segment) == ("both", "No")
    [t] = load_triggers("- {segment_kind: cluster, segment: No, on: left, action: tag}")
    assert t.segment == "No"
    msg = _error("- {segment_kind: cluster, segment: x, on: left, action: tag, only_with_consent: yes}")
    assert "triggers: entry 1: 'only_with_consent' must be true or false, got 'yes'" in msg


def test_unknown_key_names_the_file_the_entry_and_the_likely_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "- segment_kind: lifecycle\n  segmnet: lapsed\n  on: entered\n  action: x\n")
    msg = _error(path)
    assert f"{path}: entry 4: unknown key 'segmnet' (did you mean 'segment'?)" in msg
    assert "allowed keys are segment_kind, segment, on, action, only_with_consent, on_refit" in msg
    assert f"{path}: entry 4: the key 'segment' is missing" in msg


def test_every_problem_is_reported_at_once() -> None:
    msg = _error([
        {"segment_kind": "rule", "segment": "VIP", "on": "entered", "action": "a"},
        {"segment_kind": "lifecycle", "segment": "At Risk", "on": "entered", "action": "a"},
        {"segment_kind": "lifecycle", "segment": "at risk", "on": "enter", "action": "a"},
        {"segment_kind": "lifecycle", "segment": "at risk", "on": "left", "action": ""},
        "lifecycle at risk",
        {"segment_kind": "value_tier", "segment": 2024, "on": "left", "action": "a"},
    ])
    lines = msg.splitlines()
    assert lines[0].startswith("triggers: entry 1: unknown segment_kind 'rule' (did you mean 'rules'?)")
    assert lines[1].startswith("triggers: entry 2: lifecycle has no segment 'At Risk' "
                               "(did you mean 'at risk'? names are case-sensitive)")
    assert lines[2] == "triggers: entry 3: 'on' must be entered, left or both, got 'enter'"
    assert lines[3] == "triggers: entry 4: 'action' must be a non-empty text, got ''"
    assert lines[4].startswith("triggers: entry 5: expected a mapping such as")
    assert lines[5] == ("triggers: entry 6: 'segment' must be a non-empty text, got 2024 "
                        "(quote it in YAML: 'No', '2024')")
    assert len(lines) == 6


def test_a_subscription_that_would_send_twice_is_refused() -> None:
    msg = _error([{"segment_kind": "lifecycle", "segment": "lapsed", "on": "both", "action": "sms"},
                  {"segment_kind": "lifecycle", "segment": "lapsed", "on": "left", "action": "sms"}])
    assert msg == ("triggers: entry 2: repeats entry 1 (sms when a customer left lifecycle 'lapsed'); "
                   "it would run twice: remove one")
    # a different action on the same move is fine
    assert len(load_triggers([{"segment_kind": "lifecycle", "segment": "lapsed", "on": "both", "action": "sms"},
                              {"segment_kind": "lifecycle", "segment": "lapsed", "on": "left", "action": "crm"}])) == 2


def test_bad_yaml_and_bad_shapes_say_where_and_how(tmp_path: Path) -> None:
    path = _write(tmp_path, "- segment_kind: lifecycle\n  segment: [at risk\n")
    assert _error(path).startswith(f"{path}: line 3, column 1: not valid YAML")
    path = _write(tmp_path, "- {segment_kind: rfm, segment: Lost, on: left, action: a, action: b}\n", "dup.yaml")
    assert "the key 'action' is written twice" in _error(path)
    assert "expected a list of subscriptions ('- segment_kind: lifecycle ...'), or a mapping with the one key " \
           "'triggers'; found the keys 'segment_kind'" in _error("segment_kind: lifecycle\nsegment: new\n")
    assert "expected a list of subscriptions, each starting with '- ', got str" in _error("triggers: lifecycle\n")
    assert "cannot read the subscription file" in _error(tmp_path / "missing.yaml")
    assert "got int" in _error(42)


def test_a_shop_with_its_own_rfm_grid_names_its_segments() -> None:
    entry = [{"segment_kind": "rfm", "segment": "Sleepers", "on": "entered", "action": "nudge"}]
    assert "rfm has no segment 'Sleepers'" in _error(entry)
    assert load_triggers(entry, known_segments={"rfm": ["Sleepers", "Stars"]})[0].segment == "Sleepers"
    # open kinds take any name: clusters, rule segments, categories and channels come from the data
    assert load_triggers([{"segment_kind": "cluster", "segment": "Weekend regulars", "on": "left", "action": "a"}])


# ----------------------------------------------------------------------------- outbox

def _changes(rows: list[tuple]) -> pd.DataFrame:
    cols = ["customer_id", "segment_kind", "from_segment", "to_segment", "changed_at", "cause", "reason"]
    return pd.DataFrame(rows, columns=cols)


AT = pd.Timestamp("2025-03-04 10:15:00", tz="UTC")
CHANGES = _changes([
    ("C1", "lifecycle", "active", "at risk", AT, "time", "no order in 74 days, usually every 21 days"),
    ("C2", "lifecycle", "active", "at risk", AT, "time", "no order in 50 days, usually every 20 days"),
    ("C3", "lifecycle", None, "at risk", AT, "order", "one order so far"),
    ("C1", "rfm", "Champions", "Loyal Customers", AT, "refit", "R fell from 5 to 4"),
    ("C4", "lifecycle", "active", "at risk", AT, "refit", "P(alive) 0.61 (below 0.70)"),
    ("C5", "lifecycle", "at risk", "at risk", AT, "time", "unchanged"),
    ("C6", "value_tier", "High-Value Regulars", None, AT, "refund", ""),
])


def test_a_move_is_a_left_and_an_entered_with_the_reason_in_the_payload() -> None:
    out = outbox_rows(CHANGES.iloc[:1], load_triggers(GOOD), consent={"C1": True})
    assert list(out.columns) == ["change_index", "customer_id", "segment_kind", "segment", "transition", "action",
                                 "payload"]
    assert out[["segment", "transition", "action"]].values.tolist() == [
        ["active", "left", "crm_note"], ["at risk", "entered", "winback_email"]]
    payload = json.loads(out["payload"].iloc[1])
    assert payload == {"customer_id": "C1", "segment_kind": "lifecycle", "segment": "at risk",
                       "transition": "entered", "from": "active", "to": "at risk",
                       "reason": "no order in 74 days, usually every 21 days",
                       "changed_at": "2025-03-04T10:15:00+00:00", "cause": "time"}


def test_consent_must_be_a_real_yes() -> None:
    consent = {"C1": True, "C2": False, "C3": "yes"}  # C4 unknown
    out = outbox_rows(CHANGES, load_triggers(GOOD), consent)
    emails = out[out["action"] == "winback_email"]
    assert emails["customer_id"].tolist() == ["C1"]  # C2 said no, C3's "yes" is text, C4 is unknown (and a refit)
    assert outbox_rows(CHANGES, load_triggers(GOOD), None).query("action == 'winback_email'").empty
    # subscriptions that do not need consent still fire for everyone (a CRM note is not marketing)
    assert out[out["action"] == "crm_note"]["customer_id"].tolist() == ["C1", "C2"]


def test_a_refit_fires_only_subscriptions_that_ask_for_it() -> None:
    everyone = {f"C{i}": True for i in range(1, 7)}
    out = outbox_rows(CHANGES, load_triggers(GOOD), everyone)
    # C4 moved into at risk only because the refit moved the lines: no win-back e-mail, no CRM note
    assert "C4" not in set(out["customer_id"])
    # the CRM sync asked for refits: C1 leaving Champions by a refit is synced
    sync = out[out["action"] == "crm_sync"]
    assert sync[["change_index", "customer_id", "transition", "segment"]].values.tolist() == [
        [3, "C1", "left", "Champions"]]
    assert json.loads(sync["payload"].iloc[0])["cause"] == "refit"


def test_rows_are_positional_and_skip_non_moves_and_other_kinds() -> None:
    changes = CHANGES.set_index(pd.Index([100, 90, 80, 70, 60, 50, 40]))
    trig = [Trigger("lifecycle", "at risk", "both", "tag", only_with_consent=False, on_refit=True),
            Trigger("value_tier", "High-Value Regulars", "left", "downgrade", only_with_consent=False)]
    out = outbox_rows(changes, trig, consent={})
    assert out[["change_index", "customer_id", "transition", "action"]].values.tolist() == [
        [0, "C1", "entered", "tag"], [1, "C2", "entered", "tag"], [2, "C3", "entered", "tag"],
        [4, "C4", "entered", "tag"], [6, "C6", "left", "downgrade"]]  # C5 stayed at risk: no move
    assert out["change_index"].dtype == "int64"
    assert json.loads(out["payload"].iloc[-1])["to"] is None


def test_no_triggers_or_no_changes_give_an_empty_outbox_and_bad_input_is_named() -> None:
    assert outbox_rows(CHANGES, [], {}).empty
    empty = outbox_rows(CHANGES.iloc[:0], load_triggers(GOOD), {})
    assert empty.empty and list(empty.columns)[0] == "change_index"
    with pytest.raises(SchemaError, match="no column.*cause"):
        outbox_rows(CHANGES.drop(columns="cause"), load_triggers(GOOD), {})
