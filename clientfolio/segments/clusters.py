"""Discovered customer clusters, each with a generated plain-language persona.

k-means, a Gaussian mixture or HDBSCAN run on the scaled numeric columns of a per-customer
feature table; the number of groups is chosen by a stated criterion (the silhouette score for
k-means, the ICL or BIC for a Gaussian mixture) and each group gets a name and a sentence built from
what sets it apart (:mod:`clientfolio.segments._personas`).

Scaling: missing values take the column's median; heavy-tailed money and count columns go
through ``log1p``; every column is standardised and clipped to ``±clip`` standard deviations,
so a handful of extreme customers cannot pull a centroid on their own.  Shares and rates stay
on their 0–1 scale before standardising.

Near-duplicate columns (``clv`` and ``clv_high``) are dropped, and the columns of one behaviour
(``orders``, ``orders_per_month``, ``ipt_mean``) share one unit of weight, so no behaviour counts
twice in the distances.

Models are fitted on a fixed-seed sample (10,000 customers by default) and every customer is
then assigned with the fitted model: 100k customers take about a second with k-means.

Example
-------
>>> res = discover_clusters(features, currency="£")          # doctest: +SKIP
>>> res.explanation                                          # doctest: +SKIP
'3 groups: the silhouette score is highest at k=3 (0.72; tried k=2–8).'
>>> res.personas                                             # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError, SchemaError
from clientfolio.segments._membership import as_of_of, membership
from clientfolio.segments._personas import READABLE, describe_cluster, feature_family, persona_name, rank_traits

__all__ = ["ClusterError", "ClusterResult", "ClusterWarning", "DEFAULT_EXCLUDE", "behaviour_columns",
           "discover_clusters", "scale_features", "silhouette_scores"]

Method = Literal["kmeans", "gmm", "hdbscan", "auto"]
Noise = Literal["nearest", "unclustered"]

SEGMENT_KIND = "cluster"
UNCLUSTERED = "Unclustered"
#: Column-name patterns never clustered on unless listed in ``columns`` (ids, holdout outcomes).
DEFAULT_EXCLUDE: tuple[str, ...] = ("*_id", "*_holdout")
HDBSCAN_SAMPLE = 5_000
_LOG_HINTS = ("revenue", "spend", "amount", "value", "clv", "aov", "monetary", "cost", "order", "frequency",
              "purchases", "count", "tickets", "reviews", "ipt", "days", "gap")
_BOUNDED_HINTS = ("share", "rate", "ratio", "p_alive", "rating", "pct", "prob")
_CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "JPY": "¥", "INR": "₹", "CHF": "CHF ", "AUD": "A$",
                     "CAD": "C$", "NZD": "NZ$"}


class ClusterError(ClientfolioError, ValueError):
    """Clustering cannot run as asked (a bad parameter, or too few distinct customers)."""


class ClusterWarning(UserWarning):
    """The request was adjusted (e.g. ``k`` reduced to the number of customers); see ``notes``."""


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """What :func:`discover_clusters` found.

    Attributes
    ----------
    membership
        ``customer_id, segment_kind ("cluster"), segment (persona name), as_of`` — one row
        per customer.
    profiles
        One row per cluster: ``cluster`` (0 = largest; -1 = HDBSCAN's unclustered group),
        ``segment``, ``size``, ``share_customers``, ``share_revenue``, ``distinguishing``
        (the top traits with their z-scores, as text) and ``mean_<feature>`` per feature used.
    personas
        ``cluster, segment, description`` — name and one sentence per cluster.
    traits
        Long table ``cluster, segment, feature, z, cluster_mean, overall_mean, rank``: every
        feature's standardised difference from the overall mean, strongest first.
    criterion
        The model-selection criterion per tried ``k``: ``method, k, criterion, value, chosen``
        (for HDBSCAN: the number of clusters found, the noise share, ``min_cluster_size``).
    chosen_k
        Number of clusters (HDBSCAN's unclustered group not counted).
    explanation
        Why that number, in one sentence.
    features_used, scaling
        The columns clustered on, and how each was imputed, transformed and scaled.
    labels
        Cluster number per customer (index ``customer_id``).
    notes
        Adjustments made (k reduced, columns dropped and why).
    """

    membership: pd.DataFrame
    profiles: pd.DataFrame
    personas: pd.DataFrame
    traits: pd.DataFrame
    criterion: pd.DataFrame
    chosen_k: int
    explanation: str
    method: str
    features_used: tuple[str, ...]
    scaling: pd.DataFrame
    labels: pd.Series
    notes: tuple[str, ...]
    assigner: "ClusterAssigner | None" = None  # assigns new or changed customers to these groups


@dataclass(frozen=True)
class ClusterAssigner:
    """The fitted part of clustering: how to scale a customer's features and which group is nearest.

    Plain numbers only (it is stored with the portfolio state as JSON): the scaling of each column
    used, and k-means centres or a Gaussian mixture's weights, means and precision factors, with
    the mapping from the model's group numbers to the persona names.  HDBSCAN cannot place new
    points, so its groups are assigned by the nearest group mean.
    """

    method: str
    scaling: tuple[dict, ...]  # feature, transform, imputed_with, center, scale, weight
    clip: float
    centers: tuple[tuple[float, ...], ...]  # k-means centres / mixture means / HDBSCAN group means (scaled)
    names: tuple[str, ...]  # persona name per model group
    mix_weights: tuple[float, ...] = ()
    precisions_chol: tuple = ()  # per component, a d x d factor (Gaussian mixture)

    def to_dict(self) -> dict:
        return {"method": self.method, "scaling": list(self.scaling), "clip": self.clip,
                "centers": [list(c) for c in self.centers], "names": list(self.names),
                "mix_weights": list(self.mix_weights),
                "precisions_chol": [np.asarray(p).tolist() for p in self.precisions_chol]}

    @classmethod
    def from_dict(cls, d: dict) -> "ClusterAssigner":
        return cls(method=d["method"], scaling=tuple(d["scaling"]), clip=float(d["clip"]),
                   centers=tuple(tuple(c) for c in d["centers"]), names=tuple(d["names"]),
                   mix_weights=tuple(d.get("mix_weights", ())),
                   precisions_chol=tuple(np.asarray(p) for p in d.get("precisions_chol", ())))

    @property
    def columns(self) -> list[str]:
        return [row["feature"] for row in self.scaling]

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The customers' scaled, clipped, weighted feature matrix (missing columns count as missing values)."""
        cols = []
        for row in self.scaling:
            name = row["feature"]
            if name not in features:
                v = np.full(len(features["customer_id"]) if isinstance(features, dict) else len(features), np.nan)
            elif isinstance(features[name], np.ndarray) and features[name].dtype == np.float64:
                v = features[name]  # a dict of arrays (one customer's update): already numbers
            else:
                v = pd.to_numeric(features[name], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
            v = np.where(np.isfinite(v), v, row["imputed_with"])
            if row["transform"] == "log1p":
                v = np.log1p(np.maximum(v, 0.0))
            elif row["transform"] == "signed log1p":
                v = np.sign(v) * np.log1p(np.abs(v))
            cols.append(np.clip((v - row["center"]) / row["scale"], -self.clip, self.clip) * row["weight"])
        return np.column_stack(cols) if cols else np.empty((len(features), 0))  # a frame: no columns used

    def _arrays(self) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, float]], np.ndarray]:
        """(centres, per mixture component (mean, precision factor, its constant term), names) as arrays, made
        once per assigner: a one-customer update should not convert them every time."""
        got = self.__dict__.get("_arrays_made")
        if got is None:
            centers = np.asarray(self.centers, dtype=float)
            comps = []
            for w, mu, pc in zip(self.mix_weights, centers, self.precisions_chol):
                pc = np.asarray(pc, dtype=float)
                comps.append((mu, pc, np.log(w) + np.sum(np.log(np.diag(pc)))))
            got = (centers, comps, np.asarray(self.names, dtype=object))
            object.__setattr__(self, "_arrays_made", got)  # a cache on a frozen dataclass
        return got

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """The model group of each customer (index into `names`)."""
        X = self.matrix(features)
        centers, comps, _ = self._arrays()
        if self.method == "gmm" and self.precisions_chol:
            scores = []
            for mu, pc, const in comps:
                y = (X - mu) @ pc
                scores.append(const - 0.5 * np.sum(y * y, axis=1))
            return np.argmax(np.column_stack(scores), axis=1)
        d = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)

    def assign(self, features: pd.DataFrame) -> np.ndarray:
        """Each customer's group name."""
        return self._arrays()[2][self.predict(features)]


