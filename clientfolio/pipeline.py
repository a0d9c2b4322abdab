"""The analysis pipeline behind `clientfolio.analyze`: from an export (or a store) to a strategic customer portfolio in one call.

ingest -> features -> models -> scores -> segments, twice: at the cut-off and one period
earlier (default 90 days), so the report can show how customers moved between segments.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.core.money import currency_prefix
from clientfolio.core.notes import Note, Notes, method_note
from clientfolio.features import behaviour_features, daily_activity, rfm_summary
from clientfolio.models import BGNBD, MBGNBD, GammaGamma, ParetoNBD
from clientfolio.portfolio import Portfolio
from clientfolio.scores import (ClvSettings, clv_to_cac, clv_to_cac_by_segment, customer_cac, historical_scores,
                                run_rate_scores, score_customers)
from clientfolio.scores.clv import DAYS_PER_MONTH, no_dropout_before_repeat
from clientfolio.scores.intervals import total_interval
from clientfolio.scores.validation import (calibration_gap, compare_models, holdout_comparison, tracking,
                                           tracking_verdict)
from clientfolio.segments import behaviour as seg_behaviour
from clientfolio.segments import history, lifecycle, portfolio, rfm, value
from clientfolio.store import Store, open_store
from clientfolio.store.audit import Support, forecast_support

if TYPE_CHECKING:
    from clientfolio.segments.rules import RuleSet

Progress = Callable[[str, float], None]
MODELS = {"bgnbd": BGNBD, "mbgnbd": MBGNBD, "paretonbd": ParetoNBD}
MODEL_NAMES = {"BG/NBD": "bgnbd", "MBG/NBD": "mbgnbd", "Pareto/NBD": "paretonbd"}
MODEL_LABELS = {v: k for k, v in MODEL_NAMES.items()}
MIN_DAYS_FOR_HOLDOUT = 180
COMPARE_SAMPLE = 10_000  # customers: enough to tell the models apart, cheap enough for big shops
FIT_SAMPLE = 10_000  # customers: beyond this the purchase model's parameters come from a random sample


def _fit_purchase_model(summary: pd.DataFrame, kind: str, notes: list[str], start: dict | None = None):
    """Fit the purchase model, falling back to a penalised fit, then to the other models.

    `start` (parameters from a related fit) saves most iterations.  Returns None when no model
    can be fitted (too little history): scores then fall back to a simple run rate.
    """
    tries = [(kind, {"initial_params": start}), (kind, {"penalizer_coef": 0.001})]
    tries += [(k, {"penalizer_coef": 0.001}) for k in MODELS if k != kind]
    first_error = None
    for name, settings in tries:
        try:
            model = MODELS[name](**settings).fit(summary)
        except ClientfolioError as exc:
            first_error = first_error or exc
            continue
        if (name, settings) != tries[0]:
            notes.append(Note("the purchase model could not be fitted to this history as it is, so it was fitted "
                              "with a safeguard that keeps its estimates moderate: treat predictions as rough",
                              topic="purchase model fallback"))
            notes.append(method_note(f"{MODEL_LABELS[kind]} could not be fitted as is ({first_error}); used "
                                     f"{MODEL_LABELS[name]} with penalizer_coef={settings['penalizer_coef']}"))
        return model
    notes.append(Note("no purchase model could be fitted to this history: CLV and expected purchases are a simple "
                      "run rate (past purchases per month carried forward), and whether each customer is still "
                      "active is unknown", topic="purchase model fallback"))
    notes.append(method_note(f"no purchase model converged ({', '.join(MODEL_LABELS[k] for k in MODELS)} tried, "
                             f"also with penalizer_coef=0.001); first error: {first_error}"))
    return None


def _one_time_alive_model(model, summary: pd.DataFrame, notes: list[str]):
    """For BG/NBD: an MBG/NBD fitted on the same customers, for one-time buyers' P(alive).

    BG/NBD cannot let a customer drop out before their first repeat purchase, so it calls every
    one-time buyer surely alive -- also one silent for two years.  MBG/NBD is the same model plus a
    chance of dropping out right after the first purchase.
    """
    if not no_dropout_before_repeat(model):
        return None
    try:
        alive = MBGNBD(initial_params=dict(model.params_)).fit(summary)
    except ClientfolioError:
        try:
            alive = MBGNBD(penalizer_coef=0.001).fit(summary)
        except ClientfolioError:
            notes.append(Note("for customers who have bought only once, the chance they are still a customer "
                              "cannot be estimated here, so it is left blank", topic="one-time buyers alive"))
            notes.append(method_note("BG/NBD treats customers without a repeat purchase as surely active, and the "
                                     "model used to correct that (MBG/NBD) could not be fitted: their P(alive) is "
                                     "left unknown"))
            return None
    notes.append(method_note("BG/NBD treats customers without a repeat purchase as surely active; their P(alive) "
                             "comes from MBG/NBD fitted on the same customers (which allows leaving right after the "
                             "first purchase), and their expected purchases are BG/NBD's expectation if still active "
                             "times that P(alive)"))
    return alive


def _fit_spend_model(summary: pd.DataFrame, notes: list[str]):
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary"] > 0)]
    if len(repeat) < 30:
        notes.append("fewer than 30 repeat buyers: expected spend is each customer's own average order value")
        return None
    corr = float(np.corrcoef(repeat["frequency"], repeat["monetary"])[0, 1]) if len(repeat) > 2 else 0.0
    if abs(corr) > 0.3:
        notes.append(method_note(f"spend and purchase frequency are correlated ({corr:+.2f}); the Gamma-Gamma "
                                 "spend model assumes they are not, so expected spend may be biased"))
    try:
        return GammaGamma().fit(repeat)
    except ClientfolioError as exc:
        notes.append("the spend model could not be fitted; expected spend is each customer's own average order value")
        notes.append(method_note(f"Gamma-Gamma spend model not fitted: {exc}"))
        return None


def support_at(summary: pd.DataFrame, first: pd.Timestamp, cutoff: pd.Timestamp) -> Support:
    """Does the history up to `cutoff` support forecasts?  The check-up's verdict, at this date."""
    return forecast_support((cutoff.normalize() - first.normalize()).days, len(summary),
                            int((summary["frequency"] > 0).sum()))


