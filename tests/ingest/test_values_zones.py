"""Time zones after a time are read, or the row is rejected with its reason; never dropped.

Regression for: offsets '-05' (PostgreSQL's text form), 'EST', 'CEST', 'America/New_York' were
ignored (taken as UTC) and '+25:00' was accepted.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from clientfolio.core.errors import ClientfolioError, IngestError
from clientfolio.ingest import ImportOptions, import_files
from clientfolio.ingest.zones import resolve_zone
from clientfolio.store import open_store
from tests.conftest import DATA

VALUES = DATA / "trust" / "values"


def test_zones_are_read_or_rejected(tmp_path: Path, store_url: str) -> None:
    result = import_files([VALUES / "timezones.csv"], store_url, rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced and f.rows_in == 14 and f.rows_stored == 9 and f.rows_rejected == 5
    with open_store(store_url) as st:
        ts = st.table("transactions").set_index("order_id")["ts"].to_dict()
    utc = {k: pd.Timestamp(v).to_pydatetime() for k, v in ts.items()}
    assert utc == {
        "1": datetime(2024, 3, 5, 19, 22, 31),  # -05
        "2": datetime(2024, 3, 5, 12, 22, 31),  # CEST
        "3": datetime(2024, 3, 5, 19, 22, 31),  # America/New_York in winter
        "5": datetime(2024, 3, 5, 14, 22, 31),  # Z
        "6": datetime(2024, 3, 5, 8, 52, 31),  # +0530
        "8": datetime(2024, 3, 5, 14, 22, 31),  # UTC
        "9": datetime(2024, 3, 5, 12, 22, 31),  # GMT+2
        "11": datetime(2024, 7, 5, 13, 22, 31),  # Europe/London in summer
        "12": datetime(2024, 3, 5),
    }
    rej = pd.read_csv(result.rejects_path, dtype=str).set_index("row")
    assert "'+25:00' is out of range" in rej.loc["5", "reason"]
    assert "'+01:60' is out of range" in rej.loc["11", "reason"]
    assert "unrecognised text 'junk' after the date/time" in rej.loc["8", "reason"]
    assert "unrecognised text 'junk'" in rej.loc["15", "reason"]  # '2024-03-05junk'
    assert "spreadsheet serial day number" in rej.loc["14", "reason"]
    assert (rej["column"] == "date").all()


def test_ambiguous_abbreviation_asks_for_the_time_zone(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as exc:
        import_files([VALUES / "timezone_abbreviation_ambiguous.csv"], tmp_path / "s.duckdb",
                     rejects_dir=tmp_path / "rej")
    assert "'EST'" in str(exc.value) and "--timezone" in str(exc.value) and "column 'date'" in str(exc.value)
    result = import_files([VALUES / "timezone_abbreviation_ambiguous.csv"], tmp_path / "t.duckdb",
                          ImportOptions(timezone="America/New_York"), rejects_dir=tmp_path / "rej")
    assert result.files[0].rows_stored == 3
    with open_store(tmp_path / "t.duckdb") as st:
        ts = sorted(pd.Timestamp(t).to_pydatetime() for t in st.table("transactions")["ts"])
    assert ts == [datetime(2024, 1, 5, 19, 22, 31), datetime(2024, 7, 5, 18, 22, 31), datetime(2024, 7, 6, 13)]


@pytest.mark.parametrize(("suffix", "user_tz", "offset", "name"), [
    ("-05", "UTC", -300, None), ("+0530", "UTC", 330, None), ("+05:30", "UTC", 330, None), ("Z", "UTC", 0, None),
    ("GMT+2", "UTC", 120, None), ("UTC-03:00", "UTC", -180, None), ("+14:00", "UTC", 840, None),
    ("-12:00", "UTC", -720, None), ("CEST", "UTC", 120, None), ("cet", "UTC", 60, None),
    ("America/New_York", "UTC", None, "America/New_York"), ("europe/paris", "UTC", None, "Europe/Paris"),
    ("IST", "Asia/Kolkata", 330, None), ("IST", "Europe/Dublin", 60, None), ("BST", "Europe/London", 60, None),
    ("CST", "Asia/Shanghai", 480, None), ("CST", "America/Chicago", -360, None),
])
def test_resolve_zone(suffix: str, user_tz: str, offset: int | None, name: str | None) -> None:
    z = resolve_zone(suffix, user_tz)
    assert (z.offset, z.name, z.problem) == (offset, name, None)


@pytest.mark.parametrize(("suffix", "ambiguous"), [
    ("+25:00", False), ("-13:00", False), ("+01:60", False), ("+5", False), ("junk", False), ("Mars/Olympus", False),
    ("EST", True), ("IST", True), ("CST", True), ("BST", True), ("PST", True),
])
def test_resolve_zone_refuses(suffix: str, ambiguous: bool) -> None:
    z = resolve_zone(suffix, "UTC")
    assert z.offset is None and z.name is None and z.problem and z.ambiguous == ambiguous


def test_unknown_timezone_option_is_refused() -> None:
    with pytest.raises(ClientfolioError, match="--timezone must be an IANA zone name"):
        ImportOptions(timezone="Mars/Olympus")


def test_square_time_zone_column_is_read_or_rejected(tmp_path: Path, store_url: str) -> None:
    """An unknown zone was read as the default zone, a time such as 25:99 as midnight."""
    result = import_files([VALUES / "square_time_zones.csv"], store_url, rejects_dir=tmp_path / "rej")
    (f,) = result.files
    assert f.balanced and f.rows_stored == 3 and f.rows_rejected == 2
    with open_store(store_url) as st:
        ts = sorted(pd.Timestamp(t).to_pydatetime() for t in st.table("transactions")["ts"])
    # Pacific (PDT, -7), '(GMT+01:00) Paris' (CET before 31 March), Europe/Berlin (CET)
    assert ts == [datetime(2024, 3, 28, 8, 30), datetime(2024, 3, 28, 11, 0), datetime(2024, 3, 28, 14, 21, 25)]
    rej = pd.read_csv(result.rejects_path, dtype=str).set_index("row")
    assert rej.loc["3", "column"] == "Time Zone" and "unrecognised time zone" in rej.loc["3", "reason"]
    assert rej.loc["6", "column"] == "Time" and "cannot read as a time of day" in rej.loc["6", "reason"]
