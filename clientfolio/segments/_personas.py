"""Plain-language personas for discovered clusters, built from what distinguishes each one.

A cluster is described by its *traits*: the features whose cluster mean differs most from the
overall mean, in standard deviations of the (scaled) feature.  Each known feature belongs to a
*family* (frequency, basket size, value, activity, weekend, discount, a product category, ...)
with a word for "high" and for "low"; the name is assembled from the words of the strongest
traits, and the description lists the cluster's own numbers in readable units
("2.1 orders/month", "64% of spend on cake", "78% still active", "average order £18.40").

Everything here works on plain mappings (feature -> cluster mean, feature -> z-score), so it is
usable and testable without fitting anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "Persona",
    "Trait",
    "describe_cluster",
    "feature_family",
    "format_fact",
    "format_money",
    "persona_name",
    "rank_traits",
]

# feature name (lower case) -> (family, sign); sign -1 means "a high value is a low level"
# (a long time between purchases is a low purchase frequency).
_KNOWN: dict[str, tuple[str, int]] = {
    "orders_per_month": ("frequency", 1), "orders_per_week": ("frequency", 1), "orders": ("frequency", 1),
    "n_orders": ("frequency", 1), "order_count": ("frequency", 1), "frequency": ("frequency", 1),
    "purchases": ("frequency", 1), "expected_purchases": ("frequency", 1),
    "ipt_mean": ("frequency", -1), "ipt_median": ("frequency", -1), "ipt_mean_before_last": ("frequency", -1),
    "days_between_orders": ("frequency", -1),
    "aov": ("basket", 1), "monetary": ("basket", 1), "avg_order_value": ("basket", 1),
    "average_order_value": ("basket", 1),
    "clv": ("value", 1), "revenue": ("value", 1), "total_spend": ("value", 1), "spend": ("value", 1),
    "p_alive": ("alive", 1),
    "days_since_last": ("lapse", 1), "days_since_last_order": ("lapse", 1),
    "days_since_last_purchase": ("lapse", 1),
    # `recency` as in the buy-till-you-die summaries: time from the first to the last purchase.
    "recency": ("tenure", 1), "t": ("tenure", 1), "tenure": ("tenure", 1), "tenure_days": ("tenure", 1),
    "weekend_share": ("weekend", 1), "december_share": ("seasonal", 1), "gift_share": ("category:gift", 1),
    "discount_share": ("discount", 1),
    "review_count": ("advocacy", 1), "reviews": ("advocacy", 1), "avg_rating": ("advocacy", 1),
    "rating": ("advocacy", 1),
    "email_open_rate": ("email", 1), "email_click_rate": ("email", 1),
    "support_tickets": ("support", 1),
}

# family -> (word when the level is high, word when low); None: no word (the trait still
# appears in the description).  A word is (adjective form, noun form or None).
_WORDS: dict[str, tuple[tuple[str, str | None] | None, tuple[str, str | None] | None]] = {
    "frequency": (("frequent", "regulars"), ("occasional", None)),
    "basket": (("big-basket", None), ("small-basket", None)),
    "value": (("high-value", None), ("low-value", None)),
    "alive": (("active", None), ("lapsing", None)),
    "lapse": (("lapsing", None), ("recent", None)),
    "tenure": (("long-standing", None), ("newer", None)),  # relative: "new" would overstate it
    "weekend": (("weekend", None), ("weekday", None)),
    "discount": (("deal-seeking", "deal seekers"), ("full-price", None)),
    "advocacy": (("enthusiastic", "fans"), ("unhappy", None)),
    "email": (("email-engaged", None), None),
    "support": (("support-heavy", None), None),
    "seasonal": (("seasonal", None), None),
}

# the feature quoted for a family when the table has several (most readable first)
READABLE: dict[str, tuple[str, ...]] = {
    "frequency": ("orders_per_month", "orders_per_week", "ipt_mean", "ipt_median", "orders", "n_orders",
                  "order_count", "frequency", "expected_purchases"),
    "basket": ("aov", "avg_order_value", "average_order_value", "monetary"),
    "value": ("clv", "revenue", "total_spend", "spend"),
    "alive": ("p_alive",),
    "tenure": ("t", "tenure", "tenure_days", "recency"),
}

_DRINKS = {"coffee", "tea", "juice", "wine", "beer", "drinks", "drink", "smoothie", "smoothies", "soda", "cocktails"}
_B2B = ("wholesale", "b2b", "trade")
_MONEY_HINTS = ("revenue", "spend", "amount", "value", "clv", "aov", "monetary", "cost", "price", "margin",
                "profit", "refund")
_DAY_FEATURES = {"recency", "t", "tenure", "ipt_mean", "ipt_std", "ipt_median", "ipt_mean_before_last",
                 "last_gap", "days_between_orders"}


@dataclass(frozen=True)
class Trait:
    """One distinguishing feature of a cluster: ``z`` standard deviations from the overall mean."""

    feature: str
    z: float
    value: float  # the cluster's mean, in the feature's own units


@dataclass(frozen=True)
class Persona:
    """A cluster's short name and its one-sentence description (which starts with the name)."""

    name: str
    description: str


