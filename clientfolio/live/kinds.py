"""The segment kinds a customer can move between, their names, and how people read them.

The names are those the segmenters in :mod:`clientfolio.segments` write.  Kinds whose segment
names come from the shop's data or the user (discovered groups, rule segments, categories,
channels) are *open*: any name is allowed there.  A subscription to a name that no segmenter
writes would never fire, so :mod:`clientfolio.live.triggers` checks names against this list.
"""

from __future__ import annotations

from clientfolio.segments.lifecycle import STAGES
from clientfolio.segments.portfolio import QUADRANTS
from clientfolio.segments.rfm import DEFAULT_GRID
from clientfolio.segments.value import HISTORICAL_TIER_NAMES, VALUE_TIER_NAMES

#: kind -> the segment names its segmenter writes (the default RFM grid; a shop with its own grid
#: passes its names to `load_triggers`).
SEGMENT_NAMES: dict[str, tuple[str, ...]] = {
    "rfm": tuple(dict.fromkeys(name for row in DEFAULT_GRID.values() for name in row)),
    "value_tier": VALUE_TIER_NAMES,
    "historical_value_tier": HISTORICAL_TIER_NAMES,
    "frequency_tier": ("One-time", "Frequent", "Occasional"),
    "profitability": ("Profitable", "Break-even", "Unprofitable"),
    "lifecycle": STAGES,
    "portfolio": QUADRANTS,
    "discount_reliance": ("Value seekers", "Full price"),
    "occasions": ("Gift & seasonal buyers", "Everyday buyers"),
    "cart_abandoners": ("Cart abandoners", "Completes carts"),
    "support": ("Support-heavy", "Low support"),
}

#: Kinds whose names come from the data or the user: any segment name is accepted.
OPEN_KINDS = ("cluster", "rules", "category_preference", "channel_preference")

KINDS: tuple[str, ...] = tuple(SEGMENT_NAMES) + OPEN_KINDS

_KIND_LABELS = {
    "rfm": "RFM", "value_tier": "Value tier", "historical_value_tier": "Past-spend tier",
    "frequency_tier": "Frequency", "profitability": "Profitability", "lifecycle": "Lifecycle",
    "portfolio": "Portfolio", "cluster": "Group", "rules": "Rule segment", "rule": "Rule segment",
    "category_preference": "Category", "channel_preference": "Channel", "discount_reliance": "Discounts",
    "occasions": "Occasions", "cart_abandoners": "Carts", "support": "Support",
}


def kind_label(kind: str) -> str:
    """A segment kind as a heading ("lifecycle" -> "Lifecycle", "rfm" -> "RFM")."""
    return _KIND_LABELS.get(kind, str(kind).replace("_", " ").capitalize())


def segment_label(kind: str, segment: str) -> str:
    """A segment's name as people read it: lifecycle stages are written in lower case in the data
    ("at risk") and read as names ("At Risk"); every other kind's names are already names."""
    if kind == "lifecycle":
        return " ".join(word.capitalize() for word in str(segment).split(" "))
    return str(segment)
