"""
The wire format of the Milvus / Zilliz Cloud bulk-import REST API, with no I/O (a "sans-I/O" core).

This module is the one place that knows routes, request bodies, headers, the success and error envelopes
and how failures map to the exceptions of :mod:`airflow_milvus_import.exceptions`. The hook adds only the
transport (``requests`` / ``httpx``), retries and authentication on top; both its sync and async paths
build their requests and read their answers here. See ``docs/milvus-import-api.md`` for the behaviour
of real servers this follows.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

from airflow_milvus_import import __version__
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
from airflow_milvus_import.models import ImportJobSummary, parse_job_id

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_ZILLIZ_RATE_LIMIT",
    "PROGRESS_ROUTES",
    "ROUTE_PREFIX",
    "USER_AGENT",
    "ApiRequest",
    "ConnectionSettings",
    "ListPager",
    "build_abort_request",
    "build_commit_request",
    "build_create_request",
    "build_headers",
    "build_list_request",
    "build_progress_request",
    "connection_error",
    "is_last_list_page",
    "normalize_files",
    "normalize_job_id",
    "normalize_options",
    "parse_create_response",
    "parse_list_page",
    "parse_response",
    "progress_routes",
    "retry_after_seconds",
    "settings_from_connection",
]

#: seconds a request may take (connect, and then read) unless the connection or the hook says otherwise
DEFAULT_TIMEOUT: Final = 30.0
#: retries after the first attempt, for transient failures only
DEFAULT_MAX_RETRIES: Final = 3
#: answers larger than this are refused (a list of tens of thousands of jobs stays well below it)
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
#: Zilliz Cloud's largest page for ``list``
ZILLIZ_PAGE_SIZE: Final = 100
#: requests per second to one Zilliz Cloud endpoint unless the connection says otherwise (the documented
#: limit is 20 per user per endpoint: half of it leaves room for other clients of the same API key)
DEFAULT_ZILLIZ_RATE_LIMIT: Final = 10.0

ROUTE_PREFIX: Final = "/v2/vectordb/jobs/import/"
USER_AGENT: Final = f"airflow-milvus-import/{__version__}"

ROUTE_CREATE: Final = "create"
ROUTE_LIST: Final = "list"
ROUTE_DESCRIBE: Final = "describe"
ROUTE_GET_PROGRESS: Final = "get_progress"
ROUTE_GET_PROGRESS_CAMEL: Final = "getProgress"
ROUTE_COMMIT: Final = "commit"
ROUTE_ABORT: Final = "abort"
#: every route that answers with a job's progress, in no particular order
PROGRESS_ROUTES: Final = (ROUTE_DESCRIBE, ROUTE_GET_PROGRESS, ROUTE_GET_PROGRESS_CAMEL)

_EXTRA_PREFIX: Final = "extra__milvus_import__"
_ZILLIZ_HOST_SUFFIXES: Final = (".zilliz.com", ".zilliz.com.cn", ".zillizcloud.com")
_STORAGE_CREDENTIAL_KEYS: Final = {
    "access_key": "accessKey",
    "accessKey": "accessKey",
    "secret_key": "secretKey",
    "secretKey": "secretKey",
    "token": "token",
    "session_token": "token",
}
_TRUE_WORDS: Final = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS: Final = frozenset({"false", "no", "off", "0"})


# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSettings:
    """
    Everything a request needs from an Airflow connection; the token never shows in ``repr`` / ``str``.

    :param base_url: ``scheme://host[:port][/prefix]`` with no trailing slash and no credentials.
    :param token: the Bearer token (API key, token or ``user:password``), or None when auth is off.
    :param cluster_id: the Zilliz Cloud cluster id; set means Zilliz Cloud, None means self-hosted Milvus.
    :param db_name: the database used when a call names none (None: the server's ``default``).
    :param timeout: seconds for connecting and, separately, for reading an answer.
    :param verify: TLS verification: True, False or the path of a CA bundle.
    :param max_retries: retries after the first attempt, for transient failures only.
    :param conn_id: the Airflow connection id the settings came from (for messages).
    :param max_response_bytes: answers larger than this are refused.
    :param rate_limit: requests per second to this endpoint, shared by every caller in the process (see
        :attr:`requests_per_second`): None means the deployment's default (10 on Zilliz Cloud, no limit on
        self-hosted Milvus), 0 means no limit.
    :param console_link: a URL template for a job's page in a console (e.g. Attu); for later use.
    """

    base_url: str
    token: str | None = field(default=None, repr=False, compare=False)
    cluster_id: str | None = None
    db_name: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    max_retries: int = DEFAULT_MAX_RETRIES
    conn_id: str | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    rate_limit: float | None = None
    console_link: str | None = None

    @property
    def is_zilliz(self) -> bool:
        """Whether this is Zilliz Cloud (a cluster id is set) rather than self-hosted Milvus."""
        return bool(self.cluster_id)

    @property
    def requests_per_second(self) -> float | None:
        """The rate budget of this endpoint in requests per second; None: unlimited."""
        if self.rate_limit is None:
            return DEFAULT_ZILLIZ_RATE_LIMIT if self.is_zilliz else None
        return self.rate_limit if self.rate_limit > 0 else None

    @property
    def deployment(self) -> str:
        """``"Zilliz Cloud"`` or ``"Milvus"``."""
        return "Zilliz Cloud" if self.is_zilliz else "Milvus"

    def url(self, route: str) -> str:
        """The full URL of an import route."""
        return f"{self.base_url}{ROUTE_PREFIX}{route}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown (the token and, for ``user:password``, the password)."""
        if not self.token:
            return ()
        values = [self.token]
        if ":" in self.token:
            password = self.token.split(":", 1)[1]
            if password:
                values.append(password)
        return tuple(values)