def category_of(feature: str) -> str | None:
    """``share_wholesale_bread`` -> ``"wholesale bread"``; None for other columns."""
    low = feature.lower()
    if low.startswith("share_") and len(low) > 6:
        return low[6:].replace("_", " ")
    return None


def feature_family(feature: str) -> tuple[str, int] | None:
    """(family, sign) of a feature, or None when the vocabulary does not know it.

    Product-category shares (``share_<category>``) are each their own family ``category:<name>``.
    """
    low = feature.lower()
    if low in _KNOWN:
        return _KNOWN[low]
    cat = category_of(feature)
    if cat is not None:
        return (f"category:{cat}", 1)
    if low.startswith("clv"):
        return ("value", 1)
    if low.startswith("expected_purchases"):
        return ("frequency", 1)
    return None


def _is_b2b_category(cat: str) -> bool:
    return any(w in cat.split() for w in _B2B)


def _category_noun(cats: list[str]) -> str:
    """``["cake"]`` -> "cake lovers", ``["coffee", "tea"]`` -> "coffee and tea drinkers"."""
    if any(_is_b2b_category(c) for c in cats):
        return "wholesale accounts"
    if cats in (["gift"], ["gifts"]):
        return "gift buyers"
    drinks = all(c.split()[-1] in _DRINKS for c in cats)
    return f"{' and '.join(cats)} {'drinkers' if drinks else 'lovers'}"


# --------------------------------------------------------------------------- numbers and units

def _num(x: float) -> str:
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 1 or a == 0:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _days(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.1f}"


def _pct(share: float) -> str:
    p = 100.0 * share
    return f"{p:.1f}%" if abs(p) < 10 and p != 0 else f"{p:.0f}%"


def format_money(x: float, currency: str = "") -> str:
    """``18.4`` -> ``"£18.40"``; amounts of 1,000 and more without pence: ``"£1,234"``."""
    sign = "-" if x < 0 else ""
    a = abs(x)
    body = f"{a:,.0f}" if a >= 1000 else f"{a:,.2f}"
    return f"{sign}{currency}{body}"


def _words(feature: str) -> str:
    return feature.replace("_", " ").strip()


