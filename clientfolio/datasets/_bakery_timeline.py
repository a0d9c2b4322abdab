"""When each bakery customer buys: the purchase, dropout and reactivation processes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._bakery_people import B2B, CHANNELS, OCCASIONAL, REGULAR, TOURIST, Population, _choose_rows
from ._bakery_world import B2B_INDUSTRIES, Calendar

# occasions: why an order happens (drives basket, time of day and channel)
MORNING, LUNCH, AFTERNOON, LATE, TREAT, CELEBRATION, BIRTHDAY, VISIT, WHOLESALE = range(9)

# day-of-week profiles (Mon..Sun) of the retail purchase processes
DOW = {
    REGULAR: np.array([1.12, 1.12, 1.12, 1.12, 1.10, 0.85, 0.55]),
    OCCASIONAL: np.array([0.60, 0.60, 0.65, 0.70, 0.95, 1.90, 1.60]),
    TOURIST: np.array([0.85, 0.85, 0.85, 0.90, 1.10, 1.40, 1.20]),
}


def day_weights(cal: Calendar) -> dict[int, np.ndarray]:
    """Relative purchase intensity per day for each retail type (mean 1 over the window)."""
    out = {}
    holiday = 1 + 8 * cal.xmas_ramp + 2.5 * cal.easter + 3 * cal.mothers + 1.5 * cal.valentine
    late_dec = (cal.month == 12) & (cal.dom >= 27)
    w_reg = DOW[REGULAR][cal.dow] * np.where(cal.month == 8, 0.85, 1.0) * np.where(late_dec, 0.6, 1.0)
    w_occ = DOW[OCCASIONAL][cal.dow] * holiday * np.where(cal.summer, 0.85, 1.0)
    xmas_market = (cal.month == 12) & (cal.dom <= 23)
    w_tour = DOW[TOURIST][cal.dow] * (0.5 + 2.5 * cal.summer + 1.2 * cal.easter_hols + 0.8 * xmas_market)
    for t, w in ((REGULAR, w_reg), (OCCASIONAL, w_occ), (TOURIST, w_tour)):
        w = np.where(cal.closed, 0.0, w)
        out[t] = w / w.mean()
    return out


@dataclass
class Timeline:
    """Orders before baskets are filled, plus each customer's true activity windows (days)."""

    cust: np.ndarray
    day: np.ndarray
    occasion: np.ndarray
    rate: np.ndarray  # true purchase rate per week (first spell)
    dropout: np.ndarray  # Pareto/NBD mu per week (regulars, B2B) or BG/NBD p (occasional)
    alive: np.ndarray  # (n, 4) float days: [start1, end1, start2, end2]; end = inf if alive at the end


