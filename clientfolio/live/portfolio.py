"""The living portfolio: a store's fitted state kept current, customer by customer, with every move explained.

The store holds the current :class:`~clientfolio.state.PortfolioState` and a ``customer_state``
table: per customer, the sufficient statistics of their history (``stat_*`` columns, see
:mod:`clientfolio.features.incremental`), the scores and segments the state gives them, and the
day time alone may next move them.  Four things change it, each in one transaction that also
appends the change log (customer, kind, from, to, when, why, cause) and the outbox rows the
subscriptions ask for:

- :meth:`LivePortfolio.update`: new orders, refunds, cancellations and events.  Only the touched
  customers' statistics change -- incrementally where they allow it (an order after the last
  one); a back-dated, edited or cancelled order rescans that customer's own history.  Idempotent
  by event key ("order:<source>:<order_id>", "event:<event_id>", "cancel:<source>:<order_id>").
- :meth:`LivePortfolio.sweep`: the moves the calendar alone causes, for the customers due.
- :meth:`LivePortfolio.adopt`: a refit -- a new state -- whose moves are recorded as cause "refit".
- :func:`start`: what ``analyze`` writes: a state and every customer's row.

Scores kept in a row are as of that customer's last update; :meth:`LivePortfolio.current`
re-applies the state to every customer's statistics at any date.
"""

from __future__ import annotations

import hashlib
import json
import re
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.features.behaviour import _slug
from clientfolio.features.incremental import (DATE_COLS, FLOAT_COLS, INT_COLS, MAP_COLS, STATS_COLUMNS, add_event,
                                              add_order, customer_stats, derive_features, empty_stats, feature_columns,
                                              stats_columns, stats_for, stats_frame, stats_rows)
from clientfolio.live.reasons import describe_change
from clientfolio.live.timing import next_change_dates
from clientfolio.live.triggers import Trigger, load_triggers, plan_outbox
from clientfolio.state import Applied, PortfolioState, value_12m
from clientfolio.state.features import ATTRIBUTES_SQL
from clientfolio.store import IDS_IN, Store
from clientfolio.store.consent import consent_map
from clientfolio.store.contacts import contact_allowance, get_caps, window_length
from clientfolio.store.live import BUMP_VERSION, now_utc
from clientfolio.store.schema import TRANSACTIONS

STAT = "stat_"  # prefix of the statistics columns in customer_state
SEG = "seg_"  # prefix of the segment columns: one per kind ("rules": the JSON list of rule segments)
LIVE_SOURCE = "live"  # `source` of orders posted through the Python API or the service without one
LIVE_IMPORT_ID = 0  # import_id of rows written by live updates (imports count from 1)
FEW = 64  # customers: up to this many, rows are built with plain Python (pandas' per-call cost dominates)
KEPT_COLUMNS = ("p_alive", "churn_risk", "expected_purchases", "expected_spend", "clv", "clv_low", "clv_high",
                "next_order_date", "value_score", "R", "F", "M", "RFM", "days_since_last", "rhythm_days", "orders",
                "revenue", "value_12m", "revenue_12m", "frequency", "recency", "T", "orders_per_month", "quadrant",
                "last_gap", "monetary", "aov", "profit", "top_category", "top_channel", "discount_share",
                "support_tickets", "cart_abandons", "consent_marketing", "forecast_note",
                "mean_sentiment", "negative_share", "texts_scored")  # the last three: where customers write


TEXT_FEATURES = ("mean_sentiment", "negative_share", "texts_scored")  # = clientfolio.predict.sentiment.FEATURES
# Store column names are lower-case; the customer table's few upper-case names are kept under these.
STORED_NAMES = {"R": "rfm_r", "F": "rfm_f", "M": "rfm_m", "RFM": "rfm_code", "T": "t_days"}
READ_NAMES = {v: k for k, v in STORED_NAMES.items()}
_ONE_DAY, _YEAR = pd.Timedelta(days=1), pd.Timedelta(days=365)  # made once: a Timedelta costs microseconds


class LiveError(ClientfolioError):
    """The living portfolio cannot do what was asked (no fitted state, a malformed event)."""


@dataclass
class LiveResult:
    """What an update, sweep or refit did: the changes it recorded, and counts for people.

    ``changes`` is the change log rows as a DataFrame (`CHANGE_COLUMNS`).  A per-event update keeps them
    as the rows it wrote and makes the frame when ``changes`` is first read: pandas' cost of a one-row
    frame (about half a millisecond) is paid by a caller who looks, not by every event.
    """

    changes: pd.DataFrame = None  # type: ignore[assignment]  # a property (below): set a frame, read a frame
    customers_touched: int = 0
    events_applied: int = 0
    events_skipped: int = 0  # already applied before: idempotent
    rescanned: int = 0  # customers whose history was read again (back-dated, edited or cancelled orders)
    rescanned_ids: list[str] = field(default_factory=list)  # who they are (a grouped update answers each request)
    outbox: int = 0
    outbox_left_out: dict[str, int] = field(default_factory=dict)  # reason -> messages not written (consent, cap)
    notes: list[str] = field(default_factory=list)
    durable: bool = True  # False while a buffered update waits for its flush (change ids are given then)

    def set_change_rows(self, rows: list[dict], change_ids: list[int] | None) -> None:
        """The changes as the rows written (dicts of `CHANGE_COLUMNS`), numbered with their ids once committed;
        the frame is made when ``changes`` is read."""
        self._frame = None
        self._rows = (rows, change_ids)


def _read_changes(self: LiveResult) -> pd.DataFrame:
    frame = self.__dict__.get("_frame")
    if frame is None:
        rows, ids = self.__dict__.get("_rows") or ([], None)
        frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS) if rows else no_changes()
        if rows and ids:
            frame = frame.assign(change_id=ids)
        self._frame, self._rows = frame, None
    return frame


def _set_changes(self: LiveResult, frame: pd.DataFrame | None) -> None:
    self._frame, self._rows = frame, None


LiveResult.changes = property(_read_changes, _set_changes)  # type: ignore[assignment]  # after @dataclass made __init__


# ---------------------------------------------------------------------------- rows of the state table

