"""Contact caps, read side: how often each customer was contacted and who has reached the cap.

Here (in the store layer) so that every path that contacts customers -- exports, playbook sends
and the living portfolio's outbox -- judges the cap with the same code.
:mod:`clientfolio.actions.pressure` re-exports these names and writes the contact log.

Every marketing contact that leaves clientfolio (an export row sent, a webhook, a playbook
send) is logged in `contact_log`.  A cap is a set of rolling windows, each with the most
contacts a customer may receive inside it; the default is at most 2 contacts in 7 days and 6 in
30 days (:data:`DEFAULT_CAPS`), counting every channel and every origin together, for the
purposes that are promotion (marketing and behavioural nudges; :data:`CAPPED_PURPOSES`).
A window of 7 days at a moment `at` holds the contacts with ``at - 7 days < contacted_at <= at``:
a contact exactly 7 days old has left it.  The owner's own caps live in the store (live_meta key
``contact_caps``, JSON such as ``{"7d": 2, "30d": 6}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.live import UPSERT_META, now_utc

#: The cap when the owner set none: at most 2 contacts per customer in any 7 days and 6 in any 30 days.
DEFAULT_CAPS: dict[str, int] = {"7d": 2, "30d": 6}
#: Purposes whose contacts count towards the cap (service messages such as receipts are not logged as these).
CAPPED_PURPOSES = ("marketing", "nudges")
CAPS_KEY = "contact_caps"
_WINDOW = re.compile(r"^\s*(\d+)\s*([dh])\s*$", re.IGNORECASE)


class ContactCapError(ClientfolioError):
    """A cap or a contact record that does not make sense."""


def window_length(window: str) -> timedelta:
    """'7d' -> 7 days, '24h' -> 24 hours; anything else is refused with the forms allowed."""
    m = _WINDOW.match(str(window))
    if not m or int(m.group(1)) == 0:
        raise ContactCapError(f"contact cap window {window!r} is not a length: write days or hours, "
                              "e.g. 7d or 24h")
    n, unit = int(m.group(1)), m.group(2).lower()
    return timedelta(days=n) if unit == "d" else timedelta(hours=n)


def _window_words(window: str) -> str:
    n, unit = int(_WINDOW.match(window).group(1)), _WINDOW.match(window).group(2).lower()  # type: ignore[union-attr]
    return f"{n} {'day' if unit == 'd' else 'hour'}{'s' if n != 1 else ''}"


def check_caps(caps: Mapping[str, int]) -> dict[str, int]:
    """Caps checked and ordered from the shortest window to the longest ('7d' -> at most n contacts)."""
    if not caps:
        raise ContactCapError("a contact cap needs at least one window, e.g. 7d=2")
    out: dict[str, int] = {}
    for window, limit in caps.items():
        length = window_length(window)
        ok = isinstance(limit, (int, np.integer)) and not isinstance(limit, bool) and limit >= 0
        if not ok:
            raise ContactCapError(f"contact cap {window}={limit!r}: the limit must be a whole number, 0 or more")
        n = int(limit)
        key = f"{length.days}d" if length.seconds == 0 else f"{int(length.total_seconds() // 3600)}h"
        out[key] = n
    return dict(sorted(out.items(), key=lambda kv: window_length(kv[0])))


def parse_caps(items: Sequence[str]) -> dict[str, int]:
    """Caps as typed on the command line: ['7d=2', '30d=6'] -> {'7d': 2, '30d': 6}."""
    caps: dict[str, int] = {}
    for item in items:
        window, sep, limit = str(item).partition("=")
        if not sep or not limit.strip().isdigit():
            raise ContactCapError(f"--cap {item!r}: write WINDOW=LIMIT, e.g. 7d=2 (at most 2 contacts in 7 days)")
        caps[window.strip()] = int(limit)
    return check_caps(caps)


def get_caps(store: Store) -> dict[str, int]:
    """The owner's caps from the store, or :data:`DEFAULT_CAPS` when none were set."""
    raw = store.get_meta(CAPS_KEY)
    if raw is None:
        return dict(DEFAULT_CAPS)
    try:
        return check_caps(json.loads(raw))
    except (ValueError, AttributeError):
        raise ContactCapError(f"the stored contact caps ({raw!r}) cannot be read; set them again with "
                              "`clientfolio contacts --cap 7d=2 --cap 30d=6`") from None


def set_caps(store: Store, caps: Mapping[str, int]) -> dict[str, int]:
    """Store the owner's caps (replacing the previous ones) and return them as checked."""
    checked = check_caps(caps)
    with store.transaction() as tx:
        tx.execute(UPSERT_META, [CAPS_KEY, json.dumps(checked)])
    return checked


