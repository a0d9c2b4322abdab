"""Discovered clusters and their personas (clientfolio.segments.clusters / _personas).

Synthetic customers with three planted groups (daily coffee regulars, occasional cake buyers,
wholesale accounts) check recovery, the choice of k and the wording; the demo bakery checks
that its wholesale accounts end up together under a persona that mentions their order size.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score

from clientfolio.core.errors import ClientfolioError, SchemaError
from clientfolio.segments._personas import (
    Trait,
    describe_cluster,
    format_fact,
    format_money,
    persona_name,
    rank_traits,
)
from clientfolio.segments.clusters import (
    ClusterError,
    ClusterWarning,
    behaviour_columns,
    discover_clusters,
    scale_features,
    silhouette_scores,
)

REGULARS, CAKE, WHOLESALE = 0, 1, 2


def planted(n=(900, 600, 60), seed=7) -> pd.DataFrame:
    """Three groups with known traits; column ``group`` is the truth (drop it before clustering)."""
    rng = np.random.default_rng(seed)
    specs = [  # orders/month, average order, Dirichlet(coffee, cake, bread), Beta p_alive, Beta weekend
        (18.0, 4.5, (17, 1, 2), (18, 2), (5, 15)),
        (0.5, 22.0, (2, 14, 4), (6, 4), (12, 8)),
        (4.3, 260.0, (2, 1, 17), (19, 1), (1, 19)),
    ]
    parts = []
    for g, (opm, aov, dirich, pa, wk) in enumerate(specs):
        m = n[g]
        shares = rng.dirichlet(dirich, size=m)
        opm_i = opm * rng.lognormal(0, 0.25, m)
        months = rng.uniform(6, 24, m)
        orders = np.maximum(1, rng.poisson(opm_i * months))
        aov_i = aov * rng.lognormal(0, 0.25, m)
        parts.append(pd.DataFrame({
            "group": g, "orders_per_month": orders / months, "orders": orders, "aov": aov_i,
            "revenue": orders * aov_i, "ipt_mean": 30.44 / opm_i * rng.lognormal(0, 0.1, m),
            "p_alive": rng.beta(*pa, m), "weekend_share": rng.beta(*wk, m),
            "share_coffee": shares[:, 0], "share_cake": shares[:, 1], "share_bread": shares[:, 2],
        }))
    df = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(df))])
    return df


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return planted()


@pytest.fixture(scope="module")
def kmeans_result(data):
    return discover_clusters(data.drop(columns="group"), currency="£", as_of="2024-06-30")


def cluster_of_group(result, data) -> dict[int, int]:
    """Planted group -> the cluster holding most of its customers."""
    lab = result.labels.reindex(data["customer_id"]).to_numpy()
    return {g: int(pd.Series(lab[data["group"].to_numpy() == g]).mode()[0]) for g in (REGULARS, CAKE, WHOLESALE)}


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not found in {text!r}"
    return float(m.group(1).replace(",", ""))


# --------------------------------------------------------------------------- recovery and criterion

def test_kmeans_recovers_planted_groups_and_chooses_3_by_silhouette(kmeans_result, data):
    r = kmeans_result
    lab = r.labels.reindex(data["customer_id"]).to_numpy()
    assert adjusted_rand_score(data["group"], lab) >= 0.9
    assert r.chosen_k == 3
    crit = r.criterion
    assert list(crit["k"]) == list(range(2, 9)) and set(crit["criterion"]) == {"silhouette"}
    assert crit.loc[crit["chosen"], "k"].item() == 3
    assert crit.loc[crit["chosen"], "value"].item() == crit["value"].max()
    best = crit["value"].max()
    assert r.explanation == f"3 groups: the silhouette score is highest at k=3 ({best:.2f}; tried k=2–8)."


def test_every_customer_in_exactly_one_cluster(kmeans_result, data):
    m = kmeans_result.membership
    assert list(m.columns) == ["customer_id", "segment_kind", "segment", "as_of"]
    assert len(m) == len(data) and m["customer_id"].is_unique
    assert set(m["customer_id"]) == set(data["customer_id"])
    assert (m["segment_kind"] == "cluster").all() and m["segment"].notna().all()
    assert (m["as_of"] == pd.Timestamp("2024-06-30")).all()
    assert set(m["segment"]) == set(kmeans_result.personas["segment"])
    assert kmeans_result.profiles["size"].sum() == len(data)


def test_personas_name_the_planted_traits(kmeans_result, data):
    c = cluster_of_group(kmeans_result, data)
    p = kmeans_result.personas.set_index("cluster")
    regulars, cake, wholesale = (p.loc[c[g]] for g in (REGULARS, CAKE, WHOLESALE))
    assert re.search(r"regular|daily", regulars["segment"], re.I), regulars["segment"]
    assert "orders/month" in regulars["description"]
    assert "coffee" in regulars["segment"].lower()
    assert "cake" in cake["segment"].lower() and "occasional" in cake["segment"].lower()
    assert "wholesale" in wholesale["segment"].lower()
    assert "average order £" in wholesale["description"]
    assert p["segment"].is_unique


def test_persona_numbers_are_the_cluster_means(kmeans_result, data):
    lab = kmeans_result.labels.reindex(data["customer_id"]).to_numpy()
    means = data.drop(columns=["customer_id", "group"]).groupby(lab).mean()  # computed here, independently
    for c, desc in kmeans_result.personas.set_index("cluster")["description"].items():
        mu = means.loc[c]
        assert number(r"([\d.]+) orders/month", desc) == pytest.approx(mu["orders_per_month"], abs=0.051)
        assert number(r"(\d+)% still active", desc) == pytest.approx(100 * mu["p_alive"], abs=0.51)
        assert number(r"average order £([\d,]+\.\d\d)", desc) == pytest.approx(mu["aov"], abs=0.0051)
        top = mu[["share_coffee", "share_cake", "share_bread"]].idxmax()
        cat = top.removeprefix("share_")
        assert number(rf"mostly {cat} \((\d+)% of spend\)", desc) == pytest.approx(100 * mu[top], abs=0.51)
    prof = kmeans_result.profiles.set_index("cluster")
    assert prof["mean_aov"].to_numpy() == pytest.approx(means["aov"].to_numpy())
    rev = data.groupby(lab)["revenue"].sum() / data["revenue"].sum()
    assert prof["share_revenue"].to_numpy() == pytest.approx(rev.to_numpy())
    assert prof["share_customers"].sum() == pytest.approx(1.0)


def test_traits_rank_what_distinguishes_each_cluster(kmeans_result, data):
    c = cluster_of_group(kmeans_result, data)
    t = kmeans_result.traits
    cake = t[t["cluster"] == c[CAKE]].set_index("feature")
    assert cake.loc["share_cake", "z"] > 1 and cake.loc["orders_per_month", "z"] < -1
    wholesale = t[t["cluster"] == c[WHOLESALE]]
    assert wholesale.iloc[0]["rank"] == 1 and abs(wholesale.iloc[0]["z"]) == wholesale["z"].abs().max()
    assert wholesale.set_index("feature").loc["aov", "z"] > 2


def test_same_seed_same_result(data):
    X = data.drop(columns="group")
    a = discover_clusters(X, random_state=3, sample_size=800)
    b = discover_clusters(X, random_state=3, sample_size=800)
    pd.testing.assert_frame_equal(a.membership, b.membership)
    pd.testing.assert_frame_equal(a.criterion, b.criterion)
    pd.testing.assert_frame_equal(a.personas, b.personas)


def test_fit_on_sample_assigns_everyone(data):
    r = discover_clusters(data.drop(columns="group"), sample_size=300)
    lab = r.labels.reindex(data["customer_id"]).to_numpy()
    assert len(r.membership) == len(data) and (lab >= 0).all()
    assert adjusted_rand_score(data["group"], lab) >= 0.9


# --------------------------------------------------------------------------- missing values, scaling

def test_nans_are_imputed_with_the_median_and_reported(data):
    rng = np.random.default_rng(0)
    X = data.drop(columns="group").copy()
    X.loc[rng.random(len(X)) < 0.2, "ipt_mean"] = np.nan
    X.loc[rng.random(len(X)) < 0.05, "aov"] = np.nan
    X.loc[3, "orders_per_month"] = np.inf
    X["survey_score"] = np.nan  # all missing: dropped
    X["plan"] = 1.0  # constant: dropped
    r = discover_clusters(X, currency="£")
    assert len(r.membership) == len(X) and r.membership["segment"].notna().all()
    assert adjusted_rand_score(data["group"], r.labels.reindex(X["customer_id"]).to_numpy()) >= 0.9
    assert "survey_score" not in r.features_used and "plan" not in r.features_used
    assert any("survey_score" in n and "all missing" in n for n in r.notes)
    assert any("'plan'" in n and "constant" in n for n in r.notes)
    sc = r.scaling.set_index("feature")
    assert sc.loc["aov", "imputed_with"] == pytest.approx(X["aov"].median())
    assert sc.loc["aov", "missing_share"] == pytest.approx(X["aov"].isna().mean())
    sf = scale_features(X)  # a missing aov sits exactly where the median customer's aov does
    j = list(sf.raw.columns).index("aov")
    at_median = (np.log1p(X["aov"].median()) - sc.loc["aov", "center"]) / sc.loc["aov", "scale"]
    assert sf.matrix[X["aov"].isna().to_numpy(), j] == pytest.approx(at_median * sc.loc["aov", "weight"])
    lab = r.labels.reindex(X["customer_id"]).to_numpy()
    for c, desc in r.personas.set_index("cluster")["description"].items():  # quoted means skip NaNs
        assert number(r"average order £([\d,]+\.\d\d)", desc) == pytest.approx(
            X.loc[lab == c, "aov"].mean(), abs=0.0051)


def test_scaling_logs_heavy_tails_clips_and_drops_duplicates(data):
    X = data.drop(columns="group").copy()
    X["revenue_copy"] = X["revenue"] * 1.01
    X["store_id"] = np.arange(len(X))  # matches the default exclude "*_id"
    sf = scale_features(X, clip=3.0)
    sc = sf.scaling.set_index("feature")
    assert sc.loc["aov", "transform"] == "log1p" and sc.loc["revenue", "transform"] == "log1p"
    assert sc.loc["share_cake", "transform"] == "none" and sc.loc["p_alive", "transform"] == "none"
    assert sf.dropped["store_id"] == "excluded"
    assert sf.dropped["revenue_copy"].startswith("redundant with 'revenue'")
    assert np.abs(sf.matrix).max() <= 3.0 + 1e-12
    # orders_per_month, orders and ipt_mean measure one thing: what is kept shares one unit of weight
    freq = sc[sc["family"] == "frequency"]
    assert (freq["weight"] ** 2).sum() == pytest.approx(1.0)


def test_silhouette_matches_scikit_learn():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(150, 4)), rng.normal(size=(100, 4)) + 3, rng.normal(size=(1, 4)) - 9])
    labelings = [np.r_[np.zeros(150), np.ones(100), [2]].astype(int), rng.integers(0, 4, len(X))]
    ours = silhouette_scores(X, labelings, chunk=64)
    ref = [silhouette_score(X, lab) for lab in labelings]
    assert ours == pytest.approx(ref, abs=1e-5)


# --------------------------------------------------------------------------- other methods

def test_gmm_path_chooses_k_by_lowest_icl_and_reports_bic(data):
    r = discover_clusters(data.drop(columns="group"), method="gmm")
    crit = r.criterion
    assert set(crit["criterion"]) == {"icl"} and list(crit["k"]) == list(range(2, 9))
    assert (crit["value"] == crit["icl"]).all() and (crit["icl"] >= crit["bic"] - 1e-6).all()
    assert crit.loc[crit["chosen"], "value"].item() == crit["value"].min()
    assert r.chosen_k == crit.loc[crit["chosen"], "k"].item() == 3
    assert "ICL (the BIC plus a penalty for overlapping groups) is lowest at k=3" in r.explanation
    assert len(r.membership) == len(data) and r.membership["customer_id"].is_unique
    assert adjusted_rand_score(data["group"], r.labels.reindex(data["customer_id"]).to_numpy()) >= 0.9
    by_bic = discover_clusters(data.drop(columns="group"), method="gmm", gmm_criterion="bic", k_range=(2, 4))
    crit = by_bic.criterion
    assert set(crit["criterion"]) == {"bic"}
    assert crit.loc[crit["chosen"], "bic"].item() == crit["bic"].min()
    assert len(by_bic.membership) == len(data)


def test_hdbscan_path_gives_everyone_a_group_or_unclustered(data):
    rng = np.random.default_rng(5)
    X = data.drop(columns="group")
    outliers = X.sample(40, random_state=1).copy()
    outliers["customer_id"] = [f"X{i:03d}" for i in range(40)]
    for col in ("aov", "orders_per_month", "ipt_mean"):
        outliers[col] = outliers[col] * rng.uniform(0.05, 20, 40)
    X = pd.concat([X, outliers], ignore_index=True)
    near = discover_clusters(X, method="hdbscan", min_cluster_size=30)
    assert len(near.membership) == len(X) and near.membership["customer_id"].is_unique
    assert "Unclustered" not in set(near.membership["segment"])
    row = near.criterion.iloc[0]
    assert row["method"] == "hdbscan" and row["min_cluster_size"] == 30 and 0 < row["value"] < 0.5
    assert near.chosen_k == row["k"] >= 2
    assert "were assigned to the nearest group" in near.explanation
    apart = discover_clusters(X, method="hdbscan", min_cluster_size=30, noise="unclustered")
    lab = apart.labels.reindex(X["customer_id"])
    assert (lab == -1).mean() == pytest.approx(row["value"])
    un = apart.membership[apart.membership["segment"] == "Unclustered"]
    assert set(un["customer_id"]) == set(lab[lab == -1].index)
    assert apart.personas.set_index("cluster").loc[-1, "description"].startswith("Unclustered: ")
    assert apart.chosen_k == near.chosen_k  # the unclustered group is not counted


def test_auto_compares_kmeans_and_gmm_on_silhouette(data):
    r = discover_clusters(data.drop(columns="group"), method="auto", k_range=(2, 5))
    crit = r.criterion
    assert set(crit["method"]) == {"kmeans", "gmm"} and set(crit["criterion"]) == {"silhouette"}
    assert crit.loc[crit["chosen"], "value"].item() == crit["value"].max()
    assert r.chosen_k == 3 and len(r.membership) == len(data)


def test_fixed_k_gives_unique_names(data):
    r = discover_clusters(data.drop(columns="group"), k=6)
    assert r.chosen_k == 6 and list(r.criterion["k"]) == [6]
    assert r.personas["segment"].is_unique
    assert "as asked" in r.explanation


# --------------------------------------------------------------------------- tiny inputs and bad input

def test_fewer_customers_than_k_reduces_k_with_a_message(data):
    small = data.drop(columns="group").head(4)
    with pytest.warns(ClusterWarning, match="k reduced to 4"):
        r = discover_clusters(small, k=6)
    assert r.chosen_k == 4 and any("reduced" in n for n in r.notes)
    with pytest.warns(ClusterWarning, match="k_range"):
        r = discover_clusters(data.drop(columns="group").head(5))
    assert set(r.criterion["k"]) == {2, 3, 4} and len(r.membership) == 5


def test_too_few_customers_is_a_clear_error(data):
    X = data.drop(columns="group")
    with pytest.raises(ClusterError, match="at least 3 customers"):
        discover_clusters(X.head(2))
    with pytest.raises(ClusterError, match="identical features"):
        discover_clusters(X.head(1), k=2)
    same = pd.concat([X.head(1)] * 5, ignore_index=True).assign(customer_id=list("abcde"))
    with pytest.raises(ClusterError, match="identical features"):
        discover_clusters(same)
    assert issubclass(ClusterError, ClientfolioError)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "kmedoids"}, "'method' parameter"),
    ({"k": 1}, "'k' parameter"),
    ({"k_range": (5, 2)}, "'k_range' parameter"),
    ({"method": "hdbscan", "k": 3}, "HDBSCAN finds the number"),
    ({"noise": "drop"}, "'noise' parameter"),
    ({"gmm_criterion": "aic"}, "'gmm_criterion' parameter"),
    ({"max_corr": 1.5}, "'max_corr' parameter"),
])
def test_bad_parameters_name_the_parameter(data, kwargs, match):
    with pytest.raises(ClusterError, match=match):
        discover_clusters(data.drop(columns="group"), **kwargs)


def test_bad_tables_raise_schema_errors(data):
    X = data.drop(columns="group")
    with pytest.raises(SchemaError, match="no 'customer_id'"):
        discover_clusters(X.drop(columns="customer_id"))
    with pytest.raises(SchemaError, match="appears 2 times"):
        discover_clusters(pd.concat([X, X.head(1)], ignore_index=True))
    with pytest.raises(SchemaError, match="no numeric feature"):
        discover_clusters(X[["customer_id"]].assign(name="x"))
    r = discover_clusters(X.set_index("customer_id"), k=3)  # the id may be the index
    assert len(r.membership) == len(X)


def test_as_of_and_currency_come_from_the_table(data):
    X = data.drop(columns="group").assign(currency="USD")
    X.attrs["cutoff"] = pd.Timestamp("2024-01-31")
    r = discover_clusters(X, k=3)
    assert (r.membership["as_of"] == pd.Timestamp("2024-01-31")).all()
    assert all("average order $" in d for d in r.personas["description"])


# --------------------------------------------------------------------------- persona helpers

def test_format_fact_units():
    assert format_fact("share_cake", 0.64) == "mostly cake (64% of spend)"
    assert format_fact("share_wholesale_bread", 0.2) == "20% of spend on wholesale bread"
    assert format_fact("p_alive", 0.781) == "78% still active"
    assert format_fact("discount_share", 0.053) == "5.3% of spend discounted"
    assert format_fact("weekend_share", 0.7) == "70% of purchases at weekends"
    assert format_fact("aov", 18.4, currency="£") == "average order £18.40"
    assert format_fact("clv", 1234.5, currency="€") == "CLV €1,234"
    assert format_fact("ipt_mean", 6.44) == "buys every 6.4 days"
    assert format_fact("ipt_mean", 35.2, time_unit="weeks") == "buys every 35 weeks"
    assert format_fact("orders_per_month", 2.14) == "2.1 orders/month"
    assert format_fact("email_open_rate", 0.42) == "opens 42% of e-mails"
    assert format_fact("avg_rating", 4.62) == "average rating 4.6"
    assert format_fact("support_tickets", 3.0) == "3.0 support tickets"
    assert format_fact("cost_to_serve", 2.5, currency="£") == "cost to serve £2.50"
    assert format_fact("mystery", 0.123) == "mystery 0.12"
    assert format_fact("aov", float("nan")) is None
    assert format_money(-5, "£") == "-£5.00" and format_money(999.995, "$") == "$1,000.00"


def test_describe_cluster_example_from_the_issue():
    means = {"orders_per_month": 2.1, "share_cake": 0.64, "share_coffee": 0.2, "p_alive": 0.78, "aov": 18.4,
             "weekend_share": 0.7}
    z = {"weekend_share": 1.8, "share_cake": 1.5, "share_coffee": -0.9, "orders_per_month": -0.2, "aov": 0.3,
         "p_alive": 0.1}
    p = describe_cluster(means, z, currency="£")
    assert p.name == "Weekend cake lovers"
    assert p.description == ("Weekend cake lovers: 70% of purchases at weekends, mostly cake (64% of spend), "
                             "2.1 orders/month, 78% still active, average order £18.40.")


@pytest.mark.parametrize("z, means, expected", [
    ({"orders_per_month": 2.0, "share_coffee": 1.5}, {"orders_per_month": 20.0, "share_coffee": 0.8},
     "Daily coffee regulars"),
    ({"orders_per_month": 1.5}, {"orders_per_month": 5.0}, "Weekly regulars"),
    ({"ipt_mean": 1.5, "share_cake": 1.2}, {"ipt_mean": 90.0, "share_cake": 0.7}, "Occasional cake lovers"),
    ({"p_alive": -1.5, "clv": 1.2}, {"p_alive": 0.2, "clv": 900.0}, "Lapsing high-value customers"),
    ({"discount_share": 2.0, "share_bread": 1.0}, {"discount_share": 0.6, "share_bread": 0.5},
     "Bread deal seekers"),
    ({"review_count": 2.0}, {"review_count": 6.0}, "Fans"),
    ({"share_bread": 1.2, "share_sandwich": 1.1}, {"share_bread": 0.4, "share_sandwich": 0.4},
     "Bread and sandwich lovers"),
    ({"share_coffee": 1.0, "share_tea": 0.9}, {"share_coffee": 0.5, "share_tea": 0.4},
     "Coffee and tea drinkers"),
    ({"aov": 3.0, "share_bread": 0.5}, {"aov": 250.0, "orders_per_month": 4.0}, "Wholesale accounts"),
    ({"aov": 3.0}, {"aov": 250.0, "orders_per_month": 0.1}, "Big-basket customers"),
    ({"share_wholesale_bread": 5.0}, {"share_wholesale_bread": 0.9}, "Wholesale accounts"),
    ({"share_wholesale_bread": 5.0, "share_wholesale_pastry": 4.0},
     {"share_wholesale_bread": 0.3, "share_wholesale_pastry": 0.3}, "Wholesale accounts"),
    ({"share_wholesale_bread": 1.0, "share_cake": 0.8}, {"share_wholesale_bread": 0.1, "share_cake": 0.6},
     "Cake lovers"),
    ({"aov": 0.1, "mystery": 3.0}, {"aov": 10.0}, "Typical customers"),
    # one order each in a short time (a marketplace sample): a high rate, but nobody came back
    ({"orders_per_month": 2.0}, {"orders_per_month": 0.91, "orders": 1.0}, "Typical customers"),
    ({"orders_per_month": 2.0, "weekend_share": 1.0}, {"orders_per_month": 0.91, "orders": 1.02, "weekend_share": 1.0},
     "Weekend customers"),
    ({"orders_per_month": 1.5}, {"orders_per_month": 5.0, "orders": 14.0}, "Weekly regulars"),
])
def test_persona_name_from_traits(z, means, expected):
    assert persona_name(rank_traits(z, means), means) == expected


def test_rank_traits_orders_by_strength_and_drops_weak_ones():
    ts = rank_traits({"a": 0.1, "b": -2.0, "c": 1.0, "d": float("nan")}, {"b": 5.0, "c": 1.0})
    assert ts == [Trait("b", -2.0, 5.0), Trait("c", 1.0, 1.0)]


def test_behaviour_columns_leave_value_and_activity_out(data):
    cols = behaviour_columns(data.assign(clv=1.0, p_alive=0.5, R=3))
    assert "clv" not in cols and "p_alive" not in cols and "revenue" not in cols and "R" not in cols
    assert {"orders_per_month", "aov", "weekend_share", "share_cake"} <= set(cols)


# --------------------------------------------------------------------------- the demo bakery

def bakery_features() -> pd.DataFrame:
    from clientfolio.datasets import load_demo_shop

    tx = load_demo_shop()["transactions"]
    tx = tx[tx["amount"] > 0]
    orders = (tx.groupby(["customer_id", "order_id"])
              .agg(amount=("amount", "sum"), ts=("ts", "first"), discount=("discount", "sum")).reset_index())
    per = orders.groupby("customer_id").agg(orders=("order_id", "nunique"), revenue=("amount", "sum"),
                                            first=("ts", "min"))
    per["aov"] = per["revenue"] / per["orders"]
    months = ((tx["ts"].max() - per["first"]).dt.days + 1) / 30.44
    per["orders_per_month"] = per["orders"] / months.clip(lower=1)
    per["weekend_share"] = orders.assign(w=orders["ts"].dt.day_of_week >= 5).groupby("customer_id")["w"].mean()
    discounted = orders[orders["discount"] > 0].groupby("customer_id")["amount"].sum()
    per["discount_share"] = discounted.reindex(per.index).fillna(0) / per["revenue"]
    cat = tx.pivot_table(index="customer_id", columns="category", values="amount", aggfunc="sum", fill_value=0)
    shares = cat.div(cat.sum(axis=1), axis=0).add_prefix("share_")
    return per.drop(columns="first").join(shares).reset_index()


def test_demo_bakery_wholesale_accounts_form_one_cluster_about_order_size():
    f = bakery_features()
    r = discover_clusters(f, currency="£")
    seg = r.membership.set_index("customer_id")["segment"]
    wholesale = seg[seg.index.str.startswith("W")]
    top = wholesale.value_counts()
    assert top.iloc[0] >= 0.8 * len(wholesale), top
    persona = r.personas.set_index("segment").loc[top.index[0], "description"]
    assert re.search(r"wholesale|big-basket", top.index[0], re.I), top.index[0]
    aov = f.set_index("customer_id").loc[seg[seg == top.index[0]].index, "aov"].mean()
    assert number(r"average order £([\d,]+\.\d\d)", persona) == pytest.approx(aov, abs=0.0051)
    assert aov > 3 * f["aov"].median()  # the persona speaks of a large order, and it is one
    assert len(seg) == len(f) and r.personas["segment"].is_unique