def _poisson_days(rng: np.random.Generator, w: np.ndarray, a: np.ndarray, b: np.ndarray,
                  rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days of a non-homogeneous Poisson process with intensity rate_i * w(day) on [a_i, b_i)."""
    cum = np.concatenate([[0.0], np.cumsum(w)])
    D = len(w)

    def F(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0, D)
        i = np.minimum(np.floor(x).astype(np.int64), D - 1)
        return cum[i] + (x - i) * w[i]

    fa, fb = F(a), F(b)
    counts = rng.poisson(rate * np.maximum(fb - fa, 0.0))
    owner = np.repeat(np.arange(len(a)), counts)
    u = fa[owner] + rng.random(len(owner)) * (fb - fa)[owner]
    day = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, D - 1)
    return owner, day


def make_timeline(rng: np.random.Generator, cal: Calendar, pop: Population,
                  w: dict[int, np.ndarray]) -> Timeline:
    D = cal.n_days
    n = pop.n
    custs: list[np.ndarray] = [np.arange(n)]  # everybody's first order, on the acquisition day
    days: list[np.ndarray] = [pop.acq_day]
    rate = np.zeros(n)
    dropout = np.zeros(n)
    alive = np.full((n, 4), np.nan)
    alive[:, 0] = pop.acq_day
    referral = pop.channel == CHANNELS.index("referral")
    sat = np.exp(-0.35 * pop.z - 0.35**2 / 2)  # unhappy customers leave sooner (mean 1)

    # regulars: Pareto/NBD -- Poisson purchases, exponential lifetime, gamma heterogeneity in both
    r = np.flatnonzero(pop.ctype == REGULAR)
    lam = np.clip(rng.gamma(1.6, 1.6 / 1.6, len(r)), 0.2, 8.0)
    mu = rng.gamma(1.2, (1 / 100) / 1.2, len(r)) * sat[r] * np.where(referral[r], 0.75, 1.0)
    tau = rng.exponential(1.0 / mu) * 7
    start, end = pop.acq_day[r] + 1.0, np.minimum(pop.acq_day[r] + 1.0 + tau, D)
    o, d = _poisson_days(rng, w[REGULAR], start, end, lam / 7)
    custs.append(r[o])
    days.append(d)
    rate[r], dropout[r] = lam, mu
    death = pop.acq_day[r] + 1.0 + tau
    alive[r, 1] = np.where(death < D, np.ceil(death), np.inf)  # purchases are drawn per day
    # some lapsed regulars come back after a gap, buying less often, with a fresh lifetime
    back = (death < D - 56) & (rng.random(len(r)) < 0.15)
    s2 = np.floor(death + rng.uniform(56, 280, len(r)))
    back &= s2 < D - 7
    s2 = s2[back]
    for _ in range(2):  # never restart on a closed day (25 and 26 December)
        s2 = s2 + cal.closed[np.minimum(s2, D - 1).astype(np.int64)]
    tau2 = rng.exponential(1.0 / (mu[back] * 1.5)) * 7
    o2, d2 = _poisson_days(rng, w[REGULAR], s2 + 1, np.minimum(s2 + 1 + tau2, D),
                           lam[back] * rng.uniform(0.4, 0.9, int(back.sum())) / 7)
    custs += [r[back], r[back][o2]]
    days += [s2.astype(np.int64), d2]
    alive[r[back], 2] = s2
    alive[r[back], 3] = np.where(s2 + 1 + tau2 < D, np.ceil(s2 + 1 + tau2), np.inf)

    # occasional buyers: BG/NBD -- Poisson purchases, drop out after each repeat purchase with prob p
    c = np.flatnonzero(pop.ctype == OCCASIONAL)
    lam_c = rng.gamma(0.9, 0.09 / 0.9, len(c))
    p = np.clip(rng.beta(1.2, 3.5, len(c)) * np.exp(-0.3 * pop.z[c]) * np.where(referral[c], 0.75, 1.0),
                0.02, 0.95)
    max_repeats = rng.geometric(p)
    o, d = _poisson_days(rng, w[OCCASIONAL], pop.acq_day[c] + 1.0, np.full(len(c), float(D)), lam_c / 7)
    order = np.lexsort((d, o))
    o, d = o[order], d[order]
    rank = np.arange(len(o)) - np.searchsorted(o, o)
    keep = rank < max_repeats[o]
    died = rank == max_repeats[o] - 1
    death_c = np.full(len(c), np.inf)
    death_c[o[died]] = d[died] + 0.999
    custs.append(c[o[keep]])
    days.append(d[keep])
    rate[c], dropout[c] = lam_c, p
    alive[c, 1] = death_c
    # birthday cakes in the birthday month while still a customer
    bday_c, bday_d = [], []
    bm = pop.birthday_month[c]
    for y in range(int(cal.year[0]), int(cal.year[-1]) + 1):
        for m in range(1, 13):
            in_month = np.flatnonzero((cal.year == y) & (cal.month == m) & ~cal.closed)
            who = np.flatnonzero((bm == m) & (rng.random(len(c)) < 0.5))
            if len(in_month) == 0 or len(who) == 0:
                continue
            pick = in_month[_choose_rows(rng, np.tile(DOW[OCCASIONAL][cal.dow[in_month]], (len(who), 1)))]
            ok = (pick > pop.acq_day[c[who]]) & (pick < death_c[who])
            bday_c.append(c[who[ok]])
            bday_d.append(pick[ok])
    n_bday = sum(len(x) for x in bday_c)

    # tourists: one visit, a few stay some days and come back once or twice during the stay
    t = np.flatnonzero(pop.ctype == TOURIST)
    extra = (rng.random(len(t)) < 0.3) * (1 + (rng.random(len(t)) < 0.35))
    stay = rng.integers(1, 7, len(t))
    te = np.repeat(t, extra)
    td = pop.acq_day[te] + 1 + np.floor(rng.random(len(te)) * np.repeat(stay, extra)).astype(np.int64)
    ok = td < D
    ok[ok] &= ~cal.closed[td[ok]]
    custs.append(te[ok])
    days.append(td[ok])
    last_visit = np.full(len(t), 0.0) + pop.acq_day[t]
    np.maximum.at(last_visit, np.searchsorted(t, te[ok]), td[ok])
    alive[t, 1] = last_visit + 0.999

    # wholesale accounts: a standing order on fixed weekdays until they switch supplier
    b = np.flatnonzero(pop.ctype == B2B)
    tau_b = rng.exponential(6 * 365 * np.exp(0.4 * pop.z[b]))
    n_days = np.choose(pop.size[b], [rng.integers(1, 3, len(b)), rng.integers(2, 4, len(b)),
                                     rng.integers(3, 6, len(b))])
    for k, i in enumerate(b):
        dow_w = np.array([1, 1, 1, 1, 1, 0.5, 0.0])
        if B2B_INDUSTRIES[pop.industry[i]] == "hotel":
            dow_w = np.array([1, 1, 1, 1, 1, 1, 0.6])
        dow_w[cal.dow[pop.acq_day[i]]] = 0
        others = rng.choice(7, n_days[k] - 1, replace=False, p=dow_w / dow_w.sum())
        sched = np.zeros(7, bool)
        sched[others] = True
        sched[cal.dow[pop.acq_day[i]]] = True
        stop = min(pop.acq_day[i] + tau_b[k], D)
        dd = np.arange(pop.acq_day[i] + 1, int(np.ceil(stop)))
        dd = dd[sched[cal.dow[dd]] & ~cal.closed[dd] & (rng.random(len(dd)) < 0.96)]
        custs.append(np.full(len(dd), i))
        days.append(dd)
        rate[i] = sched.sum() * 0.96
        dropout[i] = 7 / (6 * 365 * np.exp(0.4 * pop.z[i]))
        alive[i, 1] = np.ceil(stop) if pop.acq_day[i] + tau_b[k] < D else np.inf

    cust = np.concatenate(custs + bday_c)
    day = np.concatenate(days + bday_d).astype(np.int64)
    occasion = _occasions(rng, cal, pop, cust, day)
    if n_bday:
        occasion[len(occasion) - n_bday:] = BIRTHDAY
    return Timeline(cust, day, occasion, rate, dropout, alive)


def _occasions(rng: np.random.Generator, cal: Calendar, pop: Population, cust: np.ndarray,
               day: np.ndarray) -> np.ndarray:
    ct = pop.ctype[cust]
    u = rng.random(len(cust))
    occ = np.full(len(cust), VISIT)
    p_late = np.where(pop.deal_seeker[cust], 0.30, 0.03)
    p_lunch = pop.lunch_share[cust] * (1 - p_late)
    p_aft = 0.15 * (1 - p_late)
    reg = ct == REGULAR
    occ[reg] = np.select([u < p_late, u < p_late + p_lunch, u < p_late + p_lunch + p_aft],
                         [LATE, LUNCH, AFTERNOON], MORNING)[reg]
    festive = (cal.xmas_ramp[day] > 0) | cal.easter[day] | cal.mothers[day] | cal.valentine[day]
    p_celeb = np.where(festive, 0.7, 0.3)
    oc = ct == OCCASIONAL
    late_treat = pop.deal_seeker[cust] & (rng.random(len(cust)) < 0.25)
    occ[oc] = np.where(u < p_celeb, CELEBRATION, np.where(late_treat, LATE, TREAT))[oc]
    occ[ct == B2B] = WHOLESALE
    return occ
