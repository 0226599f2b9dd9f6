"""
OpenLineage for Milvus / Zilliz Cloud bulk imports: the files read as input datasets, the collections written
as output datasets, the jobs as run facets.

The collections are named as their assets are (:mod:`airflow_milvus_import.assets`). The files an import
reads are named as the OpenLineage naming spec and Airflow's own file / object-storage converters name them:
``s3://{bucket}`` + key, ``gs://{bucket}`` + path, ``file`` + absolute path; a file of a Zilliz Cloud volume
is ``zilliz-volume://{volume_name}`` + its path inside the volume (a volume belongs to a project, not to a
cluster, so the cluster is not part of it). Self-hosted Milvus names files relative to its object-storage
bucket, which the client cannot see: set the connection extra ``bucket_url`` (``s3://my-bucket``,
``file:///srv/bucket``) so these inputs join the datasets of the task that wrote the files.

Importing this module is cheap (standard library only): the OpenLineage provider and client are imported
inside the functions that need them, so the provider works without ``apache-airflow-providers-openlineage``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from airflow_milvus_import.assets import DEFAULT_DB_NAME, ZILLIZ_VOLUME_SCHEME, CollectionRef, int_or_none

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow_milvus_import.assets import LineageTarget

__all__ = [
    "RUN_FACET_NAME",
    "RUN_FACET_SCHEMA_URL",
    "build_lineage",
    "empty_lineage",
    "file_dataset_id",
]

#: the key of this package's OpenLineage run facet
RUN_FACET_NAME: Final = "milvusImport"
#: identifies the run facet's schema (a URN: the schema is documented in docs/lineage.md, not hosted)
RUN_FACET_SCHEMA_URL: Final = "urn:airflow-milvus-import:openlineage:MilvusImportRunFacet:1-0-0"

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_S3_HOST: Final = re.compile(
    r"^(?:(?P<bucket>.+)\.)?s3(?:[.-](?:[a-z0-9-]+))?(?:\.dualstack)?(?:\.[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$"
)


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


def _details(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [detail for detail in job.get("details") or [] if isinstance(detail, Mapping)]


def _file_count(jobs: Sequence[Mapping[str, Any]]) -> int:
    """How many files the jobs' details name."""
    return sum(len(_detail_files(detail)) for job in jobs for detail in _details(job))


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

    known = [job for job in jobs if isinstance(job, Mapping)]
    batches = [list(batch) for batch in files] if files else _detail_batches(known)
    by_collection = _jobs_by_collection(target, known, collection_name, db_name)
    return OperatorLineage(
        inputs=_input_datasets(target, batches, _single_file_statistics(known), volume_name),
        outputs=[_output_dataset(ref, collection_jobs) for ref, collection_jobs in by_collection.items()],
        run_facets=_run_facets(target, known, job_ids, collection_name, db_name),
    )


