"""Request counting and fault injection: an ASGI middleware in front of the app.

Faults are off unless configured. Each request takes, in order: the rate limit (429 with ``Retry-After``), one
draw deciding drop / 5xx / pass, then one draw for the delay; a delay longer than the request's
``Request-Timeout`` header (30 s without one) ends as Milvus' 408. A seeded random generator makes a run
repeatable for the same sequence of requests. The private ``/_local/`` routes are neither counted nor faulted.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from airflow_milvus_import.local.wire import CODE_INTERNAL, ApiError, rate_limited, request_timeout

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from airflow_milvus_import.local.config import ServerConfig

PRIVATE_PREFIX = "/_local/"
DEFAULT_REQUEST_TIMEOUT_S = 30.0

_HTML_5XX = (
    "<html>\r\n<head><title>{status} {text}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {text}</h1></center>"
    "\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
# (status, reason text, JSON body or None for an HTML page)
_FAILURES: tuple[tuple[int, str, dict[str, Any] | None], ...] = (
    (
        500,
        "Internal Server Error",
        {"code": CODE_INTERNAL, "message": "internal server error (injected fault)"},
    ),
    (502, "Bad Gateway", None),
    (503, "Service Unavailable", {"code": 503, "message": "service unavailable (injected fault)"}),
    (504, "Gateway Time-out", None),
)


class Stats:
    """Counters for tests and benchmarks: requests by route, faults by kind."""

    FAULT_KINDS = ("fail", "drop", "rate_limited", "delayed", "timeout")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.started = time.time()

    def count_request(self, route: str) -> None:
        """One more request to ``route``."""
        self.requests[route] += 1

    def count_fault(self, kind: str) -> None:
        """One more injected fault of ``kind``."""
        self.faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-safe data."""
        with self._lock:
            return {
                "requests": dict(self.requests),
                "requests_total": sum(self.requests.values()),
                "faults": {kind: self.faults.get(kind, 0) for kind in self.FAULT_KINDS},
                "since": self.started,
            }

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.started = time.time()


class TokenBucket:
    """``rate`` requests per second, with bursts of up to one second's worth.

    :param rate: tokens added per second.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()

    def take(self) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is available."""
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    """Send a whole JSON response."""
    await _send(send, status, json.dumps(body).encode(), b"application/json; charset=utf-8", headers)


async def _send(
    send: Send,
    status: int,
    payload: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


def _request_timeout(scope: Scope) -> float:
    for name, value in scope.get("headers", []):
        if name.lower() == b"request-timeout":
            try:
                seconds = float(value.decode())
            except ValueError:
                return DEFAULT_REQUEST_TIMEOUT_S
            return seconds if seconds > 0 else DEFAULT_REQUEST_TIMEOUT_S
    return DEFAULT_REQUEST_TIMEOUT_S


class FaultInjector:
    """The middleware.

    :param app: the wrapped ASGI app.
    :param config: fault settings.
    :param stats: where counts go.
    """

    def __init__(self, app: ASGIApp, config: ServerConfig, stats: Stats) -> None:
        self._app = app
        self._config = config
        self._stats = stats
        self._random = random.Random(config.seed)
        self._bucket = TokenBucket(config.rate_limit) if config.rate_limit else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(PRIVATE_PREFIX):
            await self._app(scope, receive, send)
            return
        self._stats.count_request(path)
        if await self._injected(scope, send):
            return
        await self._app(scope, receive, send)

    async def _injected(self, scope: Scope, send: Send) -> bool:
        """Apply the faults; True when the request has been answered (or dropped) here."""
        config = self._config
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                self._stats.count_fault("rate_limited")
                error = rate_limited(self._bucket.rate)
                retry_after = str(max(1, math.ceil(wait))).encode()
                await send_json(send, error.http_status, error.body(), [(b"retry-after", retry_after)])
                return True
        if config.drop_rate or config.fail_rate:
            roll = self._random.random()
            if roll < config.drop_rate:
                self._stats.count_fault("drop")
                await _drop(send)
                return True
            if roll < config.drop_rate + config.fail_rate:
                self._stats.count_fault("fail")
                await self._fail(send)
                return True
        if config.latency_ms and self._random.random() < config.latency_rate:
            return await self._delay(scope, send, config.latency_ms / 1000.0)
        return False

    async def _fail(self, send: Send) -> None:
        status, text, body = self._random.choice(_FAILURES)
        if body is not None:
            await send_json(send, status, body, [])
        else:
            page = _HTML_5XX.format(status=status, text=text).encode()
            await _send(send, status, page, b"text/html")

    async def _delay(self, scope: Scope, send: Send, delay: float) -> bool:
        timeout = _request_timeout(scope)
        if delay > timeout:
            await asyncio.sleep(timeout)
            self._stats.count_fault("timeout")
            error: ApiError = request_timeout()
            await send_json(send, error.http_status, error.body(), [])
            return True
        self._stats.count_fault("delayed")
        await asyncio.sleep(delay)
        return False


async def _drop(send: Send) -> None:
    """Close the connection without an answer (uvicorn: abort the transport behind ``send``)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("injected dropped connection")
    transport.abort()
    await asyncio.sleep(0)


async def send_text(send: Send, status: int, text: str) -> None:
    """Send a plain-text response (Gin's ``404 page not found``)."""
    await _send(send, status, text.encode(), b"text/plain")