def _assigner(method: str, model, sf: "ScaledFeatures", clip: float, labels: np.ndarray, raw_labels: np.ndarray | None,
              names: dict[int, str]) -> ClusterAssigner:
    """Capture the chosen model as plain numbers (group names mapped through the size relabelling)."""
    scaling = tuple({k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in row.items()
                     if k in ("feature", "transform", "imputed_with", "center", "scale", "weight")}
                    for row in sf.scaling.to_dict("records"))
    if method in ("kmeans", "gmm") and raw_labels is not None:
        k = len(model.means_) if method == "gmm" else len(model.cluster_centers_)
        lookup = {}
        for old, new in zip(raw_labels, labels):
            lookup.setdefault(int(old), int(new))
        group_names = tuple(names.get(lookup.get(i, -1), UNCLUSTERED) for i in range(k))
        if method == "gmm":
            return ClusterAssigner("gmm", scaling, clip, tuple(map(tuple, model.means_.tolist())), group_names,
                                   tuple(model.weights_.tolist()), tuple(model.precisions_cholesky_))
        return ClusterAssigner("kmeans", scaling, clip, tuple(map(tuple, model.cluster_centers_.tolist())), group_names)
    groups = sorted(int(c) for c in np.unique(labels) if c >= 0)
    centers = tuple(tuple(sf.matrix[labels == c].mean(axis=0).tolist()) for c in groups)
    return ClusterAssigner("nearest", scaling, clip, centers, tuple(names[c] for c in groups))


# --------------------------------------------------------------------------- scaling

@dataclass(frozen=True, eq=False)
class ScaledFeatures:
    """The columns chosen for clustering, as a matrix, with what was done to each."""

    ids: pd.Series
    raw: pd.DataFrame  # used columns as float, NaN kept (for the means quoted in personas)
    matrix: np.ndarray  # imputed, transformed, standardised, clipped, weighted per family
    scaling: pd.DataFrame
    dropped: dict[str, str]


