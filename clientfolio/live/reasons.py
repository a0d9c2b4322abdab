"""Why a customer is in a segment, in the words a retention marketer reads, with the deciding numbers.

A reason is made where the decision is applied (the fitted thresholds and the customer's row
are both at hand), not reconstructed by a report later.  Each segment kind has one function
that restates its rule from :mod:`clientfolio.segments` with this customer's numbers and the
threshold that decided it: ``no order in 74 days, usually every 21 days (at risk after 42
days); P(alive) 0.31 (below 0.70)``.  Where the row before the change is known, what moved is said
too (``R fell from 4 to 3``, ``was £520``).

The sentences only state what the numbers show: a threshold is quoted as deciding only when
the customer's number is on the deciding side of it, and two numbers that would print the same
although they differ are printed with more decimals.  Missing columns leave a clause out; they
never raise.

``thresholds`` is the fitted state's plain-data thresholds (see :func:`explain`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from clientfolio.core.money import currency_prefix, format_money, money_key
from clientfolio.core.numbers import decimal_text as _dec
from clientfolio.core.numbers import rhythm_text as _rhythm
from clientfolio.live.kinds import kind_label, segment_label

__all__ = ["describe_change", "explain"]

Row = Mapping[str, Any]
Money = Callable[[float, "int | None"], str]  # an amount in the shop's currency (decimals: None = usual)

# The lifecycle rules of clientfolio.segments.lifecycle (first match wins); a fitted state may
# carry its own under thresholds["lifecycle"].
P_ALIVE_CUTS = {"at risk": 0.70, "lapsed": 0.30, "churned": 0.10}
RHYTHM_MULTIPLES = {"at risk": 2.0, "lapsed": 4.0, "churned": 8.0}
DEFAULT_RETURN_WINDOW = 30.0  # days: what lifecycle uses when no customer has come back yet
# The behaviour rules of clientfolio.segments.behaviour (tests check they still agree).
CATEGORY_SHARE = 0.5
DISCOUNT_SHARE = 0.3
OCCASION_SHARE = 0.5
CART_ABANDONS = 2
SUPPORT_TICKETS = 2
ORDERS_PER_TICKET = 5
VALUE_TIER_SHARES = (0.2, 0.3)  # top / next share of customers behind the value tier cut points


# ----------------------------------------------------------------------------- reading a row

def _num(row: Row | None, key: str) -> float | None:
    """The row's number under `key`, or None when absent, missing (NaN, NA) or not a number."""
    if row is None:
        return None
    try:
        v = float(row.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(row: Row | None, key: str) -> str | None:
    """The row's text under `key`, or None when absent or missing."""
    if row is None:
        return None
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) in ("", "<NA>", "nan", "NaT"):
        return None
    return str(v)


def _cuts(thresholds: Mapping, *path: str) -> list[float] | None:
    """A list of cut points under thresholds[path...], or None when any part is missing."""
    node: Any = thresholds
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    try:
        values = [float(v) for v in node]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _one_number(thresholds: Mapping, *path: str) -> float | None:
    node: Any = thresholds
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    try:
        v = float(node)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------- writing numbers

def _days(v: float) -> str:
    return _dec(v, 1)


def _apart(fmt: Callable[[float, int], str], v: float, cut: float, decimals: int) -> tuple[str, str]:
    """`v` and `cut` printed so that different numbers never print the same (adds decimals)."""
    for d in range(decimals, decimals + 5):
        a, b = fmt(v, d), fmt(cut, d)
        if a != b or v == cut:
            return a, b
    return a, b


def _money_fn(prefix: str) -> Money:
    """format_money, except that a whole amount under 100 drops its ".00" ("median £80", not "£80.00")."""
    def money(v: float, d: int | None = None) -> str:
        if d is None and abs(v) < 100 and v == round(v):
            d = 0
        return format_money(v, prefix, d)
    return money


