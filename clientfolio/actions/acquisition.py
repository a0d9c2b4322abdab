"""Acquisition insight: where the best customers come from, and who else looks like them.

The ideal customer profile compares, for every value of an attribute known when a customer is
acquired (acquisition channel, region, the first order's category, product and channel, and
industry and size where the data has them), how often its customers end in the top value tier
(top 20% by predicted CLV) against the base share.  A value belongs to the profile when its
share is significantly higher (one-sided Fisher exact test, Benjamini-Hochberg false discovery
rate 5% over every value tested).  Only *established* customers count (first order at least
`new_days` before the cut-off): a newcomer's CLV says little yet.

Lookalikes are prospects (known customers without an order) and newcomers scored by a logistic
regression trained on established customers' acquisition attributes to predict top-tier
membership; its holdout AUC says how far to trust the ranking.  CAC and CLV:CAC per channel come
from :mod:`clientfolio.scores.acquisition` (the fitted state's table), never recomputed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clientfolio.actions.proportions import benjamini_hochberg, wilson
from clientfolio.core.errors import ClientfolioError
from clientfolio.core.money import format_money
from clientfolio.store.base import Store

# Attributes known when a customer is acquired, with how a reason names them.
ATTRIBUTES: dict[str, str] = {
    "acquisition_channel": "acquisition channel", "region": "region", "first_category": "first order's category",
    "first_product": "first order's product", "first_order_channel": "first order's channel",
    "industry": "industry", "size": "company size",
}
PHRASES: dict[str, str] = {
    "acquisition_channel": "came through {v}", "region": "is in {v}", "first_category": "first bought {v}",
    "first_product": "first product {v}", "first_order_channel": "first ordered {v}", "industry": "works in {v}",
    "size": "is a {v} business",
}
MIN_CUSTOMERS = 30  # fewer customers with a value: too few to conclude anything about it
FDR = 0.05  # Benjamini-Hochberg false discovery rate over every value tested
TOP_SHARE = 0.20  # the top value tier: this share of established customers by predicted CLV
NEW_DAYS = 90  # a customer whose first order is this recent is "new": a lookalike candidate, not evidence
BOOTSTRAP = 1000
BOOTSTRAP_MAX_N = 5000  # above this a t-interval (the mean is close to normal at that size)
MIN_CLASS = 20  # the model needs this many top-tier and this many other customers
UNKNOWN = "(unknown)"
_FIRST_ORDER = """
WITH firsts AS (
  SELECT customer_id, min(ts) AS first_ts FROM transactions
  WHERE customer_id IS NOT NULL AND amount > 0 AND NOT coalesce(is_refund, FALSE) GROUP BY customer_id
), lines AS (
  SELECT t.customer_id, t.category, t.product_id, t.channel, t.amount FROM transactions t
  JOIN firsts f ON f.customer_id = t.customer_id AND f.first_ts = t.ts
  WHERE t.amount > 0 AND NOT coalesce(t.is_refund, FALSE)
), cats AS (
  SELECT customer_id, category, sum(amount) AS amount FROM lines WHERE category IS NOT NULL
  GROUP BY customer_id, category
), cat AS (
  SELECT customer_id, category, row_number() OVER (PARTITION BY customer_id ORDER BY amount DESC, category) AS k
  FROM cats
), prod AS (
  SELECT customer_id, product_id, channel,
         row_number() OVER (PARTITION BY customer_id ORDER BY amount DESC, product_id, channel) AS k
  FROM lines
)
SELECT f.customer_id, f.first_ts, cat.category AS first_category, prod.product_id AS first_product,
       prod.channel AS first_order_channel
FROM firsts f
LEFT JOIN cat ON cat.customer_id = f.customer_id AND cat.k = 1
LEFT JOIN prod ON prod.customer_id = f.customer_id AND prod.k = 1
"""


class AcquisitionError(ClientfolioError):
    """The data cannot support an acquisition profile (no value measure, no attributes, too few customers)."""


# ----------------------------------------------------------------------------------- data

def first_orders(store: Store) -> pd.DataFrame:
    """Per buyer: the first order's day, its main category (most spend), main product and channel."""
    df = store.query(_FIRST_ORDER)
    df["customer_id"] = df["customer_id"].astype(str)
    return df


