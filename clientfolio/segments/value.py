"""Value segments: value tiers, frequency tiers, profitability, and a multi-dimensional value score.

Value has several dimensions (economic, engagement, advocacy, strategic); the score
combines them with weights the user sets, or a sector preset.  Each dimension is the mean
percentile (0-100) of the inputs the data has; a dimension without inputs is left out and
its weight shared among the others (the returned notes say so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clientfolio.core.arrays import isclose, nan_to
from clientfolio.core.money import money_key
from clientfolio.core.errors import SchemaError
from clientfolio.segments._membership import as_of_of, membership

VALUE_TIER_NAMES = ("High-Value Regulars", "Medium-Value Occasionals", "Low-Value One-Timers")
# The same tiering by past spend (revenue) instead of predicted value.
HISTORICAL_TIER_NAMES = ("Top 20% by past spend", "Next 30% by past spend", "Other 50% by past spend")
PRESETS: dict[str, dict[str, float]] = {
    "retail": {"economic": 0.5, "engagement": 0.2, "advocacy": 0.2, "strategic": 0.1},
    "services": {"economic": 0.4, "engagement": 0.2, "advocacy": 0.3, "strategic": 0.1},
    "b2b": {"economic": 0.5, "engagement": 0.1, "advocacy": 0.1, "strategic": 0.3},
    "subscription": {"economic": 0.5, "engagement": 0.3, "advocacy": 0.1, "strategic": 0.1},
    "non-profit": {"economic": 0.3, "engagement": 0.3, "advocacy": 0.3, "strategic": 0.1},
}
DIMENSIONS = {
    "economic": ("clv", "revenue", "margin"),
    "engagement": ("email_click_rate", "email_opens", "page_views", "orders_per_month"),
    "advocacy": ("reviews", "avg_rating", "nps", "referrals"),
    "strategic": ("strategic",),
    # What customers write (reviews, tickets; English): off in every preset, on with a weight of its own.  A
    # customer without a scored text has no sentiment: its weight goes to their other dimensions, never a 0.
    "sentiment": ("mean_sentiment",),
}
OPTIONAL = frozenset({"sentiment"})  # dimensions whose missing inputs leave the dimension out per customer


def tier_cuts(values: pd.Series, shares: tuple[float, float] = (0.2, 0.3)) -> tuple[float, float] | None:
    """The fitted part of a tiering: the (1 - top) and (1 - top - next) quantiles of the values."""
    v = values.to_numpy(dtype=float)
    finite = v[np.isfinite(v)]
    if not len(finite):
        return None
    hi, mid = np.quantile(finite, [1 - shares[0], 1 - shares[0] - shares[1]])
    return float(hi), float(mid)


def tiers_by_cuts(values: pd.Series, cuts: tuple[float, float] | None, names: tuple[str, str, str]) -> np.ndarray:
    """Above the top cut, above the middle cut, the rest (a tie at a cut goes to the lower tier;
    missing values are in the last tier).  Values and cuts are money, compared at money precision
    (`clientfolio.core.money.money_key`), so a sum added in another order keeps its tier."""
    v = money_key(_floats(values))
    if cuts is None:
        return np.full(len(v), names[2], dtype=object)
    hi, mid = money_key(cuts)
    ok = np.isfinite(v)
    return np.where(ok & (v > hi), names[0], np.where(ok & (v > mid), names[1], names[2]))


def _check_tiering(customers: pd.DataFrame, column: str, shares: tuple[float, float]) -> None:
    if column not in customers:
        raise SchemaError(f"value_tiers: no {column!r} column; score customers first (clientfolio.scores)")
    if not (0 < shares[0] < 1 and 0 < shares[1] < 1 and sum(shares) < 1):
        raise SchemaError(f"value_tiers: shares must be two fractions summing below 1, got {shares}")


def value_tiers(customers: pd.DataFrame, as_of=None, column: str = "clv", shares: tuple[float, float] = (0.2, 0.3),
                names: tuple[str, str, str] = VALUE_TIER_NAMES, kind: str = "value_tier",
                cuts: tuple[float, float] | None | str = "fit") -> pd.DataFrame:
    """Top `shares[0]` / next `shares[1]` / rest of customers by `column` (predicted CLV by default).

    Cut points are on the values, so customers with equal values are always in the same tier.
    `cuts` (from :func:`tier_cuts`) applies cut points fitted elsewhere; "fit" fits them here.
    """
    _check_tiering(customers, column, shares)
    if isinstance(cuts, str):
        cuts = tier_cuts(customers[column], shares)
    tier = tiers_by_cuts(customers[column], cuts, names)
    return membership(customers["customer_id"], kind, pd.Series(tier), as_of_of(customers, as_of))


def _tier_rate(customers: pd.DataFrame) -> pd.Series:
    return customers["orders_per_month"] if "orders_per_month" in customers else customers["frequency"]


def frequency_cut(customers: pd.DataFrame) -> float:
    """The fitted part of frequency tiers: the top third of repeat buyers' orders per month starts here."""
    rate, repeat = _tier_rate(customers), customers["orders"].to_numpy() > 1
    return float(np.quantile(rate[repeat], 2 / 3)) if repeat.any() else float("inf")