def _score_at(store: Store, cutoff: pd.Timestamp, kind: str, s: ClvSettings, notes: list[str],
              start: dict | None = None, fitted: tuple | None = None, summary: pd.DataFrame | None = None,
              support: Support | None = None) -> tuple[pd.DataFrame, tuple[Any, Any, Any]]:
    """Summary + fitted models + scores at one date (one row per customer); models in weeks.

    `fitted` (purchase model, spend model, one-time buyers' P(alive) model) scores with models
    fitted elsewhere instead of fitting; the same triple is returned.  Where `support` says the
    data cannot support forecasts, no model is fitted and the forecast columns are left empty
    with the reason.  ``attrs["clv_total_interval"]`` holds the range of the total (see
    `clientfolio.scores.intervals`) when models were fitted here.
    """
    summary = rfm_summary(store, cutoff=cutoff, unit="W") if summary is None else summary
    alive = None
    if support is not None and not support.forecasts:
        model = spend = None
        scores = historical_scores(summary, support.reason, s)
    elif fitted is not None:
        model, spend, alive = fitted
    else:
        fit_on = summary
        if len(summary) > FIT_SAMPLE:
            # Parameters describe the customer base; a random sample estimates them without bias
            # (their standard errors, and so the CLV intervals, say how precisely).
            fit_on = summary.sample(FIT_SAMPLE, random_state=0)
            notes.append(method_note(f"model parameters estimated on a random sample of {FIT_SAMPLE:,} of "
                                     f"{len(summary):,} customers; every customer is scored"))
        model = _fit_purchase_model(fit_on, kind, notes, start)
        spend = _fit_spend_model(fit_on, notes)
        alive = _one_time_alive_model(model, fit_on, notes) if model is not None else None
    if support is None or support.forecasts:
        if model is None:
            scores = run_rate_scores(summary, s)
        else:
            scores = score_customers(summary, model, spend, s, one_time_alive=alive)
    cols = [c for c in scores.columns if c not in summary.columns or c == "customer_id"]
    merged = summary.merge(scores[cols], on="customer_id", how="left")
    total = None
    if model is not None and s.intervals and fitted is None:
        expected = merged["expected_purchases"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            one = np.where(expected > 0, merged["clv"].to_numpy(dtype=float) / expected, 0.0)
        total = total_interval(merged, model, one, s.horizon_months * DAYS_PER_MONTH / 7.0, s.interval)
    # Models work in weeks; people read days: the customer table says days.
    time_cols = ["recency", "T", "tenure", "ipt_mean", "ipt_std", "last_gap", "first_gap", "ipt_mean_before_last"]
    merged[time_cols] = merged[time_cols] * 7.0
    merged.attrs.update(summary.attrs)
    merged.attrs.update(scores.attrs)
    merged.attrs.update({"unit": "D", "unit_days": 1.0, "clv_total_interval": total})
    return merged, (model, spend, alive)


def _value_12m(store: Store, cutoff: pd.Timestamp) -> pd.DataFrame:
    end = f"DATE '{cutoff.date().isoformat()}'"
    return store.query(f"""SELECT customer_id, sum(amount) AS revenue_12m,
                                  sum(amount) - coalesce(sum(cost), 0) AS value_12m
                           FROM transactions WHERE customer_id IS NOT NULL
                             AND ts >= CAST({end} - 365 AS TIMESTAMP) AND ts < CAST({end} + 1 AS TIMESTAMP)
                           GROUP BY customer_id""")


def _segments_at(store: Store, customers: pd.DataFrame, as_of: pd.Timestamp, margin: float,
                 prospects: pd.Series | None, forecasts: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """All rule-free segment kinds at one date; returns (customers with segment columns, memberships, extras).

    Without forecasts (`forecasts=False`: below the measured minimum data) the kinds built on
    predicted value -- value tiers by CLV and the value x potential quadrants -- are left out.
    """
    parts, extras = [], {}
    scores, m = rfm.rfm_segments(customers, as_of)
    customers = customers.merge(scores, on="customer_id", how="left")
    parts.append(m)
    if forecasts:
        parts.append(value.value_tiers(customers, as_of))
    parts.append(value.value_tiers(customers, as_of, column="revenue", kind="historical_value_tier",
                                   names=("Top 20% by past spend", "Next 30% by past spend", "Other 50% by past spend")))
    parts.append(value.frequency_tiers(customers, as_of))
    prof, m = value.profitability(customers, default_margin=margin, as_of=as_of)
    customers = customers.drop(columns=["cost_to_serve"], errors="ignore").merge(prof, on="customer_id", how="left")
    parts.append(m)
    life, m = lifecycle.lifecycle(customers, as_of, prospects=prospects)
    customers = customers.merge(life[["customer_id", "days_since_last", "rhythm_days", "lifecycle"]],
                                on="customer_id", how="left")
    parts.append(m)
    v12 = _value_12m(store, as_of)
    customers = customers.merge(v12, on="customer_id", how="left")
    customers[["value_12m", "revenue_12m"]] = customers[["value_12m", "revenue_12m"]].fillna(0.0)
    if forecasts:
        quad, m = portfolio.portfolio_quadrants(customers, as_of)
        customers = customers.merge(quad[["customer_id", "quadrant"]], on="customer_id", how="left")
        extras["quadrant_splits"] = {"current": quad.attrs["current_split"], "potential": quad.attrs["potential_split"]}
        parts.append(m)
    else:
        customers["quadrant"] = None
    members = pd.concat(parts, ignore_index=True)
    for kind in ("value_tier", "historical_value_tier", "frequency_tier"):
        sub = members[members["segment_kind"] == kind][["customer_id", "segment"]].rename(columns={"segment": kind})
        customers = customers.merge(sub, on="customer_id", how="left")
    return customers, members, extras


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
    clusters: bool = True,
    currency: str = "",
    progress: Progress | None = None,
    options: Any = None,
    rejects_dir: str | Path | None = None,
    on_import: Callable[[Any], None] | None = None,
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
    anything is imported or fitted.  Import settings come as ``options`` (an
    :class:`~clientfolio.ingest.ImportOptions`) or as its fields by keyword; ``rejects_dir``
    is where the rejects file goes; ``on_import(result)`` is called with the
    :class:`~clientfolio.ingest.ImportResult` as soon as the data is imported (the
    portfolio keeps it as ``import_result``).
    """
    checked_rules = check_rules(rules) if rules is not None else None  # read once, before any work
    report = progress or (lambda msg, frac: None)
    imported = None
    notes = Notes()
    tmp = tempfile.TemporaryDirectory(prefix="clientfolio-analyze-")
    own = not isinstance(store, Store)
    st = open_store(store or Path(tmp.name) / "analyze.duckdb") if own else store
    try:
        if data is not None:
            from clientfolio.ingest import ImportOptions, import_files

            report("importing", 0.0)
            if isinstance(data, pd.DataFrame):
                path = Path(tmp.name) / "data.parquet"
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
            where = rejects_dir or (Path(tmp.name) / "rejects" if own and store is None else None)
            result = imported = import_files(paths, st, opts, rejects_dir=where)
            if on_import is not None:
                on_import(result)
            # Rejected rows are told once, by the data check-up (it reads the same import log).
        from clientfolio.store.audit import audit

        checkup = audit(st)
        span = st.query("SELECT min(ts) AS a, max(ts) AS b, count(DISTINCT currency) AS cur, max(currency) AS c "
                        "FROM transactions WHERE customer_id IS NOT NULL")
        if span.empty or pd.isna(span["b"].iloc[0]):
            if imported is None:
                raise ClientfolioError("there are no orders with a customer to analyse; import an export first")
            stored = sum(f.rows_stored for f in imported.files)
            raise ClientfolioError(
                f"none of the {imported.rows_in:,} rows imported is an order with a customer ({stored:,} stored: "
                "guest sales, customer lists or events; the rest rejected"
                + (f", see {imported.rejects_path}" if imported.rejects_path else "") + "). Customer models need "
                "orders that name a customer: check the customer column (--customer-col or --email-col)")
        first, last = pd.Timestamp(span["a"].iloc[0]), pd.Timestamp(span["b"].iloc[0])
        if not currency and span["cur"].iloc[0] == 1:
            currency = currency_prefix(span["c"].iloc[0])
        elif len(currency) == 3 and currency.isalpha():  # an ISO code given by the caller: "EUR" -> "€"
            currency = currency_prefix(currency)
        as_of = pd.Timestamp(cutoff).normalize() if cutoff is not None else last.normalize()
        has_cost = bool(st.query("SELECT count(cost) AS n FROM transactions")["n"].iloc[0])
        s = ClvSettings(horizon_months=horizon_months, discount_rate=discount_rate, margin=margin or 1.0)
        basis = "gross profit" if has_cost else ("profit at the stated margin" if margin else "revenue")

        # -- which purchase model: the one that predicts a holdout period of this shop best --------
        validation: dict[str, Any] = {}
        start = None
        kind = model if model != "auto" else "bgnbd"
        if model not in ("auto", *MODELS):
            raise ClientfolioError(f"model must be 'auto' or one of {sorted(MODELS)}, got {model!r}")
        summary_now = rfm_summary(st, cutoff=as_of, unit="W")
        # Below the measured minimum nothing is fitted or forecast; Portfolio.support carries the reason.
        support = support_at(summary_now, first, as_of)
        if support.forecasts and (as_of - first).days >= MIN_DAYS_FOR_HOLDOUT:
            report("checking models on a holdout period", 0.15)
            split = (first + (as_of - first) * 2 / 3).normalize()
            cal = rfm_summary(st, cutoff=split, unit="W", holdout_end=as_of)
            if len(cal) > COMPARE_SAMPLE:
                notes.append(method_note(f"models compared on a random sample of {COMPARE_SAMPLE:,} of {len(cal):,} "
                                         "customers"))
                cal = cal.sample(COMPARE_SAMPLE, random_state=0).sort_values("customer_id").reset_index(drop=True)
            try:
                comp = compare_models(cal)
                validation = {"comparison": comp, "calibration_end": split, "holdout_end": as_of}
                validation["by_bucket"] = holdout_comparison(comp.models[comp.best], cal)[1]
                daily = daily_activity(st)
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
            except ClientfolioError as exc:
                notes.append("the predictions could not be checked against your own recent months (details in "
                             "the method notes)")
                notes.append(method_note(f"the holdout comparison could not run: {exc}"))
        elif support.forecasts:
            notes.append(f"less than {MIN_DAYS_FOR_HOLDOUT} days of history: the predictions cannot be checked "
                         "against your own recent months yet")
            notes.append(method_note("no holdout comparison of the purchase models (it needs "
                                     f"{MIN_DAYS_FOR_HOLDOUT} days of history); {MODEL_LABELS[kind]} is used"))

        report("scoring customers", 0.35)
        customers, fitted_models = _score_at(st, as_of, kind, s, notes, start, summary=summary_now,
                                                           support=support)
        purchase_model, spend_model = fitted_models[:2]
        total_range = customers.attrs.get("clv_total_interval")
        beh, beh_notes = behaviour_features(st, as_of)
        notes.extend(beh_notes)
        customers = customers.merge(beh, on="customer_id", how="left")
        attrs = st.query("SELECT customer_id, region, country AS customer_country, industry, size, "
                         "acquisition_channel, acquisition_cost, consent_marketing, first_seen FROM customers")
        customers = customers.merge(attrs, on="customer_id", how="left")
        customers.attrs.update({"cutoff": as_of, "unit_days": 1.0})
        bought = set(customers["customer_id"])
        prospects = attrs.loc[~attrs["customer_id"].isin(bought), "customer_id"]

        report("segmenting", 0.55)
        customers, members, extras = _segments_at(st, customers, as_of, s.margin, prospects, support.forecasts)
        beh_members, beh_notes = seg_behaviour.behaviour_segments(customers, as_of)
        notes.extend(beh_notes)
        parts = [members, beh_members]
        vs = value.value_score(customers, sector)
        notes.extend(method_note(n) for n in vs.notes)  # how the value score weighs its dimensions
        customers = customers.merge(vs.scores, on="customer_id", how="left")
        cluster_result = None
        if clusters and len(customers) >= 50:
            report("discovering clusters", 0.65)
            try:
                from clientfolio.segments.clusters import discover_clusters

                # Groups describe how people buy -- what, how much, how often, when, at what price --
                # not what they are worth or whether they are still active: those have their own segments.
                cols = [c for c in customers.columns if c.startswith("share_")] + [
                    c for c in ("aov", "orders_per_month", "weekend_share", "discount_share") if c in customers]
                # k is chosen on a 5,000-customer sample (silhouettes are stable there), every customer assigned.
                cluster_result = discover_clusters(customers, columns=cols, as_of=as_of, currency=currency or None,
                                                   sample_size=5_000)
                parts.append(cluster_result.membership)
                customers = customers.merge(
                    cluster_result.membership[["customer_id", "segment"]].rename(columns={"segment": "cluster"}),
                    on="customer_id", how="left")
            except ImportError:
                notes.append(method_note("cluster discovery is not available in this installation"))
            except ClientfolioError as exc:
                notes.append(method_note(f"cluster discovery skipped: {exc}"))
        if checked_rules is not None:
            rule_frame = customers.drop(columns=[c for c in customers.columns
                                                 if customers[c].dtype == object and c != "customer_id"
                                                 and customers[c].map(type).isin([list, dict]).any()])
            ruleset = checked_rules.with_schema(rule_frame)  # this shop's columns, now that they exist
            tx = st.query("SELECT customer_id, source, order_id, ts, amount, is_refund FROM transactions "
                          "WHERE customer_id IS NOT NULL")
            parts.append(ruleset.evaluate(rule_frame, tx, as_of=as_of))
        segments_now = pd.concat([p for p in parts if len(p)], ignore_index=True)
        for kind_name in ("category_preference", "channel_preference", "discount_reliance"):
            sub = segments_now[segments_now["segment_kind"] == kind_name][["customer_id", "segment"]]
            customers = customers.merge(sub.rename(columns={"segment": kind_name}), on="customer_id", how="left")

        # -- one period earlier, for flows and growth ------------------------------------------------
        report("looking back", 0.75)
        prev_as_of = as_of - pd.Timedelta(days=previous_days)
        prev_members, prev_customers = None, None
        if prev_as_of > first + pd.Timedelta(days=30):
            try:
                prev_settings = ClvSettings(horizon_months=s.horizon_months, discount_rate=s.discount_rate,
                                            margin=s.margin, intervals=False)  # only segments are needed
                # The same fitted models score the earlier date: changes between the dates then come from
                # the customers' behaviour, not from re-estimating the population.
                prev_customers, _ = _score_at(st, prev_as_of, kind, prev_settings, [], fitted=fitted_models,
                                              support=support)
                prev_customers = prev_customers.merge(attrs, on="customer_id", how="left")
                prev_customers.attrs.update({"cutoff": prev_as_of, "unit_days": 1.0})
                prev_customers, prev_members, _ = _segments_at(st, prev_customers, prev_as_of, s.margin, None,
                                                               support.forecasts)
            except ClientfolioError as exc:
                notes.append(f"no comparison with {prev_as_of:%d %b %Y} (details in the method notes)")
                notes.append(method_note(f"scoring at {prev_as_of:%d %b %Y} failed: {exc}"))
        kpis = history.segment_kpis(customers, segments_now, prev_members, prev_customers)
        forecast = (history.markov_forecast(prev_members, segments_now, "lifecycle", steps=4)
                    if prev_members is not None else None)

        report("portfolio", 0.85)
        curve, top20 = portfolio.concentration(customers["revenue"])
        members_for_div = segments_now[segments_now["segment_kind"].isin(
            ["rfm", "value_tier", "lifecycle", "portfolio", "cluster", "channel_preference"])]
        divest = portfolio.divestment_candidates(customers, members_for_div, currency)
        spend_tbl = st.query("SELECT * FROM marketing_spend")
        cac = clv_to_cac(customers, attrs, spend_tbl if len(spend_tbl) else None)
        customers["cac"] = customer_cac(customers, cac).to_numpy()
        cac_by_segment = clv_to_cac_by_segment(customers, segments_now, customers["cac"])
        try:
            st.save_memberships(segments_now)
            if prev_members is not None:
                st.save_memberships(prev_members)
        except ClientfolioError as exc:
            notes.append(f"segment snapshots not saved: {exc}")
        report("done", 1.0)
        return Portfolio(
            customers=customers, segments=segments_now, kpis=kpis, as_of=as_of, previous_as_of=prev_as_of
            if prev_members is not None else None, previous_segments=prev_members,
            models={"purchase": purchase_model, "spend": spend_model, "one_time_alive": fitted_models[2], "kind": kind},
            validation=validation,
            concentration=curve, top20_share=top20, clv_cac=cac, clv_cac_by_segment=cac_by_segment,
            divestment=divest, clusters=cluster_result,
            quadrant_splits=extras.get("quadrant_splits", {}), forecast=forecast,
            settings={"horizon_months": horizon_months, "discount_rate": discount_rate, "margin": margin,
                      "value_basis": basis, "sector": sector, "value_weights": vs.weights,
                      "clv_total_interval": total_range},
            notes=notes, audit=checkup, currency=currency, support=support, import_result=imported)
    finally:
        if own:
            st.close()
        tmp.cleanup()