def _bounded(name: str, v: np.ndarray) -> bool:
    low = name.lower()
    return any(h in low for h in _BOUNDED_HINTS) or (v.min() >= 0 and v.max() <= 1)


def _skew(v: np.ndarray) -> float:
    sd = v.std()
    return 0.0 if sd == 0 else float(np.mean(((v - v.mean()) / sd) ** 3))


def scale_features(features: pd.DataFrame, *, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                   columns: Sequence[str] | None = None, clip: float = 5.0,
                   max_corr: float | None = 0.95, id_col: str = "customer_id") -> ScaledFeatures:
    """Pick, impute, transform, standardise and clip the columns to cluster on.

    Without ``columns``, every numeric (non-boolean) column except ``id_col`` and those
    matching an ``exclude`` pattern (``fnmatch`` style, e.g. ``"share_*"``) is a candidate;
    constant and all-missing columns are dropped and reported, and so is each near-duplicate
    of a kept column (``|correlation| >= max_corr`` after scaling; ``None`` keeps them).
    Columns of one behaviour family (see :func:`~clientfolio.segments._personas.feature_family`)
    share one unit of weight: each gets ``1/sqrt(n)`` of the ``n`` in its family.
    """
    if not isinstance(features, pd.DataFrame):
        raise SchemaError(f"discover_clusters: features must be a pandas DataFrame, got {type(features).__name__}")
    df = features
    if id_col not in df.columns:
        if df.index.name == id_col:
            df = df.reset_index()
        else:
            raise SchemaError(f"discover_clusters: the features have no {id_col!r} column or index; "
                              f"columns are {list(map(str, df.columns))[:20]}")
    ids = df[id_col].reset_index(drop=True)
    if ids.isna().any():
        raise SchemaError(f"discover_clusters: {int(ids.isna().sum())} row(s) have no {id_col}; drop them first")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise SchemaError(f"discover_clusters: features need one row per customer, but {id_col} "
                          f"{dup.iloc[0]!r} appears {int((ids == dup.iloc[0]).sum())} times "
                          f"({dup.nunique()} duplicated ids); aggregate per customer first")
    patterns = tuple(exclude)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SchemaError(f"discover_clusters: columns {missing} are not in the features; "
                              f"they have {list(map(str, df.columns))[:30]}")
        candidates = list(columns)
    else:
        candidates = [c for c in df.columns if c != id_col]
    dropped: dict[str, str] = {}
    used, cols, rows = [], [], []
    raw = {}
    for c in candidates:
        name = str(c)
        s = df[c]
        if columns is None and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            dropped[name] = "excluded"
            continue
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            if columns is not None:
                raise SchemaError(f"discover_clusters: column {name!r} is not numeric (dtype {s.dtype})")
            dropped[name] = "not numeric"
            continue
        v = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(na_value=np.nan).copy()
        v[~np.isfinite(v)] = np.nan
        miss = np.isnan(v)
        if miss.all():
            dropped[name] = "all missing"
            continue
        med = float(np.median(v[~miss]))
        filled = np.where(miss, med, v)
        if filled.min() == filled.max():
            dropped[name] = "constant"
            continue
        transform = "none"
        if not _bounded(name, filled):
            heavy = any(h in name.lower() for h in _LOG_HINTS) or abs(_skew(filled)) > 1.0
            if heavy and filled.min() >= 0:
                transform = "log1p"
                filled = np.log1p(filled)
            elif heavy and abs(_skew(filled)) > 1.0:
                transform = "signed log1p"
                filled = np.sign(filled) * np.log1p(np.abs(filled))
        mu, sd = float(filled.mean()), float(filled.std())
        if sd == 0 or not math.isfinite(sd):
            dropped[name] = "constant"
            continue
        cols.append(np.clip((filled - mu) / sd, -clip, clip))
        used.append(name)
        raw[name] = v
        rows.append({"feature": name, "transform": transform, "missing_share": float(miss.mean()),
                     "imputed_with": med, "center": mu, "scale": sd})
    if not used and "constant" in dropped.values():
        raise ClusterError(f"discover_clusters: the {len(ids)} customer(s) have identical features (every numeric "
                           "column is constant), so they cannot be split into groups; add customers or features")
    if not used:
        raise SchemaError("discover_clusters: no numeric feature column to cluster on "
                          f"(dropped: {dropped or 'none found'}); pass a table with numeric per-customer features")
    keep = list(range(len(used)))
    if max_corr is not None and len(used) > 1:
        keep = _non_redundant(used, np.column_stack(cols), max_corr, dropped)
    names = [used[i] for i in keep]
    # Each behaviour counts once: the columns of one family (orders, orders_per_month and
    # ipt_mean all measure purchase frequency) share one unit of weight in the distances.
    fams = [(feature_family(n) or (n,))[0] for n in names]
    weights = np.array([1.0 / math.sqrt(fams.count(f)) for f in fams])
    table = pd.DataFrame([rows[i] for i in keep])
    table["family"] = fams
    table["weight"] = weights
    return ScaledFeatures(ids=ids, raw=pd.DataFrame({n: raw[n] for n in names}),
                          matrix=np.column_stack([cols[i] for i in keep]) * weights,
                          scaling=table, dropped=dropped)


