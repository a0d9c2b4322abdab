"""`clientfolio analyze --engine spark`: features on Spark, the fit on the driver, the apply on every partition.

The flow, for a canonical transactions table in Parquet (the store's ``transactions`` columns;
at least ``customer_id``, ``order_id``, ``ts``, ``amount``):

1. features: :mod:`clientfolio.scale.frames` (the same PySpark-API code SQLFrame runs on DuckDB)
   computes every customer's features on the executors;
2. fit: :class:`~clientfolio.state.PortfolioState` is fitted on the driver.  Up to
   ``sample_size`` customers (200k) their features are collected and it is fitted exactly as on
   one machine; above, the purchase models are fitted on the whole base's distinct
   (frequency, recency, T) with counts (``groupBy().count()``: their fit equals the fit on every
   customer) and the rest (spend model, cut points, references, clusters) on a seeded uniform
   sample of ``sample_size`` customers -- the state says so.  See docs/scaling.md;
3. apply: the fitted state (a few kB of JSON) goes to every executor and
   :meth:`PortfolioState.apply` -- the same pure function that scores one customer in the live
   portfolio -- runs per partition through ``mapInPandas``;
4. out: ``customers.parquet`` (one row per customer, every score and segment),
   ``segments.parquet`` (memberships) and ``state.json``.

``model="auto"`` chooses the purchase model on a holdout period as ``analyze`` does
(:func:`choose_model`: the comparison runs on the histories collapsed on the executors).
Not on this engine (yet): separate purchase models per customer group, rule segments, prospects
without purchases, and the HTML report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.scale import frames
from clientfolio.scores import ClvSettings
from clientfolio.state import PortfolioState
from clientfolio.store.audit import Support, forecast_support

# The customer attributes the store's features carry (clientfolio.state.features.ATTRIBUTES_SQL).
ATTRIBUTES = {"region": "string", "customer_country": "string", "industry": "string", "size": "string",
              "acquisition_channel": "string", "acquisition_cost": "double", "consent_marketing": "boolean",
              "first_seen": "timestamp"}
SAMPLE_CUSTOMERS = 200_000  # above this many customers the driver fits all but the purchase models on a sample
MEMBERSHIPS = "_memberships"  # per customer, JSON [[kind, segment], ...]: split into segments.parquet


def java_missing() -> str | None:
    """Why Spark cannot start here (no Java on PATH or JAVA_HOME), or None."""
    import os
    import shutil

    if os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists():
        return None
    return None if shutil.which("java") else "Spark needs Java 17 or newer: none on PATH and JAVA_HOME is not set"


def spark_session(master: str = "local[2]", app_name: str = "clientfolio", conf: dict[str, str] | None = None):  # noqa: ANN201
    """A Spark session at `master` (``local[2]``, ``spark://host:7077``, ``yarn``...), UTC, Arrow on.

    An existing active session is reused (``getOrCreate``), as on a notebook cluster.
    """
    why = java_missing()
    if why:
        raise ClientfolioError(why)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ClientfolioError("the Spark engine needs pyspark: pip install 'clientfolio[spark]'") from None
    b = (SparkSession.builder.master(master).appName(app_name)
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.sql.execution.arrow.pyspark.enabled", "true")
         .config("spark.ui.showConsoleProgress", "false"))
    if master.startswith("local"):
        import os
        import sys

        # Local workers run this interpreter (with clientfolio and pandas), not whatever `python` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        b = b.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions",
                                                        str(max(2, _local_cores(master))))
    for k, v in (conf or {}).items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _local_cores(master: str) -> int:
    inside = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
    import os

    if inside == "*":
        return os.cpu_count() or 2
    return int(inside) if inside.isdigit() else 2


def read_transactions(spark: Any, paths: str | Path | Sequence[str | Path]) -> Any:  # noqa: ANN401
    """The canonical transactions from Parquet file(s) or folder(s), as a lazy Spark DataFrame."""
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    return frames.canonical(spark.read.parquet(*paths))


def with_attributes(features: Any, customers: Any | None, tx: Any | None = None) -> Any:  # noqa: ANN401
    """The customers' attributes joined to the features.

    As the store derives them on import, each customer's ``first_seen`` (first order), country
    and latest marketing consent come from the transactions `tx`; a customers table's own values
    win where it has them.  Without either, the columns are null.
    """
    F = frames.api_of(features).F
    derived = None
    if tx is not None:
        derived = (tx.where(F.col("customer_id").isNotNull()).groupBy("customer_id")
                   .agg(F.min("ts").alias("_first_seen"), F.max("country").alias("_customer_country"),
                        F.max_by("consent_marketing", "ts").alias("_consent_marketing")))
    have = set(customers.columns) if customers is not None else set()
    source = {"customer_country": "country"}
    if customers is not None:
        cols = [F.col("customer_id").cast("string").alias("customer_id")]
        cols += [(F.col(source.get(c, c)).cast(t) if source.get(c, c) in have else F.lit(None).cast(t)).alias(c)
                 for c, t in ATTRIBUTES.items()]
        out = features.join(customers.select(*cols), on="customer_id", how="left")
    else:
        out = features.select("*", *[F.lit(None).cast(t).alias(c) for c, t in ATTRIBUTES.items()])
    if derived is None:
        return out
    out = out.join(derived, on="customer_id", how="left")
    fill = {c: F.coalesce(F.col(c), F.col(f"_{c}")).alias(c) for c in ("first_seen", "customer_country",
                                                                         "consent_marketing")}
    return out.select(*[fill.get(c, F.col(c)) for c in out.columns if not c.startswith("_")])


def to_pandas_features(batch: pd.DataFrame, shape: frames.Shape, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Spark rows of the features as the store's DataFrame: :func:`frames.finish` plus the attribute dtypes."""
    df = frames.finish(batch.drop(columns=list(ATTRIBUTES), errors="ignore"), shape, cutoff)
    attrs = batch.set_index(batch["customer_id"].astype(str)).reindex(df["customer_id"].astype(str).to_numpy())
    for c, t in ATTRIBUTES.items():
        col = attrs[c].to_numpy() if c in attrs else np.full(len(df), None, dtype=object)
        if t == "double":
            df[c] = pd.to_numeric(pd.Series(col), errors="coerce").astype(float).to_numpy()
        elif t == "boolean":
            df[c] = pd.array(pd.Series(col, dtype=object).where(pd.notna(col), None), dtype="boolean")
        elif t == "timestamp":
            df[c] = _naive_utc(pd.Series(col)).to_numpy()
        else:
            df[c] = pd.Series(col, dtype=object).where(pd.notna(col), None).to_numpy()
    order = [c for c in df.columns if c not in ("value_12m", "revenue_12m")] + ["revenue_12m", "value_12m"]
    out = df[order]
    out.attrs.update(df.attrs)
    return out


def _naive_utc(s: pd.Series) -> pd.Series:
    """Timestamps as naive UTC microseconds, the store's form (an engine may hand them back zoned)."""
    s = pd.to_datetime(s, utc=True)
    return s.dt.tz_localize(None).astype("datetime64[us]")


def support_of(features: pd.DataFrame, first: pd.Timestamp, cutoff: pd.Timestamp) -> Support:
    """The single-machine verdict (:func:`clientfolio.pipeline.support_at`) from collected features."""
    return forecast_support((cutoff.normalize() - first.normalize()).days, len(features),
                            int((features["frequency"] > 0).sum()))


def _spark_type(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_integer_dtype(s):
        return "bigint"
    if pd.api.types.is_float_dtype(s):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "timestamp"
    return "string"


def _conform(df: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """`df` with exactly these columns, each in a form Arrow turns into its Spark type."""
    out = {}
    for c, t in types.items():
        s = df[c] if c in df else pd.Series([None] * len(df), index=df.index, dtype=object)
        if t == "string":
            out[c] = s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v))
        elif t == "double":
            out[c] = pd.to_numeric(s, errors="coerce").astype(float)
        elif t == "bigint":
            out[c] = s.astype("Int64")
        elif t == "boolean":
            out[c] = s.astype("boolean")
        else:
            out[c] = _naive_utc(s)
    return pd.DataFrame(out, index=df.index)


def _memberships(customers: pd.DataFrame, segments: pd.DataFrame) -> pd.Series:
    """Each customer's memberships as JSON [[kind, segment], ...], in the customers' order."""
    seg = segments[["customer_id", "segment_kind", "segment"]].astype(object).where(segments.notna(), None)
    grouped = {cid: [[k, s] for k, s in zip(g["segment_kind"], g["segment"])]
               for cid, g in seg.groupby("customer_id", sort=False)}
    return customers["customer_id"].map(lambda cid: json.dumps(grouped.get(cid, [])))


def output_types(state: PortfolioState, sample: pd.DataFrame) -> dict[str, str]:
    """The Spark types of applied rows, from applying the state to a few collected customers."""
    applied = state.apply(sample, state.cutoff_)
    types = {c: _spark_type(applied.customers[c]) for c in applied.customers.columns}
    types[MEMBERSHIPS] = "string"
    return types


def apply_partitions(features: Any, state: PortfolioState, shape: frames.Shape, types: dict[str, str]) -> Any:  # noqa: ANN401
    """`state.apply` on every partition of the Spark `features`: one row per customer, memberships as JSON."""
    text = state.to_json()  # shipped to the executors in the task closure: a few kB
    cutoff = state.cutoff_
    schema = ", ".join(f"`{c}` {t}" for c, t in types.items())

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        st = PortfolioState.from_json(text)
        for batch in batches:
            if not len(batch):
                continue
            applied = st.apply(to_pandas_features(batch, shape, cutoff), cutoff)
            c = applied.customers.assign(**{MEMBERSHIPS: _memberships(applied.customers, applied.segments)})
            yield _conform(c, types)

    return features.mapInPandas(run, schema)


def segments_of(applied: Any, as_of: pd.Timestamp) -> Any:  # noqa: ANN401
    """The membership table (customer_id, segment_kind, segment, as_of) from applied rows."""
    from pyspark.sql import functions as F

    pairs = F.explode(F.from_json(F.col(MEMBERSHIPS), "array<array<string>>")).alias("m")
    return (applied.select("customer_id", pairs)
            .select("customer_id", F.col("m")[0].alias("segment_kind"), F.col("m")[1].alias("segment"),
                    F.lit(pd.Timestamp(as_of).strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp").alias("as_of")))


def sample_customers(features: Any, size: int, seed: int = 0) -> Any:  # noqa: ANN401
    """A seeded uniform sample of exactly `size` customers (fewer if the base is smaller), lazily.

    The customers with the `size` smallest hashes of (id, seed): the same customers whatever the
    partitioning, and Spark takes them with a top-k per partition, not a full sort.
    """
    F = frames.api_of(features).F
    return features.orderBy(F.xxhash64(F.col("customer_id").cast("string"), F.lit(int(seed))),
                            F.col("customer_id")).limit(int(size))


def purchase_stats(features: Any) -> pd.DataFrame:
    """The whole base's distinct (frequency, recency, T), in days, with ``weights`` = customers each.

    Everything the purchase models read: their fit on these equals their fit on every customer.
    """
    F = frames.api_of(features).F
    got = (features.groupBy("frequency", "recency", "T").agg(F.count(F.lit(1)).alias("weights"))
           .toPandas())
    got = got.astype({"frequency": "int64", "recency": float, "T": float, "weights": float})
    return got.sort_values(["frequency", "recency", "T"], ignore_index=True)


def holdout_histories(tx: Any, cutoff: pd.Timestamp, holdout_end: pd.Timestamp) -> pd.DataFrame:  # noqa: ANN401
    """The distinct (frequency, recency, T, frequency_holdout) at `cutoff`, in weeks, with ``weights`` =
    customers each, and ``duration_holdout``: what :func:`~clientfolio.scores.validation.compare_models`
    reads, collapsed on the executors (the comparison on them equals the one on every customer)."""
    F = frames.api_of(tx).F
    keys = ["frequency", "recency", "T", "frequency_holdout"]
    got = (frames.holdout_frame(tx, cutoff, holdout_end).groupBy(*keys)
           .agg(F.count(F.lit(1)).alias("weights")).toPandas())
    got = got.astype({"frequency": "int64", "recency": float, "T": float, "frequency_holdout": "int64",
                      "weights": float})
    got["recency"] /= 7.0  # weeks, as the one-machine comparison (rfm_summary(..., unit="W"))
    got["T"] /= 7.0
    got["duration_holdout"] = (pd.Timestamp(holdout_end).normalize() - pd.Timestamp(cutoff).normalize()).days / 7.0
    return got.sort_values(keys, ignore_index=True)


def choose_model(tx: Any, first: pd.Timestamp, as_of: pd.Timestamp,  # noqa: ANN401
                 support: Support) -> tuple[str, list[str], Any]:
    """``model="auto"`` on Spark: the purchase model that predicts a holdout period best, as ``analyze`` chooses it.

    The same split (the last third of the history) and :func:`compare_models`, on the histories
    collapsed on the executors with their counts.  Returns (model, notes, comparison or None).
    Not here: separate fits per customer group, and the calibration-period tracking check.
    """
    from clientfolio.core.errors import ClientfolioError
    from clientfolio.scores.validation import MIN_DAYS_FOR_HOLDOUT
    from clientfolio.scores.validation import compare_models
    from clientfolio.state.models import MODEL_NAMES

    if not support.forecasts:
        return "bgnbd", [], None
    if (as_of - first).days < MIN_DAYS_FOR_HOLDOUT:
        return "bgnbd", [f"less than {MIN_DAYS_FOR_HOLDOUT} days of history: the purchase models were not "
                         "compared on a holdout period; BG/NBD is used"], None
    split = (first + (as_of - first) * 2 / 3).normalize()
    stats = holdout_histories(tx, split, as_of)
    try:
        comp = compare_models(stats)
    except ClientfolioError as exc:
        return "bgnbd", [f"the holdout comparison could not run ({exc}); BG/NBD is used"], None
    note = (f"model chosen on a holdout period ({split:%Y-%m-%d} to {as_of:%Y-%m-%d}, {len(stats):,} distinct "
            f"histories of {int(stats['weights'].sum()):,} customers): {comp.recommendation}")
    return MODEL_NAMES[comp.best], [note], comp


def mark_sampled(state: PortfolioState, features: Any, customers: int, sample: int, seed: int,  # noqa: ANN401
                 distinct: int) -> None:
    """Say in `state` what was learned on a sample and put back the whole base's counts.

    The range of the total CLV was summed over the sample's customers only: it is dropped (the
    interval would not cover the base).  The CAC table's customer counts become the base's.
    """
    from clientfolio.core.notes import Note, method_note

    models = state.purchase_model_ is not None
    on_all = [m for m, on in (("purchase model", state.purchase_model_),
                              ("one-time buyers' P(alive) model", state.alive_model_)) if on is not None]
    on_sample = ["spend model" if models else None, "RFM cut points", "value and frequency tier lines",
                 "return window", "quadrant splits" if models else None, "value-score references and weights",
                 "clusters", "CAC per channel (mean CLV, mean cost)",
                 "run rate" if state.run_rate_ is not None else None]
    on_sample = [p for p in on_sample if p]
    state.fitted_on_.update(customers=customers, sample={
        "customers": sample, "seed": seed, "method": "the customers with the smallest xxhash64(customer_id, seed)",
        "estimated_on_sample": on_sample, "estimated_on_all": on_all, "distinct_histories": distinct})
    state.clv_total_interval_ = None
    first = (f"the purchase model was fitted on all {customers:,} customers; " if models else "")
    spend = ", and the spend model," if models else ""
    state.notes_.append(Note(
        f"{first}the segment lines, value references, clusters and CAC table{spend} "
        f"were estimated on a random sample of {sample:,} of the {customers:,} customers (seed {seed}), so they would "
        "move slightly with another sample; no range is given for the total CLV", topic="fitted on a sample"))
    state.notes_.append(method_note(
        f"driver fit: {', '.join(on_all) or 'no purchase model'}"
        + (f" on {distinct:,} distinct (frequency, recency, T) histories weighted by their counts "
           f"({customers:,} customers)" if on_all else "")
        + f"; estimated on a uniform sample of {sample:,} customers (xxhash64 of the id with seed {seed}): "
        + ", ".join(on_sample)))
    cac = getattr(state, "cac_", None)
    if cac is not None and len(cac) and "acquisition_channel" in features.columns:
        F = frames.api_of(features).F
        n = {r["c"]: int(r["n"]) for r in features.groupBy(F.col("acquisition_channel").alias("c"))
             .agg(F.count(F.lit(1)).alias("n")).collect() if r["c"] is not None}
        state.cac_ = cac.assign(customers=cac["channel"].map(n).fillna(0).astype("int64"))


@dataclass
class SparkResult:
    """What an analysis on Spark wrote and learned."""

    state: PortfolioState
    customers: int
    out: Path | None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    comparison: Any = None  # the holdout ModelComparison behind model="auto" (None when not run)


def analyze_spark(orders: str | Path | Sequence[str | Path], out: str | Path | None, *, spark: Any = None,  # noqa: ANN401
                  master: str = "local[2]", customers: str | Path | None = None, cutoff: str | None = None,
                  model: str = "auto", horizon_months: int = 12, discount_rate: float = 0.10,
                  margin: float | None = None, sector: str = "retail", clusters: bool = True,
                  currency: str = "", sample_size: int | None = SAMPLE_CUSTOMERS,
                  seed: int = 0) -> tuple[SparkResult, Any, Any]:
    """Features on Spark, fit on the driver, apply per partition; Parquet in and (with `out`) out.

    ``model="auto"`` chooses the purchase model on a holdout period, as ``analyze`` does
    (:func:`choose_model`).  The driver never holds more than `sample_size` customers' features:
    above that, the purchase models are fitted on the whole base's distinct (frequency, recency, T) with their counts, and
    everything else the state learns on a seeded uniform sample of `sample_size` customers (the
    state's ``fitted_on_["sample"]`` and notes say which parts).  ``sample_size=None``: every customer.

    Returns (result, applied customers, memberships) -- the last two lazy Spark DataFrames.
    """
    import time

    spark = spark or spark_session(master)
    notes: list[str] = []
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    tx = read_transactions(spark, orders).cache()
    from pyspark.sql import functions as F

    span = tx.where(F.col("customer_id").isNotNull()).agg(F.min("ts").alias("a"), F.max("ts").alias("b")).collect()[0]
    if span["b"] is None:
        raise ClientfolioError("there are no orders with a customer to analyse in the Parquet input")
    as_of = pd.Timestamp(cutoff if cutoff is not None else span["b"]).normalize()
    feats, shape = frames.features_frame(tx, as_of)
    cust = spark.read.parquet(str(customers)) if customers is not None else None
    feats = with_attributes(feats, cust, tx).cache()
    counts = feats.agg(F.count(F.lit(1)).alias("n"),
                       F.sum(F.when(F.col("frequency") > 0, 1).otherwise(0)).alias("repeat")).collect()[0]
    n_customers, repeaters = int(counts["n"]), int(counts["repeat"] or 0)
    sampled = sample_size is not None and n_customers > sample_size
    if sampled:
        collected = to_pandas_features(sample_customers(feats, sample_size, seed).toPandas(), shape, as_of)
        stats = purchase_stats(feats)
    else:  # the whole base fits on the driver: every customer, as on one machine
        collected, stats = to_pandas_features(feats.toPandas(), shape, as_of), None
    secs["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    support = forecast_support((as_of.normalize() - pd.Timestamp(span["a"]).normalize()).days, n_customers,
                               repeaters)
    if model == "auto":
        t1 = time.perf_counter()
        model, chosen, result_comparison = choose_model(tx, pd.Timestamp(span["a"]), as_of, support)
        notes.extend(chosen)
        secs["model_choice"] = time.perf_counter() - t1
    else:
        result_comparison = None
    settings = ClvSettings(horizon_months=horizon_months, discount_rate=discount_rate, margin=margin or 1.0)
    state = PortfolioState(model=model, settings=settings, sector=sector, clusters=clusters, currency=currency)
    state.fit(collected, as_of, support=support, fitted_on={"transactions": None, "buyers": n_customers},
              purchase_stats=stats)
    if sampled:
        mark_sampled(state, feats, n_customers, len(collected), seed, len(stats))
    notes.extend(str(n) for n in state.notes_)
    secs["fit"] = time.perf_counter() - t0
    types = output_types(state, collected.head(200))
    del collected
    applied = apply_partitions(feats, state, shape, types)
    segments = segments_of(applied, as_of)
    result = SparkResult(state=state, customers=0, out=Path(out) if out is not None else None, notes=notes,
                         seconds=secs, comparison=result_comparison)
    if out is not None:
        t0 = time.perf_counter()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        applied = applied.cache()
        applied.drop(MEMBERSHIPS).write.mode("overwrite").parquet(str(out / "customers.parquet"))
        segments_of(applied, as_of).write.mode("overwrite").parquet(str(out / "segments.parquet"))
        (out / "state.json").write_text(state.to_json(), encoding="utf-8")
        result.customers = int(spark.read.parquet(str(out / "customers.parquet")).count())
        secs["apply_and_write"] = time.perf_counter() - t0
        segments = spark.read.parquet(str(out / "segments.parquet"))
    return result, applied, segments