def _utc(t: datetime | str | None) -> datetime:
    if t is None:
        return now_utc()
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _contacts(store: Store, customer_ids: Sequence[str] | None, since: datetime, until: datetime) -> pd.DataFrame:
    """Capped contacts with since < contacted_at <= until, of the given customers (None: everyone)."""
    purposes = ", ".join("?" * len(CAPPED_PURPOSES))
    sql = (f"SELECT customer_id, contacted_at FROM contact_log WHERE contacted_at > ? AND contacted_at <= ? "
           f"AND purpose IN ({purposes})")
    params: list = [since, until, *CAPPED_PURPOSES]
    if customer_ids is not None:
        sql += " AND customer_id IN (SELECT unnest(CAST(? AS TEXT[])))"
        params.append(sorted({str(c) for c in customer_ids}))
    df = store.query(sql, params)
    df["customer_id"] = df["customer_id"].astype(str)
    df["contacted_at"] = pd.to_datetime(df["contacted_at"])
    return df


def contact_pressure(store: Store, customer_ids: Sequence[str] | None = None, at: datetime | str | None = None,
                     caps: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Per customer with capped contacts in the longest window: contacts per window, whether a cap is
    reached, the reason and when the next contact is possible.

    Columns: customer_id, one ``contacts_<window>`` per window, at_cap (bool), reason (plain words,
    empty when below every cap), next_allowed (the moment the reached caps free up; NaT when below).
    Customers without such contacts are not listed (they are below every cap).
    """
    caps = check_caps(caps) if caps is not None else get_caps(store)
    at_ = _utc(at)
    if customer_ids is not None and len(customer_ids) == 0:
        return pd.DataFrame(columns=["customer_id", *(f"contacts_{w}" for w in caps), "at_cap", "reason",
                                     "next_allowed"])
    longest = max(window_length(w) for w in caps)
    log = _contacts(store, customer_ids, at_ - longest, at_)
    rows = []
    for cid, times in log.groupby("customer_id")["contacted_at"]:
        t = np.sort(times.to_numpy())
        row: dict = {"customer_id": cid}
        reasons, free = [], []
        for w, limit in caps.items():
            length = window_length(w)
            inside = t[t > np.datetime64(at_ - length)]
            row[f"contacts_{w}"] = len(inside)
            if len(inside) >= limit:
                reasons.append(f"already contacted {len(inside)} time{'s' if len(inside) != 1 else ''} in the "
                               f"last {_window_words(w)} (cap {limit})")
                # the window frees up once all but limit-1 of these contacts have left it
                k = len(inside) - limit
                free.append(pd.Timestamp(inside[k]) + length if limit > 0 else pd.NaT)
        row["at_cap"] = bool(reasons)
        row["reason"] = "; ".join(reasons)
        known = [f for f in free if not pd.isna(f)]
        row["next_allowed"] = max(known) if reasons and len(known) == len(free) else pd.NaT
        rows.append(row)
    out = pd.DataFrame(rows, columns=["customer_id", *(f"contacts_{w}" for w in caps), "at_cap", "reason",
                                      "next_allowed"])
    return out.sort_values("customer_id").reset_index(drop=True)


def over_cap(store: Store, customer_ids: Sequence[str], at: datetime | str | None = None,
             caps: Mapping[str, int] | None = None) -> dict[str, str]:
    """The customers among `customer_ids` that may not be contacted again now, each with the reason.

    Pass the result as `exclude` to an export or a delivery: these customers would exceed a cap.
    A cap of 0 in a window blocks every customer in it, contacted or not.
    """
    caps = check_caps(caps) if caps is not None else get_caps(store)
    ids = [str(c) for c in customer_ids]
    p = contact_pressure(store, ids, at, caps)
    out = dict(zip(p.loc[p["at_cap"], "customer_id"], p.loc[p["at_cap"], "reason"]))
    blocked = [w for w, n in caps.items() if n == 0]
    if blocked:
        why = f"no contacts allowed: the cap for {_window_words(blocked[0])} is 0"
        out.update({c: why for c in ids if c not in out})
    return out


def contact_allowance(store: Store, customer_ids: Sequence[str], at: datetime | str | None = None,
                      caps: Mapping[str, int] | None = None) -> dict[str, int]:
    """customer_id -> how many more capped contacts the cap allows now (0: at the cap), for every id given.

    A batch that sends several messages to one customer (the outbox of one update) uses this to
    stop at the cap instead of passing it: each message uses one.
    """
    caps = check_caps(caps) if caps is not None else get_caps(store)
    ids = sorted({str(c) for c in customer_ids})
    free = {c: min(caps.values()) for c in ids}
    if not ids:
        return free
    p = contact_pressure(store, ids, at, caps)
    for row in p.to_dict("records"):
        free[row["customer_id"]] = max(0, min(n - int(row[f"contacts_{w}"]) for w, n in caps.items()))
    return free
