"""Fairness audit: do the product's decisions fall harder on some groups of customers?

For every sensitive or proxy attribute found in the data — region, country, gender, age band
(from an age, a birth year or a birth date), postcode area (the leading letters of a UK-style
postcode, or the first two digits of a numeric one) — each group is compared with all other
customers on these outcomes (those the data allows):

- ``divestment``: divestment candidate — unprofitable after cost to serve, the product's own
  definition (:func:`clientfolio.segments.portfolio.divestment_candidates`); adverse.
- ``review``: in the portfolio's Review quadrant (low value now, low potential), the quadrant
  playbooks serve least; adverse.
- ``top_tier``: in the top value tier (High-Value Regulars); favourable.
- ``winback``: at risk or lapsed, so flagged for a win-back offer; favourable (an offer).
- ``self_service``: self-service only, or no service level at all; adverse; and
  ``priority``: priority or dedicated service; favourable — both only when a service level per
  segment is given (the playbooks' levels).

Each comparison gives the group's rate (Wilson 95% interval), the difference in points from the
rest (Newcombe 95% interval, for that one comparison) and the ratio, with a two-sided p-value.
Holm's method controls the chance of reporting any disparity where there is none at 5% across
all group x outcome comparisons of the audit.  A group (or its rest) smaller than ``min_group``
customers is reported as too small to judge.  A disparity is then checked against spend: the
Mantel–Haenszel difference within bands of past spend (deciles) says whether the group simply
spends less (or more) — "largely explained by spend" — or fares worse than customers who spend
the same — "not explained by spend: review the rule".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.actions.proportions import holm, mantel_haenszel_rd, newcombe, two_by_two_p, wilson
from clientfolio.core.errors import ClientfolioError
from clientfolio.segments.value import VALUE_TIER_NAMES

MIN_GROUP = 30
ALPHA = 0.05
MAX_GROUPS = 60
SERVICE_LEVELS = ("dedicated", "priority", "standard", "self-service")
SPEND_COLUMNS = ("revenue", "monetary", "clv")

# name of a derived attribute -> the column names (case-insensitive) it can come from
_SOURCES = {
    "region": ("region",),
    "country": ("country", "customer_country"),
    "gender": ("gender", "sex"),
    "age_band": ("age", "birth_year", "year_of_birth", "birthyear", "date_of_birth", "birth_date", "birthdate", "dob",
                 "birthday"),
    "postcode_area": ("postcode", "post_code", "postal_code", "zip", "zipcode", "zip_code", "postalcode"),
}
_LABELS = {"region": "Region", "country": "Country", "gender": "Gender", "age_band": "Age band",
           "postcode_area": "Postcode area"}
NOT_RECORDED = "(not recorded)"


class FairnessError(ClientfolioError):
    """An audit that cannot run as asked (an unknown attribute, no outcomes in the data)."""


@dataclass(frozen=True)
class Outcome:
    key: str
    label: str  # plain words: what being counted means
    adverse: bool  # True: a higher rate is worse for the group


OUTCOMES = {
    "divestment": Outcome("divestment", "are divestment candidates (unprofitable after cost to serve)", True),
    "review": Outcome("review", "are in the Review quadrant (low value, low potential)", True),
    "top_tier": Outcome("top_tier", f"are in the top value tier ({VALUE_TIER_NAMES[0]})", False),
    "winback": Outcome("winback", "are flagged for a win-back offer (at risk or lapsed)", False),
    "self_service": Outcome("self_service", "get only self-service or no service level", True),
    "priority": Outcome("priority", "get priority or dedicated service", False),
}


@dataclass
class FairnessReport:
    """The audit: one row per attribute group x outcome in ``table``, and what it means in ``findings``."""

    table: pd.DataFrame
    findings: list[str]
    attributes: list[str]
    outcomes: list[str]
    notes: list[str] = field(default_factory=list)
    method: str = ""

    @property
    def disparities(self) -> pd.DataFrame:
        """The rows where a group fares significantly worse than the rest."""
        return self.table[self.table["status"] == "disparity"].reset_index(drop=True)


# --- the customers frame ---------------------------------------------------------------------------

def expand_attributes(customers: pd.DataFrame) -> pd.DataFrame:
    """The frame with the keys of its JSON ``attributes`` column as columns (existing columns win)."""
    if "attributes" not in customers or customers["attributes"].isna().all():
        return customers
    parsed = [json.loads(a) if isinstance(a, str) and a.strip().startswith("{") else {}
              for a in customers["attributes"]]
    extra = pd.DataFrame(parsed, index=customers.index)
    extra = extra[[c for c in extra.columns if c not in customers.columns]]
    return pd.concat([customers, extra], axis=1)


def customers_from_store(store: Any) -> pd.DataFrame:
    """One row per analysed customer: segments and spend from customer_state, attributes from customers."""
    cols = set(store.customer_state_columns())
    if "seg_lifecycle" not in cols and "seg_value_tier" not in cols:
        raise FairnessError("the store holds no analysed customers: run `clientfolio analyze --store ...` first")
    state = store.read_customer_state()
    rename = {c: c[4:] for c in state.columns if c.startswith("seg_")}
    state = state.rename(columns=rename)
    if "stat_cost_to_serve" in state:
        state["cost_to_serve"] = state["stat_cost_to_serve"]
    attrs = store.query("SELECT customer_id, region, country, attributes FROM customers")
    attrs = expand_attributes(attrs).drop(columns=["attributes"])
    state["customer_id"] = state["customer_id"].astype(str)
    attrs["customer_id"] = attrs["customer_id"].astype(str)
    return state.merge(attrs, on="customer_id", how="left")


# pandas 3 copies a frame's columns only when they are written to: a shallow copy is then a safe one
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or bool(getattr(pd.options.mode, "copy_on_write", False))


def _frame(source: Any, store: Any = None) -> tuple[pd.DataFrame, set[str] | None]:
    """(customers frame, divestment ids from a Portfolio or None) for any accepted input."""
    if isinstance(source, pd.DataFrame):
        frame, divest = source.copy(), None
    elif hasattr(source, "customers") and hasattr(source, "segments"):  # a Portfolio
        frame = source.customers.copy(deep=not _COPY_ON_WRITE)  # changed below: a copy, lazily where pandas can
        d = getattr(source, "divestment", None)
        divest = set(d.customers["customer_id"].astype(str)) if d is not None else None
    elif hasattr(source, "query") and hasattr(source, "read_customer_state"):  # a Store
        return customers_from_store(source), None
    else:
        raise FairnessError(f"fairness_audit needs a Portfolio, a customers DataFrame or a store, got "
                            f"{type(source).__name__}")
    frame["customer_id"] = frame["customer_id"].astype(str)
    if store is not None:  # attributes kept only in the store (its customers table and JSON attributes)
        extra = _store_attributes(store)
        keep = ["customer_id"] + [c for c in extra.columns if c not in frame.columns and _is_attribute_column(c)]
        frame = frame.merge(extra[keep], on="customer_id", how="left")
    return expand_attributes(frame), divest


def _store_attributes(store: Any) -> pd.DataFrame:
    """The attribute columns :func:`customers_from_store` would add, for the same customers, without reading
    every column of customer_state (its scores and segments are not attributes; ~80 columns per customer)."""
    cols = set(store.customer_state_columns())
    if "seg_lifecycle" not in cols and "seg_value_tier" not in cols:
        raise FairnessError("the store holds no analysed customers: run `clientfolio analyze --store ...` first")
    attrs = store.query("SELECT customer_id, region, country, attributes FROM customers "
                        "WHERE customer_id IN (SELECT customer_id FROM customer_state)")
    attrs = expand_attributes(attrs).drop(columns=["attributes"])
    attrs["customer_id"] = attrs["customer_id"].astype(str)
    return attrs


def _is_attribute_column(col: str) -> bool:
    return any(col.lower() in names for names in _SOURCES.values())


def _find(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in frame.columns}
    return next((lower[n] for n in names if n in lower and frame[lower[n]].notna().any()), None)


def _segment(frame: pd.DataFrame, kind: str, *aliases: str) -> pd.Series | None:
    col = _find(frame, (kind, f"seg_{kind}", *aliases))
    return None if col is None else frame[col].astype("string").str.strip()


def age_band(values: pd.Series, as_of: pd.Timestamp, ages: bool = False) -> pd.Series:
    """Ages (``ages=True``) or birth years / birth dates as bands: under 25, 25-34, ..., 65 and over.

    A birth value without a year (a birthday '06-15', a month 6) gives no band rather than a wrong one.
    """
    num = pd.to_numeric(values, errors="coerce")
    if ages:
        age = num
    else:
        year = num.where((num >= 1900) & (num <= as_of.year))
        text = values.astype("string")
        dated = text.str.contains(r"\d{4}", regex=True).fillna(False) & num.isna()
        born = pd.to_datetime(text.where(dated), errors="coerce", format="mixed")
        age = (as_of.year - year).fillna((as_of - born).dt.days / 365.25)
    age = pd.Series(age, index=values.index, dtype=float).where(lambda a: (a >= 0) & (a < 120))
    bands = pd.cut(age, [0, 25, 35, 45, 55, 65, 200], right=False,
                   labels=["under 25", "25-34", "35-44", "45-54", "55-64", "65 and over"])
    return bands.astype("string")


def postcode_area(values: pd.Series) -> pd.Series:
    """'SW1A 1AA' -> 'SW', 'M1 1AE' -> 'M', '10115' -> '10': the area a postcode belongs to."""
    s = values.astype("string").str.upper().str.strip()
    letters = s.str.extract(r"^([A-Z]{1,2})(?=\d)", expand=False)
    digits = s.str.extract(r"^(\d{2})", expand=False)
    return letters.fillna(digits)


def _attributes(frame: pd.DataFrame, wanted: Sequence[str] | None, as_of: pd.Timestamp
                ) -> tuple[dict[str, pd.Series], list[str]]:
    """Attribute name -> group per customer, and notes on what was not found."""
    out: dict[str, pd.Series] = {}
    notes: list[str] = []
    names = list(wanted) if wanted else list(_SOURCES)
    absent: list[str] = []
    for name in names:
        if name in _SOURCES:
            col = _find(frame, _SOURCES[name])
            if col is None:
                absent.append(_label(name).lower())
                if wanted:
                    raise FairnessError(f"no {name.replace('_', ' ')} in the data (looked for the columns "
                                        f"{', '.join(_SOURCES[name])}); attributes found: "
                                        f"{', '.join(_attributes(frame, None, as_of)[0]) or 'none'}")
                continue
            raw = frame[col]
            if name == "age_band":
                values = age_band(raw, as_of, ages=col.lower() == "age")
            elif name == "postcode_area":
                values = postcode_area(raw)
            else:
                values = raw.astype("string").str.strip()
        elif name in frame.columns:
            values = frame[name].astype("string").str.strip()
        else:
            raise FairnessError(f"unknown attribute '{name}': use one of {', '.join(_SOURCES)} or a column of the "
                                f"customers ({', '.join(map(str, frame.columns[:12]))}, ...)")
        values = values.replace("", pd.NA)
        if values.isna().all():
            notes.append(f"{_label(name)}: not recorded for any customer, not audited")
            continue
        values = values.fillna(NOT_RECORDED)
        k = values.nunique()
        if k < 2:
            notes.append(f"{_label(name)}: every customer has the same value, nothing to compare")
            continue
        if k > MAX_GROUPS:
            notes.append(f"{_label(name)}: {k:,} different values, too many groups to compare one by one; "
                         "audit a coarser attribute (e.g. postcode area instead of postcode)")
            continue
        out[name] = values.astype(str)
    if absent and not wanted:
        notes.append(f"not in the data, so not audited: {', '.join(absent)}")
    return out, notes


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def _service_per_customer(frame: pd.DataFrame, service: Mapping | pd.Series) -> pd.Series:
    """Each customer's best service level across their segments (a playbook for any of them serves them)."""
    if isinstance(service, pd.Series):
        s = service.copy()
        s.index = s.index.astype(str)
        return frame["customer_id"].map(s).astype("string").str.lower()
    rank = {lvl: i for i, lvl in enumerate(SERVICE_LEVELS)}
    for key, level in service.items():
        if str(level).lower() not in rank:
            raise FairnessError(f"service level '{level}' for {key!r} is not one of {', '.join(SERVICE_LEVELS)}")
    best = pd.Series(len(SERVICE_LEVELS), index=frame.index, dtype=float)
    kinds = ("rfm_segment", "rfm", "value_tier", "historical_value_tier", "frequency_tier", "lifecycle",
             "quadrant", "portfolio", "profitability", "cluster", "category_preference", "channel_preference",
             "discount_reliance", "occasions", "support", "cart_abandoners")
    for col in [c for c in frame.columns if c in kinds or c.startswith(("seg_", "rule_"))]:
        kind = {"rfm_segment": "rfm", "quadrant": "portfolio"}.get(col, col.removeprefix("seg_"))
        # Each distinct segment name folded once (not once per playbook key and customer).
        codes, names = pd.factorize(frame[col].astype("string"))
        folded = pd.Series(names, dtype="string").str.casefold()
        for key, level in service.items():
            k_kind, k_seg = (key if isinstance(key, tuple) else
                             tuple(key.split(":", 1)) if ":" in key else (None, key))
            if k_kind is not None and k_kind != kind:
                continue
            hit = np.isin(codes, np.flatnonzero((folded == str(k_seg).casefold()).fillna(False).to_numpy()))
            best[hit] = np.minimum(best[hit], rank[str(level).lower()])
    return best.map(lambda i: SERVICE_LEVELS[int(i)] if i < len(SERVICE_LEVELS) else None).astype("string")


