"""How much data do the purchase models need?  Measured on simulated customers, not copied.

Customers follow BG/NBD with the CDNOW estimates (weeks), join uniformly over the first half
of the history and are observed to its end, purchases dated by day.  For each number of
customers and length of history, the model is fitted on 40 simulated shops and its forecast
of next-year purchases is compared with the forecast the *true* parameters give (the best any
fit could do).  A setting is "enough" when at least 95% of fits converge and 90% of them
forecast the shop's total within 15% of the ideal forecast.  The models learn the purchase
rate and the drop-out from customers who came back, so the table also gives the repeat buyers
(customers with two or more purchase days) in the simulated shops: the smallest median among the
settings that are enough is the minimum number of repeat buyers the data check-up asks for.

    python benchmarks/min_data.py
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from clientfolio.core.errors import ClientfolioError
from clientfolio.models import BGNBD
from clientfolio.models.simulate import simulate_bgnbd

TRUE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
SIZES = (50, 100, 200, 500, 1000, 2000)
WEEKS = (13, 26, 39, 52, 78)


def one_setting(n: int, weeks: int, reps: int, rng: np.random.Generator) -> dict:
    truth = BGNBD.from_params(TRUE)
    errors, converged, repeaters = [], 0, []
    for _ in range(reps):
        joined = rng.uniform(0, weeks / 2, n)
        T = np.round((weeks - joined) * 7) / 7
        data = simulate_bgnbd(TRUE, T, seed=rng, resolution=1 / 7)
        ideal = float(np.sum(truth.predict_purchases(52.0, data)))
        repeaters.append(int((np.asarray(data["frequency"]) > 0).sum()))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = BGNBD().fit(data)
        except ClientfolioError:
            continue
        converged += 1
        with np.errstate(all="ignore"):
            forecast = float(np.nansum(fitted.predict_purchases(52.0, data)))
        errors.append(abs(forecast / ideal - 1))
    e = np.array(errors) if errors else np.array([np.nan])
    return {"customers": n, "weeks": weeks, "repeat_buyers": float(np.median(repeaters)),
            "converged": converged / reps, "median_error": float(np.median(e)),
            "p90_error": float(np.quantile(e, 0.9)),
            "enough": bool(converged / reps >= 0.95 and np.quantile(e, 0.9) <= 0.15)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    rows = [one_setting(n, w, args.reps, rng) for w in WEEKS for n in SIZES]
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 120)
    print(table.to_string(index=False, formatters={"converged": "{:.0%}".format, "median_error": "{:.1%}".format,
                                                   "p90_error": "{:.1%}".format}))
    print("\nsmallest number of customers that is enough, by length of history:")
    for w in WEEKS:
        ok = table[(table["weeks"] == w) & table["enough"]]
        print(f"  {w:3d} weeks: {int(ok['customers'].min()):,} customers" if len(ok) else f"  {w:3d} weeks: more than "
              f"{max(SIZES):,} customers")
    enough = table[table["enough"]]
    if len(enough):
        print(f"\nfewest repeat buyers (median) among the settings that are enough: {enough['repeat_buyers'].min():,.0f}")


if __name__ == "__main__":
    main()
