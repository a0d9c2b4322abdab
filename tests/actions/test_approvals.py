"""The approval queue on both stores: states only move forward, each decision is taken once."""

from __future__ import annotations

from pathlib import Path

import pytest

from clientfolio.actions import approvals as ap


def test_submit_approve_done(store) -> None:
    assert not ap.approval_required(store, "export")
    assert ap.set_required_kinds(store, ["export", "webhooks", "export"]) == ["export", "webhooks"]
    assert ap.approval_required(store, "export") and not ap.approval_required(store, "playbook_send")
    aid = ap.submit(store, "export", "Klaviyo export of At Risk: 412 customers",
                    {"segment": "At Risk", "to": "klaviyo", "path": Path("/tmp/x.csv"), "ids": {"b", "a"}}, 412)
    other = ap.submit(store, "webhooks", "entered Champions: 3 messages", {"messages": ["m1", "m2", "m3"]}, 3)
    q = ap.pending(store)
    assert list(q["approval_id"]) == [aid, other] and list(q["customers"]) == [412, 3]
    a = ap.get(store, aid)
    assert a.status == "pending" and a.payload == {"segment": "At Risk", "to": "klaviyo", "path": "/tmp/x.csv",
                                                   "ids": ["a", "b"]}
    a = ap.approve(store, aid, by="owner@shop.example")
    assert (a.status, a.decided_by, a.note) == ("approved", "owner@shop.example", None) and a.decided_at is not None
    assert list(ap.pending(store)["approval_id"]) == [other]
    with pytest.raises(ap.ApprovalError, match="already approved by owner@shop.example"):
        ap.approve(store, aid, by="someone else")
    with pytest.raises(ap.ApprovalError, match="cannot reject"):
        ap.reject(store, aid, by="x", note="too late")
    assert ap.mark_done(store, aid).status == "done"
    with pytest.raises(ap.ApprovalError, match="has been sent"):
        ap.mark_done(store, aid)
    with pytest.raises(ap.ApprovalError, match="has been sent"):
        ap.approve(store, aid, by="x")
    assert ap.get(store, aid).decided_by == "owner@shop.example"  # the refused decisions changed nothing


def test_reject_needs_note_and_is_final(store) -> None:
    aid = ap.submit(store, "playbook_send", "win-back e-mail to Lapsed", {"segment": "lapsed"}, 10)
    with pytest.raises(ap.ApprovalError, match="needs a note"):
        ap.reject(store, aid, by="owner", note="  ")
    with pytest.raises(ap.ApprovalError, match="cannot mark as sent.*still waiting"):
        ap.mark_done(store, aid)
    r = ap.reject(store, aid, by="owner", note="offer not agreed yet")
    assert (r.status, r.note) == ("rejected", "offer not agreed yet")
    with pytest.raises(ap.ApprovalError, match=r"rejected by owner .*\(offer not agreed yet\)"):
        ap.approve(store, aid, by="owner")
    with pytest.raises(ap.ApprovalError, match="cannot mark as sent"):
        ap.mark_done(store, aid)
    assert ap.pending(store).empty
    assert list(ap.list_approvals(store, "rejected")["approval_id"]) == [aid]


def test_refuses_bad_requests(store) -> None:
    with pytest.raises(ap.ApprovalError, match="no approval request 'nope'"):
        ap.approve(store, "nope", by="owner")
    with pytest.raises(ap.ApprovalError, match="not a name"):
        ap.submit(store, "Export!", "x", {}, 1)
    with pytest.raises(ap.ApprovalError, match="cannot be stored"):
        ap.submit(store, "export", "x", {"f": object()}, 1)
    with pytest.raises(ap.ApprovalError, match="count of customers"):
        ap.submit(store, "export", "x", {}, -1)
    with pytest.raises(ap.ApprovalError, match="unknown approval status"):
        ap.list_approvals(store, "waiting")
    aid = ap.submit(store, "export", "x", {}, 0)
    with pytest.raises(ap.ApprovalError, match="say who decides"):
        ap.approve(store, aid, by=" ")
    assert ap.get(store, aid).status == "pending"
    assert ap.set_required_kinds(store, []) == [] and not ap.approval_required(store, "export")


def test_cli_requires_lists_and_decides_once(demo_store_path) -> None:
    from clientfolio.store import open_store
    from tests.test_cli import run

    db = str(demo_store_path)
    out = run("approvals", "--store", db, "--require", "export", "--require", "webhooks", cwd=demo_store_path.parent)
    assert out.returncode == 0, out.stderr
    assert "approval required for: export, webhooks" in out.stdout
    with open_store(db) as st:
        aid = ap.submit(st, "export", "Klaviyo export of At Risk", {"segment": "At Risk"}, 412)
    out = run("approvals", "list", "--store", db, cwd=demo_store_path.parent)
    assert aid in out.stdout and "Klaviyo export of At Risk" in out.stdout
    out = run("approvals", "approve", aid, "--by", "anna", "--store", db, cwd=demo_store_path.parent)
    assert out.returncode == 0 and f"approved {aid}" in out.stdout
    out = run("approvals", "approve", aid, "--store", db, cwd=demo_store_path.parent)
    assert out.returncode == 1 and "already approved by anna" in out.stderr
    out = run("approvals", "reject", "ffffffff", "--note", "no", "--store", db, cwd=demo_store_path.parent)
    assert out.returncode == 1 and "no approval request 'ffffffff'" in out.stderr
