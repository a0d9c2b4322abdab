"""Read shop exports (Shopify, WooCommerce, Square, Stripe, UCI, CDNOW, ...) into the store."""

from clientfolio.ingest.engine import import_files
from clientfolio.ingest.layouts import Layout, builtin_layouts, load_layout_file
from clientfolio.ingest.result import FileReport, ImportResult
from clientfolio.ingest.transform import ImportOptions

__all__ = ["FileReport", "ImportOptions", "ImportResult", "Layout", "builtin_layouts", "import_files",
           "load_layout_file", "read"]


def read(path, **kwargs):
    """Read one export into canonical DataFrames without a persistent store.

    Returns a dict of DataFrames (``transactions``, ``customers``, ...), plus the
    ImportResult under ``"result"``.  Keyword arguments are ImportOptions fields.
    """
    import tempfile
    from pathlib import Path

    from clientfolio.store import open_store

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    with tempfile.TemporaryDirectory(prefix="clientfolio-read-") as tmp:
        store = open_store(Path(tmp) / "read.duckdb")
        try:
            result = import_files(paths, store, ImportOptions(**kwargs), rejects_dir=Path(tmp) / "rejects")
            out = {t: store.table(t) for t in ("transactions", "customers", "events", "marketing_spend")}
            if result.rejects_path:
                import pandas as pd

                out["rejects"] = pd.read_csv(result.rejects_path, dtype=str)
        finally:
            store.close()
    out["result"] = result
    return out
