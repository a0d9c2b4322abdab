"""Shared fixtures: real stores (a DuckDB file under tmp_path, a real PostgreSQL server)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
DATA = ROOT / "tests" / "data"
DEFAULT_PG = "postgresql://clientfolio:clientfolio@127.0.0.1:5432/clientfolio_test"


def corpus_file(name: str) -> Path:
    """A real export from ../shared/corpus; skip (with the reason) when shared/ is absent."""
    p = CORPUS / name
    if not p.exists():
        pytest.skip(f"{p} not present: the shared corpus lives next to the repository (../shared/corpus)")
    return p


def _pg_url() -> str | None:
    url = os.environ.get("CLIENTFOLIO_TEST_PG_URL", DEFAULT_PG)
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return url
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must test against PostgreSQL but cannot connect to {url}: {exc}") from exc
        return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = _pg_url()
    if url is None:
        pytest.skip("no PostgreSQL server at CLIENTFOLIO_TEST_PG_URL (`bash .ci/run` starts one)")
    return url


def pg_schema(pg_url: str) -> tuple[str, str]:
    """(a URL whose search_path is a fresh schema, the schema's name)."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(pg_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_store_url(pg_url: str):
    """A URL whose search_path is a fresh schema, dropped after the test."""
    url, schema = pg_schema(pg_url)
    yield url
    drop_pg_schema(pg_url, schema)


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def module_store_url(request, tmp_path_factory):
    """The location of an empty store that a module's tests share, once per backend (PostgreSQL: a fresh
    schema, dropped after the module)."""
    if request.param == "duckdb":
        yield str(tmp_path_factory.mktemp("store") / "shop.duckdb")
        return
    base = _pg_url()
    if base is None:
        pytest.skip("no PostgreSQL server at CLIENTFOLIO_TEST_PG_URL (`bash .ci/run` starts one)")
    url, schema = pg_schema(base)
    yield url
    drop_pg_schema(base, schema)


@pytest.fixture(params=["duckdb", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """The location of an empty store, once per backend."""
    if request.param == "duckdb":
        return str(tmp_path / "store.duckdb")
    return request.getfixturevalue("pg_store_url")


@pytest.fixture
def store(store_url: str, tmp_path: Path):
    from clientfolio.store import open_store

    st = open_store(store_url)
    if st.kind == "postgresql":
        st._rejects_dir = tmp_path / "rejects"  # keep rejects files out of the working directory
    yield st
    st.close()
