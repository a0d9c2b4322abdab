"""Per-customer sufficient statistics that can be kept current event by event.

:func:`rfm_summary` and :func:`behaviour_features` scan each customer's whole history at a
cut-off.  The living portfolio cannot rescan on every order, so this module keeps, per
customer, a small set of running totals (*sufficient statistics*) from which every one of
those feature columns follows exactly:

- :func:`customer_stats` computes them for the whole base in one SQL pass (DuckDB or
  PostgreSQL), at a cut-off day;
- :func:`add_order` / :func:`add_event` update ONE customer's statistics (a plain dict) with
  one new order or event, in microseconds, without pandas;
- :func:`derive_features` turns statistics (a DataFrame) into the columns that
  ``rfm_summary(store, cutoff=as_of)`` merged with ``behaviour_features(store, as_of)[0]``
  give, with the same names, values and dtypes.

Why these statistics suffice: purchase days only ever append at the end (or onto the last
day), so the first, second, previous and last day, their values, the day count and the sum of
squared gaps give frequency, recency, T, monetary and every inter-purchase statistic; the rest
are plain sums and counts.  The one thing that cannot be updated is a purchase dated before
the customer's last purchase day (a late import, a back-dated order): :func:`add_order`
returns ``None`` then, and the caller recomputes that customer with :func:`customer_stats`.

In the dict form dates are :class:`datetime.date`, missing values are ``None``, and the maps
(``category_spend``, ``category_refunds``, ``channel_counts``) are dicts; in the DataFrame form
dates are ``datetime64``, missing values NaN/NaT and the maps JSON text.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.arrays import nan_to
from clientfolio.core.errors import SchemaError
from clientfolio.features.behaviour import _json_field, _slug, top_share_array
from clientfolio.features.summary import _UNIT_DAYS, Unit, _date_lit
from clientfolio.store import IDS_IN

DATE_COLS = ["first_day", "second_day", "prev_day", "last_day"]
INT_COLS = ["n_days", "sumsq_gap", "orders", "weekend_days", "email_opens", "email_clicks", "page_views",
            "cart_abandons", "support_tickets", "reviews", "rating_n", "nps_n"]
FLOAT_COLS = ["first_day_value", "last_day_value", "day_value_total", "revenue", "refunds", "cost", "cost_to_serve",
              "december_spend", "gift_spend", "discount_spend", "positive_spend", "rating_sum", "nps_sum"]
MAP_COLS = ["category_spend", "category_refunds", "channel_counts"]
STATS_COLUMNS = ["customer_id", *DATE_COLS, "n_days", "first_day_value", "last_day_value", "day_value_total",
                 "sumsq_gap", "orders", "revenue", "refunds", "cost", "cost_to_serve", "weekend_days",
                 "december_spend", "gift_spend", "discount_spend", "positive_spend", *MAP_COLS,
                 "email_opens", "email_clicks", "page_views", "cart_abandons", "support_tickets", "reviews",
                 "rating_sum", "rating_n", "nps_sum", "nps_n", "last_event_ts"]
# event type -> count column (as behaviour_features counts them)
EVENT_COUNTS = {"email_open": "email_opens", "email_click": "email_clicks", "page_view": "page_views",
                "cart_abandon": "cart_abandons", "support_ticket": "support_tickets", "review": "reviews"}
_GIFT_WORDS = ("true", "1", "yes")


# --------------------------------------------------------------------------- SQL (whole base)

_PER_PORTABLE = """
        ranked AS (
          SELECT customer_id, d, value,
                 row_number() OVER (PARTITION BY customer_id ORDER BY d) AS k,
                 row_number() OVER (PARTITION BY customer_id ORDER BY d DESC) AS back,
                 d - lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap
          FROM days
        ),
        per AS (
          SELECT customer_id, min(d) AS first_day, max(d) FILTER (WHERE k = 2) AS second_day,
                 max(d) FILTER (WHERE back = 2) AS prev_day, max(d) AS last_day, count(*) AS n_days,
                 max(value) FILTER (WHERE k = 1) AS first_day_value,
                 max(value) FILTER (WHERE back = 1) AS last_day_value,
                 sum(value) AS day_value_total, coalesce(sum(gap * gap), 0) AS sumsq_gap,
                 count(*) FILTER (WHERE extract(dow FROM d) IN (0, 6)) AS weekend_days
          FROM ranked GROUP BY customer_id
        ),"""

# DuckDB: one window (the previous purchase day) instead of three.  The second day is the earliest
# with a previous day (k = 2), the day before the last is the last day's previous day (back = 2), the
# first and last day values are taken at the earliest and latest day (arg_min/arg_max): same values.
_PER_DUCKDB = """
        ranked AS (
          SELECT customer_id, d, value, prev, d - prev AS gap FROM (
            SELECT customer_id, d, value, lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS prev FROM days)
        ),
        per AS (
          SELECT customer_id, min(d) AS first_day, min(d) FILTER (WHERE prev IS NOT NULL) AS second_day,
                 arg_max(prev, d) AS prev_day, max(d) AS last_day, count(*) AS n_days,
                 arg_min(value, d) AS first_day_value, arg_max(value, d) AS last_day_value,
                 sum(value) AS day_value_total, coalesce(sum(gap * gap), 0) AS sumsq_gap,
                 count(*) FILTER (WHERE extract(dow FROM d) IN (0, 6)) AS weekend_days
          FROM ranked GROUP BY customer_id
        ),"""


def stats_sql(kind: str, cutoff: str | None, purchasers_only: bool = True) -> str:
    """The SQL of :func:`customer_stats`; `cutoff` is a DATE literal or None (everything stored).

    `kind` "duckdb" gets DuckDB's arg_min/arg_max form (fewer window passes, same values); any other
    kind the SQL both engines run."""
    per = _PER_DUCKDB if kind == "duckdb" else _PER_PORTABLE
    end = f"ts < CAST({cutoff} + 1 AS TIMESTAMP)" if cutoff else "TRUE"
    obj = "json_object_agg" if kind == "postgresql" else "json_group_object"
    gift = _json_field(kind, "attributes", "gift")
    rating = _json_field(kind, "properties", "rating")
    nps = _json_field(kind, "properties", "nps")
    ids = "SELECT customer_id FROM per" if purchasers_only else (
        "SELECT customer_id FROM money UNION SELECT customer_id FROM ev")
    return f"""
        WITH tx AS (
          SELECT customer_id, source, order_id, ts, CAST(ts AS DATE) AS d, amount, is_refund, category, channel,
                 discount, cost, cost_to_serve, attributes
          FROM transactions WHERE customer_id IS NOT NULL AND {end}
        ),
        flags AS (SELECT count(discount) > 0 AS has_disc FROM tx),
        days AS (SELECT customer_id, d, sum(amount) AS value FROM tx WHERE NOT is_refund GROUP BY customer_id, d),
{per}
        money AS (
          SELECT customer_id, count(DISTINCT source || '|' || order_id) FILTER (WHERE NOT is_refund) AS orders,
                 sum(amount) AS revenue, coalesce(sum(amount) FILTER (WHERE is_refund), 0) AS refunds,
                 sum(cost) AS cost, sum(cost_to_serve) AS cost_to_serve,
                 coalesce(sum(amount) FILTER (WHERE NOT is_refund AND extract(month FROM ts) = 12), 0)
                     AS december_spend,
                 coalesce(sum(amount) FILTER (WHERE NOT is_refund AND (
                     lower(coalesce({gift}, '')) IN ('true', '1', 'yes') OR lower(coalesce(category, '')) = 'gift')), 0)
                     AS gift_spend,
                 coalesce(sum(amount) FILTER (WHERE NOT is_refund AND discount > 0), 0) AS discount_spend,
                 coalesce(sum(amount) FILTER (WHERE NOT is_refund AND amount > 0), 0) AS positive_spend
          FROM tx GROUP BY customer_id
        ),
        cat AS (
          SELECT customer_id, category, NOT is_refund AS buy, sum(amount) AS spend
          FROM tx WHERE category IS NOT NULL GROUP BY customer_id, category, is_refund
        ),
        cat_buy AS (SELECT customer_id, CAST({obj}(category, spend) AS TEXT) AS category_spend
                    FROM cat WHERE buy GROUP BY customer_id),
        cat_ref AS (SELECT customer_id, CAST({obj}(category, spend) AS TEXT) AS category_refunds
                    FROM cat WHERE NOT buy GROUP BY customer_id),
        chan AS (SELECT customer_id, channel, count(*) AS n FROM tx WHERE channel IS NOT NULL
                 GROUP BY customer_id, channel),
        chans AS (SELECT customer_id, CAST({obj}(channel, n) AS TEXT) AS channel_counts FROM chan GROUP BY customer_id),
        ev AS (
          SELECT customer_id,
                 count(*) FILTER (WHERE type = 'email_open') AS email_opens,
                 count(*) FILTER (WHERE type = 'email_click') AS email_clicks,
                 count(*) FILTER (WHERE type = 'page_view') AS page_views,
                 count(*) FILTER (WHERE type = 'cart_abandon') AS cart_abandons,
                 count(*) FILTER (WHERE type = 'support_ticket') AS support_tickets,
                 count(*) FILTER (WHERE type = 'review') AS reviews,
                 sum(CAST({rating} AS DOUBLE PRECISION)) FILTER (WHERE type = 'review') AS rating_sum,
                 count(CAST({rating} AS DOUBLE PRECISION)) FILTER (WHERE type = 'review') AS rating_n,
                 sum(CAST({nps} AS DOUBLE PRECISION)) FILTER (WHERE type = 'survey') AS nps_sum,
                 count(CAST({nps} AS DOUBLE PRECISION)) FILTER (WHERE type = 'survey') AS nps_n,
                 max(ts) AS last_event_ts
          FROM events WHERE customer_id IS NOT NULL AND {end} GROUP BY customer_id
        ),
        ids AS ({ids})
        SELECT i.customer_id, p.first_day, p.second_day, p.prev_day, p.last_day, coalesce(p.n_days, 0) AS n_days,
               coalesce(p.first_day_value, 0) AS first_day_value, coalesce(p.last_day_value, 0) AS last_day_value,
               coalesce(p.day_value_total, 0) AS day_value_total, CAST(coalesce(p.sumsq_gap, 0) AS BIGINT) AS sumsq_gap,
               coalesce(m.orders, 0) AS orders, coalesce(m.revenue, 0) AS revenue, coalesce(m.refunds, 0) AS refunds,
               m.cost, m.cost_to_serve, coalesce(p.weekend_days, 0) AS weekend_days,
               coalesce(m.december_spend, 0) AS december_spend, coalesce(m.gift_spend, 0) AS gift_spend,
               CASE WHEN f.has_disc THEN coalesce(m.discount_spend, 0) END AS discount_spend,
               coalesce(m.positive_spend, 0) AS positive_spend,
               coalesce(c.category_spend, '{{}}') AS category_spend,
               coalesce(r.category_refunds, '{{}}') AS category_refunds,
               coalesce(h.channel_counts, '{{}}') AS channel_counts,
               coalesce(e.email_opens, 0) AS email_opens, coalesce(e.email_clicks, 0) AS email_clicks,
               coalesce(e.page_views, 0) AS page_views, coalesce(e.cart_abandons, 0) AS cart_abandons,
               coalesce(e.support_tickets, 0) AS support_tickets, coalesce(e.reviews, 0) AS reviews,
               coalesce(e.rating_sum, 0) AS rating_sum, coalesce(e.rating_n, 0) AS rating_n,
               coalesce(e.nps_sum, 0) AS nps_sum, coalesce(e.nps_n, 0) AS nps_n, e.last_event_ts
        FROM ids i CROSS JOIN flags f
        LEFT JOIN per p ON p.customer_id = i.customer_id
        LEFT JOIN money m ON m.customer_id = i.customer_id
        LEFT JOIN cat_buy c ON c.customer_id = i.customer_id
        LEFT JOIN cat_ref r ON r.customer_id = i.customer_id
        LEFT JOIN chans h ON h.customer_id = i.customer_id
        LEFT JOIN ev e ON e.customer_id = i.customer_id
    """


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The statistics frame with fixed column order and dtypes, whatever the backend returned."""
    out = df[STATS_COLUMNS].copy()
    for col in DATE_COLS + ["last_event_ts"]:
        out[col] = pd.to_datetime(out[col]).astype("datetime64[us]")
    for col in INT_COLS:
        out[col] = out[col].astype("int64")
    for col in FLOAT_COLS:
        out[col] = pd.to_numeric(out[col]).astype("float64")
    for col in ["customer_id", *MAP_COLS]:
        out[col] = out[col].astype("str")
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)


