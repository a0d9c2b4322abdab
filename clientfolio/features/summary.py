"""Per-customer summaries at a cut-off date, computed in SQL where the data lives.

The buy-till-you-die models need, per customer (REFERENCE.md, "Definitions"):

- ``frequency``: repeat purchase occasions — distinct purchase days after the first one
  (several orders on one day are one occasion, as in the literature);
- ``recency``: time from the first to the last purchase (0 for one-time buyers);
- ``T``: time from the first purchase to the cut-off;
- ``monetary``: mean value of the repeat occasions (the first purchase is excluded).

Refund rows are not purchase occasions and do not enter ``monetary``; they do reduce
``revenue`` (net).  Guest sales (no customer) are left out.  The same SQL runs on DuckDB
(the embedded store, or an in-memory copy of a DataFrame) and on PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import duckdb
import pandas as pd

from clientfolio.core.errors import SchemaError

Unit = Literal["D", "W"]
_UNIT_DAYS = {"D": 1.0, "W": 7.0}


def _date_lit(value: str | date | datetime | pd.Timestamp) -> str:
    try:
        d = pd.Timestamp(value).date()
    except (ValueError, TypeError):
        raise SchemaError(f"cannot read {value!r} as a date; use e.g. '2024-06-30'") from None
    return f"DATE '{d.isoformat()}'"


PER_PORTABLE = """
        ranked AS (
          SELECT customer_id, d, value, row_number() OVER (PARTITION BY customer_id ORDER BY d) AS k,
                 d - lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap
          FROM days
        ),
        last_gaps AS (
          SELECT customer_id, gap AS last_gap FROM (
            SELECT customer_id, gap, row_number() OVER (PARTITION BY customer_id ORDER BY d DESC) AS back
            FROM ranked) r WHERE back = 1
        ),
        per AS (
          SELECT r.customer_id, min(d) AS first_purchase, max(d) AS last_purchase, count(*) - 1 AS frequency,
                 avg(value) FILTER (WHERE k > 1) AS monetary, avg(gap) AS ipt_mean, stddev_samp(gap) AS ipt_std,
                 max(l.last_gap) AS last_gap, max(gap) FILTER (WHERE k = 2) AS first_gap,
                 CAST(sum(gap) - max(l.last_gap) AS DOUBLE PRECISION) / nullif(count(gap) - 1, 0)
                     AS ipt_mean_before_last
          FROM ranked r JOIN last_gaps l ON l.customer_id = r.customer_id GROUP BY r.customer_id
        ),"""

# DuckDB: one window (the gap to the previous purchase day) instead of three and a self-join.  The first
# day is the one row without a gap (k = 1), so "k > 1" is "gap IS NOT NULL"; the last gap is the gap of the
# latest day (arg_max), the first gap the gap of the earliest day that has one (k = 2).  Same values as
# PER_PORTABLE, in about 60% of the time at 1M orders.
PER_DUCKDB = """
        ranked AS (
          SELECT customer_id, d, value, d - lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap
          FROM days
        ),
        per AS (
          SELECT customer_id, min(d) AS first_purchase, max(d) AS last_purchase, count(*) - 1 AS frequency,
                 avg(value) FILTER (WHERE gap IS NOT NULL) AS monetary, avg(gap) AS ipt_mean,
                 stddev_samp(gap) AS ipt_std, arg_max(gap, d) AS last_gap,
                 arg_min(gap, d) FILTER (WHERE gap IS NOT NULL) AS first_gap,
                 CAST(sum(gap) - arg_max(gap, d) AS DOUBLE PRECISION) / nullif(count(gap) - 1, 0)
                     AS ipt_mean_before_last
          FROM ranked GROUP BY customer_id
        ),"""


def summary_sql(cutoff: str, unit: Unit, holdout_end: str | None = None, table: str = "transactions",
                dialect: str = "any") -> str:
    """The SQL of :func:`rfm_summary`; `cutoff`/`holdout_end` are DATE literals.

    `dialect` "duckdb" uses DuckDB's arg_max/arg_min (faster, same values); anything else gives SQL that
    runs on DuckDB and PostgreSQL alike."""
    if unit not in _UNIT_DAYS:
        raise SchemaError(f"The 'unit' of rfm_summary must be 'D' (days) or 'W' (weeks). Got {unit!r} instead.")
    u = _UNIT_DAYS[unit]
    end = f"{cutoff} + 1"  # the cut-off day is included
    holdout = ""
    holdout_cols = ""
    if holdout_end is not None:
        holdout = f""",
        hold AS (
          SELECT customer_id,
                 count(DISTINCT CAST(ts AS DATE)) FILTER (WHERE NOT is_refund) AS frequency_holdout,
                 coalesce(sum(amount) FILTER (WHERE NOT is_refund), 0) AS monetary_holdout_total,
                 coalesce(sum(amount), 0) AS spend_holdout
          FROM {table}
          WHERE customer_id IS NOT NULL AND ts >= CAST({end} AS TIMESTAMP) AND ts < CAST({holdout_end} + 1 AS TIMESTAMP)
          GROUP BY customer_id)"""
        holdout_cols = f""",
               coalesce(h.frequency_holdout, 0) AS frequency_holdout,
               CASE WHEN h.frequency_holdout > 0 THEN h.monetary_holdout_total / h.frequency_holdout END
                   AS monetary_holdout,
               coalesce(h.spend_holdout, 0) AS spend_holdout,
               ({holdout_end} - {cutoff}) / {u} AS duration_holdout"""
    join = "LEFT JOIN hold h ON h.customer_id = p.customer_id" if holdout_end is not None else ""
    per = PER_DUCKDB if dialect == "duckdb" else PER_PORTABLE
    return f"""
        WITH tx AS (
          SELECT customer_id, source, order_id, CAST(ts AS DATE) AS d, amount, is_refund, cost, cost_to_serve
          FROM {table} WHERE customer_id IS NOT NULL AND ts < CAST({end} AS TIMESTAMP)
        ),
        days AS (
          SELECT customer_id, d, sum(amount) AS value
          FROM tx WHERE NOT is_refund GROUP BY customer_id, d
        ),
{per}
        money AS (
          SELECT customer_id, count(DISTINCT source || '|' || order_id) FILTER (WHERE NOT is_refund) AS orders,
                 sum(amount) AS revenue, coalesce(sum(amount) FILTER (WHERE is_refund), 0) AS refunds,
                 sum(cost) AS cost, sum(cost_to_serve) AS cost_to_serve
          FROM tx GROUP BY customer_id
        ){holdout}
        SELECT p.customer_id, p.frequency,
               (p.last_purchase - p.first_purchase) / {u} AS recency,
               ({cutoff} - p.first_purchase) / {u} AS "T",
               coalesce(p.monetary, 0) AS monetary,
               p.first_purchase, p.last_purchase, m.orders, m.revenue, m.refunds, m.cost, m.cost_to_serve,
               m.revenue / nullif(m.orders, 0) AS aov,
               ({cutoff} - p.first_purchase) / {u} AS tenure,
               p.ipt_mean / {u} AS ipt_mean, p.ipt_std / {u} AS ipt_std,
               p.last_gap / {u} AS last_gap, p.first_gap / {u} AS first_gap,
               p.ipt_mean_before_last / {u} AS ipt_mean_before_last{holdout_cols}
        FROM per p JOIN money m ON m.customer_id = p.customer_id {join}
        ORDER BY p.customer_id
    """


def _from_frame(df: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    cols = {c.lower(): c for c in df.columns}
    missing = [c for c in ("customer_id", "amount") if c not in cols]
    ts_col = cols.get("ts") or cols.get("date")
    if missing or ts_col is None:
        need = missing + ([] if ts_col else ["ts (or date)"])
        raise SchemaError(f"rfm_summary: the transactions DataFrame lacks column(s) {need}; "
                          f"it has {list(df.columns)}")
    ts = df[ts_col]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        try:
            ts = pd.to_datetime(ts, format="ISO8601")
        except (ValueError, TypeError):
            raise SchemaError(f"rfm_summary: column {ts_col!r} holds dates that are not ISO 8601 (e.g. "
                              f"{df[ts_col].iloc[0]!r}); convert it first with pd.to_datetime(..., format=...), "
                              "so that day and month are not guessed") from None
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    frame = pd.DataFrame({
        "customer_id": df[cols["customer_id"]].astype("string"),
        "source": df[cols["source"]].astype("string") if "source" in cols else "frame",
        "order_id": df[cols["order_id"]].astype("string") if "order_id" in cols else pd.RangeIndex(len(df)).astype(str),
        "ts": ts,
        "amount": pd.to_numeric(df[cols["amount"]], errors="raise").astype(float),
        "is_refund": df[cols["is_refund"]].astype(bool) if "is_refund" in cols else False,
        "cost": pd.to_numeric(df[cols["cost"]], errors="coerce").astype(float) if "cost" in cols else float("nan"),
        "cost_to_serve": (pd.to_numeric(df[cols["cost_to_serve"]], errors="coerce").astype(float)
                          if "cost_to_serve" in cols else float("nan")),
    })
    con = duckdb.connect()
    con.register("transactions", frame)
    return con


def rfm_summary(
    data: pd.DataFrame | object,
    *,
    cutoff: str | date | datetime | None = None,
    unit: Unit = "D",
    holdout_end: str | date | datetime | None = None,
) -> pd.DataFrame:
    """Per-customer frequency, recency, T, monetary (and more) at `cutoff`.

    Parameters
    ----------
    data
        A transactions DataFrame (``customer_id``, ``ts`` or ``date``, ``amount``; optional
        ``order_id``, ``is_refund``) or a store from :func:`clientfolio.store.open_store`.
    cutoff
        Last day of the calibration period (included); default: the last purchase day.
    unit
        ``"D"`` (days) or ``"W"`` (weeks, i.e. days / 7, as in the CDNOW papers).
    holdout_end
        If given, also count each customer's purchase occasions and spend after `cutoff`
        up to this day: ``frequency_holdout``, ``monetary_holdout``, ``spend_holdout``.
    """
    from clientfolio.store import Store

    if isinstance(data, pd.DataFrame):
        con = _from_frame(data)

        def run(sql: str) -> pd.DataFrame:
            return con.execute(sql).df()
        dialect = "duckdb"
    elif isinstance(data, Store):
        run = data.query
        dialect = getattr(data, "kind", "any")
    else:
        raise SchemaError(f"rfm_summary: expected a DataFrame or a Store, got {type(data).__name__}")
    if cutoff is None:
        last = run("SELECT max(ts) AS m FROM transactions WHERE customer_id IS NOT NULL")["m"].iloc[0]
        if last is None or pd.isna(last):
            raise SchemaError("rfm_summary: there are no transactions with a customer")
        cutoff = pd.Timestamp(last)
    c = _date_lit(cutoff)
    h = _date_lit(holdout_end) if holdout_end is not None else None
    if h is not None and pd.Timestamp(holdout_end) <= pd.Timestamp(cutoff):
        raise SchemaError(f"rfm_summary: holdout_end ({holdout_end}) must be after cutoff ({cutoff})")
    out = run(summary_sql(c, unit, h, dialect=dialect))
    for col in ("frequency", "orders") + (("frequency_holdout",) if h else ()):
        out[col] = out[col].astype("int64")
    for col in ("recency", "T", "monetary", "revenue", "refunds", "cost", "cost_to_serve", "aov", "tenure", "ipt_mean", "ipt_std",
                "last_gap", "first_gap", "ipt_mean_before_last"):
        out[col] = out[col].astype("float64")
    # Scores need to know what one unit of T is and when "now" was.
    out.attrs.update({"unit": unit, "unit_days": _UNIT_DAYS[unit], "cutoff": pd.Timestamp(cutoff).normalize()})
    return out


def daily_activity(data: pd.DataFrame | object) -> pd.DataFrame:
    """Per day: customers making their first purchase, and repeat purchase occasions (one per
    customer and day).  The input of the tracking chart; computed in SQL."""
    from clientfolio.store import Store

    sql = """
        WITH days AS (SELECT DISTINCT customer_id, CAST(ts AS DATE) AS d FROM transactions
                      WHERE customer_id IS NOT NULL AND NOT is_refund),
        firsts AS (SELECT customer_id, min(d) AS f FROM days GROUP BY customer_id)
        SELECT d AS day, count(*) FILTER (WHERE d = f) AS first_purchases,
               count(*) FILTER (WHERE d > f) AS repeat_occasions
        FROM days JOIN firsts USING (customer_id) GROUP BY d ORDER BY d"""
    if isinstance(data, pd.DataFrame):
        out = _from_frame(data).execute(sql).df()
    elif isinstance(data, Store):
        out = data.query(sql)
    else:
        raise SchemaError(f"daily_activity: expected a DataFrame or a Store, got {type(data).__name__}")
    out[["first_purchases", "repeat_occasions"]] = out[["first_purchases", "repeat_occasions"]].astype("int64")
    return out