def segment_columns(segments: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """Memberships as one column per kind, indexed by customer (rule segments: a sorted JSON list)."""
    out = pd.DataFrame(index=ids)
    if segments.empty:
        return out
    if len(ids) <= FEW:
        return _few_segment_columns(segments, ids)
    # NumPy instead of a pivot: each kind's column filled at the positions of its customers.  Kinds, segments
    # and ids are matched as integer codes, and a column holds the few distinct segment names, not one Python
    # string per membership (ten memberships per customer: ~0.5 kB per customer less at a million customers).
    kind_codes, kind_names = pd.factorize(segments["segment_kind"])
    seg_codes, seg_names = pd.factorize(segments["segment"])
    names = np.asarray(seg_names, dtype=object)
    names[pd.isna(names)] = np.nan  # pd.NA of a string segment reads as missing, like the pivot's NaN
    names = np.append(names, np.nan)  # code -1 (a missing segment) -> the last entry
    pos = _positions(ids, segments["customer_id"])
    for kind in sorted(set(kind_names.tolist()) - {"rules"}):
        at = np.flatnonzero((kind_codes == kind_names.get_loc(kind)) & (pos >= 0))
        first = np.unique(pos[at], return_index=True)[1]  # one membership per customer: the first, as drop_duplicates
        col = np.full(len(ids), np.nan, dtype=object)
        col[pos[at[first]]] = names[seg_codes[at[first]]]
        out[SEG + kind] = col
    rules = segments[kind_codes == (kind_names.get_loc("rules") if "rules" in kind_names else -2)]
    if len(rules):
        lists = rules.groupby("customer_id")["segment"].agg(lambda s: json.dumps(sorted(map(str, s))))
        out[SEG + "rules"] = lists.reindex(ids).fillna("[]").to_numpy()
    return out


def _positions(ids: pd.Index, values: pd.Series) -> np.ndarray:
    """`ids.get_indexer(values)` for unique ids, through one factorisation of both (no Python string per row)."""
    if not ids.is_unique or ids.dtype != values.dtype:
        return ids.get_indexer(pd.Index(values.to_numpy(dtype=object)))  # (non-unique ids: raises, as it did)
    codes, _ = pd.factorize(pd.concat([pd.Series(ids), values], ignore_index=True))
    where = np.full(int(codes.max(initial=-1)) + 2, -1, dtype=np.int64)  # the last entry: code -1 (missing)
    where[codes[:len(ids)]] = np.arange(len(ids))
    return where[codes[len(ids):]]


def _few_segment_columns(segments: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """`segment_columns` for a few customers: plain Python instead of a pivot (the same columns and values)."""
    single: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[str]] = {}
    has_rules = False
    for cid, kind, seg in zip(segments["customer_id"].tolist(), segments["segment_kind"].tolist(),
                              segments["segment"].tolist()):
        if kind == "rules":
            has_rules = True
            rules.setdefault(cid, []).append(str(seg))
        else:
            single.setdefault(kind, {}).setdefault(cid, seg)  # the first membership, as drop_duplicates keeps
    cols: dict[str, Any] = {}
    for kind in sorted(single):
        vals = single[kind]
        col = np.empty(len(ids), dtype=object)
        col[:] = [_or_nan(vals.get(c)) for c in ids]
        cols[SEG + kind] = col
    if has_rules:
        cols[SEG + "rules"] = [json.dumps(sorted(rules.get(c, []))) for c in ids]
    return pd.DataFrame(cols, index=ids)


def _stats_with_prefix(stats: pd.DataFrame) -> pd.DataFrame:
    return stats.set_index("customer_id")[STATS_COLUMNS[1:]].add_prefix(STAT)


def _stats_from_rows(rows: pd.DataFrame) -> pd.DataFrame:
    cols = {STAT + c: c for c in STATS_COLUMNS[1:]}
    kept = [c for c in TEXT_FEATURES if c in rows.columns]  # sentiment: kept like a statistic (clientfolio.live.texts)
    return rows[["customer_id", *cols, *kept]].rename(columns=cols)


def state_rows(stats: pd.DataFrame, applied: Applied | None, as_of: pd.Timestamp, next_change: pd.Series | None,
               state_id: int) -> pd.DataFrame:
    """customer_state rows: statistics, kept scores, segment columns, as_of, next change, state id."""
    ids = pd.Index(stats["customer_id"].astype(str), name="customer_id")
    out = _stats_with_prefix(stats).reindex(ids)
    if applied is not None and len(applied.customers):
        c = applied.customers.set_index("customer_id")
        kept = [col for col in KEPT_COLUMNS if col in c]
        # one concatenation, not two joins: each join copied every column gathered so far
        out = pd.concat([out, c[kept].reindex(ids), segment_columns(applied.segments, ids)], axis=1)
    out["as_of"] = pd.Timestamp(as_of)
    out["next_change"] = next_change.reindex(ids) if next_change is not None else pd.NaT
    out["state_id"] = int(state_id)
    return out.rename(columns=STORED_NAMES).reset_index()


# ---------------------------------------------------------------------------- the living portfolio

class LivePortfolio:
    """A store's current state, applied customer by customer as events arrive and days pass."""

    def __init__(self, store: Store, triggers: Any = None, *, buffered: bool = False, flush_every: int = 256,
                 recheck_seconds: float = 1.0) -> None:
        """`buffered`: keep what per-event updates read in memory and write them behind, many events per
        transaction (see :mod:`clientfolio.live.memory`; `flush_every` events at most wait for a flush, and
        the store's version is read at most every `recheck_seconds` before serving from memory)."""
        self._memory: Any = None
        loaded = store.load_state()
        if loaded is None:
            raise LiveError("this store has no fitted portfolio yet: run `clientfolio analyze --store STORE` "
                            "(or clientfolio.analyze(store=...)) once, then update it")
        meta, body = loaded
        self.store = store
        self.state_id = int(meta["state_id"])
        self.state = PortfolioState.from_json(body)
        self._unkept: list[str] | None = None  # kept columns this store's customer_state has no place for
        if triggers is not None:
            self.set_triggers(triggers)
        text = store.get_meta("triggers")
        self.triggers: list[Trigger] = load_triggers(json.loads(text)) if text else []
        if buffered:
            from clientfolio.live.memory import Memory

            self._memory = Memory(self, flush_every=flush_every, recheck_seconds=recheck_seconds)

    # -- write-behind -------------------------------------------------------------------------------
    @property
    def buffered(self) -> bool:
        """Does this portfolio keep per-event reads in memory and write behind (see :mod:`clientfolio.live.memory`)?"""
        return self._memory is not None

    def flush(self) -> int:
        """Write every buffered update in ONE transaction; returns how many events it made durable (0 unbuffered)."""
        return self._memory.flush() if self._memory is not None else 0

    def pending(self) -> int:
        """Buffered events not yet written (0 unbuffered)."""
        return self._memory.pending_events() if self._memory is not None else 0

    def close(self) -> None:
        """Flush what is buffered; the portfolio stays usable."""
        self.flush()

    def __enter__(self) -> "LivePortfolio":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _settle(self) -> None:
        """Before a whole-store operation (sweep, refit, catch-up): write what is buffered."""
        if self._memory is not None:
            self._memory.flush()

    def _forget(self) -> None:
        """After a whole-store operation: the in-memory copy is read again before its next use."""
        if self._memory is not None:
            self._memory.invalidate()

    # -- settings ---------------------------------------------------------------------------------
    def set_triggers(self, source: Any) -> list[Trigger]:
        """Check and keep the subscriptions (YAML file, text or list); later changes follow them."""
        triggers = load_triggers(source)
        self._settle()
        doc = [t.as_dict() for t in triggers]
        self.store.commit_live(state_rows=None, changes=None, outbox=None, meta={"triggers": json.dumps(doc)})
        self.triggers = triggers
        return triggers

    # -- applying the state -------------------------------------------------------------------------
    def _categories(self, stats: pd.DataFrame) -> list[str]:
        """The shop's category names whose share columns the state was fitted with, in its order."""
        wanted = list(self.state.categories_)
        names: dict[str, str] = {}
        for text in stats["category_spend"].dropna():
            for name in json.loads(text) if isinstance(text, str) else text:
                names.setdefault(_slug(name), name)
        return [names[s] for s in wanted if s in names]

    def features(self, stats: pd.DataFrame, as_of: pd.Timestamp, v12: pd.DataFrame | None = None,
                 attrs: pd.DataFrame | None = None, categories: list[str] | None = None) -> pd.DataFrame:
        """The features `apply` reads, from statistics (no history scan) plus attributes and 12-month value.

        `v12`, `attrs` and `categories` may be given when the caller already has them (the
        next-change probes apply the same customers at nine dates).
        """
        flags = self.state.feature_flags_
        buyers = stats[stats["n_days"] > 0]
        if categories is None:
            categories = self._categories(stats)
        f = derive_features(buyers, as_of, categories=categories, has_discounts=flags["discounts"],
                            has_events=flags["events"], has_channels=flags["channels"])
        for slug in self.state.categories_:  # a category none of these customers bought still has its column
            if f"share_{slug}" not in f:
                f[f"share_{slug}"] = 0.0
        if self.state.categories_ and "top_category" not in f:  # none bought a category: no favourite, as a rescan
            f["top_category"] = pd.Series([None] * len(f), dtype="str")
        ids = list(f["customer_id"])
        if attrs is None:
            attrs = self._attributes(ids)
        if v12 is None:
            v12 = value_12m(self.store, as_of, ids)
        f = f.merge(attrs, on="customer_id", how="left").merge(v12, on="customer_id", how="left")
        f[["value_12m", "revenue_12m"]] = f[["value_12m", "revenue_12m"]].fillna(0.0)
        if flags.get("sentiment"):
            f = self._texts(f, buyers, as_of)
        f.attrs.update({"cutoff": pd.Timestamp(as_of), "unit": "D", "unit_days": 1.0})
        return f

    def _texts(self, f: pd.DataFrame, stats: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        """`f` with the customers' sentiment: kept in their statistics, or read from the store when the rows
        do not have it yet (a refit that brings sentiment to a store whose rows predate it)."""
        from clientfolio.live.texts import carried

        if all(c in stats.columns for c in TEXT_FEATURES):
            return carried(f, stats)
        from clientfolio.state.features import with_sentiment

        return carried(f, with_sentiment(self.store, f[["customer_id"]], as_of))

    def _attributes(self, ids: list[str]) -> pd.DataFrame:
        if not ids:
            return self.store.query(ATTRIBUTES_SQL + " WHERE FALSE")
        return self.store.query(ATTRIBUTES_SQL + f" WHERE {IDS_IN}", [[str(c) for c in ids]])

    def _rule_transactions(self, ids: list[str], extra: pd.DataFrame | None = None) -> pd.DataFrame | None:
        if self.state.rules_ is None:
            return None
        cols = "SELECT customer_id, source, order_id, ts, amount, is_refund FROM transactions"
        tx = (self.store.query(f"{cols} WHERE {IDS_IN}", [[str(c) for c in ids]]) if ids
              else self.store.query(f"{cols} WHERE FALSE"))
        if extra is not None and len(extra):
            tx = pd.concat([tx, extra[tx.columns]], ignore_index=True)
        return tx

    def apply(self, stats: pd.DataFrame, as_of: pd.Timestamp, v12: pd.DataFrame | None = None,
              extra_tx: pd.DataFrame | None = None, segments_only: bool = False, attrs: pd.DataFrame | None = None,
              categories: list[str] | None = None, rule_tx: pd.DataFrame | None = None) -> Applied:
        """The state applied to these customers' statistics at `as_of` (`segments_only`: no simulated ranges
        and no next order date, for the next-change probes; `rule_tx`: their transactions, already read)."""
        f = self.features(stats, as_of, v12, attrs=attrs, categories=categories)
        ids = list(f["customer_id"])
        if rule_tx is None:
            rule_tx = self._rule_transactions(ids, extra_tx)
        return self.state.apply(f, as_of, transactions=rule_tx,
                                intervals=not segments_only, next_order=not segments_only)

    def current(self, as_of: pd.Timestamp | None = None) -> Applied:
        """Every customer scored and segmented at `as_of` (default: the last sweep or update date)."""
        rows = self.store.read_customer_state()
        as_of = pd.Timestamp(as_of or rows["as_of"].max()).normalize()
        return self.apply(_stats_from_rows(rows), as_of)

    def _next_changes(self, base: pd.DataFrame, as_of: pd.Timestamp, lines: pd.DataFrame | None = None) -> pd.Series:
        """Each customer's next change date by time alone, from their features at `as_of` (see
        :mod:`clientfolio.live.timing`); `lines`: their `_window_lines`, if already read."""
        if lines is None:
            lines = self._window_lines(list(base["customer_id"].astype(str)), as_of)
        return next_change_dates(self.state, base, as_of, lines)

    def _window_lines(self, ids: list[str], as_of: pd.Timestamp) -> pd.DataFrame:
        """Revenue and value (amount - cost) of each customer's order days in the 12 months up to `as_of`
        (summed over the days: ``value_12m``'s numbers)."""
        end = f"DATE '{pd.Timestamp(as_of).date().isoformat()}'"
        where = f"{IDS_IN} AND " if ids else "FALSE AND "
        return self.store.query(f"""SELECT customer_id, CAST(ts AS DATE) AS day, sum(amount) AS revenue,
                                           sum(amount) - coalesce(sum(cost), 0) AS value
                                    FROM transactions WHERE {where}ts >= CAST({end} - 365 AS TIMESTAMP)
                                      AND ts < CAST({end} + 1 AS TIMESTAMP) GROUP BY customer_id, CAST(ts AS DATE)""",
                                [[str(i) for i in ids]] if ids else [])

    # -- recording moves --------------------------------------------------------------------------
    def _changes(self, old: pd.DataFrame, new: pd.DataFrame, when: Any, cause: str,
                 keys: dict[str, str] | None = None, why_left: dict[str, str] | None = None) -> pd.DataFrame:
        """Change rows between old and new state rows (indexed by customer), with reasons.

        `why_left`: for customers who leave every segment (nothing left to score), the reason.

        Whole segment columns are compared first; reasons are built only for the customers who
        moved (a sweep or refit compares a million rows, and few of them move).
        """
        old, new = old.rename(columns=READ_NAMES), new.rename(columns=READ_NAMES)
        cols = ["customer_id", "segment_kind", "from_segment", "to_segment", "changed_at", "cause", "reason",
                "state_id", "event_key"]
        kinds = sorted({c for c in old.columns if c.startswith(SEG)} | {c for c in new.columns if c.startswith(SEG)})
        if new.empty or not kinds:
            return pd.DataFrame([], columns=cols)
        present = new.index.isin(old.index)
        before_all = old.reindex(new.index) if len(old) else pd.DataFrame(index=new.index)
        moved_pos: set[int] = set()
        for col in kinds:
            a = _seg_strings(new[col] if col in new else None, len(new))
            b = _seg_strings(before_all[col] if col in before_all else None, len(new))
            b[~present] = None
            moved_pos.update(np.flatnonzero(a != b).tolist())
        rows: list[dict] = []
        thresholds = self.state.thresholds()
        order = sorted(moved_pos)
        moved_ids = new.index[order]
        after_recs = _records(new.iloc[order])  # one conversion for all moved rows, not one per row
        had = [cid for cid, pos in zip(moved_ids, order) if present[pos]]
        before_recs = dict(zip(had, _records(old.loc[had]))) if had else {}
        for cid, after_rec in zip(moved_ids, after_recs):
            self._moves(rows, cid, before_recs.get(cid), after_rec, kinds, thresholds, when, cause, keys, why_left)
        return pd.DataFrame(rows, columns=cols)

    def _moves(self, rows: list[dict], cid: str, before_rec: dict | None, after_rec: dict, kinds: list[str],
               thresholds: dict, when: Any, cause: str, keys: dict[str, str] | None,
               why_left: dict[str, str] | None) -> None:
        """Append one customer's change rows (one per segment kind that moved, with its reason) to `rows`."""
        for col in kinds:
            kind = col.removeprefix(SEG)
            a = _seg_text(after_rec.get(col))
            b = _seg_text(before_rec.get(col)) if before_rec is not None else None
            if kind == "rules":
                a_set, b_set = set(json.loads(a or "[]")), set(json.loads(b or "[]"))
                moves = [(None, x) for x in sorted(a_set - b_set)] + [(x, None) for x in sorted(b_set - a_set)]
            else:
                moves = [(b, a)] if a != b else []
            for frm, to in moves:
                after = {**after_rec, "segment": to}
                before = {**before_rec, "segment": frm} if before_rec is not None else None
                reason = describe_change(kind, before, after, thresholds, self.state.currency)
                if to is None and why_left and cid in why_left:
                    reason = f"{reason}: {why_left[cid]}"
                rows.append({"customer_id": cid, "segment_kind": kind, "from_segment": frm, "to_segment": to,
                             "changed_at": pd.Timestamp(when if not isinstance(when, dict) else when[cid]),
                             "cause": cause, "reason": reason, "state_id": self.state_id,
                             "event_key": (keys or {}).get(cid)})

    def _outbox(self, changes: pd.DataFrame, pending: pd.DataFrame | None = None
                ) -> tuple[pd.DataFrame | None, dict[str, int]]:
        """The outbox rows of these changes, with consent per subscription's purpose and channel decided
        by the store (clientfolio.store.consent) and the contact cap applied (contacts logged, plus capped
        messages still waiting in the outbox); and who was left out, counted by reason."""
        if not self.triggers or changes.empty:
            return None, {}
        kinds = {t.segment_kind for t in self.triggers}
        ids = sorted(set(changes.loc[changes["segment_kind"].isin(kinds), "customer_id"].astype(str)))
        if not ids:
            return None, {}
        pairs = {(t.purpose, t.channel) for t in self.triggers if t.only_with_consent}
        consent_by = {(p, c): consent_map(self.store, ids, p, c) for p, c in sorted(pairs)}
        allowance = None
        capped = sorted({t.action for t in self.triggers if t.capped})
        if capped:
            at = pd.to_datetime(changes["changed_at"]).max()
            allowance = contact_allowance(self.store, ids, at=None if pd.isna(at) else at)
            # messages queued but not yet delivered are contacts about to happen (the deliverer logs them
            # in contact_log when it sends them, and then they count there)
            end = pd.Timestamp(now_utc()) if pd.isna(at) else pd.Timestamp(at)
            end = end.tz_convert("UTC").tz_localize(None) if end.tzinfo is not None else end
            since = end - max(window_length(w) for w in get_caps(self.store))
            waiting = self.store.query(f"SELECT customer_id, count(*) AS n FROM outbox WHERE delivered_at IS NULL "
                                       f"AND created_at > ? AND action IN ({', '.join('?' * len(capped))}) "
                                       f"AND {IDS_IN} GROUP BY customer_id",
                                       [since.to_pydatetime(), *capped, ids])
            for cid, n in zip(waiting["customer_id"].astype(str), waiting["n"]):
                allowance[cid] = max(0, allowance.get(cid, 0) - int(n))
            if pending is not None and len(pending):  # buffered messages, not written yet, wait all the same
                mine = pending[pending["action"].isin(capped) & pending["customer_id"].astype(str).isin(ids)]
                for cid, n in mine.groupby(mine["customer_id"].astype(str)).size().items():
                    allowance[cid] = max(0, allowance.get(cid, 0) - int(n))
        plan = plan_outbox(changes.reset_index(drop=True), self.triggers, None, consent_by=consent_by,
                           allowance=allowance)
        if plan.rows.empty:
            return None, plan.left_out
        return plan.rows.rename(columns={"change_index": "change_id"}), plan.left_out

    def _kept_only(self, rows: Any) -> Any:
        """`rows` without the sentiment columns when this store's customer_state has none (set up before
        they existed: live updates then read a customer's texts instead, :mod:`clientfolio.live.texts`)."""
        if self._unkept is None:
            have = set(self.store.customer_state_columns())
            self._unkept = [c for c in TEXT_FEATURES if c not in have]
        if not self._unkept:
            return rows
        if isinstance(rows, list):
            for r in rows:
                for c in self._unkept:
                    r.pop(c, None)
            return rows
        return rows.drop(columns=self._unkept, errors="ignore")

    def _commit(self, rows: pd.DataFrame, old: pd.DataFrame, when: Any, cause: str, keys: dict | None = None,
                why_left: dict[str, str] | None = None, **kw: Any) -> tuple[pd.DataFrame, int, dict[str, int]]:
        rows = self._kept_only(rows)
        new = rows.set_index("customer_id")
        changes = self._changes(old, new, when, cause, keys, why_left)
        outbox, left_out = self._outbox(changes)
        ids = self.store.commit_live(state_rows=rows, changes=changes if len(changes) else None, outbox=outbox, **kw)
        if len(changes):
            changes = changes.assign(change_id=ids)
        return changes, 0 if outbox is None else len(outbox), left_out

    # -- updates ----------------------------------------------------------------------------------
    def update(self, orders: pd.DataFrame | None = None, events: pd.DataFrame | None = None, *,
               cancellations: list[tuple[str, str]] | None = None, as_of: Any = None,
               durable: bool = True) -> LiveResult:
        """Apply new orders (and refunds), cancellations and events; record who moved and why.

        ``orders``: one row per order line with ``customer_id``, ``order_id``, ``ts``, ``amount``
        (negative with ``is_refund`` for a refund) and optionally ``source``, ``line_key``,
        ``category``, ``channel``, ``discount``, ``cost``, ``cost_to_serve``, ``quantity``,
        ``product_id``.  ``events``: ``event_id``, ``customer_id``, ``ts``, ``type``,
        ``properties``.  ``cancellations``: (source, order_id) pairs whose lines are removed.
        Customers are scored at `as_of` (default: the day of the latest event given).

        On a buffered portfolio (``LivePortfolio(store, buffered=True)``) an update is computed from
        the in-memory copy and written behind: with ``durable=True`` (the default) it is flushed before
        this returns, as unbuffered; with ``durable=False`` it returns at once with ``durable`` False
        and no change ids, and **is not in the store until a flush commits** (every `flush_every`
        events, :meth:`flush`, :meth:`close`): a crash before then loses it whole, never half of it.
        If the flush finds the store changed by another writer, the buffered events are computed
        again from the store and the same result objects are filled with what was written.
        """
        if self._memory is not None:
            return self._memory.update(orders, events, cancellations, as_of, durable)
        tx = _canonical_orders(orders) if orders is not None and len(orders) else None
        ev = _canonical_events(events) if events is not None and len(events) else None
        cancels = [(str(s), str(o)) for s, o in (cancellations or [])]
        return self._apply_batch(tx, ev, cancels, as_of, stored_import=None)

    def catch_up(self, as_of: Any = None) -> LiveResult:
        """Fold into the state the rows that imports added since it was last brought up to date.

        `clientfolio update FILE` imports the file (with the usual row accounting) and then calls
        this; if the process stopped in between, the next update or sweep does it.  An import that
        replaced stored rows, or added lines to an order stored before, rescans those customers.
        """
        self._settle()
        self._forget()
        applied = int(self.store.get_meta("applied_import") or 0)
        latest = int(self.store.query("SELECT coalesce(max(import_id), 0) AS n FROM imports")["n"].iloc[0])
        if latest <= applied:
            return LiveResult(changes=self._changes(pd.DataFrame(), pd.DataFrame(), None, "behaviour"))
        tx = self.store.query(f"SELECT * FROM transactions WHERE import_id > {applied} AND customer_id IS NOT NULL")
        ev = self.store.query(f"SELECT * FROM events WHERE import_id > {applied} AND customer_id IS NOT NULL")
        return self._apply_batch(tx if len(tx) else None, ev if len(ev) else None, [], as_of, stored_import=latest,
                                 since_import=applied)

    def _apply_batch(self, tx: pd.DataFrame | None, ev: pd.DataFrame | None, cancels: list[tuple[str, str]],
                     as_of: Any, stored_import: int | None, since_import: int = 0) -> LiveResult:
        """The one way a batch of orders, events and cancellations reaches the state (see `update`).

        `stored_import`: the rows are already in the store (imports up to this id), so they are
        not written again and are keyed by the import; otherwise they are written with the state.
        """
        keyed = keyed_items(tx, ev)  # event key -> (kind, payload)
        for src, oid in cancels:
            keyed[f"cancel:{src}:{oid}"] = ("cancel", (src, oid))
        done = self.store.applied_event_keys(list(keyed))
        todo = {k: v for k, v in keyed.items() if k not in done}
        result = LiveResult(changes=no_changes(),
                            events_skipped=len(keyed) - len(todo))
        if not todo:
            return result
        # Who is touched: customers of the orders and events, and of the cancelled orders.
        touched: dict[str, pd.Timestamp] = {}
        cancel_owner: dict[tuple[str, str], str] = {}
        for kind, payload in todo.values():
            if kind == "order":
                for line in payload:
                    cid, ts = line["customer_id"], line["ts"]
                    touched[cid] = max(touched.get(cid, pd.Timestamp(ts)), pd.Timestamp(ts))
            elif kind == "event":
                cid = str(payload["customer_id"])
                touched[cid] = max(touched.get(cid, pd.Timestamp(payload["ts"])), pd.Timestamp(payload["ts"]))
        if cancels:
            # Through the order index (schema version 8) with plain id lists; the exact pairs are kept here.
            oids, srcs = sorted({o for _, o in cancels}), sorted({src for src, _ in cancels})
            _, found = self.store.fetch(stored_orders_sql(len(oids), len(srcs), owner=True), oids + srcs)
            wanted = set(cancels)
            for src, oid, cid in found:
                if (src, oid) not in wanted:
                    continue
                cancel_owner[(src, oid)] = cid
                touched.setdefault(cid, pd.Timestamp.now(tz="UTC").tz_localize(None))
        ids = sorted(touched)
        if stored_import is None and not cancels and len(ids) <= FEW:
            few = self._apply_few(todo, touched, tx, ev, as_of, result)
            if few is not None:
                return few
        old = self.store.read_customer_state(ids).set_index("customer_id")
        stats = {r["customer_id"]: r for r in stats_rows(_stats_from_rows(old.reset_index()))} if len(old) else {}
        rescan: set[str] = {cid for (src, oid), cid in cancel_owner.items()}
        existing = self._existing_orders(tx, since_import) if tx is not None else set()
        if stored_import is not None and self._import_replaced_rows(since_import):
            rescan |= set(ids)  # stored rows were replaced: what they contributed cannot be subtracted
        for key, (kind, payload) in sorted(todo.items(), key=lambda kv: _when(kv[1])):
            if kind == "order":
                cid = str(payload[0]["customer_id"])
                if cid in rescan:
                    continue
                if (payload[0]["source"], payload[0]["order_id"]) in existing:
                    rescan.add(cid)  # an edit of a stored order: its old lines go, so read the history again
                    continue
                new = add_order(stats.get(cid), cid, payload)
                if new is None:
                    rescan.add(cid)  # dated before their last purchase day
                else:
                    stats[cid] = new
            elif kind == "event":
                cid = str(payload["customer_id"])
                if cid not in rescan:
                    stats[cid] = add_event(stats.get(cid), payload)
        # Stored lines that go in this transaction: cancelled orders, and edited ones (their new lines replace them).
        drop = cancels + sorted(existing)
        if tx is not None and cancels:
            tx = tx[~tx.set_index(["source", "order_id"]).index.isin(cancels)]
        # Scored at the latest of the events and of what the customers' rows already stand at (a back-dated
        # order does not move a customer back in time).
        latest = max(touched.values()).normalize()
        if len(old) and old["as_of"].notna().any():
            latest = max(latest, pd.Timestamp(old["as_of"].max()).normalize())
        day = pd.Timestamp(as_of).normalize() if as_of is not None else latest
        frame = stats_frame([stats[c] for c in ids if c in stats and c not in rescan])
        if rescan:
            fresh = stats_for_without(self.store, sorted(rescan), tx, ev, drop)
            # Customers with nothing left (their only order cancelled) keep a row of empty statistics.
            gone = sorted(set(rescan) - set(fresh["customer_id"]))
            if gone:
                fresh = pd.concat([fresh, stats_frame([empty_stats(c) for c in gone])], ignore_index=True)
            frame = pd.concat([frame, fresh], ignore_index=True) if len(frame) else fresh
        if self.state.feature_flags_.get("sentiment"):  # texts among the events folded into the kept sentiment
            from clientfolio.live.texts import with_folded

            frame = with_folded(self.store, frame, old, ev, stored=stored_import is not None)
        buyers = frame[frame["n_days"] > 0]
        applied = None
        if len(buyers):
            applied = self.apply(buyers, day, v12=self._v12_with(buyers["customer_id"].tolist(), day, tx, drop),
                                 extra_tx=tx)
        # No purchase left (every order cancelled or refunded away): no scores, no segments, and the
        # moves out of their segments say why.
        emptied = {c: "no purchases left" + (" after the cancellation" if c in cancel_owner.values() else "")
                   for c in frame.loc[frame["n_days"] == 0, "customer_id"].astype(str)}
        nxt = None if applied is None else pd.Series(day + pd.Timedelta(days=1),
                                                     index=applied.customers["customer_id"].astype(str))
        rows = state_rows(frame, applied, day, nxt, self.state_id)
        keys = {}
        for key, (kind, payload) in todo.items():
            cid = (str(payload[0]["customer_id"]) if kind == "order" else str(payload["customer_id"])
                   if kind == "event" else cancel_owner.get(payload))
            if cid is not None:
                keys[cid] = key
        when = {cid: touched[cid] for cid in ids}
        if stored_import is None:
            write = {"transactions": tx, "events": ev, "delete_orders": drop}
        else:  # already stored by the import; event keys of imported rows are the import's
            write = {"meta": {"applied_import": str(stored_import)}}
        write.update(self._predictions(ids, day, *((tx, ev, drop) if stored_import is None else ())))
        changes, n_out, left_out = self._commit(rows, old, when, "behaviour", keys, why_left=emptied,
                                                event_keys=list(todo) if stored_import is None else [], **write)
        result.changes, result.outbox, result.outbox_left_out = changes, n_out, left_out
        result.customers_touched, result.events_applied, result.rescanned = len(ids), len(todo), len(rescan)
        result.rescanned_ids = sorted(rescan)
        return result

    def _apply_few(self, todo: dict[str, tuple[str, Any]], touched: dict[str, pd.Timestamp],
                   tx: pd.DataFrame | None, ev: pd.DataFrame | None, as_of: Any, result: LiveResult
                   ) -> LiveResult | None:
        """`_apply_batch` for a few customers whose new orders and events apply incrementally: the same
        statistics, the state applied with :meth:`PortfolioState.apply_columns` (NumPy, no DataFrame), the
        same change rows, written as dicts in one commit.  None when a customer needs their history read
        again (an edited or back-dated order): the general path does that."""
        plan = self._plan_few(todo, touched, tx, ev, as_of, StoreReads(self))
        if plan is None:
            return None
        change_ids = self.store.commit_live(state_rows=self._kept_only(plan.rows), changes=plan.changes or None,
                                            outbox=plan.outbox, event_keys=list(todo), transactions=tx, events=ev,
                                            delete_orders=[], **self._predictions(plan.ids, plan.day, tx, ev))
        return plan.result(result, change_ids)

    def _plan_few(self, todo: dict[str, tuple[str, Any]], touched: dict[str, pd.Timestamp],
                  tx: pd.DataFrame | None, ev: pd.DataFrame | None, as_of: Any, reads: "StoreReads"
                  ) -> "FewPlan | None":
        """What `_apply_few` writes, computed from what `reads` gives (the store, or an in-memory copy of it:
        :mod:`clientfolio.live.memory`); None when the general path must do it."""
        ids = sorted(touched)
        cols, old = reads.rows(ids)
        day0 = pd.Timestamp(as_of).normalize() if as_of is not None else None
        if day0 is None:
            latest = max(touched.values()).normalize()
            olds = [pd.Timestamp(r["as_of"]) for r in old.values() if not _missing(r.get("as_of"))]
            day0 = max([latest, *(o.normalize() for o in olds)])
        got = reads.v12_edited(ids, tx, day0)
        if got is None:
            return None  # what the 12-month value needs is not at hand
        v12, edited = got
        if edited:
            return None  # an edit of a stored order: its old lines go, so its customer's history is read again
        stats = {cid: _stats_of_record(rec) for cid, rec in old.items()}
        for key, (kind, payload) in sorted(todo.items(), key=lambda kv: _when(kv[1])):
            if kind == "order":
                cid = str(payload[0]["customer_id"])
                new = add_order(stats.get(cid), cid, payload)
                if new is None:
                    return None  # dated before their last purchase day: the general path rescans them
                stats[cid] = new
            elif kind == "event":
                cid = str(payload["customer_id"])
                stats[cid] = add_event(stats.get(cid), payload)
        day = day0  # the latest of the events and of what the rows stand at, as `_apply_batch` scores
        rows = [stats[c] for c in ids if c in stats]
        buyers = [r for r in rows if r["n_days"] > 0]
        if any(r["last_day"] is not None and pd.Timestamp(r["last_day"]) > day for r in buyers) or any(
                r["last_event_ts"] is not None and pd.Timestamp(r["last_event_ts"]) >= day + _ONE_DAY
                for r in buyers):
            return None  # purchases or events after the scoring day: the general path says why it cannot score them
        applied: tuple[dict[str, np.ndarray], list[tuple[str, str, Any]]] | None = None
        if buyers:
            f = self._few_features(buyers, day, tx, v12, reads)
            if self.state.feature_flags_.get("sentiment"):  # texts among the events folded into the kept sentiment
                from clientfolio.live.texts import folded, new_scores

                f.update(folded(self.store, [str(c) for c in f["customer_id"]], old, new_scores(ev)))
            rule_tx = reads.rule_tx(list(f["customer_id"]), tx) if self.state.rules_ is not None else None
            applied = self.state.apply_columns(f, day, transactions=rule_tx)
        emptied = {str(r["customer_id"]): "no purchases left" for r in rows if r["n_days"] == 0}
        new_rows = _few_state_rows(rows, applied, day, self.state_id)
        # change rows, as `_changes` gives them
        kinds = sorted(_seg_keys(cols).union(*(_seg_keys(r) for r in new_rows)))
        keys = {}
        for key, (kind, payload) in todo.items():
            keys[str(payload[0]["customer_id"]) if kind == "order" else str(payload["customer_id"])] = key
        when = {cid: touched[cid] for cid in ids}
        changes: list[dict] = []
        if kinds:
            thresholds = self.state.thresholds()
            for rec in new_rows:
                cid = rec["customer_id"]
                before = old.get(cid)
                after_rec = _read_record(rec)
                before_rec = _read_record(before) if before is not None else None
                if before_rec is not None and all(_seg_text(after_rec.get(k)) == _seg_text(before_rec.get(k))
                                                  for k in kinds):
                    continue
                self._moves(changes, cid, before_rec, after_rec, kinds, thresholds, when, "behaviour", keys, emptied)
        # the outbox reads the changes as a frame; without triggers nothing does until the caller reads them
        frame = pd.DataFrame(changes, columns=CHANGE_COLUMNS) if changes and self.triggers else None
        outbox, left_out = reads.outbox(frame) if frame is not None else (None, {})
        return FewPlan(ids=ids, rows=new_rows, changes=changes, outbox=outbox, left_out=left_out,
                       n_events=len(todo), day=day)

    def _predictions(self, ids: list[str], day: pd.Timestamp, tx: pd.DataFrame | None = None,
                     ev: pd.DataFrame | None = None, drop: list | tuple = ()) -> dict[str, Any]:
        """commit_live's arguments for the touched customers' churn risk and next order (nothing without
        prediction models in the state): :mod:`clientfolio.live.predictions`."""
        if getattr(self.state, "prediction_models_", None) is None:
            return {}
        from clientfolio.live.predictions import prediction_update

        return prediction_update(self.store, self.state, ids, day, self.state_id, tx, ev, drop)

    def _few_reads(self, ids: list[str], tx: pd.DataFrame | None, day: pd.Timestamp
                   ) -> tuple[dict[str, tuple[float, float]], bool]:
        """For a few customers: their stored 12-month (revenue, value) at `day` (as `value_12m` reads it), and
        whether the store already holds lines of an order among `tx` (an edit).

        Both are index lookups (schema version 8: transactions by customer_id and by order_id): the
        12-month window is a CASE inside the sums, not a filter, because a range filter on `ts` next to
        `customer_id = ?` makes DuckDB scan the table instead of using the index."""
        start, end = (day - pd.Timedelta(days=365)).to_pydatetime(), (day + pd.Timedelta(days=1)).to_pydatetime()
        _, rows = self.store.fetch(few_value_12m_sql(len(ids)), [start, end, start, end, start, end, *ids])
        v12 = {str(c): (float(r), float(v)) for c, r, v in rows if r is not None}
        if tx is None:
            return v12, False
        pairs = set(zip(tx["source"].tolist(), tx["order_id"].tolist()))
        oids = sorted({str(o) for _, o in pairs})
        srcs = sorted({str(src) for src, _ in pairs})
        _, found = self.store.fetch(stored_orders_sql(len(oids), len(srcs)), oids + srcs)
        return v12, any((a, b) in pairs for a, b in found)

    def _few_features(self, buyers: list[dict], day: pd.Timestamp, tx: pd.DataFrame | None,
                      v12: dict[str, tuple[float, float]], reads: "StoreReads") -> dict[str, Any]:
        """`features` for a few customers' statistics rows, as NumPy columns (the same derivation, no DataFrame)."""
        flags = self.state.feature_flags_
        names: dict[str, str] = {}
        for r in buyers:
            for name in r["category_spend"] or {}:
                names.setdefault(_slug(name), name)
        categories = [names[s] for s in self.state.categories_ if s in names]
        sc = stats_columns(buyers)
        f = feature_columns(sc, pd.Timestamp(day.date()), categories, flags["discounts"], flags["events"],
                            flags["channels"])
        n = len(sc["customer_id"])
        for slug in self.state.categories_:  # a category none of these customers bought still has its column
            f.setdefault(f"share_{slug}", np.zeros(n))
        if self.state.categories_:  # none bought a category: no favourite, as a rescan says
            f.setdefault("top_category", np.full(n, None, dtype=object))
        ids = [str(c) for c in f["customer_id"]]
        acols, by = reads.attributes(ids)
        for j, col in enumerate(acols[1:], start=1):
            f[col] = np.array([by[c][j] if c in by else None for c in ids], dtype=object)
        if "acquisition_cost" in f:
            f["acquisition_cost"] = np.array([np.nan if v is None else v for v in f["acquisition_cost"]], dtype=float)
        start, end = day - _YEAR, day + _ONE_DAY
        add: dict[str, list[float]] = {}
        wanted = set(ids)
        if tx is not None:  # the new lines, not written yet, as `_v12_with` adds them
            lists = column_lists(tx)
            for cid, ts, amount, cost in zip(lists["customer_id"], lists["ts"], lists["amount"], lists["cost"]):
                if cid in wanted:
                    if start <= ts < end:
                        a = add.setdefault(cid, [0.0, 0.0])
                        a[0] += amount
                        a[1] += 0.0 if _missing(cost) else cost
        rev, val = [], []
        for c in ids:
            r, v = v12.get(c, (0.0, 0.0))
            if c in add:
                r, v = r + add[c][0], v + (add[c][0] - add[c][1])
            rev.append(r)
            val.append(v)
        f["revenue_12m"] = np.array(rev, dtype=float)
        f["value_12m"] = np.array(val, dtype=float)
        return f

    def _existing_orders(self, tx: pd.DataFrame, since_import: int = 0) -> set[tuple[str, str]]:
        """Orders of the batch the store already holds lines of (from before `since_import`, for imports)."""
        pairs = set(zip(tx["source"].tolist(), tx["order_id"].tolist()))
        # One query on the order ids (a list parameter, as IDS_IN), then the exact (source, order_id) pairs here.
        sql = "SELECT DISTINCT source, order_id FROM transactions WHERE order_id IN (SELECT unnest(CAST(? AS TEXT[])))"
        if since_import:
            sql += f" AND import_id <= {int(since_import)} AND import_id <> {LIVE_IMPORT_ID}"
        df = self.store.query(sql, [sorted({str(o) for _, o in pairs})])
        return {p for p in zip(df["source"].tolist(), df["order_id"].tolist()) if p in pairs}

    def _import_replaced_rows(self, since_import: int) -> bool:
        """Did an import after `since_import` replace stored rows (changed values under the same key)?"""
        df = self.store.query(f"SELECT coalesce(sum(rows_updated), 0) AS n FROM imports WHERE import_id > "
                              f"{int(since_import)} AND target IN ('transactions', 'events')")
        return int(df["n"].iloc[0]) > 0

    def _v12_with(self, ids: list[str], day: pd.Timestamp, tx: pd.DataFrame | None,
                  cancels: list[tuple[str, str]]) -> pd.DataFrame:
        """12-month value from the store, plus the new rows, minus cancelled orders (not written yet)."""
        v12 = value_12m(self.store, day, ids).set_index("customer_id")
        v12 = v12.reindex(ids).fillna(0.0)
        start, end = day - pd.Timedelta(days=365), day + pd.Timedelta(days=1)
        if tx is not None and len(tx):
            win = tx[(tx["ts"] >= start) & (tx["ts"] < end) & tx["customer_id"].isin(ids)]
            if len(win) <= FEW:  # a few lines: sums in Python, without a groupby
                r: dict[str, float] = {}
                c: dict[str, float] = {}
                for cid, amount, cost in zip(win["customer_id"].tolist(), win["amount"].tolist(),
                                             win["cost"].tolist()):
                    r[cid] = r.get(cid, 0.0) + amount
                    c[cid] = c.get(cid, 0.0) + (0.0 if _missing(cost) else cost)
                add = pd.DataFrame({"r": r, "c": c}, dtype=float)
            else:
                add = (win.assign(r=win["amount"], c=win["cost"].fillna(0.0)).groupby("customer_id")[["r", "c"]]
                       .sum())
            v12.loc[add.index, "revenue_12m"] += add["r"]
            v12.loc[add.index, "value_12m"] += add["r"] - add["c"]
        if cancels:
            gone = self.store.query(
                "SELECT customer_id, sum(amount) AS r, sum(coalesce(cost, 0)) AS c FROM transactions WHERE ("
                + " OR ".join("(source = ? AND order_id = ?)" for _ in cancels)
                + f") AND ts >= CAST(DATE '{start.date().isoformat()}' AS TIMESTAMP) "
                  f"AND ts < CAST(DATE '{end.date().isoformat()}' AS TIMESTAMP) GROUP BY customer_id",
                [x for pair in cancels for x in pair]).set_index("customer_id")
            gone = gone[gone.index.isin(v12.index)]
            v12.loc[gone.index, "revenue_12m"] -= gone["r"]
            v12.loc[gone.index, "value_12m"] -= gone["r"] - gone["c"]
        return v12.reset_index()

    # -- time ---------------------------------------------------------------------------------------
    def sweep(self, as_of: Any, plan_next: bool = True) -> LiveResult:
        """Apply the moves time alone causes up to `as_of`, for the customers due by then.

        Customers without a next change date yet (after analyze or a refit) are planned first from
        their own rows, at the day those rows stand at: only those due by `as_of` are applied; the
        others get just their date (one multi-row write after the sweep's transaction -- if it is
        lost, they are planned again next time).  `plan_next=False` leaves next change dates to the
        next sweep and applies every unplanned customer (a refit replaces the state right after).
        """
        day = pd.Timestamp(as_of).normalize()
        self._settle()
        self._forget()
        result = LiveResult(changes=self._changes(pd.DataFrame(), pd.DataFrame(), None, "time"))
        planned = self._plan_unplanned(day) if plan_next else None
        sql = "SELECT customer_id FROM customer_state WHERE next_change <= ?"
        if not plan_next:
            sql += " OR (next_change IS NULL AND stat_n_days > 0)"
        due = set(self.store.query(sql, [day.to_pydatetime()])["customer_id"].astype(str))
        if planned is not None:
            due |= set(planned.index[planned.to_numpy() <= np.datetime64(day)])
        ids = sorted(due)
        if ids:
            old = self.store.read_customer_state(ids).set_index("customer_id")
            stats = _stats_from_rows(old.reset_index())
            # One read of their order days in the last 12 months gives both their 12-month value and
            # the days orders leave that window; features derived once for the apply and the dates.
            lines = self._window_lines(ids, day)
            v12 = (lines.assign(revenue_12m=lines["revenue"]).groupby("customer_id", sort=False)
                   [["revenue_12m", "value"]].sum().rename(columns={"value": "value_12m"}).reset_index())
            base = self.features(stats, day, v12=v12)
            applied = self.state.apply(base, day, transactions=self._rule_transactions(list(base["customer_id"])))
            nxt = self._next_changes(base, day, lines) if plan_next else None
            rows = state_rows(stats, applied, day, nxt, self.state_id)
            changes, n_out, left_out = self._commit(rows, old, day, "time", meta={"last_sweep": day.isoformat()},
                                                    **self._predictions(ids, day))  # the due customers' too
            result.changes, result.outbox, result.customers_touched = changes, n_out, len(ids)
            result.outbox_left_out = left_out
        else:
            self.store.commit_live(state_rows=None, changes=None, outbox=None, meta={"last_sweep": day.isoformat()})
        if planned is not None:
            later = planned[planned.to_numpy() > np.datetime64(day)]
            if len(later):
                self._write_next_changes(later)
        return result

    def _plan_unplanned(self, day: pd.Timestamp) -> pd.Series | None:
        """Next change dates of the customers who have none, from their rows (no apply); None if there are none."""
        rows = self.store.query("SELECT customer_id, as_of FROM customer_state WHERE next_change IS NULL "
                                "AND stat_n_days > 0")
        if rows.empty:
            return None
        rows["as_of"] = pd.to_datetime(rows["as_of"]).dt.normalize()
        if rows["as_of"].isna().any() or (rows["as_of"] > day).any():
            # rows with no date, or ahead of the sweep: simply applied at the sweep's day
            return pd.Series(day, index=pd.Index(rows["customer_id"].astype(str))).astype("datetime64[ns]")
        total = int(self.store.query("SELECT count(*) AS n FROM customer_state")["n"].iloc[0])
        # Most often (after analyze) nearly everyone: one read of the table beats a list of a million ids.
        full = self.store.read_customer_state(None if len(rows) > total // 2 else sorted(rows["customer_id"].astype(str)))
        full = full[full["next_change"].isna().to_numpy() & (full["stat_n_days"].to_numpy() > 0)]
        categories = self._store_categories()
        parts = []
        for at, part in full.groupby(pd.to_datetime(full["as_of"]).dt.normalize()):
            base = self.features(_stats_from_rows(part), at, categories=categories)
            parts.append(self._next_changes(base, at))
        return pd.concat(parts).astype("datetime64[ns]")

    def _store_categories(self) -> list[str]:
        """The category names of the state's share columns, from the store's distinct categories (not from
        every customer's statistics, as `_categories` reads them: the same names, read once for many customers)."""
        if not self.state.categories_:
            return []
        names: dict[str, str] = {}
        for name in sorted(self.store.query("SELECT DISTINCT category FROM transactions WHERE category IS NOT NULL")
                           ["category"].astype(str)):
            names.setdefault(_slug(name), name)
        return [names[s] for s in self.state.categories_ if s in names]

    def _write_next_changes(self, dates: pd.Series) -> None:
        """Set next_change for these customers (indexed by id) in one statement, nothing else of their rows."""
        ids = [str(c) for c in dates.index]
        when = [pd.Timestamp(d).to_pydatetime() for d in dates.to_numpy()]
        with self.store.transaction() as tx:
            tx.execute(BUMP_VERSION)
            tx.execute("UPDATE customer_state SET next_change = u.d FROM (SELECT unnest(CAST(? AS TEXT[])) AS id, "
                       "unnest(CAST(? AS TIMESTAMP[])) AS d) AS u WHERE customer_state.customer_id = u.id",
                       [ids, when])

    # -- refits -------------------------------------------------------------------------------------
    def adopt(self, state: PortfolioState, as_of: Any, reason: str = "refit") -> LiveResult:
        """Make a newly fitted state current; every move it causes is recorded as cause "refit".

        Time is swept to `as_of` under the old state first, so the refit's own moves stand apart.
        """
        day = pd.Timestamp(as_of).normalize()
        swept = self.sweep(day, plan_next=False)
        self._forget()
        old = self.store.read_customer_state().set_index("customer_id")
        stats = _stats_from_rows(old.reset_index())
        self.state = state
        self.state_id = save_state(self.store, state, reason)
        applied = self.apply(stats, day)
        rows = state_rows(stats, applied, day, None, self.state_id)  # next changes: at the next sweep
        changes, n_out, left_out = self._commit(rows, old, day, "refit")
        merged = dict(swept.outbox_left_out)
        for reason, n in left_out.items():
            merged[reason] = merged.get(reason, 0) + n
        return LiveResult(changes=pd.concat([swept.changes, changes], ignore_index=True),
                          customers_touched=len(rows), outbox=swept.outbox + n_out, outbox_left_out=merged)

    def health(self) -> dict[str, Any]:
        """How old the state is and how well it still describes the base: for "should I refit?"."""
        rows = self.store.query("SELECT count(*) AS n, max(as_of) AS last, "
                                "count(*) FILTER (WHERE stat_first_day > ?) AS new FROM customer_state "
                                "WHERE stat_n_days > 0", [self.state.cutoff_.to_pydatetime()])
        n, new = int(rows["n"].iloc[0]), int(rows["new"].iloc[0])
        last = pd.Timestamp(rows["last"].iloc[0]) if n else self.state.cutoff_
        age = int((last - self.state.cutoff_).days)
        tracking = self._tracking_drift(last)
        advice = []
        if age > 90:
            advice.append(f"the state was fitted {age} days ago")
        if n and new / n > 0.2:
            advice.append(f"{new / n:.0%} of customers arrived after it was fitted")
        if tracking is not None and abs(tracking) > 0.2:
            advice.append(f"repeat purchases since the fit are {tracking:+.0%} off what it predicted")
        return {"state_id": self.state_id, "fitted_at_cutoff": self.state.cutoff_, "as_of": last, "age_days": age,
                "customers": n, "new_customers": new, "new_share": new / n if n else 0.0,
                "tracking_drift": tracking,
                "advice": ("refit: " + "; ".join(advice)) if advice else "no refit needed yet"}

    def _tracking_drift(self, last: pd.Timestamp) -> float | None:
        """(actual - predicted) / predicted repeat purchase days since the cut-off, by customers known then."""
        model = self.state.purchase_model_
        cut = self.state.cutoff_
        days = (last - cut).days
        if model is None or days < 7:
            return None
        from clientfolio.features import rfm_summary
        from clientfolio.state.fitted import model_summary

        then = rfm_summary(self.store, cutoff=cut, unit="D", holdout_end=last)
        summary = model_summary(then, cut)
        groups = getattr(self.state, "purchase_groups_", None)
        if groups is not None:  # each customer with their group's model, as the state scores them
            attrs = self.store.query(ATTRIBUTES_SQL)[["customer_id", groups.column]]
            summary = summary.merge(attrs, on="customer_id", how="left")
            expected = groups.predict_purchases(days / 7.0, summary, model)
        else:
            expected = model.predict_purchases(days / 7.0, summary[["frequency", "recency", "T"]])
        predicted = float(np.nansum(expected))
        actual = float(then["frequency_holdout"].sum())
        return (actual - predicted) / predicted if predicted > 0 else None


@dataclass
class FewPlan:
    """What one few-customer update writes: state rows (dicts), change rows (dicts), outbox rows."""

    ids: list[str]
    rows: list[dict]
    changes: list[dict]
    outbox: pd.DataFrame | None
    left_out: dict[str, int]
    n_events: int
    day: pd.Timestamp  # the day the customers were scored at

    def result(self, result: LiveResult, change_ids: list[int]) -> LiveResult:
        """`result` filled in, the change rows numbered with the ids their commit gave them (its ``changes``
        frame made when read)."""
        result.set_change_rows(self.changes, change_ids)
        result.outbox = 0 if self.outbox is None else len(self.outbox)
        result.outbox_left_out = self.left_out
        result.customers_touched, result.events_applied, result.rescanned = len(self.ids), self.n_events, 0
        return result


class StoreReads:
    """What a few-customer update reads, from the store (an in-memory copy overrides these)."""

    def __init__(self, live: LivePortfolio) -> None:
        self.live = live

    def rows(self, ids: list[str]) -> tuple[list[str], dict[str, dict]]:
        """(customer_state's columns, the stored rows of these customers as dicts by id)."""
        which = "customer_id = ?" if len(ids) == 1 else f"customer_id IN ({', '.join('?' * len(ids))})"
        cols, fetched = self.live.store.fetch(f"SELECT * FROM customer_state WHERE {which}", ids)  # its index
        return cols, {str(r[0]): dict(zip(cols, r)) for r in fetched}

    def v12_edited(self, ids: list[str], tx: pd.DataFrame | None, day: pd.Timestamp
                   ) -> tuple[dict[str, tuple[float, float]], bool] | None:
        """(stored 12-month (revenue, value) by customer at `day`, does `tx` edit a stored order?)."""
        return self.live._few_reads(ids, tx, day)

    def attributes(self, ids: list[str]) -> tuple[list[str], dict[str, tuple]]:
        """(ATTRIBUTES_SQL's columns, each known customer's row by id)."""
        acols, arows = self.live.store.fetch(ATTRIBUTES_SQL + f" WHERE {_marks('customer_id', len(ids))}", ids)
        return acols, {str(r[0]): r for r in arows}

    def rule_tx(self, ids: list[str], tx: pd.DataFrame | None) -> pd.DataFrame | None:
        """These customers' transactions for rule segments, with the new lines."""
        return self.live._rule_transactions(ids, tx)

    def outbox(self, frame: pd.DataFrame) -> tuple[pd.DataFrame | None, dict[str, int]]:
        """The outbox rows of these changes (consent and contact caps read from the store)."""
        return self.live._outbox(frame)


_NO_CHANGES: list[pd.DataFrame] = []


def no_changes() -> pd.DataFrame:
    """An empty change log frame (`CHANGE_COLUMNS`): a copy of one made once, a tenth of building it anew."""
    if not _NO_CHANGES:
        _NO_CHANGES.append(pd.DataFrame([], columns=CHANGE_COLUMNS))
    return _NO_CHANGES[0].copy()


def keyed_items(tx: pd.DataFrame | None, ev: pd.DataFrame | None) -> dict[str, tuple[str, Any]]:
    """Event key -> (kind, payload): each order as the list of its lines (dicts), each event as a dict; one
    conversion for the batch, not one per order."""
    keyed: dict[str, tuple[str, Any]] = {}
    if tx is not None:
        for line in _line_records(tx):
            keyed.setdefault(f"order:{line['source']}:{line['order_id']}", ("order", []))[1].append(line)
    if ev is not None:
        for e in ev.to_dict("records"):
            keyed[f"event:{e['event_id']}"] = ("event", e)
    return keyed


def _marks(column: str, n: int) -> str:
    """`column = ?` for one value, `column IN (?, ...)` for more: the shapes DuckDB answers from an index."""
    return f"{column} = ?" if n == 1 else f"{column} IN ({', '.join('?' * n)})"


def few_value_12m_sql(n: int) -> str:
    """Stored 12-month revenue and value of `n` customers; parameters: (start, end) three times, then the ids.

    The window is a CASE inside the sums, not a filter: a range filter on `ts` next to the id filter makes
    DuckDB scan the table instead of using transactions_customer (schema version 8)."""
    win = "ts >= ? AND ts < ?"
    return (f"SELECT customer_id, sum(CASE WHEN {win} THEN amount END) AS revenue_12m, "
            f"sum(CASE WHEN {win} THEN amount END) - coalesce(sum(CASE WHEN {win} THEN cost END), 0) AS value_12m "
            f"FROM transactions WHERE {_marks('customer_id', n)} GROUP BY customer_id")


def stored_orders_sql(n_orders: int, n_sources: int, owner: bool = False) -> str:
    """(source, order_id) pairs stored among these order ids and sources (`owner`: and their customer_id);
    parameters: the ids, then the sources.

    DuckDB answers it through transactions_order, PostgreSQL through the primary key (source, order_id, ...);
    the caller keeps only the exact pairs it asked about."""
    return (f"SELECT DISTINCT source, order_id{', customer_id' if owner else ''} FROM transactions "
            f"WHERE {_marks('order_id', n_orders)} AND {_marks('source', n_sources)}")


def stats_for_without(store: Store, ids: list[str], new_tx: pd.DataFrame | None, new_ev: pd.DataFrame | None,
                      cancels: list[tuple[str, str]]) -> pd.DataFrame:
    """Like `stats_for`, with the stored lines of cancelled or edited orders left out."""

    class _Without:
        kind = "duckdb"

        def query(self, sql: str, params: list) -> pd.DataFrame:
            df = store.query(sql, params)
            if "order_id" in df:
                drop = df.set_index(["source", "order_id"]).index.isin(cancels)
                df = df[~drop].reset_index(drop=True)
            return df

    return stats_for(_Without(), ids, new_tx, new_ev, cutoff=None)


def save_state(store: Store, state: PortfolioState, reason: str) -> int:
    """Store a fitted state as the current one, with what it was fitted on; returns its id."""
    fitted = state.fitted_on_
    body = state.to_json()
    meta = {"created_at": pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
            "cutoff": state.cutoff_.to_pydatetime(), "format": json.loads(body)["format"], "reason": reason,
            "fingerprint": fitted.get("fingerprint") or hashlib.sha256(body.encode()).hexdigest()[:16],
            "transactions": int(fitted.get("transactions", 0)), "customers": int(fitted.get("customers", 0))}
    return store.save_state(meta, body)


def start(store: Store, state: PortfolioState, applied: Applied, reason: str = "analyze",
          stats: pd.DataFrame | None = None) -> LivePortfolio:
    """Keep a freshly fitted state and every customer's row in the store (what `analyze` does).

    `stats`: ``customer_stats(store, state.cutoff_, purchasers_only=False)`` when already read (analyze
    reads it on a second connection while it fits)."""
    state_id = save_state(store, state, reason)
    if stats is None:
        stats = customer_stats(store, state.cutoff_, purchasers_only=False)
    live = LivePortfolio(store)
    assert live.state_id == state_id
    # Next change dates are left for the first sweep to compute (it treats "unknown" as due): analyze
    # stays as fast for a one-off report, and only a store that is kept current pays for them.
    store.replace_customer_state(state_rows(stats, applied, state.cutoff_, None, state_id))
    latest = int(store.query("SELECT coalesce(max(import_id), 0) AS n FROM imports")["n"].iloc[0])
    store.commit_live(state_rows=None, changes=None, outbox=None, meta={"applied_import": str(latest)})
    return live


# ---------------------------------------------------------------------------- helpers

_TX_NAMES = frozenset(n for n, _ in TRANSACTIONS)
CHANGE_COLUMNS = ["customer_id", "segment_kind", "from_segment", "to_segment", "changed_at", "cause", "reason",
                  "state_id", "event_key"]


# each statistic: its name, its stored name, and how it is stored (1: a map as JSON, 2: a day as a datetime, 0: as is)
_STAT_PLAN = [(c, STAT + c, 1 if c in MAP_COLS else 2 if c in DATE_COLS else 0) for c in STATS_COLUMNS[1:]]


def _stats_of_record(rec: dict) -> dict:
    """A customer_state row (stored names, Python values) -> statistics as `stats_rows` gives them."""
    r = {c: rec.get(STAT + c) for c in STATS_COLUMNS[1:]}
    r["customer_id"] = str(rec["customer_id"])
    for k in DATE_COLS:
        r[k] = None if _missing(r[k]) else pd.Timestamp(r[k]).date()
    if not _missing(r["last_event_ts"]):
        r["last_event_ts"] = pd.Timestamp(r["last_event_ts"]).to_pydatetime()
    else:
        r["last_event_ts"] = None
    for k in INT_COLS:
        r[k] = int(r[k])
    for k in FLOAT_COLS:
        r[k] = None if _missing(r[k]) else float(r[k])
    for k in MAP_COLS:
        r[k] = json.loads(r[k]) if isinstance(r[k], str) else dict(r[k] or {})
    return r


def _plain(v: Any) -> Any:
    """A NumPy scalar as the value pandas' object conversion gives (dates as Timestamps); missing as None."""
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v)
    if _missing(v):
        return None
    return v


def _few_state_rows(rows: list[dict], applied: tuple[dict, list] | None, day: pd.Timestamp,
                    state_id: int) -> list[dict]:
    """`state_rows` for a few customers, as dicts (stored names): statistics, kept scores, segment columns."""
    out: dict[str, dict] = {}
    for r in rows:
        rec: dict[str, Any] = {"customer_id": str(r["customer_id"])}
        for c, stored, how in _STAT_PLAN:
            v = r[c]
            if how == 1:
                v = json.dumps(v or {}, sort_keys=True)
            elif how == 2 and v is not None:
                v = _midnight(v)
            rec[stored] = v
        out[rec["customer_id"]] = rec
    if applied is not None:
        cols, members = applied
        ids = [str(c) for c in cols["customer_id"]]
        kept = [c for c in KEPT_COLUMNS if c in cols]
        for i, cid in enumerate(ids):
            rec = out[cid]
            for c in kept:
                rec[STORED_NAMES.get(c, c)] = _plain(cols[c][i])
        single: dict[str, dict[str, Any]] = {}
        rules: dict[str, list[str]] = {}
        has_rules = False
        for cid, kind, seg in members:
            if kind == "rules":
                has_rules = True
                rules.setdefault(cid, []).append(str(seg))
            else:
                single.setdefault(kind, {}).setdefault(cid, seg)  # the first membership, as segment_columns keeps
        for kind, vals in single.items():
            for cid, rec in out.items():
                rec[SEG + kind] = vals.get(cid)
        if has_rules:
            for cid, rec in out.items():
                rec[SEG + "rules"] = json.dumps(sorted(rules.get(cid, [])))
        next_day = (day + _ONE_DAY).to_pydatetime()
        for cid in ids:
            out[cid]["next_change"] = next_day
    as_of = day.to_pydatetime()
    for rec in out.values():
        rec["as_of"] = as_of
        rec.setdefault("next_change", None)
        rec["state_id"] = int(state_id)
    return list(out.values())


def _midnight(v: Any) -> datetime:
    """A statistics day as the datetime ``pd.Timestamp(v).to_pydatetime()`` gives (a date: its midnight)."""
    if type(v) is date:
        return datetime(v.year, v.month, v.day)
    return pd.Timestamp(v).to_pydatetime()


_SEG_KEYS: dict[tuple, frozenset] = {}  # a row's keys (or a column list) -> its segment columns


def _seg_keys(keys: Any) -> frozenset:
    """The segment columns (``seg_`` names) among `keys`, worked out once per layout (the same few every event)."""
    t = tuple(keys)
    got = _SEG_KEYS.get(t)
    if got is None:
        got = frozenset(k for k in t if k.startswith(SEG))
        if len(_SEG_KEYS) < 256:
            _SEG_KEYS[t] = got
    return got


_READ_PLANS: dict[tuple, list[tuple[Any, Any]]] = {}  # a row's keys -> (stored key, read name) of its non-statistics


def _read_record(rec: dict) -> dict:
    """A state row (stored names) as `_records` gives it to reasons: read names, no statistics, None for missing.

    Which keys are kept and what they are called depends only on the row's keys (the same few layouts every
    event), so that is worked out once per layout."""
    keys = tuple(rec)
    plan = _READ_PLANS.get(keys)
    if plan is None:
        plan = [(k, READ_NAMES.get(k, k)) for k in keys if not str(k).startswith(STAT)]
        if len(_READ_PLANS) < 256:
            _READ_PLANS[keys] = plan
    out = {}
    nat, na = pd.NaT, pd.NA
    for k, name in plan:
        v = rec[k]  # _missing, inlined
        out[name] = None if (v is None or v is nat or v is na or (isinstance(v, float) and v != v)) else v
    return out


def _seg_text(v: Any) -> str | None:
    """A segment value as text (None for a missing one)."""
    return None if v is None else str(v)


def _seg_strings(col: pd.Series | None, n: int) -> np.ndarray:
    """A segment column as an object array of values, every missing value None."""
    if col is None:
        return np.full(n, None, dtype=object)
    vals = col.to_numpy(dtype=object).copy()
    vals[pd.isna(col).to_numpy()] = None
    return vals


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts without the running statistics, every missing value None (what reasons read)."""
    cols = [c for c in frame.columns if not str(c).startswith(STAT)]
    if len(frame) <= FEW:
        out = []
        for row in frame[cols].astype(object).itertuples(index=False, name=None):
            out.append({c: None if _missing(v) else v for c, v in zip(cols, row)})
        return out
    keep = frame[cols].astype(object)
    return keep.where(keep.notna(), None).to_dict("records")


def _line_records(frame: pd.DataFrame) -> list[dict]:
    """`frame.to_dict("records")` (the same Python values), column by column for a few rows: a third of its cost."""
    if len(frame) > FEW:
        return frame.to_dict("records")
    lists = column_lists(frame)
    cols = list(lists)
    return [dict(zip(cols, row)) for row in zip(*(lists[c] for c in cols))]


def _or_nan(v: Any) -> Any:
    """A segment value, every kind of missing as NaN (as `segment_columns` gives it for many customers)."""
    return np.nan if _missing(v) else v


def _missing(v: Any) -> bool:
    """Is a cell missing (None, NaN, NaT, pd.NA)? Lists and other containers are not."""
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    return isinstance(v, float) and v != v


def _when(item: tuple[str, Any]) -> pd.Timestamp:
    kind, payload = item
    if kind == "order":
        return pd.Timestamp(min(line["ts"] for line in payload))
    if kind == "event":
        return pd.Timestamp(payload["ts"])
    return pd.Timestamp.max


def _utc_naive(s: pd.Series) -> pd.Series:
    ts = pd.to_datetime(s, utc=True, format="ISO8601") if not pd.api.types.is_datetime64_any_dtype(s) else s
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.astype("datetime64[us]")


def _hash(values: list) -> str:
    return hashlib.sha256("\x1f".join("" if v is None else str(v) for v in values).encode()).hexdigest()[:32]


_ISO_TS = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?")
_TEXT_COLS = frozenset(n for n, t in TRANSACTIONS if t.startswith("TEXT"))
_DOUBLE_COLS = frozenset(n for n, t in TRANSACTIONS if t.startswith("DOUBLE"))
_ORDER_COLS = [n for n, _ in TRANSACTIONS if n not in ("row_hash", "import_id")]
_DERIVED = frozenset(("customer_id", "order_id", "source", "ts", "amount", "is_refund", "line_key"))


class OrderLines:
    """Canonical order lines as columns of plain Python values (what `_one_order_line` reads from one line);
    the DataFrame `_canonical_orders` gives for them is made only when something needs it (`frame`): a
    buffered update computes from the values and its flush writes the frames."""

    __slots__ = ("lists", "_kinds", "_frame")

    def __init__(self, lists: dict[str, list], kinds: dict[str, str]) -> None:
        self.lists = lists
        self._kinds = kinds  # column -> how `frame` builds it (the dtypes `_general_orders` gives)
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.lists["customer_id"])

    def frame(self) -> pd.DataFrame:
        """The lines as `_canonical_orders` gives them (made once)."""
        if self._frame is None:
            data: dict[str, Any] = {}
            for name, vals in self.lists.items():
                kind = self._kinds[name]
                data[name] = (vals if kind == "list" else np.array(vals, dtype=kind))
            self._frame = pd.DataFrame(data)
        return self._frame


def lines_frame(items: "list[pd.DataFrame | OrderLines]") -> pd.DataFrame:
    """``pd.concat`` of these order lines' frames (`ignore_index`): lines of plain values that build every
    column the same way are made into one frame at once (a flush of buffered orders: one frame, not one each)."""
    lines = [x for x in items if isinstance(x, OrderLines)]
    if lines and len(lines) == len(items) and all(x._kinds == lines[0]._kinds for x in lines):
        return OrderLines({c: [v for x in lines for v in x.lists[c]] for c in lines[0].lists}, lines[0]._kinds).frame()
    return pd.concat([as_frame(x) for x in items], ignore_index=True)


def as_frame(tx: "pd.DataFrame | OrderLines | None") -> pd.DataFrame | None:
    """Order lines as a DataFrame (`OrderLines` made into their frame)."""
    return tx.frame() if isinstance(tx, OrderLines) else tx


def _one_order_line(orders: pd.DataFrame) -> pd.DataFrame | None:
    """`_canonical_orders` for one order line of plain values (text, numbers, an ISO 8601 time) without
    pandas' per-column work; None for anything else (missing or unreadable values, other types), which the
    general path then handles and, if it must, rejects with its own error."""
    lines = _one_order_values(orders)
    if lines is None:
        return None
    frame = lines.frame()
    _LAST_LISTS[:] = [weakref.ref(frame), lines.lists]
    return frame


def _one_order_values(orders: pd.DataFrame) -> OrderLines | None:
    """`_one_order_line`'s values, before any frame is made."""
    if len(orders) != 1 or not orders.columns.is_unique:
        return None
    row: dict[str, Any] = {}
    names = orders.columns.tolist()
    for i, name in enumerate(names):
        if name not in _DERIVED and name not in _TEXT_COLS and name not in _DOUBLE_COLS:
            if name in _ORDER_COLS:  # a stored column of another type (e.g. consent_marketing): the general path
                return None
            continue  # not a transactions column: the general path drops it too
        arr = _column_array(orders, i, name)
        v = arr[0]
        kind = arr.dtype.kind
        if name == "ts":
            if not isinstance(v, str) or _ISO_TS.fullmatch(v) is None:
                return None
        elif name == "amount" or name in _DOUBLE_COLS:
            if kind not in "if":
                return None
            v = float(v)
            if name == "amount" and not np.isfinite(v):
                return None
        elif name == "is_refund":
            if kind != "b":
                return None
            v = bool(v)
        elif name in ("customer_id", "order_id", "source"):
            if kind in "iu":
                v = str(int(v))
            elif not isinstance(v, str):
                return None
        elif not isinstance(v, str):  # a passed-through text column (line_key too): plain text only
            return None
        row[name] = v
    if any(c not in row for c in ("customer_id", "order_id", "ts", "amount")):
        return None
    try:
        ts = pd.Timestamp(row["ts"])
    except (ValueError, TypeError):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    ts = ts.as_unit("us")
    row["ts"] = ts
    row.setdefault("source", LIVE_SOURCE)
    row.setdefault("is_refund", row["amount"] < 0)
    row.setdefault("line_key", "0")
    lists: dict[str, list] = {}
    kinds: dict[str, str] = {}
    values: list[Any] = []
    for name in _ORDER_COLS:
        v = row.get(name)
        if name in _DOUBLE_COLS:
            v = np.nan if v is None else v
            kinds[name] = "float64"
        elif name == "ts":
            kinds[name] = "datetime64[us]"
        elif name == "is_refund":
            kinds[name] = "bool"
        elif (name == "line_key" and "line_key" not in names) or v is None:
            kinds[name] = "list"
        else:
            kinds[name] = "object"
        lists[name] = [v]
        values.append(v)
    lists["row_hash"], kinds["row_hash"] = [_hash(values)], "object"
    lists["import_id"], kinds["import_id"] = [LIVE_IMPORT_ID], "int64"
    return OrderLines(lists, kinds)


def _column_array(frame: pd.DataFrame, i: int, name: Any) -> Any:
    """Column `i`'s values (its NumPy or extension array, as ``frame[name].array`` holds them) without making
    a Series: a tenth of the cost, which matters for a one-line update.  Falls back to ``frame[name].array``
    where pandas lacks its (internal) accessor."""
    get = getattr(frame, "_get_column_array", None)
    return get(i) if get is not None else frame[name].array


_LAST_LISTS: list[Any] = [None, None]  # (weak reference to the last one-line frame, its columns as lists)


def column_lists(frame: "pd.DataFrame | OrderLines") -> dict[str, list]:
    """`{column: frame[column].tolist()}`; for `OrderLines`, and for the one-line frame `_one_order_line` made
    last, the values it was made from (the same Python values) without reading a frame.  Such frames are never
    changed in place."""
    if isinstance(frame, OrderLines):
        return frame.lists
    ref, lists = _LAST_LISTS
    if ref is not None and ref() is frame:
        return lists
    return {c: frame[c].tolist() for c in frame.columns}


def _canonical_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Order lines as the store keeps them; plain errors for what is missing or unreadable.

    Built column by column into one frame (one order's update pays pandas' per-column cost once, not per step);
    one line of plain values takes `_one_order_line`, which gives the same frame.
    """
    one = _one_order_line(orders) if len(orders) == 1 else None
    return one if one is not None else _general_orders(orders)


def canonical_lines(orders: pd.DataFrame) -> "pd.DataFrame | OrderLines":
    """`_canonical_orders`, but one line of plain values as `OrderLines` (its frame made only when needed)."""
    one = _one_order_values(orders) if len(orders) == 1 else None
    return one if one is not None else _general_orders(orders)


def _general_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """`_canonical_orders` for any frame of order lines."""
    need = [c for c in ("customer_id", "order_id", "ts", "amount") if c not in orders]
    if need:
        raise LiveError(f"orders need the column(s) {', '.join(need)}; they have {', '.join(map(str, orders.columns))}")
    df = orders.reset_index(drop=True)
    n = len(df)
    if df["customer_id"].isna().any() or df["order_id"].isna().any():
        raise LiveError("every order line needs a customer_id and an order_id")
    out: dict[str, Any] = {"customer_id": df["customer_id"].astype(str), "order_id": df["order_id"].astype(str),
                           "source": df["source"].astype(str) if "source" in df else [LIVE_SOURCE] * n}
    try:
        out["ts"] = _utc_naive(df["ts"])
        out["amount"] = pd.to_numeric(df["amount"], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise LiveError(f"orders: a timestamp or amount cannot be read ({exc}); give ISO 8601 times and numbers") from None
    if not np.isfinite(out["amount"]).all():
        raise LiveError("orders: every amount must be a finite number")
    out["is_refund"] = df["is_refund"].astype(bool) if "is_refund" in df else out["amount"] < 0
    if "line_key" not in df:  # the line's number within its order (source, order_id), in the given order
        seen: dict[tuple[str, str], int] = {}
        keys = []
        for key in zip(list(out["source"]), out["order_id"].tolist()):
            keys.append(str(seen.get(key, 0)))
            seen[key] = seen.get(key, 0) + 1
        out["line_key"] = keys
    for name, sql_type in TRANSACTIONS:
        col = out[name] if name in out else df[name] if name in df else None
        if sql_type.startswith("DOUBLE"):
            col = (np.full(n, np.nan) if col is None
                   else col if isinstance(col, pd.Series) and col.dtype == np.float64  # already numbers
                   else pd.to_numeric(col, errors="coerce").astype(float))
        elif col is None:
            col = [None] * n
        out[name] = col
    out["import_id"] = LIVE_IMPORT_ID
    out["row_hash"] = ""
    # Built in the stored column order, row_hash from the frame's own values (as itertuples gives them),
    # column by column: selecting and reordering columns of a small frame costs more than the work itself.
    cols = [n for n, _ in TRANSACTIONS if n not in ("row_hash", "import_id")]
    frame = pd.DataFrame({name: (out[name].to_numpy() if isinstance(out[name], pd.Series) else out[name])
                          for name in cols})
    frame["row_hash"] = [_hash(list(r)) for r in zip(*(frame[c].tolist() for c in cols))]
    frame["import_id"] = LIVE_IMPORT_ID
    return frame


def _canonical_events(events: pd.DataFrame) -> pd.DataFrame:
    need = [c for c in ("event_id", "customer_id", "ts", "type") if c not in events]
    if need:
        raise LiveError(f"events need the column(s) {', '.join(need)}; they have {', '.join(map(str, events.columns))}")
    from clientfolio.store.schema import EVENTS

    df = events.copy()
    df["ts"] = _utc_naive(df["ts"])
    for c in ("event_id", "customer_id", "type"):
        df[c] = df[c].astype(str)
    if "properties" in df:
        df["properties"] = [p if p is None or isinstance(p, str) else json.dumps(p) for p in df["properties"]]
    for name, _ in EVENTS:
        if name not in df:
            df[name] = None
    df["source"] = df["source"].fillna(LIVE_SOURCE)
    df["import_id"] = LIVE_IMPORT_ID
    cols = [n for n, _ in EVENTS if n not in ("row_hash", "import_id")]
    df["row_hash"] = [_hash(list(r)) for r in df[cols].itertuples(index=False)]
    return df[[n for n, _ in EVENTS]]