def format_fact(feature: str, value: float, *, currency: str = "", time_unit: str = "days") -> str | None:
    """One readable fact about a cluster mean, in the column's units; None when ``value`` is missing.

    ``*_share``/``share_*`` and rates are percentages, ``p_alive`` is "% still active", money
    columns carry ``currency``, day columns read "every N days" (``time_unit`` says whether the
    summary counts days or weeks).
    """
    if value is None or not math.isfinite(value):
        return None
    low = feature.lower()
    cat = category_of(feature)
    if cat is not None:
        return f"mostly {cat} ({_pct(value)} of spend)" if value >= 0.5 else f"{_pct(value)} of spend on {cat}"
    if low == "p_alive":
        return f"{_pct(value)} still active"
    if low == "weekend_share":
        return f"{_pct(value)} of purchases at weekends"
    if low == "december_share":
        return f"{_pct(value)} of spend in December"
    if low == "gift_share":
        return f"{_pct(value)} of spend on gifts"
    if low == "discount_share":
        return f"{_pct(value)} of spend discounted"
    if low.endswith("_share"):
        return f"{_pct(value)} {_words(feature[:-6])}"
    if low == "email_open_rate":
        return f"opens {_pct(value)} of e-mails"
    if low.endswith("_rate"):
        return f"{_words(feature)} {_pct(value)}"
    if low in ("orders_per_month", "orders_per_week"):
        return f"{_num(value)} orders/{low.rsplit('_', 1)[1]}"
    if low in ("orders", "n_orders", "order_count"):
        return f"{_num(value)} orders"
    if low == "frequency":
        return f"{_num(value)} repeat purchase {time_unit}"
    if low.startswith("expected_purchases"):
        return f"{_num(value)} purchases expected"
    if low in ("aov", "monetary", "avg_order_value", "average_order_value"):
        return f"average order {format_money(value, currency)}"
    if low.startswith("clv"):
        return f"CLV {format_money(value, currency)}"
    if low in ("revenue", "total_spend", "spend"):
        return f"{format_money(value, currency)} spent"
    if low in ("ipt_mean", "ipt_median", "ipt_mean_before_last", "days_between_orders"):
        return f"buys every {_days(value)} {time_unit}"
    if low == "recency":
        return f"{_days(value)} {time_unit} from first to last purchase"
    if low in ("t", "tenure", "tenure_days"):
        return f"customer for {_days(value)} {time_unit}"
    if low.startswith("days_since_last"):
        return f"last order {_days(value)} days ago"
    if low in ("review_count", "reviews"):
        return f"{_num(value)} reviews"
    if low in ("avg_rating", "rating"):
        return f"average rating {value:.1f}"
    if low == "support_tickets":
        return f"{_num(value)} support tickets"
    if any(h in low for h in _MONEY_HINTS):
        return f"{_words(feature)} {format_money(value, currency)}"
    if low in _DAY_FEATURES or low.endswith("_days") or low.startswith("days_"):
        return f"{_words(feature)} {_days(value)} {time_unit}"
    return f"{_words(feature)} {_num(value)}"


def _has_unit(feature: str) -> bool:
    """Whether :func:`format_fact` gives this column a unit (money, days, a percentage)."""
    low = feature.lower()
    return (any(h in low for h in _MONEY_HINTS) or low in _DAY_FEATURES or low.endswith(("_days", "_share", "_rate"))
            or low.startswith("days_"))


# --------------------------------------------------------------------------- traits and names

def rank_traits(z: Mapping[str, float], means: Mapping[str, float], *, min_z: float = 0.4) -> list[Trait]:
    """Features with ``|z| >= min_z``, strongest first (ties by name, so the order is stable)."""
    out = [Trait(f, float(v), float(means.get(f, math.nan))) for f, v in z.items()
           if v is not None and math.isfinite(v) and abs(v) >= min_z]
    return sorted(out, key=lambda t: (-abs(t.z), t.feature))


def _first(means: Mapping[str, float], *names: str) -> float | None:
    lower = {k.lower(): v for k, v in means.items()}
    for n in names:
        v = lower.get(n)
        if v is not None and math.isfinite(v):
            return float(v)
    return None


def _cadence_qualifier(means: Mapping[str, float], time_unit: str) -> str:
    """"daily"/"weekly" regulars when the cluster's own numbers say so, else ""."""
    per_month = _first(means, "orders_per_month")
    gap = _first(means, "ipt_mean", "ipt_median")
    if gap is not None and time_unit == "weeks":
        gap *= 7
    if (per_month is not None and per_month >= 12) or (gap is not None and gap <= 3):
        return "daily"
    if (per_month is not None and per_month >= 3.5) or (gap is not None and gap <= 10):
        return "weekly"
    return ""


