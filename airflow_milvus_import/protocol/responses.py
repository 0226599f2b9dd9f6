"""
Answers, without I/O: the success envelope, the one table that maps an error to its exception, and the
retry rule.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import urlsplit

from airflow_milvus_import.exceptions import (
    MilvusImportAuthError,
    MilvusImportConnectError,
    MilvusImportConnectionError,
    MilvusImportError,
    MilvusImportJobLimitError,
    MilvusImportNotFoundError,
    MilvusImportPermissionError,
    MilvusImportRateLimitError,
    MilvusImportRequestError,
    MilvusImportResponseError,
    MilvusImportRouteNotFoundError,
    MilvusImportServerError,
    MilvusImportServerTimeoutError,
)
from airflow_milvus_import.models import parse_job_id
from airflow_milvus_import.protocol.settings import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from airflow_milvus_import.protocol.requests import ApiRequest

__all__ = [
    "connection_error",
    "is_retryable",
    "parse_create_response",
    "parse_response",
    "retry_after_seconds",
]

Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]] | None


def _header(headers: Headers, name: str) -> str | None:
    if headers is None:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, value in items:
        if str(key).lower() == wanted:
            return str(value)
    return None


def retry_after_seconds(headers: Headers, *, now: float | None = None) -> float | None:
    """Seconds asked for by ``Retry-After`` (delta seconds or an HTTP date); None if absent/unreadable."""
    value = _header(headers, "Retry-After")
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def _snippet(request: ApiRequest, body: bytes, limit: int = 200) -> str:
    """A short, single-line, credential-free excerpt of an unreadable answer."""
    text = body[: limit * 20].decode("utf-8", errors="replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, flags=re.IGNORECASE | re.DOTALL)
    text = title.group(1) if title and title.group(1).strip() else _TAG.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    text = request.redact(text)
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text or "(empty body)"


def _code_detail(code: int, message: str, http_status: int) -> str:
    prefix = f"HTTP {http_status}, code {code}" if http_status != 200 else f"code {code}"
    return f"{prefix}: {message}" if message else prefix


# Milvus' merr codes (pkg/util/merr/errors.go) whose meaning a user acts on, and Zilliz Cloud's auth code.
_AUTH_CODES: Final = frozenset({1800, 1400, 21119, 80001})
_PERMISSION_CODES: Final = frozenset({1401})
_NOT_FOUND_CODES: Final = frozenset({100, 200, 800})
_RATE_LIMIT_CODES: Final = frozenset({4, 8, 1807})
_UNAVAILABLE_CODES: Final = frozenset({1, 2, 12, 1002})
_TIMEOUT_CODES: Final = frozenset({10001})
#: ErrImportFailed (2100) and, on Milvus 3.x, ErrImportSysFailed (2101, "... failed on server side")
_IMPORT_FAILED_CODES: Final = frozenset({2100, 2101})
#: the job-count back-pressure of ``create`` (datacoord ``ValidateMaxImportJobExceed``)
_JOB_LIMIT_TEXT: Final = "number of jobs has reached the limit"


@dataclass(frozen=True)
class _ErrorRule:
    """
    One row of :data:`_ERROR_RULES`: an answer matches when it has one of ``codes``, one of ``statuses``,
    an HTTP status of at least ``min_status``, or a message containing one of ``texts``; and, when
    ``only_codes`` is set, one of those codes (None: an answer without an envelope's code).
    """

    error: type[MilvusImportError]
    what: str
    codes: frozenset[int] = frozenset()
    statuses: frozenset[int] = frozenset()
    min_status: int | None = None
    texts: tuple[str, ...] = ()
    only_codes: frozenset[int | None] | None = None
    #: ``what`` for a request about one job, when it differs
    what_for_job: str | None = None

    def matches(self, code: int | None, http_status: int, text: str) -> bool:
        """Whether an answer with ``code`` (None: none), ``http_status`` and lowercase ``text`` matches."""
        if self.only_codes is not None and code not in self.only_codes:
            return False
        return (
            (code is not None and code in self.codes)
            or http_status in self.statuses
            or (self.min_status is not None and http_status >= self.min_status)
            or any(fragment in text for fragment in self.texts)
        )


#: The error an answer means: the first row it matches. Answers with an envelope's code are matched by
#: code, status and message; HTTP errors without one by status only.
_ERROR_RULES: Final = (
    _ErrorRule(
        MilvusImportAuthError,
        "refused: the credentials were not accepted (check the connection's Password / API key)",
        codes=_AUTH_CODES,
        statuses=frozenset({401}),
        texts=("apikey is illegal",),
    ),
    _ErrorRule(
        MilvusImportPermissionError,
        "refused: permission denied (the user needs the Import privilege)",
        codes=_PERMISSION_CODES,
        statuses=frozenset({403}),
    ),
    _ErrorRule(
        MilvusImportServerTimeoutError,
        "timed out on the server",
        codes=_TIMEOUT_CODES,
        statuses=frozenset({408}),
    ),
    _ErrorRule(
        MilvusImportRateLimitError, "rate limited", codes=_RATE_LIMIT_CODES, statuses=frozenset({429})
    ),
    _ErrorRule(
        MilvusImportServerError, "failed on the server (temporarily unavailable)", codes=_UNAVAILABLE_CODES
    ),
    _ErrorRule(MilvusImportServerError, "failed on the server", min_status=500),
    _ErrorRule(
        MilvusImportJobLimitError,
        "was refused: the server's limit of import jobs running or pending is reached. Wait for running "
        "imports to end, import many files in one job instead of one job per file, or raise the "
        "server's limit (Milvus: dataCoord.import.maxImportJobNum)",
        texts=(_JOB_LIMIT_TEXT,),
        only_codes=frozenset(_IMPORT_FAILED_CODES),
    ),
    _ErrorRule(
        MilvusImportNotFoundError,
        "failed: job not found",
        texts=("does not exist", "not found"),
        only_codes=frozenset(_IMPORT_FAILED_CODES),
        what_for_job="not found",
    ),
    _ErrorRule(
        MilvusImportNotFoundError,
        "failed: job not found",
        texts=("parse job id failed",),
        only_codes=frozenset({2100}),
        what_for_job="not found",
    ),
    # Milvus 3.x: code 1100 (invalid parameter); the job id is not one the server can read.
    _ErrorRule(
        MilvusImportRequestError,
        "was refused: the server cannot read the job id (self-hosted Milvus ids are numbers)",
        texts=("parse job id failed", "expected=int64 jobid"),
    ),
    _ErrorRule(
        MilvusImportNotFoundError,
        "failed: not found",
        codes=_NOT_FOUND_CODES,
        texts=("collection not found", "database not found"),
    ),
    _ErrorRule(
        MilvusImportRouteNotFoundError,
        "failed: the server has no such route (is Host the REST endpoint of Milvus 2.4+ or Zilliz Cloud?)",
        statuses=frozenset({404}),
        only_codes=frozenset({None}),
    ),
)


def _mapped_error(
    request: ApiRequest,
    detail: str,
    *,
    code: int | None,
    http_status: int,
    message: str = "",
    retry_after: float | None,
) -> MilvusImportError:
    """The error of an answer by :data:`_ERROR_RULES` (no row: the server rejected the request)."""
    text = message.lower()
    rule = next((rule for rule in _ERROR_RULES if rule.matches(code, http_status, text)), None)
    if rule is None:
        return request.error(
            MilvusImportRequestError, "rejected by the server", detail, code=code, http_status=http_status
        )
    what = rule.what_for_job if request.job_id and rule.what_for_job else rule.what
    if rule.error is MilvusImportRateLimitError:
        if retry_after is not None:
            what += f" (the server asks to retry after {retry_after:g} s)"
        return request.error(
            rule.error, what, detail, code=code, http_status=http_status, retry_after=retry_after
        )
    return request.error(rule.error, what, detail, code=code, http_status=http_status)


def _status_error(
    request: ApiRequest, http_status: int, body: bytes, retry_after: float | None
) -> MilvusImportError:
    """An HTTP error status whose body is not a JSON envelope: mapped by the status alone."""
    detail = f"HTTP {http_status}: {_snippet(request, body)}"
    return _mapped_error(request, detail, code=None, http_status=http_status, retry_after=retry_after)


def _redirect_detail(request: ApiRequest, status: int, headers: Headers, body: bytes) -> str:
    location = _header(headers, "Location")
    if not location:
        return f"HTTP {status}: {_snippet(request, body)}"
    try:
        parts = urlsplit(location)
        clean = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        clean = "(unreadable Location)"
    return request.redact(f"HTTP {status} to {clean}")


def _unreadable(
    request: ApiRequest, detail: str, *, http_status: int, code: int | None = None
) -> MilvusImportError:
    return request.error(
        MilvusImportResponseError, "got an unreadable answer", detail, code=code, http_status=http_status
    )


def parse_response(
    request: ApiRequest,
    status_code: int,
    headers: Headers,
    body: bytes,
    *,
    max_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
) -> dict[str, Any]:
    """
    The ``data`` of a success envelope, or the mapped exception.

    Success is ``{"code": 0, "data": {...}}`` (``code: 200`` with data or no message on early Milvus 2.4;
    with only a message, 200 is "partition not found"); ``data`` may be missing
    (``commit`` / ``abort``), giving ``{}``. Errors come as a non-zero ``code`` (mostly with HTTP 200) or
    as an HTTP status; a body that is not a JSON object with a ``code`` is unreadable.

    :param max_bytes: refuse a body longer than this (the transport should stop reading there too).
    :raises MilvusImportError: the subclass for what went wrong; the message names the endpoint and the
        job or collection and never contains a credential.
    """
    retry_after = retry_after_seconds(headers)
    if max_bytes is not None and len(body) > max_bytes:
        raise request.error(
            MilvusImportResponseError,
            "got an answer too large to read",
            f"HTTP {status_code}: more than {max_bytes} bytes",
            http_status=status_code,
        )
    envelope: Any = None
    if body.strip():
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            envelope = None
    if 300 <= status_code < 400:
        raise request.error(
            MilvusImportResponseError,
            "was redirected (set Host to the URL the server redirects to)",
            _redirect_detail(request, status_code, headers, body),
            http_status=status_code,
        )
    if not isinstance(envelope, dict) or "code" not in envelope:
        if status_code != 200:
            raise _status_error(request, status_code, body, retry_after)
        if envelope is None:
            kind = "an HTML page" if body.lstrip()[:1] == b"<" else "a body that is not JSON"
            if not body.strip():
                kind = "an empty body"
            raise _unreadable(request, f"HTTP 200 with {kind}: {_snippet(request, body)}", http_status=200)
        raise _unreadable(
            request, f"HTTP 200 with JSON that has no 'code': {_snippet(request, body)}", http_status=200
        )
    raw_code = envelope.get("code")
    try:
        if isinstance(raw_code, bool):
            raise ValueError
        code = int(str(raw_code))
    except (TypeError, ValueError):
        raise _unreadable(
            request,
            f"HTTP {status_code} with a non-numeric code {str(raw_code)[:40]!r}",
            http_status=status_code,
        ) from None
    if status_code == 200 and (code == 0 or (code == 200 and _is_legacy_success(envelope))):
        data = envelope.get("data")
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise _unreadable(
                request, f"'data' is a {type(data).__name__}, not an object", code=code, http_status=200
            )
        return data
    message = envelope.get("message")
    if not isinstance(message, str):
        message = "" if message is None else str(message)
    message = _SPACE.sub(" ", message).strip()[:500]
    if code == 0 or (code == 200 and status_code != 200):
        # A success code with an HTTP error status: trust the status.
        raise _status_error(request, status_code, message.encode(), retry_after)
    raise _mapped_error(
        request,
        _code_detail(code, message, status_code),
        code=code,
        http_status=status_code,
        message=message,
        retry_after=retry_after,
    )


_SUCCESS_MESSAGES: Final = frozenset({"", "success", "ok"})


def _is_legacy_success(envelope: Mapping[str, Any]) -> bool:
    """
    Whether a ``code: 200`` envelope is early Milvus 2.4's (and Zilliz v1's) success.

    200 is also Milvus' ``ErrPartitionNotFound``: an answer with data, or without a message, is a success;
    ``{"code": 200, "message": "partition not found[...]"}`` is the error.
    """
    if "data" in envelope:
        return True
    message = envelope.get("message")
    return message is None or (isinstance(message, str) and message.strip().lower() in _SUCCESS_MESSAGES)


def connection_error(request: ApiRequest, reason: str, *, request_sent: bool) -> MilvusImportConnectionError:
    """
    The error for a transport failure (no HTTP answer).

    :param reason: what happened, e.g. ``"connection refused"``, ``"no answer within 30 s"``.
    :param request_sent: False when no connection was made (then even ``create`` may be retried).
    """
    cls = MilvusImportConnectionError if request_sent else MilvusImportConnectError
    return request.error(cls, "could not reach the server", reason)


def is_retryable(request: ApiRequest, error: BaseException) -> bool:
    """
    Whether to retry ``request`` after ``error``: transient errors only, and for a non-idempotent request
    (``create``) only where the server cannot have started anything (no connection, 429, 503, the job-count
    back-pressure, which Milvus checks before recording a job, or a code that says the request was refused
    before any work).
    """
    if not isinstance(error, MilvusImportError) or not error.transient:
        return False
    if request.idempotent:
        return True
    if isinstance(error, (MilvusImportConnectError, MilvusImportRateLimitError, MilvusImportJobLimitError)):
        return True
    if error.http_status == 503:
        return True
    return error.code is not None and error.code in _UNAVAILABLE_CODES | _RATE_LIMIT_CODES


def parse_create_response(request: ApiRequest, data: Mapping[str, Any]) -> str:
    """The new job's id from a ``create`` answer (``jobId`` or ``jobID``, number or string)."""
    for key in ("jobId", "jobID", "job_id"):
        job_id = parse_job_id(data.get(key))
        if job_id is not None:
            return job_id
    raise _unreadable(request, "the answer has no job id (jobId)", code=0, http_status=200)
