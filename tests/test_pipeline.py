"""The analyze stages' own shortcuts give what the long way gives."""

from __future__ import annotations

import pandas as pd

from clientfolio.datasets import demo_shop_paths
from clientfolio.features import rfm_summary
from clientfolio.ingest import import_files
from clientfolio.pipeline import store_support, support_at


def test_store_support_counts_what_the_summary_counts(store) -> None:
    """The forecast check counted in the store (no per-customer fetch) matches the summary it replaced,
    on both backends and at cut-offs where the verdict differs (a few weeks in, and the whole history)."""
    import_files([demo_shop_paths()["transactions"]], store)
    span = store.query("SELECT min(ts) AS a, max(ts) AS b FROM transactions WHERE customer_id IS NOT NULL")
    first, last = pd.Timestamp(span["a"].iloc[0]), pd.Timestamp(span["b"].iloc[0]).normalize()
    verdicts = set()
    for cutoff in (first + pd.Timedelta(days=20), first + pd.Timedelta(days=200), last):
        expected = support_at(rfm_summary(store, cutoff=cutoff, unit="W"), first, cutoff)
        got = store_support(store, first, cutoff)
        assert got == expected
        verdicts.add(got.forecasts)
    assert verdicts == {False, True}  # both outcomes exercised
