"""Experiments: a reproducible split, read-outs that recover a known effect, an honest error rate, sample sizes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clientfolio.actions import stats
from clientfolio.actions.experiments import (ExperimentError, advise, assignments, experiments, read_out, sample_size,
                                             split, start_experiment)
from clientfolio.actions.members import SegmentNotFound

START = pd.Timestamp("2024-03-01")


# ------------------------------------------------------------------------------------ the split

def test_split_is_reproducible_close_to_the_share_and_independent_of_order() -> None:
    rng = np.random.default_rng(1)
    ids = [f"cust-{i:06d}" for i in rng.permutation(20_000)]
    a = split(ids, "spring", 0.2)
    b = split(list(reversed(ids)), "spring", 0.2)
    pd.testing.assert_frame_equal(a, b)  # the same arms whatever the row order
    share = (a["arm"] == "holdout").mean()
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(ids))  # binomial tolerance, 4 sigma
    # a customer keeps their arm when the segment grows or shrinks
    sub = split(ids[:500], "spring", 0.2).set_index("customer_id")["arm"]
    assert (sub == a.set_index("customer_id")["arm"].loc[sub.index]).all()
    # another seed is another split, about as balanced
    c = split(ids, "autumn", 0.2)
    assert (c["arm"] != a["arm"]).mean() > 0.2
    assert abs((c["arm"] == "holdout").mean() - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(ids))


def test_split_is_the_same_on_every_machine() -> None:
    """Pinned arms: sha256 of "seed:id", first 64 bits as a fraction of 2**64, holdout below the share."""
    got = dict(zip(*split([f"C{i}" for i in range(12)], "golden", 0.3).T.values))
    assert got == {"C0": "treatment", "C1": "treatment", "C10": "holdout", "C11": "treatment", "C2": "treatment",
                   "C3": "holdout", "C4": "holdout", "C5": "treatment", "C6": "holdout", "C7": "treatment",
                   "C8": "holdout", "C9": "holdout"}
    with pytest.raises(ExperimentError, match="between 0 and 1"):
        split(["a"], "s", 1.2)


# ------------------------------------------------------------------------------------ a simulated shop

def _segment(store, ids: list[str], others: dict[str, str] | None = None) -> None:
    """One rfm snapshot at START: `ids` in At Risk, `others` (customer -> segment) elsewhere."""
    others = others or {}
    store.save_memberships(pd.DataFrame({"customer_id": ids + list(others), "segment_kind": "rfm",
                                         "segment": ["At Risk"] * len(ids) + list(others.values()), "as_of": START}))


def _orders(store, rows: list[tuple[str, pd.Timestamp, float]]) -> None:
    df = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    df["source"] = "sim"
    df["order_id"] = [f"o{i}" for i in range(len(df))]
    df["line_key"] = "1"
    df["is_refund"] = df["amount"] < 0
    df["row_hash"] = df["order_id"]
    df["import_id"] = 1
    with store.transaction() as tx:
        tx.insert("transactions", df)


def test_readout_recovers_a_known_effect(store) -> None:
    """Conversion 20% held out vs 30% treated, 3,000 customers: found, and the truth lies in the interval."""
    ids = [f"c{i:05d}" for i in range(3000)]
    # a second segment, not part of the experiment, buying a lot: must not leak into the read-out
    _segment(store, ids, {"z1": "Champions", "z2": "Champions"})
    exp = start_experiment(store, "winback", "rfm", "At Risk", holdout_share=0.3, seed=7, window_days=60, at=START,
                           description="the win-back offer")
    assert exp.treatment + exp.holdout == 3000
    arms = assignments(store, "winback").set_index("customer_id")["arm"]
    rng = np.random.default_rng(42)
    rows, mean_amount = [], math.exp(3.0 + 0.5 ** 2 / 2)
    for cid in ids:
        if rng.random() < (0.30 if arms[cid] == "treatment" else 0.20):
            rows.append((cid, START + pd.Timedelta(days=int(rng.integers(0, 60)), hours=10),
                         float(rng.lognormal(3.0, 0.5))))
        elif rng.random() < 0.1:  # buys only after the window: counts for retention, not conversion
            rows.append((cid, START + pd.Timedelta(days=75), 10.0))
    rows += [("z1", START + pd.Timedelta(days=3), 500.0), ("z2", START + pd.Timedelta(days=3), 500.0)]
    _orders(store, rows + [("c00000", START - pd.Timedelta(days=1), 99.0)])  # before the start: ignored
    r = read_out(store, "winback", as_of=START + pd.Timedelta(days=90))
    t = r.table.set_index("metric")
    assert r.complete and list(t.index)[0] == "conversion"
    conv = t.loc["conversion"]
    assert conv["verdict"] == "detected"
    assert conv["ci_low"] < 0.10 < conv["ci_high"] and conv["ci_low"] > 0
    # the rates are the simulated customers', counted by hand
    bought = {c for c, ts, _ in rows if ts < START + pd.Timedelta(days=60) and c.startswith("c")}
    treated = arms[arms == "treatment"].index
    assert conv["treatment"] == pytest.approx(len(bought & set(treated)) / len(treated))
    assert conv["treatment_n"] == len(treated) and conv["holdout_n"] == 3000 - len(treated)
    rev = t.loc["revenue"]
    assert rev["ci_low"] < 0.10 * mean_amount < rev["ci_high"] and rev["verdict"] == "detected"
    assert t.loc["retention", "treatment"] > conv["treatment"]  # later orders count as retained
    assert "the win-back offer brought back" in r.text and "points more At Risk customers" in r.text
    assert "95% confidence interval for the difference" in r.text


def test_interim_and_small_groups_are_said(store) -> None:
    _segment(store, [f"s{i}" for i in range(40)])
    start_experiment(store, "tiny", "rfm", "At Risk", at=START)
    _orders(store, [("s1", START + pd.Timedelta(days=5), 20.0)])
    r = read_out(store, "tiny")  # data reaches only day 5
    assert not r.complete and "Interim: the data covers 5 of the 60 days" in r.text
    assert set(r.table["verdict"]) == {"too small"}
    assert "too small for a conclusion" in r.text
    with pytest.raises(ExperimentError, match="exists"):
        start_experiment(store, "tiny", "rfm", "At Risk", at=START)
    with pytest.raises(SegmentNotFound, match="the rfm segments are: At Risk"):
        start_experiment(store, "other", "rfm", "Lost", at=START)
    assert experiments(store)["name"].tolist() == ["tiny"]


# ------------------------------------------------------------------------------------ error rates

def test_null_effect_is_called_significant_at_the_stated_rate() -> None:
    """1,000 simulated null experiments (the read-out's own decision rule): false positives within the
    binomial band around alpha."""
    rng = np.random.default_rng(2024)
    sims, alpha, n_t, n_h = 1000, 0.05, 2400, 600
    x_t, x_h = rng.binomial(n_t, 0.2, sims), rng.binomial(n_h, 0.2, sims)
    hits = sum(stats.significant(stats.two_proportions(int(a), n_t, int(b), n_h, alpha), alpha)
               for a, b in zip(x_t, x_h))
    band = 3 * math.sqrt(alpha * (1 - alpha) / sims)
    assert alpha - band <= hits / sims <= alpha + band
    # the vectorised p-values are the same test
    p = stats.two_proportions_p(x_t[:20], n_t, x_h[:20], n_h)
    assert np.allclose(p, [stats.two_proportions(int(a), n_t, int(b), n_h).p_value for a, b in zip(x_t[:20],
                                                                                                      x_h[:20])])


def test_null_revenue_effect_is_called_significant_at_most_at_the_stated_rate() -> None:
    """Zero-heavy, skewed revenue per customer with no effect: Welch + bootstrap keeps its error rate."""
    rng = np.random.default_rng(7)
    sims, alpha = 300, 0.05

    def revenue(n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.25, rng.lognormal(3.0, 1.0, n), 0.0)

    hits = sum(stats.significant(stats.welch_bootstrap(revenue(300), revenue(150), alpha, 400, seed=i), alpha)
               for i in range(sims))
    assert hits / sims <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sims)


# ------------------------------------------------------------------------------------ sample size

def test_sample_size_matches_the_textbook() -> None:
    """Fleiss, Levin & Paik (2003), Table A.4: p1 = 0.20, p2 = 0.30, alpha 0.05 two-sided, power 0.80:
    313 per group with the continuity correction; 294 without it (eq. 4.14)."""
    assert sample_size(0.2, 0.1, holdout_share=0.5, continuity_correction=True).holdout == 313
    plain = sample_size(0.2, 0.1, holdout_share=0.5)
    assert (plain.treatment, plain.holdout) == (294, 294)
    # unequal groups need more in total, and the holdout is the stated share of it
    uneq = sample_size(0.2, 0.1, holdout_share=0.2)
    assert uneq.total > plain.total and uneq.holdout / uneq.total == pytest.approx(0.2, abs=0.01)
    # the detectable effect is the inverse of the sample size
    assert stats.detectable_lift(uneq.total, 0.2, 0.05, 0.8, 0.2) == pytest.approx(0.1, abs=0.002)
    with pytest.raises(ExperimentError, match="absolute rise"):
        sample_size(0.9, 0.2)


def test_advice_says_when_a_segment_is_too_small(store) -> None:
    _segment(store, [f"a{i}" for i in range(400)])
    adv = advise(store, "rfm", "At Risk", minimum_effect=0.05, baseline_rate=0.2)
    assert not adv.enough and adv.customers == 400
    assert "Too small for the effect asked for" in adv.text
    assert f"could detect a rise of {adv.detectable * 100:.1f} points" in adv.text
    assert adv.detectable == pytest.approx(stats.detectable_lift(400, 0.2, 0.05, 0.8, 0.2))
    assert sample_size(0.2, adv.detectable).total <= 402  # each arm rounded up
    assert sample_size(0.2, adv.detectable * 1.02).total <= 400 < sample_size(0.2, adv.detectable * 0.98).total
    big = advise(store, "rfm", "At Risk", minimum_effect=0.2, baseline_rate=0.2)
    assert big.enough and big.text.startswith("At Risk (rfm) has 400 customers")
