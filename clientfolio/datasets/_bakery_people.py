"""Who the bakery's customers are: types, traits, acquisition and the marketing that paid for it."""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass

import numpy as np

from ._bakery_world import (
    B2B_INDUSTRIES,
    B2B_INDUSTRY_WEIGHTS,
    B2B_NAME_PARTS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    PRODUCTS,
    REGIONS,
    Calendar,
)

REGULAR, OCCASIONAL, TOURIST, B2B = 0, 1, 2, 3
TYPE_NAMES: tuple[str, ...] = ("regular", "occasional", "tourist", "b2b")

CHANNELS: tuple[str, ...] = (
    "walk_in", "referral", "google_maps", "instagram", "google_ads", "local_flyers",
    "wholesale_sales", "existing_account",
)
PAID: tuple[str, ...] = ("instagram", "google_ads", "local_flyers", "wholesale_sales")
# acquisition channel mix per type before the paid channels' monthly budget factor
CHANNEL_WEIGHTS = np.array([
    # walk_in referral maps  insta  gads  flyers wsales existing
    [0.55, 0.15, 0.00, 0.12, 0.06, 0.12, 0.00, 0.0],  # regular
    [0.35, 0.12, 0.03, 0.28, 0.14, 0.08, 0.00, 0.0],  # occasional
    [0.40, 0.02, 0.35, 0.09, 0.14, 0.00, 0.00, 0.0],  # tourist
    [0.00, 0.25, 0.00, 0.00, 0.00, 0.00, 0.75, 0.0],  # b2b
])
# monthly budget (pence, for the default 3,600-customer shop) and its calendar-month profile
BUDGET_BASE = {"instagram": 20000, "google_ads": 24000, "local_flyers": 32000, "wholesale_sales": 22000}
BUDGET_PROFILE = {
    "instagram": (0.8, 1.2, 1.5, 1.2, 1.0, 0.9, 0.9, 0.8, 1.0, 1.1, 1.8, 2.0),
    "google_ads": (0.9, 1.0, 1.0, 1.1, 1.0, 1.1, 1.5, 1.5, 1.0, 0.9, 1.0, 1.4),
    "local_flyers": (0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0),
    "wholesale_sales": (1, 1, 1, 1, 1, 1, 1, 1, 2.7, 1, 1, 1),
}
YEAR_GROWTH = 1.15  # each later year's budgets are 15 % higher


@dataclass
class Population:
    """Per-customer arrays (index = customer row) plus the marketing budget."""

    ctype: np.ndarray
    acq_day: np.ndarray
    channel: np.ndarray  # index into CHANNELS
    acq_cost: np.ndarray  # pence, -1 where not a paid acquisition
    region: np.ndarray  # index into REGIONS
    z: np.ndarray  # latent satisfaction, N(0, 1)
    deal_seeker: np.ndarray
    has_card: np.ndarray
    pays_cash: np.ndarray  # share of in-store orders paid in cash
    web_share: np.ndarray
    pastry_aff: np.ndarray
    bread_aff: np.ndarray
    lunch_share: np.ndarray
    fav_drink: np.ndarray  # index among drink products
    engagement: np.ndarray  # e-mail responsiveness multiplier (mean 1)
    birthday_month: np.ndarray  # 0 = not given
    has_email: np.ndarray
    consent: np.ndarray
    email: list[str | None]
    industry: np.ndarray  # index into B2B_INDUSTRIES, -1 for retail
    size: np.ndarray  # 0 micro, 1 small, 2 medium, -1 retail
    company: list[str | None]
    budget_months: list[tuple[int, int]]  # (year, month)
    budget: dict[str, np.ndarray]  # pence per month

    @property
    def n(self) -> int:
        return len(self.ctype)


def _month_index(cal: Calendar) -> np.ndarray:
    return (cal.year - cal.year[0]) * 12 + cal.month - cal.month[0]