def frequency_tiers(customers: pd.DataFrame, as_of=None, cut: float | None = None) -> pd.DataFrame:
    """One-time (a single order), frequent (top third of repeat buyers by orders per month), occasional.

    `cut` (from :func:`frequency_cut`) applies a line fitted elsewhere; by default it is fitted here."""
    cut = frequency_cut(customers) if cut is None else cut
    tier = frequency_tier_array(customers["orders"], _tier_rate(customers), cut)
    return membership(customers["customer_id"], "frequency_tier", pd.Series(tier), as_of_of(customers, as_of))


def frequency_tier_array(orders, rate, cut: float) -> np.ndarray:
    """One-time / Frequent / Occasional per customer from orders and orders per month (arrays)."""
    repeat = np.asarray(orders) > 1
    return np.where(~repeat, "One-time", np.where(_floats(rate) >= cut, "Frequent", "Occasional"))


def _floats(col) -> np.ndarray:
    if hasattr(col, "to_numpy"):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(col, dtype=float)


def profitability_arrays(revenue, cost, cost_to_serve, default_margin: float = 1.0) -> dict[str, np.ndarray]:
    """Gross profit, cost to serve, profit and the profitability tier from arrays (`cost`, `cost_to_serve`: None
    when the data has no such column); row by row, the same alone or in a batch."""
    rev = _floats(revenue)
    cost = _floats(cost) if cost is not None else np.full(len(rev), np.nan)
    cogs = np.where(np.isnan(cost), rev * (1 - default_margin), cost)
    if cost_to_serve is not None:
        cts = _floats(cost_to_serve)
        cts = np.where(np.isnan(cts), 0.0, cts)
    else:
        cts = 0.0 * rev
    profit = rev - cogs - cts
    with np.errstate(invalid="ignore"):
        band = 0.02 * np.maximum(np.abs(rev), 1.0)
        tier = np.where(profit > band, "Profitable", np.where(profit < -band, "Unprofitable", "Break-even"))
    return {"gross_profit": rev - cogs, "cost_to_serve": cts, "profit": profit, "profitability": tier}


