"""
Lineage for Milvus / Zilliz Cloud bulk imports: Airflow assets and OpenLineage datasets.

One identity for a collection, shared by both:

* self-hosted Milvus: ``milvus://{host}:{port}/{db}/{collection}`` (asset URI); OpenLineage namespace
  ``milvus://{host}:{port}``, name ``{db}.{collection}`` (the naming spec's pattern for databases,
  e.g. ``mysql://{host}:{port}`` + ``{database}.{table}``);
* Zilliz Cloud: ``zilliz://{cluster_id}/{db}/{collection}``; namespace ``zilliz://{cluster_id}`` (a
  cluster id is unique across Zilliz Cloud, and the control-plane URL is the same for every cluster).

The files an import reads become OpenLineage input datasets named as the OpenLineage naming spec and
Airflow's own file / object-storage converters name them: ``s3://{bucket}`` + key, ``gs://{bucket}`` +
path, ``file`` + absolute path; a file of a Zilliz Cloud volume is ``zilliz-volume://{volume_name}`` + its
path inside the volume (a volume belongs to a project, not to a cluster, so the cluster is not part of
it). Self-hosted Milvus names files relative to its object-storage bucket, which the client cannot see:
set the connection extra ``bucket_url`` (``s3://my-bucket``, ``file:///srv/bucket``) so these inputs join
the datasets of the task that wrote the files.

Importing this module is cheap (standard library only). Airflow's asset class and the OpenLineage provider
are imported inside the functions that need them: the provider works without
``apache-airflow-providers-openlineage`` installed, and this module is registered as the ``milvus`` /
``zilliz`` asset-URI handler, which Airflow imports whenever it normalises an asset URI.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

    from airflow_milvus_import.protocol import ConnectionSettings

__all__ = [
    "DEFAULT_DB_NAME",
    "DEFAULT_MILVUS_PORT",
    "MILVUS_ASSET_SCHEME",
    "RUN_FACET_NAME",
    "ZILLIZ_ASSET_SCHEME",
    "ZILLIZ_VOLUME_SCHEME",
    "CollectionRef",
    "LineageTarget",
    "asset_event_extra",
    "build_lineage",
    "collection_ref",
    "convert_asset_to_openlineage",
    "create_asset",
    "empty_lineage",
    "file_dataset_id",
    "is_collection_asset",
    "milvus_collection_asset",
    "parse_collection_uri",
    "pull_xcom",
    "rendered_value",
    "sanitize_asset_uri",
    "target_from_connection",
    "target_from_settings",
]

MILVUS_ASSET_SCHEME: Final = "milvus"
ZILLIZ_ASSET_SCHEME: Final = "zilliz"
DEFAULT_MILVUS_PORT: Final = 19530
DEFAULT_DB_NAME: Final = "default"
#: the key of this package's OpenLineage run facet
RUN_FACET_NAME: Final = "milvusImport"
#: identifies the run facet's schema (a URN: the schema is documented in the README, not hosted)
RUN_FACET_SCHEMA_URL: Final = "urn:airflow-milvus-import:openlineage:MilvusImportRunFacet:1-0-0"

# Milvus' rule for database and collection names: letters, digits and underscores, not starting with a
# digit, at most 255 characters (a real server may be stricter; it will say so when the job is created).
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
#: the OpenLineage namespace scheme of a Zilliz Cloud volume's files
ZILLIZ_VOLUME_SCHEME: Final = "zilliz-volume"
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_S3_HOST: Final = re.compile(
    r"^(?:(?P<bucket>.+)\.)?s3(?:[.-](?:[a-z0-9-]+))?(?:\.dualstack)?(?:\.[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$"
)


# ---------------------------------------------------------------------------------------------------------
# The collection's identity
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionRef:
    """
    A collection of one deployment: what an import writes to.

    :param namespace: ``milvus://{host}:{port}`` or ``zilliz://{cluster_id}``.
    :param db_name: the database (``default`` when none is named).
    :param collection_name: the collection.
    """

    namespace: str
    db_name: str
    collection_name: str

    @property
    def uri(self) -> str:
        """The asset URI: ``{namespace}/{db}/{collection}``."""
        return f"{self.namespace}/{self.db_name}/{self.collection_name}"

    @property
    def dataset_name(self) -> str:
        """The OpenLineage dataset name: ``{db}.{collection}``."""
        return f"{self.db_name}.{self.collection_name}"


def _check_name(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{kind} must be a non-empty string; got {value!r}")
    text = value.strip()
    if "{{" in text or "{%" in text:
        raise ValueError(
            f"{kind} {text!r} is a template: an asset's URI is fixed when the DAG is parsed. Name the "
            "collection literally, or declare an AssetAlias outlet and let the import operator add the "
            "collection it imported into"
        )
    if not _NAME.fullmatch(text):
        raise ValueError(
            f"{kind} {text!r} is not a Milvus name (letters, digits and underscores, not starting with a "
            "digit, at most 255 characters)"
        )
    return text


def _authority(hostname: str, port: int) -> str:
    host = hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _namespace_from_base_url(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    if not parts.hostname:
        raise ValueError(f"endpoint {base_url!r} has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{MILVUS_ASSET_SCHEME}://{_authority(parts.hostname, port)}"


def _zilliz_namespace(cluster_id: str) -> str:
    text = cluster_id.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", text):
        raise ValueError(f"cluster_id {cluster_id!r} is not a Zilliz Cloud cluster id (like in01-0123abcd)")
    return f"{ZILLIZ_ASSET_SCHEME}://{text}"


def collection_ref(
    collection_name: str,
    *,
    endpoint: str | None = None,
    port: int | None = None,
    cluster_id: str | None = None,
    db_name: str | None = None,
) -> CollectionRef:
    """
    The identity of a collection, from an endpoint (self-hosted Milvus) or a cluster id (Zilliz Cloud).

    The endpoint is read exactly as a connection's Host and Port are (``http://milvus:19530``,
    ``milvus:19530``, ``https://milvus.example.com``), so an asset built here names the same collection as
    the one the import operator reports at run time.

    :raises ValueError: no endpoint and no cluster id, a malformed endpoint, or a name Milvus rejects.
    """
    collection = _check_name("collection_name", collection_name)
    database = _check_name("db_name", db_name) if db_name not in (None, "") else DEFAULT_DB_NAME
    if cluster_id:
        return CollectionRef(_zilliz_namespace(cluster_id), database, collection)
    if not endpoint:
        raise ValueError(
            "Give the Milvus endpoint (e.g. endpoint='http://milvus:19530') or, for Zilliz Cloud, "
            "the cluster_id of the collection"
        )
    from airflow_milvus_import.exceptions import MilvusImportError
    from airflow_milvus_import.protocol import settings_from_connection

    try:
        settings = settings_from_connection(None, endpoint, port)
    except MilvusImportError as error:
        raise ValueError(f"endpoint {endpoint!r}: {error}") from None
    return CollectionRef(_namespace_from_base_url(settings.base_url), database, collection)


def milvus_collection_asset(
    collection_name: str,
    *,
    endpoint: str | None = None,
    port: int | None = None,
    cluster_id: str | None = None,
    db_name: str | None = None,
    name: str | None = None,
    group: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Asset:
    """
    An Airflow asset for a Milvus / Zilliz Cloud collection, to declare as an import's outlet and to
    schedule downstream DAGs on.

    URI: ``milvus://{host}:{port}/{db}/{collection}`` (self-hosted) or
    ``zilliz://{cluster_id}/{db}/{collection}`` (Zilliz Cloud). :class:`MilvusBulkImportOperator` fills
    the asset event's ``extra`` with the job id, collection, database and row counts.

    >>> milvus_collection_asset("books", endpoint="http://milvus:19530").uri
    'milvus://milvus:19530/default/books'

    :param collection_name: the collection (literal: an asset URI is fixed when the DAG is parsed).
    :param endpoint: the self-hosted endpoint, as in the connection's Host (``http://milvus:19530``).
    :param port: the endpoint's port, when ``endpoint`` does not carry it.
    :param cluster_id: the Zilliz Cloud cluster id (then ``endpoint`` is not needed).
    :param db_name: the database (default ``default``).
    :param name: the asset's name (default: its URI).
    :param group: the asset's group (default: Airflow's ``asset``).
    :param extra: the asset's own extra (not the events').
    :raises ValueError: a missing endpoint / cluster id, or a name that is no Milvus name.
    """
    from airflow_milvus_import.compat import new_asset

    ref = collection_ref(
        collection_name, endpoint=endpoint, port=port, cluster_id=cluster_id, db_name=db_name
    )
    return new_asset(ref.uri, name=name or ref.uri, group=group or None, extra=extra)


def create_asset(
    *,
    collection_name: str,
    endpoint: str | None = None,
    port: int | None = None,
    cluster_id: str | None = None,
    db_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Asset:
    """The ``milvus`` / ``zilliz`` asset factory registered with Airflow (hook-level lineage)."""
    return milvus_collection_asset(
        collection_name, endpoint=endpoint, port=port, cluster_id=cluster_id, db_name=db_name, extra=extra
    )


def parse_collection_uri(uri: str) -> CollectionRef | None:
    """The collection an asset URI names, or None when it is not a ``milvus://`` / ``zilliz://`` URI."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in (MILVUS_ASSET_SCHEME, ZILLIZ_ASSET_SCHEME) or not parts.netloc:
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if len(segments) != 2:
        return None
    return CollectionRef(f"{scheme}://{parts.netloc.lower()}", segments[0], segments[1])


