"""The HTTP app: import-job routes in two flavours, a few collection routes, private ``/_local/`` routes.

* self-hosted Milvus at ``/v2/vectordb/jobs/import/{create,list,describe,get_progress,commit,abort}``, as the
  generation ``--flavour`` names answers (2.4.0 has no ``describe``, 2.4.0 and 2.5 no ``commit`` / ``abort``);
* Zilliz Cloud at ``/cloud/v2/vectordb/jobs/import/{create,list,describe,getProgress}`` (volumes included).

Answers follow ``milvus-import-api.md``: HTTP 200 with ``{"code": 0, "data": ...}`` or ``{"code": n,
"message": ...}``, 401 for a missing token on self-hosted Milvus, and Gin's plain-text ``404 page not found``
for any other route.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_milvus_import.local.execution import entry_label
from airflow_milvus_import.local.jobs import CreateRequest
from airflow_milvus_import.local.manager import CLOUD, MILVUS, JobManager
from airflow_milvus_import.local.wire import (
    CODE_ZILLIZ_PAGE_SIZE,
    NOT_FOUND_TEXT,
    ApiError,
    get_id,
    get_int,
    get_path_lists,
    get_str,
    get_string_map,
    illegal_api_key,
    missing_required,
    parse_body,
    protobuf_text_file,
    unauthenticated,
)

if TYPE_CHECKING:
    from airflow_milvus_import.local.collections_api import CollectionsApi
    from airflow_milvus_import.local.config import ServerConfig
    from airflow_milvus_import.local.faults import Stats
    from airflow_milvus_import.local.jobs import FileView, Job, JobView

Handler = Callable[[Request], Awaitable[Response]]
IMPORT_PREFIX = "/v2/vectordb/jobs/import/"
CLOUD_PREFIX = "/cloud"
DEFAULT_DB = "default"
DEFAULT_PAGE_SIZE = 10
MIN_PAGE_SIZE = 1
MAX_PAGE_SIZE = 100


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")), status_code=status, media_type="application/json"
    )


class ImportApi:
    """The handlers of both flavours.

    :param config: the server's settings.
    :param manager: the jobs.
    """

    def __init__(self, config: ServerConfig, manager: JobManager) -> None:
        self._config = config
        self._manager = manager
        self._legacy = config.legacy
        self._generation = manager.generation

    # -- envelopes --

    def ok(self, flavour: str, data: Any) -> Response:
        """The success envelope (``code: 200`` in legacy mode and on 2.4.0, like early Milvus 2.4)."""
        code = 0
        if flavour == MILVUS:
            code = 200 if self._legacy else self._generation.success_code
        return _json({"code": code, "data": data})

    def _id_key(self, flavour: str) -> str:
        return "jobID" if self._legacy and flavour == MILVUS else "jobId"

    def authorize(self, request: Request, flavour: str) -> None:
        """Check the Bearer token when the server has one."""
        token = self._config.token
        if not token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise unauthenticated() if flavour == MILVUS else illegal_api_key()

    @staticmethod
    def db_name(request: Request, body: dict[str, Any], struct: str) -> str:
        """``dbName`` from the body, else the ``DB-Name`` header, else ``default``."""
        return get_str(body, "dbName", struct) or request.headers.get("db-name", "") or DEFAULT_DB

    @staticmethod
    def cluster_id(body: dict[str, Any], struct: str) -> str:
        """Zilliz Cloud's required ``clusterId``."""
        return get_str(body, "clusterId", struct, required=True)

    # -- views --

    def progress_data(self, job: Job, view: JobView) -> dict[str, Any]:
        """``data`` of ``describe`` / ``get_progress`` / ``getProgress``."""
        milvus = job.flavour == MILVUS
        data: dict[str, Any] = {
            self._id_key(job.flavour): job.job_id,
            "collectionName": job.collection_name,
            "state": view.state.value,
            "progress": view.progress,
            "importedRows": view.imported_rows,
            "totalRows": view.total_rows,
            "fileSize": view.file_size,
            "completeTime": view.complete_time,
        }
        if milvus and self._generation.create_time and not self._legacy:
            data["createTime"] = view.create_time
        if not milvus:
            data["fileName"] = ", ".join(entry_label(job, entry) for entry in job.files)
            data["reason"] = view.reason
        elif view.reason:
            data["reason"] = view.reason
        data["details"] = [self._detail(job, number, detail) for number, detail in enumerate(view.details)]
        return data

    def _file_name(self, job: Job, number: int, paths: list[str]) -> str:
        if job.flavour == MILVUS and self._generation.protobuf_file_names:
            # Milvus allocates the job id, then one id per file: idStart + i + 1
            return protobuf_text_file(int(job.job_id) + number + 1, paths)
        return entry_label(job, paths)

    def _detail(self, job: Job, number: int, detail: FileView) -> dict[str, Any]:
        item: dict[str, Any] = {
            "fileName": self._file_name(job, number, detail.paths),
            "fileSize": detail.file_size,
            "state": detail.state,
            "progress": detail.progress,
            "importedRows": detail.imported_rows,
            "totalRows": detail.total_rows,
            "completeTime": detail.complete_time,
        }
        if job.flavour == CLOUD or detail.reason:
            item["reason"] = detail.reason
        return item

    def records(self, flavour: str, jobs: list[Job]) -> list[dict[str, Any]]:
        """``list`` records of ``jobs`` (from their summaries: no rows or files, so thousands stay cheap).

        :param flavour: ``MILVUS`` or ``CLOUD`` (which record shape).
        :param jobs: the jobs to show, in order.
        """
        summaries = self._manager.summaries(jobs, time.time())
        if flavour == CLOUD:
            return [
                {"collectionName": job.collection_name, "jobId": job.job_id, "state": summary.state.value}
                for job, summary in zip(jobs, summaries, strict=True)
            ]
        id_key = self._id_key(MILVUS)
        records: list[dict[str, Any]] = []
        for job, summary in zip(jobs, summaries, strict=True):
            record: dict[str, Any] = {
                id_key: job.job_id,
                "collectionName": job.collection_name,
                "state": summary.state.value,
                "progress": summary.progress,
            }
            if summary.reason:
                record["reason"] = summary.reason
            records.append(record)
        return records

    # -- self-hosted Milvus --

    async def milvus_create(self, request: Request) -> Response:
        """``create`` on self-hosted Milvus."""
        self.authorize(request, MILVUS)
        body = parse_body(await request.body(), "ImportReq")
        collection = get_str(body, "collectionName", "ImportReq", required=True)
        files = get_path_lists(body, "files", "ImportReq")
        if files is None:
            raise missing_required("ImportReq", "files")
        create = CreateRequest(
            flavour=MILVUS,
            cluster_id="",
            db_name=self.db_name(request, body, "ImportReq"),
            collection_name=collection,
            partition_name=get_str(body, "partitionName", "ImportReq"),
            files=files,
            options=get_string_map(body, "options", "ImportReq"),
        )
        job = self._manager.create(create)
        return self.ok(MILVUS, {self._id_key(MILVUS): job.job_id})

    async def milvus_list(self, request: Request) -> Response:
        """``list`` on self-hosted Milvus (no pagination)."""
        self.authorize(request, MILVUS)
        body = parse_body(await request.body(), "ListImportReq")
        jobs = self._manager.list_jobs(
            MILVUS,
            db_name=self.db_name(request, body, "ListImportReq"),
            collection_name=get_str(body, "collectionName", "ListImportReq"),
        )
        return self.ok(MILVUS, {"records": self.records(MILVUS, jobs)})

    async def milvus_progress(self, request: Request) -> Response:
        """``describe`` and ``get_progress`` on self-hosted Milvus."""
        self.authorize(request, MILVUS)
        body = parse_body(await request.body(), "JobIDReq")
        job = self._manager.find(MILVUS, get_id(body, "jobId", "JobIDReq", allow_number=False))
        return self.ok(MILVUS, self.progress_data(job, self._manager.view(job, time.time())))

    async def milvus_commit(self, request: Request) -> Response:
        """``commit`` (2PC jobs, Milvus 3.x)."""
        self._manager.commit(await self._job_to_commit(request))
        return self.ok(MILVUS, {})

    async def milvus_abort(self, request: Request) -> Response:
        """``abort`` (Milvus 3.x)."""
        self._manager.abort(await self._job_to_commit(request))
        return self.ok(MILVUS, {})

    async def _job_to_commit(self, request: Request) -> Job:
        """The self-hosted job a ``commit`` / ``abort`` body names."""
        self.authorize(request, MILVUS)
        body = parse_body(await request.body(), "JobIDReq")
        job_id = get_id(body, "jobId", "JobIDReq", allow_number=False)
        return self._manager.find(MILVUS, job_id, for_commit=True)

    # -- Zilliz Cloud --

    async def cloud_create(self, request: Request) -> Response:
        """``create`` on Zilliz Cloud: ``objectUrls`` (or ``objectUrl``, ``dataPaths``, ``files``), or a
        volume: ``volumeName`` with ``dataPaths`` inside it."""
        self.authorize(request, CLOUD)
        body = parse_body(await request.body(), "ImportReq")
        cluster = self.cluster_id(body, "ImportReq")
        collection = get_str(body, "collectionName", "ImportReq", required=True)
        volume = get_str(body, "volumeName", "ImportReq")
        if volume:
            files = get_path_lists(body, "dataPaths", "ImportReq")
            if files is None:
                raise missing_required("ImportReq", "dataPaths")
        else:
            files = self._cloud_files(body)
        create = CreateRequest(
            flavour=CLOUD,
            cluster_id=cluster,
            db_name=self.db_name(request, body, "ImportReq"),
            collection_name=collection,
            partition_name=get_str(body, "partitionName", "ImportReq"),
            files=files,
            options=get_string_map(body, "options", "ImportReq"),
            volume_name=volume,
        )
        job = self._manager.create(create)
        return self.ok(CLOUD, {"jobId": job.job_id})

    @staticmethod
    def _cloud_files(body: dict[str, Any]) -> list[list[str]]:
        for field in ("objectUrls", "dataPaths", "files"):
            files = get_path_lists(body, field, "ImportReq")
            if files is not None:
                return files
        single = get_str(body, "objectUrl", "ImportReq")
        if single:
            return [[single]]
        raise missing_required("ImportReq", "objectUrls")

    async def cloud_list(self, request: Request) -> Response:
        """``list`` on Zilliz Cloud, paginated (``pageSize``, ``currentPage``; ``count`` is the total)."""
        self.authorize(request, CLOUD)
        body = parse_body(await request.body(), "ListImportReq")
        cluster = self.cluster_id(body, "ListImportReq")
        page_size = get_int(body, "pageSize", "ListImportReq", DEFAULT_PAGE_SIZE)
        current_page = get_int(body, "currentPage", "ListImportReq", 1)
        if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise ApiError(
                CODE_ZILLIZ_PAGE_SIZE, f"pageSize should be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}"
            )
        current_page = max(current_page, 1)
        jobs = self._manager.list_jobs(
            CLOUD, cluster_id=cluster, collection_name=get_str(body, "collectionName", "ListImportReq")
        )
        start = (current_page - 1) * page_size
        records = self.records(CLOUD, jobs[start : start + page_size])
        data = {"count": len(jobs), "currentPage": current_page, "pageSize": page_size, "records": records}
        return self.ok(CLOUD, data)

    async def cloud_progress(self, request: Request) -> Response:
        """``describe`` and ``getProgress`` on Zilliz Cloud (``jobId`` may be a number there)."""
        self.authorize(request, CLOUD)
        body = parse_body(await request.body(), "JobIDReq")
        cluster = self.cluster_id(body, "JobIDReq")
        job = self._manager.find(CLOUD, get_id(body, "jobId", "JobIDReq", allow_number=True), cluster)
        return self.ok(CLOUD, self.progress_data(job, self._manager.view(job, time.time())))


