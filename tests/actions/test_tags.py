"""The owner's tags: validated, round-trip on both stores, and laid beside the measured value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clientfolio.actions.tags import TagError, read_tags, set_tags, tagged_portfolio, tags_wide


def _customers(store, ids: list[str]) -> None:
    with store.transaction() as tx:
        tx.insert("customers", pd.DataFrame({"customer_id": ids, "row_hash": "h", "import_id": 1}))


def test_tags_round_trip_normalised_and_replaced(store) -> None:
    _customers(store, ["a", "b", "c"])
    n = set_tags(store, pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c"],
        "tag": ["strategic_fit", "Key Account", "local_supplier", "growth-potential", "partner", "note"],
        "value": ["High", "true", "yes", "medium", "no", "met at the fair"],
    }))
    assert n == 6
    got = read_tags(store)
    assert set(map(tuple, got[["customer_id", "tag", "value"]].values)) == {
        ("a", "strategic_fit", "high"), ("a", "key_account", "yes"), ("a", "local_supplier", "yes"),
        ("b", "growth_potential", "medium"), ("b", "partner", "no"), ("c", "note", "met at the fair")}
    assert got["set_at"].notna().all()
    # a newer value replaces the old one; an empty value removes the tag
    set_tags(store, pd.DataFrame({"customer_id": ["a", "a"], "tag": ["strategic_fit", "local_supplier"],
                                  "value": ["low", None]}))
    a = read_tags(store, ["a"]).set_index("tag")["value"].to_dict()
    assert a == {"strategic_fit": "low", "key_account": "yes"}
    wide = tags_wide(read_tags(store)).set_index("customer_id")
    assert wide.loc["c", "other_tags"] == "note=met at the fair" and pd.isna(wide.loc["c", "strategic_fit"])


@pytest.mark.parametrize("tag,value,message", [
    ("strategic_fit", "great", "use one of low, medium, high"),
    ("partner", "maybe", "use one of yes, no"),
    ("keyaccount", "yes", "did you mean key_account"),
    ("strategic_fitt", "high", "did you mean strategic_fit"),
    ("9lives", "yes", "use letters, digits and _"),
])
def test_unknown_values_and_typos_refused_with_the_allowed_ones(store, tag, value, message) -> None:
    _customers(store, ["a"])
    with pytest.raises(TagError, match=message):
        set_tags(store, pd.DataFrame({"customer_id": ["a"], "tag": [tag], "value": [value]}))
    assert read_tags(store).empty  # nothing half-written


def test_one_bad_row_stores_nothing_and_unknown_customers_are_refused(store) -> None:
    _customers(store, ["a"])
    with pytest.raises(TagError, match="row 2"):
        set_tags(store, pd.DataFrame({"customer_id": ["a", "a"], "tag": ["partner", "partner"],
                                      "value": ["yes", "perhaps"]}))
    with pytest.raises(TagError, match="unknown customer zz"):
        set_tags(store, pd.DataFrame({"customer_id": ["a", "zz"], "tag": ["partner", "partner"],
                                      "value": ["yes", "yes"]}))
    assert read_tags(store).empty


def test_tagged_portfolio_names_disagreements_both_ways() -> None:
    customers = pd.DataFrame({"customer_id": ["k", "s", "g", "ok", "x"],
                              "quadrant": ["Review", "Stars", "Maintain", "Stars", "Develop"],
                              "value_tier": ["Low", "High", "High", "High", "Medium"],
                              "clv": [1.0, 900.0, 300.0, 800.0, 100.0]})
    tags = pd.DataFrame({"customer_id": ["k", "s", "g", "ok", "gone"],
                         "tag": ["key_account", "strategic_fit", "growth_potential", "strategic_fit", "partner"],
                         "value": ["yes", "low", "high", "high", "yes"]})
    view = tagged_portfolio(customers, tags).set_index("customer_id")
    assert "x" not in view.index  # untagged customers are not listed
    assert "keep despite the numbers" in view.loc["k", "disagreement"] and view.loc["k", "owner_view"] == "strategic"
    assert "among your Stars" in view.loc["s", "disagreement"] and "low strategic fit" in view.loc["s", "disagreement"]
    assert "high growth potential" in view.loc["g", "disagreement"]
    assert view.loc["ok", "disagreement"] == ""
    assert "not in the analysed portfolio" in view.loc["gone", "disagreement"]
    order = list(tagged_portfolio(customers, tags)["customer_id"])
    assert set(order[:3]) == {"k", "s", "g"}  # real disagreements first


def test_cli_tag_and_import_on_the_demo_store(demo_store_path: Path, tmp_path: Path) -> None:
    from clientfolio.store import open_store
    from tests.actions.test_acquisition import cli_app

    runner = CliRunner()
    app = cli_app()
    r = runner.invoke(app, ["tag", "C00002", "--set", "key_account=yes", "--set", "strategic_fit=high",
                            "--tag", "local_supplier", "--store", str(demo_store_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["tag", "C00003", "--set", "strategic_fit=superb", "--store", str(demo_store_path)])
    assert r.exit_code == 1 and "use one of low, medium, high" in r.output
    f = tmp_path / "tags.csv"
    f.write_text("customer_id,strategic_fit,partner\nC00003,low,\nC00010,,yes\n", encoding="utf-8")
    r = runner.invoke(app, ["tag", "--import", str(f), "--store", str(demo_store_path)])
    assert r.exit_code == 0, r.output
    with open_store(str(demo_store_path)) as st:
        got = read_tags(st)
        view = tagged_portfolio(st, got).set_index("customer_id")
    assert set(map(tuple, got[["customer_id", "tag", "value"]].values)) == {
        ("C00002", "key_account", "yes"), ("C00002", "strategic_fit", "high"), ("C00002", "local_supplier", "yes"),
        ("C00003", "strategic_fit", "low"), ("C00010", "partner", "yes")}
    # demo: C00002 sits in Review, C00003 among the Stars (see the analysed demo shop)
    assert view.loc["C00002", "quadrant"] == "Review" and "keep despite the numbers" in view.loc["C00002",
                                                                                                 "disagreement"]
    assert view.loc["C00003", "quadrant"] == "Stars" and "among your Stars" in view.loc["C00003", "disagreement"]
    r = runner.invoke(app, ["tags", "--store", str(demo_store_path)])
    assert r.exit_code == 0 and "disagree on 2" in r.output