def is_collection_asset(value: Any) -> bool:
    """Whether ``value`` is an Airflow asset with a ``milvus://`` or ``zilliz://`` URI."""
    uri = getattr(value, "uri", None)
    return isinstance(uri, str) and parse_collection_uri(uri) is not None and hasattr(value, "name")


def sanitize_asset_uri(uri: SplitResult) -> SplitResult:
    """
    Airflow's URI handler for ``milvus://`` and ``zilliz://`` assets (registered in the provider info).

    Lower-cases the host, gives a bare Milvus host the default port 19530, and insists on exactly
    ``/{db}/{collection}`` with Milvus names.

    :raises ValueError: what is wrong with the URI (Airflow reports it as a DAG import error).
    """
    scheme = uri.scheme.lower()
    shown = urllib.parse.urlunsplit(uri)
    if not uri.hostname:
        raise ValueError(f"Asset URI {shown!r} names no host (expected {scheme}://host/db/collection)")
    if uri.query or uri.fragment:
        raise ValueError(f"Asset URI {shown!r} must not have a query or fragment")
    segments = [segment for segment in uri.path.split("/") if segment]
    if len(segments) != 2:
        raise ValueError(f"Asset URI {shown!r} must name /database/collection after the host")
    for kind, value in zip(("database", "collection"), segments, strict=True):
        if not _NAME.fullmatch(value):
            raise ValueError(f"Asset URI {shown!r}: {kind} {value!r} is not a Milvus name")
    if scheme == ZILLIZ_ASSET_SCHEME:
        if uri.port is not None:
            raise ValueError(f"Asset URI {shown!r}: a Zilliz Cloud asset names a cluster id, not a port")
        netloc = _zilliz_namespace(uri.hostname).split("://", 1)[1]
    else:
        netloc = _authority(uri.hostname, uri.port or DEFAULT_MILVUS_PORT)
    return uri._replace(scheme=scheme, netloc=netloc, path=f"/{segments[0]}/{segments[1]}")


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any = None) -> Any:
    """An asset of a collection as the OpenLineage dataset this package's lineage names it by."""
    from openlineage.client.event_v2 import Dataset

    ref = parse_collection_uri(asset.uri)
    if ref is None:
        raise ValueError(f"{asset.uri!r} is not a milvus:// or zilliz:// collection URI")
    return Dataset(namespace=ref.namespace, name=ref.dataset_name)


