"""actions stage (see DESIGN.md)."""

from clientfolio.actions.exports import ExportError, ExportResult, export_segment
from clientfolio.actions.plan import ActionPlan, Reach, plan_actions
from clientfolio.actions.playbooks import (Playbook, PlaybookError, Playbooks, customer_levers, load_playbooks,
                                           playbook_table, playbook_triggers, trigger_subscriptions)

__all__ = ["ActionPlan", "ExportError", "ExportResult", "Playbook", "PlaybookError", "Playbooks", "Reach",
           "customer_levers", "export_segment", "load_playbooks", "plan_actions", "playbook_table",
           "playbook_triggers", "trigger_subscriptions"]
