"""
The identity of a Milvus / Zilliz Cloud collection: its Airflow asset URI, shared with OpenLineage.

* self-hosted Milvus: ``milvus://{host}:{port}/{db}/{collection}`` (asset URI); OpenLineage namespace
  ``milvus://{host}:{port}``, name ``{db}.{collection}`` (the naming spec's pattern for databases,
  e.g. ``mysql://{host}:{port}`` + ``{database}.{table}``);
* Zilliz Cloud: ``zilliz://{cluster_id}/{db}/{collection}``; namespace ``zilliz://{cluster_id}`` (a
  cluster id is unique across Zilliz Cloud, and the control-plane URL is the same for every cluster);
* the files of a Zilliz Cloud volume: ``zilliz-volume://{volume_name}`` + their path inside the volume.

Also here: the deployment a connection points at (:class:`LineageTarget`) and the ``extra`` of the asset
event an import emits. This module is registered as the ``milvus`` / ``zilliz`` asset-URI handler
(:func:`sanitize_asset_uri`, :func:`create_asset`, :func:`convert_asset_to_openlineage`), which Airflow
imports whenever it normalises an asset URI: importing it is cheap (standard library only); Airflow's asset
class and the OpenLineage client are imported inside the functions that need them.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

    from airflow_milvus_import.protocol import ConnectionSettings

__all__ = [
    "DEFAULT_DB_NAME",
    "DEFAULT_MILVUS_PORT",
    "MILVUS_ASSET_SCHEME",
    "ZILLIZ_ASSET_SCHEME",
    "ZILLIZ_VOLUME_SCHEME",
    "CollectionRef",
    "LineageTarget",
    "asset_event_extra",
    "collection_ref",
    "convert_asset_to_openlineage",
    "create_asset",
    "int_or_none",
    "is_collection_asset",
    "milvus_collection_asset",
    "parse_collection_uri",
    "sanitize_asset_uri",
    "target_from_settings",
]

MILVUS_ASSET_SCHEME: Final = "milvus"
ZILLIZ_ASSET_SCHEME: Final = "zilliz"
#: the OpenLineage namespace scheme of a Zilliz Cloud volume's files
ZILLIZ_VOLUME_SCHEME: Final = "zilliz-volume"
DEFAULT_MILVUS_PORT: Final = 19530
DEFAULT_DB_NAME: Final = "default"

# Milvus' rule for database and collection names: letters, digits and underscores, not starting with a
# digit, at most 255 characters (a real server may be stricter; it will say so when the job is created).
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


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


#: The ``milvus`` / ``zilliz`` asset factory registered with Airflow (hook-level lineage). Airflow calls it
#: with keywords: the collection's name and where it is (``collection_name``, ``endpoint``, ``cluster_id``).
create_asset = milvus_collection_asset


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


# ---------------------------------------------------------------------------------------------------------
# Asset events
# ---------------------------------------------------------------------------------------------------------


def int_or_none(value: Any) -> int | None:
    """A server's number (``120``, ``"120"``, ``120.0``) as an int; None for anything else (a bool too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


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
                "imported_rows": int_or_none(progress.get("imported_rows")) or 0,
                "total_rows": int_or_none(progress.get("total_rows")) or 0,
                "file_size": int_or_none(progress.get("file_size")) or 0,
                "files": len(progress.get("details") or []),
            }
        )
    return extra
