"""A store kept open (as the service keeps it) still writes in bulk after an import failed halfway."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clientfolio.core.errors import IngestError
from clientfolio.ingest import import_files


def test_bulk_write_after_a_failed_import(store, tmp_path: Path) -> None:
    bad = tmp_path / "unknown.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(IngestError, match="layout"):
        import_files([bad], store, rejects_dir=tmp_path)
    changes = pd.DataFrame({"customer_id": [f"c{i}" for i in range(50)], "segment_kind": "lifecycle",
                            "from_segment": "active", "to_segment": "at risk", "changed_at": pd.Timestamp("2024-01-01"),
                            "cause": "time", "reason": "no order in 60 days", "state_id": 1, "event_key": None})
    ids = store.commit_live(state_rows=None, changes=changes, outbox=None)  # more rows than the small-batch path
    assert ids == list(range(1, 51))
    assert len(store.read_changes()) == 50
