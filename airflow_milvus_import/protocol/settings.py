"""An Airflow connection's fields read into :class:`ConnectionSettings`: endpoint, token, extras."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from airflow_milvus_import.exceptions import MilvusImportRequestError
from airflow_milvus_import.protocol.routes import ROUTE_PREFIX

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_ZILLIZ_RATE_LIMIT",
    "ConnectionSettings",
    "header_safe",
    "settings_from_connection",
]

#: seconds a request may take (connect, and then read) unless the connection or the hook says otherwise
DEFAULT_TIMEOUT: Final = 30.0
#: retries after the first attempt, for transient failures only
DEFAULT_MAX_RETRIES: Final = 3
#: answers larger than this are refused (a list of tens of thousands of jobs stays well below it)
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
#: requests per second to one Zilliz Cloud endpoint unless the connection says otherwise (the documented
#: limit is 20 per user per endpoint: half of it leaves room for other clients of the same API key)
DEFAULT_ZILLIZ_RATE_LIMIT: Final = 10.0

_EXTRA_PREFIX: Final = "extra__milvus_import__"
_ZILLIZ_HOST_SUFFIXES: Final = (".zilliz.com", ".zilliz.com.cn", ".zillizcloud.com")
_TRUE_WORDS: Final = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS: Final = frozenset({"false", "no", "off", "0"})


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


def header_safe(text: str) -> bool:
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
    if db_name is not None and not header_safe(db_name):
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
