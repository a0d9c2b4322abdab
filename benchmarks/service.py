"""The service under load on loopback: events/s and per-event latency over HTTP, and webhook enqueue.

A synthetic shop (benchmarks/_shop.py) is fitted with ``clientfolio.analyze`` on all but its last
`--holdback-days` days into a store (a DuckDB file, and with ``--pg URL`` a fresh PostgreSQL
schema), every lifecycle segment gets an entry/exit subscription (so a moved customer queues an
outbox message for the webhooks), every customer consents to e-mail marketing and one webhook
endpoint is added.  Then `clientfolio serve` runs as its own process (periodic jobs off, so only
the posted events change the store) and this script, as the shop would:

- single:   `--events` held-back orders POSTed one at a time to /v1/orders, in time order:
            latency p50/p99 seen by the client (the outbox message for a moved customer is written
            in the same transaction, so the POSTs that queued one give the webhook enqueue latency);
- clients:  the next held-back orders POSTed one at a time by 1, 8, 32 (`--clients`) concurrent
            clients for `--seconds` each: events/s, latency p50/p99, enqueue p50/p99, and orders per
            commit (read back from the store: every row of one commit has the same applied_at);
- modes:    single and clients run three times on consecutive slices of the held-back orders:
            each request alone (CLIENTFOLIO_GROUP_MAX=1: the peer), group commit (the default: the
            requests queued for a workspace are applied by one update in one commit), and group
            commit with write-behind (CLIENTFOLIO_WRITE_BEHIND=1); ratios against the peer;
- batch:    the next held-back orders POSTed to /v1/batch `--batch-size` at a time for
            `--seconds`: sustained events/s;
- peer:     the same kind of single order applied in-process with ``LivePortfolio.update`` on a
            copy of the fitted store (no HTTP): the ratio says what the service adds.

Targets (issue 10): >= 1,000 events/s; per-event p99 <= 10 ms in the service.  Bounded: loopback
only, a 5,000-customer shop by default, about five minutes per store.

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


def prepare(store: str, fitted_csv: Path, cutoff: str, receiver_url: str) -> tuple[str, str, str]:
    """Fit the shop into `store`, subscribe the playbooks, consent everyone, add the endpoint; (admin key, secret,
    the shop's store: on PostgreSQL its workspace's schema)."""
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
    return key, secret, shop


MODES = {  # label -> the server's environment
    "alone": {"CLIENTFOLIO_GROUP_MAX": "1", "CLIENTFOLIO_WRITE_BEHIND": "0"},
    "grouped": {"CLIENTFOLIO_GROUP_MAX": "64", "CLIENTFOLIO_WRITE_BEHIND": "0"},
    "grouped+wb": {"CLIENTFOLIO_GROUP_MAX": "64", "CLIENTFOLIO_WRITE_BEHIND": "1"},
}
TITLES = {"alone": "each request alone (CLIENTFOLIO_GROUP_MAX=1, the peer)",
          "grouped": "group commit (CLIENTFOLIO_GROUP_MAX=64, the default)",
          "grouped+wb": "group commit with write-behind (CLIENTFOLIO_WRITE_BEHIND=1)"}


def serve(store: str, tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CLIENTFOLIO_SCHEDULER": "0", "CLIENTFOLIO_RATE": "0", "CLIENTFOLIO_FILES": str(tmp / "files"),
           **env}
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


def commits(store: str, keys: list[str]) -> int:
    """How many commits wrote these orders (every row of one commit has the same applied_at)."""
    from clientfolio.store import open_store

    with open_store(store) as st:
        return int(st.query("SELECT count(DISTINCT applied_at) AS n FROM applied_events WHERE event_key IN "
                            "(SELECT unnest(CAST(? AS TEXT[])))", [keys])["n"].iloc[0])


def run_store(label: str, store: str, args: argparse.Namespace, tmp: Path, fitted_csv: Path, cutoff: str,
              held: pd.DataFrame) -> dict:
    import httpx

    t = time.perf_counter()
    key, _, shop = prepare(store, fitted_csv, cutoff, "http://127.0.0.1:9/hooks")  # no receiver: delivery is not measured
    print(f"[{label}] fitted and subscribed in {time.perf_counter() - t:.1f} s", flush=True)
    if not store.startswith("postgresql"):
        shutil.copyfile(store, tmp / "peer.duckdb")  # the peer starts from the same fitted store
    out: dict = {}
    start = 0
    levels = [int(x) for x in args.clients.split(",")]
    for mode, env in MODES.items():  # consecutive slices of the held-back orders, in time order
        proc, url = serve(store, tmp, env)
        phases: dict[str, list[str]] = {}
        try:
            with httpx.Client(base_url=url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
                lat, with_msg, queued = [], [], 0
                cpu0 = _cpu_seconds(proc.pid)
                part = held.iloc[start: start + args.events]
                for _, row in part.iterrows():
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
                phases["single"] = [f"order:live:live-{o}" for o in part["order_id"]]
                start += args.events
                out[mode] = {"single_p50_ms": pct(lat[1:], 50), "single_p99_ms": pct(lat[1:], 99),
                             "single_events_per_s": 1000 / float(np.mean(lat[1:])),
                             "enqueue_p50_ms": pct(with_msg, 50), "enqueue_p99_ms": pct(with_msg, 99),
                             "queued": queued, "queued_posts": len(with_msg),
                             "single_cpu_ms": (_cpu_seconds(proc.pid) - cpu0) * 1000 / max(1, len(lat))}
                for n_clients in levels:
                    cpu1 = _cpu_seconds(proc.pid)
                    res = concurrent(url, key, held.iloc[start:], n_clients, args.seconds)
                    phases[f"c{n_clients}"] = [f"order:live:live-{o}"
                                               for o in held.iloc[start: start + res["events"]]["order_id"]]
                    start += res["events"]
                    res["cpu_ms"] = (_cpu_seconds(proc.pid) - cpu1) * 1000 / max(1, res["events"])
                    out[mode][f"c{n_clients}"] = res
                if mode == "grouped":
                    rest = held.iloc[start:]
                    sent, t0, i = 0, time.perf_counter(), 0
                    while time.perf_counter() - t0 < args.seconds and i < len(rest):
                        chunk = rest.iloc[i: i + args.batch_size]
                        r = c.post("/batch", json={"orders": [order_json(row) for _, row in chunk.iterrows()]})
                        if r.status_code != 200:
                            raise SystemExit(f"POST /v1/batch answered {r.status_code}: {r.text[:500]}")
                        sent += len(chunk)
                        i += args.batch_size
                    start += i
                    out["batch_events_per_s"] = sent / (time.perf_counter() - t0)
                    out["batch_events"] = sent
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        for name, keys in phases.items():  # the server is stopped: a DuckDB file can be opened again
            n = commits(shop, keys)
            if n == 0:
                raise SystemExit(f"[{label}] none of the {len(keys)} orders of {mode}/{name} is in the store")
            (out[mode] if name == "single" else out[mode][name])["per_commit"] = len(keys) / max(1, n)
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def concurrent(url: str, key: str, orders: pd.DataFrame, clients: int, seconds: float) -> dict:
    """Single orders POSTed by `clients` threads at once for `seconds` (the next ones in time order, dealt as
    each client is free): events/s, latency, and latency of the POSTs that queued a webhook message."""
    import threading

    import httpx

    lock = threading.Lock()
    rows = [order_json(row) for _, row in orders.head(int(seconds * 3000)).iterrows()]
    nxt = [0]
    lat: list[float] = []
    with_msg: list[float] = []
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
                    elif r.json()["outbox"]:
                        with_msg.append(ms)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} concurrent POSTs failed, e.g. {errors[0]}")
    if nxt[0] >= len(rows):
        print(f"  (the held-back orders ran out after {len(lat):,} with {clients} clients: raise --holdback-days)")
    return {"events": len(lat), "events_per_s": len(lat) / dt, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "enqueue_p50_ms": pct(with_msg, 50), "enqueue_p99_ms": pct(with_msg, 99), "queued_posts": len(with_msg)}


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
    ap.add_argument("--seconds", type=float, default=10.0, help="how long each concurrent phase runs (default 10)")
    ap.add_argument("--holdback-days", type=int, default=150, help="days of orders held back to replay (default 150)")
    ap.add_argument("--clients", default="1,8,32", help="concurrent clients posting single orders, one phase per "
                                                       "number (default 1,8,32)")
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
    levels = [int(x) for x in args.clients.split(",")]
    ok = lambda met: "met" if met else "MISSED"  # noqa: E731
    for label, res in results.items():
        print(f"\n{label}")
        for mode in MODES:
            r = res[mode]
            print(f"  {TITLES[mode]}")
            print(f"    one client, one at a time  {r['single_events_per_s']:7.1f} events/s, p50 {r['single_p50_ms']:6.1f} ms, "
                  f"p99 {r['single_p99_ms']:6.1f} ms ({r['single_p50_ms'] / ref['p50_ms']:.2f}x the in-process update; "
                  f"p99 <= {TARGET_P99_MS:.0f} ms: {ok(r['single_p99_ms'] <= TARGET_P99_MS)}); webhook enqueue p50 "
                  f"{r['enqueue_p50_ms']:.1f} ms, p99 {r['enqueue_p99_ms']:.1f} ms ({r['queued_posts']} of {args.events} "
                  f"POSTs queued a message); CPU {r['single_cpu_ms']:.1f} ms/event")
            for n in levels:
                c = r[f"c{n}"]
                print(f"    {n:3d} concurrent clients     {c['events_per_s']:7.1f} events/s, p50 {c['p50_ms']:6.1f} ms, "
                      f"p99 {c['p99_ms']:6.1f} ms over {c['events']:,} orders, {c['per_commit']:.1f} per commit; "
                      f"enqueue p50 {c['enqueue_p50_ms']:.1f} ms, p99 {c['enqueue_p99_ms']:.1f} ms; CPU "
                      f"{c['cpu_ms']:.1f} ms/event (>= {TARGET_EVENTS_PER_S:,.0f}/s: "
                      f"{ok(c['events_per_s'] >= TARGET_EVENTS_PER_S)})")
        for mode in ("grouped", "grouped+wb"):
            g, a = res[mode], res["alone"]
            parts = [f"{n} clients {g[f'c{n}']['events_per_s'] / a[f'c{n}']['events_per_s']:.2f}x events/s, "
                     f"{g[f'c{n}']['cpu_ms'] / a[f'c{n}']['cpu_ms']:.2f}x CPU/event" for n in levels]
            print(f"  {mode} / alone: " + "; ".join(parts))
        print(f"  POST /v1/batch, {args.batch_size} orders each: {res['batch_events_per_s']:.1f} events/s over "
              f"{res['batch_events']:,} orders (>= {TARGET_EVENTS_PER_S:,.0f}/s: "
              f"{ok(res['batch_events_per_s'] >= TARGET_EVENTS_PER_S)})")
    print("\nTimes are wall clock on this machine, which may be shared: compare the ratios and the CPU per event.")


if __name__ == "__main__":
    main()
