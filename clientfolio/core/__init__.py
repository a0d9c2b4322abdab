"""Shared types, configuration and errors used by every stage."""

from clientfolio.core.errors import (
    ClientfolioError,
    ConvergenceError,
    IngestError,
    MappingError,
    NotFittedError,
    SchemaError,
    StoreError,
)

__all__ = [
    "ClientfolioError",
    "ConvergenceError",
    "IngestError",
    "MappingError",
    "NotFittedError",
    "SchemaError",
    "StoreError",
]
