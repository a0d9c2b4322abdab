"""Request body size limit (413) and a per-key token-bucket rate limit (429 with Retry-After)."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from clientfolio.service.errors import ApiError, BodyTooLarge, problem

Scope = dict[str, Any]


class BodyLimit:
    """ASGI middleware: refuse a request body over `max_bytes` with 413, by Content-Length or as it streams."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"the request body is larger than this service accepts ({self.max_bytes:,} bytes); " \
                  "split the file or the batch"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_bytes:
                        await problem(413, too_big)(scope, receive, send)
                        return
                except ValueError:
                    await problem(400, "Content-Length is not a number")(scope, receive, send)
                    return
        seen = 0
        exceeded = started = False

        async def counted() -> Any:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def tracked(message: Any) -> None:
            nonlocal started
            if exceeded:  # a parser (e.g. multipart) caught the overflow and answers something else: say 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await problem(413, too_big)(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await problem(413, too_big)(scope, receive, send)


class RateLimiter:
    """A token bucket per key: `rate` requests a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> None:
        """Spend one token of `key_id`'s bucket, or raise a 429 saying when to retry."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise ApiError(f"too many requests for this key: at most {self.rate:g} a second (bursts of "
                               f"{self.burst:g}); retry after {wait} s", status=429, headers={"Retry-After": str(wait)})
            self._buckets[key_id] = (tokens - 1.0, now)
