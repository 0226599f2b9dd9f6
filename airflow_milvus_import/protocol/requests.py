"""Requests, without I/O: :class:`ApiRequest`, the headers, and the builders with their argument checks."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

import airflow_milvus_import.protocol.routes as routes
from airflow_milvus_import import __version__
from airflow_milvus_import.exceptions import MilvusImportError, MilvusImportRequestError
from airflow_milvus_import.protocol.settings import ConnectionSettings, header_safe

__all__ = [
    "USER_AGENT",
    "ApiRequest",
    "build_abort_request",
    "build_commit_request",
    "build_create_request",
    "build_headers",
    "build_progress_request",
    "build_request",
    "check_file_batches",
    "normalize_job_id",
    "normalize_options",
    "progress_routes",
    "text_argument",
]

USER_AGENT: Final = f"airflow-milvus-import/{__version__}"

_STORAGE_CREDENTIAL_KEYS: Final = {
    "access_key": "accessKey",
    "accessKey": "accessKey",
    "secret_key": "secretKey",
    "secretKey": "secretKey",
    "token": "token",
    "session_token": "token",
}
_URL_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

MilvusImportErrorT = TypeVar("MilvusImportErrorT", bound=MilvusImportError)


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
        if self.route == routes.ROUTE_CREATE:
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

    def error(
        self,
        cls: type[MilvusImportErrorT],
        what: str,
        detail: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        **kwargs: Any,
    ) -> MilvusImportErrorT:
        """
        The ``cls`` error about this request: ``<subject> <what> (<endpoint>): <detail>``, redacted.

        :param what: what happened, e.g. ``"timed out on the server"``.
        :param detail: what the server said (``HTTP 503: ...``, ``code 1100: ...``).
        """
        return cls(
            self.redact(f"{self.subject} {what} ({self.endpoint}): {detail}"),
            endpoint=self.endpoint,
            job_id=self.job_id,
            collection_name=self.collection_name,
            code=code,
            http_status=http_status,
            **kwargs,
        )


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


def text_argument(name: str, value: Any, *, required: bool) -> str | None:
    """
    A name argument stripped (None when empty and not ``required``).

    :raises MilvusImportRequestError: empty and ``required``, or not a string.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MilvusImportRequestError(f"Milvus import: {name} is empty")
        return None
    if not isinstance(value, str):
        raise MilvusImportRequestError(
            f"Milvus import: {name} must be a string, got {type(value).__name__} {value!r}"
        )
    return value.strip()


def check_file_batches(
    files: Any, *, argument: str = "files", collection_name: str | None = None
) -> list[list[str]]:
    """
    ``files`` checked and shaped into the batches (a list of lists of paths) the servers want.

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


def build_request(
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
    """
    The request of ``route`` with ``body``, plus what every request carries (cluster, database, headers).

    :raises MilvusImportRequestError: a database name an HTTP header cannot carry.
    """
    if settings.cluster_id:
        body["clusterId"] = settings.cluster_id
    database = db_name or settings.db_name
    if database:
        body["dbName"] = database
    database_header_safe = not database or header_safe(database)
    request = ApiRequest(
        route=route,
        url=settings.url(route),
        headers=build_headers(settings, db_name=database) if database_header_safe else {},
        body=body,
        job_id=job_id,
        collection_name=collection_name,
        idempotent=idempotent,
        secrets=(*settings.secrets, *(secret for secret in extra_secrets if secret)),
    )
    if not database_header_safe:
        raise request.error(
            MilvusImportRequestError,
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
    collection = text_argument("collection_name", collection_name, required=True)
    assert collection is not None
    database = text_argument("db_name", db_name, required=False)
    partition = text_argument("partition_name", partition_name, required=False)
    volume = text_argument("volume_name", volume_name, required=False)
    credentials: dict[str, str] = {}
    if volume is not None:
        source = _volume_source(
            settings,
            collection,
            volume,
            files if files is not None else object_urls,
            object_urls_given=object_urls is not None,
            credentials_given=bool(_storage_credentials(storage_credentials)),
        )
    else:
        source, credentials = _bucket_source(settings, collection, files, object_urls, storage_credentials)
    body: dict[str, Any] = {"collectionName": collection, **source}
    if partition:
        body["partitionName"] = partition
    normalized_options = normalize_options(options, collection_name=collection)
    if normalized_options:
        body["options"] = normalized_options
    return build_request(
        settings,
        routes.ROUTE_CREATE,
        body,
        db_name=database,
        collection_name=collection,
        idempotent=False,
        extra_secrets=credentials.values(),
    )


def _bucket_source(
    settings: ConnectionSettings,
    collection: str,
    files: Any,
    object_urls: Any,
    storage_credentials: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The data of a ``create`` from a bucket (``files`` / ``objectUrls``), and the storage credentials."""
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
    batches = check_file_batches(
        files if files is not None else object_urls, argument=argument, collection_name=collection
    )
    credentials = _storage_credentials(storage_credentials)
    if settings.is_zilliz:
        return {"objectUrls": batches, **credentials}, credentials
    if credentials:
        raise MilvusImportRequestError(
            f"Milvus import into collection '{collection}': storage_credentials are for Zilliz Cloud; "
            "self-hosted Milvus reads files from its own configured bucket",
            collection_name=collection,
        )
    return {"files": batches}, credentials