def acquisition_frame(source: Any, store: Store | None = None,
                      first: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.Timestamp, dict]:
    """(one row per customer: value, first_purchase, is_prospect + acquisition attributes; cut-off; context).

    `source` is a :class:`~clientfolio.portfolio.Portfolio`, a :class:`Store` (read from its
    customer_state, no refit) or a DataFrame with ``customer_id``, ``clv`` (or ``value``),
    ``first_purchase`` and attribute columns (its ``attrs["as_of"]`` or the latest first purchase
    is the cut-off).  Context: currency, basis (what the value is), the CLV:CAC per channel table.
    `first`: :func:`first_orders` of `store`, when already read.
    """
    from clientfolio.portfolio import Portfolio

    ctx: dict[str, Any] = {"currency": "", "basis": "predicted CLV", "channels": None, "notes": []}
    if isinstance(source, Store):
        store = source
        df, as_of = _from_store(store, ctx)
    elif isinstance(source, Portfolio):
        df = source.customers.copy()
        as_of = pd.Timestamp(source.as_of)
        ctx["currency"], ctx["channels"] = source.currency, source.clv_cac
        h = source.settings.get("horizon_months", 12)
        ctx["basis"] = f"predicted CLV over {h} months"
        if store is not None:
            prospects = _store_prospects(store, set(df["customer_id"].astype(str)))
            df = pd.concat([df, prospects], ignore_index=True)
    elif isinstance(source, pd.DataFrame):
        df = source.copy()
        if "first_purchase" in df and df["first_purchase"].notna().any():
            as_of = pd.Timestamp(df.attrs.get("as_of", pd.to_datetime(df["first_purchase"]).max()))
        else:
            raise AcquisitionError("the customers frame needs a first_purchase column (the first order's day)")
    else:
        raise AcquisitionError(f"ideal_customer_profile takes a Portfolio, a Store or a DataFrame, got "
                               f"{type(source).__name__}")
    df["customer_id"] = df["customer_id"].astype(str)
    if store is not None and not isinstance(source, Store):
        fo = (first if first is not None else first_orders(store)).drop(columns=["first_ts"])
        df = df.drop(columns=[c for c in fo.columns if c != "customer_id" and c in df]).merge(
            fo, on="customer_id", how="left")
    elif not isinstance(source, Store) and "first_category" not in df:
        ctx["notes"].append("the first order's category, product and channel need the store "
                            "(ideal_customer_profile(portfolio, store=...)); they are left out")
    value = df["clv"] if "clv" in df else df.get("value")
    if value is None or pd.to_numeric(value, errors="coerce").isna().all():
        if "revenue" in df and df["revenue"].notna().any():
            value = df["revenue"]
            ctx["basis"] = "revenue to date (this data does not support CLV forecasts)"
        else:
            raise AcquisitionError("no predicted CLV (or revenue) per customer: analyse the data first "
                                   "(`clientfolio analyze FILE --store STORE`)")
    df["value"] = pd.to_numeric(value, errors="coerce").astype(float)
    df["first_purchase"] = pd.to_datetime(df["first_purchase"]) if "first_purchase" in df else pd.NaT
    orders = df["orders"] if "orders" in df else pd.Series(np.where(df["first_purchase"].notna(), 1, 0))
    df["is_prospect"] = df["first_purchase"].isna() | (pd.to_numeric(orders, errors="coerce").fillna(0) <= 0)
    if "lifecycle" in df:
        df["is_prospect"] |= df["lifecycle"].astype(object).eq("prospect")
    keep = ["customer_id", "value", "first_purchase", "is_prospect"] + [a for a in ATTRIBUTES if a in df]
    out = df[keep].copy()
    for a in ATTRIBUTES:
        if a in out:
            out[a] = out[a].astype(object).where(out[a].notna(), None)
            out[a] = out[a].map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())
    return out.reset_index(drop=True), as_of, ctx