def _money_apart(money: Money, v: float, cut: float) -> tuple[str, str]:
    a, b = money(v, None), money(cut, None)
    if a == b and v != cut:
        return _apart(lambda x, d: money(x, d), v, cut, 2)
    return a, b


def _pct(v: float, d: int = 0) -> str:
    return f"{v * 100:.{d}f}%"


def _plural(n: float, word: str) -> str:
    count = _dec(n, 1)
    return f"{count} {word}" if n == 1 else f"{count} {word}s"


# ----------------------------------------------------------------------------- lifecycle

def _return_window(thresholds: Mapping) -> float:
    w = _one_number(thresholds, "return_window")
    return w if w is not None and w > 0 else DEFAULT_RETURN_WINDOW


def _is_one_time(row: Row) -> bool:
    orders, freq = _num(row, "orders"), _num(row, "frequency")
    if freq is not None:
        return freq < 1
    return orders is not None and orders <= 1


def _p_alive_clause(p: float | None, before: Row | None, cut: float | None) -> str:
    """``P(alive) 0.31 (below 0.70; was 0.80)``; the cut only when p is below it."""
    if p is None:
        return ""
    notes = []
    shown = f"{p:.2f}"
    if cut is not None and p < cut:
        shown, cut_text = _apart(lambda x, d: f"{x:.{d}f}", p, cut, 2)
        notes.append(f"below {cut_text}")
    was = _num(before, "p_alive")
    if was is not None and round(was, 2) != round(p, 2):
        notes.append(f"was {was:.2f}")
    return f"P(alive) {shown}" + (f" ({'; '.join(notes)})" if notes else "")