# ---------------------------------------------------------------------------------------------------------
# Where a connection's data lives
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageTarget:
    """
    What lineage needs to know about a connection (no credentials).

    :param namespace: the collections' namespace (``milvus://host:port`` / ``zilliz://cluster``).
    :param default_db: the connection's ``db_name`` (None: the server's ``default``).
    :param base_url: the endpoint, for facets.
    :param cluster_id: the Zilliz Cloud cluster id, or None.
    :param server_host: the endpoint's host: where absolute paths live (loopback: this machine).
    :param bucket_url: where self-hosted Milvus' relative paths live (extra ``bucket_url``), or None.
    """

    namespace: str
    default_db: str | None
    base_url: str
    cluster_id: str | None = None
    server_host: str | None = None
    bucket_url: str | None = None

    @property
    def deployment(self) -> str:
        return "Zilliz Cloud" if self.cluster_id else "Milvus"

    def collection(self, collection_name: str, db_name: str | None = None) -> CollectionRef:
        """The collection ``collection_name`` of this deployment (names are not checked here)."""
        return CollectionRef(self.namespace, db_name or self.default_db or DEFAULT_DB_NAME, collection_name)


def _bucket_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"extra 'bucket_url' must be text, got {type(value).__name__}")
    text = value.strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    if not parts.scheme or (parts.scheme != "file" and not parts.netloc):
        raise ValueError(
            f"extra 'bucket_url' must be a URL such as s3://my-bucket or file:///srv/bucket, got {value!r}"
        )
    if parts.password or parts.username:
        raise ValueError("extra 'bucket_url' must not carry credentials")
    return text


