"""Fit time of clientfolio's models against `lifetimes`, on the same data, in one run.

    python benchmarks/models.py            # CDNOW + 1,000,000 simulated customers
    python benchmarks/models.py --quick    # CDNOW + 100,000 (smoke run)

Prints, for BG/NBD, Pareto/NBD and Gamma-Gamma on CDNOW (2,357 customers) and
on simulated customers who join uniformly over two years with purchases dated
by day (recency and T in weeks on a daily grid, so there are many distinct
(x, t_x, T) triples): our fit time (DataFrame in, parameters and standard
errors out; median of 5 runs), lifetimes' fit time (one run), the speed-up,
the largest relative parameter difference and both log-likelihoods evaluated
with our likelihood.

Then the Pareto/NBD where a real shop puts it: the 1M-order shop of benchmarks/_shop.py
(100,000 customers) is summarised and fitted to find its parameter region (beta ~100x alpha,
where the hypergeometric series converge slowly), 1,000,000 customers are simulated at those
parameters, and the fit is timed (target: <= 1 s) and checked against a tight reference
optimisation (BFGS to a gradient of 1e-12 from another start), with lifetimes' fit of the
same customers in the same run.

lifetimes' Pareto/NBD takes several minutes on 1M customers; ``--skip-slow-peer``
leaves it out.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clientfolio.models import BGNBD, GammaGamma, ParetoNBD
from clientfolio.models._likelihoods import bgnbd_loglik, gammagamma_loglik, paretonbd_loglik
from clientfolio.models._base import collapse
from clientfolio.models._likelihoods import paretonbd_loglik_sum
from clientfolio.models.simulate import simulate_bgnbd, simulate_gammagamma, simulate_paretonbd

CDNOW = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "cdnow_sample__lifetimes.txt"
BGNBD_TRUTH = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD_TRUTH = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
GG_TRUTH = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def cdnow_summary() -> pd.DataFrame:
    """CDNOW 2,357-customer calibration summary (weeks), from ../shared or lifetimes."""
    if CDNOW.exists():
        tx = pd.read_csv(CDNOW, sep=r"\s+", header=None, names=["m", "id", "date", "cds", "dollars"],
                         dtype={"date": str})
        tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
        end = pd.Timestamp("1997-09-30")
        days = tx[tx["date"] <= end].groupby(["id", "date"], as_index=False)["dollars"].sum()
        first = days.groupby("id")["date"].transform("min")
        by = days.groupby("id")
        out = pd.DataFrame({
            "frequency": by.size() - 1.0,
            "recency": (by["date"].max() - by["date"].min()).dt.days / 7,
            "T": (end - by["date"].min()).dt.days / 7,
        })
        out["monetary"] = days[days["date"] > first].groupby("id")["dollars"].mean().reindex(out.index).fillna(0.0)
        return out
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    return load_cdnow_summary_data_with_monetary_value().rename(columns={"monetary_value": "monetary"})


def simulated(n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """n customers joining over 730 days; purchase dates by day; time in weeks."""
    rng = np.random.default_rng(seed)
    t_obs = (730 - rng.integers(0, 730, n)) / 7.0
    bg = simulate_bgnbd(BGNBD_TRUTH, t_obs, seed=seed + 1, resolution=1 / 7)
    pn = simulate_paretonbd(PNBD_TRUTH, t_obs, seed=seed + 2, resolution=1 / 7)
    spend = simulate_gammagamma(GG_TRUTH, bg["frequency"], seed=seed + 3)
    return {"bgnbd": bg, "paretonbd": pn, "gammagamma": spend.round(2)}


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def ours_and_theirs(name: str, data: pd.DataFrame, skip_peer: bool) -> dict[str, Any]:
    import lifetimes

    rfm = [data[c] for c in ("frequency", "recency", "T")] if name != "gammagamma" else None
    if name == "bgnbd":
        t_ours, m = timed(lambda: BGNBD().fit(data), repeat=5)
        peer = lifetimes.BetaGeoFitter
        ll = lambda p: bgnbd_loglik(tuple(p[k] for k in ("r", "alpha", "a", "b")), *rfm).sum()  # noqa: E731
        peer_fit = lambda: peer().fit(*rfm)  # noqa: E731
        names = {k: k for k in m.params_}
    elif name == "paretonbd":
        t_ours, m = timed(lambda: ParetoNBD().fit(data), repeat=5)
        ll = lambda p: paretonbd_loglik(tuple(p[k] for k in ("r", "alpha", "s", "beta")), *rfm).sum()  # noqa: E731
        peer_fit = lambda: lifetimes.ParetoNBDFitter().fit(*rfm)  # noqa: E731
        names = {k: k for k in m.params_}
    else:
        t_ours, m = timed(lambda: GammaGamma().fit(data), repeat=5)
        buyers = data[data["frequency"] > 0]
        ll = lambda p: gammagamma_loglik((p["p"], p["q"], p["gamma"]), buyers["frequency"], buyers["monetary"]).sum()  # noqa: E731
        peer_fit = lambda: lifetimes.GammaGammaFitter().fit(buyers["frequency"], buyers["monetary"])  # noqa: E731
        names = {"p": "p", "q": "q", "gamma": "v"}
    row: dict[str, Any] = {"model": name, "n": len(data), "distinct": m.n_distinct_, "ours_s": t_ours,
                           "ours_ll": ll(m.params_)}
    if skip_peer:
        return row
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        t_peer, fitter = timed(peer_fit)
    theirs = {k: float(fitter.params_[v]) for k, v in names.items()}
    row.update({
        "lifetimes_s": t_peer,
        "speedup": t_peer / t_ours,
        "max_rel_param_diff": max(abs(theirs[k] / m.params_[k] - 1) for k in names),
        "lifetimes_ll": ll(theirs),
        "ours": m.params_,
        "lifetimes": theirs,
    })
    return row


def shop_summary(n_orders: int = 1_000_000, n_customers: int = 100_000) -> pd.DataFrame:
    """frequency, recency, T (weeks) of the benchmark shop at its last order day."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _shop import shop_orders

    from clientfolio.features.summary import rfm_summary

    orders = shop_orders(n_orders, n_customers).rename(columns={"order_date": "ts"})
    orders["ts"] = pd.to_datetime(orders["ts"])
    out = rfm_summary(orders[["customer_id", "ts", "amount", "order_id"]], cutoff=orders["ts"].max().normalize(),
                      unit="W")
    return out[["frequency", "recency", "T"]].reset_index(drop=True)


