"""Customer-base models: who will buy again, how often, for how much.

Every model follows the scikit-learn estimator contract: settings in the
constructor, ``fit(data) -> self``, learned values ending in ``_``
(``params_``, ``log_likelihood_``, ``standard_errors_``,
``confidence_intervals_``, ``n_customers_``...), and ``predict_*`` methods that
raise `NotFittedError` before ``fit``.

Data definitions (one time unit throughout, e.g. weeks):

* ``frequency`` -- repeat purchase occasions after the first (same-day orders
  count once); 0 for one-time buyers.
* ``recency`` -- time from the first to the last purchase (0 if no repeat).
* ``T`` -- time from the first purchase to the cut-off date.
* ``monetary`` -- mean value of the repeat purchases (Gamma-Gamma only).
* ``n_periods`` -- transaction opportunities observed (BG/BB).
* ``tenure``, ``churned`` -- periods completed and whether the customer
  cancelled (sBG); or cohort survivor counts.
* ``weights`` -- optional: number of customers sharing the row.
"""

from clientfolio.models.bgbb import BGBB
from clientfolio.models.bgnbd import BGNBD
from clientfolio.models.gammagamma import GammaGamma
from clientfolio.models.mbgnbd import MBGNBD
from clientfolio.models.paretonbd import ParetoNBD
from clientfolio.models.sbg import ShiftedBetaGeometric, survival_to_tenure

__all__ = [
    "BGBB",
    "BGNBD",
    "GammaGamma",
    "MBGNBD",
    "ParetoNBD",
    "ShiftedBetaGeometric",
    "survival_to_tenure",
]