def _preference(name: str) -> tuple[int, int]:
    """Readable columns first: those the persona vocabulary knows, in its order of readability."""
    fam = feature_family(name)
    if fam is None:
        return (1, 0)
    order = READABLE.get(fam[0], ())
    return (0, order.index(name.lower()) if name.lower() in order else len(order))


def _non_redundant(names: list[str], Z: np.ndarray, max_corr: float, dropped: dict[str, str]) -> list[int]:
    """Indices of the columns kept after dropping near-duplicates (|correlation| >= max_corr).

    Near-duplicates (``T`` and ``tenure``, ``clv`` and ``clv_high``, a score and its quintile)
    would count one behaviour several times in the distances.  The more readable column stays.
    """
    rows = np.linspace(0, len(Z) - 1, min(len(Z), 10_000)).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(Z[rows], rowvar=False)
    corr = np.nan_to_num(np.atleast_2d(corr))
    order = sorted(range(len(names)), key=lambda i: (*_preference(names[i]), i))
    kept: list[int] = []
    for i in order:
        twin = next((j for j in kept if abs(corr[i, j]) >= max_corr), None)
        if twin is None:
            kept.append(i)
        else:
            dropped[names[i]] = f"redundant with {names[twin]!r} (correlation {corr[i, twin]:+.2f})"
    return sorted(kept)


BEHAVIOUR_FAMILIES = frozenset({"frequency", "basket", "weekend", "discount", "seasonal", "advocacy", "email",
                                "support"})


def behaviour_columns(features: pd.DataFrame) -> list[str]:
    """The numeric columns that say *how* customers buy: rhythm, basket size, when, what
    (``share_<category>``), discounts, reviews, e-mail and support — not what they are worth
    (CLV, revenue) or whether they are still active (those have their own segments).

    Pass it as ``columns=`` to cluster a wide customer table on behaviour only.
    """
    out = []
    for c in features.columns:
        fam = feature_family(str(c))
        s = features[c]
        if fam is None or not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        if fam[0] in BEHAVIOUR_FAMILIES or fam[0].startswith("category:"):
            out.append(str(c))
    return out


# --------------------------------------------------------------------------- criteria

def silhouette_scores(X: np.ndarray, labelings: Sequence[np.ndarray], *, chunk: int = 1024) -> list[float]:
    """Mean silhouette (Euclidean) of several labelings of the same points, in one pass.

    The pairwise distances are computed once, chunk by chunk, and summed per cluster for every
    labeling at the same time (scikit-learn's ``silhouette_score`` recomputes them per call).
    A point alone in its cluster scores 0, as in scikit-learn.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    codes, sizes, offsets, blocks = [], [], [0], []
    for lab in labelings:
        _, c = np.unique(np.asarray(lab), return_inverse=True)
        k = int(c.max()) + 1
        onehot = np.zeros((n, k), dtype=np.float32)
        onehot[np.arange(n), c] = 1.0
        codes.append(c)
        sizes.append(np.bincount(c, minlength=k).astype(float))
        blocks.append(onehot)
        offsets.append(offsets[-1] + k)
    M = np.hstack(blocks)
    sums = np.empty((n, M.shape[1]))
    # float32 distances: half the memory traffic; the per-cluster sums stay accurate to ~1e-6
    Xf = X.astype(np.float32)
    sq = np.einsum("ij,ij->i", Xf, Xf)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        d = Xf[start:stop] @ Xf.T
        d *= -2.0
        d += sq[start:stop, None]
        d += sq[None, :]
        np.maximum(d, 0.0, out=d)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0
        np.sqrt(d, out=d)
        sums[start:stop] = d @ M
    out = []
    rows = np.arange(n)
    for c, size, lo, hi in zip(codes, sizes, offsets[:-1], offsets[1:]):
        if len(size) < 2:
            out.append(float("nan"))
            continue
        S = sums[:, lo:hi]
        own = size[c]
        a = np.where(own > 1, S[rows, c] / np.maximum(own - 1, 1), 0.0)
        other = S / size[None, :]
        other[rows, c] = np.inf
        b = other.min(axis=1)
        denom = np.maximum(a, b)
        s = np.where((own > 1) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
        out.append(float(s.mean()))
    return out


# --------------------------------------------------------------------------- the models

def _kmeans(k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=seed)


def _gmm(k: int, seed: int):
    from sklearn.mixture import GaussianMixture

    # reg_covar well above the default: shares that are exactly 0 for a whole group would
    # otherwise give zero-variance components and an ever-growing likelihood.
    return GaussianMixture(n_components=k, covariance_type="full", reg_covar=1e-3, n_init=1,
                           init_params="k-means++", max_iter=300, random_state=seed)


def _bic_icl(model, X: np.ndarray) -> tuple[float, float]:
    """BIC and ICL of a fitted Gaussian mixture (both: lower is better).

    ICL = BIC + 2 x the entropy of the soft assignments (Biernacki, Celeux & Govaert 2000,
    "Assessing a mixture model for clustering with the integrated completed likelihood").  The
    BIC alone keeps adding components to fit one skewed group with several overlapping
    Gaussians; the entropy term charges for that overlap, so ICL counts groups, not bumps.
    """
    bic = float(model.bic(X))
    t = model.predict_proba(X)
    entropy = float(-np.sum(t * np.log(np.clip(t, 1e-300, None))))
    return bic, bic + 2.0 * entropy


def _fit_quiet(model, X: np.ndarray):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def _hdbscan(X: np.ndarray, sample: np.ndarray, min_cluster_size: int, noise: Noise) -> tuple[np.ndarray, float]:
    """HDBSCAN on the sample; every other customer takes the label of its nearest sample point.

    Returns (labels with -1 for noise unless ``noise="nearest"``, share of customers that were noise).
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import pairwise_distances_argmin

    Xs = X[sample]
    lab_s = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit(Xs).labels_
    labels = np.full(len(X), -1)
    labels[sample] = lab_s
    rest = np.setdiff1d(np.arange(len(X)), sample)
    if len(rest):
        labels[rest] = lab_s[pairwise_distances_argmin(X[rest], Xs)]
    noise_share = float((labels == -1).mean())
    clustered = lab_s >= 0
    todo = labels == -1
    if noise == "nearest" and clustered.any() and todo.any():
        labels[todo] = lab_s[clustered][pairwise_distances_argmin(X[todo], Xs[clustered])]
    return labels, noise_share


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Number clusters by size, largest first (ties: old number); -1 stays -1."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = sorted(zip(ids.tolist(), counts.tolist()), key=lambda t: (-t[1], t[0]))
    lookup = np.full(int(labels.max()) + 2 if len(labels) else 1, -1)
    for new, (old, _) in enumerate(order):
        lookup[old] = new
    return np.where(labels >= 0, lookup[np.maximum(labels, 0)], -1)


