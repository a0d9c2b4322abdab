"""Acquisition insight: the profile finds a planted channel effect (and none where there is none),
lookalikes rank planted lookalikes first, a prospects file's bad rows are named, the demo store works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clientfolio.actions.acquisition import (
    ideal_customer_profile, lookalikes, score_prospects,
)
from clientfolio.actions.prospects import read_prospects

def cli_app():
    """The `clientfolio` app with this area's commands (main() adds them the same way)."""
    from clientfolio.cli import app
    from clientfolio.commands import insight

    if "lookalike" not in {c.name for c in app.registered_commands}:
        insight.register(app)
    return app


AS_OF = pd.Timestamp("2024-12-31")
CHANNELS = ["instagram", "google_ads", "walk_in", "referral", "flyers"]
REGIONS = ["North", "South", "East", "West"]
CATEGORIES = ["bread", "cake", "coffee", "pastry"]


def simulated(n: int = 2000, seed: int = 0, effect: float = 3.0, new: int = 0) -> pd.DataFrame:
    """Customers with lognormal CLV; instagram customers' CLV multiplied by `effect` (1: no difference)."""
    rng = np.random.default_rng(seed)
    ch = rng.choice(CHANNELS, n)
    clv = rng.lognormal(3.0, 1.0, n) * np.where(ch == "instagram", effect, 1.0)
    first = AS_OF - pd.to_timedelta(rng.integers(100, 700, n), unit="D")
    if new:
        first = first.to_numpy().copy()
        first[:new] = (AS_OF - pd.to_timedelta(rng.integers(1, 60, new), unit="D")).to_numpy()
    df = pd.DataFrame({"customer_id": [f"S{i:05d}" for i in range(n)], "clv": clv, "first_purchase": first,
                       "orders": 1 + rng.poisson(2, n), "acquisition_channel": ch,
                       "region": rng.choice(REGIONS, n), "first_category": rng.choice(CATEGORIES, n)})
    df.attrs["as_of"] = AS_OF
    return df


def test_profile_finds_the_channel_that_brings_higher_clv_and_no_other():
    prof = ideal_customer_profile(simulated(effect=3.0), model=False)
    traits = prof.traits
    assert list(traits["value"]) == ["instagram"]
    row = prof.table.set_index(["attribute", "value"]).loc[("acquisition_channel", "instagram")]
    assert row["lift"] > 2 and row["q_value"] < 0.001
    assert row["mean_clv_low"] < row["mean_clv"] < row["mean_clv_high"]
    # evidence is complete: every established customer is counted once per attribute
    counts = prof.table.groupby("attribute")["customers"].sum()
    assert (counts == prof.established).all()
    assert "instagram" in prof.text and "too few" not in prof.text.split("\n")[1]


def test_no_true_difference_finds_no_profile_beyond_the_error_rate():
    found = [len(ideal_customer_profile(simulated(n=1500, seed=s, effect=1.0), model=False).traits)
             for s in range(10)]
    # Benjamini-Hochberg at 5%: under no difference at all, any discovery should be rare
    assert sum(f > 0 for f in found) <= 2, found
    prof = ideal_customer_profile(simulated(n=1500, seed=0, effect=1.0), model=False)
    if prof.traits.empty:
        assert "No channel, region or first purchase brings significantly more" in prof.text


def test_small_groups_are_flagged_not_tested():
    df = simulated(n=800, effect=1.0)
    df.loc[df.index[:12], "region"] = "Tiny"
    df.loc[df.index[:12], "clv"] = 10_000.0  # all top-tier, but only 12 customers
    prof = ideal_customer_profile(df, model=False)
    tiny = prof.table.set_index(["attribute", "value"]).loc[("region", "Tiny")]
    assert bool(tiny["too_small"]) and not bool(tiny["in_profile"]) and np.isnan(tiny["p_value"])
    assert "fewer than 30 customers: too few to conclude" in prof.text