def customer_stats(store: Any, cutoff: str | date | datetime | None = None, *,
                   purchasers_only: bool = True) -> pd.DataFrame:
    """Each customer's sufficient statistics from everything up to `cutoff` (the day included).

    One row per customer with a purchase up to the cut-off (as in :func:`rfm_summary`); with
    ``purchasers_only=False`` also customers who so far only have refunds or events (``n_days``
    0), whose totals a service must keep so that their first purchase starts from them.
    `cutoff` None: everything stored.  Columns: :data:`STATS_COLUMNS`.
    """
    kind = getattr(store, "kind", "duckdb")
    sql = stats_sql(kind, _date_lit(cutoff) if cutoff is not None else None, purchasers_only)
    return _typed(store.query(sql))


# --------------------------------------------------------------------------- statistics -> features

def _maps(col: pd.Series) -> list[dict]:
    """JSON texts (a statistics frame) or dicts (statistics rows) as dicts."""
    return [json.loads(v) if isinstance(v, str) else (v if isinstance(v, dict) else {}) for v in col]


def _top_categories(stats: pd.DataFrame, n: int = 8) -> list[str]:
    """The `n` categories with the most spend, refunds included (as behaviour_features ranks them)."""
    total: dict[str, float] = {}
    for col in ("category_spend", "category_refunds"):
        for m in _maps(stats[col]):
            for k, v in m.items():
                total[k] = total.get(k, 0.0) + v
    return [k for k, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _top_channel(counts: dict[str, int]) -> str | None:
    """Most rows; ties go to the first channel name (ORDER BY count DESC, channel)."""
    if not counts:
        return None
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def derive_features(
    stats: pd.DataFrame,
    as_of: str | date | datetime,
    categories: list[str] | None = None,
    has_discounts: bool | None = None,
    has_events: bool | None = None,
    has_channels: bool | None = None,
    unit: Unit = "D",
) -> pd.DataFrame:
    """The columns of ``rfm_summary(store, cutoff=as_of, unit=unit)`` merged with
    ``behaviour_features(store, as_of)[0]``, computed from statistics alone (no store).

    Parameters
    ----------
    stats
        Statistics as :func:`customer_stats` or :func:`stats_frame` give them, up to `as_of`;
        rows without a purchase (``n_days`` 0) are left out, as in those functions.
    as_of
        The cut-off day: T, tenure and orders_per_month count up to it.
    categories
        Categories to give ``share_<slug>`` columns, in column order (a fitted state keeps
        these).  Default: the 8 with the most spend (refunds included) across `stats`.
    has_discounts, has_events, has_channels
        Whether the data has discount values, events, sales channels: these decide whether
        ``discount_share``, the event columns and ``top_channel`` appear.  Default: read from
        `stats` (any ``discount_spend`` given, any ``last_event_ts``, any channel count).
    unit
        ``"D"`` or ``"W"``, as in :func:`rfm_summary`.
    """
    if unit not in _UNIT_DAYS:
        raise SchemaError(f"The 'unit' of derive_features must be 'D' (days) or 'W' (weeks). Got {unit!r} instead.")
    missing = [c for c in STATS_COLUMNS if c not in stats.columns]
    if missing:
        raise SchemaError(f"derive_features: the statistics lack column(s) {missing}; make them with customer_stats "
                          "or stats_frame")
    _date_lit(as_of)  # a clear error for what is not a date
    cut = pd.Timestamp(pd.Timestamp(as_of).date())
    late = stats["last_day"].max()
    if pd.notna(late) and late > cut:
        raise SchemaError(f"derive_features: the statistics hold purchases up to {late.date()}, after as_of "
                          f"{cut.date()}; compute them at that cut-off with customer_stats(store, cutoff=as_of)")
    ev_late = stats["last_event_ts"].max()
    if pd.notna(ev_late) and ev_late >= cut + pd.Timedelta(days=1):
        raise SchemaError(f"derive_features: the statistics hold events up to {ev_late}, after as_of {cut.date()}; "
                          "compute them at that cut-off with customer_stats(store, cutoff=as_of)")
    if categories is None:
        categories = _top_categories(stats)
    if has_discounts is None:
        has_discounts = bool(stats["discount_spend"].notna().any())
    if has_events is None:
        has_events = bool(stats["last_event_ts"].notna().any())
    if has_channels is None:
        has_channels = any(_maps(stats["channel_counts"]))

    s = stats[stats["n_days"] > 0].sort_values("customer_id", kind="stable").reset_index(drop=True)
    cols = feature_columns(s, cut, categories, has_discounts, has_events, has_channels, unit)
    cols["customer_id"] = s["customer_id"].astype("str")
    if "top_channel" in cols:
        cols["top_channel"] = pd.Series(cols["top_channel"], dtype="str")
    if "top_category" in cols:
        cols["top_category"] = pd.Series(cols["top_category"], dtype="str")
    out = pd.DataFrame(cols)
    out.attrs.update({"unit": unit, "unit_days": _UNIT_DAYS[unit], "cutoff": cut})
    return out


def _floats(col: Any) -> np.ndarray:
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)  # None -> NaN


