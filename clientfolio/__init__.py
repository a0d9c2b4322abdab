"""clientfolio: a strategic customer portfolio from a shop's order history."""

__version__ = "0.1.0"
