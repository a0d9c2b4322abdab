"""actions stage (see DESIGN.md)."""

from clientfolio.actions.exports import ExportError, ExportResult, export_segment
from clientfolio.actions.plan import ActionPlan, Reach, plan_actions
from clientfolio.actions.playbooks import (Playbook, PlaybookError, Playbooks, customer_levers, install_playbook_triggers,
                                           load_playbooks, playbook_table, playbook_triggers, trigger_subscriptions)
from clientfolio.actions.release import approve_and_carry_out, carry_out, hold_for_approval
from clientfolio.actions.sends import SendResult, act

__all__ = ["ActionPlan", "ExportError", "ExportResult", "Playbook", "PlaybookError", "Playbooks", "Reach",
           "SendResult", "act", "approve_and_carry_out", "carry_out", "customer_levers", "export_segment",
           "hold_for_approval", "install_playbook_triggers", "load_playbooks", "plan_actions", "playbook_table",
           "playbook_triggers", "trigger_subscriptions"]
