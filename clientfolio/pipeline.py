"""The analysis pipeline behind `clientfolio.analyze`: from an export (or a store) to a strategic customer portfolio in one call.

`analyze` is fit + apply: a portfolio state (clientfolio.state) is fitted on every customer at the
cut-off and applied to them, then applied again one period earlier (default 90 days), so the report
can show how customers moved between segments under the same state.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.core.money import currency_prefix
from clientfolio.core.notes import Notes, method_note
from clientfolio.features import daily_activity, rfm_summary
from clientfolio.features.incremental import customer_stats
from clientfolio.portfolio import Portfolio
from clientfolio.scores import ClvSettings, clv_to_cac_by_segment
from clientfolio.scores.validation import (MIN_DAYS_FOR_HOLDOUT, calibration_gap, compare_models, holdout_comparison,
                                           tracking, tracking_verdict)
from clientfolio.segments import history, portfolio
from clientfolio.state import Applied, PortfolioState, customer_features, rule_transactions
from clientfolio.state.models import MODEL_LABELS, MODEL_NAMES, MODELS
from clientfolio.store import IDS_IN, Store, open_store
from clientfolio.store.audit import Support, forecast_support

if TYPE_CHECKING:
    from clientfolio.actions.playbooks import Playbooks
    from clientfolio.segments.rules import RuleSet

Progress = Callable[[str, float], None]


def support_at(summary: pd.DataFrame, first: pd.Timestamp, cutoff: pd.Timestamp) -> Support:
    """Does the history up to `cutoff` support forecasts?  The check-up's verdict, at this date."""
    return forecast_support((cutoff.normalize() - first.normalize()).days, len(summary),
                            int((summary["frequency"] > 0).sum()))


def store_support(st: Store, first: pd.Timestamp, cutoff: pd.Timestamp) -> Support:
    """:func:`support_at` counted in the store: the same customers and repeat buyers as the summary at
    `cutoff`, without bringing one row per customer into Python."""
    from clientfolio.features.summary import _date_lit, summary_sql

    row = st.query(f"SELECT count(*) AS n, count(*) FILTER (WHERE frequency > 0) AS repeat "
                   f"FROM ({summary_sql(_date_lit(cutoff), 'W', dialect=st.kind)}) AS s").iloc[0]
    return forecast_support((cutoff.normalize() - first.normalize()).days, int(row["n"]), int(row["repeat"]))


def check_rules(rules: str | Path | dict) -> RuleSet:
    """Read and check a rule file before any work: structure, operators, limits, field names.

    Field names are checked against the columns the customer table can have
    (:data:`clientfolio.core.fields.CUSTOMER_FIELDS`); whether this shop's table has them is
    checked again after scoring.  Raises :class:`~clientfolio.segments.RuleError`.
    """
    from clientfolio.core.fields import customer_fields_for
    from clientfolio.segments.rules import load_rules

    ruleset = load_rules(rules)  # structure, operators, values, limits
    return ruleset.with_schema(customer_fields_for(ruleset.fields))


def check_playbooks(playbooks: str | Path | Playbooks | None) -> Playbooks:
    """The playbooks in force: the built-in ones with the owner's file merged over them, checked before any work.

    Raises :class:`~clientfolio.actions.PlaybookError` naming the file, line or entry and the fix.
    """
    from clientfolio.actions.playbooks import Playbooks, load_playbooks

    return playbooks if isinstance(playbooks, Playbooks) else load_playbooks(playbooks)


@dataclass
class DataSpan:
    """What the store holds: first and last order, the currency to show money with, cost data or not."""

    first: pd.Timestamp
    last: pd.Timestamp
    currency: str
    has_cost: bool


@dataclass
class ModelChoice:
    """Which purchase model, the holdout evidence for it, and parameters to start the final fit from."""

    kind: str
    validation: dict[str, Any]
    start: dict | None
    group: str | None = None  # a customer attribute whose levels get their own purchase models


def import_data(data: Any, st: Store, workdir: Path, options: Any, import_options: dict, currency: str,
                rejects_dir: str | Path | None, on_import: Callable[[Any], None] | None):
    """Stage 1: the export files (or a DataFrame) into the store, with row accounting."""
    from clientfolio.ingest import ImportOptions, import_files

    if isinstance(data, pd.DataFrame):
        path = workdir / "data.parquet"
        data.to_parquet(path, index=False)
        paths = [path]
    else:
        paths = [data] if isinstance(data, (str, Path)) else list(data)
    if options is not None and import_options:
        raise ClientfolioError(f"analyze: give import settings either as options= or by keyword "
                               f"({', '.join(sorted(import_options))}), not both")
    if options is None and currency and currency.isalpha() and "currency" not in import_options:
        import_options["currency"] = currency  # an ISO code is the data's currency, for the import too
    opts = options if options is not None else ImportOptions(**import_options)
    result = import_files(paths, st, opts, rejects_dir=rejects_dir)
    if on_import is not None:
        on_import(result)
    # Rejected rows are told once, by the data check-up (it reads the same import log).
    return result


