"""Bundled data sets: the CDNOW master file and a generated bakery-café demo shop.

- ``CDNOW_master.txt``: 69,659 CD purchases by 23,570 customers of CDNOW (Fader &
  Hardie), the data behind the BG/NBD and Pareto/NBD papers; see ``data/SOURCES.md``.
- ``demo_bakery/``: two years of a generated bakery-café in the canonical tables
  (transactions, customers, events, marketing_spend); regenerate it with
  ``python -m clientfolio.datasets.bakery --out DIR`` (see :mod:`clientfolio.datasets.bakery`).

The files are read through :mod:`importlib.resources`, so they work from an installed wheel.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

import pandas as pd

from . import _io

__all__ = ["cdnow_master_path", "load_cdnow_master", "demo_shop_dir", "demo_shop_paths", "load_demo_shop"]

_extracted: contextlib.ExitStack | None = None  # files extracted from a zipped install, if any


def _data_path(*parts: str) -> Path:
    """A real file-system path to a bundled file (extracted once if the package is zipped)."""
    res = resources.files(__name__).joinpath("data", *parts)
    if isinstance(res, Path):
        return res
    global _extracted
    if _extracted is None:
        _extracted = contextlib.ExitStack()
        atexit.register(_extracted.close)
    return Path(_extracted.enter_context(resources.as_file(res)))


def cdnow_master_path() -> Path:
    """Path of the CDNOW master file as shipped by ``lifetimes`` 0.11.3 (byte for byte)."""
    return _data_path("CDNOW_master.txt")


def load_cdnow_master() -> pd.DataFrame:
    """The CDNOW master file: one row per purchase record.

    Columns: ``customer_id`` (str, as written in the file, e.g. ``"00001"``), ``date``
    (datetime64, the day), ``cds`` (int, number of CDs), ``amount`` (float, US dollars).
    69,659 rows, 23,570 customers, 1997-01-01 to 1998-06-30.  Several rows of one
    customer on one day are kept as they are.
    """
    df = pd.read_csv(cdnow_master_path(), sep=r"\s+", dtype={"customer_id": str, "date": str})
    df = df.rename(columns={"number_of_cds": "cds", "dollar_value": "amount"})
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df[["customer_id", "date", "cds", "amount"]]


def demo_shop_dir() -> Path:
    """Directory of the bundled bakery-café demo shop."""
    return _data_path("demo_bakery")


def demo_shop_paths() -> dict[str, Path]:
    """Paths of the demo shop's four tables, keyed by canonical table name."""
    return {name: _data_path("demo_bakery", fname) for name, fname in _io.FILENAMES.items()}


def load_demo_shop() -> dict[str, pd.DataFrame]:
    """The demo shop's ``transactions``, ``customers``, ``events`` and ``marketing_spend``.

    Timestamps are tz-aware UTC, dates are datetime64, money is float with two decimals,
    ``cost_to_serve`` is set on the first line of each order only.  Equal to
    ``clientfolio.datasets.bakery.generate()`` with the default arguments.
    """
    return {name: _io.read_table(name, path) for name, path in demo_shop_paths().items()}
