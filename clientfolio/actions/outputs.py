"""The files clientfolio wrote that hold customer data, so erasure and access can find them again."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clientfolio.store.base import Store
from clientfolio.store.live import now_utc


def record_output(store: Store, path: str | Path, kind: str, rows: int | None = None,
                  pseudonymised: bool = False) -> None:
    """Remember that `path` (absolute) was written with customer data (kind: export, report, customers, ...).

    Writing the same path again replaces the entry.
    """
    p = str(Path(path).resolve())
    with store.transaction() as tx:
        tx.execute("DELETE FROM outputs WHERE path = ?", [p])
        tx.insert("outputs", pd.DataFrame({"path": [p], "kind": [kind], "written_at": [now_utc()],
                                           "rows": [rows], "pseudonymised": [pseudonymised]}))


def recorded_outputs(store: Store) -> pd.DataFrame:
    """Every recorded file (path, kind, written_at, rows, pseudonymised), oldest first."""
    return store.query("SELECT path, kind, written_at, rows, pseudonymised FROM outputs ORDER BY written_at, path")
