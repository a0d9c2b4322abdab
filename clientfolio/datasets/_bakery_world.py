"""The fixed world of the demo bakery-café: calendar, catalogue, places, names, words.

Nothing here is random; :mod:`clientfolio.datasets.bakery` draws from it.
The shop is in a fictional English market town (local time Europe/London,
prices in GBP, closed on 25-26 December and 1 January).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- catalogue
# slot: which part of a basket the product fills; season: when it is sold.
# (product_id, name, category, slot, price in pence, cost of goods in pence, popularity, season)
PRODUCTS: tuple[tuple[str, str, str, str, int, int, float, str], ...] = (
    ("espresso", "espresso", "coffee", "drink", 240, 38, 0.6, ""),
    ("americano", "americano", "coffee", "drink", 290, 45, 1.2, ""),
    ("flat_white", "flat white", "coffee", "drink", 340, 62, 1.6, ""),
    ("cappuccino", "cappuccino", "coffee", "drink", 330, 60, 1.3, ""),
    ("latte", "latte", "coffee", "drink", 340, 64, 1.5, ""),
    ("oat_latte", "oat latte", "coffee", "drink", 380, 82, 0.9, ""),
    ("tea", "pot of tea", "coffee", "drink", 250, 30, 0.6, ""),
    ("hot_chocolate", "hot chocolate", "coffee", "drink", 360, 75, 0.5, ""),
    ("croissant", "croissant", "pastry", "pastry", 230, 78, 1.6, ""),
    ("pain_au_chocolat", "pain au chocolat", "pastry", "pastry", 260, 90, 1.3, ""),
    ("almond_croissant", "almond croissant", "pastry", "pastry", 340, 125, 0.8, ""),
    ("cinnamon_bun", "cinnamon bun", "pastry", "pastry", 320, 105, 1.2, ""),
    ("cardamom_bun", "cardamom bun", "pastry", "pastry", 330, 110, 0.9, ""),
    ("danish", "fruit danish", "pastry", "pastry", 300, 105, 0.6, ""),
    ("scone", "scone", "pastry", "pastry", 280, 85, 0.7, ""),
    ("mince_pie", "mince pie", "pastry", "pastry", 180, 65, 0.0, "xmas"),
    ("hot_cross_buns", "hot cross buns (4)", "pastry", "pastry", 550, 190, 0.0, "easter"),
    ("sourdough_loaf", "sourdough loaf", "bread", "bread", 480, 150, 1.6, ""),
    ("baguette", "baguette", "bread", "bread", 240, 75, 1.1, ""),
    ("rye_loaf", "rye loaf", "bread", "bread", 520, 170, 0.6, ""),
    ("seeded_loaf", "seeded loaf", "bread", "bread", 500, 165, 0.9, ""),
    ("focaccia", "focaccia", "bread", "bread", 420, 140, 0.6, ""),
    ("brioche", "brioche", "bread", "bread", 550, 200, 0.4, ""),
    ("ham_cheese_toastie", "ham and cheese toastie", "sandwich", "savoury", 590, 260, 1.3, ""),
    ("veggie_sandwich", "veggie sandwich", "sandwich", "savoury", 550, 240, 1.0, ""),
    ("chicken_pesto", "chicken pesto sandwich", "sandwich", "savoury", 640, 300, 1.0, ""),
    ("soup", "soup of the day", "sandwich", "savoury", 520, 210, 0.8, ""),
    ("quiche_slice", "quiche", "sandwich", "savoury", 480, 200, 0.6, ""),
    ("carrot_cake_slice", "carrot cake", "cake", "cake_slice", 390, 140, 1.2, ""),
    ("lemon_drizzle_slice", "lemon drizzle", "cake", "cake_slice", 360, 125, 1.0, ""),
    ("brownie", "brownie", "cake", "cake_slice", 320, 110, 1.1, ""),
    ("cheesecake_slice", "cheesecake", "cake", "cake_slice", 420, 165, 0.8, ""),
    ("birthday_cake", "birthday cake", "cake", "whole_cake", 4200, 1750, 1.0, ""),
    ("chocolate_cake", "chocolate celebration cake", "cake", "whole_cake", 3800, 1550, 1.0, ""),
    ("lemon_cake", "lemon celebration cake", "cake", "whole_cake", 3600, 1450, 0.7, ""),
    ("christmas_cake", "Christmas cake", "cake", "whole_cake", 3200, 1300, 0.0, "xmas"),
    ("yule_log", "yule log", "cake", "whole_cake", 2800, 1100, 0.0, "xmas"),
    ("stollen", "stollen", "cake", "whole_cake", 1600, 620, 0.0, "xmas"),
    ("simnel_cake", "simnel cake", "cake", "whole_cake", 2600, 1050, 0.0, "easter"),
    ("mothers_day_cake", "Mother's Day flower cake", "cake", "whole_cake", 3400, 1350, 0.0, "mothers"),
    ("heart_cake", "heart cake", "cake", "whole_cake", 2400, 900, 0.0, "valentine"),
    ("christmas_hamper", "Christmas hamper", "gift", "gift", 3500, 2100, 0.0, "xmas"),
    ("biscuit_tin", "shortbread tin", "gift", "gift", 1400, 760, 1.0, ""),
    ("pastry_gift_box", "pastry gift box", "gift", "gift", 1800, 900, 0.8, ""),
    ("ws_sourdough", "wholesale sourdough", "wholesale_bread", "wholesale", 290, 175, 6.0, ""),
    ("ws_baguette", "wholesale baguette", "wholesale_bread", "wholesale", 125, 78, 8.0, ""),
    ("ws_rye", "wholesale rye", "wholesale_bread", "wholesale", 310, 185, 4.0, ""),
    ("ws_rolls_6", "wholesale rolls (6)", "wholesale_bread", "wholesale", 210, 128, 5.0, ""),
    ("ws_croissant", "wholesale croissant", "wholesale_pastry", "wholesale", 105, 62, 12.0, ""),
    ("ws_pain_au_chocolat", "wholesale pain au chocolat", "wholesale_pastry", "wholesale", 120, 72, 10.0, ""),
    ("ws_cinnamon_bun", "wholesale cinnamon bun", "wholesale_pastry", "wholesale", 140, 82, 8.0, ""),
    ("ws_traybake", "wholesale traybake", "wholesale_pastry", "wholesale", 1800, 1050, 1.0, ""),
)

SLOTS: tuple[str, ...] = ("drink", "pastry", "bread", "savoury", "cake_slice", "whole_cake", "gift")

# Realised gross margin, (amount - cost) / amount, per category over the whole history,
# after discounts and the 2024 price and cost rises.  Tests hold the data to these.
CATEGORY_MARGIN_RANGES: dict[str, tuple[float, float]] = {
    "coffee": (0.72, 0.88),
    "pastry": (0.52, 0.70),
    "bread": (0.52, 0.70),
    "sandwich": (0.45, 0.60),
    "cake": (0.50, 0.66),
    "gift": (0.33, 0.55),
    "wholesale_bread": (0.28, 0.42),
    "wholesale_pastry": (0.28, 0.42),
}

PRICE_RISE = 1.05  # list prices rise 5 % each 1 March after the first (rounded to 5p)
COST_RISE = 1.07  # cost of goods rises 7 % on the same dates (margins get squeezed)

# --------------------------------------------------------------------------- places
# name, weight for regulars, occasional buyers, tourists, B2B; wholesale delivery cost (pence)
REGIONS: tuple[tuple[str, float, float, float, float, int], ...] = (
    ("Old Town", 0.25, 0.12, 0.03, 0.20, 650),
    ("Riverside", 0.20, 0.12, 0.01, 0.12, 750),
    ("Station Quarter", 0.18, 0.10, 0.02, 0.12, 700),
    ("University", 0.12, 0.08, 0.01, 0.06, 850),
    ("Hillside", 0.08, 0.12, 0.0, 0.06, 950),
    ("Northgate", 0.07, 0.10, 0.0, 0.08, 900),
    ("Eastfield", 0.05, 0.10, 0.0, 0.06, 950),
    ("Millbrook", 0.03, 0.10, 0.01, 0.12, 1600),
    ("Ashby Green", 0.01, 0.08, 0.0, 0.10, 1900),
    ("Kingsmere", 0.01, 0.05, 0.0, 0.08, 2300),
    ("Out of area (UK)", 0.0, 0.03, 0.64, 0.0, 0),
    ("Out of area (abroad)", 0.0, 0.0, 0.28, 0.0, 0),
)

FIRST_NAMES: tuple[str, ...] = (
    "amelia", "olivia", "isla", "ava", "mia", "grace", "sophie", "chloe", "emily", "ella",
    "freya", "zara", "aisha", "priya", "hannah", "lucy", "ruth", "nadia", "maya", "eve",
    "oliver", "george", "harry", "jack", "noah", "leo", "arthur", "oscar", "james", "tom",
    "ben", "sam", "daniel", "omar", "ravi", "tariq", "liam", "owen", "felix", "kwame",
)
LAST_NAMES: tuple[str, ...] = (
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "wright", "walker", "evans", "thomas", "roberts", "khan", "lewis", "hughes", "clarke",
    "hall", "green", "wood", "harris", "martin", "cooper", "king", "ward", "okafor", "mensah",
    "nowak", "kowalski", "rossi", "garcia", "chen", "nguyen", "ali", "begum", "murphy",
    "kelly", "campbell", "stewart",
)
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")

B2B_INDUSTRIES: tuple[str, ...] = ("cafe", "restaurant", "hotel", "deli", "office_canteen", "caterer")
B2B_INDUSTRY_WEIGHTS: tuple[float, ...] = (0.40, 0.20, 0.15, 0.10, 0.10, 0.05)
B2B_NAME_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cafe": (("The Copper", "Little", "Blue Door", "Corner", "Harbour", "Bramble", "Acorn", "Lantern"),
             ("Kettle", "Cafe", "Coffee House", "Espresso Bar", "Tearoom")),
    "restaurant": (("Olive", "Riverside", "Fig", "Saffron", "Old Mill", "Ember"),
                   ("Kitchen", "Bistro", "Trattoria", "Brasserie")),
    "hotel": (("Grand Station", "Abbey", "Market Square", "Willow", "Kings Arms"),
              ("Hotel", "Inn", "Lodge")),
    "deli": (("Northgate", "Hillside", "Pantry", "Larder", "Cheese"), ("Deli", "Provisions", "Store")),
    "office_canteen": (("Mercer", "Hartley", "Brightwater", "Quayside"), ("Offices", "Works Canteen", "Campus")),
    "caterer": (("Feast", "Honeycomb", "Green Apron", "Table"), ("Catering", "Events")),
}
# Wholesale products each industry tends to take on standing order (product_id weights).
B2B_PRODUCT_AFFINITY: dict[str, dict[str, float]] = {
    "cafe": {"ws_croissant": 3, "ws_pain_au_chocolat": 2.5, "ws_cinnamon_bun": 2.5, "ws_sourdough": 2,
             "ws_traybake": 2, "ws_baguette": 0.5, "ws_rye": 0.5, "ws_rolls_6": 0.5},
    "restaurant": {"ws_sourdough": 3, "ws_baguette": 3, "ws_rolls_6": 2, "ws_rye": 1.5, "ws_croissant": 0.3,
                   "ws_pain_au_chocolat": 0.2, "ws_cinnamon_bun": 0.2, "ws_traybake": 0.5},
    "hotel": {"ws_croissant": 3, "ws_pain_au_chocolat": 3, "ws_rolls_6": 2, "ws_baguette": 1.5,
              "ws_sourdough": 1.5, "ws_rye": 0.5, "ws_cinnamon_bun": 1, "ws_traybake": 0.3},
    "deli": {"ws_sourdough": 3, "ws_rye": 2.5, "ws_baguette": 2, "ws_rolls_6": 1, "ws_croissant": 1,
             "ws_pain_au_chocolat": 0.5, "ws_cinnamon_bun": 0.5, "ws_traybake": 1},
    "office_canteen": {"ws_rolls_6": 3, "ws_traybake": 2.5, "ws_croissant": 2, "ws_baguette": 1.5,
                       "ws_sourdough": 1, "ws_rye": 0.3, "ws_pain_au_chocolat": 1, "ws_cinnamon_bun": 1},
    "caterer": {"ws_rolls_6": 3, "ws_baguette": 2, "ws_traybake": 2, "ws_croissant": 1.5,
                "ws_sourdough": 1, "ws_rye": 0.5, "ws_pain_au_chocolat": 1, "ws_cinnamon_bun": 1},
}


# --------------------------------------------------------------------------- calendar
def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def _last_sunday(year: int, month: int) -> dt.date:
    last = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() + 1) % 7)


# Season codes (which seasonal products are on sale).
NORMAL, XMAS, EASTER, MOTHERS, VALENTINE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Calendar:
    """Per-day arrays over the simulated window (index 0 is the start date)."""

    start: dt.date
    n_days: int
    days: np.ndarray  # int64 days since 1970-01-01
    dow: np.ndarray  # 0 = Monday
    month: np.ndarray
    dom: np.ndarray
    year: np.ndarray
    closed: np.ndarray  # bool: 25-26 Dec, 1 Jan
    xmas_ramp: np.ndarray  # 0..1, rising through 1-24 December
    easter: np.ndarray  # bool: the 10 days up to Easter Saturday
    easter_hols: np.ndarray  # bool: two weeks of school holidays around Easter
    mothers: np.ndarray  # bool: Mothering Sunday and the 3 days before
    valentine: np.ndarray  # bool: 12-14 February
    summer: np.ndarray  # bool: 15 July - 31 August
    season: np.ndarray  # NORMAL/XMAS/EASTER/MOTHERS/VALENTINE: which seasonal lines are sold
    bst: np.ndarray  # bool: British Summer Time (UTC+1) in force from 05:00 local
    price_step: np.ndarray  # number of price rises in force

    def day_index(self, date: dt.date) -> int:
        return (date - self.start).days


def build_calendar(start: dt.date, end: dt.date) -> Calendar:
    """Calendar of every day from ``start`` to ``end`` inclusive."""
    n = (end - start).days + 1
    if n < 60:
        raise ValueError(f"bakery.generate: the window {start}..{end} must cover at least 60 days")
    dates = [start + dt.timedelta(days=i) for i in range(n)]
    month = np.array([d.month for d in dates])
    dom = np.array([d.day for d in dates])
    year = np.array([d.year for d in dates])
    dow = np.array([d.weekday() for d in dates])
    days = np.array([(d - dt.date(1970, 1, 1)).days for d in dates], dtype=np.int64)
    closed = ((month == 12) & ((dom == 25) | (dom == 26))) | ((month == 1) & (dom == 1))
    xmas_ramp = np.where((month == 12) & (dom <= 24), ((dom - 1) / 23.0) ** 1.5, 0.0)
    easter = np.zeros(n, bool)
    easter_hols = np.zeros(n, bool)
    mothers = np.zeros(n, bool)
    bst = np.zeros(n, bool)
    season = np.zeros(n, np.int64)
    season[((month == 11) & (dom >= 20)) | (month == 12)] = XMAS
    for y in range(start.year, end.year + 1):
        es = easter_sunday(y)
        ms = es - dt.timedelta(days=21)  # Mothering Sunday: 4th Sunday of Lent
        for i, d in enumerate(dates):
            if d.year != y:
                continue
            off = (d - es).days
            easter[i] = -10 <= off <= -1
            easter_hols[i] = -9 <= off <= 8
            if -14 <= off <= 1:
                season[i] = EASTER
            moff = (d - ms).days
            mothers[i] = -3 <= moff <= 0
            if -6 <= moff <= 0:
                season[i] = MOTHERS
            bst[i] = _last_sunday(y, 3) <= d < _last_sunday(y, 10)
    valentine = (month == 2) & (dom >= 12) & (dom <= 14)
    season[(month == 2) & (dom >= 10) & (dom <= 14)] = VALENTINE
    summer = ((month == 7) & (dom >= 15)) | (month == 8)
    march_firsts = [dt.date(y, 3, 1) for y in range(start.year, end.year + 1) if dt.date(y, 3, 1) >= start]
    price_step = np.zeros(n, np.int64)
    for d in march_firsts[1:]:
        price_step[np.asarray(dates) >= d] += 1
    return Calendar(start, n, days, dow, month, dom, year, closed, xmas_ramp, easter, easter_hols,
                    mothers, valentine, summer, season, bst, price_step)


# --------------------------------------------------------------------------- words
REVIEW_TEMPLATES: dict[int, tuple[str, ...]] = {
    5: ("Best {product} in town. {praise}",
        "The {product} is outstanding, {praise_lc}",
        "Lovely staff and a perfect {product}. {praise}",
        "Can't fault it: the {product} was wonderful. {praise}"),
    4: ("Really good {product}, {minor}.",
        "Great {product} and friendly service, {minor}.",
        "The {product} was very nice, {minor}."),
    3: ("The {product} was fine but {issue}.",
        "Decent {product}, though {issue}.",
        "OK overall. The {product} was alright but {issue}."),
    2: ("Disappointed with the {product}: {issue}.",
        "Not great. The {product} was poor and {issue}.",
        "Expected more from the {product}; {issue}."),
    1: ("Awful experience. {issue_cap}.",
        "Terrible {product}. {issue_cap}.",
        "Never again: {issue}."),
}
PRAISE: tuple[str, ...] = (
    "Worth every penny.", "My daily treat.", "We'll be back!", "Always fresh and friendly.",
    "Highly recommend.", "The smell alone is worth the visit.",
)
MINOR: tuple[str, ...] = (
    "though the queue at lunchtime can be long", "but seating is limited",
    "a little pricey", "but they sometimes sell out early", "although it gets noisy at weekends",
)
ISSUES: dict[str, tuple[str, ...]] = {  # complaints of a merely unhappy customer, by what they bought
    "drink": ("it was lukewarm", "it tasted burnt", "it was far too milky", "service was slow",
              "prices keep going up", "the staff seemed rushed"),
    "food": ("it was not as fresh as last time", "it was a bit dry", "the portion was small",
             "service was slow", "prices keep going up", "the staff seemed rushed"),
}
PROBLEM_ISSUES: dict[str, str] = {  # what an unhappy reviewer says about the trouble they had
    "damaged_cake": "the cake was damaged when I collected it",
    "wrong_order": "my order was wrong and the refund took days",
    "order_not_ready": "my click and collect order was not ready",
    "staff_complaint": "the staff were rude to me",
    "product_quality": "it was not up to the usual standard",
    "missing_items": "half of the order was missing",
    "late_delivery": "deliveries keep arriving late",
    "quality_issue": "the quality has slipped badly",
}
TICKET_TOPICS: dict[str, tuple[str, ...]] = {
    "refund_retail": ("damaged_cake", "wrong_order", "order_not_ready"),
    "refund_wholesale": ("missing_items", "late_delivery", "quality_issue"),
    "retail": ("allergen_question", "loyalty_stamps_missing", "opening_hours", "staff_complaint",
               "order_change", "product_quality"),
    "wholesale": ("late_delivery", "invoice_query", "order_change", "quality_issue"),
}
PAGE_PATHS: tuple[str, ...] = (
    "/", "/menu", "/shop/cakes", "/shop/bread", "/shop/pastries", "/shop/gifts", "/about",
    "/opening-hours", "/shop/celebration-cakes", "/cart",
)