def _budgets(rng: np.random.Generator, cal: Calendar, retail_scale: float, b2b_scale: float
             ) -> tuple[list[tuple[int, int]], dict[str, np.ndarray]]:
    midx = _month_index(cal)
    months = sorted({(int(y), int(m)) for y, m in zip(cal.year, cal.month)})
    out: dict[str, np.ndarray] = {}
    for ch in PAID:
        scale = b2b_scale if ch == "wholesale_sales" else retail_scale
        prof = np.array([BUDGET_PROFILE[ch][m - 1] for _, m in months])
        growth = YEAR_GROWTH ** np.array([y - months[0][0] for y, _ in months])
        noise = np.exp(rng.normal(0.0, 0.08, len(months)))
        spend = np.round(BUDGET_BASE[ch] * scale * prof * growth * noise).astype(np.int64)
        # part months at the window's edges are charged pro rata
        covered = np.bincount(midx, minlength=len(months))
        full = np.array([_days_in_month(y, m) for y, m in months])
        out[ch] = np.round(spend * covered / full).astype(np.int64)
    return months, out


def _days_in_month(y: int, m: int) -> int:
    return _calendar.monthrange(y, m)[1]


def _sample_days(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    p = weights / weights.sum()
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(size), side="right"), len(p) - 1)


