"""Exceptions raised by the Milvus import provider.

One class per failure a user acts on differently. Every message names the endpoint (the route, never a
credential) and the job or collection it concerns; the transport's own exception is never chained, so a
task log shows one clear line instead of a stack of wrapped tracebacks.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException


class MilvusImportError(AirflowException):
    """
    Base class of every error this provider raises.

    :param message: what happened, naming the endpoint and the job or collection.
    :param endpoint: the URL (no credentials) or route that failed, when known.
    :param job_id: the import job concerned, when known.
    :param collection_name: the collection concerned, when known.
    :param code: the server's envelope ``code``, when it sent one.
    :param http_status: the HTTP status, when there was a response.
    """

    #: whether waiting and asking again may give another answer (retried with backoff)
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        job_id: str | None = None,
        collection_name: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.job_id = job_id
        self.collection_name = collection_name
        self.code = code
        self.http_status = http_status

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword arguments across pickling (Airflow pickles exceptions between processes).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[MilvusImportError], message: str, state: dict[str, Any]) -> MilvusImportError:
    error = cls.__new__(cls)
    MilvusImportError.__init__(error, message)
    error.__dict__.update(state)
    return error


class MilvusImportConnectionError(MilvusImportError):
    """The endpoint could not be reached: DNS, refused or dropped connection, TLS failure, client timeout."""

    transient = True


class MilvusImportConnectError(MilvusImportConnectionError):
    """
    No connection could be made (refused, DNS, TLS handshake, connect timeout): the request was never sent.

    Unlike other connection failures, retrying cannot duplicate work, so even ``create`` is retried on it.
    """


class MilvusImportAuthError(MilvusImportError):
    """The server refused the credentials (HTTP 401, code 1800, Zilliz Cloud code 21119)."""


class MilvusImportPermissionError(MilvusImportError):
    """Authenticated, but not allowed to import (HTTP 403, RBAC privilege missing)."""


class MilvusImportNotFoundError(MilvusImportError):
    """
    The job or the collection does not exist (code 2100 / 2101 "does not exist" or "not found", 2100
    "parse job id failed" on Milvus 2.5 / 2.6, 100).
    """


class MilvusImportRouteNotFoundError(MilvusImportNotFoundError):
    """
    The server has no such route (HTTP 404 with a plain-text body).

    Older Milvus 2.4 builds have no ``describe``; a wrong Host (not the Milvus REST endpoint) looks the same.
    """


class MilvusImportRequestError(MilvusImportError):
    """The server rejected the request as invalid (codes 1801, 1802, 1100, limits, other non-zero codes)."""


class MilvusImportJobLimitError(MilvusImportError):
    """
    The server refused a new import job because too many are running or pending ("The number of jobs has
    reached the limit, please try again later": Milvus code 2100, 2101 on 3.x).

    The server checks this before it records a job, so ``create`` is retried with backoff (within the
    hook's ``max_retries``); this is raised when the retries run out. Wait for running imports to end,
    import many files in one job rather than one job per file, or raise the server's limit (Milvus:
    ``dataCoord.import.maxImportJobNum``, 1024 by default).
    """

    transient = True


class MilvusImportRateLimitError(MilvusImportError):
    """
    Too many requests (HTTP 429).

    :param retry_after: seconds the server asked to wait (``Retry-After``), when it said.
    """

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class MilvusImportServerError(MilvusImportError):
    """The server failed (HTTP 5xx)."""

    transient = True


class MilvusImportServerTimeoutError(MilvusImportServerError):
    """The server timed the request out (HTTP 408, code 10001)."""


class MilvusImportResponseError(MilvusImportError):
    """The answer could not be read: HTML instead of JSON, invalid JSON, JSON without ``code``, too large."""


class MilvusImportJobFailed(MilvusImportError):
    """
    An import job ended in the Failed state (or another state that is not success).

    :param failed_files: ``(file name, reason)`` for each file that failed.
    :param state: the job state seen last.
    """

    def __init__(
        self,
        message: str,
        *,
        failed_files: list[tuple[str, str]] | None = None,
        state: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.failed_files = failed_files or []
        self.state = state


class MilvusImportJobTimeout(MilvusImportError):
    """A job did not reach a terminal state before the waiter's deadline."""
