"""
The wire format of the Milvus / Zilliz Cloud bulk-import REST API, with no I/O (a "sans-I/O" core).

This package is the one place that knows routes, request bodies, headers, the success and error envelopes
and how failures map to the exceptions of :mod:`airflow_milvus_import.exceptions`. The hook adds only the
transport (``requests`` / ``httpx``), retries and authentication on top; both its sync and async paths
build their requests and read their answers here. See ``docs/milvus-import-api.md`` for the behaviour
of real servers this follows.

- :mod:`~airflow_milvus_import.protocol.routes`: the route names.
- :mod:`~airflow_milvus_import.protocol.settings`: a connection's fields read into
  :class:`ConnectionSettings`.
- :mod:`~airflow_milvus_import.protocol.requests`: :class:`ApiRequest`, headers, the request builders and
  their argument checks.
- :mod:`~airflow_milvus_import.protocol.responses`: the success envelope, the error table, the retry rule.
- :mod:`~airflow_milvus_import.protocol.paging`: the ``list`` request, its pages and :class:`ListPager`.

Every name is importable from ``airflow_milvus_import.protocol`` itself.
"""

from __future__ import annotations

from airflow_milvus_import.protocol.paging import (
    ZILLIZ_PAGE_SIZE,
    ListPager,
    build_list_request,
    is_last_list_page,
    parse_list_page,
)
from airflow_milvus_import.protocol.requests import (
    USER_AGENT,
    ApiRequest,
    build_abort_request,
    build_commit_request,
    build_create_request,
    build_headers,
    build_progress_request,
    build_request,
    check_file_batches,
    normalize_job_id,
    normalize_options,
    progress_routes,
)
from airflow_milvus_import.protocol.responses import (
    connection_error,
    is_retryable,
    parse_create_response,
    parse_response,
    retry_after_seconds,
)
from airflow_milvus_import.protocol.routes import (
    PROGRESS_ROUTES,
    ROUTE_ABORT,
    ROUTE_COMMIT,
    ROUTE_CREATE,
    ROUTE_DESCRIBE,
    ROUTE_GET_PROGRESS,
    ROUTE_GET_PROGRESS_CAMEL,
    ROUTE_LIST,
    ROUTE_PREFIX,
)
from airflow_milvus_import.protocol.settings import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_ZILLIZ_RATE_LIMIT,
    ConnectionSettings,
    settings_from_connection,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_ZILLIZ_RATE_LIMIT",
    "PROGRESS_ROUTES",
    "ROUTE_ABORT",
    "ROUTE_COMMIT",
    "ROUTE_CREATE",
    "ROUTE_DESCRIBE",
    "ROUTE_GET_PROGRESS",
    "ROUTE_GET_PROGRESS_CAMEL",
    "ROUTE_LIST",
    "ROUTE_PREFIX",
    "USER_AGENT",
    "ZILLIZ_PAGE_SIZE",
    "ApiRequest",
    "ConnectionSettings",
    "ListPager",
    "build_abort_request",
    "build_commit_request",
    "build_create_request",
    "build_headers",
    "build_list_request",
    "build_progress_request",
    "build_request",
    "check_file_batches",
    "connection_error",
    "is_last_list_page",
    "is_retryable",
    "normalize_job_id",
    "normalize_options",
    "parse_create_response",
    "parse_list_page",
    "parse_response",
    "progress_routes",
    "retry_after_seconds",
    "settings_from_connection",
]
