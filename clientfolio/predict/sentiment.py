"""Sentiment of customers' free text (reviews, support tickets), per-customer signals and themes.

Languages covered: **English only**.  Scores come from VADER (``vaderSentiment``, a rule-based
lexicon of about 7,500 English words and emoticons that ships inside the package: nothing is
downloaded at run time).  VADER reads every text as English: a German "Das Brot war sehr gut"
scores as strongly *negative*.  So each text is first checked cheaply for English (share of English
function words against those of German, French, Spanish, Italian, Dutch and Portuguese, and the
share of Latin letters); texts that are not English are counted as "not scored" and never enter a
mean as if they were neutral.

A text's score is VADER's ``compound`` in [-1, 1]; it is *negative* at or below -0.05 and
*positive* at or above +0.05 (VADER's published thresholds).

Per customer (:func:`customer_signals`): mean and last sentiment, negative texts in the last 90
days, and open complaints.  Tickets carry no open/closed status in most exports: a complaint
(a ticket with a complaint topic, or a negative ticket text) counts as *open* when its status says
so, or, without a status, when it was filed in the last ``open_days`` days (30) — the signal says
which rule it used.

Themes (:class:`ThemeModel`): what people write about, not only how they feel — TF-IDF over words
and word pairs, factorised by NMF (scikit-learn) into a few themes named by their top words; each
text goes to its strongest theme; per segment, the share of texts on each theme, their mean
sentiment and an example snippet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clientfolio.core.errors import ClientfolioError

LANGUAGES: tuple[str, ...] = ("en",)
LANGUAGE_NOTE = "Sentiment covers English texts only; texts in other languages are counted as not scored."
NEGATIVE = -0.05
POSITIVE = 0.05
RECENT_DAYS = 90
OPEN_DAYS = 30
MIN_TEXTS_SEGMENT = 10  # fewer texts in a segment: "too few texts to say"
TEXT_KEYS = ("text", "message", "body", "comment", "description", "subject")
COMPLAINT_TOPICS = frozenset({
    "wrong_order", "quality_issue", "damaged_cake", "damaged", "late_delivery", "loyalty_stamps_missing",
    "staff_complaint", "product_quality", "order_not_ready", "missing_items", "complaint", "refund",
    "not_delivered", "billing_error", "rude_staff"})
CLOSED = frozenset({"closed", "resolved", "solved", "done", "answered"})

# Function words: frequent, short and language-specific; enough to tell English from its neighbours.
_STOP = {
    "en": set("the a an and or but is are was were be been it its this that these those i you he she we they my your "
              "our their me us them of to in on at for with from by as not no so very too than then there here "
              "have has had do did does will would can could should just again never always what when all though "
              "although up out over about more some only also get got go going keep like really well much one "
              "if because".split()),
    "de": set("der die das und ist nicht ein eine zu mit auf für sehr war waren ich wir sie es den dem des im "
              "aber auch noch nur wie bei von schon immer wieder kein keine".split()),
    "fr": set("le la les et est une un des du de pas très je nous vous il elle ce cette avec pour sur mais "
              "était sont au aux qui que plus trop toujours jamais bien".split()),
    "es": set("el la los las y es un una de del que muy no con por para pero estaba fue son al lo se su "
              "mas más siempre nunca bien".split()),
    "it": set("il lo la gli le e è un una di del che molto non con per ma era sono al della nel sempre mai "
              "bene anche".split()),
    "nl": set("de het een en is niet van met op voor maar was waren ik wij zij heel erg te dat ook nog "
              "altijd nooit goed".split()),
    "pt": set("o a os as e é um uma de do da que muito não com por para mas era foi são ao sempre nunca "
              "bem também".split()),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _analyzer() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ClientfolioError("sentiment needs the vaderSentiment package (pip install vaderSentiment)") from e
    return SentimentIntensityAnalyzer()


def _lexicon() -> dict:
    global _LEX
    if _LEX is None:
        _LEX = _analyzer().lexicon
    return _LEX


_LEX: dict | None = None


def detect_english(text: str) -> tuple[bool, str]:
    """Is `text` English?  Returns (yes, reason) from function-word counts and the share of Latin letters."""
    if not isinstance(text, str) or not text.strip():
        return False, "empty"
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False, "no words"
    latin = sum(c.isascii() for c in letters) / len(letters)
    if latin < 0.8:
        return False, "not English (non-Latin script)"
    words = [w.lower() for w in _WORD.findall(text)]
    hits = {lang: sum(w in s for w in words) for lang, s in _STOP.items()}
    en = hits.pop("en")
    other_lang, other = max(hits.items(), key=lambda kv: kv[1])
    if other > en:
        return False, f"not English (looks like {other_lang})"
    if len(words) >= 4 and en == 0 and sum(w in _lexicon() for w in words) < 2:
        return False, "not English (no English function words)"
    return True, "English"


def score_texts(texts: Iterable[str]) -> pd.DataFrame:
    """One row per text: ``sentiment`` (VADER compound, NaN when not scored), ``scored``, ``language``, ``reason``.

    Texts that are not English (or empty) get ``scored`` False and NaN sentiment, never 0.
    """
    sia = _analyzer()
    rows = []
    for t in texts:
        ok, why = detect_english(t)
        rows.append({"sentiment": float(sia.polarity_scores(t)["compound"]) if ok else np.nan,
                     "scored": ok, "language": "en" if ok else "not scored", "reason": why})
    return pd.DataFrame(rows, columns=["sentiment", "scored", "language", "reason"])


def _props(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            out = json.loads(value)
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}
    return {}


def texts_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """Reviews and support tickets from an events table (customer_id, ts, type, properties JSON).

    Columns: customer_id, ts (UTC), type, text (None when the event has none, e.g. a ticket with only
    a topic), rating, source, topic, status, complaint (a ticket with a complaint topic).
    """
    need = {"customer_id", "ts", "type", "properties"}
    if not need <= set(events.columns):
        raise ClientfolioError(f"events need columns {sorted(need)}; they have {list(events.columns)}")
    ev = events[events["type"].isin(["review", "support_ticket"]) & events["customer_id"].notna()]
    rows = []
    for cid, ts, kind, props in zip(ev["customer_id"], ev["ts"], ev["type"], ev["properties"], strict=True):
        p = _props(props)
        text = next((str(p[k]) for k in TEXT_KEYS if p.get(k) not in (None, "")), None)
        topic = p.get("topic")
        rows.append({"customer_id": str(cid), "ts": ts, "type": kind, "text": text, "rating": p.get("rating"),
                     "source": p.get("source"), "topic": topic, "status": p.get("status"),
                     "complaint": kind == "support_ticket" and str(topic).lower() in COMPLAINT_TOPICS})
    out = pd.DataFrame(rows, columns=["customer_id", "ts", "type", "text", "rating", "source", "topic", "status",
                                      "complaint"])
    out["ts"] = pd.to_datetime(out["ts"], utc=True, format="mixed")
    out["rating"] = pd.to_numeric(out["rating"], errors="coerce")
    return out.sort_values(["ts", "customer_id"], kind="stable").reset_index(drop=True)


def scored_texts(events: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """:func:`texts_from_events` up to `as_of` (inclusive), with :func:`score_texts` columns added."""
    t = texts_from_events(events)
    if as_of is not None:
        t = t[t["ts"] <= _ts(as_of)].reset_index(drop=True)
    has = t["text"].notna()
    s = score_texts(t.loc[has, "text"].tolist())
    s.index = t.index[has]
    t = t.join(s)
    t.loc[~has, ["scored", "language", "reason"]] = [False, "no text", "no text"]
    t["scored"] = t["scored"].astype(bool)
    t["negative"] = t["sentiment"] <= NEGATIVE
    # a ticket whose text reads negative is a complaint too, whatever its topic
    t["complaint"] = t["complaint"] | ((t["type"] == "support_ticket") & t["negative"])
    return t


def _ts(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def rating_agreement(texts: pd.DataFrame) -> dict[str, float]:
    """How well the scores agree with star ratings where both exist: Spearman rho with a 95% interval.

    The interval (Fisher z, for this one correlation) covers the rank correlation between sentiment
    and stars among the scored texts that have a rating.
    """
    both = texts[texts["scored"] & texts["rating"].notna()]
    n = len(both)
    if n < 10:
        return {"n": float(n), "spearman": float("nan"), "low": float("nan"), "high": float("nan"),
                "pearson": float("nan")}
    rho = float(stats.spearmanr(both["sentiment"], both["rating"]).statistic)
    z, se = np.arctanh(min(rho, 0.999999)), 1.06 / np.sqrt(n - 3)  # Fieller et al.'s variance for Spearman
    return {"n": float(n), "spearman": rho, "low": float(np.tanh(z - 1.96 * se)), "high": float(np.tanh(z + 1.96 * se)),
            "pearson": float(np.corrcoef(both["sentiment"], both["rating"])[0, 1])}


def customer_signals(events: pd.DataFrame, as_of: Any, *, recent_days: int = RECENT_DAYS,
                     open_days: int = OPEN_DAYS) -> pd.DataFrame:
    """Per-customer sentiment signals as of `as_of`, indexed by customer_id; only texts up to as_of count.

    Columns: ``texts`` (reviews and tickets with text), ``texts_not_scored`` (not English),
    ``mean_sentiment`` and ``last_sentiment`` (NaN without a scored text), ``negative_texts_90d``
    (scored texts at or below -0.05 in the last `recent_days` days), ``open_complaints`` (see the
    module notes), ``avg_rating``.  ``attrs["languages"]`` and ``attrs["note"]`` say what is covered
    and which open-complaint rule applied.
    """
    day = _ts(as_of)
    t = scored_texts(events, day)
    with_text = t[t["text"].notna()]
    g = with_text.groupby("customer_id")
    sc = with_text[with_text["scored"]]
    out = pd.DataFrame({"texts": g.size(), "texts_not_scored": g["scored"].apply(lambda s: int((~s).sum()))})
    out["mean_sentiment"] = sc.groupby("customer_id")["sentiment"].mean()
    out["last_sentiment"] = sc.groupby("customer_id")["sentiment"].last()
    recent = sc[sc["ts"] > day - pd.Timedelta(days=recent_days)]
    out = out.reindex(out.index.union(t["customer_id"].unique()))
    out[["texts", "texts_not_scored"]] = out[["texts", "texts_not_scored"]].fillna(0).astype(int)
    out[f"negative_texts_{recent_days}d"] = recent[recent["negative"]].groupby("customer_id").size()
    has_status = t["status"].notna().any()
    comp = t[t["complaint"]]
    if has_status:
        open_ = comp[~comp["status"].astype(str).str.lower().isin(CLOSED)]
        rule = "a complaint is open while its status is not closed or resolved"
    else:
        open_ = comp[comp["ts"] > day - pd.Timedelta(days=open_days)]
        rule = f"tickets carry no status: a complaint counts as open for {open_days} days after it was filed"
    out["open_complaints"] = open_.groupby("customer_id").size()
    out["avg_rating"] = t.groupby("customer_id")["rating"].mean()
    for c in (f"negative_texts_{recent_days}d", "open_complaints"):
        out[c] = out[c].fillna(0).astype(int)
    out.index.name = "customer_id"
    out.attrs["languages"] = list(LANGUAGES)
    out.attrs["note"] = f"{LANGUAGE_NOTE} Open complaints: {rule}."
    out.attrs["texts_not_scored"] = int(out["texts_not_scored"].sum())
    return out


FEATURES = ("mean_sentiment", "negative_share", "texts_scored")


def sentiment_features(texts: pd.DataFrame) -> pd.DataFrame:
    """Per-customer sentiment features from :func:`scored_texts` rows, indexed by customer_id.

    ``mean_sentiment`` (mean VADER compound of the customer's scored texts), ``negative_share``
    (share of them at or below -0.05) and ``texts_scored`` (how many).  Only customers with a
    scored text get a row: everyone else's mean and share are *missing*, never 0 (no text is not a
    neutral text); their count is 0.  Every value is a function of the customer's own texts only,
    so a live update folds new texts in (:func:`fold_sentiment`) and gets the same numbers.
    """
    sc = texts[texts["scored"]]
    g = sc.groupby(sc["customer_id"].astype(str))["sentiment"]
    out = pd.DataFrame({"mean_sentiment": g.mean(), "negative_share": g.apply(lambda s: float((s <= NEGATIVE).mean())),
                        "texts_scored": g.size().astype(float)})
    out.index.name = "customer_id"
    return out


def fold_sentiment(mean: float, share: float, n: float, scores: Sequence[float]) -> tuple[float, float, float]:
    """A customer's (mean_sentiment, negative_share, texts_scored) after adding newly scored texts' scores."""
    new = [float(s) for s in scores if s == s]
    if not new:
        return mean, share, n
    n0 = 0.0 if n != n or not n else float(n)
    total = (mean * n0 if n0 else 0.0) + sum(new)
    negatives = (share * n0 if n0 else 0.0) + sum(1 for s in new if s <= NEGATIVE)
    n1 = n0 + len(new)
    return total / n1, negatives / n1, n1


def with_signals(customers: pd.DataFrame, signals: pd.DataFrame) -> pd.DataFrame:
    """`customers` (with a customer_id column) plus the signal columns; customers without texts get 0 counts.

    The result feeds rule segments as it is (``RuleSet.evaluate(with_signals(p.customers, sig))`` with
    e.g. ``{field: negative_texts_90d, gte: 1}`` or ``{field: open_complaints, gte: 1}``), and any
    scorer or audit that reads the customers frame (``fairness_audit`` keeps unknown columns).
    """
    sig = signals.copy()
    sig.index = sig.index.astype(str)
    keep = [c for c in sig.columns if c not in customers.columns]
    out = customers.merge(sig[keep], left_on=customers["customer_id"].astype(str), right_index=True, how="left")
    out = out.drop(columns="key_0", errors="ignore")
    for c in keep:
        if c in ("texts", "texts_not_scored", "open_complaints") or c.startswith("negative_texts_"):
            out[c] = out[c].fillna(0).astype(int)
    return out


# --- themes -----------------------------------------------------------------------------------------

class ThemeModel:
    """Themes people write about: TF-IDF (words and word pairs, English stop words removed) + NMF.

    ``fit(texts)`` learns ``vectorizer_``, ``nmf_`` and ``themes_`` (a name from the top words and
    the top words per theme); ``transform(texts)`` gives each text's strongest theme (-1: none).
    """

    def __init__(self, n_themes: int = 6, *, top_words: int = 4, min_df: int = 3, random_state: int = 0) -> None:
        self.n_themes = n_themes
        self.top_words = top_words
        self.min_df = min_df
        self.random_state = random_state

    def fit(self, texts: Sequence[str]) -> ThemeModel:
        from sklearn.decomposition import NMF
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        if len(texts) < max(2 * self.n_themes, 20):
            raise ClientfolioError(f"too few texts ({len(texts)}) to find {self.n_themes} themes")
        self.vectorizer_ = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), min_df=self.min_df,
                                           sublinear_tf=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
        x = self.vectorizer_.fit_transform(texts)
        k = min(self.n_themes, x.shape[1] - 1)
        self.nmf_ = NMF(n_components=k, init="nndsvda", random_state=self.random_state, max_iter=500).fit(x)
        words = self.vectorizer_.get_feature_names_out()
        self.themes_ = []
        for comp in self.nmf_.components_:
            top = [words[i] for i in np.argsort(comp)[::-1][: self.top_words * 3]]
            name, seen = [], set()
            for term in top:  # "lovely staff" after "lovely" and "staff" adds nothing to the name
                if not set(term.split()) <= seen:
                    name.append(term)
                    seen |= set(term.split())
            self.themes_.append({"theme": ", ".join(name[:3]), "words": top[: self.top_words]})
        return self

    def transform(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(theme index per text, its weight); -1 and 0 for texts with no known word."""
        if not hasattr(self, "nmf_"):
            raise ClientfolioError("ThemeModel is not fitted: call fit(texts) first")
        w = self.nmf_.transform(self.vectorizer_.transform([t or "" for t in texts]))
        best = w.argmax(axis=1)
        weight = w.max(axis=1)
        return np.where(weight > 0, best, -1), weight