def _store_prospects(store: Store, buyers: set[str]) -> pd.DataFrame:
    """Known customers without an order (the customers table), with their attributes."""
    cols = _customer_columns(store)
    df = store.query(f"SELECT customer_id, {', '.join(cols)} FROM customers") if cols else \
        store.query("SELECT customer_id FROM customers")
    df["customer_id"] = df["customer_id"].astype(str)
    # as objects: pandas 3's isin on a string column took over a second for 100k customers
    df = df[~df["customer_id"].astype(object).isin(buyers)].copy()
    df["orders"] = 0
    df["first_purchase"] = pd.NaT
    return df


def _customer_columns(store: Store) -> list[str]:
    have = set(store.query("SELECT * FROM customers LIMIT 0").columns)
    return [c for c in ("acquisition_channel", "region", "industry", "size") if c in have]


def _from_store(store: Store, ctx: dict) -> tuple[pd.DataFrame, pd.Timestamp]:
    from clientfolio.state import PortfolioState

    loaded = store.load_state()
    if loaded is None:
        raise AcquisitionError("this store has no analysed portfolio yet: run `clientfolio analyze --store STORE` "
                               "first")
    state = PortfolioState.from_json(loaded[1])
    ctx["currency"], ctx["channels"] = state.currency, state.cac_
    ctx["basis"] = f"predicted CLV over {state.settings.horizon_months} months"
    cs = store.query("SELECT customer_id, clv, revenue, orders, seg_lifecycle AS lifecycle, as_of FROM customer_state")
    cs["customer_id"] = cs["customer_id"].astype(str)
    as_of = pd.Timestamp(cs["as_of"].max()) if len(cs) else pd.Timestamp(state.cutoff_)
    fo = first_orders(store).rename(columns={"first_ts": "first_purchase"})
    cols = _customer_columns(store)
    attrs = store.query(f"SELECT customer_id{''.join(', ' + c for c in cols)} FROM customers")
    attrs["customer_id"] = attrs["customer_id"].astype(str)
    df = cs.drop(columns=["as_of"]).merge(fo, on="customer_id", how="left")
    df = df.merge(attrs, on="customer_id", how="outer")
    df["first_purchase"] = pd.to_datetime(df["first_purchase"]).dt.normalize()
    df["orders"] = df["orders"].fillna(0)
    return df, as_of


# ------------------------------------------------------------------------------ statistics