def _repeat_buying(means: Mapping[str, float]) -> bool:
    """Do the cluster's customers buy again?  At least 2 orders on average (or 1 repeat purchase) where
    the table says so; unknown counts as yes.  Orders per month from a single order over a short
    tenure look frequent, but nobody in such a group has shown a habit."""
    orders = _first(means, "orders", "n_orders", "order_count")
    if orders is not None:
        return orders >= 2
    repeats = _first(means, "frequency")
    return repeats is None or repeats >= 1


def _looks_b2b(traits: list[Trait], means: Mapping[str, float], min_z: float, time_unit: str) -> bool:
    """Huge baskets bought on a regular cadence, or most spend in a wholesale category."""
    b2b_traits = [t for t in traits if (feature_family(t.feature) or ("",))[0].startswith("category:")
                  and _is_b2b_category(feature_family(t.feature)[0][9:]) and t.z >= min_z]
    b2b_share = sum(v for f, v in means.items() if v is not None and math.isfinite(v)
                    and (feature_family(f) or ("",))[0].startswith("category:")
                    and _is_b2b_category(feature_family(f)[0][9:]))
    if b2b_traits and b2b_share >= 0.5:
        return True
    basket_z = max((t.z for t in traits if (feature_family(t.feature) or ("",))[0] == "basket"), default=0.0)
    if basket_z < 2.0:
        return False
    freq_z = [t.z * feature_family(t.feature)[1] for t in traits
              if (feature_family(t.feature) or ("",))[0] == "frequency"]
    return bool(freq_z and max(freq_z) > 0) or _cadence_qualifier(means, time_unit) != "" or (
        (_first(means, "orders_per_month") or 0) >= 2)


def persona_name(traits: list[Trait], means: Mapping[str, float], *, max_traits: int = 2,
                 min_z: float = 0.4, time_unit: str = "days") -> str:
    """A short name from the strongest traits, e.g. "Daily coffee regulars", "Occasional cake lovers".

    The ``max_traits`` strongest traits with a word are used, one per family.  The noun comes
    from a high purchase frequency ("regulars", with "daily"/"weekly" when the cluster's own
    numbers say so), else from the first trait that has one ("cake lovers", "deal seekers",
    "fans"), else "customers"; the other traits become words in front of it.  Big baskets
    bought on a regular cadence, or mostly wholesale categories, make "Wholesale accounts".
    A cluster without a distinguishing trait is "Typical customers".
    """
    used: set[str] = set()
    picks: list[tuple[str, bool, str]] = []  # (family, high, category or "")
    slots = max_traits
    b2b = _looks_b2b(traits, means, min_z, time_unit)
    if b2b:
        used |= {"basket", "frequency"}
        slots -= 2
    for t in traits:
        if len(picks) >= slots:
            break
        fam = feature_family(t.feature)
        if fam is None or fam[0] in used or abs(t.z) < min_z:
            continue
        family, sign = fam
        high = t.z * sign > 0
        if family == "frequency" and high and not _repeat_buying(means):
            continue  # a high rate from one order in a short time is not a habit: no "frequent" / "regulars"
        if family.startswith("category:"):
            cat = family[9:]
            if not high or _is_b2b_category(cat):  # wholesale shares name a group only via the B2B rule
                continue
            picks.append((family, True, cat))
        elif _WORDS[family][0 if high else 1] is not None:
            picks.append((family, high, ""))
        else:
            continue
        used.add(family)
    if not picks and not b2b:
        return "Typical customers"
    noun: str | None = "wholesale accounts" if b2b else None
    if noun is None and ("frequency", True, "") in picks:
        noun = "regulars"
        picks.remove(("frequency", True, ""))
        qual = _cadence_qualifier(means, time_unit)
        if qual:
            picks.insert(0, ("qualifier", True, qual))
    cats = [extra for family, _, extra in picks if family.startswith("category:")]
    if noun is None:
        for family, high, _ in picks:  # the first trait that has a noun form names the group
            if family.startswith("category:"):
                noun = _category_noun(cats)  # "bread and sandwich lovers"
                cats = []
                break
            if family != "qualifier" and _WORDS[family][0 if high else 1][1] is not None:
                noun = _WORDS[family][0 if high else 1][1]
                break
    adjectives: list[str] = []
    modifiers = cats  # category words right before the noun: "coffee regulars"
    for family, high, extra in picks:
        if family == "qualifier":
            adjectives.append(extra)
        elif not family.startswith("category:"):
            adj, noun_form = _WORDS[family][0 if high else 1]
            if family == "frequency" and high:
                adj = _cadence_qualifier(means, time_unit) or adj
            if noun_form is None or noun_form != noun:
                adjectives.append(adj)
    mods = " and ".join(modifiers)
    text = " ".join(w for w in [*adjectives, mods, noun or "customers"] if w)
    return text[0].upper() + text[1:]