def themes_by_segment(texts: pd.DataFrame, memberships: pd.Series, *, n_themes: int = 6,
                      min_texts: int = MIN_TEXTS_SEGMENT, random_state: int = 0) -> pd.DataFrame:
    """Per segment and theme: texts, share of the segment's texts, mean sentiment and an example snippet.

    `texts` from :func:`scored_texts` (English texts only are used); `memberships` maps customer_id ->
    segment (e.g. ``portfolio.customers.set_index("customer_id")["lifecycle"]``).  A segment with fewer
    than `min_texts` texts gets one row saying so (theme "too few texts to say").
    """
    en = texts[texts["scored"]].reset_index(drop=True)
    model = ThemeModel(n_themes, random_state=random_state).fit(en["text"].tolist())
    theme, weight = model.transform(en["text"].tolist())
    names = [t["theme"] for t in model.themes_]
    en = en.assign(theme=[names[i] if i >= 0 else "(no theme)" for i in theme], weight=weight)
    seg = memberships.copy()
    seg.index = seg.index.astype(str)
    en["segment"] = en["customer_id"].map(seg).fillna("(no segment)").astype(str)
    rows = []
    for s, grp in en.groupby("segment", sort=True):
        if len(grp) < min_texts:
            rows.append({"segment": s, "theme": "too few texts to say", "texts": len(grp), "share": np.nan,
                         "mean_sentiment": np.nan, "example": ""})
            continue
        for th, tg in grp.groupby("theme"):
            ex = tg.sort_values("weight", ascending=False)["text"].iloc[0]
            rows.append({"segment": s, "theme": th, "texts": len(tg), "share": len(tg) / len(grp),
                         "mean_sentiment": float(tg["sentiment"].mean()),
                         "example": ex if len(ex) <= 140 else ex[:137] + "…"})
    out = pd.DataFrame(rows)
    out = out.sort_values(["segment", "texts"], ascending=[True, False], kind="stable").reset_index(drop=True)
    out.attrs["themes"] = model.themes_
    out.attrs["note"] = LANGUAGE_NOTE
    return out


def summary(texts: pd.DataFrame) -> list[str]:
    """Plain sentences: how many texts, how many scored, the share negative, and the agreement with stars."""
    has_text = texts["text"].notna()
    sc = texts[texts["scored"]]
    out = [f"{int(has_text.sum()):,} reviews and tickets with text; {len(sc):,} scored (English); "
           f"{int(has_text.sum() - len(sc)):,} not scored (not English or no words). {LANGUAGE_NOTE}"]
    if len(sc):
        out.append(f"{(sc['sentiment'] <= NEGATIVE).mean():.0%} of scored texts read negative, "
                   f"{(sc['sentiment'] >= POSITIVE).mean():.0%} positive; mean score {sc['sentiment'].mean():+.2f} "
                   "(VADER compound, −1 to +1).")
    a = rating_agreement(texts)
    if not np.isnan(a["spearman"]):
        out.append(f"Scores agree with the star ratings: rank correlation {a['spearman']:.2f} "
                   f"(95% interval {a['low']:.2f} to {a['high']:.2f}, over {int(a['n']):,} rated reviews).")
    else:
        out.append(f"Too few rated reviews ({int(a['n'])}) to check the scores against star ratings.")
    return out