def _collection_route(api: ImportApi, call: Callable[[dict[str, Any], str], Any], struct: str) -> Handler:
    async def handler(request: Request) -> Response:
        api.authorize(request, MILVUS)
        body = parse_body(await request.body(), struct)
        return api.ok(MILVUS, call(body, api.db_name(request, body, struct)))

    return handler


def _not_found(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse(NOT_FOUND_TEXT, status_code=404)


def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json(exc.body(), status=exc.http_status)


def create_app(
    config: ServerConfig,
    manager: JobManager,
    collections: CollectionsApi,
    stats: Stats,
    info: Callable[[], dict[str, Any]],
) -> FastAPI:
    """Build the app.

    :param config: the server's settings.
    :param manager: the jobs.
    :param collections: the collection routes' logic.
    :param stats: request and fault counters.
    :param info: URLs and ports, for ``/_local/health``.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="milvus-import-local")
    api = ImportApi(config, manager)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _not_found)

    milvus_routes: dict[str, Handler] = {
        "create": api.milvus_create,
        "list": api.milvus_list,
        "get_progress": api.milvus_progress,
    }
    if not config.legacy and manager.generation.describe_route:
        milvus_routes["describe"] = api.milvus_progress
    if not config.legacy and manager.generation.two_phase:
        milvus_routes.update(commit=api.milvus_commit, abort=api.milvus_abort)
    cloud_routes: dict[str, Handler] = {
        "create": api.cloud_create,
        "list": api.cloud_list,
        "describe": api.cloud_progress,
        "getProgress": api.cloud_progress,
    }
    for action, handler in milvus_routes.items():
        app.add_api_route(IMPORT_PREFIX + action, handler, methods=["POST"])
    for action, handler in cloud_routes.items():
        app.add_api_route(CLOUD_PREFIX + IMPORT_PREFIX + action, handler, methods=["POST"])

    collection_routes = {
        "/v2/vectordb/collections/create": (collections.create, "CollectionReq"),
        "/v2/vectordb/collections/describe": (collections.describe, "CollectionNameReq"),
        "/v2/vectordb/collections/has": (collections.has, "CollectionNameReq"),
        "/v2/vectordb/collections/list": (collections.list_names, "DatabaseReq"),
        "/v2/vectordb/collections/drop": (collections.drop, "CollectionNameReq"),
        "/v2/vectordb/entities/query": (collections.query, "QueryReqV2"),
    }
    for path, (call, struct) in collection_routes.items():
        app.add_api_route(path, _collection_route(api, call, struct), methods=["POST"])

    async def health(_request: Request) -> Response:
        return _json({"status": "ok", **info()})

    async def stats_route(_request: Request) -> Response:
        return _json({**stats.snapshot(), "jobs": manager.counts()})

    async def stats_reset(_request: Request) -> Response:
        stats.reset()
        return _json({})

    app.add_api_route("/_local/health", health, methods=["GET"])
    app.add_api_route("/_local/stats", stats_route, methods=["GET"])
    app.add_api_route("/_local/stats/reset", stats_reset, methods=["POST"])
    return app
