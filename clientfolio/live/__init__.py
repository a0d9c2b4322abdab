"""The living portfolio's pure parts: why a customer is in a segment, who hears about a move, what moved.

- :mod:`~clientfolio.live.reasons`: the reason for a membership, in plain words with its numbers;
- :mod:`~clientfolio.live.triggers`: subscriptions to segment entries and exits, and outbox rows.
"""

from clientfolio.live.reasons import describe_change, explain
from clientfolio.live.triggers import Trigger, TriggerError, load_triggers, outbox_rows

__all__ = ["Trigger", "TriggerError", "describe_change", "explain", "load_triggers", "outbox_rows"]
