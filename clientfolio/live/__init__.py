"""The living portfolio: customers kept current as events arrive and days pass, every move explained.

- :mod:`~clientfolio.live.reasons`: the reason for a membership, in plain words with its numbers;
- :mod:`~clientfolio.live.triggers`: subscriptions to segment entries and exits, and outbox rows;
- :mod:`~clientfolio.live.summary`: what changed since last time, per segment;
- :mod:`~clientfolio.live.timing`: when time alone may next move each customer;
- :mod:`~clientfolio.live.portfolio`: :class:`LivePortfolio`, the store's state kept current.
"""

from clientfolio.live.portfolio import LiveError, LivePortfolio, LiveResult
from clientfolio.live.reasons import describe_change, explain
from clientfolio.live.summary import changes_summary, summary_lines
from clientfolio.live.triggers import OutboxPlan, Trigger, TriggerError, load_triggers, outbox_rows, plan_outbox

__all__ = ["LiveError", "LivePortfolio", "LiveResult", "OutboxPlan", "Trigger", "TriggerError", "changes_summary", "describe_change", "explain", "load_triggers",
           "outbox_rows", "plan_outbox", "summary_lines"]
