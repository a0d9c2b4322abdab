"""Customers erased on request stay erased: an import skips their rows instead of re-creating them.

Rows whose customer id or e-mail belongs to an erased customer (see `clientfolio.store.pseudonym`)
are marked `erased` in their stage: not stored, not written to the rejects file (that would keep
their data again), and counted apart in the row accounting as "erased on request".
"""

from __future__ import annotations

import duckdb
import pandas as pd

from clientfolio.ingest.transform import Stage
from clientfolio.store.base import Store
from clientfolio.store.pseudonym import erased_values

ERASED = "erased"


def skip_erased(con: duckdb.DuckDBPyConnection, stages: list[Stage], store: Store) -> int:
    """Mark the staged rows of erased customers; return how many were marked."""
    if store.query("SELECT count(*) AS n FROM erasures")["n"].iloc[0] == 0:
        return 0  # nobody was ever erased: nothing to compare
    marked = 0
    for s in stages:
        cols = {r[0] for r in con.execute(f"DESCRIBE {s.stage}").fetchall()}
        keys = [c for c in ("customer_id", "email", "person_id") if c in cols]
        if not keys:
            continue
        values = set()
        for c in keys:
            values.update(v for (v,) in con.execute(f"SELECT DISTINCT {c} FROM {s.stage} WHERE {c} IS NOT NULL")
                          .fetchall())
        hit = erased_values(store, values)
        if not hit:
            continue
        con.register("__erased_values", pd.DataFrame({"v": sorted(hit)}))
        try:
            cond = " OR ".join(f"{c} IN (SELECT v FROM __erased_values)" for c in keys)
            n = con.execute(f"SELECT count(*) FROM {s.stage} WHERE {cond}").fetchall()[0][0]
            con.execute(f"UPDATE {s.stage} SET __kind = '{ERASED}', __reason = 'erased on request', "
                        f"__column = NULL, __value = NULL WHERE {cond}")
        finally:
            con.unregister("__erased_values")
        marked += int(n)
    return marked