# --------------------------------------------------------------------------- profiles and personas

def _currency(features: pd.DataFrame, currency: str | None) -> str:
    if currency is not None:
        return currency
    code = features.attrs.get("currency")
    if code is None and "currency" in features.columns:
        codes = features["currency"].dropna().unique()
        code = codes[0] if len(codes) == 1 else None
    if code is None:
        return ""
    return _CURRENCY_SYMBOLS.get(str(code).upper(), f"{code} ")


def _revenue(features: pd.DataFrame, revenue_col: str) -> np.ndarray | None:
    if revenue_col in features.columns and pd.api.types.is_numeric_dtype(features[revenue_col]):
        return pd.to_numeric(features[revenue_col]).fillna(0).to_numpy(dtype=float)
    if {"orders", "aov"} <= set(features.columns):
        return (pd.to_numeric(features["orders"]) * pd.to_numeric(features["aov"])).fillna(0).to_numpy(dtype=float)
    return None


def _quotable(src: pd.DataFrame, sf: ScaledFeatures) -> pd.DataFrame:
    """The used columns plus unused anchors a reader expects (share still active, average order,
    orders per month): their cluster means are quoted, never ranked."""
    out = sf.raw.copy()
    for c in src.columns:
        name = str(c)
        fam = feature_family(name)
        if name in out.columns or fam is None or fam[0] not in ("alive", "basket", "frequency"):
            continue
        if pd.api.types.is_numeric_dtype(src[c]) and not pd.api.types.is_bool_dtype(src[c]):
            v = pd.to_numeric(src[c], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
            out[name] = np.where(np.isfinite(v), v, np.nan)
    return out


def _describe(sf: ScaledFeatures, quote: pd.DataFrame, labels: np.ndarray, revenue: np.ndarray | None,
              currency: str, time_unit: str,
              max_traits: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[int, str]]:
    used = list(sf.raw.columns)
    lab = pd.Series(labels, name="cluster")
    means = quote.groupby(lab).mean()
    overall_raw = sf.raw.mean()
    Z = pd.DataFrame(sf.matrix, columns=used)
    mu, sd = Z.mean(), Z.std(ddof=0).replace(0, np.nan)
    z = (Z.groupby(lab).mean() - mu) / sd
    clusters = [c for c in sorted(means.index) if c >= 0] + ([-1] if -1 in means.index else [])

    def name_of(c: int, n_traits: int) -> str:
        if c == -1:
            return UNCLUSTERED
        return persona_name(rank_traits(z.loc[c].to_dict(), means.loc[c].to_dict()), means.loc[c].to_dict(),
                            max_traits=n_traits, time_unit=time_unit)

    names = {c: name_of(c, max_traits) for c in clusters}
    for extra in range(max_traits + 1, max_traits + 4):  # lengthen clashing names with their next trait
        clash = [c for c in clusters if list(names.values()).count(names[c]) > 1 and c != -1]
        if not clash:
            break
        for c in clash:
            names[c] = name_of(c, extra)
    seen: dict[str, int] = {}
    for c in clusters:
        seen[names[c]] = seen.get(names[c], 0) + 1
        if seen[names[c]] > 1:
            names[c] = f"{names[c]} ({seen[names[c]]})"

    total_rev = float(revenue.sum()) if revenue is not None else float("nan")
    prof_rows, persona_rows, trait_rows = [], [], []
    for c in clusters:
        mask = labels == c
        zc = z.loc[c].to_dict()
        persona = describe_cluster(means.loc[c].to_dict(), {} if c == -1 else zc, name=names[c], currency=currency,
                                   time_unit=time_unit)
        desc = persona.description
        if c == -1:
            desc = desc.replace(f"{UNCLUSTERED}: ", f"{UNCLUSTERED}: customers outside every dense group; ", 1)
        ranked = sorted(((f, v) for f, v in zc.items() if math.isfinite(v)), key=lambda t: (-abs(t[1]), t[0]))
        share_rev = (float(revenue[mask].sum()) / total_rev) if revenue is not None and total_rev > 0 else np.nan
        prof_rows.append({"cluster": c, "segment": names[c], "size": int(mask.sum()),
                          "share_customers": float(mask.mean()), "share_revenue": share_rev,
                          "distinguishing": ", ".join(f"{f} {v:+.1f}" for f, v in ranked[:4]),
                          **{f"mean_{f}": float(means.loc[c, f]) for f in quote.columns}})
        persona_rows.append({"cluster": c, "segment": names[c], "description": desc})
        for r, (f, v) in enumerate(ranked, start=1):
            trait_rows.append({"cluster": c, "segment": names[c], "feature": f, "z": float(v),
                               "cluster_mean": float(means.loc[c, f]), "overall_mean": float(overall_raw[f]),
                               "rank": r})
    return (pd.DataFrame(prof_rows), pd.DataFrame(persona_rows),
            pd.DataFrame(trait_rows, columns=["cluster", "segment", "feature", "z", "cluster_mean",
                                              "overall_mean", "rank"]), names)


# --------------------------------------------------------------------------- the entry point

_METHOD_LABEL = {"kmeans": "k-means", "gmm": "a Gaussian mixture"}


def _check(method, k, k_range, sample_size, min_cluster_size, noise, gmm_criterion, clip, random_state) -> None:
    def bad(param: str, allowed: str, got) -> ClusterError:
        return ClusterError(f"The {param!r} parameter of discover_clusters must be {allowed}. Got {got!r} instead.")

    if method not in ("kmeans", "gmm", "hdbscan", "auto"):
        raise bad("method", "one of 'kmeans', 'gmm', 'hdbscan', 'auto'", method)
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise bad("k", "an int >= 2 or None (choose by the criterion)", k)
        if method == "hdbscan":
            raise ClusterError("discover_clusters: HDBSCAN finds the number of clusters itself; "
                               "drop k, or set min_cluster_size to get fewer/larger groups")
    if (not isinstance(k_range, (tuple, list)) or len(k_range) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in k_range)
            or not 2 <= k_range[0] <= k_range[1]):
        raise bad("k_range", "a pair (low, high) of ints with 2 <= low <= high", k_range)
    if not isinstance(sample_size, (int, np.integer)) or sample_size < 10:
        raise bad("sample_size", "an int >= 10", sample_size)
    if min_cluster_size is not None and (not isinstance(min_cluster_size, (int, np.integer)) or min_cluster_size < 2):
        raise bad("min_cluster_size", "an int >= 2 or None", min_cluster_size)
    if noise not in ("nearest", "unclustered"):
        raise bad("noise", "'nearest' or 'unclustered'", noise)
    if gmm_criterion not in ("icl", "bic"):
        raise bad("gmm_criterion", "'icl' or 'bic'", gmm_criterion)
    if not (isinstance(clip, (int, float)) and clip > 0):
        raise bad("clip", "a positive number of standard deviations", clip)
    if not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool):
        raise bad("random_state", "an int", random_state)


