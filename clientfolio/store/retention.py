"""A retention period for raw events (page views, e-mail opens, tickets): older ones are deleted.

The period is kept in live_meta (`retention_events_days`).  It is applied when it is set and
again inside every import's transaction (`run_merge`, which `import`, `analyze FILE` and `update`
all go through), so events past the period never outlive the next import.  Orders are not
touched: they are the business's accounting records, with their own legal retention.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from clientfolio.store.base import Store
from clientfolio.store.live import now_utc

RETENTION_KEY = "retention_events_days"


def event_cutoff(days: int, now: datetime | None = None) -> datetime:
    """The oldest event time kept under a retention of `days` (UTC, as the store keeps times)."""
    return (now or now_utc()) - timedelta(days=int(days))


def retention_days(store: Store) -> int | None:
    """The retention period for events in days, or None when none is set."""
    v = store.get_meta(RETENTION_KEY)
    return int(v) if v is not None else None


def set_event_retention(store: Store, days: int | None) -> int:
    """Keep events for `days` (None: keep them for ever); delete the older ones now; return how many went."""
    with store.transaction() as tx:
        tx.execute("DELETE FROM live_meta WHERE key = ?", [RETENTION_KEY])
        if days is None:
            return 0
        tx.execute("INSERT INTO live_meta (key, value) VALUES (?, ?)", [RETENTION_KEY, str(int(days))])
        cutoff = event_cutoff(days)
        n = int(tx.execute("SELECT count(*) FROM events WHERE ts < ?", [cutoff])[0][0])
        tx.execute("DELETE FROM events WHERE ts < ?", [cutoff])
    return n


def expire_events(execute: Callable[[str], None], fetch: Callable[[str], list[tuple]]) -> int:
    """Delete events past the retention period with an import's own statements; how many went."""
    row = fetch(f"SELECT value FROM live_meta WHERE key = '{RETENTION_KEY}'")
    if not row:
        return 0
    cutoff = event_cutoff(int(row[0][0]))
    when = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S}'"  # computed here, never user text
    n = int(fetch(f"SELECT count(*) FROM events WHERE ts < {when}")[0][0])
    if n:
        execute(f"DELETE FROM events WHERE ts < {when}")
    return n
