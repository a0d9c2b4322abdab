"""What is in each bakery order: channel, time, basket, price, discounts, cost to serve, refunds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._bakery_people import B2B, CHANNELS, REGULAR, TOURIST, Population, _choose_rows
from ._bakery_timeline import (
    AFTERNOON,
    BIRTHDAY,
    CELEBRATION,
    LATE,
    LUNCH,
    MORNING,
    TREAT,
    VISIT,
    WHOLESALE,
    Timeline,
)
from ._bakery_world import (
    B2B_INDUSTRIES,
    B2B_PRODUCT_AFFINITY,
    COST_RISE,
    EASTER,
    MOTHERS,
    PRICE_RISE,
    PRODUCTS,
    REGIONS,
    SLOTS,
    VALENTINE,
    XMAS,
    Calendar,
)

IN_STORE, CLICK_COLLECT, WHOLESALE_INVOICE = 0, 1, 2
ORDER_CHANNELS: tuple[str, ...] = ("in_store", "click_collect", "wholesale")

# seasonal products: weight inside their season (zero outside)
SEASONAL_WEIGHT = {"mince_pie": 2.5, "hot_cross_buns": 3.0, "christmas_hamper": 1.5}
WHOLE_CAKE_CONTEXT = {  # whole-cake choice per context: NORMAL, XMAS, EASTER, MOTHERS, VALENTINE, birthday
    "birthday_cake": (1.0, 0.3, 0.4, 0.2, 0.2, 2.0),
    "chocolate_cake": (1.0, 0.3, 0.4, 0.4, 0.6, 0.8),
    "lemon_cake": (0.7, 0.1, 0.4, 0.4, 0.2, 0.3),
    "christmas_cake": (0, 1.2, 0, 0, 0, 0),
    "yule_log": (0, 1.0, 0, 0, 0, 0),
    "stollen": (0, 1.3, 0, 0, 0, 0),
    "simnel_cake": (0, 0, 1.5, 0, 0, 0),
    "mothers_day_cake": (0, 0, 0, 2.5, 0, 0),
    "heart_cake": (0, 0, 0, 0, 1.5, 0),
}
PRODUCT_IDS = [p[0] for p in PRODUCTS]
PRODUCT_SLOT = np.array([p[3] for p in PRODUCTS])


@dataclass
class Orders:
    """Orders in chronological order (index = order number - 1) and their lines."""

    cust: np.ndarray
    day: np.ndarray  # local day index in the calendar
    utc: np.ndarray  # int64 seconds since the epoch
    channel: np.ndarray
    occasion: np.ndarray
    cost_to_serve: np.ndarray  # pence
    line_order: np.ndarray
    line_product: np.ndarray
    line_qty: np.ndarray
    line_amount: np.ndarray  # pence
    line_cost: np.ndarray
    line_discount: np.ndarray
    line_gift: np.ndarray


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def _hours(rng: np.random.Generator, occ: np.ndarray) -> np.ndarray:
    n = len(occ)
    h = np.select(
        [occ == MORNING, occ == LUNCH, occ == AFTERNOON, occ == LATE, occ == TREAT,
         (occ == CELEBRATION) | (occ == BIRTHDAY), occ == VISIT],
        [np.clip(rng.normal(8.1, 0.75, n), 7.0, 10.8), rng.uniform(11.8, 14.2, n),
         rng.uniform(14.2, 16.4, n), rng.uniform(16.5, 17.9, n), rng.triangular(9.5, 13.5, 17.0, n),
         rng.triangular(9.0, 12.0, 17.0, n), np.clip(rng.normal(12.5, 2.0, n), 8.0, 17.8)],
        rng.uniform(5.5, 7.0, n))  # wholesale deliveries are invoiced at dawn
    return h


def fill_orders(rng: np.random.Generator, cal: Calendar, pop: Population, tl: Timeline) -> Orders:
    """Channels, times, baskets, prices, discounts and cost to serve of every order."""
    cust, day, occ = tl.cust, tl.day, tl.occasion
    ct = pop.ctype[cust]
    n = len(cust)
    # ---- channel and time of day (local), then UTC
    p_web = np.select([ct == REGULAR, occ == TREAT, (occ == CELEBRATION) | (occ == BIRTHDAY), ct == TOURIST],
                      [pop.web_share[cust], pop.web_share[cust] * 0.3,
                       np.minimum(0.9, 2 * pop.web_share[cust]), 0.02], 0.0)
    p_web = np.where(occ == LATE, 0.0, p_web)
    channel = np.where(ct == B2B, WHOLESALE_INVOICE, np.where(rng.random(n) < p_web, CLICK_COLLECT, IN_STORE))
    hour = _hours(rng, occ)
    hour = np.where(channel == CLICK_COLLECT, rng.uniform(7.0, 22.5, n), hour)
    sunday_store = (cal.dow[day] == 6) & (channel == IN_STORE)
    hour = np.where(sunday_store, 8 + (hour - 7) * 8 / 11, hour)  # Sundays 08:00-16:00
    markdown = (channel == IN_STORE) & (((cal.dow[day] < 6) & (hour >= 16.5)) | (sunday_store & (hour >= 15.0)))
    utc = cal.days[day] * 86400 + _round_half_up(hour * 3600) - 3600 * cal.bst[day]
    order = np.lexsort((cust, utc))
    cust, day, occ, ct, channel, utc, markdown = (a[order] for a in (cust, day, occ, ct, channel, utc, markdown))

    # ---- retail baskets: which slots, which products, how many
    season = cal.season[day]
    ap, ab = pop.pastry_aff[cust], pop.bread_aff[cust]
    xm = season == XMAS
    P = np.zeros((n, len(SLOTS)))
    rows = {  # occasion: (drink, pastry, bread, savoury, cake_slice, whole_cake, gift)
        MORNING: (0.93, ap, ab, 0.02, 0.03, 0, 0),
        LUNCH: (0.7, 0.1, 0.5 * ab, 0.95, 0.15, 0, 0),
        AFTERNOON: (0.9, 0.6 * ap, 0.7 * ab, 0.05, 0.45, 0, 0),
        LATE: (0.3, 0.75, 0.6, 0.1, 0.1, 0, 0),
        TREAT: (0.7, 0.35, 0.15, 0.15, 0.8, 0, np.where(xm, 0.2, 0.02)),
        CELEBRATION: (0.15, 0.2, 0.1, 0, 0.05, 0.92, np.select([xm, season == MOTHERS], [0.35, 0.1], 0.03)),
        BIRTHDAY: (0.1, 0.15, 0, 0, 0, 1.0, 0),
        VISIT: (0.85, ap, 0.08, 0.35, 0.3, 0, np.where(xm, 0.15, 0.05)),
    }
    primary = {MORNING: 0, LUNCH: 3, AFTERNOON: 0, LATE: 1, TREAT: 4, CELEBRATION: 5, BIRTHDAY: 5, VISIT: 0}
    for o_code, probs in rows.items():
        m = occ == o_code
        for s, p in enumerate(probs):
            P[m, s] = (p[m] if isinstance(p, np.ndarray) else p)
    P[:, 1] = np.minimum(1.0, P[:, 1] + np.where(season == EASTER, 0.25, np.where(xm, 0.1, 0.0)) * (P[:, 1] > 0))
    inc = rng.random(P.shape) < P
    empty = ~inc.any(axis=1) & (occ != WHOLESALE)
    prim = np.array([primary.get(int(o), 0) for o in range(9)])[occ]
    inc[np.flatnonzero(empty), prim[empty]] = True

    group = np.where(np.isin(occ, [TREAT, VISIT]), 1 + rng.poisson(np.where(occ == TREAT, 0.9, 0.8)),
                     np.where(np.isin(occ, [CELEBRATION, BIRTHDAY]), 1, 1 + (rng.random(n) < 0.12)))
    line_o, line_p, line_q, line_s = [], [], [], []
    wc_ctx = np.where(occ == BIRTHDAY, 5, season)
    for s, slot in enumerate(SLOTS):
        idx = np.flatnonzero(inc[:, s])
        prods = np.flatnonzero(PRODUCT_SLOT == slot)
        if slot == "whole_cake":
            W = np.array([WHOLE_CAKE_CONTEXT[PRODUCT_IDS[j]] for j in prods]).T[wc_ctx[idx]]
        else:
            W = _slot_weights(prods)[season[idx]]
        choice = prods[_choose_rows(rng, W)]
        g = group[idx]
        if slot == "drink":
            fav = np.flatnonzero(PRODUCT_SLOT == "drink")[pop.fav_drink[cust[idx]]]
            use_fav = (ct[idx] == REGULAR) & (rng.random(len(idx)) < 0.8)
            choice = np.where(use_fav, fav, choice)
            q = np.where(np.isin(occ[idx], [TREAT, VISIT]), np.maximum(1, rng.binomial(g, 0.85)), g)
        elif slot == "pastry":
            q = 1 + rng.poisson(np.where(occ[idx] == LATE, 1.2, 0.2 + 0.4 * (g - 1)))
        elif slot == "savoury":
            q = np.where(occ[idx] == LUNCH, g, 1 + rng.poisson(0.3 * (g - 1)))
        elif slot == "cake_slice":
            q = np.maximum(1, rng.binomial(g, 0.8))
        elif slot in ("bread", "gift"):
            q = 1 + (rng.random(len(idx)) < (0.12 if slot == "bread" else 0.15))
        else:
            q = np.ones(len(idx), np.int64)
        line_o.append(idx)
        line_p.append(choice)
        line_q.append(q)
        line_s.append(np.full(len(idx), s))

    # ---- wholesale standing orders
    wo, wp, wq = _wholesale_lines(rng, cal, pop, cust, day, occ)
    line_o.append(wo)
    line_p.append(wp)
    line_q.append(wq)
    line_s.append(np.zeros(len(wo), np.int64))
    lo, lp, lq, ls = (np.concatenate(x).astype(np.int64) for x in (line_o, line_p, line_q, line_s))
    srt = np.lexsort((lp, ls, lo))
    lo, lp, lq = lo[srt], lp[srt], lq[srt]

    # ---- prices, discounts, cost
    step = cal.price_step[day[lo]]
    base_price = np.array([p[4] for p in PRODUCTS], float)
    base_cost = np.array([p[5] for p in PRODUCTS], float)
    unit = (_round_half_up(base_price[lp] * PRICE_RISE ** step / 5) * 5)
    unit_cost = _round_half_up(base_cost[lp] * COST_RISE ** step)
    gross = unit * lq
    disc = np.zeros(len(lo), np.int64)
    lc = cust[lo]
    # loyalty card: every 10th hot drink is free
    drink = (PRODUCT_SLOT[lp] == "drink") & pop.has_card[lc]
    di = np.flatnonzero(drink)
    by_c = di[np.lexsort((di, lc[di]))]
    cq = np.cumsum(lq[by_c])
    first = np.r_[True, lc[by_c][1:] != lc[by_c][:-1]]
    offset = np.maximum.accumulate(np.where(first, cq - lq[by_c], 0))
    after = cq - offset
    free = np.minimum(after // 10 - (after - lq[by_c]) // 10, lq[by_c])
    disc[by_c] += free * unit[by_c]
    # end-of-day markdown: pastries and bread half price in store from 16:30 (Sundays 15:00)
    md = markdown[lo] & np.isin(PRODUCT_SLOT[lp], ["pastry", "bread"])
    disc[md] += _round_half_up((gross[md] - disc[md]) * 0.5)
    # promo codes on the web shop (deal seekers nearly always use one)
    mo, dm = cal.month[day], cal.dom[day]
    promo = np.select([(mo == 1) & (dm >= 2), cal.season[day] == EASTER,
                       ((mo == 11) & (dm >= 20)) | ((mo == 12) & (dm <= 10))],
                      [0.15, 0.10, 0.10], 0.0)
    web = channel == CLICK_COLLECT
    first_web = web & ~_seen_before(cust, web)
    paid_acq = np.isin(pop.channel[cust], [CHANNELS.index("instagram"), CHANNELS.index("google_ads")])
    promo = np.where(first_web & paid_acq & (promo == 0), 0.10, promo)
    uses = rng.random(n) < np.where(pop.deal_seeker[cust], 0.9, np.where(first_web & paid_acq, 0.7, 0.2))
    rate = np.where(web & uses, promo, 0.0)
    rate = np.where(channel == WHOLESALE_INVOICE, np.choose(np.maximum(pop.size[cust], 0), [0.03, 0.06, 0.10]), rate)
    disc += _round_half_up((gross - disc) * rate[lo])
    amount = gross - disc
    cost = unit_cost * lq
    gift = PRODUCT_SLOT[lp] == "gift"
    wc = PRODUCT_SLOT[lp] == "whole_cake"
    p_gift = np.select([season[lo] == MOTHERS, season[lo] == VALENTINE, season[lo] == XMAS], [0.5, 0.5, 0.25], 0.1)
    gift |= wc & (occ[lo] != BIRTHDAY) & (rng.random(len(lo)) < p_gift)

    # ---- cost to serve per order: payment fees, packaging, delivery
    net = np.bincount(lo, weights=amount, minlength=n)
    boxed = np.bincount(lo, weights=(wc | (PRODUCT_SLOT[lp] == "gift")), minlength=n) > 0
    cash = rng.random(n) < pop.pays_cash[cust]
    delivery = np.array([r[5] for r in REGIONS])[pop.region[cust]]
    cts = np.select([channel == IN_STORE, channel == CLICK_COLLECT],
                    [_round_half_up(net * np.where(cash, 0.008, 0.0169)),
                     _round_half_up(net * 0.014) + 20 + np.where(boxed, 120, 35)],
                    delivery + 150 + _round_half_up(net * 0.01))
    return Orders(cust, day, utc, channel, occ, cts, lo, lp, lq, amount, cost, disc, gift)


def _seen_before(cust: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """True where an earlier row (in array order) of the same customer also has ``mask``."""
    idx = np.flatnonzero(mask)
    out = np.zeros(len(cust), bool)
    srt = idx[np.lexsort((idx, cust[idx]))]
    out[srt[1:]] = cust[srt[1:]] == cust[srt[:-1]]
    return out


def _slot_weights(prods: np.ndarray) -> np.ndarray:
    """(season x product) choice weights for a slot: popularity, seasonal lines only in season."""
    codes = {"": None, "xmas": XMAS, "easter": EASTER, "mothers": MOTHERS, "valentine": VALENTINE}
    W = np.zeros((5, len(prods)))
    for k, j in enumerate(prods):
        pid, season, pop = PRODUCTS[j][0], PRODUCTS[j][7], PRODUCTS[j][6]
        if season == "":
            W[:, k] = pop
        else:
            W[codes[season], k] = SEASONAL_WEIGHT.get(pid, 1.0)
    return W


def _wholesale_lines(rng: np.random.Generator, cal: Calendar, pop: Population, cust: np.ndarray,
                     day: np.ndarray, occ: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ws = np.flatnonzero(PRODUCT_SLOT == "wholesale")
    b = np.flatnonzero(pop.ctype == B2B)
    size_scale = np.array([1.0, 2.2, 5.0])
    base = np.zeros((pop.n, len(ws)))
    growth = np.zeros(pop.n)
    for i in b:
        aff = B2B_PRODUCT_AFFINITY[B2B_INDUSTRIES[pop.industry[i]]]
        pw = np.array([aff[PRODUCTS[j][0]] for j in ws], float)
        n_std = int(rng.integers(3, 7))  # products on the standing order
        chosen = rng.choice(len(ws), n_std, replace=False, p=pw / pw.sum())
        units = np.array([PRODUCTS[j][6] for j in ws])[chosen]
        base[i, chosen] = np.maximum(1, np.round(size_scale[pop.size[i]] * units
                                                 * np.exp(rng.normal(0, 0.35, n_std))))
        growth[i] = rng.normal(0.05, 0.12)
    oi = np.flatnonzero(occ == WHOLESALE)
    c, d = cust[oi], day[oi]
    ind = np.array(B2B_INDUSTRIES)[pop.industry[c]]
    summer, dec, jan = cal.summer[d], cal.month[d] == 12, cal.month[d] == 1
    season = np.ones(len(oi))
    season *= np.where(summer, np.select([np.isin(ind, ["cafe", "hotel", "deli"]), ind == "office_canteen",
                                          ind == "caterer"], [1.3, 0.6, 1.2], 1.1), 1.0)
    season *= np.where(dec, np.select([np.isin(ind, ["restaurant"]), ind == "caterer", ind == "office_canteen"],
                                      [1.3, 1.5, np.where(cal.dom[d] >= 20, 0.3, 1.0)], 1.1), 1.0)
    season *= np.where(jan, 0.85, 1.0)
    years = (d - pop.acq_day[c]) / 365.25
    trend = (1 + growth[c]) ** years
    B = base[c]
    take = (B > 0) & (rng.random(B.shape) < 0.92)
    none = ~take.any(axis=1)
    take[np.flatnonzero(none), np.argmax(B[none], axis=1)] = True
    qty = np.maximum(1, np.round(B * (season * trend)[:, None] * np.exp(rng.normal(0, 0.18, B.shape))))
    r, k = np.nonzero(take)
    return oi[r], ws[k], qty[r, k].astype(np.int64)


@dataclass
class Refunds:
    """Refund lines: each refunds part of one earlier order (its index in :class:`Orders`)."""

    order: np.ndarray
    utc: np.ndarray
    product: np.ndarray
    qty: np.ndarray  # negative
    amount: np.ndarray  # negative pence


def make_refunds(rng: np.random.Generator, cal: Calendar, pop: Population, orders: Orders, end_utc: int
                 ) -> Refunds:
    """A few damaged cakes, wrong orders and short wholesale deliveries, refunded days later."""
    n = len(orders.cust)
    lo, la = orders.line_order, orders.line_amount
    has_cake = np.bincount(lo, weights=PRODUCT_SLOT[orders.line_product] == "whole_cake", minlength=n) > 0
    z = pop.z[orders.cust]
    p = np.select([orders.channel == WHOLESALE_INVOICE, (orders.channel == CLICK_COLLECT) & has_cake],
                  [0.012, 0.03], 0.0008) * np.exp(-0.3 * z)
    picked = np.flatnonzero(rng.random(n) < p)
    wholesale = orders.channel[picked] == WHOLESALE_INVOICE
    # staff refund during opening hours: wholesale the same morning, retail within 3 days
    day = orders.day[picked] + np.where(wholesale, 0, rng.integers(0, 4, len(picked)))
    hour = rng.uniform(9.0, 17.5, len(picked))
    for _ in range(6):  # move past the order itself and past closed days
        d = np.minimum(day, cal.n_days - 1)
        utc = cal.days[d] * 86400 + _round_half_up(hour * 3600) - 3600 * cal.bst[d]
        bump = (utc <= orders.utc[picked]) | cal.closed[d]
        if not bump.any():
            break
        day = day + bump
    utc = np.where(day < cal.n_days, utc, end_utc)  # past the end: dropped below
    # the refunded line: the dearest line for retail, a random line short-delivered for wholesale
    starts = np.searchsorted(lo, picked)
    counts = np.searchsorted(lo, picked, side="right") - starts
    dearest = np.array([s + int(np.argmax(la[s:s + c])) for s, c in zip(starts, counts)], np.int64)
    any_line = starts + np.floor(rng.random(len(picked)) * counts).astype(np.int64)
    line = np.where(wholesale, any_line, dearest)
    q = orders.line_qty[line]
    short = np.maximum(1, np.ceil(q * rng.uniform(0.1, 0.35, len(picked)))).astype(np.int64)
    rq = np.where(wholesale, short, q)
    ramount = _round_half_up(la[line] * rq / q)
    keep = (utc < end_utc) & (ramount > 0)
    return Refunds(picked[keep], utc[keep], orders.line_product[line][keep], -rq[keep], -ramount[keep])
