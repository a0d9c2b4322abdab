"""One root exception with typed children, each carrying its context.

Messages follow one shape: where, what was expected, what was found, how to fix.
The library raises; the CLI prints the message in red and exits with code 1.
"""

from __future__ import annotations


class ClientfolioError(Exception):
    """Root of every error clientfolio raises on purpose."""


class IngestError(ClientfolioError):
    """A whole input file cannot be read as expected (not a single bad row).

    Bad rows never raise: they go to the rejects file.  This is for problems
    such as an empty file, no customer column, or an unreadable format.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.row = row
        self.column = column
        self.value = value
        self.hint = hint
        where = self.path
        if row is not None:
            where += f": row {row}"
        if column is not None:
            where += f", column '{column}'"
        text = f"{where}: {message}"
        if value is not None:
            text += f" (found {value!r})"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class MappingError(ClientfolioError):
    """A layout or user mapping file is invalid (names the file and the key)."""


class SchemaError(ClientfolioError):
    """Data handed to a function lacks a column or has the wrong type."""


class StoreError(ClientfolioError):
    """The store cannot be opened, migrated or written."""


class EventAlreadyApplied(StoreError):
    """A per-event update names an event the store has already applied; nothing was written."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = list(keys)
        shown = ", ".join(self.keys[:5]) + (f" and {len(self.keys) - 5} more" if len(self.keys) > 5 else "")
        super().__init__(f"events already applied: {shown}; nothing was written (skip these events)")


class NotFittedError(ClientfolioError, AttributeError):
    """A model was used before `fit` was called."""


class ConvergenceError(ClientfolioError):
    """A model fit did not converge; the message says what to try."""
