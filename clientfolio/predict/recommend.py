"""Cross-sell and up-sell recommendations, each with a "because you bought …" reason.

Cross-sell (products the customer has not bought yet), two methods judged against "most popular":

- **co-occurrence** (the default): item-item cosine similarity of the customer × product matrix
  (binary: did the customer ever buy it); a customer's score for a product is the sum of its
  similarities to the products they bought, and the reason names the bought products that
  contribute most.
- **factorisation**: implicit-feedback ALS from the ``implicit`` library (Hu, Koren & Volinsky
  2008) on purchase counts; its reason comes from ALS's own item-by-item explanation.  Where
  ``implicit`` is not installed, scikit-learn's TruncatedSVD on the same matrix is used instead
  (no confidence weighting, so usually weaker) and the Comparison says which ran.

Evaluation on a time split: fitted on purchases up to the cut-off, each method recommends k new
products per customer; a hit is a customer who buys at least one of them in the ``horizon_days``
after the cut-off (customers who buy no new product in that window are not counted).  The better
method by hit rate@k is used only when it beats "most popular"; otherwise most popular is used.

Up-sell, defined simply: for a product the customer buys most in a category, a pricier product
(higher median unit price) of the same category that at least ``min_movers`` other customers
bought for the first time *after* first buying that product ("peers who moved up").
"""

from __future__ import annotations

import warnings
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from clientfolio.predict.verdict import Comparison, Metric

__all__ = ["Recommender", "Method", "MIN_EVAL_CUSTOMERS"]

Method = Literal["cooccurrence", "factorisation", "popular"]
MIN_EVAL_CUSTOMERS = 30  # fewer customers buying something new after the cut-off: too thin to judge
MIN_PRODUCTS = 5
_NAMES = {"cooccurrence": "item co-occurrence", "factorisation": "factorisation", "popular": "most popular"}


def _prepare(transactions: pd.DataFrame) -> pd.DataFrame:
    need = {"customer_id", "order_id", "ts", "product_id", "amount"}
    missing = need - set(transactions.columns)
    if missing:
        raise ValueError(f"transactions lack column(s) {sorted(missing)} needed for recommendations")
    cols = [c for c in ["customer_id", "order_id", "ts", "product_id", "category", "amount", "quantity"]
            if c in transactions.columns]
    t = transactions.loc[transactions["customer_id"].notna() & transactions["product_id"].notna(), cols].copy()
    t["customer_id"] = t["customer_id"].astype(str)
    t["product_id"] = t["product_id"].astype(str)
    if "category" not in t.columns:
        t["category"] = ""
    t["category"] = t["category"].fillna("").astype(str)
    if "quantity" not in t.columns:
        t["quantity"] = 1
    s = pd.to_datetime(t["ts"])
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    t["day"] = s.dt.normalize()
    return t


