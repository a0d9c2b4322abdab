"""Fitting the purchase and spend models for the portfolio state, with the safeguards a shop needs.

The purchase model falls back to a penalised fit, then to the other models, then to a run rate;
for BG/NBD an MBG/NBD is fitted alongside for one-time buyers' P(alive).  Every fallback leaves a
note for the owner and a method note with the detail.  Models are stored as plain numbers
(`model_to_dict` / `model_from_dict`) so a fitted state can live in the store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.core.notes import Note, method_note
from clientfolio.models import BGNBD, MBGNBD, GammaGamma, ParetoNBD
from clientfolio.scores.clv import no_dropout_before_repeat

MODELS = {"bgnbd": BGNBD, "mbgnbd": MBGNBD, "paretonbd": ParetoNBD}
MODEL_NAMES = {"BG/NBD": "bgnbd", "MBG/NBD": "mbgnbd", "Pareto/NBD": "paretonbd"}
MODEL_LABELS = {v: k for k, v in MODEL_NAMES.items()}
_CLASSES = {cls.__name__: cls for cls in (BGNBD, MBGNBD, ParetoNBD, GammaGamma)}
# What a stored model keeps besides its parameters: what reports and intervals read.
_KEPT = ("log_likelihood_", "aic_", "bic_", "standard_errors_", "confidence_intervals_", "n_customers_",
         "n_distinct_", "convergence_")


def fit_purchase_model(summary: pd.DataFrame, kind: str, notes: list, start: dict | None = None):
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


def fit_one_time_alive_model(model, summary: pd.DataFrame, notes: list):
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


def fit_spend_model(summary: pd.DataFrame, notes: list):
    """Gamma-Gamma on the repeat buyers with positive spend; None (each customer's own average) below 30."""
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


def model_to_dict(model) -> dict | None:
    """A fitted model as plain numbers: class, parameters, covariance and the fit statistics reports show."""
    if model is None:
        return None
    out = {"class": type(model).__name__, "params": dict(model.params_)}
    cov = getattr(model, "covariance_", None)
    if cov is not None:
        out["covariance"] = {"names": list(cov.index), "matrix": cov.to_numpy().tolist()}
    for name in _KEPT:
        if hasattr(model, name):
            value = getattr(model, name)
            out[name] = {k: list(v) for k, v in value.items()} if name == "confidence_intervals_" else value
    return out


def model_from_dict(d: dict | None):
    """The model `model_to_dict` wrote, ready to predict (and to draw parameters for ranges)."""
    if d is None:
        return None
    model = _CLASSES[d["class"]].from_params(d["params"])
    if "covariance" in d:
        names = d["covariance"]["names"]
        model.covariance_ = pd.DataFrame(np.asarray(d["covariance"]["matrix"], dtype=float), index=names,
                                         columns=names)
    for name in _KEPT:
        if name in d:
            value = d[name]
            setattr(model, name, {k: tuple(v) for k, v in value.items()} if name == "confidence_intervals_" else value)
    return model