def feature_columns(s: Any, cut: pd.Timestamp, categories: list[str], has_discounts: bool, has_events: bool,
                    has_channels: bool, unit: Unit = "D") -> dict[str, Any]:
    """The columns of :func:`derive_features` as NumPy arrays, from statistics given as columns (a frame, or
    :func:`stats_columns` of a few customers' rows): the one computation both use, row by row."""
    u = _UNIT_DAYS[unit]
    n = np.asarray(s["n_days"], dtype="int64")
    first, second, prev, last = (np.asarray(s[c], dtype="datetime64[us]") for c in DATE_COLS)
    day = np.timedelta64(1, "D")

    def days(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) / day

    span = days(last, first)
    t_days = (np.datetime64(pd.Timestamp(cut).to_datetime64(), "us") - first) / day
    repeat = np.where(n > 1, n - 1, np.nan)
    gaps = n - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (_floats(s["sumsq_gap"]) - span ** 2 / gaps) / (gaps - 1)
        ipt_std = np.where(gaps >= 2, np.sqrt(np.clip(var, 0, None)), np.nan)
        pos = _floats(s["positive_spend"])
        pos = np.where(pos != 0, pos, np.nan)
        total = _floats(s["day_value_total"])
        total = np.where(total != 0, total, np.nan)
        orders = np.asarray(s["orders"], dtype="int64")
        revenue = _floats(s["revenue"])
        out: dict[str, Any] = {
            "customer_id": np.asarray(s["customer_id"], dtype=object),
            "frequency": (n - 1).astype("int64"),
            "recency": span / u,
            "T": t_days / u,
            "monetary": np.where(n > 1, (_floats(s["day_value_total"]) - _floats(s["first_day_value"])) / repeat, 0.0),
            "first_purchase": first,
            "last_purchase": last,
            "orders": orders,
            "revenue": revenue,
            "refunds": _floats(s["refunds"]),
            "cost": _floats(s["cost"]),
            "cost_to_serve": _floats(s["cost_to_serve"]),
            "aov": revenue / np.where(orders > 0, orders, np.nan),
            "tenure": t_days / u,
            "ipt_mean": span / repeat / u,
            "ipt_std": ipt_std / u,
            "last_gap": days(last, prev) / u,
            "first_gap": days(second, first) / u,
            "ipt_mean_before_last": days(prev, first) / np.where(n > 2, n - 2, np.nan) / u,
            "weekend_share": _floats(s["weekend_days"]) / n,
            "december_share": _floats(s["december_spend"]) / total,
            "gift_share": _floats(s["gift_spend"]) / total,
        }
        if has_discounts:
            disc = _floats(s["discount_spend"])
            out["discount_share"] = np.where(np.isnan(disc), 0.0, disc) / pos
        shares = None
        if categories:
            spend = _maps(s["category_spend"])
            # categories x customers, one division for all (each row a contiguous column of the features)
            shares = nan_to(np.array([[m.get(c, 0.0) for m in spend] for c in categories], dtype=float)
                            .reshape(len(categories), len(spend)) / pos[None, :], 0.0)
            for c, row in zip(categories, shares):
                out[f"share_{_slug(c)}"] = row
        out["orders_per_month"] = orders * 30.4375 / np.maximum(t_days, 30.4375)
        if shares is not None:
            out["top_category"] = top_share_array(shares.T, [_slug(c) for c in categories])
        if has_channels:
            out["top_channel"] = np.array([_top_channel(m) for m in _maps(s["channel_counts"])], dtype=object)
        if has_events:
            for col in EVENT_COUNTS.values():
                out[col] = _floats(s[col])
            rn = _floats(s["rating_n"])
            nn = _floats(s["nps_n"])
            out["avg_rating"] = _floats(s["rating_sum"]) / np.where(rn > 0, rn, np.nan)
            out["nps"] = _floats(s["nps_sum"]) / np.where(nn > 0, nn, np.nan)
            opens = out["email_opens"]
            out["email_click_rate"] = out["email_clicks"] / np.where(opens > 0, opens, np.nan)
    return out