def profitability(customers: pd.DataFrame, default_margin: float = 1.0, as_of=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Profit after cost of goods and cost-to-serve, per customer; tiers Profitable / Break-even / Unprofitable.

    Cost of goods comes from the data where present, else revenue x (1 - default_margin);
    cost-to-serve (delivery, payment, service costs) from the data where present, else 0.
    """
    cols = profitability_arrays(customers["revenue"], customers["cost"] if "cost" in customers else None,
                                customers["cost_to_serve"] if "cost_to_serve" in customers else None, default_margin)
    table = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), **cols})
    return table, membership(customers["customer_id"], "profitability", pd.Series(cols["profitability"]),
                             as_of_of(customers, as_of))


@dataclass
class ValueScore:
    scores: pd.DataFrame  # customer_id, economic, engagement, advocacy, strategic, value_score
    weights: dict[str, float]
    notes: list[str]


MAX_EXACT_REFERENCE = 4096  # distinct values kept exactly; beyond this a percentile grid of that many points


def percentile_reference(values: pd.Series) -> dict[str, list[float] | int] | None:
    """The fitted part of a percentile: the base's distribution of one input.

    Up to ``MAX_EXACT_REFERENCE`` distinct values it is exact (each value with how many
    customers have it), so applying it to the base it came from gives pandas' average-rank
    percentiles -- with values equal up to float noise (relative 1e-9) taken as one; above that
    it is a grid of quantiles, interpolated (within 1/4096).
    """
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    uniq, counts = np.unique(v, return_counts=True)
    # Amounts equal but for float noise (12.5 and 12.500000000000002, sums added in another order) are one value.
    keep = np.concatenate([[True], ~np.isclose(uniq[1:], uniq[:-1], rtol=1e-9, atol=0.0)])
    counts = np.bincount(np.cumsum(keep) - 1, weights=counts).astype(np.int64)
    uniq = uniq[keep]
    if len(uniq) <= MAX_EXACT_REFERENCE:
        return {"values": uniq.tolist(), "counts": counts.tolist(), "n": int(len(v))}
    grid = np.quantile(v, np.linspace(0, 1, MAX_EXACT_REFERENCE + 1))
    return {"grid": grid.tolist(), "n": int(len(v))}


_REFERENCE_ARRAYS: dict[int, tuple] = {}


def _reference_arrays(ref: dict) -> tuple[np.ndarray, ...]:
    """A fitted reference's lists as arrays (read-only), made once per reference: (grid, its percentiles) or
    (distinct values, counts, customers below each).  Scoring one customer would otherwise convert
    thousands of numbers every time."""
    lists = (ref["grid"],) if "grid" in ref else (ref["values"], ref["counts"])
    got = _REFERENCE_ARRAYS.get(id(ref))
    if got is not None and got[0] is ref and all(a is b and len(a) == n for a, b, n in zip(got[1], lists, got[2])):
        return got[3]
    if "grid" in ref:
        grid = np.asarray(ref["grid"])
        arrays: tuple[np.ndarray, ...] = (grid, np.linspace(0, 1, len(grid)))
    else:
        counts = np.asarray(ref["counts"], dtype=float)
        arrays = (np.asarray(ref["values"]), counts, np.concatenate([[0.0], np.cumsum(counts)]))
    for a in arrays:
        a.flags.writeable = False
    if len(_REFERENCE_ARRAYS) > 256:  # references of states no longer used
        _REFERENCE_ARRAYS.clear()
    _REFERENCE_ARRAYS[id(ref)] = (ref, lists, tuple(len(x) for x in lists), arrays)
    return arrays


def percentile_of(values: pd.Series | np.ndarray, ref: dict | None) -> np.ndarray:
    """Percentile (0..1] of each value within a fitted reference; NaN for missing values."""
    v = np.asarray(values, dtype=float)
    if ref is None:
        return np.full(len(v), np.nan)
    n = float(ref["n"])
    if "grid" in ref:
        grid, steps = _reference_arrays(ref)
        out = np.interp(v, grid, steps)
        return np.where(np.isfinite(v), np.maximum(out, 0.5 / n), np.nan)
    uniq, counts, below = _reference_arrays(ref)  # below: customers strictly below each distinct value
    i = np.searchsorted(uniq, v, side="left")
    # A value equal to a reference value up to float noise is that value (one customer scored alone can
    # differ from the batch in the last digit: vectorised arithmetic rounds by array length).  Exact
    # matches first: the base itself can hold values a rounding apart, and pandas ranks them apart.
    at = np.minimum(i, len(uniq) - 1)
    exact = (i < len(uniq)) & (uniq[at] == v)
    near = np.clip(i - 1, 0, len(uniq) - 1)
    i = np.where(~exact & (i > 0) & isclose(uniq[near], v, 1e-9), i - 1, i)
    at = np.minimum(i, len(uniq) - 1)
    hit = exact | ((i < len(uniq)) & isclose(uniq[at], v, 1e-9))
    tie = np.where(hit, counts[at], 0.0)
    # average rank, as pandas ranks ties; a value the base did not have sits half a customer above those below it
    rank = np.where(hit, below[i] + (tie + 1.0) / 2.0, below[i] + 0.5)
    return np.where(np.isfinite(v), rank / n, np.nan)


def parse_weights(text: str) -> dict[str, float]:
    """Weights written as text: a preset, ``dimension=weight`` pairs, or both (``retail,sentiment=0.1``:
    the preset's weights plus a sentiment dimension), separated by commas."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if "=" not in part:
            if part not in PRESETS:
                raise SchemaError(f"unknown sector preset {part!r} in value weights {text!r}; use one of {sorted(PRESETS)}")
            out.update(PRESETS[part])
            continue
        name, _, value = (s.strip() for s in part.partition("="))
        try:
            out[name] = float(value)
        except ValueError:
            raise SchemaError(f"value weights {text!r}: {name!r} needs a number, got {value!r}") from None
    return out


def _weights(weights: dict[str, float] | str) -> dict[str, float]:
    if isinstance(weights, str) and ("=" in weights or "," in weights):
        weights = parse_weights(weights)
    if isinstance(weights, str):
        if weights not in PRESETS:
            raise SchemaError(f"unknown sector preset {weights!r}; use one of {sorted(PRESETS)} or a dict of weights")
        weights = PRESETS[weights]
    bad = set(weights) - set(DIMENSIONS)
    if bad or any(w < 0 for w in weights.values()) or not sum(weights.values()):
        raise SchemaError(f"value weights must be non-negative numbers for {sorted(DIMENSIONS)}, got {weights}")
    return weights


def value_references(customers: pd.DataFrame) -> dict[str, dict]:
    """The fitted part of the value score: the base's distribution of every input it has."""
    out = {}
    for cols in DIMENSIONS.values():
        for c in cols:
            if c in customers and customers[c].notna().any():
                out[c] = percentile_reference(customers[c].astype(float))
    return out


def value_score(customers: pd.DataFrame, weights: dict[str, float] | str = "retail",
                references: dict[str, dict] | None = None) -> ValueScore:
    """Multi-dimensional value score 0-100 with user weights or a sector preset.

    Each input is a percentile within `references` (from :func:`value_references`; by default
    fitted on these customers); which dimensions have data is decided by the references too.
    """
    refs = references if references is not None else value_references(customers)
    cols, norm, notes = value_score_arrays(customers, weights, refs)
    out = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), **cols})
    return ValueScore(out, norm, notes)


