"""actions stage (see DESIGN.md)."""

from clientfolio.actions.exports import ExportError, ExportResult, export_segment
from clientfolio.actions.playbooks import (Playbook, PlaybookError, Playbooks, customer_levers, load_playbooks,
                                           playbook_table, playbook_triggers, trigger_subscriptions)

__all__ = ["ExportError", "ExportResult", "Playbook", "PlaybookError", "Playbooks", "customer_levers",
           "export_segment", "load_playbooks", "playbook_table", "playbook_triggers", "trigger_subscriptions"]