def _adjust(msg: str, notes: list[str]) -> None:
    notes.append(msg)
    warnings.warn(msg, ClusterWarning, stacklevel=3)


def discover_clusters(
    features: pd.DataFrame,
    *,
    method: Method = "kmeans",
    k: int | None = None,
    k_range: tuple[int, int] = (2, 8),
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    columns: Sequence[str] | None = None,
    random_state: int = 0,
    as_of: str | pd.Timestamp | None = None,
    currency: str | None = None,
    sample_size: int = 10_000,
    min_cluster_size: int | None = None,
    noise: Noise = "nearest",
    gmm_criterion: Literal["icl", "bic"] = "icl",
    clip: float = 5.0,
    max_corr: float | None = 0.95,
    revenue_col: str = "revenue",
    id_col: str = "customer_id",
    max_name_traits: int = 2,
) -> ClusterResult:
    """Group customers by behaviour and describe each group in plain words.

    Parameters
    ----------
    features
        One row per customer: ``customer_id`` (column or index) and numeric features; NaNs
        allowed (median-imputed).  ``attrs["cutoff"]`` and ``attrs["unit_days"]`` (as set by
        :func:`clientfolio.features.rfm_summary`) give the default ``as_of`` and time unit.
    method
        ``"kmeans"`` (k by the silhouette score), ``"gmm"`` (Gaussian mixture, k by the lowest
        ``gmm_criterion``), ``"hdbscan"`` (density-based; finds k itself) or ``"auto"`` (k-means
        and Gaussian mixtures compared on the silhouette score).
    k, k_range
        A fixed number of clusters, or the inclusive range to choose from.  More clusters than
        customers (or than distinct feature rows) are reduced, with a :class:`ClusterWarning`.
    exclude, columns
        ``fnmatch`` patterns of columns not to use, or the exact list of columns to use.
    random_state
        Seed of the fitting sample and of the models: same seed, same result.
    as_of
        Date written in the membership table (default: ``attrs["cutoff"]``, else today).
    currency
        Symbol for money in the persona sentences (default: from a single-valued ``currency``
        column or ``attrs["currency"]``, else none).
    sample_size
        Customers the models are fitted and the silhouette computed on (fixed-seed sample);
        everyone is then assigned by the fitted model.
    min_cluster_size, noise
        HDBSCAN only: smallest group (default 1% of the sample, at least 10), and whether noise
        points join their nearest group or form an "Unclustered" group.
    gmm_criterion
        ``"icl"`` (default: BIC plus the entropy of the assignments, which stops one skewed group
        being split into overlapping components) or ``"bic"``; both are in the criterion table.
    clip
        Scaled values are clipped to ``±clip`` standard deviations.
    max_corr
        Of two candidate columns correlated at least this much, only the more readable one is
        used (``None``: keep both).

    Raises
    ------
    SchemaError
        No ``customer_id``, duplicate customers, or no numeric column to cluster on.
    ClusterError
        A bad parameter, or too few customers with distinct features to form two groups.
    """
    _check(method, k, k_range, sample_size, min_cluster_size, noise, gmm_criterion, clip, random_state)
    if max_corr is not None and not (isinstance(max_corr, (int, float)) and 0 < max_corr <= 1):
        raise ClusterError(f"The 'max_corr' parameter of discover_clusters must be a number in (0, 1] or None. "
                           f"Got {max_corr!r} instead.")
    import sklearn.cluster  # noqa: F401 -- loads scikit-learn's OpenMP runtime before the limit below
    from threadpoolctl import threadpool_limits

    # threadpoolctl limits only the thread pools already loaded: scikit-learn's OpenMP must be in
    # before the `with`, or k-means ran on 2 spinning threads (3-10x slower on a busy machine).
    # The matrices are small (a 10k sample): BLAS/OpenMP threads bring little, and on a busy
    # machine their spin-waiting made k-means and EM 5-10x slower (measured).  Only this call
    # is affected.
    with threadpool_limits(limits=1):
        return _discover(features, method, k, k_range, exclude, columns, random_state, as_of, currency,
                         sample_size, min_cluster_size, noise, gmm_criterion, clip, max_corr, revenue_col, id_col,
                         max_name_traits)