def describe_cluster(means: Mapping[str, float], z: Mapping[str, float], *, name: str | None = None,
                     currency: str = "", max_traits: int = 2, max_facts: int = 5, min_z: float = 0.4,
                     time_unit: str = "days") -> Persona:
    """Name and one-sentence description of a cluster from its means and z-scores.

    Parameters
    ----------
    means
        Feature -> the cluster's mean, in the feature's own units (the numbers quoted).
    z
        Feature -> standardised difference of the cluster from the overall mean (the ranking).
    name
        Use this name instead of generating one (e.g. to keep names unique across clusters).
    currency
        Symbol put in front of money columns, e.g. ``"£"``.
    max_traits, max_facts, min_z
        Traits used in the name, facts in the sentence, and the smallest ``|z|`` that counts
        as distinguishing.

    The sentence lists the strongest traits first, then the anchors a reader expects
    (purchase rhythm, main category, share still active, average order) when present.
    """
    traits = rank_traits(z, means, min_z=min_z)
    if name is None:
        name = persona_name(traits, means, max_traits=max_traits, min_z=min_z, time_unit=time_unit)
    facts: list[str] = []
    covered: set[str] = set()
    lower = {k.lower(): k for k in means}

    def add(feature: str, *, plain: bool = True) -> None:
        fam = feature_family(feature)
        key = fam[0] if fam else feature
        if key in covered or len(facts) >= max_facts or (not plain and fam is None and not _has_unit(feature)):
            return
        for pref in READABLE.get(key, ()):  # say "2.1 orders/month" rather than "104 orders"
            if pref in lower and math.isfinite(means[lower[pref]]):
                feature = lower[pref]
                break
        fact = format_fact(feature, means.get(feature, math.nan), currency=currency, time_unit=time_unit)
        if fact is not None:
            facts.append(fact)
            covered.add(key)

    def add_family(family: str) -> None:
        for f in READABLE[family]:
            if f in lower:
                add(lower[f])
                return

    if _looks_b2b(traits, means, min_z, time_unit):
        add_family("basket")  # what makes an account wholesale comes first
        add_family("frequency")
    for t in traits:  # the three strongest traits that can be said in words
        if len(facts) >= 3:
            break
        fam = feature_family(t.feature)
        if fam and fam[0].startswith("category:") and t.z < 0:
            continue  # "3% of spend on cake" says little about a cluster that avoids cake
        add(t.feature, plain=False)  # "M 1.9" only if nothing better can be said
    add_family("frequency")
    shares = {k: v for k, v in means.items() if category_of(k) is not None and v is not None and math.isfinite(v)}
    if shares:
        top = max(sorted(shares), key=lambda k: shares[k])
        if shares[top] >= 0.4:
            add(top)
    add_family("alive")
    add_family("basket")
    for t in traits[:3]:
        if not facts:
            add(t.feature)
    sentence = ", ".join(facts) if facts else "no feature sets this group apart"
    return Persona(name=name, description=f"{name}: {sentence}.")