class _Fitted:
    """Everything one fit on purchases up to a day learns: the matrix, similarities, factors, prices."""

    def __init__(self, t: pd.DataFrame, factors: int, random_state: int) -> None:
        self.customers = np.array(sorted(t["customer_id"].unique()), dtype=object)
        self.products = np.array(sorted(t["product_id"].unique()), dtype=object)
        self.c_index = {c: i for i, c in enumerate(self.customers)}
        self.p_index = {p: i for i, p in enumerate(self.products)}
        counts = t.groupby(["customer_id", "product_id"])["order_id"].nunique()
        rows = counts.index.get_level_values(0).map(self.c_index).to_numpy()
        cols = counts.index.get_level_values(1).map(self.p_index).to_numpy()
        shape = (len(self.customers), len(self.products))
        self.counts = sp.csr_matrix((counts.to_numpy(dtype=np.float32), (rows, cols)), shape=shape)
        self.binary = (self.counts > 0).astype(np.float32).tocsr()
        self.popularity = np.asarray(self.binary.sum(axis=0)).ravel()
        norms = np.sqrt(self.popularity)
        norms[norms == 0] = 1.0
        co = (self.binary.T @ self.binary).toarray()
        np.fill_diagonal(co, 0.0)
        self.similarity = co / np.outer(norms, norms)  # cosine between products over customers
        first = t.drop_duplicates("product_id").set_index("product_id")
        self.category = first["category"].reindex(self.products).to_numpy()
        unit = (t["amount"] / t["quantity"].where(t["quantity"] > 0)).groupby(t["product_id"]).median()
        self.price = unit.reindex(self.products).to_numpy(dtype=float)
        self.factor_lib, self.als, self.user_f, self.item_f = self._factorise(factors, random_state)

    def _factorise(self, factors: int, random_state: int) -> tuple[str, object, np.ndarray, np.ndarray]:
        k = max(1, min(factors, len(self.products) - 1, len(self.customers) - 1))
        try:
            from implicit.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - the fallback when implicit is not installed
            from sklearn.decomposition import TruncatedSVD

            svd = TruncatedSVD(n_components=k, random_state=random_state)
            u = svd.fit_transform(self.binary)
            return "scikit-learn TruncatedSVD", None, u, svd.components_.T
        self.weighted = sp.csr_matrix(np.log1p(self.counts.toarray()) * 20.0)  # confidence grows with repeats
        with threadpool_limits(1, "blas"), warnings.catch_warnings():  # one thread: same seed, same factors
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            als = AlternatingLeastSquares(factors=k, iterations=15, regularization=0.05, random_state=random_state,
                                          num_threads=1)
            als.fit(self.weighted, show_progress=False)
        return "implicit ALS", als, np.asarray(als.user_factors), np.asarray(als.item_factors)

    def scores(self, method: Method, rows: np.ndarray) -> np.ndarray:
        """Scores for the customers at ``rows`` over every product (bought products are set to -inf)."""
        b = self.binary[rows]
        if method == "cooccurrence":
            s = np.asarray(b @ self.similarity)
            s = s + 1e-6 * self.popularity  # ties: the more popular product first
        elif method == "factorisation":
            s = self.user_f[rows] @ self.item_f.T + 1e-9 * self.popularity
        else:
            s = np.tile(self.popularity.astype(float), (len(rows), 1))
        s = np.array(s, dtype=float)
        s[b.toarray() > 0] = -np.inf
        return s

    def because(self, method: Method, row: int, item: int, n: int = 2) -> list[str]:
        """The customer's bought products that most support recommending ``item``."""
        bought = self.binary[row].indices
        if len(bought) == 0:
            return []
        if method == "factorisation" and self.als is not None:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1, "blas"):
                _, contrib, _ = self.als.explain(row, self.weighted, item, N=n)  # type: ignore[attr-defined]
            return [str(self.products[i]) for i, w in contrib if w > 0][:n]
        if method == "factorisation":
            sim = self.item_f[bought] @ self.item_f[item]
        else:
            sim = self.similarity[bought, item]
        order = np.argsort(-sim, kind="stable")
        return [str(self.products[bought[i]]) for i in order[:n] if sim[i] > 0]


def _hit_gap(res: dict[str, dict[str, float]], best: str) -> float:
    """Hit rate of ``best`` minus that of most popular."""
    return res[best]["hit_rate"] - res["popular"]["hit_rate"]


