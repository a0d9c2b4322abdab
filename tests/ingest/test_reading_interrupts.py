"""Ctrl-C and a full disk during a real `clientfolio import`: a plain message, the store unchanged.

Both run the command in a child process: SIGINT is sent once the import has started working
(its temporary folder exists); the full disk is a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
ignored) so every write beyond it fails with EFBIG, as a full disk fails with ENOSPC.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _orders(path: Path, n: int, seed: int = 1, first_id: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame({
        "order_id": np.arange(first_id, first_id + n),
        "customer_id": "C" + pd.Series(rng.integers(0, n // 10 + 1, n)).astype(str),
        "order_date": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700 * 86400, n), unit="s"))
        .strftime("%Y-%m-%d %H:%M:%S"),
        "amount": rng.gamma(2.0, 25.0, n).round(2),
    }).to_csv(path, index=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "clientfolio.cli", "import", *args, "--no-audit"]


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp), CLIENTFOLIO_STORE="")
    env.pop("CLIENTFOLIO_STORE")
    return env


def _stored(store: Path) -> tuple[int, float, int]:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute("SELECT count(*), round(sum(amount), 2), (SELECT count(*) FROM imports) "
                           "FROM transactions").fetchone()


@pytest.fixture
def store_with_orders(tmp_path: Path) -> Path:
    small = tmp_path / "small.csv"
    _orders(small, 500, seed=2, first_id=10_000_000)
    store = tmp_path / "store.duckdb"
    subprocess.run(_cli(str(small), "--store", str(store)), check=True, capture_output=True, env=_env(tmp_path))
    return store


def test_ctrl_c_mid_import_is_a_plain_message_and_leaves_the_store(tmp_path: Path, store_with_orders: Path) -> None:
    big = tmp_path / "big.csv"
    _orders(big, 400_000)
    before = _stored(store_with_orders)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(_cli(str(big), "--store", str(store_with_orders)), env=_env(work),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not any(work.glob("clientfolio-import-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside reading the file
    assert proc.poll() is None, "the import finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "unchanged" in err
    assert "Traceback" not in err + out
    assert _stored(store_with_orders) == before
    assert not any(work.glob("clientfolio-import-*"))  # temporary copies cleaned up


def _limit_file_size(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_full_disk_is_a_plain_message_and_leaves_the_store(tmp_path: Path, store_with_orders: Path) -> None:
    big = tmp_path / "big.csv"
    _orders(big, 100_000)
    before = _stored(store_with_orders)
    limit = store_with_orders.stat().st_size + 256 * 1024
    proc = subprocess.run(_cli(str(big), "--store", str(store_with_orders)), env=_env(tmp_path),
                          capture_output=True, text=True, preexec_fn=_limit_file_size(limit), timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "disk is full" in proc.stderr and "Nothing was imported; the store is unchanged" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _stored(store_with_orders) == before
    # the same import with room to spare goes through
    ok = subprocess.run(_cli(str(big), "--store", str(store_with_orders)), env=_env(tmp_path),
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert _stored(store_with_orders)[0] == before[0] + 100_000


def test_full_disk_while_converting_the_file_is_a_plain_message(tmp_path: Path, store_with_orders: Path) -> None:
    """A CP1252 file is converted to a UTF-8 copy first: that write fails before the store is touched."""
    big = tmp_path / "big_cp1252.csv"
    _orders(big, 50_000)
    big.write_bytes(big.read_bytes().replace(b"\nC1,", "\nCé,".encode("cp1252")))
    before = _stored(store_with_orders)
    proc = subprocess.run(_cli(str(big), "--store", str(store_with_orders)), env=_env(tmp_path),
                          capture_output=True, text=True, preexec_fn=_limit_file_size(big.stat().st_size // 2),
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
    assert _stored(store_with_orders) == before