def _stage_numbers(thresholds: Mapping, which: str) -> dict[str, float]:
    """thresholds["lifecycle"][which] as {stage: number}, leaving out anything that is not a number."""
    life = thresholds.get("lifecycle")
    node = life.get(which) if isinstance(life, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return {str(k): v for k, v in ((k, _one_number(node, k)) for k in node) if v is not None}


def _lifecycle(stage: str, before: Row | None, after: Row, thresholds: Mapping) -> str:
    p_cuts = {**P_ALIVE_CUTS, **_stage_numbers(thresholds, "p_alive")}
    multiples = {**RHYTHM_MULTIPLES, **_stage_numbers(thresholds, "rhythms")}
    window = _return_window(thresholds)
    stage = stage.lower()
    since = _num(after, "days_since_last")
    rhythm = _num(after, "rhythm_days")
    one_time = _is_one_time(after)
    if rhythm is None or rhythm <= 0:  # as lifecycle: the customer's own mean gap, else the return window
        own = _num(after, "ipt_mean")
        rhythm = own if own is not None and own > 0 and not one_time else window
    p = _num(after, "p_alive")

    if stage == "prospect":
        return "known customer with no order yet"
    if stage == "new":
        age = _num(after, "T")
        age = since if age is None else age
        when = f", {_days(age)} days ago" if age is not None else ""
        return (f"first order{when}, within the shop's return window of {_days(window)} days "
                "(the time in which most returning customers come back)")
    if stage == "reactivated":
        gap = _num(after, "last_gap")
        usual = _num(after, "ipt_mean_before_last")
        usual_text = (f"usually every {_rhythm(usual)} days" if usual is not None and usual > 0
                      else f"returning customers usually come back within {_rhythm(window)} days")
        away = f"after {_days(gap)} days away" if gap is not None else "after a long time away"
        last = f"; last order {_days(since)} days ago" if since is not None and since > 0 else ""
        return f"ordered again {away} ({usual_text}){last}"

    if since is None:
        clause = "no order date known"
    elif one_time:
        clause = (f"one order so far, {_days(since)} days ago; returning customers usually come back within "
                  f"{_rhythm(rhythm or window)} days")
    elif stage == "active":
        clause = f"last order {_days(since)} days ago" + (f", usually every {_rhythm(rhythm)} days" if rhythm else "")
        was_since, gap = _num(before, "days_since_last"), _num(after, "last_gap")
        if was_since is not None and was_since > since and gap is not None:
            clause = f"ordered again after {_days(gap)} days; " + clause
    else:
        clause = f"no order in {_days(since)} days" + (f", usually every {_rhythm(rhythm)} days" if rhythm else "")
    if stage in multiples and since is not None and rhythm:
        limit = multiples[stage] * rhythm
        if since > limit:
            _, limit_text = _apart(_dec, since, limit, 1)
            clause += f" ({stage} after {limit_text} days)"
    p_text = _p_alive_clause(p, before, p_cuts.get(stage))
    return clause + (f"; {p_text}" if p_text else "")


# ----------------------------------------------------------------------------- RFM

def _score(v: float | None, cuts: list[float] | None, higher_is_better: bool) -> int | None:
    """The 1..5 score of `v` under quintile cut points, as `clientfolio.segments.rfm.quintile_score` does."""
    if v is None or cuts is None:
        return None
    bin_ = 1 + sum(c < v for c in cuts)
    return bin_ if higher_is_better else 6 - bin_


def _rfm(before: Row | None, after: Row, thresholds: Mapping, money: Money) -> str:
    def cuts_of(name: str) -> list[float] | None:
        c = _cuts(thresholds, "rfm_cuts", name)
        return c if c is not None and len(c) == 4 else None

    measures = [  # letter, value column, cut points, higher is better
        ("R", "days_since_last", cuts_of("recency"), False),
        ("F", "orders", cuts_of("orders"), True),
        ("M", "revenue", cuts_of("revenue"), True),
    ]

    def score(row: Row | None, letter: str, col: str, cuts: list[float] | None, hib: bool) -> int | None:
        s = _num(row, letter)
        if s is not None:
            return int(s)
        v = _num(row, col)
        if letter == "M" and v is not None and cuts is not None:  # money, compared as RFM compares it
            v, cuts = float(money_key(v)), money_key(cuts).tolist()
        return _score(v, cuts, hib)

    def value_text(letter: str, v: float) -> str:
        if letter == "R":
            return f"{_days(v)} days since the last order"
        if letter == "F":
            return _plural(v, "order")
        return f"{money(v, None)} spent"

    def need(letter: str, k: int, cuts: list[float]) -> str:
        if letter == "R":
            return f"R {k} needs {_days(cuts[5 - k])} days or fewer"
        return f"F {k} needs {_plural(math.floor(cuts[k - 2]) + 1, 'order')} or more"

    moved, plain = [], []
    for letter, col, cuts, hib in measures:
        now = score(after, letter, col, cuts, hib)
        was = score(before, letter, col, cuts, hib) if before is not None else None
        v = _num(after, col)
        if now is None:
            continue
        plain.append(f"{letter} {now}" + (f" ({value_text(letter, v)})" if v is not None else ""))
        if was is None or was == now or v is None:
            continue
        text = f"{letter} {'rose' if now > was else 'fell'} from {was} to {now}: {value_text(letter, v)}"
        deciding = now if now > was else was  # the score reached, or the one no longer met
        if cuts is not None and deciding >= 2:
            if letter == "M":
                v_text, cut_text = _money_apart(money, v, cuts[deciding - 2])
                text = (f"M {'rose' if now > was else 'fell'} from {was} to {now}: {v_text} spent "
                        f"(M {deciding} needs more than {cut_text})")
            else:
                text += f" ({need(letter, deciding, cuts)})"
        moved.append(text)
    if moved:
        return "; ".join(moved)
    return ", ".join(plain) if plain else "by recency, order count and spend"


# ----------------------------------------------------------------------------- value

def _value_tier(kind: str, before: Row | None, after: Row, thresholds: Mapping, money: Money) -> str:
    if kind == "value_tier":
        col = "clv"
        months = _one_number(thresholds, "horizon_months")
        what = f"predicted {_dec(months, 0)}-month value" if months else "predicted value"
    else:
        col, what = "revenue", "past spend"
    v = _num(after, col)
    shares = _cuts(thresholds, "value_tier_shares")
    top, nxt = shares if shares is not None and len(shares) == 2 else VALUE_TIER_SHARES
    top_line, mid_line = f"the top-{_dec(top * 100, 1)}% line", f"the top-{_dec((top + nxt) * 100, 1)}% line"
    cuts = _cuts(thresholds, "value_tier_cuts", kind)
    if v is None:
        return f"no {what} yet, which counts in the lowest tier"
    was = _num(before, col)
    was_text = f" (was {money(was, None)})" if was is not None and money(was, None) != money(v, None) else ""
    if cuts is None or len(cuts) != 2:
        return f"{what} {money(v, None)}{was_text}"
    hi, mid = cuts
    vk, hik, midk = (float(money_key(x)) for x in (v, hi, mid))  # compared as the tiers compare them
    if vk > hik:
        v_text, hi_text = _money_apart(money, v, hi)
        return f"{what} {v_text}{was_text} is above {top_line} ({hi_text})"
    if vk > midk:
        v_text, mid_text = _money_apart(money, v, mid)
        _, hi_text = _money_apart(money, v, hi)
        return f"{what} {v_text}{was_text} is above {mid_line} ({mid_text}), not above {top_line} ({hi_text})"
    v_text, mid_text = _money_apart(money, v, mid)
    return f"{what} {v_text}{was_text} is at or below {mid_line} ({mid_text})"


def _rate(after: Row) -> tuple[float | None, str]:
    rate = _num(after, "orders_per_month")
    return (rate, "orders a month") if rate is not None else (_num(after, "frequency"), "repeat orders")


def _frequency_tier(segment: str, before: Row | None, after: Row, thresholds: Mapping) -> str:
    orders = _num(after, "orders")
    if segment == "One-time" or (orders is not None and orders <= 1):
        return "one order so far" if orders in (None, 1) else _plural(orders, "order") + " so far"
    rate, unit = _rate(after)
    cut = _one_number(thresholds, "frequency_cut")
    first = "second order; " if _num(before, "orders") == 1 else ""
    count = f" over {_plural(orders, 'order')}" if orders is not None else ""
    if rate is None:
        return f"{first}{_plural(orders, 'order') if orders is not None else 'repeat buyer'}"
    if cut is None:
        return f"{first}{_dec(rate, 2)} {unit}{count}"
    r_text, c_text = _apart(_dec, rate, cut, 2)
    side = "at or above" if rate >= cut else "below"
    return f"{first}{r_text} {unit}{count}, {side} the frequent line ({c_text} {unit})"


def _profitability(after: Row, money: Money) -> str:
    rev, profit = _num(after, "revenue"), _num(after, "profit")
    if profit is None:
        return f"revenue {money(rev, None)}" if rev is not None else "profit unknown"
    gross, serve = _num(after, "gross_profit"), _num(after, "cost_to_serve")
    costs = []
    if rev is not None and gross is not None and round(rev - gross, 2) != 0:
        costs.append(f"{money(rev - gross, None)} cost of goods")
    if serve is not None and round(serve, 2) != 0:
        costs.append(f"{money(serve, None)} to serve")
    start = f"revenue {money(rev, None)}" if rev is not None else "their orders"
    start += f" less {' and '.join(costs)}" if costs else ""
    band = 0.02 * max(abs(rev), 1.0) if rev is not None else None
    if band is not None and abs(profit) <= band:
        return f"{start} leaves {money(profit, None)}, within 2% of revenue ({money(band, None)}) of break-even"
    if profit < 0:
        return f"{start} leaves a loss of {money(-profit, None)}"
    return f"{start} leaves a profit of {money(profit, None)}"


def _portfolio(before: Row | None, after: Row, thresholds: Mapping, money: Money) -> str:
    current, potential = _num(after, "value_12m"), _num(after, "clv")
    current, potential = current or 0.0, potential or 0.0  # as portfolio_quadrants: missing counts as 0
    parts = []
    for what, v, col, split in (("last 12 months' profit", current, "value_12m", "current"),
                                ("predicted value", potential, "clv", "potential")):
        cut = _one_number(thresholds, "quadrant_splits", split)
        was = _num(before, col)
        notes = []
        if cut is not None:
            v_text, cut_text = _money_apart(money, v, cut)
            notes.append(f"median {cut_text}")
        else:
            v_text = money(v, None)
        if was is not None and money(was, None) != money(v, None):
            notes.append(f"was {money(was, None)}")
        parts.append(f"{what} {v_text}" + (f" ({'; '.join(notes)})" if notes else ""))
    return " and ".join(parts)


# ----------------------------------------------------------------------------- behaviour

def _category(segment: str, after: Row) -> str:
    top = _text(after, "top_category")
    shares = {k[len("share_"):]: _num(after, k) for k in after.keys() if str(k).startswith("share_")}
    shares = {k: v for k, v in shares.items() if v is not None}
    if top is None and shares:
        top = max(shares, key=lambda k: shares[k])
    share = shares.get(top) if top is not None else None
    name = top.replace("_", " ") if top else None
    if segment != "Mixed basket":
        if share is None:
            return f"{name or segment.removesuffix(' lovers').lower()} is their favourite category"
        s_text, c_text = _apart(_pct, share, CATEGORY_SHARE, 0)
        return f"{s_text} of their spend is on {name} ({c_text} or more makes a favourite)"
    if share is None:
        return f"no category is {_pct(CATEGORY_SHARE)} of their spend"
    s_text, c_text = _apart(_pct, share, CATEGORY_SHARE, 0)
    return f"no category is {c_text} of their spend (largest: {name} at {s_text})"


def _discount(segment: str, after: Row) -> str:
    share = _num(after, "discount_share")
    if share is None:
        return "no discounted spend recorded"
    s_text, c_text = _apart(_pct, share, DISCOUNT_SHARE, 0)
    side = "at or above" if round(share, 9) >= DISCOUNT_SHARE else "below"  # as the segment compares it
    return f"{s_text} of their spend is on discounted lines, {side} the {c_text} that makes a value seeker"


def _occasions(segment: str, after: Row) -> str:
    gift, december = _num(after, "gift_share"), _num(after, "december_share")
    found = [(v, w) for v, w in ((gift, "on gifts"), (december, "in December")) if v is not None]
    if not found:
        return "no gift or December spend recorded"
    share, where = max(found)
    s_text, c_text = _apart(_pct, share, OCCASION_SHARE, 0)
    side = "at or above" if round(share, 9) >= OCCASION_SHARE else "below"  # as the segment compares it
    return f"{s_text} of their spend is {where}, {side} the {c_text} that makes a gift and seasonal buyer"


def _carts(after: Row) -> str:
    n = _num(after, "cart_abandons")
    if n is None:
        return "no cart events recorded"
    side = f"{CART_ABANDONS} or more" if n >= CART_ABANDONS else f"fewer than {CART_ABANDONS}"
    return f"{_plural(n, 'abandoned cart')} ({side} makes a cart abandoner)"


def _support(after: Row) -> str:
    tickets, orders = _num(after, "support_tickets"), _num(after, "orders")
    if tickets is None:
        return "no support tickets recorded"
    over = f" over {_plural(orders, 'order')}" if orders is not None else ""
    rule = f"{SUPPORT_TICKETS} or more and at least one per {ORDERS_PER_TICKET} orders makes support-heavy"
    return f"{_plural(tickets, 'support ticket')}{over} ({rule})"


# ----------------------------------------------------------------------------- public

def explain(kind: str, before: Row | None, after: Row, thresholds: Mapping, currency: str = "") -> str:
    """Why the customer is now in ``after["segment"]`` of segment kind `kind`, with the numbers that decided it.

    Parameters
    ----------
    kind
        The segment kind (``lifecycle``, ``rfm``, ``value_tier``, ... as in :mod:`clientfolio.segments`).
    before, after
        The customer's row before and after the change (``before`` None when unknown): "segment"
        (None when not a member) and the customer's columns (``days_since_last``, ``rhythm_days``,
        ``p_alive``, ``orders``, ``revenue``, ``clv``, ``value_12m``, ``R``/``F``/``M``, ...).
        Missing columns leave their clause out.
    thresholds
        The fitted thresholds: ``rfm_cuts`` {recency, orders, revenue: 4 cut points each},
        ``value_tier_cuts`` {value_tier, historical_value_tier: [top, next]}, ``frequency_cut``
        (orders a month), ``return_window`` (days), ``quadrant_splits`` {current, potential},
        ``lifecycle`` {p_alive: {stage: cut}, rhythms: {stage: multiple}}; optional
        ``horizon_months`` (named in "predicted 12-month value") and ``value_tier_shares``
        (default 0.2, 0.3: the "top-20% line").
    currency
        The shop's currency code or symbol ("GBP", "£"); empty: amounts in the file's currency.

    >>> explain("lifecycle", None, {"segment": "at risk", "days_since_last": 74, "rhythm_days": 21,
    ...         "frequency": 5, "p_alive": 0.31}, {})
    'no order in 74 days, usually every 21 days (at risk after 42 days); P(alive) 0.31 (below 0.70)'
    """
    segment = _text(after, "segment")
    if segment is None:
        return f"no longer in a {kind_label(kind).lower()} segment"
    prefix = currency_prefix(currency)
    money = _money_fn(prefix)
    thresholds = thresholds if isinstance(thresholds, Mapping) else {}
    if kind == "lifecycle":
        return _lifecycle(segment, before, after, thresholds)
    if kind == "rfm":
        return _rfm(before, after, thresholds, money)
    if kind in ("value_tier", "historical_value_tier"):
        return _value_tier(kind, before, after, thresholds, money)
    if kind == "frequency_tier":
        return _frequency_tier(segment, before, after, thresholds)
    if kind == "profitability":
        return _profitability(after, money)
    if kind == "portfolio":
        return _portfolio(before, after, thresholds, money)
    if kind == "cluster":
        return (f"buys most like the '{segment}' group: of the groups found in the customer base, "
                "their behaviour is nearest to this group's centre")
    if kind in ("rules", "rule"):
        return f"matches the rule '{segment}'"
    if kind == "category_preference":
        return _category(segment, after)
    if kind == "channel_preference":
        return f"most of their orders go through {segment}"
    if kind == "discount_reliance":
        return _discount(segment, after)
    if kind == "occasions":
        return _occasions(segment, after)
    if kind == "cart_abandoners":
        return _carts(after)
    if kind == "support":
        return _support(after)
    return f"in '{segment}' by the {str(kind).replace('_', ' ')} rules"


def describe_change(kind: str, before: Row | None, after: Row, thresholds: Mapping, currency: str = "") -> str:
    """One sentence for a change: "entered At Risk: <reason>", "left Active for At Risk: <reason>", "left X".

    A row whose segment did not change reads "still in X: <reason>".
    """
    was, now = _text(before, "segment"), _text(after, "segment")
    if now is None:
        return f"left {segment_label(kind, was)}" if was is not None else "not in a segment"
    reason = explain(kind, before, after, thresholds, currency)
    name = segment_label(kind, now)
    if was is None:
        return f"entered {name}: {reason}"
    if was == now:
        return f"still in {name}: {reason}"
    return f"left {segment_label(kind, was)} for {name}: {reason}"