def _outcomes(frame: pd.DataFrame, divest: set[str] | None, service: Mapping | pd.Series | None
              ) -> tuple[dict[str, pd.Series], list[str]]:
    """Outcome key -> boolean per customer, and notes on outcomes the data does not allow."""
    out: dict[str, pd.Series] = {}
    notes: list[str] = []
    if divest is not None:
        out["divestment"] = frame["customer_id"].isin(divest)
    elif {"profit", "cost_to_serve"} <= set(frame.columns):
        out["divestment"] = (frame["profit"].astype(float) < 0) & (frame["cost_to_serve"].astype(float) > 0)
    elif (s := _segment(frame, "profitability")) is not None:
        out["divestment"] = (s == "Unprofitable").fillna(False)
    else:
        notes.append("divestment: no profit or profitability in the data, not audited")
    quad = _segment(frame, "portfolio", "quadrant")
    if quad is not None:
        out["review"] = (quad == "Review").fillna(False)
    tier = _segment(frame, "value_tier")
    if tier is not None:
        out["top_tier"] = (tier == VALUE_TIER_NAMES[0]).fillna(False)
    life = _segment(frame, "lifecycle")
    if life is not None:
        out["winback"] = life.str.lower().isin(["at risk", "lapsed"]).fillna(False)
    if service is not None:
        level = _service_per_customer(frame, service)
        out["self_service"] = (level.isna() | (level == "self-service")).astype(bool)
        out["priority"] = level.isin(["priority", "dedicated"]).fillna(False).astype(bool)
    if not out:
        raise FairnessError("no outcomes to audit: the customers have no divestment, portfolio, value tier or "
                            "lifecycle columns; analyse them first (`clientfolio analyze`)")
    return {k: v.astype(bool).reset_index(drop=True) for k, v in out.items()}, notes


