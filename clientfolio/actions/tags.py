"""The owner's own view of each customer, kept next to the measured one.

Tags (the `owner_tags` table, one value per customer and tag): strategic_fit and
growth_potential (low / medium / high), key_account and partner (yes / no), and free tags of
the owner's own naming (a short name; the value is free text, "yes" by default).  A tag name
close to a built-in one ("strategic-fit", "keyaccount") is refused as a likely typo.

:func:`tagged_portfolio` lays them beside the data's portfolio quadrant (Stars, Develop,
Maintain, Review) and value tier, and names the disagreements: customers the owner holds
strategic whom the data puts in Review ("keep despite the numbers" conversations), and the
reverse, customers the data rates highly whom the owner marks of low fit or potential.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.store.base import Store
from clientfolio.store.live import now_utc

TAGS: dict[str, tuple[str, ...]] = {
    "strategic_fit": ("low", "medium", "high"),
    "growth_potential": ("low", "medium", "high"),
    "key_account": ("yes", "no"),
    "partner": ("yes", "no"),
}
_YES_NO = {"true": "yes", "y": "yes", "1": "yes", "false": "no", "n": "no", "0": "no"}
FREE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_VALUE = 200
COLUMNS = ["customer_id", "tag", "value", "set_at"]


class TagError(ClientfolioError):
    """A tag that cannot be stored: unknown value, a name that looks like a typo, an unknown customer."""


def _name(tag: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(tag).strip().lower())


def check_tag(tag: Any, value: Any) -> tuple[str, str | None]:
    """(tag, value) normalised, or TagError naming what is allowed.  A value of None or "" removes the tag."""
    name = _name(tag)
    text = None if value is None or (isinstance(value, float) and value != value) else str(value).strip()
    if name in TAGS:
        if not text:
            return name, None
        v = text.lower()
        v = _YES_NO.get(v, v) if TAGS[name] == ("yes", "no") else v
        if v not in TAGS[name]:
            raise TagError(f"tag {name}: '{text}' is not allowed; use one of {', '.join(TAGS[name])}")
        return name, v
    if not FREE_NAME.fullmatch(name):
        raise TagError(f"tag name '{tag}': use letters, digits and _ (up to 40, starting with a letter), e.g. "
                       "'local_supplier'")
    near = difflib.get_close_matches(name, list(TAGS), n=1, cutoff=0.8) or \
        [t for t in TAGS if t.replace("_", "") == name.replace("_", "")]
    if near:
        raise TagError(f"tag name '{tag}': did you mean {near[0]} ({'/'.join(TAGS[near[0]])})? Free tags must not "
                       "look like a built-in one")
    if text is not None and len(text) > MAX_VALUE:
        raise TagError(f"tag {name}: the value is longer than {MAX_VALUE} characters")
    return name, text or None


def check_tags(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows customer_id, tag, value checked and normalised; every bad row named in one TagError."""
    need = {"customer_id", "tag", "value"}
    if not need <= set(frame.columns):
        raise TagError(f"tags need the columns customer_id, tag, value; missing: "
                       f"{', '.join(sorted(need - set(frame.columns)))}")
    rows, problems = [], []
    for i, (cid, tag, value) in enumerate(zip(frame["customer_id"], frame["tag"], frame["value"]), start=1):
        if cid is None or (isinstance(cid, float) and cid != cid) or not str(cid).strip():
            problems.append(f"row {i}: no customer_id")
            continue
        try:
            name, v = check_tag(tag, value)
        except TagError as exc:
            problems.append(f"row {i} (customer {cid}): {exc}")
            continue
        rows.append((str(cid).strip(), name, v))
    if problems:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise TagError("no tags were stored; fix these rows:\n" + "\n".join(problems[:20]) + more)
    return pd.DataFrame(rows, columns=["customer_id", "tag", "value"])


def set_tags(store: Store, frame: pd.DataFrame, at: datetime | None = None) -> int:
    """Store the owner's tags (customer_id, tag, value); a value of None or "" removes that tag.

    All rows are checked first (unknown values refused with the allowed ones; customers must be
    known to the store) and written in one transaction, or none is.  Returns the rows written.
    """
    rows = check_tags(frame).drop_duplicates(["customer_id", "tag"], keep="last")
    _check_customers(store, sorted(set(rows["customer_id"])))
    when = at or now_utc()
    keep = rows[rows["value"].notna()].assign(set_at=when)[COLUMNS]
    with store.transaction() as tx:
        tx.executemany("DELETE FROM owner_tags WHERE customer_id = ? AND tag = ?",
                       list(zip(rows["customer_id"], rows["tag"])))
        return tx.insert("owner_tags", keep) if len(keep) else 0


def _check_customers(store: Store, ids: Sequence[str]) -> None:
    if not ids:
        return
    sql = ("WITH ids AS (SELECT DISTINCT unnest(CAST(? AS TEXT[])) AS customer_id) SELECT customer_id FROM ids "
           "WHERE customer_id NOT IN (SELECT customer_id FROM customers WHERE customer_id IS NOT NULL) "
           "AND customer_id NOT IN (SELECT customer_id FROM transactions WHERE customer_id IS NOT NULL) "
           "ORDER BY customer_id")
    missing = store.query(sql, [list(ids)])["customer_id"].tolist()
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise TagError(f"no tags were stored: unknown customer{'s' if len(missing) > 1 else ''} {shown} (not in "
                       "the store's customers or orders; check the id, or import the customer first)")


