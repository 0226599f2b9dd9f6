"""
The transport side of every request, sync (requests) or async (httpx): what the hook's HTTP clients share.

* :class:`RateBudget`, a token bucket per endpoint (base URL + API key, :func:`rate_budget_for`) that every
  request of the hook takes a token from, whatever thread or event loop it runs in. Zilliz Cloud gets 10
  requests/s unless the connection's extra ``rate_limit`` says otherwise; self-hosted Milvus has no limit
  unless one is set. A ``Retry-After`` (HTTP 429) pauses the whole bucket, not just the request that got it.
* :func:`token_fingerprint`: a keyed hash of a token, so an endpoint's key never holds the token itself.
* :func:`request_deadline` / :func:`request_not_after`: the monotonic time past which the current request
  is sent even while its endpoint's budget is paused (a wait's own deadline comes first).
* The clients' TLS trust (:func:`ca_context`, loaded once per process per CA bundle), a cookie jar that
  keeps nothing (:class:`NoCookies`) and :func:`describe_failure`, which says in one line what a
  transport exception means and whether the request could have reached the server.

It imports nothing of the package above the wire core (exceptions, and the connection settings' type):
the hook and the shared poller both build on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import hashlib
import hmac
import http.cookiejar
import math
import os
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from airflow_milvus_import.exceptions import MilvusImportRequestError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_milvus_import.protocol import ConnectionSettings

__all__ = [
    "DEFAULT_PAUSE_SECONDS",
    "READ_CHUNK_BYTES",
    "SHARED_PAUSE_CAP_SECONDS",
    "NoCookies",
    "RateBudget",
    "async_ssl_context",
    "ca_context",
    "describe_failure",
    "rate_budget_for",
    "request_deadline",
    "request_not_after",
    "reset_rate_budgets",
    "token_fingerprint",
]

#: the longest a ``Retry-After`` pauses every request to an endpoint (the request that got it may wait
#: longer itself; if the server keeps refusing, the next 429 pauses the endpoint again)
SHARED_PAUSE_CAP_SECONDS: Final = 10.0
#: how long a 429 without ``Retry-After`` (or Milvus' "rate limit exceeded" code) pauses the endpoint
DEFAULT_PAUSE_SECONDS: Final = 1.0

#: a key only this process can compute: a token's fingerprint means nothing outside it, even for a weak
#: ``user:password`` token, and the token itself is never part of any key
_FINGERPRINT_KEY: Final = os.urandom(32)


def token_fingerprint(token: str | None) -> str:
    """A short keyed hash of ``token`` ("" for none): safe to keep in keys, reprs and logs."""
    if not token:
        return ""
    return hmac.new(_FINGERPRINT_KEY, token.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


class RateBudget:
    """
    A token bucket shared by every request to one endpoint: ``rate`` requests per second with bursts of
    up to ``burst`` requests (one second's worth by default).

    It hands out send times rather than polling for tokens (the "virtual scheduling" form of a token
    bucket), so a thousand waiters cost one clock reading each, not a thousand wake-ups per token. It is
    thread-safe and bound to no event loop: the sync hook (:meth:`acquire`, which sleeps) and the async
    hook (:meth:`aacquire`, which awaits) share it. :meth:`pause` (a ``Retry-After``) holds every request
    until the pause ends; afterwards requests resume at ``rate``, without a burst.

    :param rate: requests per second; None (or <= 0): no limit, only pauses apply.
    :param burst: how many requests may go at once after a quiet spell (default: ``max(1, rate)``).
    :param clock: a monotonic clock in seconds (injectable for tests).
    :param sleep: how :meth:`acquire` sleeps (injectable for tests).
    :param name: what it limits, for logs (no credentials).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "",
    ) -> None:
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._interval = 0.0
        self._tolerance = 0.0
        self._tat = -math.inf  # the theoretical time the next request would conform at
        self._paused_until = -math.inf
        self.granted = 0
        self.delayed = 0
        self.pauses = 0
        self.set_rate(rate, burst=burst)

    def __repr__(self) -> str:
        rate = "unlimited" if self._rate is None else f"{self._rate:g}/s"
        return f"RateBudget({self.name!r}, {rate})"

    @property
    def rate(self) -> float | None:
        """Requests per second, or None for no limit."""
        return self._rate

    def set_rate(self, rate: float | None, *, burst: float | None = None) -> None:
        """Change the rate (the connection's ``rate_limit`` may change between hooks)."""
        with self._lock:
            if rate is None or not math.isfinite(rate) or rate <= 0:
                self._rate, self._interval, self._tolerance = None, 0.0, 0.0
                return
            size = max(1.0, rate if burst is None else burst)
            self._rate = float(rate)
            self._interval = 1.0 / rate
            self._tolerance = (size - 1.0) * self._interval

    def reserve(self) -> float:
        """Take the next send slot; returns the seconds to wait before sending (0.0: send now)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._paused_until)
            self.granted += 1
            if self._rate is None:
                wait = start - now
            else:
                send_at = max(start, self._tat - self._tolerance)
                self._tat = max(self._tat, send_at) + self._interval
                wait = send_at - now
            if wait <= 1e-9:  # float dust from summing intervals is not a wait
                return 0.0
            self.delayed += 1
            return wait

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a server's ``Retry-After``), then resume at the rate."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self.pauses += 1
            if self._rate is not None:
                # No burst right after a pause: the first request goes at its end, the next one a slot later.
                self._tat = max(self._tat, until + self._tolerance)

    def paused_for(self) -> float:
        """Seconds the current pause still lasts (0.0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def _idle(self) -> bool:
        # No lock: one float comparison, and a stale answer only means taking the slow path.
        return self._rate is None and self._paused_until <= self._clock()

    def _wait_time(self, not_after: float | None) -> float:
        wait = self.reserve()
        if not_after is not None:
            wait = min(wait, max(0.0, not_after - self._clock()))
        return wait

    def _done(self, not_after: float | None) -> bool:
        if not_after is not None and self._clock() >= not_after:
            return True  # the caller's own deadline comes first (one last look at a deadline still goes)
        return self.paused_for() <= 0

    def _waits(self, not_after: float | None) -> Iterator[float]:
        """The sleeps one request waits for its send slot (none when there is no limit and no pause)."""
        if self._idle():
            self.granted += 1
            return
        while True:
            wait = self._wait_time(not_after)
            if wait > 0:
                yield wait
            if self._done(not_after):
                return

    def acquire(self, *, not_after: float | None = None) -> float:
        """
        Wait (sleeping: sync callers only) until a request may be sent; returns the seconds waited.

        :param not_after: a monotonic time past which the caller sends anyway (its own deadline).
        """
        waited = 0.0
        for wait in self._waits(not_after):
            self._sleep(wait)
            waited += wait
        return waited

    async def aacquire(self, *, not_after: float | None = None) -> float:
        """:meth:`acquire` without blocking the event loop."""
        waited = 0.0
        for wait in self._waits(not_after):
            await asyncio.sleep(wait)
            waited += wait
        return waited


_budgets: dict[tuple[str, str], RateBudget] = {}
_budgets_lock = threading.Lock()


def rate_budget_for(settings: ConnectionSettings) -> RateBudget:
    """
    The process-wide budget of ``settings``' endpoint (its base URL and API key), at the rate the
    settings ask for (:attr:`ConnectionSettings.requests_per_second`).
    """
    key = (settings.base_url, token_fingerprint(settings.token))
    rate = settings.requests_per_second
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RateBudget(rate, name=settings.base_url)
            return budget
    if budget.rate != rate:
        budget.set_rate(rate)
    return budget


def reset_rate_budgets() -> None:
    """Forget every endpoint's budget and pause (tests: each starts with fresh buckets)."""
    with _budgets_lock:
        _budgets.clear()


_request_not_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "milvus_import_request_not_after", default=None
)