def _volume_source(
    settings: ConnectionSettings,
    collection: str,
    volume: str,
    files: Any,
    *,
    object_urls_given: bool,
    credentials_given: bool,
) -> dict[str, Any]:
    """The data of a ``create`` from a Zilliz Cloud volume: ``volumeName`` + ``dataPaths``."""
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
    batches = check_file_batches(files, argument="files", collection_name=collection)
    for position, batch in enumerate(batches):
        for path in batch:
            if _URL_SCHEME.match(path):
                raise MilvusImportRequestError(
                    f"{where}: files[{position}] {path!r} is a URL; with volume_name, files are paths "
                    "inside the volume (e.g. 'folder/1.parquet')",
                    collection_name=collection,
                )
    return {"volumeName": volume, "dataPaths": batches}


def _job_request(settings: ConnectionSettings, route: str, job_id: Any, db_name: str | None) -> ApiRequest:
    """A request about one job: ``{"jobId": "..."}`` (the id always sent as a string)."""
    normalized = normalize_job_id(job_id)
    database = text_argument("db_name", db_name, required=False)
    return build_request(settings, route, {"jobId": normalized}, db_name=database, job_id=normalized)


def build_progress_request(
    settings: ConnectionSettings,
    job_id: Any,
    *,
    route: str = routes.ROUTE_DESCRIBE,
    db_name: str | None = None,
) -> ApiRequest:
    """``describe`` / ``get_progress`` / ``getProgress`` of one job (the id always sent as a string)."""
    if route not in routes.PROGRESS_ROUTES:
        raise ValueError(f"not a progress route: {route!r}")
    return _job_request(settings, route, job_id, db_name)


def build_commit_request(
    settings: ConnectionSettings, job_id: Any, *, db_name: str | None = None
) -> ApiRequest:
    """``commit`` a two-phase job (created with ``options.auto_commit = "false"``; newest Milvus only)."""
    return _job_request(settings, routes.ROUTE_COMMIT, job_id, db_name)


def build_abort_request(
    settings: ConnectionSettings, job_id: Any, *, db_name: str | None = None
) -> ApiRequest:
    """``abort`` a two-phase job (newest Milvus only)."""
    return _job_request(settings, routes.ROUTE_ABORT, job_id, db_name)


def progress_routes(settings: ConnectionSettings) -> tuple[str, ...]:
    """The progress routes to try, in order: ``describe`` first, then the older / documented names."""
    if settings.is_zilliz:
        return (routes.ROUTE_DESCRIBE, routes.ROUTE_GET_PROGRESS_CAMEL, routes.ROUTE_GET_PROGRESS)
    return (routes.ROUTE_DESCRIBE, routes.ROUTE_GET_PROGRESS)
