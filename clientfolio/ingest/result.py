"""What an import did: the row accounting that must always balance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FileReport:
    """Row accounting for one input file: rows_in == stored + rejected + deduplicated + erased.

    `rows_erased`: rows of customers erased on request, skipped (neither stored nor written to
    the rejects file, which would keep their data again).
    """

    path: str
    layout: str
    layout_title: str
    table: str
    rows_in: int = 0
    rows_stored: int = 0
    rows_new: int = 0
    rows_updated: int = 0
    rows_rejected: int = 0
    rows_deduplicated: int = 0
    rows_erased: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    guest_rows: int = 0
    refund_rows: int = 0
    identity: Counter = field(default_factory=Counter)

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_stored + self.rows_rejected + self.rows_deduplicated + self.rows_erased


@dataclass
class ImportResult:
    """The outcome of one `import` call over one or more files."""

    import_id: int
    files: list[FileReport]
    rejects_path: Path | None
    linked_customers: int = 0
    events_expired: int = 0  # events past the store's retention period, deleted by this import

    @property
    def rows_in(self) -> int:
        return sum(f.rows_in for f in self.files)

    @property
    def rows_stored(self) -> int:
        return sum(f.rows_stored for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def rows_deduplicated(self) -> int:
        return sum(f.rows_deduplicated for f in self.files)

    @property
    def rows_erased(self) -> int:
        return sum(f.rows_erased for f in self.files)

    @property
    def balanced(self) -> bool:
        return all(f.balanced for f in self.files)