def make_population(rng: np.random.Generator, cal: Calendar, n_customers: int,
                    day_weights: dict[int, np.ndarray]) -> Population:
    """Draw customer types, acquisition dates and channels, traits and contact details."""
    n_b2b = max(2, int(round(n_customers * 0.007)))
    n_retail = n_customers - n_b2b
    n_reg = int(round(0.20 * n_retail))
    n_occ = int(round(0.39 * n_retail))
    n_tour = n_retail - n_reg - n_occ
    ctype = np.repeat([REGULAR, OCCASIONAL, TOURIST, B2B], [n_reg, n_occ, n_tour, n_b2b])
    n = len(ctype)
    D = cal.n_days
    growth = 1.0 + 0.4 * np.arange(D) / D  # word of mouth: more newcomers as time goes on

    # ---- acquisition day (= day of first purchase)
    acq = np.zeros(n, np.int64)
    launch = np.zeros(n, bool)
    for t in (REGULAR, OCCASIONAL, TOURIST):
        idx = np.flatnonzero(ctype == t)
        acq[idx] = _sample_days(rng, day_weights[t] * growth, len(idx))
    # the loyalty app launched on day 0: 40 % of the regulars are existing ones enrolling in 8 weeks
    reg = np.flatnonzero(ctype == REGULAR)
    launch[reg] = rng.random(len(reg)) < 0.40
    w_launch = day_weights[REGULAR] * (np.arange(D) < 56)
    acq[reg[launch[reg]]] = _sample_days(rng, w_launch, int(launch[reg].sum()))
    b2b = np.flatnonzero(ctype == B2B)
    weekday = (cal.dow < 5) & ~cal.closed
    launch[b2b] = rng.random(len(b2b)) < 0.35
    n_l = int(launch[b2b].sum())
    acq[b2b[launch[b2b]]] = _sample_days(rng, (weekday & (np.arange(D) < 30)).astype(float), n_l)
    later = weekday & (np.arange(D) >= 30) & (np.arange(D) < D - 45)
    if not later.any():  # a short window: new accounts any weekday
        later = weekday
    acq[b2b[~launch[b2b]]] = _sample_days(rng, later.astype(float), len(b2b) - n_l)

    # ---- acquisition channel, with paid channels following their monthly budget
    months, budget = _budgets(rng, cal, n_retail / 3575.0, n_b2b / 25.0)
    midx = _month_index(cal)[acq]
    w = CHANNEL_WEIGHTS[ctype].copy()
    for ch in PAID:
        b = budget[ch].astype(float)
        j = CHANNELS.index(ch)
        w[:, j] *= b[midx] / max(b.mean(), 1.0)
    channel = _choose_rows(rng, w)
    channel[launch & (ctype == REGULAR)] = CHANNELS.index("walk_in")
    channel[launch & (ctype == B2B)] = CHANNELS.index("existing_account")
    acq_cost = np.full(n, -1, np.int64)
    for ch in PAID:
        j = CHANNELS.index(ch)
        for m in range(len(months)):
            who = np.flatnonzero((channel == j) & (midx == m))
            if len(who):  # the month's spend shared out to the penny
                base, rem = divmod(int(budget[ch][m]), len(who))
                acq_cost[who] = base + (np.arange(len(who)) < rem)

    # ---- traits
    z = rng.normal(0.0, 1.0, n)
    retail = ctype != B2B
    promo_channel = np.isin(channel, [CHANNELS.index("instagram"), CHANNELS.index("local_flyers")])
    p_deal = np.choose(ctype, [0.12, 0.22, 0.05, 0.0]) * np.where(promo_channel, 1.6, 1.0)
    deal_seeker = rng.random(n) < p_deal
    has_card = rng.random(n) < np.choose(ctype, [0.92, 0.45, 0.05, 0.0])
    pays_cash = np.where(retail, rng.beta(1.0, 6.0, n), 0.0)
    web_share = np.where(ctype == REGULAR, rng.beta(1, 15, n),
                         np.where(ctype == OCCASIONAL, rng.beta(2, 4, n),
                                  np.where(ctype == TOURIST, 0.02, 0.0)))
    pastry_aff = np.where(ctype == TOURIST, rng.beta(5, 4, n), rng.beta(2, 3, n))
    bread_aff = np.where(ctype == REGULAR, rng.beta(1, 5, n), rng.beta(1, 9, n))
    lunch_share = rng.beta(2, 6, n)
    n_drinks = 8
    fav_drink = rng.choice(n_drinks, n, p=_drink_popularity())
    engagement = rng.beta(2, 2, n) * 2
    birthday_month = np.where(rng.random(n) < np.choose(ctype, [0.5, 0.55, 0.1, 0.0]),
                              rng.integers(1, 13, n), 0)
    has_email = rng.random(n) < np.choose(ctype, [0.95, 0.93, 0.75, 1.0])
    has_email |= web_share > 0.5  # web orders need an e-mail address
    consent = has_email & (rng.random(n) < np.choose(ctype, [0.85, 0.80, 0.66, 0.9]))

    region_w = np.array([[r[1], r[2], r[3], r[4]] for r in REGIONS]).T  # type x region
    region = _choose_rows(rng, region_w[ctype])

    industry = np.full(n, -1, np.int64)
    size = np.full(n, -1, np.int64)
    industry[b2b] = rng.choice(len(B2B_INDUSTRIES), len(b2b), p=np.array(B2B_INDUSTRY_WEIGHTS))
    size[b2b] = rng.choice(3, len(b2b), p=[0.45, 0.40, 0.15])
    company: list[str | None] = [None] * n
    email: list[str | None] = [None] * n
    used: set[str] = set()
    for i in b2b:
        firsts, seconds = B2B_NAME_PARTS[B2B_INDUSTRIES[industry[i]]]
        name = f"{firsts[rng.integers(len(firsts))]} {seconds[rng.integers(len(seconds))]}"
        while name in used:
            name = f"{name} {REGIONS[region[i]][0]}" if REGIONS[region[i]][0] not in name else f"{name} 2"
        used.add(name)
        company[i] = name
        slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
        email[i] = f"orders.{slug}@example.net"
    first = rng.integers(len(FIRST_NAMES), size=n)
    last = rng.integers(len(LAST_NAMES), size=n)
    style = rng.integers(3, size=n)
    dom = rng.integers(len(EMAIL_DOMAINS), size=n)
    num = rng.integers(1, 99, size=n)
    for i in np.flatnonzero(retail & has_email):
        f, s = FIRST_NAMES[first[i]], LAST_NAMES[last[i]]
        local = (f"{f}.{s}", f"{f}{s}{num[i]}", f"{f[0]}.{s}")[style[i]]
        while f"{local}@{EMAIL_DOMAINS[dom[i]]}" in used:
            local = f"{local}{i % 97}"
        addr = f"{local}@{EMAIL_DOMAINS[dom[i]]}"
        used.add(addr)
        email[i] = addr
    return Population(ctype, acq, channel, acq_cost, region, z, deal_seeker, has_card, pays_cash,
                      web_share, pastry_aff, bread_aff, lunch_share, fav_drink, engagement,
                      birthday_month, has_email, consent, email, industry, size, company,
                      months, budget)


def _drink_popularity() -> np.ndarray:
    pop = np.array([p[6] for p in PRODUCTS if p[3] == "drink"])
    return pop / pop.sum()


def _choose_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows x options) weight matrix."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), weights.shape[1] - 1)
