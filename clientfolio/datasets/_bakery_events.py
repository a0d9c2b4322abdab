"""Engagement and service events of the bakery's customers (e-mail, web, support, reviews, NPS)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._bakery_orders import CLICK_COLLECT, WHOLESALE_INVOICE, Orders, Refunds
from ._bakery_people import B2B, OCCASIONAL, REGULAR, TOURIST, Population
from ._bakery_timeline import Timeline, _poisson_days
from ._bakery_world import (
    ISSUES,
    MINOR,
    PAGE_PATHS,
    PRAISE,
    PROBLEM_ISSUES,
    PRODUCTS,
    REVIEW_TEMPLATES,
    TICKET_TOPICS,
    Calendar,
    easter_sunday,
)

DAY = 86400


@dataclass
class EventLog:
    """Events as parallel lists, turned into a table by the caller."""

    cust: list[np.ndarray] = field(default_factory=list)
    utc: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    props: list[list[str]] = field(default_factory=list)

    def add(self, cust: np.ndarray, utc: np.ndarray, kind: str, props: list[dict[str, object]]) -> None:
        self.cust.append(np.asarray(cust, np.int64))
        self.utc.append(np.asarray(utc, np.int64))
        self.kind.append(np.full(len(cust), kind, dtype=object))
        self.props.append([json.dumps(p, separators=(",", ":"), sort_keys=True) for p in props])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        props = np.array([p for chunk in self.props for p in chunk], dtype=object)
        return (np.concatenate(self.cust), np.concatenate(self.utc), np.concatenate(self.kind), props)


def _local_utc(cal: Calendar, date: dt.date, hour: float) -> int:
    i = cal.day_index(date)
    return int(cal.days[i] * DAY + round(hour * 3600) - 3600 * int(cal.bst[i]))


def _alive_at(tl: Timeline, cust: np.ndarray, day: float) -> np.ndarray:
    a = tl.alive[cust]
    with np.errstate(invalid="ignore"):
        return ((a[:, 0] <= day) & (day < a[:, 1])) | ((a[:, 2] <= day) & (day < a[:, 3]))


def _campaigns(cal: Calendar) -> list[tuple[dt.date, str, bool]]:
    first, last = cal.start, cal.start + dt.timedelta(days=cal.n_days - 1)
    out: list[tuple[dt.date, str, bool]] = []
    for y in range(first.year, last.year + 1):
        es = easter_sunday(y)
        out += [(dt.date(y, 2, 5), f"valentines-{y}", True),
                (es - dt.timedelta(days=29), f"mothering-sunday-{y}", True),
                (es - dt.timedelta(days=16), f"easter-{y}", True),
                (dt.date(y, 12, 1), f"christmas-orders-{y}", True),
                (dt.date(y, 12, 14), f"christmas-last-call-{y}", True)]
        for m in range(1, 13):
            d = dt.date(y, m, 1)
            d += dt.timedelta(days=(1 - d.weekday()) % 7)  # first Tuesday
            out.append((d, f"newsletter-{y}-{m:02d}", False))
    return sorted(c for c in out if first < c[0] <= last - dt.timedelta(days=3))


def make_events(rng: np.random.Generator, cal: Calendar, pop: Population, tl: Timeline, orders: Orders,
                refunds: Refunds, w_browse: np.ndarray, order_ids: np.ndarray, end_utc: int) -> EventLog:
    log = EventLog()
    ct = pop.ctype
    everyone = np.arange(pop.n)

    # ---- e-mail campaigns: opens and clicks, far likelier from live, engaged regulars
    base_open = np.array([0.50, 0.35, 0.12, 0.30])
    for date, name, holiday in _campaigns(cal):
        send = _local_utc(cal, date, 9.0)
        day = cal.day_index(date)
        rec = everyone[pop.consent & (pop.acq_day < day)]
        alive = _alive_at(tl, rec, day)
        p_open = base_open[ct[rec]] * pop.engagement[rec] * np.where(alive, 1.0, 0.2)
        p_open *= np.where(holiday & (ct[rec] == OCCASIONAL), 1.3, 1.0)
        opened = rec[rng.random(len(rec)) < np.minimum(p_open, 0.95)]
        t_open = send + np.round(np.minimum(rng.exponential(6.0, len(opened)), 120) * 3600).astype(np.int64)
        log.add(opened, t_open, "email_open", [{"campaign": name}] * len(opened))
        p_click = 0.15 * np.where(holiday & (ct[opened] == OCCASIONAL), 2.3, 1.0)
        p_click *= np.where(pop.deal_seeker[opened], 1.5, 1.0)
        hit = rng.random(len(opened)) < p_click
        t_click = t_open[hit] + rng.integers(10, 300, int(hit.sum()))
        log.add(opened[hit], t_click, "email_click", [{"campaign": name}] * int(hit.sum()))
        _page_views(rng, log, opened[hit], t_click, "email")

    # ---- the web shop: views before each click & collect order, browsing and abandoned carts
    web = np.flatnonzero(orders.channel == CLICK_COLLECT)
    _page_views(rng, log, orders.cust[web], orders.utc[web] - rng.integers(20, 120, len(web)), "direct",
                checkout=True)
    browsers = everyone[(pop.web_share >= 0.05) & (ct != B2B)]
    a = tl.alive[browsers, 0]
    b = np.minimum(np.nan_to_num(tl.alive[browsers, 1], posinf=cal.n_days), cal.n_days)
    owner, sday = _poisson_days(rng, w_browse, a, b, pop.web_share[browsers] * 0.035)
    who = browsers[owner]
    t = (cal.days[sday] * DAY + np.round(rng.uniform(7, 23, len(sday)) * 3600).astype(np.int64)
         - 3600 * cal.bst[sday])
    _page_views(rng, log, who, t, "direct")
    ab = rng.random(len(who)) < np.where(pop.deal_seeker[who], 0.45, 0.3)
    items = 1 + rng.poisson(0.8, int(ab.sum()))
    value = np.round(rng.lognormal(np.log(18.0), 0.7, int(ab.sum())), 2)
    log.add(who[ab], t[ab] + 600, "cart_abandon",
            [{"cart_value": float(v), "items": int(k)} for v, k in zip(value, items)])

    # ---- support tickets: one before every refund, others at random (unhappy customers more)
    rc = orders.cust[refunds.order]
    t_ticket = orders.utc[refunds.order] + np.round((refunds.utc - orders.utc[refunds.order])
                                                    * rng.uniform(0.2, 0.8, len(rc))).astype(np.int64)
    ws = orders.channel[refunds.order] == WHOLESALE_INVOICE
    cake = np.array([PRODUCTS[j][3] == "whole_cake" for j in refunds.product], bool)
    web = orders.channel[refunds.order] == CLICK_COLLECT
    k = rng.integers(0, 3, len(rc))
    topics = [TICKET_TOPICS["refund_wholesale"][kk] if w
              else "damaged_cake" if c and kk < 2
              else "order_not_ready" if wb and kk == 2
              else "wrong_order"
              for w, c, wb, kk in zip(ws, cake, web, k)]
    log.add(rc, t_ticket, "support_ticket",
            [{"order_id": str(o), "topic": tp} for o, tp in zip(order_ids[refunds.order], topics)])
    p_t = np.where(orders.channel == WHOLESALE_INVOICE, 0.02, 0.002) * np.exp(-0.6 * pop.z[orders.cust])
    tk = np.flatnonzero(rng.random(len(orders.cust)) < p_t)
    t_tk = orders.utc[tk] + rng.integers(1800, 2 * DAY, len(tk))
    ok = t_tk < end_utc
    tk, t_tk = tk[ok], t_tk[ok]
    wsk = orders.channel[tk] == WHOLESALE_INVOICE
    lists = [TICKET_TOPICS["wholesale" if w else "retail"] for w in wsk]
    topics2 = [li[int(u * len(li))] for li, u in zip(lists, rng.random(len(tk)))]
    log.add(orders.cust[tk], t_tk, "support_ticket",
            [{"order_id": str(o), "topic": tp} for o, tp in zip(order_ids[tk], topics2)])
    # each customer's first real trouble (a refund, or a complaint rather than a question)
    trouble = pd.DataFrame({"cust": np.concatenate([rc, orders.cust[tk]]),
                            "t": np.concatenate([t_ticket, t_tk]),
                            "order": np.concatenate([refunds.order, tk]),
                            "topic": topics + topics2})
    trouble = trouble[trouble.topic.isin(list(PROBLEM_ISSUES))]
    trouble = trouble.sort_values(["t", "cust"], kind="mergesort").drop_duplicates("cust")
    problems = {int(c): (int(t), int(o), str(tp)) for c, t, o, tp in trouble.itertuples(index=False)}

    _reviews(rng, log, pop, orders, refunds, problems, end_utc)
    _surveys(rng, log, cal, pop, tl, problems)
    return log


def _page_views(rng: np.random.Generator, log: EventLog, cust: np.ndarray, at: np.ndarray, source: str,
                checkout: bool = False) -> None:
    """A session of page views per customer: starting at ``at``, or ending there at the checkout."""
    k = 1 + rng.poisson(1.5, len(cust))
    who = np.repeat(cust, k)
    first = np.cumsum(k) - k
    last = np.cumsum(k) - 1
    step = rng.integers(15, 180, len(who))
    step[first] = 0
    cs = np.cumsum(step)
    offset = cs - np.repeat(cs[first], k)  # seconds since the session's first view
    if checkout:
        offset = offset - np.repeat(offset[last], k)  # the last view (the cart) is at ``at``
    t = np.repeat(at, k) + offset
    paths = np.array(PAGE_PATHS[:-1], dtype=object)[rng.integers(0, len(PAGE_PATHS) - 1, len(who))]
    if checkout:
        paths[last] = "/cart"
    log.add(who, t, "page_view", [{"path": p, "source": source} for p in paths])


def _product_names() -> list[str]:
    return [p[1].removeprefix("wholesale ") for p in PRODUCTS]


def _reviews(rng: np.random.Generator, log: EventLog, pop: Population, orders: Orders, refunds: Refunds,
             problems: dict[int, tuple[int, int, str]], end_utc: int) -> None:
    names = _product_names()
    had = np.zeros(pop.n, bool)
    had[list(problems)] = True
    # wholesale accounts give feedback through tickets and surveys, not public reviews
    p = np.where(pop.ctype == B2B, 0.0, np.array([0.12, 0.08, 0.06, 0.0])[pop.ctype] + np.where(had, 0.5, 0.0))
    writers = np.flatnonzero(rng.random(pop.n) < np.minimum(p, 0.9))
    trouble = had[writers]
    # a happy writer reviews one of their orders; an unhappy one the order that went wrong
    by_c = np.lexsort((orders.utc, orders.cust))
    starts = np.searchsorted(orders.cust[by_c], writers)
    counts = np.searchsorted(orders.cust[by_c], writers, side="right") - starts
    pick = by_c[starts + np.floor(rng.random(len(writers)) * counts).astype(np.int64)]
    t = orders.utc[pick] + rng.integers(2 * 3600, 5 * DAY, len(writers))
    delay = rng.integers(3600, 3 * DAY, len(writers))
    for k in np.flatnonzero(trouble):
        t_p, o_p, _ = problems[int(writers[k])]
        pick[k], t[k] = o_p, t_p + delay[k]
    # the product they talk about: the refunded one, else the dearest line of the order
    lo = orders.line_order
    s = np.searchsorted(lo, pick)
    c = np.searchsorted(lo, pick, side="right") - s
    gross = orders.line_amount + orders.line_discount
    main = np.array([orders.line_product[a + int(np.argmax(gross[a:a + n]))] for a, n in zip(s, c)], np.int64)
    refunded = {int(o): int(pr) for o, pr in zip(refunds.order, refunds.product)}
    rated = 4.3 + 0.8 * pop.z[writers] + rng.normal(0, 0.6, len(writers)) - 1.8 * trouble
    rating = np.clip(np.round(rated), 1, 5).astype(np.int64)
    props = []
    for cu, r, pr, tr, o in zip(writers, rating, main, trouble, pick):
        j = refunded.get(int(o), int(pr)) if tr else int(pr)
        complaints = ISSUES["drink" if PRODUCTS[j][3] == "drink" else "food"]
        tpl = REVIEW_TEMPLATES[int(r)][int(rng.integers(len(REVIEW_TEMPLATES[int(r)])))]
        issue = PROBLEM_ISSUES[problems[int(cu)][2]] if tr else complaints[int(rng.integers(len(complaints)))]
        praise = PRAISE[int(rng.integers(len(PRAISE)))]
        text = tpl.format(product=names[j], praise=praise, praise_lc=praise[0].lower() + praise[1:],
                          minor=MINOR[int(rng.integers(len(MINOR)))], issue=issue,
                          issue_cap=issue[0].upper() + issue[1:])
        source = "tripadvisor" if pop.ctype[cu] == TOURIST else "google"
        props.append({"rating": int(r), "source": source, "text": text})
    ok = t < end_utc
    log.add(writers[ok], t[ok], "review", [p for p, k in zip(props, ok) if k])


def _surveys(rng: np.random.Generator, log: EventLog, cal: Calendar, pop: Population, tl: Timeline,
             problems: dict[int, tuple[int, int, str]]) -> None:
    problem_at = np.full(pop.n, np.inf)
    for c, (t_p, _, _) in problems.items():
        problem_at[c] = t_p
    first, last = cal.start, cal.start + dt.timedelta(days=cal.n_days - 1)
    waves = [dt.date(y, m, d) for y in range(first.year, last.year + 1) for m, d in ((6, 15), (11, 20))]
    respond = np.array([0.30, 0.15, 0.06, 0.40])
    for wave in waves:
        if not first < wave <= last - dt.timedelta(days=14):
            continue
        day = cal.day_index(wave)
        send = _local_utc(cal, wave, 10.0)
        rec = np.flatnonzero(pop.consent & (pop.acq_day < day))
        alive = _alive_at(tl, rec, day)
        ans = rec[rng.random(len(rec)) < respond[pop.ctype[rec]] * np.where(alive, 1.0, 0.2)]
        t = send + np.round(np.minimum(rng.exponential(1.0, len(ans)), 14) * DAY).astype(np.int64)
        hurt = problem_at[ans] < t
        score = 7.2 + 1.7 * pop.z[ans] + 0.8 * (pop.ctype[ans] == REGULAR) + rng.normal(0, 1.2, len(ans)) - 1.5 * hurt
        nps = np.clip(np.round(score), 0, 10).astype(np.int64)
        tag = f"{wave.year}-{wave.month:02d}"
        log.add(ans, t, "survey", [{"nps": int(k), "wave": tag} for k in nps])