def data_span(st: Store, imported: Any, currency: str) -> DataSpan:
    """Stage 2: is there anything to analyse, over which dates, in which currency."""
    # one scan: the span of orders with a customer, and whether any row at all has a cost
    span = st.query("SELECT min(ts) FILTER (WHERE customer_id IS NOT NULL) AS a, "
                    "max(ts) FILTER (WHERE customer_id IS NOT NULL) AS b, "
                    "count(DISTINCT currency) FILTER (WHERE customer_id IS NOT NULL) AS cur, "
                    "max(currency) FILTER (WHERE customer_id IS NOT NULL) AS c, count(cost) AS has_cost "
                    "FROM transactions")
    if span.empty or pd.isna(span["b"].iloc[0]):
        if imported is None:
            raise ClientfolioError("there are no orders with a customer to analyse; import an export first")
        stored = sum(f.rows_stored for f in imported.files)
        raise ClientfolioError(
            f"none of the {imported.rows_in:,} rows imported is an order with a customer ({stored:,} stored: "
            "guest sales, customer lists or events; the rest rejected"
            + (f", see {imported.rejects_path}" if imported.rejects_path else "") + "). Customer models need "
            "orders that name a customer: check the customer column (--customer-col or --email-col)")
    if not currency and span["cur"].iloc[0] == 1:
        currency = currency_prefix(span["c"].iloc[0])
    elif len(currency) == 3 and currency.isalpha():  # an ISO code given by the caller: "EUR" -> "€"
        currency = currency_prefix(currency)
    has_cost = bool(span["has_cost"].iloc[0])
    return DataSpan(pd.Timestamp(span["a"].iloc[0]), pd.Timestamp(span["b"].iloc[0]), currency, has_cost)


def holdout_split(first: pd.Timestamp, as_of: pd.Timestamp) -> pd.Timestamp:
    """The end of the calibration period of the holdout check: two thirds into the history."""
    return (first + (as_of - first) * 2 / 3).normalize()


def holdout_summary(st: Store, first: pd.Timestamp, as_of: pd.Timestamp) -> pd.DataFrame:
    """What the holdout check fits on: every customer's summary (weeks) at :func:`holdout_split`, with their
    purchases from then to `as_of`."""
    return rfm_summary(st, cutoff=holdout_split(first, as_of), unit="W", holdout_end=as_of)


def choose_model(st: Store, first: pd.Timestamp, as_of: pd.Timestamp, support: Support, model: str,
                 notes: Notes, progress: Progress, reads: dict[str, Callable[[], Any]] | None = None) -> ModelChoice:
    """Stage 3: the purchase model that predicts a holdout period of this shop best (or the one asked for).

    With ``model="auto"`` and customer attributes in the store (acquisition channel, region, ...),
    separate fits per the most informative attribute are checked on the same holdout period and used
    only when they beat the pooled model (:func:`clientfolio.state.groups.choose_group`).
    `reads`: ``"calibration"`` (:func:`holdout_summary`) and ``"daily"`` (:func:`~clientfolio.features.daily_activity`)
    when an earlier stage has started reading them; read here otherwise.
    """
    reads = reads or {}
    if model not in ("auto", *MODELS):
        raise ClientfolioError(f"model must be 'auto' or one of {sorted(MODELS)}, got {model!r}")
    kind = model if model != "auto" else "bgnbd"
    validation: dict[str, Any] = {}
    start = None
    group = None
    if support.forecasts and (as_of - first).days >= MIN_DAYS_FOR_HOLDOUT:
        progress("checking models on a holdout period", 0.15)
        split = holdout_split(first, as_of)
        cal = reads["calibration"]() if "calibration" in reads else holdout_summary(st, first, as_of)
        try:
            comp = compare_models(cal)
            validation = {"comparison": comp, "calibration_end": split, "holdout_end": as_of}
            validation["by_bucket"] = holdout_comparison(comp.models[comp.best], cal)[1]
            daily = reads["daily"]() if "daily" in reads else daily_activity(st)
            tracks = {name: tracking(m, daily, 7.0, first.normalize(), as_of) for name, m in comp.models.items()}
            validation["tracking"] = tracks[comp.best]
            gaps = {name: calibration_gap(t, split) for name, t in tracks.items()}
            validation["calibration_gaps"] = gaps
            verdict = tracking_verdict(comp.best, gaps)
            validation["tracks_calibration"] = verdict is None
            if verdict is not None:
                # The holdout ranking still picks the model, but "use it" would not match the chart.
                comp.recommendation = verdict + " " + comp.recommendation.replace(f" Use {comp.best}.", "")
            if model == "auto":
                kind = MODEL_NAMES[comp.best]
            start = comp.models[comp.best].params_ if MODEL_NAMES[comp.best] == kind else None
            if model == "auto":
                group = _grouped_choice(st, cal, split, as_of, kind, validation, notes)
        except ClientfolioError as exc:
            notes.append("the predictions could not be checked against your own recent months (details in "
                         "the method notes)")
            notes.append(method_note(f"the holdout comparison could not run: {exc}"))
    elif support.forecasts:
        notes.append(f"less than {MIN_DAYS_FOR_HOLDOUT} days of history: the predictions cannot be checked "
                     "against your own recent months yet")
        notes.append(method_note("no holdout comparison of the purchase models (it needs "
                                 f"{MIN_DAYS_FOR_HOLDOUT} days of history); {MODEL_LABELS[kind]} is used"))
    return ModelChoice(kind, validation, start, group)


