"""A real webhook receiver for the tests, run as its own process on loopback.

It verifies every request with the `standardwebhooks` package (the reference verifier) against
each secret it was given, and appends one JSON line per request to --log: the webhook-id, whether
it verified and with which secret, whether the id was seen before (ids from an earlier run of the
receiver with the same log count as seen: a receiver that deduplicates by webhook-id), and the body.  With --delay the answer comes that
much later than the log line, so a sender killed in between has the request in flight.

    python webhook_receiver.py --port 8123 --log hits.jsonl --secret whsec_... [--status 410] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    lock = threading.Lock()
    seen: set[str] = set()
    if args.log.exists():
        for line in args.log.read_text().splitlines():
            rec = json.loads(line)
            if rec["verified"] and args.status == 200:
                seen.add(rec["id"])
    verifiers = [Webhook(s) for s in args.secret]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver behind a web server would
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender went away mid-request (killed): no request, as a web server sees it
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok = []
            for i, w in enumerate(verifiers):
                try:
                    w.verify(body, headers)
                    ok.append(i)
                except WebhookVerificationError:
                    pass
            wid = headers.get("webhook-id", "")
            with lock:
                dup = wid in seen
                if ok and args.status == 200:
                    seen.add(wid)
                rec = {"id": wid, "at": time.time(), "path": self.path, "verified": bool(ok), "secrets": ok, "dup": dup, "host": headers.get("host"),
                       "signatures": len(headers.get("webhook-signature", "").split()),
                       "body": json.loads(body or b"null")}
                with open(args.log, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if args.delay:  # processed and logged; the answer is slow (a sender killed now has it in flight)
                time.sleep(args.delay)
            self.send_response(args.status if ok else 401)
            if 300 <= args.status < 400:  # a redirect to another path here: a sender that follows it shows up
                self.send_header("location", "/followed")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
