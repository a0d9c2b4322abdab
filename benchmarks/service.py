"""The service under load on loopback: events/s and per-event latency over HTTP, and webhook enqueue.

A synthetic shop (benchmarks/_shop.py) is fitted with ``clientfolio.analyze`` on all but its last
`--holdback-days` days into a store (a DuckDB file, and with ``--pg URL`` a fresh PostgreSQL
schema), every lifecycle segment gets an entry/exit subscription (so a moved customer queues an
outbox message for the webhooks), every customer consents to e-mail marketing and one webhook
endpoint is added.  Then `clientfolio serve` runs as its own process (periodic jobs off, so only
the posted events change the store) and this script, as the shop would:

- single:   `--events` held-back orders POSTed one at a time to /v1/orders, in time order:
            latency p50/p99 seen by the client (the outbox message for a moved customer is written
            in the same transaction, so this is also the webhook enqueue latency);
- clients:  the next held-back orders POSTed one at a time by `--clients` (8) concurrent clients for
            `--seconds`: events/s and latency p50/p99 (with write-behind, the requests that queue
            meanwhile are written in one group commit; each answer comes after its commit);
            single and clients run twice, without write-behind (CLIENTFOLIO_WRITE_BEHIND=0) and
            with it (1, the default), on consecutive slices of the held-back orders: ratios;
- batch:    the next held-back orders POSTed to /v1/batch `--batch-size` at a time for
            `--seconds`: sustained events/s;
- peer:     the same kind of single order applied in-process with ``LivePortfolio.update`` on a
            copy of the fitted store (no HTTP): the ratio says what the service adds.

Targets (issue 10): >= 1,000 events/s; per-event p99 <= 10 ms in the service.  Bounded: loopback
only, a 5,000-customer shop by default, a few minutes.

    python benchmarks/service.py                                   # DuckDB
    python benchmarks/service.py --pg postgresql://user:pw@127.0.0.1:5432/db   # DuckDB and PostgreSQL
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from _shop import DAYS, START, shop_orders  # benchmarks/_shop.py: the shop the benchmarks share

TARGET_EVENTS_PER_S = 1000.0
TARGET_P99_MS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def order_json(row: pd.Series) -> dict:
    return {"order_id": f"live-{row['order_id']}", "customer_id": row["customer_id"],
            "ts": pd.Timestamp(row["order_date"]).isoformat(),
            "lines": [{"amount": float(row["amount"]), "category": row["category"], "cost": float(row["cost"])}]}


def prepare(store: str, fitted_csv: Path, cutoff: str, receiver_url: str) -> tuple[str, str]:
    """Fit the shop into `store`, subscribe the playbooks, consent everyone, add the endpoint; (admin key, secret)."""
    import clientfolio
    from clientfolio.live import LivePortfolio
    from clientfolio.actions.consent import record_consent
    from clientfolio.service.webhooks import add_endpoint, set_allowed
    from clientfolio.service.workspaces import Registry, with_search_path
    from clientfolio.store import open_store

    with Registry(store) as reg:
        workspace = reg.create_workspace("bench") if reg.multi else None
        key = reg.create_key(workspace.name if workspace else None, "admin")[1]
        shop = with_search_path(store, workspace.schema_name) if workspace else store
    clientfolio.analyze([fitted_csv], store=shop, cutoff=cutoff)
    with open_store(shop) as st:
        ids = st.query("SELECT customer_id FROM customer_state")["customer_id"].tolist()
        record_consent(st, pd.DataFrame({"customer_id": ids, "purpose": "marketing", "channel": "email",
                                         "granted": True}))
        segments = st.query("SELECT DISTINCT seg_lifecycle AS s FROM customer_state WHERE seg_lifecycle IS NOT NULL")
        LivePortfolio(st).set_triggers([{"segment_kind": "lifecycle", "segment": str(x), "on": "both",
                                         "action": "crm_sync"} for x in segments["s"]])
        set_allowed(st, ["127.0.0.0/8"])
        _, secret = add_endpoint(st, receiver_url)
    return key, secret


def serve(store: str, tmp: Path, write_behind: bool = True) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CLIENTFOLIO_SCHEDULER": "0", "CLIENTFOLIO_RATE": "0", "CLIENTFOLIO_FILES": str(tmp / "files"),
           "CLIENTFOLIO_WRITE_BEHIND": "1" if write_behind else "0"}
    proc = subprocess.Popen([sys.executable, "-m", "clientfolio.cli", "serve", "--store", store, "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=open(tmp / f"serve-{port}.log", "w"),
                            stderr=subprocess.STDOUT)
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the service did not start: {(tmp / f'serve-{port}.log').read_text()[-2000:]}")


def run_store(label: str, store: str, args: argparse.Namespace, tmp: Path, fitted_csv: Path, cutoff: str,
              held: pd.DataFrame) -> dict:
    import httpx

    t = time.perf_counter()
    key, _ = prepare(store, fitted_csv, cutoff, "http://127.0.0.1:9/hooks")  # no receiver: delivery is not measured
    print(f"[{label}] fitted and subscribed in {time.perf_counter() - t:.1f} s", flush=True)
    if not store.startswith("postgresql"):
        shutil.copyfile(store, tmp / "peer.duckdb")  # the peer starts from the same fitted store
    out: dict = {}
    start = 0
    for mode in ("plain", "wb"):  # the batch phase, last, takes what is left of the held-back orders
        proc, url = serve(store, tmp, write_behind=mode == "wb")
        try:
            with httpx.Client(base_url=url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
                lat, with_msg, queued = [], [], 0
                cpu0 = _cpu_seconds(proc.pid)
                for _, row in held.iloc[start: start + args.events].iterrows():
                    t0 = time.perf_counter()
                    r = c.post("/orders", json=order_json(row))
                    ms = (time.perf_counter() - t0) * 1000
                    if r.status_code != 200:
                        raise SystemExit(f"POST /v1/orders answered {r.status_code}: {r.text[:500]}")
                    lat.append(ms)
                    n = r.json()["outbox"]
                    queued += n
                    if n:
                        with_msg.append(ms)
                start += args.events
                out[mode] = {"single_p50_ms": pct(lat[1:], 50), "single_p99_ms": pct(lat[1:], 99),
                             "single_events_per_s": 1000 / float(np.mean(lat[1:])),
                             "enqueue_p50_ms": pct(with_msg, 50), "enqueue_p99_ms": pct(with_msg, 99),
                             "queued": queued, "queued_posts": len(with_msg)}
                cpu1 = _cpu_seconds(proc.pid)
                out[mode]["single_cpu_ms"] = (cpu1 - cpu0) * 1000 / max(1, len(lat))
                out[mode].update(concurrent(url, key, held.iloc[start:], args.clients, args.seconds))
                start += out[mode]["clients_events"]
                out[mode]["clients_cpu_ms"] = (_cpu_seconds(proc.pid) - cpu1) * 1000 / max(1, out[mode]["clients_events"])
                if mode == "wb":
                    rest = held.iloc[start:]
                    sent, t0, i = 0, time.perf_counter(), 0
                    while time.perf_counter() - t0 < args.seconds and i < len(rest):
                        part = rest.iloc[i: i + args.batch_size]
                        r = c.post("/batch", json={"orders": [order_json(row) for _, row in part.iterrows()]})
                        if r.status_code != 200:
                            raise SystemExit(f"POST /v1/batch answered {r.status_code}: {r.text[:500]}")
                        queued += r.json()["outbox"]
                        sent += len(part)
                        i += args.batch_size
                    start += i
                    out["batch_events_per_s"] = sent / (time.perf_counter() - t0)
                    out["batch_events"] = sent
                    out["queued_all"] = queued
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def concurrent(url: str, key: str, orders: pd.DataFrame, clients: int, seconds: float) -> dict:
    """Single orders POSTed by `clients` threads at once for `seconds`: events/s and latency."""
    import threading

    import httpx

    lock = threading.Lock()
    rows = [order_json(row) for _, row in orders.iterrows()]
    nxt = [0]
    lat: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def work() -> None:
        with httpx.Client(base_url=url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            while time.perf_counter() < stop:
                with lock:
                    if nxt[0] >= len(rows):
                        return
                    body = rows[nxt[0]]
                    nxt[0] += 1
                t0 = time.perf_counter()
                r = c.post("/orders", json=body)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    lat.append(ms)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} concurrent POSTs failed, e.g. {errors[0]}")
    return {"clients_events": len(lat), "clients_events_per_s": len(lat) / dt, "clients_p50_ms": pct(lat, 50),
            "clients_p99_ms": pct(lat, 99)}


def peer(store: str, held: pd.DataFrame, n: int) -> dict:
    """The same single orders applied in-process (no HTTP, no JSON) on a copy of the fitted DuckDB store."""
    from clientfolio.live import LivePortfolio
    from clientfolio.store import open_store

    lat = []
    with open_store(store) as st:
        live = LivePortfolio(st)
        for _, row in held.iloc[:n].iterrows():
            one = pd.DataFrame([{"order_id": f"live-{row['order_id']}", "customer_id": row["customer_id"],
                                 "ts": pd.Timestamp(row["order_date"]), "amount": row["amount"],
                                 "category": row["category"], "cost": row["cost"]}])
            t0 = time.perf_counter()
            live.update(one)
            lat.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": pct(lat[1:], 50), "p99_ms": pct(lat[1:], 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=5000, help="customers in the shop (default 5,000)")
    ap.add_argument("--events", type=int, default=200, help="orders POSTed one at a time (default 200)")
    ap.add_argument("--batch-size", type=int, default=100, help="orders per POST /v1/batch (default 100)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to send batches (default 20)")
    ap.add_argument("--holdback-days", type=int, default=28)
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients posting single orders (default 8)")
    ap.add_argument("--pg", default=None, help="also on PostgreSQL at this URL (a fresh schema, dropped after)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        shop = shop_orders(args.customers * 10, args.customers, every_customer=True)
        cut = START + pd.Timedelta(days=DAYS - args.holdback_days)
        late = shop["order_date"] >= cut.strftime("%Y-%m-%d")
        fitted_csv = tmp / "fitted.csv"
        shop[~late].to_csv(fitted_csv, index=False)
        held = shop[late].sort_values(["order_date", "order_id"]).reset_index(drop=True)
        cutoff = (cut - pd.Timedelta(days=1)).date().isoformat()
        print(f"{len(shop):,} orders from {args.customers:,} customers; {len(held):,} held back to replay", flush=True)

        results = {"DuckDB": run_store("DuckDB", str(tmp / "shop.duckdb"), args, tmp, fitted_csv, cutoff, held)}
        if args.pg:
            import psycopg

            schema = "bench_" + uuid.uuid4().hex[:10]
            with psycopg.connect(args.pg, autocommit=True) as c:
                c.execute(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in args.pg else "?"
            try:
                results["PostgreSQL"] = run_store("PostgreSQL", f"{args.pg}{sep}options=-csearch_path%3D{schema}",
                                                  args, tmp, fitted_csv, cutoff, held)
            finally:
                with psycopg.connect(args.pg, autocommit=True) as c:
                    for (s,) in c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                          (schema + "%",)).fetchall():
                        c.execute(f"DROP SCHEMA {s} CASCADE")
        ref = peer(str(tmp / "peer.duckdb"), held, args.events)

    print(f"\nper event, in-process LivePortfolio.update (the peer): p50 {ref['p50_ms']:.1f} ms, p99 {ref['p99_ms']:.1f} ms")
    for label, res in results.items():
        print(f"\n{label}")
        for mode, name in (("wb", "write-behind (group commit)"), ("plain", "without write-behind")):
            r = res[mode]
            print(f"  {name}")
            print(f"    single POST /v1/orders   p50 {r['single_p50_ms']:8.1f} ms  p99 {r['single_p99_ms']:8.1f} ms  "
                  f"({r['single_p50_ms'] / ref['p50_ms']:.2f}x the in-process update; target p99 <= {TARGET_P99_MS:.0f} ms: "
                  f"{'met' if r['single_p99_ms'] <= TARGET_P99_MS else 'MISSED'})")
            print(f"    sustained, one at a time {r['single_events_per_s']:8.1f} events/s")
            print(f"    {args.clients} concurrent clients   {r['clients_events_per_s']:8.1f} events/s, p50 "
                  f"{r['clients_p50_ms']:.1f} ms, p99 {r['clients_p99_ms']:.1f} ms over {r['clients_events']:,} orders "
                  f"(target >= {TARGET_EVENTS_PER_S:,.0f} events/s: "
                  f"{'met' if r['clients_events_per_s'] >= TARGET_EVENTS_PER_S else 'MISSED'})")
            print(f"    webhook enqueue          p50 {r['enqueue_p50_ms']:8.1f} ms  p99 {r['enqueue_p99_ms']:8.1f} ms  "
                  f"(the POSTs that queued a message, {r['queued_posts']} of {args.events}: the outbox row is written "
                  f"in the change's transaction)")
            print(f"    server CPU per event: {r['single_cpu_ms']:.1f} ms one at a time, {r['clients_cpu_ms']:.1f} ms "
                  f"with {args.clients} clients (the machine may be shared: CPU time is the steadier number)")
        wb, pl = res["wb"], res["plain"]
        print(f"  write-behind / without: server CPU per event {wb['single_cpu_ms'] / pl['single_cpu_ms']:.2f}x one at "
              f"a time, {wb['clients_cpu_ms'] / pl['clients_cpu_ms']:.2f}x concurrent")
        print(f"  write-behind / without: single p50 {wb['single_p50_ms'] / pl['single_p50_ms']:.2f}x, p99 "
              f"{wb['single_p99_ms'] / pl['single_p99_ms']:.2f}x; concurrent events/s "
              f"{wb['clients_events_per_s'] / pl['clients_events_per_s']:.2f}x, p99 "
              f"{wb['clients_p99_ms'] / pl['clients_p99_ms']:.2f}x")
        print(f"  sustained, batches of {args.batch_size:<4} {res['batch_events_per_s']:8.1f} events/s over "
              f"{res['batch_events']:,} orders, write-behind (target >= {TARGET_EVENTS_PER_S:,.0f}: "
              f"{'met' if res['batch_events_per_s'] >= TARGET_EVENTS_PER_S else 'MISSED'})")


if __name__ == "__main__":
    main()
