"""Every customer's features written once in the PySpark DataFrame API, to run on Spark or on DuckDB.

The same functions run on a real Spark session (``pyspark``) and, through SQLFrame, on DuckDB
with no JVM; they give the columns, names and values of the store's SQL
(:func:`clientfolio.features.rfm_summary`, :func:`clientfolio.features.behaviour_features`,
:func:`clientfolio.state.value_12m`) for a canonical transactions table (the store's
``transactions`` columns, e.g. written to Parquet).  Why this layer and not another: see
docs/scaling.md ("Choosing the portable layer").

Each function takes a DataFrame and returns a lazy DataFrame: nothing runs until it is written
or collected, so on Spark the work stays on the executors.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pandas as pd

from clientfolio.features.behaviour import _slug

REQUIRED = ("customer_id", "order_id", "ts", "amount")
DAYS_PER_MONTH = 30.4375  # as in behaviour_features' orders_per_month


@dataclass(frozen=True)
class Api:
    """The functions module and the Window class of the engine a DataFrame belongs to."""

    F: ModuleType
    Window: Any


def api_of(df: Any) -> Api:  # noqa: ANN401 - a PySpark or SQLFrame DataFrame
    """The PySpark API of `df`'s engine: real Spark, or SQLFrame's (DuckDB, Spark, ...)."""
    module = type(df).__module__
    if module.startswith("sqlframe."):
        engine = module.split(".")[1]
        import importlib

        F = importlib.import_module(f"sqlframe.{engine}.functions")
        return Api(F, importlib.import_module(f"sqlframe.{engine}").Window)
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    return Api(F, Window)


def canonical(tx: Any) -> Any:  # noqa: ANN401
    """The store's transaction columns the features read, with defaults for the optional ones.

    A Parquet file needs ``customer_id``, ``order_id``, ``ts`` (timestamp, UTC) and ``amount``;
    ``source`` (default "parquet"), ``is_refund`` (default false), ``cost``, ``cost_to_serve``,
    ``category``, ``channel``, ``discount`` and ``attributes`` (JSON text) are read when present.
    """
    from clientfolio.core.errors import SchemaError

    a = api_of(tx)
    F = a.F
    have = set(tx.columns)
    missing = [c for c in REQUIRED if c not in have]
    if missing:
        raise SchemaError(f"the transactions lack column(s) {missing}: a Parquet input needs customer_id, "
                          f"order_id, ts and amount (it has {sorted(have)})")
    defaults = {"source": F.lit("parquet"), "is_refund": F.lit(False), "cost": F.lit(None).cast("double"),
                "cost_to_serve": F.lit(None).cast("double"), "category": F.lit(None).cast("string"),
                "channel": F.lit(None).cast("string"), "discount": F.lit(None).cast("double"),
                "attributes": F.lit(None).cast("string"), "country": F.lit(None).cast("string"),
                "consent_marketing": F.lit(None).cast("boolean")}
    cols = [F.col(c).cast("string").alias(c) for c in ("customer_id", "order_id")]
    cols += [F.col("ts").cast("timestamp").alias("ts"), F.col("amount").cast("double").alias("amount")]
    for name, default in defaults.items():
        cols.append(F.col(name).alias(name) if name in have else default.alias(name))
    return tx.select(*cols)


def _end(F: ModuleType, cutoff: pd.Timestamp) -> Any:  # noqa: ANN401
    """The first instant after the cut-off day (the day is included)."""
    return F.lit((pd.Timestamp(cutoff).normalize() + pd.Timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")


def _day(F: ModuleType, cutoff: pd.Timestamp) -> Any:  # noqa: ANN401
    return F.lit(pd.Timestamp(cutoff).strftime("%Y-%m-%d")).cast("date")


def _ratio(F: ModuleType, num: Any, den: Any) -> Any:  # noqa: ANN401
    """num / den, null where den is 0 or null (SQL's nullif), also under Spark's ANSI mode."""
    return F.when(den != 0, num / den)


def summary_frame(tx: Any, cutoff: pd.Timestamp) -> Any:  # noqa: ANN401
    """Per customer at `cutoff`, in days: the columns of ``rfm_summary(store, cutoff=..., unit="D")``."""
    a = api_of(tx)
    F, W = a.F, a.Window
    tx = tx.where(F.col("customer_id").isNotNull() & (F.col("ts") < _end(F, cutoff)))
    tx = tx.withColumn("d", F.to_date("ts"))
    days = (tx.where(~F.col("is_refund")).groupBy("customer_id", "d").agg(F.sum("amount").alias("value")))
    by_day = W.partitionBy("customer_id").orderBy("d")
    ranked = (days.withColumn("k", F.row_number().over(by_day))
              .withColumn("gap", F.datediff(F.col("d"), F.lag("d").over(by_day)))
              .withColumn("n", F.count(F.lit(1)).over(W.partitionBy("customer_id"))))
    per = ranked.groupBy("customer_id").agg(
        F.min("d").alias("first_purchase"), F.max("d").alias("last_purchase"),
        (F.count(F.lit(1)) - 1).alias("frequency"),
        F.avg(F.when(F.col("k") > 1, F.col("value"))).alias("monetary"),
        F.avg(F.col("gap").cast("double")).alias("ipt_mean"),
        F.stddev_samp(F.col("gap").cast("double")).alias("ipt_std"),
        F.max(F.when(F.col("k") == F.col("n"), F.col("gap"))).cast("double").alias("last_gap"),
        F.max(F.when(F.col("k") == 2, F.col("gap"))).cast("double").alias("first_gap"),
        F.sum(F.col("gap")).cast("double").alias("_gap_sum"), F.count(F.col("gap")).alias("_gaps"))
    per = per.withColumn("ipt_mean_before_last",
                         F.when(F.col("_gaps") > 1, (F.col("_gap_sum") - F.col("last_gap")) / (F.col("_gaps") - 1)))
    c = _day(F, cutoff)
    t = F.datediff(c, F.col("first_purchase")).cast("double")
    per = per.select(
        "customer_id", F.col("frequency").cast("long").alias("frequency"),
        F.datediff(F.col("last_purchase"), F.col("first_purchase")).cast("double").alias("recency"),
        t.alias("T"), F.coalesce(F.col("monetary"), F.lit(0.0)).alias("monetary"),
        "first_purchase", "last_purchase", t.alias("tenure"), "ipt_mean", "ipt_std", "last_gap", "first_gap",
        "ipt_mean_before_last")
    key = F.concat(F.col("source"), F.lit("|"), F.col("order_id"))
    money = tx.groupBy("customer_id").agg(
        F.count_distinct(F.when(~F.col("is_refund"), key)).cast("long").alias("orders"),
        F.sum("amount").alias("revenue"),
        F.coalesce(F.sum(F.when(F.col("is_refund"), F.col("amount"))), F.lit(0.0)).alias("refunds"),
        F.sum("cost").cast("double").alias("cost"), F.sum("cost_to_serve").cast("double").alias("cost_to_serve"))
    money = money.withColumn("aov", _ratio(F, F.col("revenue"), F.col("orders")))
    # Joined and selected by name only (qualified columns after a join trip SQLFrame's resolver).
    return per.join(money, on="customer_id", how="inner").select(*SUMMARY_COLUMNS)


SUMMARY_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary", "first_purchase", "last_purchase", "orders",
                   "revenue", "refunds", "cost", "cost_to_serve", "aov", "tenure", "ipt_mean", "ipt_std", "last_gap",
                   "first_gap", "ipt_mean_before_last")


def holdout_frame(tx: Any, cutoff: pd.Timestamp, holdout_end: pd.Timestamp) -> Any:  # noqa: ANN401
    """Per customer who bought by `cutoff`: ``frequency, recency, T`` (days) at `cutoff` and
    ``frequency_holdout`` (days with a purchase after `cutoff` up to `holdout_end`), as
    ``rfm_summary(store, cutoff=..., unit="D", holdout_end=...)`` -- what the holdout model choice reads."""
    F = api_of(tx).F
    tx = tx.where(F.col("customer_id").isNotNull() & ~F.col("is_refund")).withColumn("d", F.to_date("ts"))
    days = tx.where(F.col("ts") < _end(F, cutoff)).select("customer_id", "d").distinct()
    per = days.groupBy("customer_id").agg(F.min("d").alias("first_purchase"), F.max("d").alias("last_purchase"),
                                          (F.count(F.lit(1)) - 1).alias("frequency"))
    hold = (tx.where((F.col("ts") >= _end(F, cutoff)) & (F.col("ts") < _end(F, holdout_end)))
            .groupBy("customer_id").agg(F.count_distinct(F.col("d")).alias("frequency_holdout")))
    out = per.join(hold, on="customer_id", how="left")
    return out.select(
        "customer_id", F.col("frequency").cast("long").alias("frequency"),
        F.datediff(F.col("last_purchase"), F.col("first_purchase")).cast("double").alias("recency"),
        F.datediff(_day(F, cutoff), F.col("first_purchase")).cast("double").alias("T"),
        F.coalesce(F.col("frequency_holdout"), F.lit(0)).cast("long").alias("frequency_holdout"))


@dataclass(frozen=True)
class Shape:
    """What this shop's transactions hold, read once: the behaviour columns depend on it."""

    categories: list[str]
    discounts: bool
    channels: bool
    attributes: bool


def shape_of(tx: Any, cutoff: pd.Timestamp, max_categories: int = 8) -> Shape:  # noqa: ANN401
    """The top categories by revenue and which optional columns are filled (two small queries)."""
    F = api_of(tx).F
    tx = tx.where(F.col("customer_id").isNotNull() & (F.col("ts") < _end(F, cutoff)))
    has = tx.agg(F.count("category").alias("cat"), F.count("discount").alias("disc"),
                 F.count("channel").alias("chan"), F.count("attributes").alias("attrs")).collect()[0]
    cats: list[str] = []
    if has["cat"]:
        top = (tx.where(F.col("category").isNotNull()).groupBy("category").agg(F.sum("amount").alias("s"))
               .orderBy(F.col("s").desc()).limit(int(max_categories)).collect())
        cats = [r["category"] for r in top]
    return Shape(cats, bool(has["disc"]), bool(has["chan"]), bool(has["attrs"]))


def behaviour_frame(tx: Any, cutoff: pd.Timestamp, shape: Shape) -> Any:  # noqa: ANN401
    """Per customer: the SQL columns of ``behaviour_features`` (``top_category`` is added after collecting)."""
    a = api_of(tx)
    F, W = a.F, a.Window
    upto = tx.where(F.col("customer_id").isNotNull() & (F.col("ts") < _end(F, cutoff)))
    tx = upto.where(~F.col("is_refund"))
    d = F.to_date("ts")
    positive = F.sum(F.when(F.col("amount") > 0, F.col("amount")))
    total = F.sum("amount")
    gift = F.lower(F.coalesce(F.col("category"), F.lit(""))) == "gift"
    if shape.attributes:
        flag = F.lower(F.coalesce(F.get_json_object(F.col("attributes"), "$.gift"), F.lit("")))
        gift = flag.isin("true", "1", "yes") | gift
    aggs = [
        (F.count_distinct(F.when(F.dayofweek(d).isin(1, 7), d)).cast("double") / F.count_distinct(d))
        .alias("weekend_share"),
        _ratio(F, F.coalesce(F.sum(F.when(F.month("ts") == 12, F.col("amount"))), F.lit(0.0)), total)
        .alias("december_share"),
        _ratio(F, F.coalesce(F.sum(F.when(gift, F.col("amount"))), F.lit(0.0)), total).alias("gift_share"),
    ]
    if shape.discounts:
        aggs.append(_ratio(F, F.coalesce(F.sum(F.when(F.col("discount") > 0, F.col("amount"))), F.lit(0.0)),
                           positive).alias("discount_share"))
    for cat in shape.categories:
        aggs.append(F.coalesce(_ratio(F, F.coalesce(F.sum(F.when(F.col("category") == cat, F.col("amount"))),
                                                     F.lit(0.0)), positive), F.lit(0.0))
                    .alias(f"share_{_slug(cat)}"))
    aggs.append((F.count_distinct(F.concat(F.col("source"), F.lit("|"), F.col("order_id"))) * DAYS_PER_MONTH
                 / F.greatest(F.datediff(_day(F, cutoff), F.min(d)).cast("double"), F.lit(DAYS_PER_MONTH)))
                .alias("orders_per_month"))
    out = tx.groupBy("customer_id").agg(*aggs)
    if shape.channels:
        # The favourite channel counts refund rows too, as the store's SQL does.
        ch = (upto.where(F.col("channel").isNotNull()).groupBy("customer_id", "channel").agg(F.count(F.lit(1)).alias("n")))
        ch = (ch.withColumn("k", F.row_number().over(W.partitionBy("customer_id").orderBy(F.col("n").desc(),
                                                                                         F.col("channel"))))
              .where(F.col("k") == 1).select("customer_id", F.col("channel").alias("top_channel")))
        out = out.join(ch, on="customer_id", how="left")
    return out


def value_12m_frame(tx: Any, cutoff: pd.Timestamp) -> Any:  # noqa: ANN401
    """Per customer: revenue and gross profit of the 12 months up to `cutoff` (as ``value_12m``)."""
    F = api_of(tx).F
    start = F.lit((pd.Timestamp(cutoff).normalize() - pd.Timedelta(days=365)).strftime("%Y-%m-%d %H:%M:%S"))
    tx = tx.where(F.col("customer_id").isNotNull() & (F.col("ts") >= start.cast("timestamp"))
                  & (F.col("ts") < _end(F, cutoff)))
    return tx.groupBy("customer_id").agg(
        F.sum("amount").alias("revenue_12m"),
        (F.sum("amount") - F.coalesce(F.sum("cost"), F.lit(0.0))).alias("value_12m"))


def features_frame(tx: Any, cutoff: pd.Timestamp, shape: Shape | None = None) -> tuple[Any, Shape]:  # noqa: ANN401
    """Every customer's features at `cutoff` (summary, behaviour, last 12 months), one lazy frame.

    `tx` is a canonical transactions frame (see :func:`canonical`).  Returns the frame and the
    shop's :class:`Shape` (which behaviour columns exist).
    """
    F = api_of(tx).F
    shape = shape or shape_of(tx, cutoff)
    out = (summary_frame(tx, cutoff).join(behaviour_frame(tx, cutoff, shape), on="customer_id", how="left")
           .join(value_12m_frame(tx, cutoff), on="customer_id", how="left"))
    return out.select(*[c for c in out.columns if c not in ("value_12m", "revenue_12m")],
                      F.coalesce(F.col("value_12m"), F.lit(0.0)).alias("value_12m"),
                      F.coalesce(F.col("revenue_12m"), F.lit(0.0)).alias("revenue_12m")), shape


def finish(features: pd.DataFrame, shape: Shape, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Collected features made exactly like the store's: row order, dtypes, ``top_category``, attrs."""
    from clientfolio.features.behaviour import top_share

    df = features.sort_values("customer_id", kind="stable").reset_index(drop=True)
    for col in ("frequency", "orders"):
        df[col] = df[col].astype("int64")
    for col in ("first_purchase", "last_purchase"):
        df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
    text = ["customer_id"] + (["top_channel"] if "top_channel" in df else [])
    num = [c for c in df.columns if c not in (*text, "frequency", "orders", "first_purchase", "last_purchase")]
    df[num] = df[num].astype(float)
    if shape.categories:
        names = [f"share_{_slug(c)}" for c in shape.categories]
        df["top_category"] = top_share(df[names].to_numpy(dtype=float), [_slug(c) for c in shape.categories])
    if "top_channel" in df:  # after top_category, as the store's features have it
        df = df[[c for c in df.columns if c != "top_channel"] + ["top_channel"]]
    df.attrs.update({"cutoff": pd.Timestamp(cutoff).normalize(), "unit": "D", "unit_days": 1.0})
    return df
