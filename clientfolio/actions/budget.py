"""Where a small budget returns most: retention versus acquisition, an allocation across segments, what-ifs.

Everything here is a projection from the fitted portfolio (CLV with its low/high range, P(alive),
CAC per channel) and from assumptions about how customers respond to spending.  The responses
are NOT measured by clientfolio unless an experiment measured them: every output lists its
assumptions, says which are defaults, and the caller can override each one (`Assumptions`).

The response model, per segment s with n customers:

- a retention effort at full strength brings a response (a customer who stays) from each customer
  with probability r x 4 p (1 - p), p their P(alive), r = 5% by default: the lift is largest where
  staying or leaving is most uncertain, none for customers certain to stay or already gone;
- a response is worth clv / p: the customer's predicted value if they stay;
- spend x has diminishing returns: incremental margin R(x) = M (1 - exp(-x / (n c))), M the sum of
  the customers' response x worth, where c
  (default 2 per customer) is the spend per customer that reaches 63% of the full response.

Every segment first gets a floor (the cheapest service every customer keeps, default 0.10 per
customer); the rest goes where the next unit of money returns most (equal marginal returns,
solved exactly).  CLV ranges are the per-customer low/high ranges of the analysis summed over
the segment: they cover what the customers themselves may be worth (purchases and the purchase
model's parameters), not the assumed response rates or elasticities, whose uncertainty is larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from clientfolio.actions.members import SEG, segment_kinds, state_settings
from clientfolio.core.errors import ClientfolioError
from clientfolio.core.money import format_money
from clientfolio.scores.acquisition import HEALTHY_RATIO, clv_to_cac
from clientfolio.store.base import Store

FULL_STRENGTH = 1 - math.exp(-1)  # share of the full response reached at spend c per customer


class BudgetError(ClientfolioError):
    """A budget or scenario that cannot be computed as asked."""


@dataclass
class Assumptions:
    """What the projections assume; each value says whether the caller set it or it is a default."""

    response_rate: float = 0.05  # share of still-active customers who respond to a full-strength effort
    cost_per_customer: float = 2.0  # spend per customer reaching 63% of the full response
    floor_per_customer: float = 0.10  # the minimum service: the cheapest contact every customer keeps
    response_by_segment: dict[str, float] = field(default_factory=dict)  # overrides r per segment (absolute)
    elasticity: float = -1.5  # own-price elasticity of demand for what-if repricing
    source: dict[str, str] = field(default_factory=dict)  # assumption -> where it comes from (default: "default")

    def lines(self, money) -> list[str]:  # noqa: ANN001 - a formatter
        """Every assumption in words, with its source."""
        src = lambda k: self.source.get(k, "default, not measured here: override it")  # noqa: E731
        out = [f"Response: up to {self.response_rate:.0%} of customers respond to a full-strength effort, x 4 p (1 - p) "
               f"with p their P(alive): most where staying or leaving is uncertain, none for the certain "
               f"({src('response_rate')}; measure yours with `clientfolio experiment`).",
               f"Diminishing returns: spending {money(self.cost_per_customer)} per customer reaches 63% of the full "
               f"response ({src('cost_per_customer')}).",
               f"Minimum service: every customer keeps at least {money(self.floor_per_customer)} of service "
               f"({src('floor_per_customer')}).",
               "A response is worth the customer's CLV / P(alive): their predicted value if they stay (from the "
               "analysis)."]
        for seg, r in sorted(self.response_by_segment.items()):
            out.append(f"Response in {seg}: {r:.1%} ({self.source.get('response:' + seg, 'set by the caller')}).")
        return out


# ------------------------------------------------------------------------------------ inputs

def customer_values(store: Store, kind: str) -> pd.DataFrame:
    """Per customer with a current segment of `kind`: segment, clv (low/high), p_alive, margin and cost inputs."""
    cols = store.customer_state_columns()
    if SEG + kind not in cols:
        kinds = segment_kinds(store)
        raise BudgetError(f"no current '{kind}' segments in the store; "
                          + (f"use one of: {', '.join(kinds)}" if kinds else "analyse into this store first "
                             "(`clientfolio analyze FILE --store ...`)"))
    if "clv" not in cols:
        raise BudgetError("the store has no CLV per customer; re-run `clientfolio analyze` into it")
    want = ["clv", "clv_low", "clv_high", "p_alive", "expected_purchases", "stat_cost_to_serve", "stat_orders",
            "value_12m", "revenue_12m"]
    have = [c for c in want if c in cols]
    df = store.query(f"SELECT customer_id, {SEG}{kind} AS segment, {', '.join(have)} FROM customer_state "
                     f"WHERE {SEG}{kind} IS NOT NULL ORDER BY customer_id")
    for c in want:
        if c not in df:
            df[c] = np.nan
        df[c] = df[c].astype(float)
    df["clv"] = df["clv"].fillna(0.0)
    # cost to serve expected over the CLV horizon: the customer's cost per order so far x expected orders
    per_order = (df["stat_cost_to_serve"].fillna(0.0) / df["stat_orders"].where(df["stat_orders"] > 0)).fillna(0.0)
    df["cts_ahead"] = per_order * df["expected_purchases"].fillna(0.0)
    return df


def _money(store: Store):  # noqa: ANN202
    cur = str(state_settings(store).get("currency") or "")
    return lambda v: format_money(v, cur)


def segment_table(values: pd.DataFrame, a: Assumptions) -> pd.DataFrame:
    """Per segment: customers, CLV (sum, low, high), mean P(alive), response rate and value, max response.

    Per customer the default response is r x 4 p (1 - p) (p = P(alive); unknown taken as 0.5): the
    lift is largest where staying or leaving is most uncertain, and none for customers certain to
    stay or already gone.  A response is worth clv / p, the value of the customer if they stay.
    """
    v = values.copy()
    p = v["p_alive"].fillna(0.5).clip(0.0, 1.0)
    lift = a.response_rate * 4 * p * (1 - p)
    worth = lambda col: v[col].fillna(v["clv"]) / p.clip(lower=0.05)  # noqa: E731
    v["_lift"], v["_m"], v["_lo"], v["_hi"] = lift, lift * worth("clv"), lift * worth("clv_low"), lift * worth("clv_high")
    v["_no_range"] = v["clv_low"].isna() | v["clv_high"].isna()
    v["clv_low"], v["clv_high"] = v["clv_low"].fillna(v["clv"]), v["clv_high"].fillna(v["clv"])
    g = v.groupby("segment", sort=True)
    t = pd.DataFrame({"customers": g.size(), "clv": g["clv"].sum(), "clv_low": g["clv_low"].sum(),
                      "clv_high": g["clv_high"].sum(), "p_alive": g["p_alive"].mean(), "cts_ahead": g["cts_ahead"].sum(),
                      "no_range": g["_no_range"].sum(), "response_rate": g["_lift"].mean()})
    lifted = g["_lift"].sum()
    for col, part in (("max_margin", "_m"), ("max_margin_low", "_lo"), ("max_margin_high", "_hi")):
        t[col] = g[part].sum()
    t["value_per_response"] = (t["max_margin"] / lifted.where(lifted > 0)).fillna(t["clv"] / t["customers"])
    for seg, r in a.response_by_segment.items():  # the caller's (e.g. measured) response replaces the default
        if seg in t.index:
            old = t.loc[seg, "response_rate"]
            t.loc[seg, "response_rate"] = r
            for col in ("max_margin", "max_margin_low", "max_margin_high"):
                per = t.loc[seg, col] / (old * t.loc[seg, "customers"]) if old > 0 else t.loc[seg, "value_per_response"]
                t.loc[seg, col] = r * t.loc[seg, "customers"] * per
    t["scale"] = t["customers"] * a.cost_per_customer
    t["floor"] = t["customers"] * a.floor_per_customer
    return t


# ------------------------------------------------------------------------------------ allocation

@dataclass
class Allocation:
    """A budget split across segments, with the expected return and the assumptions behind it."""

    budget: float
    kind: str
    table: pd.DataFrame  # segment, customers, floor, spend, expected_margin (+ low/high), return_per_unit, marginal
    assumptions: list[str]
    text: str


def allocate(store: Store, amount: float, kind: str = "lifecycle", assumptions: Assumptions | None = None
             ) -> Allocation:
    """Split `amount` across the segments of `kind`: floors first, the rest by equal marginal return."""
    a = assumptions or Assumptions()
    if not amount > 0:
        raise BudgetError(f"the budget must be a positive amount, got {amount}")
    if a.cost_per_customer <= 0 or a.floor_per_customer < 0:
        raise BudgetError("cost per customer must be positive and the floor not negative")
    money = _money(store)
    t = segment_table(customer_values(store, kind), a)
    floors = t["floor"].to_numpy()
    if floors.sum() > amount + 1e-9:
        raise BudgetError(f"{money(amount)} does not cover the minimum service of {money(a.floor_per_customer)} per "
                          f"customer for {int(t['customers'].sum()):,} customers ({money(floors.sum())}); raise the "
                          "budget or lower the floor (--floor)")
    spend = water_fill(t["max_margin"].to_numpy(), t["scale"].to_numpy(), floors, amount)
    ret = lambda m: m * (1 - np.exp(-spend / t["scale"].to_numpy()))  # noqa: E731
    out = pd.DataFrame({"segment": t.index, "customers": t["customers"].to_numpy(), "floor": floors, "spend": spend,
                        "expected_margin": ret(t["max_margin"].to_numpy()),
                        "expected_margin_low": ret(t["max_margin_low"].to_numpy()),
                        "expected_margin_high": ret(t["max_margin_high"].to_numpy()),
                        "response_rate": t["response_rate"].to_numpy()})
    out["return_per_unit"] = out["expected_margin"] / out["spend"].where(out["spend"] > 0)
    out["marginal_return"] = (t["max_margin"].to_numpy() / t["scale"].to_numpy()) * np.exp(-spend / t["scale"].to_numpy())
    out = out.sort_values("spend", ascending=False).reset_index(drop=True)
    total = float(out["expected_margin"].sum())
    lo, hi = float(out["expected_margin_low"].sum()), float(out["expected_margin_high"].sum())
    lines = [f"{money(amount)} across {len(out)} {kind} segments: expected extra margin {money(total)} "
             f"(range {money(lo)} to {money(hi)} from the customers' CLV ranges; the assumed response rates add more "
             f"uncertainty), {total / amount:.2f} per unit spent."]
    best = out.iloc[0]
    lines.append(f"Most goes to {best['segment']} ({money(best['spend'])}, {best['customers']:,} customers).")
    last = float(out.loc[out["spend"] > out["floor"] + 1e-9, "marginal_return"].max()) if (
        out["spend"] > out["floor"] + 1e-9).any() else float("nan")
    if not math.isnan(last) and last < 1:
        lines.append(f"The last unit spent returns {last:.2f}: under these assumptions a smaller budget would earn "
                     "more than it costs; spend beyond the floors only where the marginal return is above 1.")
    if values_missing := int(t["no_range"].sum()):
        lines.append(f"{values_missing:,} customers have no CLV range (a point value is used for them).")
    lines.append("Every segment keeps its minimum service (the floor).")
    return Allocation(float(amount), kind, out, a.lines(money), " ".join(lines))


def water_fill(max_margin: np.ndarray, scale: np.ndarray, floors: np.ndarray, amount: float) -> np.ndarray:
    """Spend per segment maximising sum m (1 - exp(-x / k)) with x >= floor and sum x = amount.

    At the optimum every segment above its floor has the same marginal return lambda:
    x = k ln(m / (k lambda)); lambda is found by bisection on its logarithm.  Segments that
    return nothing get their floor; if none returns anything, the rest is spread by size.
    """
    m, k, f = (np.asarray(v, dtype=float) for v in (max_margin, scale, floors))
    rest = amount - f.sum()
    if rest <= 1e-12:
        return f.copy()
    if not (m > 0).any():
        return f + rest * k / k.sum()
    slope0 = np.where(m > 0, m / k, 0.0)

    def spend(log_lam: float) -> np.ndarray:
        lam = math.exp(log_lam)
        x = np.where(slope0 > lam, k * np.log(np.maximum(slope0, 1e-300) / lam), 0.0)
        return np.maximum(f, x)

    lo, hi = math.log(slope0[slope0 > 0].max()) - 60, math.log(slope0.max()) + 1  # spend(lo) huge, spend(hi) = f
    for _ in range(200):
        mid = (lo + hi) / 2
        if spend(mid).sum() > amount:
            lo = mid
        else:
            hi = mid
    x = spend(hi)
    gap = amount - x.sum()  # what bisection leaves (tiny): to the segments above their floor, by scale
    share = np.where(x > f + 1e-12, k, 0.0) if (x > f + 1e-12).any() else k
    return x + gap * share / share.sum()


# ------------------------------------------------------------------------------------ retention vs acquisition

@dataclass
class Advice:
    text: str
    channels: pd.DataFrame  # CLV:CAC per channel
    segments: pd.DataFrame  # retention return per unit at the first unit spent, per segment
    assumptions: list[str]


def portfolio_values(portfolio: Any, kind: str) -> pd.DataFrame:
    """:func:`customer_values` from an analysed Portfolio's customers table (no store needed)."""
    c = portfolio.customers
    support = getattr(portfolio, "support", None)
    if support is not None and not support.forecasts:
        raise BudgetError(f"what keeping a customer is worth needs a forecast of their value, which this data cannot "
                          f"support ({support.reason})")
    if kind not in c:
        raise BudgetError(f"the portfolio has no '{kind}' segments; use one of: "
                          f"{', '.join(sorted(portfolio.segments['segment_kind'].unique()))}")
    source = {"clv": "clv", "clv_low": "clv_low", "clv_high": "clv_high", "p_alive": "p_alive",
              "expected_purchases": "expected_purchases", "stat_cost_to_serve": "cost_to_serve",
              "stat_orders": "orders", "value_12m": "value_12m", "revenue_12m": "revenue_12m"}
    df = pd.DataFrame({"customer_id": c["customer_id"].astype(str), "segment": c[kind]})
    for col, name in source.items():
        df[col] = pd.to_numeric(c[name], errors="coerce").astype(float) if name in c else np.nan
    df = df[df["segment"].notna()].sort_values("customer_id").reset_index(drop=True)
    df["segment"] = df["segment"].astype(str)
    df["clv"] = df["clv"].fillna(0.0)
    per_order = (df["stat_cost_to_serve"].fillna(0.0) / df["stat_orders"].where(df["stat_orders"] > 0)).fillna(0.0)
    df["cts_ahead"] = per_order * df["expected_purchases"].fillna(0.0)
    return df