def reference_optimum(data: pd.DataFrame, start: dict[str, float]) -> tuple[dict[str, float], float]:
    """Pareto/NBD maximum likelihood by plain BFGS on the analytic gradient, to a gradient of 1e-12.

    Independent of the model's own optimiser (warm start on a sample, exact Newton), from ``start``.
    """
    from scipy import optimize

    stats = collapse({c: data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")})
    total = stats.total_weight

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = paretonbd_loglik_sum(theta, stats, True)
        assert grad is not None
        return -ll / total, -grad / total

    theta0 = np.log([start[k] for k in ("r", "alpha", "s", "beta")])
    res = optimize.minimize(fun, theta0, jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
    return dict(zip(("r", "alpha", "s", "beta"), map(float, np.exp(res.x)), strict=True)), -float(res.fun) * total


def shop_region(n: int, skip_peer: bool) -> None:
    """Pareto/NBD in the 1M-order shop's parameter region: fit time on ``n`` customers and its optimum."""
    import lifetimes

    t_shop, shop = timed(shop_summary)
    m_shop = ParetoNBD().fit(shop)
    region = m_shop.params_
    print(f"\nPareto/NBD in the region of the 1M-order shop (benchmarks/_shop.py, {len(shop):,} customers, "
          f"summarised in {t_shop:.1f} s):")
    print("  fitted on the shop: " + ", ".join(f"{k}={v:.4g}" for k, v in region.items())
          + f"  (beta/alpha = {region['beta'] / region['alpha']:.0f})")
    rng = np.random.default_rng(7)
    t_obs = (730 - rng.integers(0, 730, n)) / 7.0
    data = simulate_paretonbd(region, t_obs, seed=8, resolution=1 / 7)
    ParetoNBD().fit(data)  # first call pays imports and thread start-up
    cpu = time.process_time()
    t_fit, m = timed(lambda: ParetoNBD().fit(data), repeat=5)
    cpu_fit = (time.process_time() - cpu) / 5  # all threads: on a busy machine closer to idle wall time
    t_ref, (ref, ref_ll) = timed(lambda: reference_optimum(data, {"r": 0.553, "alpha": 10.578, "s": 0.606,
                                                                   "beta": 11.669}))
    gap = max(abs(m.params_[k] / ref[k] - 1) for k in ref)
    verdict = lambda t: "met" if t <= 1.0 else "NOT met"  # noqa: E731
    print(f"  {n:,} simulated customers ({m.n_distinct_:,} distinct (x, t_x, T)): fit {t_fit:.3f} s wall "
          f"(median of 5), CPU {cpu_fit:.3f} s per fit (both threads; the steadier figure on a shared machine); "
          f"target <= 1 s: wall {verdict(t_fit)}, CPU {verdict(cpu_fit)}")
    print("  ours:      " + ", ".join(f"{k}={v:.8g}" for k, v in m.params_.items()) + f"  ll {m.log_likelihood_:.6f}")
    print("  reference: " + ", ".join(f"{k}={v:.8g}" for k, v in ref.items()) + f"  ll {ref_ll:.6f}  "
          f"(BFGS to gradient 1e-12, {t_ref:.1f} s)")
    print(f"  largest relative parameter difference to the reference optimum: {gap:.1e}; "
          f"log-likelihood difference {m.log_likelihood_ - ref_ll:+.2e}")
    peers = [("shop", shop, m_shop)] + ([] if skip_peer else [(f"simulated {n:,}", data, m)])
    for label, frame, ours in peers:
        rfm = [frame[c] for c in ("frequency", "recency", "T")]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            t_peer, fitter = timed(lambda rfm=rfm: lifetimes.ParetoNBDFitter().fit(*rfm))
        t_ours, _ = timed(lambda frame=frame: ParetoNBD().fit(frame), repeat=3)
        theirs = {k: float(fitter.params_[k]) for k in ("r", "alpha", "s", "beta")}
        ll_theirs = float(paretonbd_loglik(tuple(theirs.values()), *rfm).sum())
        print(f"  lifetimes on {label}: {t_peer:.1f} s vs ours {t_ours:.3f} s ({t_peer / t_ours:.0f}x); "
              + ", ".join(f"{k}={v:.5g}" for k, v in theirs.items())
              + f"; ll {ll_theirs:.2f} vs ours {ours.log_likelihood_:.2f}")
    if skip_peer:
        print(f"  lifetimes on simulated {n:,}: skipped (--skip-slow-peer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 simulated customers instead of 1,000,000")
    parser.add_argument("--n", type=int, help="number of simulated customers (overrides --quick)")
    parser.add_argument("--skip-slow-peer", action="store_true",
                        help="do not run lifetimes' Pareto/NBD on the simulated data (~7 min at 1M)")
    parser.add_argument("--region-only", action="store_true",
                        help="only the Pareto/NBD section in the 1M-order shop's parameter region")
    args = parser.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    if args.region_only:
        shop_region(n, args.skip_slow_peer)
        return

    import lifetimes

    print(f"numpy {np.__version__}, pandas {pd.__version__}, lifetimes {lifetimes.__version__}")
    sets = {"CDNOW": {"bgnbd": cdnow_summary()}}
    sets["CDNOW"]["paretonbd"] = sets["CDNOW"]["gammagamma"] = sets["CDNOW"]["bgnbd"]
    t_sim, sim = timed(lambda: simulated(n))
    sets[f"simulated {n:,}"] = sim
    print(f"simulated {n:,} customers in {t_sim:.1f} s\n")
    header = (f"{'data':<20}{'model':<12}{'customers':>11}{'distinct':>10}{'ours s':>9}{'lifetimes s':>13}"
              f"{'speed-up':>10}{'max rel param diff':>20}{'ll ours':>16}{'ll lifetimes':>16}")
    print(header)
    print("-" * len(header))
    details = []
    for label, data in sets.items():
        for name in ("bgnbd", "paretonbd", "gammagamma"):
            skip = args.skip_slow_peer and name == "paretonbd" and label != "CDNOW"
            row = ours_and_theirs(name, data[name], skip)
            peer = (f"{row['lifetimes_s']:>13.3f}{row['speedup']:>9.0f}x{row['max_rel_param_diff']:>20.2e}"
                    f"{row['ours_ll']:>16.2f}{row['lifetimes_ll']:>16.2f}") if "lifetimes_s" in row else \
                f"{'skipped':>13}{'':>10}{'':>20}{row['ours_ll']:>16.2f}"
            print(f"{label:<20}{name:<12}{row['n']:>11,}{row['distinct']:>10,}{row['ours_s']:>9.3f}{peer}", flush=True)
            if "ours" in row:
                details.append((label, name, row["ours"], row["lifetimes"]))
    print("\nparameters (ours | lifetimes):")
    for label, name, ours, theirs in details:
        pairs = ", ".join(f"{k}={ours[k]:.5g}|{theirs[k]:.5g}" for k in ours)
        print(f"  {label:<20}{name:<12}{pairs}")
    shop_region(n, args.skip_slow_peer)


if __name__ == "__main__":
    main()