def _bad_connection(conn_id: str | None, problem: str) -> MilvusImportRequestError:
    name = f"'{conn_id}'" if conn_id else "(unnamed)"
    return MilvusImportRequestError(f"Milvus import connection {name}: {problem}")


def _extra_value(extra: Mapping[str, Any], key: str) -> Any:
    """An extra by its plain name, or by the ``extra__milvus_import__`` name older forms stored."""
    value = extra.get(key)
    if value is None or value == "":
        value = extra.get(f"{_EXTRA_PREFIX}{key}")
    return None if value == "" else value


def _optional_text(conn_id: str | None, extra: Mapping[str, Any], key: str) -> str | None:
    value = _extra_value(extra, key)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _bad_connection(conn_id, f"extra '{key}' must be text, got {type(value).__name__}")
    text = str(value).strip()
    return text or None


def _positive_number(conn_id: str | None, key: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise _bad_connection(conn_id, f"'{key}' must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise _bad_connection(conn_id, f"'{key}' must be a positive number of seconds, got {value!r}")
    return number


_UNLIMITED_WORDS: Final = frozenset({"none", "null", "unlimited", "off", "no"})


def _rate_limit(conn_id: str | None, value: Any) -> float:
    """Requests per second, or 0.0 for explicitly unlimited (``0``, ``"none"``, ``"unlimited"``)."""
    if isinstance(value, str) and value.strip().lower() in _UNLIMITED_WORDS:
        return 0.0
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise _bad_connection(
            conn_id,
            f"extra 'rate_limit' must be a number of requests per second (0 or \"none\": no limit), "
            f"got {value!r}",
        )
    return number


def _non_negative_int(conn_id: str | None, key: str, value: Any) -> int:
    text = str(value).strip() if not isinstance(value, bool) else ""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not re.fullmatch(r"\d+", text):
        raise _bad_connection(conn_id, f"'{key}' must be a whole number >= 0, got {value!r}")
    return int(text)


def _verify(conn_id: str | None, value: Any) -> bool | str:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip()
        if word.lower() in _TRUE_WORDS:
            return True
        if word.lower() in _FALSE_WORDS:
            return False
        if word:
            return word  # the path of a CA bundle
    raise _bad_connection(conn_id, f"extra 'verify' must be true, false or a CA bundle path, got {value!r}")


def _header_safe(text: str) -> bool:
    """Whether ``text`` can go into an HTTP header as is: printable ASCII (and spaces) only."""
    return text.isascii() and not any(ord(char) < 32 or ord(char) == 127 for char in text)


def _check_token(conn_id: str | None, token: str) -> None:
    # A control character would break (or inject) an HTTP header; the value itself is never echoed.
    if any(ord(char) < 32 or ord(char) == 127 for char in token):
        raise _bad_connection(conn_id, "Password/token contains a line break or control character")
    if not token.isascii():
        raise _bad_connection(
            conn_id,
            "Password/token contains a character outside ASCII (a dash or quote pasted from a document?); "
            "API keys and tokens are plain ASCII",
        )
    if token != token.strip():
        raise _bad_connection(conn_id, "Password/token starts or ends with whitespace")


def _base_url(conn_id: str | None, host: str | None, port: int | None, schema: str | None) -> str:
    raw = (host or "").strip()
    if not raw:
        raise _bad_connection(
            conn_id,
            "Host is empty: set it to the endpoint URL, e.g. http://localhost:19530 or "
            "https://api.cloud.zilliz.com",
        )
    if port in (0, None):
        port = None
    elif not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise _bad_connection(conn_id, f"Port must be a number between 1 and 65535, got {port!r}")
    if "://" not in raw:
        bare_host = raw.split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].lower()
        secure = (
            port == 443 or raw.split("/", 1)[0].endswith(":443") or bare_host.endswith(_ZILLIZ_HOST_SUFFIXES)
        )
        raw = f"{'https' if secure else 'http'}://{raw}"
    try:
        parts = urlsplit(raw)
        host_port = parts.port
    except ValueError:
        raise _bad_connection(
            conn_id, "Host is not a valid URL (expected http(s)://host[:port][/path])"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _bad_connection(conn_id, f"Host must be an http:// or https:// URL, not {parts.scheme}://")
    if parts.username is not None or parts.password is not None:
        raise _bad_connection(
            conn_id, "Host must not carry credentials: put the token or API key in the Password field"
        )
    if not parts.hostname or any(char.isspace() for char in raw):
        raise _bad_connection(conn_id, "Host is not a valid URL (expected http(s)://host[:port][/path])")
    if parts.query or parts.fragment:
        raise _bad_connection(conn_id, "Host must not have a query (?...) or fragment (#...)")
    if host_port is not None and port is not None and host_port != port:
        raise _bad_connection(conn_id, f"Host says port {host_port} but the Port field says {port}")
    effective_port = host_port if host_port is not None else port
    if (parts.scheme.lower(), effective_port) in (("https", 443), ("http", 80)):
        effective_port = None  # the scheme's default: keep URLs in messages short
    hostname = parts.hostname
    if ":" in hostname:
        hostname = f"[{hostname}]"
    netloc = hostname if effective_port is None else f"{hostname}:{effective_port}"
    path = parts.path.strip("/")
    prefix = (schema or "").strip().strip("/")
    segments = [segment for segment in (path, prefix) if segment]
    suffix = "".join(f"/{segment}" for segment in segments)
    if suffix.rstrip("/").endswith(ROUTE_PREFIX.rstrip("/")):
        raise _bad_connection(
            conn_id, f"Host should be the server's root URL, without {ROUTE_PREFIX.rstrip('/')}"
        )
    return f"{parts.scheme.lower()}://{netloc}{suffix}"


def settings_from_connection(
    conn_id: str | None,
    host: str | None,
    port: int | None = None,
    schema: str | None = None,
    login: str | None = None,
    password: str | None = None,
    extra: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> ConnectionSettings:
    """
    Read an Airflow connection's fields into :class:`ConnectionSettings`.

    :param conn_id: the connection id, named in every error about the connection.
    :param host: the endpoint URL (``http://localhost:19530``, ``https://api.cloud.zilliz.com``); may carry
        the port and a path prefix. Without a scheme, ``https`` is assumed for port 443 and Zilliz Cloud
        hosts, ``http`` otherwise.
    :param port: the endpoint's port (0 or None: from Host, or the scheme's default).
    :param schema: an optional path prefix appended to Host (what a URI's path becomes).
    :param login: user name on self-hosted Milvus; with ``password`` it forms the ``user:password`` token.
    :param password: the API key or token (or the password, with ``login``).
    :param extra: the connection's extras: ``cluster_id``, ``db_name``, ``timeout``, ``verify``,
        ``max_retries``, ``max_response_bytes``, ``rate_limit``, ``console_link``.
    :param timeout: overrides the extra ``timeout`` when not None.
    :param max_retries: overrides the extra ``max_retries`` when not None.
    :raises MilvusImportRequestError: a malformed Host / Port / extra, naming the connection id.
    """
    extra = extra or {}
    if not isinstance(extra, Mapping):
        raise _bad_connection(conn_id, "Extra must be a JSON object")
    base_url = _base_url(conn_id, host, port, schema)

    login = (login or "").strip() or None
    secret = password if password else None
    if login and secret is None:
        raise _bad_connection(
            conn_id, f"Login {login!r} is set but Password is empty (both are needed for user:password)"
        )
    token = f"{login}:{secret}" if login and secret is not None else secret
    if token is not None:
        _check_token(conn_id, token)

    if timeout is None and _extra_value(extra, "timeout") is not None:
        timeout = _positive_number(conn_id, "timeout", _extra_value(extra, "timeout"))
    elif timeout is not None:
        timeout = _positive_number(conn_id, "timeout", timeout)
    if max_retries is None and _extra_value(extra, "max_retries") is not None:
        max_retries = _non_negative_int(conn_id, "max_retries", _extra_value(extra, "max_retries"))
    elif max_retries is not None:
        max_retries = _non_negative_int(conn_id, "max_retries", max_retries)
    max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES
    if _extra_value(extra, "max_response_bytes") is not None:
        max_response_bytes = _non_negative_int(
            conn_id, "max_response_bytes", _extra_value(extra, "max_response_bytes")
        )
    rate_limit = None
    if _extra_value(extra, "rate_limit") is not None:
        rate_limit = _rate_limit(conn_id, _extra_value(extra, "rate_limit"))

    db_name = _optional_text(conn_id, extra, "db_name")
    if db_name is not None and not _header_safe(db_name):
        raise _bad_connection(
            conn_id, f"extra 'db_name' {db_name!r} has characters an HTTP header cannot carry (ASCII only)"
        )

    return ConnectionSettings(
        base_url=base_url,
        token=token,
        cluster_id=_optional_text(conn_id, extra, "cluster_id"),
        db_name=db_name,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        verify=_verify(conn_id, _extra_value(extra, "verify")),
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        conn_id=conn_id,
        max_response_bytes=max_response_bytes,
        rate_limit=rate_limit,
        console_link=_optional_text(conn_id, extra, "console_link"),
    )


# ---------------------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """
    One request, ready for any transport: POST ``body`` as JSON to ``url`` with ``headers``.

    ``headers`` and ``body`` may carry credentials (the Bearer token, storage keys) and are left out of
    ``repr``; ``label`` names the endpoint and the job or collection for messages and logs.

    :param idempotent: whether sending it twice is harmless (false for ``create``: a retry after the
        request reached the server could start a second import).
    """

    route: str
    url: str
    headers: Mapping[str, str] = field(repr=False, compare=False)
    body: Mapping[str, Any] = field(repr=False, compare=False)
    job_id: str | None = None
    collection_name: str | None = None
    idempotent: bool = True
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)
    method: str = "POST"

    @property
    def endpoint(self) -> str:
        """``POST http://host:19530/v2/vectordb/jobs/import/describe`` (never with credentials)."""
        return f"{self.method} {self.url}"

    @property
    def subject(self) -> str:
        """What the request is about: ``Milvus import job 123``, ``... into collection 'x'``..."""
        if self.job_id:
            return f"Milvus import job {self.job_id}"
        if self.route == ROUTE_CREATE:
            return f"Milvus import into collection '{self.collection_name or ''}'"
        if self.collection_name:
            return f"Milvus import jobs of collection '{self.collection_name}'"
        return "Milvus import jobs"

    @property
    def label(self) -> str:
        """``Milvus import job 123 (POST http://...)``: for log lines."""
        return f"{self.subject} ({self.endpoint})"

    def content(self) -> bytes:
        """The body as UTF-8 JSON bytes."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def redact(self, text: str) -> str:
        """``text`` with every credential this request carries replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text


def build_headers(settings: ConnectionSettings, *, db_name: str | None = None) -> dict[str, str]:
    """
    The headers of every request.

    ``Request-Timeout`` asks the server to give up (HTTP 408) a second before the client would, so a slow
    server answers with a clear timeout instead of a dropped read.
    """
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Request-Timeout": str(max(1, math.ceil(settings.timeout) - 1)),
    }
    if settings.token:
        headers["Authorization"] = f"Bearer {settings.token}"
    database = db_name or settings.db_name
    if database:
        headers["DB-Name"] = database
    return headers


def normalize_job_id(job_id: Any) -> str:
    """
    A job id as the JSON string the servers want (a number fails on Milvus with code 1801).

    :raises MilvusImportRequestError: None, empty, or not a string / integer.
    """
    if isinstance(job_id, str) and job_id.strip():
        return job_id.strip()
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        return str(job_id)
    if job_id is None or (isinstance(job_id, str) and not job_id.strip()):
        raise MilvusImportRequestError(
            "Milvus import job id is empty: pass the id that create returned", job_id=None
        )
    raise MilvusImportRequestError(
        f"Milvus import job id must be a string, got {type(job_id).__name__} {job_id!r}"
    )


def _text_arg(name: str, value: Any, *, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MilvusImportRequestError(f"Milvus import: {name} is empty")
        return None
    if not isinstance(value, str):
        raise MilvusImportRequestError(
            f"Milvus import: {name} must be a string, got {type(value).__name__} {value!r}"
        )
    return value.strip()


def normalize_files(
    files: Any, *, argument: str = "files", collection_name: str | None = None
) -> list[list[str]]:
    """
    ``files`` as the list of lists the servers want.

    Accepts a list of lists (each inner list is one file, or the column files of one set) and a flat list
    of paths (one file each), as ``BulkWriter.batch_files`` and users write them.

    :raises MilvusImportRequestError: not a list, empty, nested deeper, or an entry that is not a path.
    """
    where = f"Milvus import into collection '{collection_name}'" if collection_name else "Milvus import"
    if isinstance(files, (str, bytes)) or not isinstance(files, Sequence):
        raise MilvusImportRequestError(
            f"{where}: {argument} must be a list of paths or a list of lists of paths, "
            f"got {type(files).__name__}",
            collection_name=collection_name,
        )
    if not files:
        raise MilvusImportRequestError(
            f"{where}: {argument} is empty: nothing to import", collection_name=collection_name
        )
    groups: list[list[str]] = []
    for position, entry in enumerate(files):
        if isinstance(entry, str):
            group: Sequence[Any] = [entry]
        elif isinstance(entry, Sequence) and not isinstance(entry, bytes):
            group = entry
        else:
            raise MilvusImportRequestError(
                f"{where}: {argument}[{position}] must be a path or a list of paths, "
                f"got {type(entry).__name__}",
                collection_name=collection_name,
            )
        if not group:
            raise MilvusImportRequestError(
                f"{where}: {argument}[{position}] is an empty list", collection_name=collection_name
            )
        paths: list[str] = []
        for item in group:
            if not isinstance(item, str) or not item.strip():
                raise MilvusImportRequestError(
                    f"{where}: {argument}[{position}] must hold non-empty path strings, got {item!r}",
                    collection_name=collection_name,
                )
            paths.append(item.strip())
        groups.append(paths)
    return groups


def _option_value(key: str, value: Any, collection_name: str | None) -> str:
    where = f"Milvus import into collection '{collection_name}'" if collection_name else "Milvus import"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MilvusImportRequestError(
                f"{where}: option {key!r} must be a finite number, got {value!r}",
                collection_name=collection_name,
            )
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    kind = "None" if value is None else type(value).__name__
    raise MilvusImportRequestError(
        f"{where}: option {key!r} must be a string, number or boolean, got {kind}"
        + (" (leave the option out instead)" if value is None else ""),
        collection_name=collection_name,
    )


def normalize_options(
    options: Mapping[str, Any] | None, *, collection_name: str | None = None
) -> dict[str, str]:
    """
    Options as the ``{str: str}`` the servers want: numbers become digits, booleans ``"true"``/``"false"``.

    :raises MilvusImportRequestError: not a mapping, a key that is not a string, a nested or None value.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise MilvusImportRequestError(
            f"Milvus import: options must be a mapping of names to strings, got {type(options).__name__}",
            collection_name=collection_name,
        )
    normalized: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key.strip():
            raise MilvusImportRequestError(
                f"Milvus import: option names must be non-empty strings, got {key!r}",
                collection_name=collection_name,
            )
        normalized[key.strip()] = _option_value(key, value, collection_name)
    return normalized


def _storage_credentials(credentials: Mapping[str, Any] | None) -> dict[str, str]:
    if not credentials:
        return {}
    if not isinstance(credentials, Mapping):
        raise MilvusImportRequestError("Milvus import: storage_credentials must be a mapping")
    body: dict[str, str] = {}
    for key, value in credentials.items():
        wire_key = _STORAGE_CREDENTIAL_KEYS.get(key)
        if wire_key is None:
            allowed = ", ".join(sorted({"access_key", "secret_key", "token"}))
            raise MilvusImportRequestError(
                f"Milvus import: unknown storage credential {key!r} (expected {allowed})"
            )
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise MilvusImportRequestError(f"Milvus import: storage credential {key!r} must be a string")
        body[wire_key] = value
    return body


def _request(
    settings: ConnectionSettings,
    route: str,
    body: dict[str, Any],
    *,
    db_name: str | None = None,
    job_id: str | None = None,
    collection_name: str | None = None,
    idempotent: bool = True,
    extra_secrets: Iterable[str] = (),
) -> ApiRequest:
    if settings.cluster_id:
        body["clusterId"] = settings.cluster_id
    database = db_name or settings.db_name
    if database:
        body["dbName"] = database
    header_safe = not database or _header_safe(database)
    request = ApiRequest(
        route=route,
        url=settings.url(route),
        headers=build_headers(settings, db_name=database) if header_safe else {},
        body=body,
        job_id=job_id,
        collection_name=collection_name,
        idempotent=idempotent,
        secrets=(*settings.secrets, *(secret for secret in extra_secrets if secret)),
    )
    if not header_safe:
        raise _error(
            MilvusImportRequestError,
            request,
            "was not sent",
            f"db_name {database!r} has characters an HTTP header (DB-Name) cannot carry (ASCII only)",
        )
    return request


def build_create_request(
    settings: ConnectionSettings,
    collection_name: str,
    files: Any = None,
    *,
    db_name: str | None = None,
    partition_name: str | None = None,
    options: Mapping[str, Any] | None = None,
    object_urls: Any = None,
    storage_credentials: Mapping[str, Any] | None = None,
    volume_name: str | None = None,
) -> ApiRequest:
    """
    ``create``: start an import job.

    On Milvus the data is ``files`` (paths in Milvus' bucket); on Zilliz Cloud ``files`` or
    ``object_urls`` are sent as ``objectUrls``, with ``storage_credentials`` (``access_key``,
    ``secret_key``, ``token``) when the bucket needs them. With ``volume_name`` (Zilliz Cloud), ``files``
    are paths inside that volume, sent as ``dataPaths`` with ``volumeName`` and no credentials.

    :raises MilvusImportRequestError: invalid arguments, before anything is sent.
    """
    collection = _text_arg("collection_name", collection_name, required=True)
    assert collection is not None
    database = _text_arg("db_name", db_name, required=False)
    partition = _text_arg("partition_name", partition_name, required=False)
    volume = _text_arg("volume_name", volume_name, required=False)
    if volume is not None:
        return _volume_create_request(
            settings,
            collection,
            volume,
            files if files is not None else object_urls,
            db_name=database,
            partition_name=partition,
            options=options,
            object_urls_given=object_urls is not None,
            credentials_given=bool(_storage_credentials(storage_credentials)),
        )
    if files is not None and object_urls is not None:
        raise MilvusImportRequestError(
            f"Milvus import into collection '{collection}': pass files or object_urls, not both",
            collection_name=collection,
        )
    if files is None and object_urls is None:
        raise MilvusImportRequestError(
            f"Milvus import into collection '{collection}': files is missing: nothing to import",
            collection_name=collection,
        )
    argument = "files" if files is not None else "object_urls"
    groups = normalize_files(
        files if files is not None else object_urls, argument=argument, collection_name=collection
    )
    credentials = _storage_credentials(storage_credentials)
    body: dict[str, Any] = {"collectionName": collection}
    if settings.is_zilliz:
        body["objectUrls"] = groups
        body.update(credentials)
    else:
        if credentials:
            raise MilvusImportRequestError(
                f"Milvus import into collection '{collection}': storage_credentials are for Zilliz Cloud; "
                "self-hosted Milvus reads files from its own configured bucket",
                collection_name=collection,
            )
        body["files"] = groups
    if partition:
        body["partitionName"] = partition
    normalized_options = normalize_options(options, collection_name=collection)
    if normalized_options:
        body["options"] = normalized_options
    return _request(
        settings,
        ROUTE_CREATE,
        body,
        db_name=database,
        collection_name=collection,
        idempotent=False,
        extra_secrets=credentials.values(),
    )


def _volume_create_request(
    settings: ConnectionSettings,
    collection: str,
    volume: str,
    files: Any,
    *,
    db_name: str | None,
    partition_name: str | None,
    options: Mapping[str, Any] | None,
    object_urls_given: bool,
    credentials_given: bool,
) -> ApiRequest:
    """``create`` from a Zilliz Cloud volume: ``volumeName`` + ``dataPaths``, no storage credentials."""
    where = f"Milvus import into collection '{collection}' from volume '{volume}'"
    if not settings.is_zilliz:
        raise MilvusImportRequestError(
            f"{where}: volume_name is for Zilliz Cloud volumes (the connection has no cluster_id); "
            "self-hosted Milvus reads files from its own bucket",
            collection_name=collection,
        )
    if object_urls_given:
        raise MilvusImportRequestError(
            f"{where}: with volume_name give files (paths inside the volume), not object_urls",
            collection_name=collection,
        )
    if credentials_given:
        raise MilvusImportRequestError(
            f"{where}: a volume needs no storage_credentials (Zilliz Cloud manages its storage)",
            collection_name=collection,
        )
    if files is None:
        raise MilvusImportRequestError(
            f"{where}: files is missing: give the paths inside the volume to import",
            collection_name=collection,
        )
    groups = normalize_files(files, argument="files", collection_name=collection)
    for position, group in enumerate(groups):
        for path in group:
            if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
                raise MilvusImportRequestError(
                    f"{where}: files[{position}] {path!r} is a URL; with volume_name, files are paths "
                    "inside the volume (e.g. 'folder/1.parquet')",
                    collection_name=collection,
                )
    body: dict[str, Any] = {"collectionName": collection, "volumeName": volume, "dataPaths": groups}
    if partition_name:
        body["partitionName"] = partition_name
    normalized_options = normalize_options(options, collection_name=collection)
    if normalized_options:
        body["options"] = normalized_options
    return _request(
        settings, ROUTE_CREATE, body, db_name=db_name, collection_name=collection, idempotent=False
    )


def build_list_request(
    settings: ConnectionSettings,
    collection_name: str | None = None,
    *,
    db_name: str | None = None,
    page: int | None = None,
    page_size: int | None = None,
) -> ApiRequest:
    """``list``: jobs, optionally of one collection; ``page`` (from 1) and ``page_size`` on Zilliz Cloud."""
    collection = _text_arg("collection_name", collection_name, required=False)
    database = _text_arg("db_name", db_name, required=False)
    body: dict[str, Any] = {}
    if collection:
        body["collectionName"] = collection
    if settings.is_zilliz:
        body["pageSize"] = page_size or ZILLIZ_PAGE_SIZE
        body["currentPage"] = page or 1
    return _request(settings, ROUTE_LIST, body, db_name=database, collection_name=collection)


def build_progress_request(
    settings: ConnectionSettings, job_id: Any, *, route: str = ROUTE_DESCRIBE, db_name: str | None = None
) -> ApiRequest:
    """``describe`` / ``get_progress`` / ``getProgress`` of one job (the id always sent as a string)."""
    if route not in PROGRESS_ROUTES:
        raise ValueError(f"not a progress route: {route!r}")
    normalized = normalize_job_id(job_id)
    database = _text_arg("db_name", db_name, required=False)
    return _request(settings, route, {"jobId": normalized}, db_name=database, job_id=normalized)


def build_commit_request(
    settings: ConnectionSettings, job_id: Any, *, db_name: str | None = None
) -> ApiRequest:
    """``commit`` a two-phase job (created with ``options.auto_commit = "false"``; newest Milvus only)."""
    normalized = normalize_job_id(job_id)
    database = _text_arg("db_name", db_name, required=False)
    return _request(settings, ROUTE_COMMIT, {"jobId": normalized}, db_name=database, job_id=normalized)


def build_abort_request(
    settings: ConnectionSettings, job_id: Any, *, db_name: str | None = None
) -> ApiRequest:
    """``abort`` a two-phase job (newest Milvus only)."""
    normalized = normalize_job_id(job_id)
    database = _text_arg("db_name", db_name, required=False)
    return _request(settings, ROUTE_ABORT, {"jobId": normalized}, db_name=database, job_id=normalized)


def progress_routes(settings: ConnectionSettings) -> tuple[str, ...]:
    """The progress routes to try, in order: ``describe`` first, then the older / documented names."""
    if settings.is_zilliz:
        return (ROUTE_DESCRIBE, ROUTE_GET_PROGRESS_CAMEL, ROUTE_GET_PROGRESS)
    return (ROUTE_DESCRIBE, ROUTE_GET_PROGRESS)


# ---------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None, name: str) -> str | None:
    if headers is None:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, value in items:
        if str(key).lower() == wanted:
            return str(value)
    return None


def retry_after_seconds(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None, *, now: float | None = None
) -> float | None:
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


def _error(
    cls: type[MilvusImportError],
    request: ApiRequest,
    what: str,
    detail: str,
    *,
    code: int | None = None,
    http_status: int | None = None,
    **kwargs: Any,
) -> MilvusImportError:
    message = request.redact(f"{request.subject} {what} ({request.endpoint}): {detail}")
    return cls(
        message,
        endpoint=request.endpoint,
        job_id=request.job_id,
        collection_name=request.collection_name,
        code=code,
        http_status=http_status,
        **kwargs,
    )


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


def _error_for_code(
    request: ApiRequest, code: int, message: str, http_status: int, retry_after: float | None
) -> MilvusImportError:
    detail = _code_detail(code, message, http_status)
    lowered = message.lower()
    if code in _AUTH_CODES or http_status == 401 or "apikey is illegal" in lowered:
        return _error(
            MilvusImportAuthError,
            request,
            "refused: the credentials were not accepted (check the connection's Password / API key)",
            detail,
            code=code,
            http_status=http_status,
        )
    if code in _PERMISSION_CODES or http_status == 403:
        return _error(
            MilvusImportPermissionError,
            request,
            "refused: permission denied (the user needs the Import privilege)",
            detail,
            code=code,
            http_status=http_status,
        )
    if code in _TIMEOUT_CODES or http_status == 408:
        return _error(
            MilvusImportServerTimeoutError,
            request,
            "timed out on the server",
            detail,
            code=code,
            http_status=http_status,
        )
    if code in _RATE_LIMIT_CODES or http_status == 429:
        return _rate_limited(request, detail, retry_after, code=code, http_status=http_status)
    if code in _UNAVAILABLE_CODES or http_status >= 500:
        return _error(
            MilvusImportServerError,
            request,
            "failed on the server" + (" (temporarily unavailable)" if code in _UNAVAILABLE_CODES else ""),
            detail,
            code=code,
            http_status=http_status,
        )
    if code in _IMPORT_FAILED_CODES and _JOB_LIMIT_TEXT in lowered:
        return _error(
            MilvusImportJobLimitError,
            request,
            "was refused: the server's limit of import jobs running or pending is reached. Wait for running "
            "imports to end, import many files in one job instead of one job per file, or raise the "
            "server's limit (Milvus: dataCoord.import.maxImportJobNum)",
            detail,
            code=code,
            http_status=http_status,
        )
    if code in _IMPORT_FAILED_CODES and (
        "does not exist" in lowered
        or "not found" in lowered
        or (code == 2100 and "parse job id failed" in lowered)
    ):
        what = "not found" if request.job_id else "failed: job not found"
        return _error(MilvusImportNotFoundError, request, what, detail, code=code, http_status=http_status)
    if "parse job id failed" in lowered or "expected=int64 jobid" in lowered:
        # Milvus 3.x: code 1100 (invalid parameter); the job id is not one the server can read.
        return _error(
            MilvusImportRequestError,
            request,
            "was refused: the server cannot read the job id (self-hosted Milvus ids are numbers)",
            detail,
            code=code,
            http_status=http_status,
        )
    if code in _NOT_FOUND_CODES or "collection not found" in lowered or "database not found" in lowered:
        return _error(
            MilvusImportNotFoundError,
            request,
            "failed: not found",
            detail,
            code=code,
            http_status=http_status,
        )
    return _error(
        MilvusImportRequestError,
        request,
        "rejected by the server",
        detail,
        code=code,
        http_status=http_status,
    )


def _rate_limited(
    request: ApiRequest, detail: str, retry_after: float | None, *, code: int | None, http_status: int
) -> MilvusImportError:
    what = "rate limited"
    if retry_after is not None:
        what += f" (the server asks to retry after {retry_after:g} s)"
    return _error(
        MilvusImportRateLimitError,
        request,
        what,
        detail,
        code=code,
        http_status=http_status,
        retry_after=retry_after,
    )


def _error_for_status(
    request: ApiRequest, status: int, body: bytes, retry_after: float | None
) -> MilvusImportError:
    """An HTTP error status whose body is not a JSON envelope."""
    detail = f"HTTP {status}: {_snippet(request, body)}"
    if status == 401:
        return _error(
            MilvusImportAuthError,
            request,
            "refused: the credentials were not accepted (check the connection's Password / API key)",
            detail,
            http_status=status,
        )
    if status == 403:
        return _error(
            MilvusImportPermissionError,
            request,
            "refused: permission denied (the user needs the Import privilege)",
            detail,
            http_status=status,
        )
    if status == 404:
        return _error(
            MilvusImportRouteNotFoundError,
            request,
            "failed: the server has no such route (is Host the REST endpoint of Milvus 2.4+ or "
            "Zilliz Cloud?)",
            detail,
            http_status=status,
        )
    if status == 408:
        return _error(
            MilvusImportServerTimeoutError, request, "timed out on the server", detail, http_status=status
        )
    if status == 429:
        return _rate_limited(request, detail, retry_after, code=None, http_status=status)
    if status >= 500:
        return _error(MilvusImportServerError, request, "failed on the server", detail, http_status=status)
    if 300 <= status < 400:
        return _error(
            MilvusImportResponseError,
            request,
            "was redirected (set Host to the URL the server redirects to)",
            detail,
            http_status=status,
        )
    return _error(MilvusImportRequestError, request, "rejected by the server", detail, http_status=status)


def _redirect_detail(request: ApiRequest, status: int, headers: Any, body: bytes) -> str:
    location = _header(headers, "Location")
    if not location:
        return f"HTTP {status}: {_snippet(request, body)}"
    try:
        parts = urlsplit(location)
        clean = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        clean = "(unreadable Location)"
    return request.redact(f"HTTP {status} to {clean}")


def parse_response(
    request: ApiRequest,
    status_code: int,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
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
        return _raise(
            _error(
                MilvusImportResponseError,
                request,
                "got an answer too large to read",
                f"HTTP {status_code}: more than {max_bytes} bytes",
                http_status=status_code,
            )
        )
    envelope: Any = None
    if body.strip():
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            envelope = None
    has_code = isinstance(envelope, dict) and "code" in envelope
    if 300 <= status_code < 400:
        detail = _redirect_detail(request, status_code, headers, body)
        return _raise(
            _error(
                MilvusImportResponseError,
                request,
                "was redirected (set Host to the URL the server redirects to)",
                detail,
                http_status=status_code,
            )
        )
    if not has_code:
        if status_code != 200:
            return _raise(_error_for_status(request, status_code, body, retry_after))
        if envelope is None:
            kind = "an HTML page" if body.lstrip()[:1] == b"<" else "a body that is not JSON"
            if not body.strip():
                kind = "an empty body"
            return _raise(
                _error(
                    MilvusImportResponseError,
                    request,
                    "got an unreadable answer",
                    f"HTTP 200 with {kind}: {_snippet(request, body)}",
                    http_status=200,
                )
            )
        return _raise(
            _error(
                MilvusImportResponseError,
                request,
                "got an unreadable answer",
                f"HTTP 200 with JSON that has no 'code': {_snippet(request, body)}",
                http_status=200,
            )
        )
    assert isinstance(envelope, dict)
    raw_code = envelope.get("code")
    try:
        if isinstance(raw_code, bool):
            raise ValueError
        code = int(str(raw_code))
    except (TypeError, ValueError):
        return _raise(
            _error(
                MilvusImportResponseError,
                request,
                "got an unreadable answer",
                f"HTTP {status_code} with a non-numeric code {str(raw_code)[:40]!r}",
                http_status=status_code,
            )
        )
    if status_code == 200 and (code == 0 or (code == 200 and _is_legacy_success(envelope))):
        data = envelope.get("data")
        if data is None:
            return {}
        if not isinstance(data, dict):
            return _raise(
                _error(
                    MilvusImportResponseError,
                    request,
                    "got an unreadable answer",
                    f"'data' is a {type(data).__name__}, not an object",
                    code=code,
                    http_status=200,
                )
            )
        return data
    message = envelope.get("message")
    if not isinstance(message, str):
        message = "" if message is None else str(message)
    message = _SPACE.sub(" ", message).strip()[:500]
    if code == 0 or (code == 200 and status_code != 200):
        # A success code with an HTTP error status: trust the status.
        return _raise(_error_for_status(request, status_code, message.encode(), retry_after))
    return _raise(_error_for_code(request, code, message, status_code, retry_after))


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


def _raise(error: MilvusImportError) -> dict[str, Any]:
    raise error


def connection_error(request: ApiRequest, reason: str, *, request_sent: bool) -> MilvusImportConnectionError:
    """
    The error for a transport failure (no HTTP answer).

    :param reason: what happened, e.g. ``"connection refused"``, ``"no answer within 30 s"``.
    :param request_sent: False when no connection was made (then even ``create`` may be retried).
    """
    cls = MilvusImportConnectionError if request_sent else MilvusImportConnectError
    message = request.redact(f"{request.subject} could not reach the server ({request.endpoint}): {reason}")
    error = cls(
        message, endpoint=request.endpoint, job_id=request.job_id, collection_name=request.collection_name
    )
    return error


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
    raise _error(
        MilvusImportResponseError,
        request,
        "got an unreadable answer",
        "the answer has no job id (jobId)",
        code=0,
        http_status=200,
    )


def parse_list_page(
    request: ApiRequest, data: Mapping[str, Any]
) -> tuple[list[Mapping[str, Any]], int | None]:
    """The records of a ``list`` answer and, on Zilliz Cloud, the total ``count``."""
    records = data.get("records")
    if records is None:
        records = data.get("tasks")  # legacy Zilliz v1 examples
    if records is None:
        records = []
    if not isinstance(records, list):
        raise _error(
            MilvusImportResponseError,
            request,
            "got an unreadable answer",
            f"'records' is a {type(records).__name__}, not a list",
            code=0,
            http_status=200,
        )
    count = data.get("count")
    total: int | None = None
    if isinstance(count, (int, float, str)) and not isinstance(count, bool):
        try:
            total = int(float(count))
        except ValueError:
            total = None
    return [record for record in records if isinstance(record, Mapping)], total


def is_last_list_page(
    settings: ConnectionSettings,
    data: Mapping[str, Any],
    records: Sequence[Any],
    *,
    page_size: int = ZILLIZ_PAGE_SIZE,
) -> bool:
    """
    Whether a ``list`` answer is the last page: always on self-hosted Milvus (no paging); on Zilliz Cloud
    when the page is empty or short.

    A page is short when it holds fewer records than were asked for, or than the ``pageSize`` the answer
    reports when the server pages by less. ``count`` alone never ends a listing: the Zilliz docs call it
    the "total number of records listed in this response", which a server may mean per page, and stopping
    on it would drop every page after a full first one.

    :param page_size: the ``pageSize`` the request asked for.
    """
    if not settings.is_zilliz or not records:
        return True
    size = page_size
    reported = data.get("pageSize")
    if isinstance(reported, (int, float, str)) and not isinstance(reported, bool):
        try:
            served = int(float(reported))
        except ValueError:
            served = 0
        if 0 < served < size:
            size = served
    return len(records) < size


def route_missing(error: BaseException) -> bool:
    """Whether ``error`` says the route does not exist (the server is older or differently flavoured)."""
    return isinstance(error, MilvusImportRouteNotFoundError)


class ListPager:
    """
    The requests of one listing and the jobs they gave, without I/O.

    Self-hosted Milvus answers in one request. Zilliz Cloud pages (``pageSize`` 100, ``currentPage`` 1..);
    the listing stops on an empty or short page (see :func:`is_last_list_page`), on a page with no job not
    seen before (a server that ignores paging, or pages shifted by new jobs), and after ``max_pages``;
    never on ``count`` alone (the Zilliz docs call it the number of records "in this response").

    :param settings: where and how to ask.
    :param collection_name: only jobs of this collection.
    :param db_name: the database (default: the connection's).
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        collection_name: str | None = None,
        *,
        db_name: str | None = None,
        page_size: int = ZILLIZ_PAGE_SIZE,
        max_pages: int = 10_000,
    ) -> None:
        self.settings = settings
        self.collection_name = collection_name
        self.db_name = db_name
        self.page_size = page_size
        self.max_pages = max_pages
        self.pages = 0
        self.total: int | None = None
        self._done = False
        self._seen: set[str] = set()
        self._jobs: list[ImportJobSummary] = []

    @property
    def jobs(self) -> list[ImportJobSummary]:
        """The jobs collected so far, in the server's order, each once."""
        return list(self._jobs)

    @property
    def done(self) -> bool:
        return self._done

    def next_request(self) -> ApiRequest | None:
        """The next page's request, or None when the listing is complete."""
        if self._done:
            return None
        if self.settings.is_zilliz:
            return build_list_request(
                self.settings,
                self.collection_name,
                db_name=self.db_name,
                page=self.pages + 1,
                page_size=self.page_size,
            )
        return build_list_request(self.settings, self.collection_name, db_name=self.db_name)

    def feed(self, request: ApiRequest, data: Mapping[str, Any]) -> None:
        """Take one page's answer (the envelope's ``data``)."""
        records, total = parse_list_page(request, data)
        self.pages += 1
        if total is not None:
            self.total = total
        new = 0
        for record in records:
            job = ImportJobSummary.from_wire(record)
            key = job.job_id or json.dumps(record, sort_keys=True, default=str)
            if key in self._seen:
                continue
            self._seen.add(key)
            self._jobs.append(job)
            new += 1
        if (
            new == 0
            or is_last_list_page(self.settings, data, records, page_size=self.page_size)
            or self.pages >= self.max_pages
        ):
            self._done = True