def target_from_settings(
    settings: ConnectionSettings, extra: Mapping[str, Any] | None = None
) -> LineageTarget:
    """
    The lineage view of a connection's settings.

    :param extra: the connection's extras, for ``bucket_url``.
    :raises ValueError: a malformed ``bucket_url``.
    """
    extra = extra or {}
    bucket = extra.get("bucket_url", extra.get("extra__milvus_import__bucket_url"))
    if settings.cluster_id:
        namespace = _zilliz_namespace(settings.cluster_id)
    else:
        namespace = _namespace_from_base_url(settings.base_url)
    return LineageTarget(
        namespace=namespace,
        default_db=settings.db_name,
        base_url=settings.base_url,
        cluster_id=settings.cluster_id,
        server_host=urllib.parse.urlsplit(settings.base_url).hostname,
        bucket_url=_bucket_url(bucket),
    )


def target_from_connection(conn_id: str) -> LineageTarget:
    """
    The lineage view of an Airflow connection: reads the connection (from Airflow, no call to Milvus).

    :raises MilvusImportRequestError: a malformed connection; ``ValueError``: a malformed ``bucket_url``.
    """
    from airflow.providers.common.compat.sdk import BaseHook

    from airflow_milvus_import.protocol import settings_from_connection

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    settings = settings_from_connection(
        conn_id, conn.host, conn.port, conn.schema, conn.login, conn.password, extra
    )
    return target_from_settings(settings, extra)


def lineage_target_or_none(conn_id: str, log: Any, *, lacking: str) -> LineageTarget | None:
    """
    :func:`target_from_connection` for a task that must never fail over lineage: None when it cannot be read.

    :param log: the task's logger.
    :param lacking: what will lack the location, for the warning (``"Lineage"``...).
    """
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    from airflow_milvus_import.exceptions import MilvusImportError

    try:
        return target_from_connection(conn_id)
    except (MilvusImportError, AirflowNotFoundException) as error:
        # A connection the hook cannot use either: the hook's own call reports it.
        log.debug("No lineage target: %s", error)
    except Exception as error:
        log.warning("%s will lack the collection's location: %s", lacking, error)
    return None


# ---------------------------------------------------------------------------------------------------------
# Files as datasets
# ---------------------------------------------------------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    if not host:
        return True
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _file_namespace(host: str | None) -> str:
    # Airflow's file-asset converter: "file" for this machine, "file://{host}" for another one.
    return "file" if _is_loopback(host) else f"file://{host}"


def _https_object(parts: SplitResult) -> tuple[str, str] | None:
    """Object-storage HTTPS URLs (S3, GCS, Azure Blob) as the storage's own namespace and name."""
    host = (parts.hostname or "").lower()
    path = urllib.parse.unquote(parts.path).lstrip("/")
    match = _S3_HOST.match(host)
    if match:
        if match.group("bucket"):  # virtual-hosted style: bucket.s3.region.amazonaws.com/key
            return f"s3://{match.group('bucket')}", path
        bucket, _, key = path.partition("/")  # path style: s3.region.amazonaws.com/bucket/key
        return (f"s3://{bucket}", key) if bucket else None
    if host in ("storage.googleapis.com", "storage.cloud.google.com"):
        bucket, _, key = path.partition("/")
        return (f"gs://{bucket}", key) if bucket else None
    if host.endswith(".blob.core.windows.net") or host.endswith(".dfs.core.windows.net"):
        container, _, blob = path.partition("/")
        scheme = "abfss" if host.endswith(".dfs.core.windows.net") else "wasbs"
        return (f"{scheme}://{container}@{host}", blob) if container else None
    return None


