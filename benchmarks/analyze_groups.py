"""What analyze's check of separate purchase models per customer group costs, on the demo shop.

Runs analyze on the demo shop (store attributes: acquisition channel, region, industry, size) and
times, in the same run, the grouped-model check alone (`clientfolio.state.groups.choose_group` on
the same calibration / holdout split): CPU and wall time, and its share of analyze's CPU time.
Prints the verdict analyze shows.  Timings on a shared machine are noisy; the share is the number
to read.

    python benchmarks/analyze_groups.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from clientfolio.datasets import demo_shop_paths
from clientfolio.features import rfm_summary
from clientfolio.ingest import ImportOptions, import_files
from clientfolio.pipeline import analyze
from clientfolio.state.groups import choose_group
from clientfolio.store import open_store


def _timed(fn):  # (result, cpu seconds, wall seconds)
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    p = demo_shop_paths()
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "demo.duckdb")
        try:
            import_files([p["customers"], p["transactions"]], st, ImportOptions())
            pf, cpu_all, wall_all = _timed(lambda: analyze(store=st, clusters=True))
            v = pf.validation
            split, end = pd.Timestamp(v["calibration_end"]), pd.Timestamp(v["holdout_end"])
            kind = pf.models["kind"]
            cal = rfm_summary(st, cutoff=split, unit="W", holdout_end=end)
            (_, info), cpu_g, wall_g = _timed(lambda: choose_group(st, cal, split, end, kind))
        finally:
            st.close()
    print(f"analyze (demo shop, {len(pf.customers):,} customers): CPU {cpu_all:.1f} s, wall {wall_all:.1f} s")
    print(f"grouped-model check alone: CPU {cpu_g:.1f} s, wall {wall_g:.1f} s "
          f"= {cpu_g / cpu_all:.0%} of analyze's CPU time (included in it)")
    print("verdict:", info.get("sentence", "not tried (no attribute with two levels of 20 customers)"))
    print("attribute shares (eta squared of the repeat-purchase rate):",
          {k: round(s, 4) for k, s in info.get("shares", {}).items()})


if __name__ == "__main__":
    main()