def value_score_arrays(cols, weights: dict[str, float] | str, refs: dict[str, dict]
                       ) -> tuple[dict[str, np.ndarray], dict[str, float], list[str]]:
    """(each dimension and value_score as arrays, the weights used, notes) from columns as arrays
    (a frame or a dict); row by row against fitted references, so the same alone or in a batch."""
    weights = _weights(weights)
    out: dict[str, np.ndarray] = {}
    used, notes = {}, []
    for dim, names in DIMENSIONS.items():
        have = [c for c in names if refs.get(c) is not None and c in cols]
        if not have or not weights.get(dim):
            if weights.get(dim):
                notes.append(f"no {dim} data ({', '.join(names)}): its weight is shared among the other dimensions")
            continue
        if dim in OPTIONAL:  # missing stays missing: the customer's other dimensions carry the score
            out[dim] = np.nanmean([percentile_of(_floats(cols[c]), refs[c]) * 100 for c in have], axis=0) \
                if len(have) > 1 else percentile_of(_floats(cols[have[0]]), refs[have[0]]) * 100
        else:
            pct = [nan_to(percentile_of(_floats(cols[c]), refs[c]), 0.0) * 100 for c in have]
            out[dim] = np.mean(pct, axis=0)
        used[dim] = weights[dim]
    total = sum(used.values())
    if not total:
        raise SchemaError("value_score: none of the value dimensions has data")
    norm = {d: w / total for d, w in used.items()}
    opt = [d for d in norm if d in OPTIONAL]
    if not opt:
        out["value_score"] = sum(out[d] * w for d, w in norm.items())
        return out, norm, notes
    # Per customer: the weights of the dimensions they have, rescaled to one.
    num = sum(nan_to(out[d], 0.0) * w for d, w in norm.items())
    den = sum(np.where(np.isnan(out[d]), 0.0, w) if d in OPTIONAL else np.full(len(out[d]), w)
              for d, w in norm.items())
    with np.errstate(invalid="ignore", divide="ignore"):
        out["value_score"] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    notes.extend(f"{d}: customers without {', '.join(DIMENSIONS[d])} are scored on their other dimensions "
                 "(their weight shared among those), not as a 0" for d in opt)
    return out, norm, notes