def _from_url(text: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    path = urllib.parse.unquote(parts.path)
    if scheme == "file":
        host = parts.netloc or None
        return _file_namespace(host if host and not _is_loopback(host) else None), path or "/"
    if scheme in ("s3", "s3a", "s3n", "minio"):
        return f"s3://{parts.netloc}", path.lstrip("/")
    if scheme in ("gs", "gcs"):
        return f"gs://{parts.netloc}", path.lstrip("/")
    if scheme in ("http", "https"):
        known = _https_object(parts)
        if known is not None:
            return known
    authority = parts.netloc.rsplit("@", 1)[-1] if scheme in ("http", "https") else parts.netloc
    return f"{scheme}://{authority}", path.lstrip("/")


def file_dataset_id(path: str, target: LineageTarget, *, volume_name: str | None = None) -> tuple[str, str]:
    """
    ``(namespace, name)`` of the OpenLineage dataset for one file an import reads.

    * a path inside a Zilliz Cloud volume (``volume_name`` given): ``zilliz-volume://{volume_name}`` and
      the path;
    * URLs (``s3://``, ``gs://``, object-storage ``https://``, ``file://``): the storage's own naming;
    * an absolute path: a local file of the server's machine (``file`` when it is this machine);
    * a path relative to self-hosted Milvus' bucket: joined to the connection's ``bucket_url`` (a
      ``file:///folder`` is a folder of the server's machine), else named in
      ``milvus-bucket://{host}:{port}`` (the bucket of that server, whose real location is unknown).
    """
    text = path.strip()
    if volume_name:
        return f"{ZILLIZ_VOLUME_SCHEME}://{volume_name.strip()}", text.removeprefix("./").lstrip("/")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return _from_url(text)
    bucket = target.bucket_url
    if text.startswith("/"):
        if bucket and not bucket.startswith("file:"):
            return _from_url(f"{bucket}/{text.lstrip('/')}")
        return _file_namespace(target.server_host), text
    relative = text.removeprefix("./")
    if bucket:
        if bucket.startswith("file:"):
            # A folder of the server's machine (file:///srv/bucket), or of the host a file:// URL names.
            root = urllib.parse.urlsplit(bucket)
            folder = urllib.parse.unquote(root.path).rstrip("/")
            return _file_namespace(root.netloc or target.server_host), f"{folder}/{relative}"
        return _from_url(f"{bucket}/{relative}")
    scheme, _, authority = target.namespace.partition("://")
    return f"{scheme}-bucket://{authority}", relative


# ---------------------------------------------------------------------------------------------------------
# OpenLineage facets
# ---------------------------------------------------------------------------------------------------------


def _detail_files(detail: Mapping[str, Any]) -> list[str]:
    files = detail.get("files")
    if isinstance(files, list) and files:
        return [str(item) for item in files if str(item)]
    from airflow_milvus_import.models import split_file_name

    return list(split_file_name(detail.get("file_name")))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


@functools.cache
def _run_facet_class() -> Any:
    """The ``milvusImport`` run facet (built on first use: openlineage is an optional dependency)."""
    import attr
    from openlineage.client.generated.base import RunFacet

    @attr.define
    class MilvusImportRunFacet(RunFacet):  # type: ignore[misc]
        """
        Milvus / Zilliz Cloud import jobs of a task run.

        :param deployment: ``Milvus`` or ``Zilliz Cloud``.
        :param endpoint: the REST endpoint (no credentials).
        :param clusterId: the Zilliz Cloud cluster id.
        :param jobs: one record per job: jobId, collectionName, dbName, state, progress, importedRows,
            totalRows, fileSize, files, reason.
        """

        deployment: str
        endpoint: str
        clusterId: str | None = attr.field(default=None)
        jobs: list[dict[str, Any]] = attr.field(factory=list)

        @staticmethod
        def _get_schema() -> str:
            return RUN_FACET_SCHEMA_URL

    MilvusImportRunFacet.__module__ = __name__
    MilvusImportRunFacet.__qualname__ = "MilvusImportRunFacet"
    return MilvusImportRunFacet


def empty_lineage() -> Any:
    """An ``OperatorLineage`` with nothing in it (nothing known to report)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage()


def build_lineage(
    target: LineageTarget,
    *,
    jobs: Sequence[Mapping[str, Any]] = (),
    job_ids: Sequence[str] = (),
    files: Sequence[Sequence[str]] | None = None,
    collection_name: str | None = None,
    db_name: str | None = None,
    volume_name: str | None = None,
) -> Any:
    """
    The OpenLineage view of one or more import jobs: an ``OperatorLineage``.

    * inputs: the imported files (``files`` as sent, else the files the jobs' details name), each with
      its row count and size from the job's per-file details where one file is one detail;
    * outputs: each collection written, with ``outputStatistics`` (rows imported, bytes, files) once all
      its jobs are Completed;
    * run facets: ``externalQuery`` (the job id, for a single job: the standard place for an external
      system's job id) and ``milvusImport`` (every job's state and numbers).

    :param jobs: the jobs' progress (``ImportJobProgress.to_dict()``), where known.
    :param job_ids: the jobs' ids (used where no progress is known).
    :param files: the files as sent (a list of lists), where known.
    :param collection_name: the target collection when no job progress names it.
    :param db_name: the database (default: the connection's, else ``default``).
    :param volume_name: the Zilliz Cloud volume the files are in (their paths are inside it).
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.generated.dataset_type_dataset import DatasetTypeDatasetFacet
    from openlineage.client.generated.datasource_dataset import DatasourceDatasetFacet
    from openlineage.client.generated.external_query_run import ExternalQueryRunFacet
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    jobs = [job for job in jobs if isinstance(job, Mapping)]
    # Statistics of single-file details, by path.
    file_stats: dict[str, tuple[int | None, int | None]] = {}
    detail_batches: list[list[str]] = []
    for job in jobs:
        for detail in job.get("details") or []:
            if not isinstance(detail, Mapping):
                continue
            names = _detail_files(detail)
            if names:
                detail_batches.append(names)
            if len(names) == 1:
                file_stats[names[0]] = (_int(detail.get("total_rows")), _int(detail.get("file_size")))

    batches = [list(batch) for batch in files] if files else detail_batches
    inputs: list[Any] = []
    seen_inputs: set[tuple[str, str]] = set()
    for batch in batches:
        for path in batch:
            key = file_dataset_id(path, target, volume_name=volume_name)
            if key in seen_inputs:
                continue
            seen_inputs.add(key)
            facets: dict[str, Any] = {}
            rows, size = file_stats.get(path, (None, None))
            if rows is not None or size is not None:
                facets["inputStatistics"] = InputStatisticsInputDatasetFacet(
                    rowCount=rows, size=size, fileCount=1
                )
            inputs.append(InputDataset(namespace=key[0], name=key[1], inputFacets=facets))

    by_collection: dict[CollectionRef, list[Mapping[str, Any]]] = {}
    for job in jobs:
        name = job.get("collection_name") or collection_name
        if isinstance(name, str) and name:
            by_collection.setdefault(target.collection(name, db_name), []).append(job)
    if not by_collection and collection_name:
        by_collection[target.collection(collection_name, db_name)] = []

    outputs: list[Any] = []
    for ref, collection_jobs in by_collection.items():
        output_facets: dict[str, Any] = {}
        if collection_jobs and all(job.get("state") == "Completed" for job in collection_jobs):
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=sum(_int(job.get("imported_rows")) or 0 for job in collection_jobs),
                size=sum(_int(job.get("file_size")) or 0 for job in collection_jobs),
                fileCount=sum(
                    len(_detail_files(detail))
                    for job in collection_jobs
                    for detail in job.get("details") or []
                    if isinstance(detail, Mapping)
                ),
            )
        outputs.append(
            OutputDataset(
                namespace=ref.namespace,
                name=ref.dataset_name,
                facets={
                    "datasource": DatasourceDatasetFacet(name=ref.namespace, uri=ref.namespace),
                    "datasetType": DatasetTypeDatasetFacet(datasetType="TABLE", subType="COLLECTION"),
                },
                outputFacets=output_facets,
            )
        )

    known_ids = [str(job.get("job_id")) for job in jobs if job.get("job_id")]
    all_ids = list(dict.fromkeys([*known_ids, *(str(job_id) for job_id in job_ids if job_id)]))
    run_facets: dict[str, Any] = {}
    if len(all_ids) == 1:
        run_facets["externalQuery"] = ExternalQueryRunFacet(
            externalQueryId=all_ids[0], source=target.namespace
        )
    if all_ids:
        records = []
        for job_id in all_ids:
            known: Mapping[str, Any] | None = next(
                (item for item in jobs if str(item.get("job_id")) == job_id), None
            )
            record: dict[str, Any] = {"jobId": job_id}
            if known is not None:
                job = known
                record.update(
                    {
                        "collectionName": job.get("collection_name") or collection_name,
                        "dbName": db_name or target.default_db or DEFAULT_DB_NAME,
                        "state": job.get("state"),
                        "progress": job.get("progress"),
                        "importedRows": job.get("imported_rows"),
                        "totalRows": job.get("total_rows"),
                        "fileSize": job.get("file_size"),
                        "files": sum(
                            len(_detail_files(detail))
                            for detail in job.get("details") or []
                            if isinstance(detail, Mapping)
                        ),
                        "reason": job.get("reason") or "",
                    }
                )
            records.append(record)
        run_facets[RUN_FACET_NAME] = _run_facet_class()(
            deployment=target.deployment,
            endpoint=target.base_url,
            clusterId=target.cluster_id,
            jobs=records,
        )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


# ---------------------------------------------------------------------------------------------------------
# Asset events
# ---------------------------------------------------------------------------------------------------------


def asset_event_extra(
    target: LineageTarget,
    *,
    job_id: str,
    collection_name: str,
    db_name: str | None,
    progress: Mapping[str, Any] | None = None,
    volume_name: str | None = None,
) -> dict[str, Any]:
    """
    The ``extra`` of the asset event an import emits: enough for a downstream DAG to find the job and the
    data (``triggering_asset_events``), and nothing secret.

    :param volume_name: the Zilliz Cloud volume the files came from (then in the extra as ``volume_name``).
    """
    extra: dict[str, Any] = {
        "job_id": job_id,
        "collection_name": collection_name,
        "db_name": db_name or target.default_db or DEFAULT_DB_NAME,
        "deployment": target.deployment,
        "endpoint": target.base_url,
    }
    if target.cluster_id:
        extra["cluster_id"] = target.cluster_id
    if volume_name:
        extra["volume_name"] = volume_name
    if progress:
        extra.update(
            {
                "state": progress.get("state"),
                "imported_rows": _int(progress.get("imported_rows")) or 0,
                "total_rows": _int(progress.get("total_rows")) or 0,
                "file_size": _int(progress.get("file_size")) or 0,
                "files": len(progress.get("details") or []),
            }
        )
    return extra


def pull_xcom(task_instance: Any, task_id: str, key: str) -> Any:
    """
    An XCom of ``task_id`` in the task instance's run, or None: lineage is also asked for after the fact
    (a fresh task object, the run's XCom as the only record of the job).
    """
    pull = getattr(task_instance, "xcom_pull", None)
    if not callable(pull):
        return None
    map_index = getattr(task_instance, "map_index", -1)
    try:
        return pull(task_ids=task_id, key=key, map_indexes=map_index if isinstance(map_index, int) else -1)
    except Exception:
        return None


def rendered_value(operator: Any, name: str, task_instance: Any, cache: dict[str, Any] | None = None) -> Any:
    """
    A template field's value for lineage asked for after the fact (a task object that did not run): the
    value itself when it is no template, else what Airflow recorded as rendered for the task instance
    (where the metadata database can be read), else None.
    """
    value = getattr(operator, name, None)
    if not (isinstance(value, str) and ("{{" in value or "{%" in value)):
        return value
    if cache is None:
        cache = {}
    if "__fields__" not in cache:
        try:
            from airflow.models.renderedtifields import RenderedTaskInstanceFields

            fields = RenderedTaskInstanceFields.get_templated_fields(task_instance)
        except Exception:  # no metadata database here (a worker), or no record
            fields = None
        cache["__fields__"] = dict(fields) if isinstance(fields, Mapping) else {}
    return cache["__fields__"].get(name)
