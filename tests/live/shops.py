"""The demo shop fitted at a cut-off with the later orders and events held back, for replaying them."""

from __future__ import annotations

from typing import Any

import pandas as pd

import clientfolio
from clientfolio.datasets import demo_shop_paths
from clientfolio.ingest import import_files
from clientfolio.store import open_store

D0 = pd.Timestamp("2024-10-31")  # two months before the demo shop's last day


def held_back_store(url: str, fitted_at: pd.Timestamp = D0, **analyze_options: Any
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo shop in `url` up to `fitted_at` (analysed there, with `analyze_options`); returns the held-back
    order lines and events."""
    p = demo_shop_paths()
    with open_store(url) as st:
        import_files([p["customers"], p["transactions"], p["events"], p["marketing_spend"]], st)
        cut = f"CAST(DATE '{(fitted_at + pd.Timedelta(days=1)).date()}' AS TIMESTAMP)"
        tx = st.query(f"SELECT * FROM transactions WHERE ts >= {cut} ORDER BY ts, source, order_id, line_key")
        ev = st.query(f"SELECT * FROM events WHERE ts >= {cut} ORDER BY ts, event_id")
        st.query(f"DELETE FROM transactions WHERE ts >= {cut}")
        st.query(f"DELETE FROM events WHERE ts >= {cut}")
        clientfolio.analyze(store=st, cutoff=fitted_at, **analyze_options)
    return tx, ev