def _grouped_choice(st: Store, cal: pd.DataFrame, split: pd.Timestamp, as_of: pd.Timestamp, kind: str,
                    validation: dict[str, Any], notes: Notes) -> str | None:
    """Separate fits per customer attribute against the pooled model (:func:`clientfolio.state.groups.choose_group`);
    the verdict goes to ``validation["groups"]`` and the notes.  Returns the feature column to group by, or None."""
    from clientfolio.state.groups import choose_group

    try:
        group, info = choose_group(st, cal, split, as_of, kind)
    except ClientfolioError as exc:
        notes.append(method_note(f"separate purchase models per customer group were not compared: {exc}"))
        return None
    if info:
        validation["groups"] = info
        notes.append(method_note(info["sentence"]))  # the report shows it with the holdout check
    return group


def data_fingerprint(st: Store, as_of: pd.Timestamp) -> dict[str, Any]:
    """What a state was fitted on: rows and customers up to the cut-off, and a fingerprint of them.

    The fingerprint changes when any order up to the cut-off is added, removed or changed in
    amount or date, so a stored state can tell whether it still describes the data it sits beside.
    """
    import hashlib

    end = f"CAST(DATE '{as_of.date().isoformat()}' + 1 AS TIMESTAMP)"
    row = st.query(f"""SELECT count(*) AS n, count(DISTINCT customer_id) AS customers, sum(amount) AS amount,
                              min(ts) AS first, max(ts) AS last,
                              sum(length(order_id) + length(coalesce(customer_id, ''))) AS idlen
                       FROM transactions WHERE ts < {end}""").iloc[0]
    text = "|".join(str(row[k]) for k in ("n", "customers", "amount", "first", "last", "idlen"))
    return {"transactions": int(row["n"]), "buyers": int(row["customers"]),
            "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16]}


def fit_portfolio(st: Store, as_of: pd.Timestamp, support: Support, choice: ModelChoice, settings: ClvSettings,
                  sector: str, rules: RuleSet | None, clusters: bool, currency: str,
                  notes: Notes, features: tuple[pd.DataFrame, list, pd.Series] | None = None,
                  transactions: pd.DataFrame | None = None) -> tuple[PortfolioState, Applied, pd.DataFrame]:
    """Stage 4: fit the portfolio state on every customer at the cut-off and apply it to them.

    `features`: what :func:`~clientfolio.state.customer_features` returned at `as_of`, when an
    earlier stage has already read it (analyze reads it once, for the support check too);
    `transactions`: :func:`~clientfolio.state.rule_transactions`, when already read (rules only)."""
    features, feature_notes, prospects = features if features is not None else customer_features(st, as_of)
    if rules is not None and transactions is None:
        transactions = rule_transactions(st)
    notes.extend(feature_notes)
    state = PortfolioState(model=choice.kind, settings=settings, sector=sector, rules=rules, clusters=clusters,
                           currency=currency)
    applied = state.fit_apply(features, as_of, support=support, start=choice.start,
                              transactions=transactions if rules is not None else None,
                              marketing_spend=st.query("SELECT * FROM marketing_spend"), prospects=prospects,
                              fitted_on=data_fingerprint(st, as_of), group=choice.group)
    notes.extend(state.notes_)
    return state, applied, features


def look_back_day(as_of: pd.Timestamp, previous_days: int, first: pd.Timestamp) -> pd.Timestamp | None:
    """The day :func:`look_back` scores customers at, or None when the history is too short for one."""
    prev_as_of = as_of - pd.Timedelta(days=previous_days)
    return None if prev_as_of <= first + pd.Timedelta(days=30) else prev_as_of


def look_back(st: Store, state: PortfolioState, as_of: pd.Timestamp, previous_days: int, first: pd.Timestamp,
              notes: Notes, transactions: pd.DataFrame | None = None,
              features: Callable[[], tuple[pd.DataFrame, list, pd.Series]] | None = None) -> Applied | None:
    """Stage 5: the same state applied one period earlier, so moves come from behaviour, not re-estimation.

    `transactions`: the rules' transactions as the fit read them (rules only), not read again;
    `features`: gives :func:`~clientfolio.state.customer_features` at that day when an earlier stage
    has started reading it (analyze reads it on a second connection while it fits)."""
    prev_as_of = look_back_day(as_of, previous_days, first)
    if prev_as_of is None:
        return None
    try:
        features, _, prospects = features() if features is not None else customer_features(st, prev_as_of)
        return state.apply(features, prev_as_of, prospects=prospects, intervals=False, next_order=False,
                           transactions=(transactions if transactions is not None else rule_transactions(st))
                           if state.rules_ is not None else None)
    except ClientfolioError as exc:
        notes.append(f"no comparison with {prev_as_of:%d %b %Y} (details in the method notes)")
        notes.append(method_note(f"scoring at {prev_as_of:%d %b %Y} failed: {exc}"))
        return None


READ_AHEAD = True  # False: every read in turn on the store's own connection, as before (the tests compare both)
# Up to this many customers analyze reads the look-back's features and the state rows' statistics while it fits,
# and writes its results while it builds the portfolio view (~2 s less at 87k customers).  Frames of several stages
# are then held at once (~3 kB per customer more at the peak, ~110 MB measured at 87k); bigger bases read them in
# turn, where they are used, so the peak stays where it was (the 50M-order target is about memory).
OVERLAP_MAX_CUSTOMERS = 300_000


class _ReadAhead:
    """Store reads started before they are needed, on a second connection (:meth:`Store.reader`) in one
    background thread, so DuckDB aggregates while this thread fits and scores in Python.  The reads are
    the same functions on the same committed data, so they return what they would return later.  The same
    thread then writes the results (:meth:`run`) while this one builds the portfolio view.  A store without
    a second connection (PostgreSQL) runs each read when it is asked for, on its own connection."""

    def __init__(self, st: Store) -> None:
        self.st = st
        self.reader = st.reader() if READ_AHEAD else None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="clientfolio-read") if self.reader is not None else None

    def start(self, read: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
        """Start ``read(store, *args, **kwargs)``; returns the function that waits for its result (or raises its error)."""
        if self.pool is None:
            return lambda: read(self.st, *args, **kwargs)
        return self.pool.submit(read, self.reader, *args, **kwargs).result

    def run(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
        """Run ``work(*args, **kwargs)`` on the background thread after the reads started before it (the caller
        keeps off whatever it uses meanwhile); without a second connection, here and now."""
        if self.pool is None:
            return _ready(work(*args, **kwargs))
        return self.pool.submit(work, *args, **kwargs).result

    def close(self) -> None:
        """Drop the reads not started, wait for one under way, close the second connection (idempotent)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None


def _ready(value: Any) -> Callable[[], Any]:
    """A result already there, given as :meth:`_ReadAhead.start` gives one to come."""
    return lambda: value


def _for_comparison(before: Applied | None) -> Applied | None:
    """The look-back with only what the later stages read from it -- memberships, and each customer's CLV for
    the segment KPIs -- so a copy of every score of every customer is not held to the end."""
    if before is None:
        return None
    keep = [c for c in ("customer_id", "clv") if c in before.customers]
    customers = before.customers[keep].copy()
    customers.attrs = dict(before.customers.attrs)
    return Applied(customers, before.segments)


def portfolio_view(st: Store, state: PortfolioState, now: Applied, before: Applied | None, choice: ModelChoice,
                   span: DataSpan, checkup: Any, imported: Any, notes: Notes, settings: dict) -> Portfolio:
    """Stage 6: the shop-level picture -- KPIs, flows, concentration, divestment, CLV:CAC -- around the customers."""
    customers, segments_now = now.customers, now.segments
    prev_members = before.segments if before is not None else None
    prev_customers = before.customers if before is not None else None
    kpis = history.segment_kpis(customers, segments_now, prev_members, prev_customers)
    forecast = (history.markov_forecast(prev_members, segments_now, "lifecycle", steps=4)
                if prev_members is not None else None)
    curve, top20 = portfolio.concentration(customers["revenue"])
    members_for_div = segments_now[segments_now["segment_kind"].isin(
        ["rfm", "value_tier", "lifecycle", "portfolio", "cluster", "channel_preference"])]
    divest = portfolio.divestment_candidates(customers, members_for_div, span.currency)
    cac_by_segment = clv_to_cac_by_segment(customers, segments_now, customers["cac"])
    as_of = state.cutoff_
    return Portfolio(
        customers=customers, segments=segments_now, kpis=kpis, as_of=as_of,
        previous_as_of=before.customers.attrs["cutoff"] if before is not None else None,
        previous_segments=prev_members,
        models={"purchase": state.purchase_model_, "spend": state.spend_model_, "one_time_alive": state.alive_model_,
                "kind": choice.kind},
        validation=choice.validation, concentration=curve, top20_share=top20, clv_cac=state.cac_,
        clv_cac_by_segment=cac_by_segment, divestment=divest, clusters=state.cluster_result_,
        quadrant_splits=({"current": state.quadrant_splits_["current"],
                          "potential": state.quadrant_splits_["potential"]} if state.quadrant_splits_ else {}),
        forecast=forecast, settings=dict(settings, value_weights=state.value_weights_,
                                         clv_total_interval=state.clv_total_interval_),
        notes=notes, audit=checkup, currency=span.currency, support=state.support_, import_result=imported,
        state=state)


def action_plan(st: Store, pf: Portfolio, playbooks: Playbooks,
                first_orders: Callable[[], pd.DataFrame] | None = None) -> Portfolio:
    """Stage 8: what to do -- the action plan (playbook, reach, priority per segment), and the fairness audit,
    ideal customer profile and retention-versus-acquisition advice, each made while the store is open.

    Whatever cannot be made (no sensitive attribute to audit, too few established customers for a
    profile) is kept as the sentence saying why, for the report to show in its place.  `first_orders`: gives
    :func:`~clientfolio.actions.acquisition.first_orders` of the store when an earlier stage started reading it.
    """
    from clientfolio.actions.acquisition import ideal_customer_profile
    from clientfolio.actions.budget import retention_vs_acquisition
    from clientfolio.actions.fairness import fairness_audit
    from clientfolio.actions.plan import plan_actions, reach_from_store

    pf.reach = reach_from_store(st, pf.customers["customer_id"])
    pf.actions = plan_actions(pf, playbooks, reach=pf.reach)
    makers: dict[str, Callable[[], Any]] = {
        # the store adds attributes (its customers table) once it holds analysed customers (a kept store)
        "fairness": lambda: fairness_audit(pf, service_levels=pf.actions.service_levels(),
                                           store=st if "seg_lifecycle" in st.customer_state_columns() else None),
        "profile": lambda: ideal_customer_profile(pf, st, model=False,
                                                  first=first_orders() if first_orders is not None else None),
        "advice": lambda: retention_vs_acquisition(pf),
    }
    for key, make in makers.items():
        try:
            pf.insight[key] = make()
        except ClientfolioError as exc:
            pf.insight[key] = str(exc)
    return pf


def predictions(st: Store, state: PortfolioState, as_of: pd.Timestamp, progress: Progress) -> Any:
    """Stage 5b (opt-in, ``predict=True``): churn risk and next order per customer, each measured against
    BG/NBD on the shop's own time split (:func:`clientfolio.predict.evaluation.predict_shop`), on the data
    up to the cut-off.

    Returns the :class:`~clientfolio.predict.evaluation.ShopPredictions`, or the plain sentence why there
    are none (e.g. too short a history for the time split).  The state records that predictions were
    made, as of which day and by which method, and keeps the models: live updates apply them to the
    customers they touch (:mod:`clientfolio.live.predictions`).
    """
    from clientfolio.predict.evaluation import predict_shop

    progress("predicting churn risk and next order", 0.78)
    try:
        result = predict_shop(st, as_of=as_of)
    except ClientfolioError as exc:
        state.predictions_ = state.prediction_models_ = None
        return str(exc).removeprefix("predict: ").rstrip(".") + "."
    state.prediction_models_ = result.models  # live updates apply them to the customers they touch
    state.predictions_ = {"as_of": result.customers.attrs["as_of"].isoformat(), "horizon_days": result.horizon_days,
                          "customers": int(len(result.customers)), "churn": result.churn.chosen,
                          "next_order": result.next_order.chosen,
                          "subscriptions": result.subscriptions.chosen if result.subscriptions is not None else None}
    return result


MAX_TEXTS = 5_000  # reviews and tickets scored by analyze; more are sampled (the report states the sample)
MAX_RETENTION_CUSTOMERS = 20_000  # retention curves from at most this many customers, sampled beyond (stated)
RETENTION_SEGMENTS = ("acquisition_channel", "value_tier", "historical_value_tier")


def retention_days(st: Store, as_of: pd.Timestamp, max_customers: int = MAX_RETENTION_CUSTOMERS,
                   seed: int = 0) -> tuple[pd.DataFrame, str]:
    """The retention curves' input: (one row per customer and purchase day up to `as_of`, the sentence saying
    how the customers were sampled, "" when all are in)."""
    import numpy as np

    end = f"CAST(DATE '{as_of.date().isoformat()}' + 1 AS TIMESTAMP)"
    bought = f"WHERE customer_id IS NOT NULL AND amount > 0 AND ts < {end}"
    ids = st.query(f"SELECT DISTINCT customer_id FROM transactions {bought}")["customer_id"]
    ids = np.sort(ids.unique())  # sorted: the same seed picks the same customers
    sampled, only, params = "", "", None
    if len(ids) > max_customers:
        pick = np.random.default_rng(seed).choice(ids, max_customers, replace=False)
        # only the sampled customers' purchase days leave the store (not every customer's)
        only, params = f" AND {IDS_IN}", [[str(c) for c in pick]]
        sampled = (f" The curves are drawn from {max_customers:,} of the {len(ids):,} customers, picked at random "
                   f"(seed {seed}): the counts below are of that sample, and the intervals include its "
                   "sampling error.")
    days = st.query(f"SELECT customer_id, date_trunc('day', ts) AS ts FROM transactions {bought}{only} "
                    "GROUP BY 1, 2", params)
    days["ts"] = pd.to_datetime(days["ts"])
    return days, sampled


def text_events(st: Store, as_of: pd.Timestamp) -> pd.DataFrame:
    """Reviews and support tickets up to `as_of`: what :func:`retention_and_texts` scores."""
    end = f"CAST(DATE '{as_of.date().isoformat()}' + 1 AS TIMESTAMP)"
    return st.query("SELECT customer_id, ts, type, properties FROM events WHERE type IN ('review', 'support_ticket') "
                    f"AND customer_id IS NOT NULL AND ts < {end}")


def retention_and_texts(st: Store, pf: Portfolio, max_texts: int = MAX_TEXTS,
                        max_customers: int = MAX_RETENTION_CUSTOMERS, seed: int = 0,
                        reads: dict[str, Callable[[], Any]] | None = None) -> Portfolio:
    """Stage 9: retention curves (per acquisition cohort and per segment) and what customers write.

    ``pf.insight["retention"]``: a list of :class:`~clientfolio.predict.retention.RetentionResult`
    (cohorts; then the first of acquisition channel, value tier, historical value tier the customers
    have); ``pf.insight["sentiment"]``: (scored texts, themes by lifecycle stage or None, the sample
    sentence or None) when the store holds reviews or tickets with text.  Each is the sentence saying
    why when it cannot be made.  Cheap: one row per customer and purchase day, and at most
    `max_texts` texts and `max_customers` customers' curves (seeded random samples beyond that, said so:
    at 1M orders from 100k customers this stage costs about a tenth of analyze's time unsampled).
    `reads`: ``"days"`` (:func:`retention_days` at ``pf.as_of`` with these `max_customers` and `seed`) and
    ``"texts"`` (:func:`text_events`) when an earlier stage has started reading them; read here otherwise.
    """
    from clientfolio.predict import retention as ret
    from clientfolio.predict import sentiment as sent

    reads = reads or {}
    try:
        days, sampled = reads["days"]() if "days" in reads else retention_days(st, pf.as_of, max_customers, seed)
        times = ret.retention_times(days, pf.as_of)  # once, for cohorts and segments alike
        cohorts = ret.retention_curves(times)
        cohorts.trend["all customers"] = ret.retention_trend(times, label="all customers")
        cohorts.definition += sampled
        results = [cohorts]
        c = pf.customers.set_index(pf.customers["customer_id"].astype(str))
        kind = next((k for k in RETENTION_SEGMENTS if k in c and c[k].nunique() > 1), None)
        if kind is not None:
            seg = c[kind].dropna().astype(str)
            by_seg = ret.retention_curves(times, seg, by=kind)
            by_seg.definition = ("The same definition and lapse window as above"
                                 + ("; the channel is where each customer came from." if kind == "acquisition_channel"
                                    else f". Segments are today's memberships: a {kind.replace('_', ' ')} is itself "
                                    "defined by recent buying, so it partly describes the retention it is compared "
                                    "on."))
            group = times.index.to_series().map(seg)
            for name in by_seg.curves:
                sub = times[group == name]
                sub.attrs = times.attrs
                by_seg.trend[name] = ret.retention_trend(sub, label=f"{kind.replace('_', ' ')} {name}")
            results.append(by_seg)
        pf.insight["retention"] = results
    except ClientfolioError as exc:
        pf.insight["retention"] = str(exc)
    ev = reads["texts"]() if "texts" in reads else text_events(st, pf.as_of)
    if ev.empty:
        return pf  # no texts in this store: no section
    sample = None
    if len(ev) > max_texts:
        sample = (f"{max_texts:,} of the {len(ev):,} reviews and tickets, drawn at random (seed {seed}), are "
                  "scored here; the shares and means are estimates from that sample.")
        ev = ev.sample(max_texts, random_state=seed).sort_values("ts", kind="stable")
    ev["ts"] = pd.to_datetime(ev["ts"], utc=True)
    try:
        texts = sent.scored_texts(ev)
        if not texts["text"].notna().any():
            return pf
        themes = None
        if "lifecycle" in pf.customers:
            try:
                themes = sent.themes_by_segment(texts, pf.customers.set_index(
                    pf.customers["customer_id"].astype(str))["lifecycle"], random_state=seed)
            except ClientfolioError:
                themes = None  # too few texts for themes: the summary still shows
        pf.insight["sentiment"] = (texts, themes, sample)
    except ClientfolioError as exc:
        pf.insight["sentiment"] = str(exc)
    return pf


def save_results(st: Store, state: PortfolioState, now: Applied, before: Applied | None, notes: Notes,
                 keep_state: bool, stats: Callable[[], pd.DataFrame] | None = None) -> pd.DataFrame | None:
    """Stage 7: the segment snapshots into the store, and (`keep_state`) the fitted state with every
    customer's row, so the portfolio can be kept current (`clientfolio update` / `sweep`).

    A store that already holds a state gets this one as a refit: new orders are first applied under
    the old state, time is swept, then the moves the new state causes are logged as cause "refit".
    `stats`: gives every customer's statistics at the cut-off (:func:`~clientfolio.features.incremental.customer_stats`,
    purchasers or not) when an earlier stage has started reading them (a first analysis only).
    Returns what changed since the previous analysis (None the first time).
    """
    try:
        st.save_memberships(now.segments)
        if before is not None:
            st.save_memberships(before.segments)
    except ClientfolioError as exc:
        notes.append(f"segment snapshots not saved: {exc}")
    if not keep_state:
        return None
    from clientfolio.live.portfolio import LivePortfolio, start

    previous = st.load_state()
    if previous is None:
        start(st, state, now, stats=stats() if stats is not None else None)
        changes = None
    else:
        live = LivePortfolio(st)
        live.catch_up(state.cutoff_)
        live.adopt(state, state.cutoff_, reason="analyze")
        # Since last time: every move logged after the previous analysis had finished (its own refit included
        # there, not here).
        seen = int(st.get_meta("analysed_through_change") or 0)
        changes = st.read_changes(recorded_since=pd.Timestamp(previous[0]["created_at"]))
        changes = changes[changes["change_id"] > seen].reset_index(drop=True)
    last = st.query("SELECT coalesce(max(change_id), 0) AS n FROM segment_changes")["n"].iloc[0]
    st.commit_live(state_rows=None, changes=None, outbox=None, meta={"analysed_through_change": str(int(last))})
    return changes


def analyze(
    data: str | Path | Sequence[str | Path] | pd.DataFrame | None = None,
    *,
    store: Store | str | Path | None = None,
    cutoff: str | pd.Timestamp | None = None,
    previous_days: int = 90,
    horizon_months: int = 12,
    discount_rate: float = 0.10,
    margin: float | None = None,
    model: str = "auto",
    sector: str = "retail",
    rules: str | Path | dict | None = None,
    playbooks: str | Path | Playbooks | None = None,
    clusters: bool = True,
    currency: str = "",
    progress: Progress | None = None,
    options: Any = None,
    rejects_dir: str | Path | None = None,
    on_import: Callable[[Any], None] | None = None,
    predict: bool = False,
    **import_options: Any,
) -> Portfolio:
    """Ingest (if given data), fit, score and segment; return a :class:`Portfolio`.

    ``data``: export file(s), or a DataFrame with customer_id, ts (or date), amount
    (+ optional order_id, ...); ``store``: where the data lives or goes (default: a
    temporary store for this call).  ``margin``: gross margin when the data has no cost of
    goods (default: CLV in revenue).  ``model``: "auto" (chosen on a holdout period),
    "bgnbd", "mbgnbd" or "paretonbd".  ``currency``: the data's currency as an ISO code ("EUR":
    the import keeps only amounts in it and takes unmarked amounts as it; money is shown as €), or
    just a symbol to show money with.  ``rules``: a rule file (or dict), checked before
    anything is imported or fitted.  ``playbooks``: the owner's playbooks file (YAML, merged over the
    built-in ones; checked before any work too), or a :class:`~clientfolio.actions.Playbooks`.  Import settings come as ``options`` (an
    :class:`~clientfolio.ingest.ImportOptions`) or as its fields by keyword; ``rejects_dir``
    is where the rejects file goes; ``on_import(result)`` is called with the
    :class:`~clientfolio.ingest.ImportResult` as soon as the data is imported (the
    portfolio keeps it as ``import_result``).  ``predict``: also train and check churn risk and
    next order (:func:`predictions`; off by default: training costs about a minute per 100,000
    customers, while analyze of a million orders takes seconds); they go to
    ``Portfolio.predictions`` and, in a kept store, to its predictions table.

    The stages are named functions of this module, in this order: :func:`import_data`,
    :func:`data_span`, :func:`choose_model`, :func:`fit_portfolio` (fit the state, apply it),
    :func:`look_back`, :func:`predictions` (when asked), :func:`save_results`, :func:`portfolio_view`,
    :func:`action_plan`, :func:`retention_and_texts`.  A store that is kept (``store=``)
    also keeps the fitted state and every customer's row, ready for :func:`refit` and
    :class:`clientfolio.live.LivePortfolio` updates.
    """
    checked_rules = check_rules(rules) if rules is not None else None  # read once, before any work
    checked_playbooks = check_playbooks(playbooks)
    report = progress or (lambda msg, frac: None)
    notes = Notes()
    tmp = tempfile.TemporaryDirectory(prefix="clientfolio-analyze-")
    own = not isinstance(store, Store)
    st = open_store(store or Path(tmp.name) / "analyze.duckdb") if own else store
    ahead: _ReadAhead | None = None
    try:
        imported = None
        if data is not None:
            report("importing", 0.0)
            where = rejects_dir or (Path(tmp.name) / "rejects" if own and store is None else None)
            imported = import_data(data, st, Path(tmp.name), options, import_options, currency, where, on_import)
            if own:
                st.release_memory()  # DuckDB: the indexes the import extended stay in memory until reopened
        from clientfolio.store.audit import audit

        span = data_span(st, imported, currency)
        as_of = pd.Timestamp(cutoff).normalize() if cutoff is not None else span.last.normalize()
        settings = ClvSettings(horizon_months=horizon_months, discount_rate=discount_rate, margin=margin or 1.0)
        basis = "gross profit" if span.has_cost else ("profit at the stated margin" if margin else "revenue")
        keep = not (own and store is None)
        # What later stages read and nothing computed here changes is read on a second connection, in the
        # order the stages need it, while this thread reads the features and then fits and scores in Python.
        ahead = _ReadAhead(st)
        holdout: dict[str, Callable[[], Any]] = {}
        if (as_of - span.first).days >= MIN_DAYS_FOR_HOLDOUT:  # choose_model's condition (less its support check)
            holdout = {"calibration": ahead.start(holdout_summary, span.first, as_of),
                       "daily": ahead.start(daily_activity)}
        checkup = ahead.start(audit)
        # Every customer's features at the cut-off, read once: the support check counts them, the fit uses them.
        features = customer_features(st, as_of)
        overlap = len(features[0]) <= OVERLAP_MAX_CUSTOMERS
        prev_day = look_back_day(as_of, previous_days, span.first)
        features_before = (ahead.start(customer_features, prev_day) if overlap else
                           (lambda: customer_features(st, prev_day))) if prev_day is not None else None
        first_fit = keep and st.load_state() is None  # no state kept yet: save_results starts one
        stats = ahead.start(customer_stats, as_of, purchasers_only=False) if first_fit and overlap else None
        # Below the measured minimum nothing is fitted or forecast; Portfolio.support carries the reason.
        support = support_at(features[0], span.first, as_of)
        choice = choose_model(st, span.first, as_of, support, model, notes, report, reads=holdout)
        del holdout
        report("scoring and segmenting customers", 0.35)
        # the windowed rules read the orders themselves: once, for the fit and the look-back
        rule_tx = rule_transactions(st) if checked_rules is not None else None
        state, now = fit_portfolio(st, as_of, support, choice, settings, sector, checked_rules, clusters,
                                   span.currency, notes, features=features, transactions=rule_tx)[:2]
        del features  # every customer's features: not needed once fitted (the look-back reads its own)
        # read while the look-back scores: what the action plan and the retention curves read from the store
        from clientfolio.actions.acquisition import first_orders

        first = ahead.start(first_orders)
        later = {"days": ahead.start(retention_days, state.cutoff_), "texts": ahead.start(text_events, state.cutoff_)}
        report("looking back", 0.75)
        before = _for_comparison(look_back(st, state, as_of, previous_days, span.first, notes, transactions=rule_tx,
                                           features=features_before))
        del features_before
        predicted = predictions(st, state, as_of, report) if predict else None
        report("portfolio", 0.85)
        checkup = checkup()
        # The results are written on the background thread while this one builds the portfolio view, which does
        # not touch the store; a refit over a kept state (catch up, adopt) writes first, as before, and so does a
        # big base, where holding both stages' frames at once would raise the peak (OVERLAP_MAX_CUSTOMERS).
        saving = (ahead.run(save_results, st, state, now, before, notes, keep_state=keep, stats=stats)
                  if overlap and (first_fit or not keep)
                  else _ready(save_results(st, state, now, before, notes, keep_state=keep, stats=stats)))
        del stats
        pf = portfolio_view(st, state, now, before, choice, span, checkup, imported, notes,
                            {"horizon_months": horizon_months, "discount_rate": discount_rate, "margin": margin,
                             "value_basis": basis, "sector": sector})
        pf.changes = saving()
        if keep and predicted is not None and not isinstance(predicted, str):
            from clientfolio.predict.stored import current_state_id, save_predictions

            save_predictions(st, predicted, current_state_id(st))
        pf.predictions = predicted
        report("what to do", 0.95)
        pf = action_plan(st, pf, checked_playbooks, first_orders=first)
        pf = retention_and_texts(st, pf, reads=later)
        ahead.close()  # every read started has been used
        report("done", 1.0)
        return pf
    finally:
        if ahead is not None:
            ahead.close()
        if own:
            st.close()
        tmp.cleanup()


def refit(store: Store | str | Path, *, cutoff: str | pd.Timestamp | None = None, model: str = "auto",
          progress: Progress | None = None) -> Any:
    """Fit the store's portfolio anew at `cutoff` (default: the last order) and make it current.

    The settings (horizon, discount rate, margin, sector, rules, clusters) are the current
    state's; the model is chosen again on a holdout period.  A state that had churn risk and next
    order gets them again (trained, checked and chosen as by ``analyze --predict``), written to the
    predictions table with the new state's id and said in the result's notes.  Time is swept under the old state
    first, then every move the new state causes is recorded as cause "refit".  Returns the
    :class:`~clientfolio.live.portfolio.LiveResult`.
    """
    from clientfolio.live.portfolio import LivePortfolio

    report = progress or (lambda msg, frac: None)
    own = not isinstance(store, Store)
    st = open_store(store) if own else store
    try:
        live = LivePortfolio(st)
        old = live.state
        notes = Notes()
        span = data_span(st, None, old.currency)
        as_of = pd.Timestamp(cutoff).normalize() if cutoff is not None else span.last.normalize()
        support = store_support(st, span.first, as_of)
        choice = choose_model(st, span.first, as_of, support, model, notes, report)
        report("fitting the new state", 0.4)
        state, _, _ = fit_portfolio(st, as_of, support, choice, old.settings, old.sector, old.rules_, old.clusters,
                                    old.currency, notes)
        # A state that had predictions gets them again, on the same data and cut-off as the rest of it.
        had = old.predictions_ is not None or getattr(old, "prediction_models_", None) is not None
        predicted = predictions(st, state, as_of, report) if had else None
        report("recording the moves it causes", 0.8)
        result = live.adopt(state, as_of)
        result.notes.extend(str(n) for n in notes.for_owner())
        if isinstance(predicted, str):
            result.notes.append(f"Churn risk and next order were not made again: {predicted} The stored ones stay as "
                                "they were, with the day they are as of, and live updates no longer rescore them.")
        elif predicted is not None:
            from clientfolio.predict.stored import save_predictions

            n = save_predictions(st, predicted, live.state_id)
            m = predicted.models
            result.notes.append(f"Churn risk and next order made again for {n:,} customers as of "
                                f"{m.as_of:%d %B %Y} (churn: {m.churn_source}; next order: {m.next_order_source}).")
        report("done", 1.0)
        return result
    finally:
        if own:
            st.close()
