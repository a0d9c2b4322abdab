"""Fixtures for the model tests: the CDNOW and donations data of REFERENCE.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CDNOW_SAMPLE = SHARED / "corpus" / "cdnow_sample__lifetimes.txt"
CALIBRATION_END = pd.Timestamp("1997-09-30")


def cdnow_days() -> pd.DataFrame:
    """CDNOW purchase occasions (customer ``id``, ``date``, ``dollars`` summed per day)."""
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"{CDNOW_SAMPLE} not present: the shared corpus lives next to the repository (../shared/corpus)")
    tx = pd.read_csv(
        CDNOW_SAMPLE, sep=r"\s+", header=None, names=["master_id", "id", "date", "cds", "dollars"],
        dtype={"date": str},
    )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    return tx.groupby(["id", "date"], as_index=False)["dollars"].sum()


def cdnow_summary() -> pd.DataFrame:
    """The 2,357-customer CDNOW calibration summary, computed from the transactions.

    Same definitions as Fader, Hardie & Lee (2005): purchases on the same day
    are one occasion; ``frequency`` counts repeat days up to 1997-09-30;
    ``recency`` and ``T`` are in weeks (days / 7, unrounded); ``monetary`` is
    the mean value of the repeat purchase occasions (0 for one-time buyers).
    """
    all_days = cdnow_days()
    days = all_days[all_days["date"] <= CALIBRATION_END]
    by = days.groupby("id")["date"]
    first, last, n = by.min(), by.max(), by.size()
    out = pd.DataFrame(
        {
            "frequency": (n - 1).astype(float),
            "recency": (last - first).dt.days / 7.0,
            "T": (CALIBRATION_END - first).dt.days / 7.0,
        }
    )
    repeat = days[days["date"] > days["id"].map(first)]
    out["monetary"] = repeat.groupby("id")["dollars"].mean().reindex(out.index).fillna(0.0)
    out.index.name = "customer"
    return out


@pytest.fixture(scope="session")
def cdnow() -> pd.DataFrame:
    return cdnow_summary()


@pytest.fixture(scope="session")
def donations() -> pd.DataFrame:
    """Fader, Hardie & Shang (2010) donations data, 11,104 donors as 22 weighted rows."""
    return pd.read_csv(HERE / "data" / "donations.csv")


# Fader & Hardie (2007), Table 1: % still active at the start of years 0..12.
SBG_REGULAR = np.array([100, 63.1, 46.8, 38.2, 32.6, 28.9, 26.2, 24.1, 22.3, 20.7, 19.4, 18.3, 17.3])
SBG_HIGH_END = np.array([100, 86.9, 74.3, 65.3, 59.3, 55.1, 51.7, 49.1, 46.8, 44.5, 42.7, 40.9, 39.4])


@pytest.fixture(scope="session")
def fitted(cdnow: pd.DataFrame, donations: pd.DataFrame) -> dict[str, object]:
    """Each model fitted once on its reference data."""
    from clientfolio.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD

    return {
        "bgnbd": BGNBD().fit(cdnow),
        "mbgnbd": MBGNBD().fit(cdnow),
        "paretonbd": ParetoNBD().fit(cdnow),
        "gammagamma": GammaGamma().fit(cdnow),
        "bgbb": BGBB().fit(donations),
    }
