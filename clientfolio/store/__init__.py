"""Where the canonical tables live: a DuckDB file by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path

from clientfolio.store.base import IDS_IN, Store
from clientfolio.store.duckdb_store import DuckDBStore

DEFAULT_STORE = "clientfolio.duckdb"


def open_store(location: str | Path | None = None) -> Store:
    """Open (and migrate) a store: a DuckDB file path, or a ``postgresql://`` URL."""
    loc = str(location or DEFAULT_STORE)
    if loc.startswith(("postgresql://", "postgres://")):
        from clientfolio.store.postgres_store import PostgresStore

        return PostgresStore(loc)
    return DuckDBStore(Path(loc))


__all__ = ["DEFAULT_STORE", "IDS_IN", "DuckDBStore", "Store", "open_store"]
