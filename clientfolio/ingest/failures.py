"""Failures that are not about the data: Ctrl-C and a full disk, however they surface.

DuckDB turns Ctrl-C inside a query into its own exception (which the reader may wrap in an
IngestError), and a full disk arrives as an OSError, a DuckDB IOException or a PostgreSQL
error.  The import's transaction has already left the store as it was; these helpers only
turn the failure into what a person should read.
"""

from __future__ import annotations

import errno
import tempfile

import duckdb

from clientfolio.core.errors import StoreError

_DISK_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
_DISK_FULL_TEXT = ("no space left on device", "file too large", "disk quota exceeded")


def plain_failure(exc: BaseException, committed: bool) -> BaseException | None:
    """An interrupt or a full disk, wherever it surfaced (DuckDB, PostgreSQL, a file write, or
    wrapped in an IngestError), as the plain exception the caller should see; else None."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(seen) < 20:
        seen.append(e)
        e = e.__cause__ or e.__context__
    for e in seen:
        if isinstance(e, duckdb.InterruptException) or (
                isinstance(e, RuntimeError) and "query interrupted" in str(e).lower()):
            return KeyboardInterrupt()
    for e in seen:
        text = str(e).lower()
        if (isinstance(e, OSError) and e.errno in _DISK_FULL) or any(t in text for t in _DISK_FULL_TEXT):
            detail = str(e).strip().splitlines()[0][:300]
            where = (f"the store's disk, {tempfile.gettempdir()} (temporary copies) and the rejects folder")
            if committed:
                return StoreError(f"the import was stored, but its rejects file could not be written: the disk is "
                                  f"full or a file size limit was reached ({detail}). Free some space on {where}.")
            return StoreError(f"the disk is full or a file size limit was reached while importing ({detail}). "
                              f"Nothing was imported; the store is unchanged. Free some space on {where}, "
                              "then run the import again.")
    return None