def request_not_after() -> float | None:
    """The monotonic time past which the current request goes even if its endpoint's budget says wait."""
    return _request_not_after.get()


@contextlib.contextmanager
def request_deadline(value: float | None) -> Iterator[None]:
    """
    Requests made inside (in this thread, or this task and those it starts) are sent at ``value`` (a
    monotonic time) at the latest, even while their endpoint's budget is paused; None: no deadline.
    """
    token = _request_not_after.set(value)
    try:
        yield
    finally:
        _request_not_after.reset(token)


# ---------------------------------------------------------------------------------------------------------
# HTTP clients: reads, TLS trust, cookies, what a transport failure means
# ---------------------------------------------------------------------------------------------------------

#: how much of an answer one read takes
READ_CHUNK_BYTES: Final = 64 * 1024
#: OpenSSL's verify codes for a certificate issued for another host name or IP address
_X509_NAME_MISMATCH_CODES: Final = frozenset({62, 64})


def _exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps (``__cause__``, ``__context__``, urllib3's ``reason``, first arg)."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if any(current is item for item in seen):
            continue
        seen.append(current)
        for candidate in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            current.args[0] if current.args else None,
        ):
            if isinstance(candidate, BaseException):
                pending.append(candidate)
    return seen


def describe_failure(error: BaseException, timeout: float) -> tuple[str, bool | None]:
    """
    A short reason for a transport failure and whether the request could have reached the server.

    Returns ``(reason, request_sent)``; ``request_sent`` is None when the chain does not say.
    """
    chain = _exception_chain(error)
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            detail = getattr(item, "verify_message", "") or "certificate not trusted"
            if getattr(item, "verify_code", None) in _X509_NAME_MISMATCH_CODES:
                advice = "set Host to a name the server's certificate was issued for"
            else:
                advice = "set the extra 'verify' to a CA bundle that issued the server's certificate"
            return f"TLS certificate verification failed ({detail}); {advice}", False
    for item in chain:
        if isinstance(item, ssl.SSLError):
            return f"TLS handshake failed ({getattr(item, 'reason', None) or type(item).__name__})", False
        if isinstance(item, socket.gaierror):
            return "the host name could not be resolved", False
        if isinstance(item, ConnectionRefusedError):
            return "connection refused (is the server running, and are Host and Port right?)", False
        if isinstance(item, OSError) and item.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "the host is unreachable", False
        if isinstance(item, (ConnectionResetError, BrokenPipeError)):
            return "the server closed the connection without answering", True
    names = {type(item).__name__ for item in chain}
    if names & {"ConnectTimeout", "ConnectTimeoutError", "PoolTimeout"}:
        return f"no connection within {timeout:g} s", False
    if names & {"ReadTimeout", "ReadTimeoutError", "WriteTimeout", "TimeoutError", "timeout"}:
        return f"no answer within {timeout:g} s", True
    if names & {
        "RemoteDisconnected",
        "RemoteProtocolError",
        "ProtocolError",
        "IncompleteRead",
        "ChunkedEncodingError",
        "ReadError",
        "WriteError",
    }:
        return "the server closed the connection without answering", True
    if names & {"NewConnectionError", "ConnectError"}:
        return "could not connect", False
    return f"transport failure ({type(error).__name__})", None