def mean_interval(values: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Interval for the mean: bootstrap percentile (up to 5,000 values), t-interval above."""
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    if n <= BOOTSTRAP_MAX_N:
        idx = rng.integers(0, n, size=(BOOTSTRAP, n))
        means = values[idx].mean(axis=1)
        return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))
    se = values.std(ddof=1) / math.sqrt(n)
    t = stats.t.ppf(1 - a, n - 1)
    return float(values.mean() - t * se), float(values.mean() + t * se)


# --------------------------------------------------------------------------------- profile

@dataclass
class LookalikeModel:
    """A logistic regression on acquisition attributes that predicts top-tier membership, with its honest AUC."""

    attributes: list[str]
    pipeline: Any
    auc: float
    auc_low: float
    auc_high: float
    n_train: int
    n_holdout: int
    base_share: float
    traits: dict[tuple[str, str], float] = field(default_factory=dict)  # profile (attribute, value) -> lift
    known: dict[str, set[str]] = field(default_factory=dict)  # values seen per attribute

    @property
    def better_than_chance(self) -> bool:
        """True when the holdout AUC's 95% interval lies above 0.5."""
        return bool(np.isfinite(self.auc_low) and self.auc_low > 0.5)

    @property
    def text(self) -> str:
        """The model's quality in plain words."""
        head = (f"lookalike model (logistic regression on {', '.join(ATTRIBUTES[a] for a in self.attributes)}): "
                f"holdout AUC {self.auc:.2f}, 95% interval {self.auc_low:.2f}-{self.auc_high:.2f} "
                f"({self.n_holdout:,} established customers held out; 0.5 is chance, 1 a perfect ranking)")
        if not self.better_than_chance:
            return head + ". It ranks no better than chance: do not rely on its scores."
        return head + "."

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row of `frame` (acquisition attributes): score (P(top tier)), lift over the base share,
        matches (profile traits it has) and the reason in plain words."""
        x = _design(frame, self.attributes)
        p = self.pipeline.predict_proba(x)[:, 1]
        reasons, matches = [], []
        for _, row in frame.iterrows():
            r, m = self.reason(row)
            reasons.append(r)
            matches.append(m)
        return pd.DataFrame({"score": p, "lift": p / self.base_share if self.base_share else np.nan,
                             "matches": matches, "reason": reasons}, index=frame.index)

    def reason(self, row: pd.Series) -> tuple[str, int]:
        """("came through instagram, first bought cake: both common among your best customers (...)", traits)."""
        hits, unseen = [], []
        for a in self.attributes:
            v = row.get(a)
            if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "":
                continue
            v = str(v)
            if (a, v) in self.traits:
                hits.append((PHRASES[a].format(v=v), self.traits[(a, v)]))
            elif v not in self.known.get(a, set()):
                unseen.append(f"{ATTRIBUTES[a]} '{v}' not seen among your customers")
        if hits:
            common = "common" if len(hits) == 1 else ("both common" if len(hits) == 2 else "all common")
            text = (", ".join(f"{h} ({lift:.1f}x)" for h, lift in hits) + f": {common} among your best customers "
                    "(how many times more often than average such customers are in the top tier)")
        else:
            text = "shares none of the traits of your best customers"
        if unseen:
            text += "; " + "; ".join(unseen)
        return text, len(hits)


@dataclass
class Profile:
    """The ideal customer profile: per attribute value, the evidence; `traits` are the values in the profile."""

    table: pd.DataFrame
    lines: list[str]
    basis: str
    as_of: pd.Timestamp
    top_share: float
    top_threshold: float
    base_share: float
    established: int
    new_days: int
    currency: str = ""
    model: LookalikeModel | None = None
    channels: pd.DataFrame | None = None  # CLV:CAC per channel (clientfolio.scores.acquisition)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def traits(self) -> pd.DataFrame:
        """The rows of `table` in the profile (significant positive lift), strongest first."""
        return self.table[self.table["in_profile"]].sort_values("lift", ascending=False).reset_index(drop=True)


def _evidence(df: pd.DataFrame, attrs: list[str], rng: np.random.Generator) -> pd.DataFrame:
    n, top_n = len(df), int(df["top"].sum())
    base = top_n / n
    rows = []
    for a in attrs:
        for v, grp in df.groupby(df[a].fillna(UNKNOWN), sort=True):
            k, m = int(grp["top"].sum()), len(grp)
            vals = grp["value"].to_numpy(float)
            lo, hi = mean_interval(vals, rng)
            s_lo, s_hi = wilson(k, m)
            small = m < MIN_CUSTOMERS
            p_hi = p_lo = float("nan")
            if not small and m < n and v != UNKNOWN:
                table = [[k, m - k], [top_n - k, (n - m) - (top_n - k)]]
                p_hi = float(stats.fisher_exact(table, alternative="greater")[1])
                p_lo = float(stats.fisher_exact(table, alternative="less")[1])
            rows.append({"attribute": a, "value": v, "customers": m, "mean_clv": float(vals.mean()),
                         "mean_clv_low": lo, "mean_clv_high": hi, "median_clv": float(np.median(vals)),
                         "top_customers": k, "top_share": k / m, "top_share_low": s_lo, "top_share_high": s_hi,
                         "base_share": base, "lift": (k / m) / base if base else np.nan,
                         "p_value": p_hi, "p_value_low": p_lo, "too_small": small})
    t = pd.DataFrame(rows)
    tested = t["p_value"].notna()
    t["q_value"] = np.nan
    t["q_value_low"] = np.nan
    t.loc[tested, "q_value"] = benjamini_hochberg(t.loc[tested, "p_value"].to_numpy())
    t.loc[tested, "q_value_low"] = benjamini_hochberg(t.loc[tested, "p_value_low"].to_numpy())
    t["in_profile"] = tested & (t["q_value"] < FDR) & (t["lift"] > 1)
    t["below_profile"] = tested & (t["q_value_low"] < FDR) & (t["lift"] < 1)
    return t


def ideal_customer_profile(portfolio: Any, store: Store | None = None, *, top_share: float = TOP_SHARE,
                           new_days: int = NEW_DAYS, model: bool = True, seed: int = 0,
                           first: pd.DataFrame | None = None) -> Profile:
    """Which acquisition channels, first categories/products and regions bring customers of high CLV.

    Parameters
    ----------
    portfolio : Portfolio, Store or DataFrame
        The analysed customers (a store is read from its current state, nothing is refitted).
    store : Store, optional
        With a Portfolio: where the first orders (category, product, channel) and prospects are read.
    top_share : float
        The top value tier: this share of established customers by predicted CLV (default 20%).
    new_days : int
        Customers whose first order is within this many days of the cut-off are not evidence (too new).
    model : bool
        Also train the lookalike model (needed by :func:`lookalikes` and :func:`score_prospects`).
    first : DataFrame, optional
        ``first_orders(store)`` when already read (analyze reads it ahead); read from `store` otherwise.

    The table has, per attribute value: customers, mean CLV with a 95% bootstrap interval (it
    covers the sampling uncertainty of the group's mean, not the CLV model's own error), median
    CLV, top-tier customers and share with a 95% Wilson interval, the base share, lift, p- and
    q-values (Benjamini-Hochberg), ``in_profile``, ``below_profile`` and ``too_small`` (fewer
    than 30 customers: not tested, no conclusion).
    """
    if not 0 < top_share < 1:
        raise AcquisitionError(f"top_share must be between 0 and 1 (e.g. 0.2 for the top 20%), got {top_share}")
    df, as_of, ctx = acquisition_frame(portfolio, store, first=first)
    est = df[~df["is_prospect"] & (df["first_purchase"] <= as_of - pd.Timedelta(days=new_days))
             & df["value"].notna()].copy()
    attrs = [a for a in ATTRIBUTES if a in est and est[a].nunique() >= 2]
    if not attrs:
        raise AcquisitionError("no acquisition attributes with two or more values (acquisition channel, region, "
                               "first order's category or product): import a customers file with "
                               "acquisition_channel or region, or orders with a category")
    if len(est) < 2 * MIN_CUSTOMERS:
        raise AcquisitionError(f"only {len(est)} customers bought more than {new_days} days before "
                               f"{as_of:%d %b %Y}: too few for a profile (it needs {2 * MIN_CUSTOMERS})")
    threshold = float(est["value"].quantile(1 - top_share))
    est["top"] = (est["value"] >= threshold) & (est["value"] > 0)
    if not est["top"].any():
        raise AcquisitionError("no established customer has a predicted value above zero: no top tier to profile")
    rng = np.random.default_rng(seed)
    table = _evidence(est, attrs, rng)
    channels = ctx["channels"]
    if channels is not None and len(channels):
        cac = channels.set_index("channel")[["cac", "clv_cac"]]
        is_ch = table["attribute"] == "acquisition_channel"
        table["cac"] = np.where(is_ch, table["value"].map(cac["cac"]), np.nan)
        table["clv_cac"] = np.where(is_ch, table["value"].map(cac["clv_cac"]), np.nan)
    base = float(est["top"].mean())
    prof = Profile(table=table, lines=[], basis=ctx["basis"], as_of=as_of, top_share=top_share,
                   top_threshold=threshold, base_share=base, established=len(est), new_days=new_days,
                   currency=ctx["currency"], channels=channels)
    if model:
        prof.model = _train(est, attrs, table, seed, ctx["notes"])
    prof.lines = _lines(prof, ctx["notes"])
    return prof


def _lines(p: Profile, notes: list[str]) -> list[str]:
    money = lambda v: format_money(v, p.currency)  # noqa: E731
    t = p.table
    lines = [f"Your best customers: the top {p.top_share:.0%} of {p.established:,} established customers by "
             f"{p.basis} ({money(p.top_threshold)} or more), compared with customers who came another way. "
             f"Customers whose first order is within {p.new_days} days of {p.as_of:%d %b %Y} are not counted (too "
             "new to judge)."]
    traits = p.traits
    if traits.empty:
        lines.append("No channel, region or first purchase brings significantly more top customers than the others "
                     f"(tested at a {FDR:.0%} false discovery rate): your best customers come from everywhere, or "
                     "the data is too thin to tell.")
    else:
        lines.append("Ideal customer profile (each significantly more often among your best customers):")
        for r in traits.itertuples():
            line = (f"  {ATTRIBUTES[r.attribute]} {r.value}: {r.lift:.1f}x the usual share of top customers "
                    f"({r.top_share:.0%} vs {r.base_share:.0%}; {r.customers:,} customers, mean CLV "
                    f"{money(r.mean_clv)}, 95% interval {money(r.mean_clv_low)}-{money(r.mean_clv_high)}, median "
                    f"{money(r.median_clv)})")
            ratio = getattr(r, "clv_cac", float("nan"))
            if isinstance(ratio, float) and np.isfinite(ratio):
                line += f"; CLV:CAC {ratio:.1f}"
            lines.append(line)
    below = t[t["below_profile"]].sort_values("lift")
    if len(below):
        lines.append("Rarely among your best customers: " + "; ".join(
            f"{ATTRIBUTES[r.attribute]} {r.value} ({r.lift:.1f}x, {r.customers:,} customers)"
            for r in below.head(5).itertuples()))
    small = t[t["too_small"] & (t["value"] != UNKNOWN)]
    if len(small):
        lines.append(f"{len(small)} values have fewer than {MIN_CUSTOMERS} customers: too few to conclude "
                     f"(e.g. {', '.join(f'{ATTRIBUTES[a]} {v} ({n})' for a, v, n in small[['attribute', 'value', 'customers']].head(3).itertuples(index=False))}).")  # noqa: E501
    lines.append("Mean CLV intervals are 95% bootstrap intervals for the group's mean (they cover which customers "
                 "happened to come, not the CLV forecast's own error).")
    if p.model is not None:
        lines.append(p.model.text)
    lines.extend(notes)
    return lines


# ---------------------------------------------------------------------------------- model

def _design(frame: pd.DataFrame, attrs: list[str]) -> pd.DataFrame:
    x = pd.DataFrame(index=frame.index)
    for a in attrs:
        col = frame[a] if a in frame else pd.Series(None, index=frame.index, dtype=object)
        x[a] = col.astype(object).where(col.notna(), UNKNOWN).astype(str)
    return x


def _pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return make_pipeline(OneHotEncoder(handle_unknown="ignore", min_frequency=10),
                         LogisticRegression(C=1.0, max_iter=2000))


def auc_interval(auc: float, n_pos: int, n_neg: int, level: float = 0.95) -> tuple[float, float]:
    """Hanley-McNeil (1982) interval for an AUC from `n_pos` positives and `n_neg` negatives."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    z = stats.norm.ppf(1 - (1 - level) / 2)
    se = math.sqrt(max(var, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def _train(est: pd.DataFrame, attrs: list[str], table: pd.DataFrame, seed: int,
           notes: list[str]) -> LookalikeModel | None:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    y = est["top"].astype(int).to_numpy()
    if y.sum() < MIN_CLASS or (1 - y).sum() < MIN_CLASS:
        notes.append(f"no lookalike model: it needs at least {MIN_CLASS} top-tier and {MIN_CLASS} other established "
                     f"customers (found {int(y.sum())} and {int((1 - y).sum())})")
        return None
    x = _design(est, attrs)
    xa, xb, ya, yb = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    held = _pipeline().fit(xa, ya)
    auc = float(roc_auc_score(yb, held.predict_proba(xb)[:, 1]))
    lo, hi = auc_interval(auc, int(yb.sum()), int((1 - yb).sum()))
    final = _pipeline().fit(x, y)
    prof = table[table["in_profile"]]
    traits = {(a, str(v)): float(lift) for a, v, lift in zip(prof["attribute"], prof["value"], prof["lift"])}
    known = {a: set(est[a].dropna().astype(str)) for a in attrs}
    return LookalikeModel(attributes=attrs, pipeline=final, auc=auc, auc_low=lo, auc_high=hi, n_train=len(xa),
                          n_holdout=len(xb), base_share=float(y.mean()), traits=traits, known=known)


# ------------------------------------------------------------------------------ lookalikes

@dataclass
class Lookalikes:
    """Prospects and newcomers ranked by how much they look like the best customers."""

    table: pd.DataFrame
    profile: Profile

    @property
    def text(self) -> str:
        t = self.table
        kinds = t["kind"].value_counts() if len(t) else pd.Series(dtype=int)
        line = (f"{len(t):,} candidates: {int(kinds.get('prospect', 0)):,} prospects (no order yet) and "
                f"{int(kinds.get('new customer', 0)):,} customers whose first order is within "
                f"{self.profile.new_days} days.")
        m = self.profile.model
        return line + (" " + m.text if m is not None else " No model: ranked by profile traits matched only.")


def lookalikes(portfolio: Any, store: Store | None = None, *, profile: Profile | None = None,
               new_days: int = NEW_DAYS, limit: int | None = None) -> Lookalikes:
    """Prospects (no order yet) and customers whose first order is within `new_days`, ranked by likeness.

    Columns: customer_id, kind ('prospect' / 'new customer'), the acquisition attributes, score
    (the model's probability of joining the top tier; NaN without a model), lift (score over the
    base share), matches (profile traits the customer has) and reason.  With a store, also
    marketing_email_allowed and consent_basis (from :mod:`clientfolio.actions.consent`).
    """
    prof = profile or ideal_customer_profile(portfolio, store, new_days=new_days)
    src_store = portfolio if isinstance(portfolio, Store) else store
    df, as_of, _ = acquisition_frame(portfolio, store)
    new = ~df["is_prospect"] & (df["first_purchase"] > as_of - pd.Timedelta(days=prof.new_days))
    cand = df[df["is_prospect"] | new].copy()
    cand["kind"] = np.where(cand["is_prospect"], "prospect", "new customer")
    attrs = [a for a in ATTRIBUTES if a in cand]
    if prof.model is not None:
        scored = prof.model.score(cand)
    else:
        scored = _match_only(prof, cand, attrs)
    out = pd.concat([cand[["customer_id", "kind", *attrs]], scored], axis=1)
    out = out.sort_values(["score", "matches", "customer_id"], ascending=[False, False, True], na_position="last")
    if limit is not None:
        out = out.head(limit)
    if src_store is not None and len(out):
        from clientfolio.actions.consent import consent_status

        cs = consent_status(src_store, out["customer_id"].tolist(), "marketing", "email")
        cs = cs.rename(columns={"allowed": "marketing_email_allowed", "basis": "consent_basis"})
        out = out.merge(cs, on="customer_id", how="left")
    return Lookalikes(out.reset_index(drop=True), prof)


def _match_only(prof: Profile, frame: pd.DataFrame, attrs: list[str]) -> pd.DataFrame:
    traits = prof.traits
    lifts = {(a, str(v)): float(x) for a, v, x in zip(traits["attribute"], traits["value"], traits["lift"])}
    tmp = LookalikeModel(attributes=attrs, pipeline=None, auc=float("nan"), auc_low=float("nan"),
                         auc_high=float("nan"), n_train=0, n_holdout=0, base_share=prof.base_share, traits=lifts,
                         known={})
    res = [tmp.reason(row) for _, row in frame.iterrows()]
    return pd.DataFrame({"score": np.nan, "lift": np.nan, "matches": [m for _, m in res],
                         "reason": [r for r, _ in res]}, index=frame.index)


def score_prospects(profile_or_model: Profile | LookalikeModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Score a frame of prospects (columns named like the acquisition attributes) against the profile.

    Returns `frame` with score, lift, matches and reason appended, best first.  Read a file with
    :func:`clientfolio.actions.prospects.read_prospects` (it checks every row and maps column names).
    """
    model = profile_or_model.model if isinstance(profile_or_model, Profile) else profile_or_model
    if model is None:
        raise AcquisitionError("this profile has no lookalike model (too few top-tier customers to learn from); "
                               "prospects cannot be scored")
    known = [a for a in model.attributes if a in frame]
    if not known:
        raise AcquisitionError(f"the prospects have none of the attributes the model uses "
                               f"({', '.join(model.attributes)})")
    scored = model.score(frame)
    out = pd.concat([frame, scored], axis=1)
    return out.sort_values(["score", "matches"], ascending=[False, False], kind="stable").reset_index(drop=True)
