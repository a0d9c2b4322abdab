"""clientfolio: a strategic customer portfolio from a shop's order history."""

__version__ = "0.1.0"


def analyze(*args, **kwargs):  # noqa: ANN002, ANN003 - see clientfolio.pipeline.analyze
    """From an export (or a store) to a strategic customer portfolio; see :func:`clientfolio.pipeline.analyze`."""
    from clientfolio.pipeline import analyze as _analyze

    return _analyze(*args, **kwargs)