def _detail_batches(jobs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The files of every job detail, one list per detail (a file, or the files of a column set)."""
    batches = (_detail_files(detail) for job in jobs for detail in _details(job))
    return [names for names in batches if names]


def _single_file_statistics(jobs: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int | None, int | None]]:
    """``(rows, bytes)`` by path, of the details that are one file (a column set's numbers are no file's)."""
    statistics: dict[str, tuple[int | None, int | None]] = {}
    for job in jobs:
        for detail in _details(job):
            names = _detail_files(detail)
            if len(names) == 1:
                statistics[names[0]] = (
                    int_or_none(detail.get("total_rows")),
                    int_or_none(detail.get("file_size")),
                )
    return statistics


def _input_datasets(
    target: LineageTarget,
    batches: Sequence[Sequence[str]],
    statistics: Mapping[str, tuple[int | None, int | None]],
    volume_name: str | None,
) -> list[Any]:
    """One ``InputDataset`` per distinct file, with its ``inputStatistics`` where they are known."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet

    inputs: list[Any] = []
    seen: set[tuple[str, str]] = set()
    for path in (path for batch in batches for path in batch):
        key = file_dataset_id(path, target, volume_name=volume_name)
        if key in seen:
            continue
        seen.add(key)
        facets: dict[str, Any] = {}
        rows, size = statistics.get(path, (None, None))
        if rows is not None or size is not None:
            facets["inputStatistics"] = InputStatisticsInputDatasetFacet(
                rowCount=rows, size=size, fileCount=1
            )
        inputs.append(InputDataset(namespace=key[0], name=key[1], inputFacets=facets))
    return inputs


def _jobs_by_collection(
    target: LineageTarget,
    jobs: Sequence[Mapping[str, Any]],
    collection_name: str | None,
    db_name: str | None,
) -> dict[CollectionRef, list[Mapping[str, Any]]]:
    """The collections written and the jobs that wrote each (``collection_name`` alone, no job known)."""
    by_collection: dict[CollectionRef, list[Mapping[str, Any]]] = {}
    for job in jobs:
        name = job.get("collection_name") or collection_name
        if isinstance(name, str) and name:
            by_collection.setdefault(target.collection(name, db_name), []).append(job)
    if not by_collection and collection_name:
        by_collection[target.collection(collection_name, db_name)] = []
    return by_collection


def _output_dataset(ref: CollectionRef, jobs: Sequence[Mapping[str, Any]]) -> Any:
    """The ``OutputDataset`` of one collection, with ``outputStatistics`` once all its jobs are Completed."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.generated.dataset_type_dataset import DatasetTypeDatasetFacet
    from openlineage.client.generated.datasource_dataset import DatasourceDatasetFacet
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    output_facets: dict[str, Any] = {}
    if jobs and all(job.get("state") == "Completed" for job in jobs):
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
            rowCount=sum(int_or_none(job.get("imported_rows")) or 0 for job in jobs),
            size=sum(int_or_none(job.get("file_size")) or 0 for job in jobs),
            fileCount=_file_count(jobs),
        )
    return OutputDataset(
        namespace=ref.namespace,
        name=ref.dataset_name,
        facets={
            "datasource": DatasourceDatasetFacet(name=ref.namespace, uri=ref.namespace),
            "datasetType": DatasetTypeDatasetFacet(datasetType="TABLE", subType="COLLECTION"),
        },
        outputFacets=output_facets,
    )


def _run_facets(
    target: LineageTarget,
    jobs: Sequence[Mapping[str, Any]],
    job_ids: Sequence[str],
    collection_name: str | None,
    db_name: str | None,
) -> dict[str, Any]:
    """``externalQuery`` (a single job's id) and ``milvusImport`` (every job), when any job is known."""
    from openlineage.client.generated.external_query_run import ExternalQueryRunFacet

    known_ids = [str(job.get("job_id")) for job in jobs if job.get("job_id")]
    all_ids = list(dict.fromkeys([*known_ids, *(str(job_id) for job_id in job_ids if job_id)]))
    run_facets: dict[str, Any] = {}
    if len(all_ids) == 1:
        run_facets["externalQuery"] = ExternalQueryRunFacet(
            externalQueryId=all_ids[0], source=target.namespace
        )
    if all_ids:
        database = db_name or target.default_db or DEFAULT_DB_NAME
        run_facets[RUN_FACET_NAME] = _run_facet_class()(
            deployment=target.deployment,
            endpoint=target.base_url,
            clusterId=target.cluster_id,
            jobs=[_job_record(job_id, jobs, collection_name, database) for job_id in all_ids],
        )
    return run_facets


def _job_record(
    job_id: str, jobs: Sequence[Mapping[str, Any]], collection_name: str | None, db_name: str
) -> dict[str, Any]:
    """One job of the ``milvusImport`` facet: its id, and its state and numbers where they are known."""
    job = next((item for item in jobs if str(item.get("job_id")) == job_id), None)
    if job is None:
        return {"jobId": job_id}
    return {
        "jobId": job_id,
        "collectionName": job.get("collection_name") or collection_name,
        "dbName": db_name,
        "state": job.get("state"),
        "progress": job.get("progress"),
        "importedRows": job.get("imported_rows"),
        "totalRows": job.get("total_rows"),
        "fileSize": job.get("file_size"),
        "files": _file_count([job]),
        "reason": job.get("reason") or "",
    }