def planted(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    """Top customers mostly came through instagram AND first bought cake; 150 newcomers, 30 of them alike."""
    rng = np.random.default_rng(seed)
    df = simulated(n=n, seed=seed, effect=1.0, new=150)
    alike = (df["acquisition_channel"] == "instagram") & (df["first_category"] == "cake")
    df.loc[alike, "clv"] *= 20
    new = df.index[:150]
    df.loc[new[:30], ["acquisition_channel", "first_category"]] = ["instagram", "cake"]
    rest = df.loc[new[30:]]
    clash = (rest["acquisition_channel"] == "instagram") & (rest["first_category"] == "cake")
    df.loc[rest.index[clash], "acquisition_channel"] = "google_ads"
    prospects = pd.DataFrame({"customer_id": [f"P{i}" for i in range(20)], "clv": np.nan, "first_purchase": pd.NaT,
                              "orders": 0, "acquisition_channel": ["instagram"] * 5 + ["walk_in"] * 15,
                              "region": rng.choice(REGIONS, 20), "first_category": None})
    out = pd.concat([df, prospects], ignore_index=True)
    out.attrs["as_of"] = AS_OF
    return out


def test_lookalikes_rank_planted_lookalikes_first_with_reasons():
    from sklearn.metrics import roc_auc_score

    data = planted()
    res = lookalikes(data)
    t = res.table
    assert set(t["kind"]) == {"prospect", "new customer"}
    assert (t["kind"] == "new customer").sum() == 150 and (t["kind"] == "prospect").sum() == 20
    model = res.profile.model
    assert model is not None and model.better_than_chance and model.auc > 0.55
    new = t[t["kind"] == "new customer"]
    is_alike = new["customer_id"].isin(data["customer_id"].iloc[:30])
    assert roc_auc_score(is_alike, new["score"]) > 0.95
    assert list(t["customer_id"].iloc[:30]) and set(t["customer_id"].iloc[:30]) == set(data["customer_id"].iloc[:30])
    top = t.iloc[0]["reason"]
    assert "came through instagram" in top and "first bought cake" in top and "common among your best" in top
    # prospects: instagram ones score above walk-in ones (only the channel is known)
    pr = t[t["kind"] == "prospect"].set_index("customer_id")["score"]
    assert pr[[f"P{i}" for i in range(5)]].min() > pr[[f"P{i}" for i in range(5, 20)]].max()


def test_model_says_when_it_is_no_better_than_chance():
    prof = ideal_customer_profile(simulated(n=1500, seed=3, effect=1.0))
    assert prof.model is not None
    assert prof.model.auc_low < 0.5 < prof.model.auc_high or not prof.model.better_than_chance
    assert "no better than chance" in prof.model.text


def test_prospects_file_bad_rows_named_and_good_rows_scored(tmp_path: Path):
    prof = ideal_customer_profile(planted())
    f = tmp_path / "leads.csv"
    f.write_text("Email,Name,Region,Channel,First product interest\n"
                 "a@example.com,Ann,North,Instagram,Cake\n"
                 "not-an-email,Bob,South,walk_in,bread\n"
                 "c@example.com,Cy,North\n"
                 "d@example.com,Di,,,\n"
                 "e@example.com,Ed,West,walk_in,coffee\n", encoding="utf-8")
    pf = read_prospects(f, prof.model.known)
    rej = pf.rejects.set_index("row")
    assert list(rej.index) == [3, 4, 5]
    assert rej.loc[3, "column"] == "Email" and "not an e-mail address" in rej.loc[3, "reason"]
    assert "has 3 fields, the header has 5" in rej.loc[4, "reason"]
    assert "nothing to score" in rej.loc[5, "reason"]
    assert (pf.rejects["file"] == str(f)).all()
    scored = score_prospects(prof, pf.frame)
    assert list(scored["Email"]) == ["a@example.com", "e@example.com"]  # the instagram + cake lead first
    assert scored.loc[0, "acquisition_channel"] == "instagram" and scored.loc[0, "first_category"] == "cake"
    assert "came through instagram" in scored.loc[0, "reason"]


def test_prospects_file_without_usable_columns_is_refused(tmp_path: Path):
    from clientfolio.actions.prospects import ProspectsError

    f = tmp_path / "leads.csv"
    f.write_text("email,phone\na@example.com,123\n", encoding="utf-8")
    with pytest.raises(ProspectsError, match="no column to score on"):
        read_prospects(f)


# ----------------------------------------------------------------------------- the demo store

def test_demo_profile_from_store_and_portfolio_agree_and_reuse_clv_cac(demo_analysed):
    from clientfolio.store import open_store

    db, pf = demo_analysed
    with open_store(str(db)) as st:
        a = ideal_customer_profile(st, model=False)
        b = ideal_customer_profile(pf, st, model=False)
    assert set(map(tuple, a.traits[["attribute", "value"]].values)) == \
        set(map(tuple, b.traits[["attribute", "value"]].values))
    assert {"first_category", "first_product", "region", "acquisition_channel"} <= set(a.table["attribute"])
    ch = a.table[a.table["attribute"] == "acquisition_channel"].set_index("value")
    ref = pf.clv_cac.set_index("channel")
    shared = ch.index.intersection(ref.index)
    assert len(shared) >= 4
    np.testing.assert_allclose(ch.loc[shared, "clv_cac"].astype(float), ref.loc[shared, "clv_cac"].astype(float))
    # the demo's referral customers are worth far more than google_maps ones: the profile must agree
    assert ch.loc["referral", "lift"] > 1 > ch.loc["google_maps", "lift"]


def test_cli_lookalike_refuses_bad_prospects_file_and_writes_safe_csv(demo_store_path: Path, tmp_path: Path):
    from clientfolio.store import open_store

    app = cli_app()
    leads = tmp_path / "leads.csv"
    leads.write_text("email,name,region,channel,first_product_interest\n"
                     "a@x.com,Ann,Riverside,referral,sourdough loaf\n"
                     "b@x.com,\"=HYPERLINK(\"\"http://evil\"\")\",Old Town,instagram,cake\n"
                     "bad,Bob,Old Town,instagram,cake\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    runner = CliRunner()
    r = runner.invoke(app, ["lookalike", "--store", str(demo_store_path), "--prospects", str(leads), "--out", str(out)])
    assert r.exit_code == 1 and "row 4" in r.output and "not an e-mail address" in r.output and not out.exists()
    r = runner.invoke(app, ["lookalike", "--store", str(demo_store_path), "--prospects", str(leads), "--out", str(out),
                            "--skip-bad-rows"])
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    got = pd.read_csv(out)
    assert list(got["email"]) == ["a@x.com", "b@x.com"] and got["score"].is_monotonic_decreasing
    with open_store(str(demo_store_path)) as st:
        assert str(out.resolve()) in set(st.query("SELECT path FROM outputs")["path"])