def read_tags(store: Store, customer_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The owner's tags, one row per customer and tag (customer_id, tag, value, set_at)."""
    if customer_ids is None:
        df = store.query("SELECT customer_id, tag, value, set_at FROM owner_tags ORDER BY customer_id, tag")
    else:
        df = store.query("SELECT customer_id, tag, value, set_at FROM owner_tags WHERE customer_id IN "
                         "(SELECT unnest(CAST(? AS TEXT[]))) ORDER BY customer_id, tag", [list(customer_ids)])
    return df


def tags_wide(tags: pd.DataFrame) -> pd.DataFrame:
    """One row per tagged customer: a column per built-in tag and `other_tags` ("name=value; ...")."""
    if tags.empty:
        return pd.DataFrame(columns=["customer_id", *TAGS, "other_tags"])
    t = tags.assign(customer_id=tags["customer_id"].astype(str))
    built = t[t["tag"].isin(list(TAGS))].pivot(index="customer_id", columns="tag", values="value")
    free = t[~t["tag"].isin(list(TAGS))]
    labels = [a if b == "yes" else f"{a}={b}" for a, b in zip(free["tag"], free["value"])]
    other = pd.Series(labels, index=free["customer_id"], dtype=object).groupby(level=0).agg("; ".join)
    ids = sorted(set(t["customer_id"]))
    out = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
    for name in TAGS:
        out[name] = built[name].reindex(ids) if name in built else None
    out["other_tags"] = other.reindex(ids)
    return out.reset_index()


def _measured(portfolio: Any) -> pd.DataFrame:
    """customer_id, quadrant, value_tier, clv, value_score from a Portfolio, a Store or a customers frame."""
    from clientfolio.portfolio import Portfolio

    if isinstance(portfolio, Store):
        df = portfolio.query("SELECT * FROM customer_state LIMIT 0")
        cols = {"seg_portfolio": "quadrant", "seg_value_tier": "value_tier", "clv": "clv", "value_score": "value_score",
                "seg_lifecycle": "lifecycle"}
        have = [c for c in cols if c in df.columns]
        df = portfolio.query(f"SELECT customer_id, {', '.join(have)} FROM customer_state").rename(columns=cols)
    else:
        df = portfolio.customers if isinstance(portfolio, Portfolio) else portfolio
        df = df[[c for c in ("customer_id", "quadrant", "value_tier", "clv", "value_score", "lifecycle") if c in df]]
    df = df.copy()
    df["customer_id"] = df["customer_id"].astype(str)
    return df


def tagged_portfolio(portfolio: Any, tags: pd.DataFrame) -> pd.DataFrame:
    """The owner's tags beside the measured value, one row per tagged customer, disagreements first.

    `portfolio`: a Portfolio, a Store (its current customer_state) or a customers frame;
    `tags`: from :func:`read_tags` (long) or :func:`tags_wide`.  Columns: customer_id, quadrant,
    value_tier, clv, value_score, the tags, `owner_view` (strategic / low / neutral), and
    `disagreement` (plain words; empty when owner and data agree).
    """
    wide = tags_wide(tags) if "tag" in tags.columns else tags.copy()
    wide["customer_id"] = wide["customer_id"].astype(str)
    out = wide.merge(_measured(portfolio), on="customer_id", how="left")
    views, notes = [], []
    for r in out.itertuples(index=False):
        d = r._asdict()
        strategic = d.get("strategic_fit") == "high" or d.get("key_account") == "yes" or d.get("partner") == "yes"
        low = d.get("strategic_fit") == "low" or d.get("growth_potential") == "low"
        quadrant = d.get("quadrant")
        why = [w for w, on in (("high strategic fit", d.get("strategic_fit") == "high"),
                                ("key account", d.get("key_account") == "yes"),
                                ("partner", d.get("partner") == "yes")) if on]
        note = ""
        if not isinstance(quadrant, str):
            note = "not in the analysed portfolio (no orders up to the last analysis)"
        elif strategic and quadrant == "Review":
            note = (f"you mark them {' and '.join(why)}, the data puts them in Review (low value now and ahead): "
                    "keep despite the numbers? Say why, and what would change it")
        elif d.get("growth_potential") == "high" and quadrant in ("Review", "Maintain"):
            note = (f"you see high growth potential, the data little ({quadrant}): what do you know that the orders "
                    "do not show yet?")
        elif low and quadrant == "Stars":
            note = ("the data puts them among your Stars (high value now and ahead), you mark them low "
                    f"{'strategic fit' if d.get('strategic_fit') == 'low' else 'growth potential'}: worth a second "
                    "look before any change in service")
        views.append("strategic" if strategic else ("low" if low else "neutral"))
        notes.append(note)
    out["owner_view"] = views
    out["disagreement"] = notes
    out["_has"] = (out["disagreement"] != "") & out["quadrant"].notna()
    out = out.sort_values(["_has", "customer_id"], ascending=[False, True]).drop(columns="_has")
    return out.reset_index(drop=True)