def _discover(features, method, k, k_range, exclude, columns, random_state, as_of, currency, sample_size,
              min_cluster_size, noise, gmm_criterion, clip, max_corr, revenue_col, id_col,
              max_name_traits) -> ClusterResult:
    sf = scale_features(features, exclude=exclude, columns=columns, clip=float(clip), max_corr=max_corr,
                        id_col=id_col)
    X = sf.matrix
    n = len(X)
    notes = [f"column {c!r} not used: {why}" for c, why in sf.dropped.items()
             if why in ("constant", "all missing") or why.startswith("redundant")]
    rng = np.random.default_rng(int(random_state))
    sample = np.sort(rng.choice(n, size=sample_size, replace=False)) if n > sample_size else np.arange(n)
    Xs = X[sample]
    n_distinct = len(np.unique(Xs, axis=0))
    if n_distinct < 2:
        raise ClusterError(f"discover_clusters: {n} customer(s) with identical features cannot be split into "
                           "groups; add customers or features")
    rows: list[dict] = []
    chosen_model = raw_labels = None

    if method == "hdbscan":
        if len(sample) > HDBSCAN_SAMPLE:  # HDBSCAN's cost grows faster than linearly
            sample = np.sort(rng.choice(sample, size=HDBSCAN_SAMPLE, replace=False))
        mcs = int(min_cluster_size) if min_cluster_size is not None else max(10, round(0.01 * len(sample)))
        if mcs > len(sample):
            _adjust(f"the min_cluster_size {mcs} is more than the {len(sample)} customers: reduced to "
                    f"{len(sample)}", notes)
            mcs = len(sample)
        labels, noise_share = _hdbscan(X, sample, max(2, mcs), noise)
        none_found = not (labels >= 0).any()
        if none_found:
            labels = np.zeros(n, dtype=int)
            notes.append(f"HDBSCAN found no dense group with min_cluster_size={mcs}; all customers form one group")
        labels = _relabel(labels)
        k_found = int(labels.max()) + 1
        rows.append({"method": "hdbscan", "k": k_found, "criterion": "noise_share", "value": noise_share,
                     "chosen": True, "min_cluster_size": mcs})
        fate = ("were assigned to the nearest group" if noise == "nearest"
                else f"form the '{UNCLUSTERED}' group")
        explanation = (f"{k_found} group{'s' if k_found != 1 else ''}: HDBSCAN (min cluster size {mcs}) found "
                       f"{k_found} dense group{'s' if k_found != 1 else ''}; {noise_share:.0%} of customers fit none "
                       f"and {fate}.")
        if none_found:
            explanation = (f"1 group: HDBSCAN (min cluster size {mcs}) found no dense group, so all customers form "
                           "one; try a smaller min_cluster_size.")
        chosen_method = "hdbscan"
    else:
        cap = min(n, n_distinct)
        if k is not None:
            if k > cap:
                _adjust(f"asked for k={k}, but only {cap} customers have distinct features: k reduced to {cap}",
                        notes)
            ks = [min(int(k), cap)]
        else:
            lo, hi = k_range
            cap = min(n - 1, n_distinct)  # the silhouette needs k <= n - 1
            if cap < 2:
                raise ClusterError(f"discover_clusters: choosing the number of clusters needs at least 3 customers "
                                   f"with different features; got {n} ({n_distinct} distinct). Pass k=2 or add "
                                   "customers")
            if hi > cap:
                _adjust(f"the k_range {tuple(k_range)} was reduced to ({min(lo, cap)}, {cap}): there are only {n} "
                        f"customers ({n_distinct} with distinct features)", notes)
                lo, hi = min(lo, cap), cap
            ks = list(range(lo, hi + 1))
        methods = ["kmeans", "gmm"] if method == "auto" else [method]
        fitted, labelings = {}, []
        for m in methods:
            for kk in ks:
                model = _fit_quiet((_kmeans if m == "kmeans" else _gmm)(kk, int(random_state)), Xs)
                fitted[(m, kk)] = model
                labelings.append(model.predict(Xs))
        if method == "gmm":
            for (m, kk), model in fitted.items():
                bic, icl = _bic_icl(model, Xs)
                rows.append({"method": m, "k": kk, "criterion": gmm_criterion,
                             "value": icl if gmm_criterion == "icl" else bic, "chosen": False, "bic": bic, "icl": icl})
        else:
            can_sil = len(Xs) > max(ks)
            sil = silhouette_scores(Xs, labelings) if can_sil else [float("nan")] * len(labelings)
            for (m, kk), sv in zip(fitted, sil):
                rows.append({"method": m, "k": kk, "criterion": "silhouette", "value": sv, "chosen": False})
        order = {"kmeans": 0, "gmm": 1}
        if method == "gmm":
            best = min(range(len(rows)), key=lambda i: (rows[i]["value"], rows[i]["k"]))
        else:
            best = min(range(len(rows)), key=lambda i: (-np.nan_to_num(rows[i]["value"], nan=-2.0),
                                                        order[rows[i]["method"]], rows[i]["k"]))
        rows[best]["chosen"] = True
        chosen_method, kk, value = rows[best]["method"], rows[best]["k"], rows[best]["value"]
        chosen_model = fitted[(chosen_method, kk)]
        raw_labels = np.asarray(chosen_model.predict(X))
        labels = _relabel(raw_labels)
        k_found = int(labels.max()) + 1
        tried = f"k={ks[0]}" if len(ks) == 1 else f"k={ks[0]}–{ks[-1]}"
        crit_name = {"silhouette": "silhouette score", "bic": "BIC", "icl": "ICL"}[rows[best]["criterion"]]
        if k is not None:
            shown = "" if not math.isfinite(value) else (
                f" ({crit_name} {value:.2f})" if rows[best]["criterion"] == "silhouette"
                else f" ({crit_name} {value:,.0f})")
            explanation = (f"{kk} groups, as asked{shown}." if kk == k else
                           f"{kk} groups{shown}: asked for k={k}, but only {kk} customers have distinct features.")
        elif method == "gmm":
            what = ("ICL (the BIC plus a penalty for overlapping groups)" if gmm_criterion == "icl" else "BIC")
            explanation = (f"{kk} groups: the Gaussian mixture's {what} is lowest at k={kk} ({value:,.0f}; "
                           f"tried {tried}).")
        elif method == "auto":
            explanation = (f"{kk} groups from {_METHOD_LABEL[chosen_method]}: the silhouette score is highest at "
                           f"k={kk} ({value:.2f}) among k-means and Gaussian mixtures with {tried}.")
        else:
            explanation = f"{kk} groups: the silhouette score is highest at k={kk} ({value:.2f}; tried {tried})."
        if k_found < kk:
            notes.append(f"{kk - k_found} of the {kk} clusters received no customer; {k_found} remain")
            explanation += f" {kk - k_found} of them ended up empty, so {k_found} remain."
    if k is None and any("reduced" in x for x in notes):
        explanation += " " + " ".join(x[0].upper() + x[1:] + "." for x in notes if "reduced" in x)

    unit_days = features.attrs.get("unit_days")
    time_unit = "weeks" if unit_days is not None and float(unit_days) == 7.0 else "days"
    src = features if id_col in features.columns else features.reset_index()
    profiles, personas, traits, names = _describe(sf, _quotable(src, sf), labels, _revenue(src, revenue_col),
                                                  _currency(src, currency),
                                                  time_unit, max_name_traits)
    when = as_of_of(features, as_of)
    when = pd.Timestamp(when).normalize() if when is not None else pd.Timestamp.today().normalize()
    segment = pd.Series([names[int(c)] for c in labels], dtype="string")
    members = membership(sf.ids, SEGMENT_KIND, segment, when)
    criterion = pd.DataFrame(rows)
    return ClusterResult(
        membership=members, profiles=profiles, personas=personas, traits=traits, criterion=criterion,
        chosen_k=int((profiles["cluster"] >= 0).sum()), explanation=explanation, method=chosen_method,
        features_used=tuple(sf.raw.columns), scaling=sf.scaling,
        labels=pd.Series(labels, index=pd.Index(sf.ids, name=id_col), name="cluster"), notes=tuple(notes),
        assigner=_assigner(chosen_method, chosen_model, sf, float(clip), labels, raw_labels, names))