def _paired_interval(a: np.ndarray, b: np.ndarray, seed: int, draws: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of mean(a) - mean(b), resampling the same customers for both (paired)."""
    rng = np.random.default_rng(seed)
    d = a.astype(float) - b.astype(float)
    idx = rng.integers(0, len(d), size=(draws, len(d)))
    means = d[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, best first (stable on ties)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


class Recommender:
    """Cross-sell and up-sell per customer; the method is chosen per shop by hit rate@k on a time split.

    ``fit`` evaluates co-occurrence, factorisation and most popular on the split at ``cutoff``
    (default: the last day minus ``horizon_days``), stores the :class:`Comparison` in
    ``comparison_`` and the method used in ``method_``, then refits on every purchase.
    ``method`` forces one ("auto" chooses).
    """

    def __init__(self, k: int = 5, horizon_days: int = 60, method: Literal["auto", "cooccurrence", "factorisation",
                 "popular"] = "auto", factors: int = 16, min_movers: int = 3, random_state: int = 0) -> None:
        self.k = k
        self.horizon_days = horizon_days
        self.method = method
        self.factors = factors
        self.min_movers = min_movers
        self.random_state = random_state

    def _evaluate(self, t: pd.DataFrame, cut: pd.Timestamp) -> tuple[dict[str, dict[str, float]], int, int, list[str]]:
        h, k = int(self.horizon_days), int(self.k)
        before = t[t["day"] <= cut]
        after = t[(t["day"] > cut) & (t["day"] <= cut + pd.Timedelta(days=h))]
        thin: list[str] = []
        if before.empty:
            return {}, 0, 0, ["no purchases before the cut-off"]
        fit = _Fitted(before, self.factors, self.random_state)
        known = after[after["customer_id"].isin(fit.c_index) & after["product_id"].isin(fit.p_index)]
        pairs = known.drop_duplicates(["customer_id", "product_id"])
        rows = pairs["customer_id"].map(fit.c_index).to_numpy()
        cols = pairs["product_id"].map(fit.p_index).to_numpy()
        fut = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=fit.binary.shape)
        new = (fut - fut.multiply(fit.binary)).tocsr()  # products bought after the cut-off for the first time
        users = np.flatnonzero(np.diff(new.indptr) > 0)
        n_train = len(fit.customers)
        if len(users) < MIN_EVAL_CUSTOMERS:
            thin.append(f"only {len(users)} customers bought a product new to them in the {h} days after the cut-off "
                        f"(at least {MIN_EVAL_CUSTOMERS} are needed)")
        if len(fit.products) < MIN_PRODUCTS:
            thin.append(f"only {len(fit.products)} products were sold before the cut-off (at least {MIN_PRODUCTS})")
        if thin:
            return {}, n_train, len(users), thin
        truth = new[users]
        res: dict[str, dict[str, float]] = {}
        self._hits: dict[str, np.ndarray] = {}
        for m in ("cooccurrence", "factorisation", "popular"):
            top = _top_k(fit.scores(m, users), k)  # type: ignore[arg-type]
            hits = np.take_along_axis(truth.toarray(), top, axis=1)
            n_new = np.asarray(truth.sum(axis=1)).ravel()
            self._hits[m] = hits.sum(axis=1) > 0
            res[m] = {"hit_rate": float((hits.sum(axis=1) > 0).mean()),
                      "recall": float((hits.sum(axis=1) / n_new).mean()),
                      "coverage": float(len(np.unique(top)) / len(fit.products))}
        res["factorisation"]["library"] = fit.factor_lib  # type: ignore[assignment]
        return res, n_train, len(users), thin

    def fit(self, transactions: pd.DataFrame, cutoff: date | None = None) -> "Recommender":
        """Evaluate the methods on the split at ``cutoff``, choose one, refit on every purchase."""
        if self.k < 1 or self.horizon_days < 1:
            raise ValueError(f"k and horizon_days must be 1 or more, got k={self.k}, horizon_days={self.horizon_days}")
        if self.method not in ("auto", "cooccurrence", "factorisation", "popular"):
            raise ValueError(f"method must be auto, cooccurrence, factorisation or popular, got {self.method!r}")
        t = _prepare(transactions)
        if t.empty:
            raise ValueError("no transactions with a customer and a product: nothing to recommend")
        last = t["day"].max()
        cut = pd.Timestamp(cutoff) if cutoff is not None else last - pd.Timedelta(days=self.horizon_days)
        res, n_train, n_test, thin = self._evaluate(t, cut)
        k = self.k
        self.fitted_ = _Fitted(t, self.factors, self.random_state)
        self.names_ = {**_NAMES, "factorisation": f"factorisation ({self.fitted_.factor_lib})"}
        names = self.names_
        if thin:
            nan = float("nan")
            best = "cooccurrence"
            metrics: tuple[Metric, ...] = (Metric(f"hit rate@{k}", nan, nan, "higher", "not computed: data too thin"),)
            chosen: Literal["model", "baseline"] = "baseline"
            sentence = ("Most popular products are recommended: the data are too thin to judge a personalised "
                        "method (" + "; ".join(thin) + ").")
        else:
            best = max(("cooccurrence", "factorisation"), key=lambda m: (res[m]["hit_rate"], m == "cooccurrence"))
            other = "factorisation" if best == "cooccurrence" else "cooccurrence"
            note = (f"{n_test} customers who bought a product new to them in the {self.horizon_days} days after the "
                    f"cut-off")
            metrics = (Metric(f"hit rate@{k}", res[best]["hit_rate"], res["popular"]["hit_rate"], "higher", note),
                       Metric(f"recall@{k}", res[best]["recall"], res["popular"]["recall"], "higher", note),
                       Metric(f"coverage@{k}", res[best]["coverage"], res["popular"]["coverage"], "higher",
                              "share of products recommended to anyone"))
            chosen = "model" if metrics[0].model_wins else "baseline"
            lo, hi = _paired_interval(self._hits[best], self._hits["popular"], self.random_state)
            ci = (f"; {names[best]} minus most popular: {_hit_gap(res, best) * 100:+.1f} points, 95% paired "
                  f"bootstrap interval over these {n_test} customers {lo * 100:+.1f} to {hi * 100:+.1f}")
            hb, hp, ho = res[best]["hit_rate"], res["popular"]["hit_rate"], res[other]["hit_rate"]
            if chosen == "model":
                sentence = (f"{names[best].capitalize()} is used: {hb:.0%} of customers bought one of its {k} "
                            f"suggestions in the next {self.horizon_days} days, against {hp:.0%} for the most "
                            f"popular products and {ho:.0%} for {names[other]}{ci}.")
            else:
                sentence = (f"Most popular products are recommended: neither personalised method beat them "
                            f"(hit rate@{k} {hp:.0%} against {hb:.0%} for {names[best]} and {ho:.0%} for "
                            f"{names[other]}{ci}).")
        self.comparison_ = Comparison(
            task="recommendations", model_name=names[best], baseline_name="most popular", metrics=metrics,
            chosen=chosen, sentence=sentence, cutoff=cut.date(), horizon_days=int(self.horizon_days),
            n_train=n_train, n_test=n_test,
            details={"methods": res, "thin": thin, "hit_rate_difference_95ci": None if thin else (lo, hi)})
        auto: Method = best if chosen == "model" else "popular"  # type: ignore[assignment]
        self.method_: Method = auto if self.method == "auto" else self.method  # type: ignore[assignment]
        self.upsell_ = self._upsell_table(t)
        return self

    def _upsell_table(self, t: pd.DataFrame) -> pd.DataFrame:
        """Product X -> pricier product Y of the same category, with how many customers moved from X to Y."""
        f = self.fitted_
        first = t.groupby(["customer_id", "product_id"])["day"].min().reset_index()
        pairs = first.merge(first, on="customer_id", suffixes=("_from", "_to"))
        pairs = pairs[pairs["day_to"] > pairs["day_from"]]
        price = pd.Series(f.price, index=f.products)
        cat = pd.Series(f.category, index=f.products)
        pairs = pairs[(pairs["product_id_from"].map(cat) == pairs["product_id_to"].map(cat))
                      & (pairs["product_id_to"].map(price) > pairs["product_id_from"].map(price))]
        moved = pairs.groupby(["product_id_from", "product_id_to"]).size().rename("movers").reset_index()
        moved = moved[moved["movers"] >= self.min_movers]
        return moved.sort_values(["product_id_from", "movers", "product_id_to"], ascending=[True, False, True],
                                 ignore_index=True)

    def recommend(self, customer_ids: list[str] | None = None, n: int | None = None) -> pd.DataFrame:
        """Recommendations with reasons: customer_id, kind (cross-sell/up-sell), rank, product_id, category,
        method, because.  Customers not seen in the data get none."""
        if not hasattr(self, "fitted_"):
            raise NotFittedError("Recommender is not fitted yet: call fit(transactions) first")
        f, n = self.fitted_, int(n or self.k)
        ids = list(f.customers) if customer_ids is None else [str(c) for c in customer_ids if str(c) in f.c_index]
        rows = np.array([f.c_index[c] for c in ids], dtype=int)
        out: list[dict[str, object]] = []
        if len(rows) == 0:
            return pd.DataFrame(columns=["customer_id", "kind", "rank", "product_id", "category", "method", "because"])
        scores = f.scores(self.method_, rows)
        top = _top_k(scores, n)
        up = {p: list(zip(g["product_id_to"], g["movers"])) for p, g in self.upsell_.groupby("product_id_from")}
        for j, (r, c, items) in enumerate(zip(rows, ids, top)):
            items = [i for i in items if np.isfinite(scores[j, i])]  # never a product already bought
            for rank, i in enumerate(items, 1):
                if self.method_ == "popular":
                    why = f"one of the shop's most popular products ({int(f.popularity[i])} customers)"
                else:
                    names = f.because(self.method_, int(r), int(i))
                    why = ("because you bought " + " and ".join(names) if names else
                           f"no close link to what you bought; bought by {int(f.popularity[i])} customers")
                out.append({"customer_id": c, "kind": "cross-sell", "rank": rank, "product_id": str(f.products[i]),
                            "category": str(f.category[i]), "method": self.names_[self.method_], "because": why})
            counts = f.counts[r]
            favourites: dict[str, tuple[float, str]] = {}
            for j, v in zip(counts.indices, counts.data):
                p = str(f.products[j])
                cat = str(f.category[j])
                if cat not in favourites or (v, p) > favourites[cat]:
                    favourites[cat] = (float(v), p)
            bought = set(f.products[counts.indices])
            rank = 0
            for cat, (_, p) in sorted(favourites.items()):
                step = next(((str(to), int(m)) for to, m in up.get(p, []) if to not in bought), None)
                if step is not None:
                    to, movers = step
                    rank += 1
                    out.append({"customer_id": c, "kind": "up-sell", "rank": rank, "product_id": to, "category": cat,
                                "method": "peers who moved up",
                                "because": (f"because you bought {p}: {movers} customers who bought it went on to "
                                            f"{to} ({f.price[f.p_index[to]]:.2f} against "
                                            f"{f.price[f.p_index[p]]:.2f} a unit)")})
        return pd.DataFrame(out)
