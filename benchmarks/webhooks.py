"""Webhook delivery throughput on loopback: N outbox messages to one real receiver process, DuckDB and PostgreSQL.

    python benchmarks/webhooks.py [--messages 1000] [--pg postgresql://...]

Prints, per store: messages per second through fan-out + claim + consent check + signing + HTTP +
recording (the receiver verifies each signature with `standardwebhooks`), and the time of the
fan-out alone.  Bounded: loopback only, a few thousand messages at most.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))
sys.path.insert(0, str(ROOT))


def run(store_url: str, n: int, tmp: Path) -> dict[str, float]:
    from test_webhooks import LOOPBACK, Receiver, consent, moves

    from clientfolio.service.webhooks import WebhookWorker, add_endpoint
    from clientfolio.store import open_store

    with open_store(store_url) as st:
        r = Receiver(tmp, [])
        ep, secret = add_endpoint(st, r.url, policy=LOOPBACK)
        customers = [f"b{i:05d}" for i in range(n)]
        consent(st, dict.fromkeys(customers, True))
        moves(st, customers)
        r.secrets = [secret]
        r.start()
        try:
            with WebhookWorker(st, policy=LOOPBACK, batch=100, concurrency=8) as w:
                t0 = time.perf_counter()
                w.enqueue()
                fan = time.perf_counter() - t0
                delivered = 0
                while delivered < n:
                    delivered += w.deliver_due().get("delivered", 0)
                total = time.perf_counter() - t0
            hits = r.hits()
            assert len({h["id"] for h in hits}) == n and all(h["verified"] for h in hits)
        finally:
            r.stop()
    return {"messages": n, "seconds": total, "per_second": n / total, "fan_out_seconds": fan}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (a fresh schema is made and dropped)")
    args = ap.parse_args()
    n = min(args.messages, 5000)
    with tempfile.TemporaryDirectory() as tmp:
        print("duckdb", run(str(Path(tmp) / "b.duckdb"), n, Path(tmp)))
        if args.pg:
            import psycopg

            schema = "b_" + uuid.uuid4().hex[:10]
            with psycopg.connect(args.pg, autocommit=True) as c:
                c.execute(f"CREATE SCHEMA {schema}")
            try:
                sep = "&" if "?" in args.pg else "?"
                print("postgresql", run(f"{args.pg}{sep}options=-csearch_path%3D{schema}", n, Path(tmp)))
            finally:
                with psycopg.connect(args.pg, autocommit=True) as c:
                    c.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
