"""The Portfolio object as a notebook shows it: what comes from the shop's data is escaped."""

from __future__ import annotations

import pandas as pd

from clientfolio.portfolio import Portfolio

HOSTILE = "<img src=x onerror=alert(1)>"


def test_notebook_view_escapes_names_from_the_data() -> None:
    customers = pd.DataFrame({"customer_id": ["a", "b"], "orders": [2, 1], "revenue": [30.0, 10.0]})
    segments = pd.DataFrame({"customer_id": ["a", "b"], "segment_kind": ["rule", "rule"],
                             "segment": [HOSTILE, "plain"], "as_of": pd.Timestamp("2024-01-31")})
    pf = Portfolio(customers=customers, segments=segments, kpis=pd.DataFrame(), as_of=pd.Timestamp("2024-01-31"),
                   clv_cac=pd.DataFrame({"channel": [HOSTILE, "google"], "clv_cac": [5.0, 1.0]}), currency="£")
    assert any(HOSTILE in line for line in pf.headline())  # the plain text keeps the name as it is
    page = pf._repr_html_()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
