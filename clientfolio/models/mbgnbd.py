"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007).

Identical to BG/NBD except that a customer may also drop out at time 0, right
after the first purchase, so customers without repeat purchases can be
inactive.  Shares its likelihood terms and predictions with `bgnbd.py`.
"""

from __future__ import annotations

from clientfolio.models.bgnbd import _BetaGeometricNBD


class MBGNBD(_BetaGeometricNBD):
    """Modified beta-geometric/NBD model (Batislam, Denizel & Filiztekin 2007).

    Same data and parameters as `BGNBD` (``frequency, recency, T`` +
    optional ``weights``; ``r, alpha, a, b``).

    Examples
    --------
    >>> from clientfolio.models import MBGNBD
    >>> m = MBGNBD.from_params({"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614})
    >>> round(float(m.predict_alive({"frequency": 0, "recency": 0, "T": 39})[0]), 3)
    0.389
    """

    _k = 1