#: CA bundles loaded in this process, by (path, modification time): every hook of an endpoint shares one
_ca_contexts: dict[tuple[str, int], ssl.SSLContext] = {}
_ca_lock = threading.Lock()


def ca_context(conn_id: str | None, path: str) -> ssl.SSLContext:
    """
    The TLS context trusting the CA bundle file (or the CA directory) the extra ``verify`` names, loaded
    once per process.

    :raises MilvusImportRequestError: the path is missing, unreadable or holds no PEM certificate, naming
        the connection and the extra.
    """

    def bad(problem: str) -> MilvusImportRequestError:
        return MilvusImportRequestError(
            f"Milvus import connection '{conn_id}': the CA bundle in extra 'verify' ({path}) {problem}"
        )

    try:
        key = (path, os.stat(path).st_mtime_ns)
    except FileNotFoundError:
        raise bad("does not exist") from None
    except OSError as error:
        raise bad(f"cannot be read ({error.strerror or type(error).__name__})") from None
    with _ca_lock:
        context = _ca_contexts.get(key)
        if context is not None:
            return context
        failure: MilvusImportRequestError | None = None
        try:
            if os.path.isdir(path):
                context = ssl.create_default_context(capath=path)  # hashed CA directory, read per handshake
            else:
                context = ssl.create_default_context(cafile=path)
        except ssl.SSLError as error:
            reason = getattr(error, "reason", None) or "unreadable"
            failure = bad(f"is not a PEM CA bundle ({reason})")
        except (OSError, ValueError) as error:
            failure = bad(f"cannot be read ({getattr(error, 'strerror', None) or type(error).__name__})")
        if failure is not None:
            raise failure
        assert context is not None
        _ca_contexts[key] = context
        return context


def async_ssl_context(settings: ConnectionSettings) -> ssl.SSLContext:
    """The TLS context of the async client: httpx's default trust store, or the CA bundle ``verify`` names."""
    import httpx

    if isinstance(settings.verify, str):
        return ca_context(settings.conn_id, settings.verify)
    return httpx.create_ssl_context(verify=settings.verify)


class NoCookies(http.cookiejar.CookieJar):
    """
    A cookie jar that keeps nothing: the API authenticates with a Bearer token, and a cookie some proxy or
    load balancer sets is neither needed nor worth the time to parse on every answer.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None