def retention_vs_acquisition(source: Any, kind: str = "lifecycle", assumptions: Assumptions | None = None) -> Advice:
    """Compare the return of retention spend per segment with CLV:CAC per acquisition channel.

    `source`: an analysed store (its current customers) or a :class:`~clientfolio.Portfolio`.
    """
    a = assumptions or Assumptions()
    if isinstance(source, Store):
        store = source
        money = _money(store)
        values, ch = customer_values(store, kind), channel_returns(store)
    else:
        money = lambda v: format_money(v, getattr(source, "currency", ""))  # noqa: E731
        values = portfolio_values(source, kind)
        ch = source.clv_cac.copy() if source.clv_cac is not None else pd.DataFrame(
            columns=["channel", "customers", "mean_clv", "cac", "clv_cac", "healthy", "cac_source"])
    t = segment_table(values, a)
    t["return_per_unit"] = t["max_margin"] / t["scale"]  # the first unit spent on the segment
    seg = t.reset_index()[["segment", "customers", "response_rate", "value_per_response", "return_per_unit"]]
    seg = seg.sort_values("return_per_unit", ascending=False).reset_index(drop=True)
    lines = []
    top = seg.iloc[0] if len(seg) else None
    paid = ch.dropna(subset=["clv_cac"]) if len(ch) else ch
    if top is not None:
        lines.append(f"Retention: the first {money(1)} spent on {top['segment']} returns about "
                     f"{money(top['return_per_unit'])} of extra margin (response {top['response_rate']:.1%}, a kept "
                     f"customer worth {money(top['value_per_response'])}).")
    if len(paid):
        best = paid.iloc[0]
        overall = float((paid["mean_clv"] * paid["customers"]).sum() / (paid["cac"] * paid["customers"]).sum())
        lines.append(f"Acquisition: {best['channel']} brings customers worth {best['clv_cac']:.1f}x what they cost "
                     f"(CAC {money(best['cac'])}, {best['cac_source']}); across paid channels {overall:.1f}x "
                     f"({HEALTHY_RATIO:.0f}x or more is commonly called healthy).")
        r_best = float(top["return_per_unit"]) if top is not None else 0.0
        if overall < 1:
            lines.append("Advice: acquisition costs more than new customers are worth; put money into keeping and "
                         "growing the customers you have, and fix acquisition before spending more on it.")
        elif r_best >= float(best["clv_cac"]):
            lines.append(f"Advice: retention in {top['segment']} returns more per unit than the best channel; fund "
                         "it first, then acquisition through the channels above 3x.")
        else:
            lines.append(f"Advice: the best channel ({best['channel']}) returns more per unit than retention under "
                         "these assumptions; keep the minimum service for every segment and grow acquisition through "
                         f"channels above {HEALTHY_RATIO:.0f}x, watching CAC as spend rises (it usually does).")
    else:
        lines.append("Acquisition: no acquisition cost is recorded (no marketing spend or acquisition_cost), so "
                     "acquisition cannot be compared; import marketing_spend to compare it with retention.")
    return Advice(" ".join(lines), ch, seg, a.lines(money))