def stats_columns(rows: list[dict]) -> dict[str, Any]:
    """Statistics rows (dicts as :func:`add_order` keeps them) as columns for :func:`feature_columns`, sorted by
    customer and without customers who have no purchase (as :func:`derive_features` takes them)."""
    rows = sorted((r for r in rows if r["n_days"] > 0), key=lambda r: str(r["customer_id"]))
    cols: dict[str, Any] = {}
    for c in STATS_COLUMNS:
        vals = [r.get(c) for r in rows]
        if c in DATE_COLS or c == "last_event_ts":
            cols[c] = np.array([np.datetime64("NaT") if v is None else v for v in vals], dtype="datetime64[us]")
        elif c in MAP_COLS:
            cols[c] = vals
        elif c == "customer_id":
            cols[c] = np.array([str(v) for v in vals], dtype=object)
        else:
            cols[c] = np.array([np.nan if v is None else v for v in vals], dtype=float)
    return cols


# Columns of derive_features that depend on the day they are derived at (with no new event): the rest do not.
DAY_COLUMNS = ("T", "tenure", "orders_per_month")


def features_at(features: pd.DataFrame, as_of: str | date | datetime) -> pd.DataFrame:
    """Features from :func:`derive_features` (unit "D") moved to another day with no event in between.

    Only :data:`DAY_COLUMNS` change, computed exactly as :func:`derive_features` computes them,
    so looking at many future days costs one derivation instead of one per day.  Extra columns
    (attributes, 12-month value) are carried along unchanged.
    """
    if features.attrs.get("unit_days", 1.0) != 1.0:
        raise SchemaError("features_at: the features must be in days (unit 'D')")
    cut = pd.Timestamp(pd.Timestamp(as_of).date())
    first = features["first_purchase"].astype("datetime64[us]")
    t_days = ((cut - first) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    out = features.copy()
    out["T"] = t_days
    out["tenure"] = t_days
    out["orders_per_month"] = features["orders"].to_numpy(dtype="int64") * 30.4375 / np.maximum(t_days, 30.4375)
    out.attrs.update(features.attrs)
    out.attrs["cutoff"] = cut
    return out


# --------------------------------------------------------------------------- one customer, one event

def empty_stats(customer_id: str) -> dict:
    """The statistics of a customer with nothing yet (no purchase, refund or event)."""
    return {
        "customer_id": customer_id, "first_day": None, "second_day": None, "prev_day": None, "last_day": None,
        "n_days": 0, "first_day_value": 0.0, "last_day_value": 0.0, "day_value_total": 0.0, "sumsq_gap": 0,
        "orders": 0, "revenue": 0.0, "refunds": 0.0, "cost": None, "cost_to_serve": None, "weekend_days": 0,
        "december_spend": 0.0, "gift_spend": 0.0, "discount_spend": None, "positive_spend": 0.0,
        "category_spend": {}, "category_refunds": {}, "channel_counts": {},
        "email_opens": 0, "email_clicks": 0, "page_views": 0, "cart_abandons": 0, "support_tickets": 0,
        "reviews": 0, "rating_sum": 0.0, "rating_n": 0, "nps_sum": 0.0, "nps_n": 0, "last_event_ts": None,
    }


def _copy(stats: dict) -> dict:
    out = dict(stats)
    for k in MAP_COLS:
        out[k] = dict(stats[k])
    return out


def _num(v: Any) -> float | None:
    """A number from a line's field; None and NaN are missing."""
    if v is None or v is pd.NA:
        return None
    f = float(v)
    return None if f != f else f


def _utc(ts: datetime) -> datetime:
    """Naive UTC, as the store keeps timestamps."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


def _is_gift(category: str | None, attributes: Any) -> bool:
    if category is not None and category.lower() == "gift":
        return True
    if not isinstance(attributes, str) or "gift" not in attributes:
        return False
    try:
        v = json.loads(attributes)
    except ValueError:
        return False
    v = v.get("gift") if isinstance(v, dict) else None
    if v is None:
        return False
    return (v if isinstance(v, str) else json.dumps(v)).lower() in _GIFT_WORDS


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def add_order(stats: dict | None, customer_id: str, lines: list[dict]) -> dict | None:
    """`stats` after one new order of `customer_id` (its lines: canonical transaction rows).

    Returns new statistics (`stats` is not changed), or **None when the order cannot be applied
    incrementally**: a purchase line (not a refund) dated before the customer's last purchase
    day.  Only the days' order is lost then, not the data: recompute the customer with
    :func:`customer_stats` (the store holds the order by now).  Refund lines may carry any
    date.  Each order must be applied once, with all its lines: applying more lines of an
    already applied order would count the order twice.

    ``discount_spend`` stays None until a line of this customer carries a discount value
    (:func:`customer_stats` gives 0 instead when any line in the store does);
    :func:`derive_features` reads both as no discounted spend.
    """
    s = empty_stats(customer_id) if stats is None else _copy(stats)
    last = s["last_day"]
    day_values: dict[date, float] = {}
    for line in lines:
        ts = _utc(line["ts"])
        amount = float(line["amount"])
        category = _text(line.get("category"))
        channel = _text(line.get("channel"))
        discount = _num(line.get("discount"))
        s["revenue"] += amount
        for key in ("cost", "cost_to_serve"):
            v = _num(line.get(key))
            if v is not None:
                s[key] = v if s[key] is None else s[key] + v
        if channel is not None:
            s["channel_counts"][channel] = s["channel_counts"].get(channel, 0) + 1
        if discount is not None and s["discount_spend"] is None:
            s["discount_spend"] = 0.0
        if line["is_refund"]:
            s["refunds"] += amount
            if category is not None:
                s["category_refunds"][category] = s["category_refunds"].get(category, 0.0) + amount
            continue
        d = ts.date()
        if last is not None and d < last:
            return None
        day_values[d] = day_values.get(d, 0.0) + amount
        if ts.month == 12:
            s["december_spend"] += amount
        if _is_gift(category, line.get("attributes")):
            s["gift_spend"] += amount
        if discount is not None and discount > 0:
            s["discount_spend"] += amount
        if amount > 0:
            s["positive_spend"] += amount
        if category is not None:
            s["category_spend"][category] = s["category_spend"].get(category, 0.0) + amount
    if day_values:
        s["orders"] += 1
    for d in sorted(day_values):
        v = day_values[d]
        s["day_value_total"] += v
        if s["last_day"] is None or d > s["last_day"]:
            if s["last_day"] is None:
                s["first_day"], s["first_day_value"] = d, v
            else:
                gap = (d - s["last_day"]).days
                s["sumsq_gap"] += gap * gap
                s["prev_day"] = s["last_day"]
                if s["n_days"] == 1:
                    s["second_day"] = d
            s["last_day"], s["last_day_value"] = d, v
            s["n_days"] += 1
            s["weekend_days"] += d.weekday() >= 5
        else:  # d == last_day
            s["last_day_value"] += v
            if s["n_days"] == 1:
                s["first_day_value"] += v
    return s


def _prop(properties: Any, key: str) -> float | None:
    """A numeric survey/review property, as CAST(json field AS DOUBLE) reads it ('' and null: missing)."""
    if not isinstance(properties, str) or key not in properties:
        return None
    try:
        v = json.loads(properties)
    except ValueError:
        return None
    v = v.get(key) if isinstance(v, dict) else None
    if v is None or v == "":
        return None
    bad = f"event property {key!r} should be a number, found {v!r}; fix the events' properties"
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise SchemaError(bad)
    try:
        return float(v)
    except ValueError:
        raise SchemaError(bad) from None


def add_event(stats: dict | None, event: dict) -> dict:
    """`stats` after one canonical event (``customer_id``, ``type``, ``ts``, ``properties``).

    Events may arrive in any order.  A customer without statistics yet starts from
    :func:`empty_stats` (``n_days`` 0: not yet a row of the features).
    """
    s = empty_stats(event["customer_id"]) if stats is None else _copy(stats)
    kind = event["type"]
    col = EVENT_COUNTS.get(kind)
    if col is not None:
        s[col] += 1
    if kind == "review":
        r = _prop(event.get("properties"), "rating")
        if r is not None:
            s["rating_sum"] += r
            s["rating_n"] += 1
    elif kind == "survey":
        r = _prop(event.get("properties"), "nps")
        if r is not None:
            s["nps_sum"] += r
            s["nps_n"] += 1
    ts = _utc(event["ts"])
    if s["last_event_ts"] is None or ts > s["last_event_ts"]:
        s["last_event_ts"] = ts
    return s


# --------------------------------------------------------------------------- converters

def _none(v: Any) -> Any:
    return None if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)) else v


def stats_rows(df: pd.DataFrame) -> list[dict]:
    """Statistics frame -> one dict per customer (dates as ``date``, maps as dicts, None for missing)."""
    rows = []
    for rec in df[STATS_COLUMNS].to_dict("records"):
        r = {k: _none(v) for k, v in rec.items()}
        for k in DATE_COLS:
            r[k] = None if r[k] is None else pd.Timestamp(r[k]).date()
        if r["last_event_ts"] is not None:
            r["last_event_ts"] = pd.Timestamp(r["last_event_ts"]).to_pydatetime()
        for k in INT_COLS:
            r[k] = int(r[k])
        for k in FLOAT_COLS:
            r[k] = None if r[k] is None else float(r[k])
        for k in MAP_COLS:
            r[k] = json.loads(r[k]) if isinstance(r[k], str) else dict(r[k] or {})
        r["customer_id"] = str(r["customer_id"])
        rows.append(r)
    return rows


def stats_frame(rows: list[dict]) -> pd.DataFrame:
    """Dicts as :func:`add_order` keeps them -> a statistics frame like :func:`customer_stats`'s."""
    recs = [{**r, **{k: json.dumps(r[k], sort_keys=True) for k in MAP_COLS}} for r in rows]
    df = pd.DataFrame(recs, columns=STATS_COLUMNS)
    for k in FLOAT_COLS:
        df[k] = df[k].astype("float64")  # None -> NaN
    return _typed(df)


_TX_COLUMNS = ["customer_id", "source", "order_id", "ts", "amount", "is_refund", "category", "channel", "discount",
               "cost", "cost_to_serve", "attributes"]
_EV_COLUMNS = ["customer_id", "ts", "type", "properties"]


def stats_for(store: Any, customer_ids: list[str], new_transactions: pd.DataFrame | None = None,
              new_events: pd.DataFrame | None = None, cutoff: str | date | datetime | None = None) -> pd.DataFrame:
    """The statistics of a few customers from their whole history in the store plus rows not stored yet.

    The rescan for the one case :func:`add_order` cannot update (a back-dated order, an edited or
    cancelled one): their stored rows and the new ones go to an in-memory DuckDB and through the
    same SQL as :func:`customer_stats`.  Customers with only events are included (``n_days`` 0).
    """
    import duckdb

    ids = [str(c) for c in dict.fromkeys(customer_ids)]
    if not ids:
        return _typed(pd.DataFrame(columns=STATS_COLUMNS))
    tx = store.query(f"SELECT {', '.join(_TX_COLUMNS)} FROM transactions WHERE {IDS_IN}", [ids])
    ev = store.query(f"SELECT {', '.join(_EV_COLUMNS)} FROM events WHERE {IDS_IN}", [ids])
    if new_transactions is not None and len(new_transactions):
        extra = new_transactions.reindex(columns=_TX_COLUMNS)
        extra = extra[extra["customer_id"].astype(str).isin(ids)]
        tx = pd.concat([tx.astype({"ts": "datetime64[us]"}), extra.astype({"ts": "datetime64[us]"})], ignore_index=True)
    if new_events is not None and len(new_events):
        extra = new_events.reindex(columns=_EV_COLUMNS)
        extra = extra[extra["customer_id"].astype(str).isin(ids)]
        ev = pd.concat([ev.astype({"ts": "datetime64[us]"}), extra.astype({"ts": "datetime64[us]"})], ignore_index=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        tx = tx.astype({"customer_id": object, "source": object, "order_id": object, "category": object,
                        "channel": object, "attributes": object, "amount": float, "discount": float, "cost": float,
                        "cost_to_serve": float, "is_refund": bool})
        con.register("tx_in", tx)
        con.register("ev_in", ev.astype({"customer_id": object, "type": object, "properties": object}))
        con.execute("CREATE TEMP TABLE transactions AS SELECT customer_id::TEXT AS customer_id, source::TEXT AS source, "
                    "order_id::TEXT AS order_id, ts::TIMESTAMP AS ts, amount::DOUBLE AS amount, is_refund::BOOLEAN AS "
                    "is_refund, category::TEXT AS category, channel::TEXT AS channel, discount::DOUBLE AS discount, "
                    "cost::DOUBLE AS cost, cost_to_serve::DOUBLE AS cost_to_serve, attributes::TEXT AS attributes "
                    "FROM tx_in")
        con.execute("CREATE TEMP TABLE events AS SELECT customer_id::TEXT AS customer_id, ts::TIMESTAMP AS ts, "
                    "type::TEXT AS type, properties::TEXT AS properties FROM ev_in")
        sql = stats_sql("duckdb", _date_lit(cutoff) if cutoff is not None else None, False)
        return _typed(con.execute(sql).df())
    finally:
        con.close()
