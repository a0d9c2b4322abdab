"""The living portfolio's pure parts: why a customer is in a segment, who hears about a move, what moved.

- :mod:`~clientfolio.live.reasons`: the reason for a membership, in plain words with its numbers;
- :mod:`~clientfolio.live.triggers`: subscriptions to segment entries and exits, and outbox rows;
- :mod:`~clientfolio.live.summary`: what changed since last time, per segment.
"""

from clientfolio.live.reasons import describe_change, explain
from clientfolio.live.summary import changes_summary, summary_lines
from clientfolio.live.triggers import Trigger, TriggerError, load_triggers, outbox_rows

__all__ = ["Trigger", "TriggerError", "changes_summary", "describe_change", "explain", "load_triggers",
           "outbox_rows", "summary_lines"]