def channel_returns(store: Store) -> pd.DataFrame:
    """CLV:CAC per acquisition channel: the fitted state's table (as in Portfolio.clv_cac), else computed now."""
    import json

    loaded = store.load_state()
    if loaded is not None:
        table = json.loads(loaded[1]).get("cac")
        if table:
            return pd.DataFrame(table)
    if "clv" not in store.customer_state_columns():
        return pd.DataFrame(columns=["channel", "customers", "mean_clv", "cac", "clv_cac", "healthy", "cac_source"])
    scores = store.query("SELECT customer_id, clv FROM customer_state")
    customers = store.query("SELECT customer_id, acquisition_channel, acquisition_cost, first_seen FROM customers")
    spend = store.query("SELECT channel, period_start, period_end, spend FROM marketing_spend")
    return clv_to_cac(scores, customers, spend)


# ------------------------------------------------------------------------------------ what-if

Action = Literal["drop", "reprice", "retier"]


@dataclass
class Scenario:
    """Before and after a change to one segment: customers, CLV and projected profit, with ranges."""

    action: str
    kind: str
    segment: str
    table: pd.DataFrame  # measure, before, after, change, after_low, after_high
    assumptions: list[str]
    text: str


def what_if(store: Store, segment: str, kind: str = "portfolio", action: Action = "drop",
            price_change: float = 0.0, elasticity: float | None = None, service_cost_change: float = 0.0,
            value_change: float = 0.0, assumptions: Assumptions | None = None) -> Scenario:
    """Project customers, CLV and profit over the CLV horizon if a segment is dropped, repriced or re-tiered.

    - drop: the segment's customers are no longer served (their CLV and cost to serve leave);
    - reprice: prices change by `price_change` (0.05 = +5%); volume changes by elasticity x price
      change, taken as customers leaving (or joining), those who stay buying as before; each
      remaining unit of revenue carries the price change as margin;
    - retier: a different service level costs `service_cost_change` more per customer over the
      horizon and changes the customers' value by `value_change` (relative, assumed).

    Projected profit = CLV (expected gross margin over the horizon) - expected cost to serve
    (the customer's cost per order so far x expected orders).
    """
    a = assumptions or Assumptions()
    money = _money(store)
    v = customer_values(store, kind)
    if segment not in set(v["segment"]):
        raise BudgetError(f"no customers in '{segment}' ({kind}); the {kind} segments are: "
                          f"{', '.join(sorted(v['segment'].unique()))}")
    settings = state_settings(store)
    horizon = int(settings.get("horizon_months") or 12)
    s = v[v["segment"] == segment]
    n, clv, cts = float(len(s)), float(s["clv"].sum()), float(s["cts_ahead"].sum())
    low, high = float(s["clv_low"].fillna(s["clv"]).sum()), float(s["clv_high"].fillna(s["clv"]).sum())
    notes: list[str] = []
    if action == "drop":
        n2, f_clv, cts2 = 0.0, 0.0, 0.0
        notes.append(f"Dropping {segment} means its {int(n):,} customers are no longer served: their predicted margin "
                     "and cost to serve leave with them (fixed costs are not modelled).")
    elif action == "reprice":
        e = a.elasticity if elasticity is None else elasticity
        src = "default, not measured here: override it with --elasticity" if elasticity is None else "set by the caller"
        q = max(0.0, 1 + e * price_change)
        margin = _margin_rate(s, settings)
        if margin <= 0:
            raise BudgetError(f"{segment} has no positive margin to reprice from; check costs in the data")
        n2, f_clv, cts2 = n * q, q * (margin + price_change) / margin, cts * q
        notes.append(f"Price change {price_change:+.0%} with elasticity {e} ({src}): volume {q - 1:+.1%}, taken as "
                     f"customers leaving or joining; margin rate {margin:.0%} becomes "
                     f"{(margin + price_change) / (1 + price_change):.0%} of the new price.")
    elif action == "retier":
        n2, f_clv, cts2 = n, 1 + value_change, cts + n * service_cost_change
        notes.append(f"New service level: {money(service_cost_change)} per customer over {horizon} months, and a "
                     f"{value_change:+.0%} change in the customers' predicted value (both set by the caller).")
    else:
        raise BudgetError(f"action must be drop, reprice or retier, got '{action}'")
    tot = v
    before = {"customers": float(len(tot)), "clv": float(tot["clv"].sum()),
              "profit": float(tot["clv"].sum() - tot["cts_ahead"].sum())}
    b_low, b_high = float(tot["clv_low"].fillna(tot["clv"]).sum()), float(tot["clv_high"].fillna(tot["clv"]).sum())
    if no_range := int((tot["clv_low"].isna() | tot["clv_high"].isna()).sum()):
        notes.append(f"{no_range:,} customers have no CLV range; their CLV is counted as a point value.")
    d_clv = clv * f_clv - clv
    after = {"customers": before["customers"] - n + n2, "clv": before["clv"] + d_clv,
             "profit": before["profit"] + d_clv - (cts2 - cts)}
    a_low = b_low - low + low * f_clv
    a_high = b_high - high + high * f_clv
    rows = [("customers", before["customers"], after["customers"], math.nan, math.nan),
            ("clv", before["clv"], after["clv"], a_low, a_high),
            ("profit", before["profit"], after["profit"], a_low - (tot["cts_ahead"].sum() + cts2 - cts),
             a_high - (tot["cts_ahead"].sum() + cts2 - cts))]
    table = pd.DataFrame(rows, columns=["measure", "before", "after", "after_low", "after_high"])
    table.insert(3, "change", table["after"] - table["before"])
    interval = float(settings.get("interval") or 0.8)
    text = (f"{action.capitalize()} {segment} ({kind}), all {kind} customers over the next {horizon} months: "
            f"customers {before['customers']:,.0f} -> {after['customers']:,.0f}; predicted CLV {money(before['clv'])} "
            f"-> {money(after['clv'])} (range {money(a_low)} to {money(a_high)}); projected profit after cost to serve "
            f"{money(before['profit'])} -> {money(after['profit'])} ({money(after['profit'] - before['profit'])}). "
            f"The ranges add up each customer's {interval:.0%} CLV range, so they cover what these customers may be "
            "worth (wider than a range of the total), not the assumptions of the scenario. " + " ".join(notes))
    lines = notes + ["Projected profit = CLV (gross margin over the horizon, discounted) - expected cost to serve "
                     "(each customer's cost per order so far x expected orders)."]
    return Scenario(action, kind, segment, table, lines, text)


def _margin_rate(s: pd.DataFrame, settings: dict) -> float:
    """Gross margin share of revenue over the last 12 months (the analysis's margin setting when unknown)."""
    rev = float(s["revenue_12m"].sum()) if s["revenue_12m"].notna().any() else 0.0
    if rev > 0 and s["value_12m"].notna().any():
        return float(s["value_12m"].sum()) / rev
    return float(settings.get("margin") or 1.0)