# --- the audit ---------------------------------------------------------------------------------------

def fairness_audit(portfolio_or_customers: Any, attributes: Sequence[str] | None = None, *,
                   service_levels: Mapping | pd.Series | None = None, min_group: int = MIN_GROUP,
                   alpha: float = ALPHA, store: Any = None, spend: str | None = None) -> FairnessReport:
    """Compare the product's outcomes across groups of sensitive or proxy attributes.

    Parameters
    ----------
    portfolio_or_customers
        A :class:`~clientfolio.Portfolio`, its ``customers`` frame (or any frame with customer_id,
        segment columns and attribute columns), or a store holding an analysis.
    attributes
        Which to audit: region, country, gender, age_band, postcode_area or any column name.
        Default: every one of the first five the data has.
    service_levels
        Optional service level per segment (keys "kind:segment", (kind, segment) or a segment
        name; values dedicated / priority / standard / self-service), or a level per customer id
        (a Series).  A customer gets the best level of their segments.
    min_group
        Groups (and rests) with fewer customers are reported as too small to judge.
    alpha
        The chance, across the whole audit, of reporting a disparity where there is none (Holm).
    store
        With a Portfolio or frame: a store whose customers table adds attributes the frame lacks.
    spend
        The spend column for the "explained by spend" check (default: revenue, else monetary, clv).
    """
    frame, divest = _frame(portfolio_or_customers, store)
    frame = frame.reset_index(drop=True)
    as_of = pd.Timestamp(getattr(portfolio_or_customers, "as_of", None) or
                         (frame["as_of"].max() if "as_of" in frame else pd.Timestamp.now()))
    groups, notes = _attributes(frame, attributes, as_of)
    outcomes, more = _outcomes(frame, divest, service_levels)
    notes += more
    if not groups:
        raise FairnessError("no sensitive or proxy attribute to audit: the data has no region, country, gender, "
                            "age or postcode (add them to the customers file, or name a column with --attribute)")
    spend_col = spend or _find(frame, SPEND_COLUMNS)
    if spend is not None and spend not in frame:
        raise FairnessError(f"spend column '{spend}' is not in the customers")
    bands = _spend_bands(frame[spend_col]) if spend_col else None
    if spend_col is None:
        notes.append("no spend column (revenue, monetary or clv): disparities are not checked against spend")
    rows = []
    for attr, g in groups.items():
        for outcome, y in outcomes.items():
            for group in _ordered_groups(g):
                rows.append(_compare(attr, group, g == group, outcome, y, min_group))
    table = pd.DataFrame(rows)
    table["p_adjusted"] = holm(table["p_value"].to_numpy())
    significant = table["p_adjusted"] < alpha
    worse = np.where([OUTCOMES[o].adverse for o in table["outcome"]], table["diff"] > 0, table["diff"] < 0)
    table.loc[table["status"] != "too small to judge", "status"] = "no evidence"
    table.loc[significant & worse, "status"] = "disparity"
    table.loc[significant & ~worse, "status"] = "favoured"
    _explain(table, groups, outcomes, frame, spend_col, bands)
    findings = _findings(table, groups, outcomes, alpha, min_group)
    return FairnessReport(table=table, findings=findings, attributes=list(groups), outcomes=list(outcomes),
                          notes=notes, method=__doc__.split("\n\n", 1)[1].strip())


