"""Shared types, configuration and errors used by every stage."""

from clientfolio.core.errors import (
    ClientfolioError,
    ConvergenceError,
    EventAlreadyApplied,
    IngestError,
    MappingError,
    NotFittedError,
    SchemaError,
    StoreError,
)

__all__ = [
    "ClientfolioError",
    "ConvergenceError",
    "EventAlreadyApplied",
    "IngestError",
    "MappingError",
    "NotFittedError",
    "SchemaError",
    "StoreError",
]
