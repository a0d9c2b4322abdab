"""Purchase models with groups or covariates against the plain model on the demo shop's holdout period.

Prints, for BG/NBD and Pareto/NBD, the plain model against separate fits per group and covariates:
holdout error per customer, total purchases, and tracking of the cumulative repeat purchases at the end
of the calibration period and over the holdout period; the time each comparison took, and the time of
a covariate fit against the plain fit on the same customers (a ratio: the machine is shared, timings
are noisy).

    python benchmarks/covariates.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clientfolio.datasets import demo_shop_paths
from clientfolio.ingest import ImportOptions, import_files
from clientfolio.models import BGNBD, ParetoNBD
from clientfolio.models.covariates import BGNBDWithCovariates, ParetoNBDWithCovariates
from clientfolio.predict.covariates import compare_covariate_models, customer_attributes
from clientfolio.store import open_store

GROUPINGS = [
    ("customer_type", ["customer_type"]),     # wholesale / visitor (out of area) / local
    ("launch_cohort", ["launch_cohort"]),     # first purchase in the first 8 weeks of the history
    ("type_and_launch", ["customer_type", "launch_cohort"]),
    ("acquisition_channel", []),
]


def main() -> None:
    p = demo_shop_paths()
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "demo.duckdb")
        try:
            import_files([p["customers"], p["transactions"]], st, ImportOptions())
            attrs = customer_attributes(st)
            attrs["customer_type"] = np.where(
                attrs["industry"].notna(), "wholesale",
                np.where(attrs["region"].fillna("").str.startswith("Out of area"), "visitor", "local"))
            attrs["type_and_launch"] = attrs["customer_type"] + " / " + attrs["launch_cohort"]
            for model in ("bgnbd", "paretonbd"):
                for group, covs in GROUPINGS:
                    t0 = time.perf_counter()
                    comp = compare_covariate_models(st, attrs, group=group, covariates=covs, model=model)
                    took = time.perf_counter() - t0
                    table = pd.DataFrame(comp.details["candidates"]).set_index("model")
                    cols = ["holdout_mae", "holdout_total_error", "calibration_tracking_gap", "holdout_tracking_gap",
                            "n_params", "bic"]
                    print(f"\n== {model}, group {group}, covariates {covs or 'none'} ({took:.1f} s)")
                    print(table[cols].to_string(float_format=lambda v: f"{v:.3f}"))
                    print(comp.sentence)
                    for note in comp.details.get("group_notes", []):
                        print("  note:", note)
        finally:
            st.close()
    # fit time of a covariate model against the plain model on the same simulated customers
    from clientfolio.models.simulate import simulate_with_covariates

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.random(20_000) < 0.3, rng.normal(size=20_000)]).astype(float)
    t = rng.integers(20, 60, 20_000).astype(float)
    for name, plain, cov, params, coef in (
        ("BG/NBD", BGNBD, BGNBDWithCovariates, {"r": 0.5, "alpha0": 5, "a0": 0.8, "b0": 2.5},
         {"purchase": [0.7, -0.3], "dropout_a": [0.6, 0], "dropout_b": [0, 0.3]}),
        ("Pareto/NBD", ParetoNBD, ParetoNBDWithCovariates, {"r": 0.5, "alpha0": 5, "s": 0.6, "beta0": 10},
         {"purchase": [0.7, -0.3], "dropout": [0.8, 0.2]}),
    ):
        data = simulate_with_covariates("bgnbd" if name == "BG/NBD" else "paretonbd", params, coef, x, t, seed=1)
        t0 = time.perf_counter()
        plain().fit(data)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        cov(purchase_covariates=["x0", "x1"], dropout_covariates=["x0", "x1"]).fit(data)
        t_cov = time.perf_counter() - t0
        print(f"\n{name}, 20,000 customers, 2 covariates on both processes: plain fit {t_plain:.2f} s, "
              f"covariate fit {t_cov:.2f} s (ratio {t_cov / t_plain:.1f}x)")


if __name__ == "__main__":
    main()