def _ordered_groups(g: pd.Series) -> list[str]:
    counts = g.value_counts()
    return [k for k in counts.index if k != NOT_RECORDED] + ([NOT_RECORDED] if NOT_RECORDED in counts else [])


def _spend_bands(spend: pd.Series) -> np.ndarray:
    """Deciles of spend (fewer for small data: at least about 50 customers a band)."""
    s = spend.astype(float).fillna(0.0)
    k = int(max(2, min(10, len(s) // 50)))
    return pd.qcut(s.rank(method="first"), k, labels=False).to_numpy()


def _compare(attr: str, group: str, member: pd.Series, outcome: str, y: pd.Series, min_group: int) -> dict:
    inside, rest = member.to_numpy(), ~member.to_numpy()
    yv = y.to_numpy()
    n1, n0 = int(inside.sum()), int(rest.sum())
    x1, x0 = int(yv[inside].sum()), int(yv[rest].sum())
    r1, r0 = (x1 / n1 if n1 else np.nan), (x0 / n0 if n0 else np.nan)
    row = {"attribute": attr, "group": group, "outcome": outcome, "outcome_label": OUTCOMES[outcome].label,
           "customers": n1, "count": x1, "rate": r1, "rate_low": np.nan, "rate_high": np.nan,
           "rest_customers": n0, "rest_rate": r0, "diff": r1 - r0, "diff_low": np.nan, "diff_high": np.nan,
           "ratio": (r1 / r0 if r0 > 0 else (np.inf if r1 > 0 else np.nan)), "p_value": np.nan}
    if n1 < min_group or n0 < min_group:
        row["status"] = "too small to judge"
        return row
    row["rate_low"], row["rate_high"] = wilson(x1, n1)
    row["diff_low"], row["diff_high"] = newcombe(x1, n1, x0, n0)
    row["p_value"] = two_by_two_p(x1, n1, x0, n0)
    row["status"] = "no evidence"
    return row


def _explain(table: pd.DataFrame, groups: dict[str, pd.Series], outcomes: dict[str, pd.Series],
             frame: pd.DataFrame, spend_col: str | None, bands: np.ndarray | None) -> None:
    """Add the within-spend-band difference and the likely reason to every disparity."""
    for c in ("adjusted_diff", "adjusted_low", "adjusted_high"):
        table[c] = np.nan
    table["reason"] = ""
    if bands is None:
        table.loc[table["status"] == "disparity", "reason"] = "not checked against spend (no spend in the data)"
        return
    spend = frame[spend_col].astype(float).fillna(0.0).to_numpy()
    for i in table.index[table["status"].isin(["disparity", "favoured"])]:
        r = table.loc[i]
        member = (groups[r["attribute"]] == r["group"]).to_numpy()
        y = outcomes[r["outcome"]].to_numpy()
        k = int(bands.max()) + 1
        n1 = np.bincount(bands[member], minlength=k)
        x1 = np.bincount(bands[member], weights=y[member], minlength=k)
        n0 = np.bincount(bands[~member], minlength=k)
        x0 = np.bincount(bands[~member], weights=y[~member], minlength=k)
        adj, lo, hi = mantel_haenszel_rd(x1, n1, x0, n0)
        table.loc[i, ["adjusted_diff", "adjusted_low", "adjusted_high"]] = [adj, lo, hi]
        less = np.median(spend[member]) < np.median(spend[~member])
        by = "lower spend" if less else "higher spend"
        crude = r["diff"]
        if not np.isfinite(adj):
            reason = "not checked against spend (the group shares no spend band with the rest)"
        elif abs(adj) <= 0.5 * abs(crude) or np.sign(adj) != np.sign(crude):
            # spend accounts for at least half of the gap: all of it unless a gap remains beyond chance
            reason = f"largely explained by {by}" if lo <= 0 <= hi else f"partly explained by {by}"
        else:
            reason = "not explained by spend: review the rule"
        table.loc[i, "reason"] = reason


def _pts(v: float) -> str:
    return f"{v * 100:+.1f}"


def _findings(table: pd.DataFrame, groups: dict[str, pd.Series], outcomes: dict[str, pd.Series],
              alpha: float, min_group: int) -> list[str]:
    out: list[str] = []
    # a group that gets no service at all, whatever its size
    for attr, g in groups.items():
        for group in _ordered_groups(g):
            member = (g == group).to_numpy()
            n = int(member.sum())
            for key, words in (("divestment", "is a divestment candidate"),
                               ("self_service", "gets only self-service or no service level")):
                if key in outcomes and n and outcomes[key].to_numpy()[member].all():
                    out.append(f"Warning: every customer of {_label(attr).lower()} {group} ({n:,}) {words}: "
                               "this group gets no real service; check the playbooks and the rules behind it.")
    judged = table[table["status"] != "too small to judge"]
    for r in table[table["status"] == "disparity"].itertuples():
        ratio = "" if not np.isfinite(r.ratio) else f", {r.ratio:.{1 if r.ratio >= 0.1 else 2}f} times the rate"
        text = (f"{_label(r.attribute)} {r.group}: {r.count:,} of {r.customers:,} customers ({r.rate:.1%}) "
                f"{r.outcome_label}, against {r.rest_rate:.1%} of the other customers: {_pts(r.diff)} points "
                f"(95% CI {_pts(r.diff_low)} to {_pts(r.diff_high)}){ratio}")
        if np.isfinite(r.adjusted_diff):
            text += (f"; within the same spend band {_pts(r.adjusted_diff)} points (95% CI {_pts(r.adjusted_low)} "
                     f"to {_pts(r.adjusted_high)})")
        out.append(f"{text}: {r.reason}.")
    if not (table["status"] == "disparity").any():
        out.append(f"No disparity found: {len(judged):,} comparisons of {', '.join(map(_label, groups)).lower()} "
                   f"groups on {len(outcomes)} outcomes; none is worse off than the rest beyond chance "
                   f"(Holm's method, at most a {alpha:.0%} chance of a false alarm across the audit).")
    small = table[table["status"] == "too small to judge"].drop_duplicates(["attribute", "group"])
    for attr, part in small.groupby("attribute", sort=False):
        few = part[part["customers"] < min_group]
        if len(few):
            names = ", ".join(f"{g} ({n:,})" for g, n in zip(few["group"], few["customers"]))
            out.append(f"{_label(attr)}: too small to judge (fewer than {min_group} customers): {names}.")
        for g, n in zip(part["group"], part["rest_customers"]):
            if n < min_group and g not in set(few["group"]):
                out.append(f"{_label(attr)} {g}: too few other customers ({n:,}) to compare with.")
    return out
