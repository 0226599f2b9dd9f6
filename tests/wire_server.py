"""
A Milvus / Zilliz Cloud import API on 127.0.0.1 for the hook's tests, answering like
``docs/milvus-import-api.md`` says real servers do.

``FakeImportServer`` is stateful (jobs, collections, paging, auth) and runs on pytest-httpserver; it can
also be told to answer the next requests of a route with canned responses (faults, error rows the hook
never provokes itself). ``RawSocketServer`` misbehaves below HTTP: it drops connections or never answers.
It imports nothing from the package under test.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug import Request, Response

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from pytest_httpserver import HTTPServer

ROUTE_PREFIX = "/v2/vectordb/jobs/import/"
MILVUS_ROUTES = {"create", "list", "describe", "get_progress", "commit", "abort"}
LEGACY_ROUTES = {"create", "list", "get_progress"}
ZILLIZ_ROUTES = {"create", "list", "describe", "getProgress"}
NOT_FOUND_TEXT = "404 page not found"


def envelope(data: Any = None, *, code: int = 0, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code}
    if data is not None:
        body["data"] = data
    if message is not None:
        body["message"] = message
    return body


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=dict(headers or {}), content_type="application/json"
    )


def text_response(
    text: str | bytes,
    status: int,
    content_type: str = "text/plain; charset=utf-8",
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(text, status=status, headers=dict(headers or {}), content_type=content_type)


@dataclass
class Seen:
    """One request the server received."""

    route: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any = None


@dataclass
class FakeJob:
    job_id: str
    collection_name: str
    files: list[list[str]]
    state: str = "Pending"
    progress: int = 0
    imported_rows: int = 0
    total_rows: int = 0
    reason: str = ""
    complete_time: str = ""
    create_time: str = "2024-04-01T06:10:00Z"
    file_states: list[tuple[str, int, str]] = field(default_factory=list)  # (state, progress, reason)
    options: dict[str, str] = field(default_factory=dict)
    volume_name: str | None = None


class FakeImportServer:
    """
    The import routes on a pytest-httpserver, in the Milvus or Zilliz Cloud flavour.

    :param flavour: ``"milvus"`` (numeric string ids, ``describe`` + ``get_progress``, no paging) or
        ``"zilliz"`` (``clusterId`` required, ``job-...`` ids, ``describe`` + ``getProgress``, paging).
    :param legacy: Milvus 2.4 before Oct 2024: no ``describe`` (404 text), ``code: 200``, key ``jobID``.
    :param token: Bearer token required (401 / 1800 without it; Zilliz: 200 / 21119).
    :param prefix: a path prefix before ``/v2/...`` (a Host such as ``http://127.0.0.1:PORT/cloud``).
    :param ignore_paging: Zilliz: answer every page with the first page (a server that ignores paging).
    :param rows_per_file: when set, a created job is Completed at once with this many rows per file (for
        tests that run a whole task against this server).
    """

    def __init__(
        self,
        httpserver: HTTPServer,
        *,
        flavour: str = "milvus",
        legacy: bool = False,
        token: str | None = None,
        cluster_id: str = "in01-0123456789abcdef",
        collections: Iterable[str] = ("docs",),
        prefix: str = "",
        ignore_paging: bool = False,
        max_page_size: int = 100,
        rows_per_file: int | None = None,
    ) -> None:
        self.httpserver = httpserver
        self.flavour = flavour
        self.legacy = legacy
        self.token = token
        self.cluster_id = cluster_id
        self.collections = set(collections)
        self.prefix = prefix.rstrip("/")
        self.ignore_paging = ignore_paging
        self.max_page_size = max_page_size
        self.rows_per_file = rows_per_file
        self.jobs: dict[str, FakeJob] = {}
        self.seen: list[Seen] = []
        self._canned: dict[str, list[Response | Callable[[Request], Response]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        httpserver.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    # ---- set-up --------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.httpserver.host}:{self.httpserver.port}{self.prefix}"

    def url(self, route: str) -> str:
        return f"{self.base_url}{ROUTE_PREFIX}{route}"

    @property
    def routes(self) -> set[str]:
        if self.flavour == "zilliz":
            return ZILLIZ_ROUTES
        return LEGACY_ROUTES if self.legacy else MILVUS_ROUTES

    def new_job_id(self) -> str:
        number = next(self._ids)
        if self.flavour == "zilliz":
            return f"job-{number:022d}"[:26]
        return str(448761313698322000 + number)

    def add_job(
        self, collection_name: str = "docs", files: list[list[str]] | None = None, **fields: Any
    ) -> str:
        job_id = fields.pop("job_id", None) or self.new_job_id()
        files = files or [["a.parquet"]]
        job = FakeJob(job_id=job_id, collection_name=collection_name, files=files, **fields)
        self.jobs[job_id] = job
        return job_id

    def answer_next(self, route: str, *responses: Response | Callable[[Request], Response]) -> None:
        """Answer the next requests of ``route`` (``"*"``: any route) with these, in order."""
        self._canned.setdefault(route, []).extend(responses)

    def count(self, route: str | None = None) -> int:
        return sum(1 for seen in self.seen if route is None or seen.route == route)

    def routes_seen(self) -> list[str]:
        return [seen.route for seen in self.seen]

    # ---- wire forms ----------------------------------------------------------------------------------

    def _file_name(self, group: list[str]) -> str:
        if self.flavour == "zilliz":
            return group[0] if len(group) == 1 else ",".join(group)
        return "[" + " ".join(group) + "]"

    def progress_data(self, job: FakeJob) -> dict[str, Any]:
        details = []
        for index, group in enumerate(job.files):
            state, progress, reason = (
                job.file_states[index]
                if index < len(job.file_states)
                else ("Completed" if job.state == "Completed" else "InProgress", job.progress, "")
            )
            detail: dict[str, Any] = {
                "fileName": self._file_name(group),
                "fileSize": 1024 * (index + 1),
                "state": state,
                "progress": progress,
                "importedRows": job.imported_rows // max(1, len(job.files)),
                "totalRows": job.total_rows // max(1, len(job.files)),
                "completeTime": job.complete_time,
            }
            if reason or self.flavour == "zilliz":
                detail["reason"] = reason
            details.append(detail)
        data: dict[str, Any] = {
            "jobID" if self.legacy else "jobId": job.job_id,
            "collectionName": job.collection_name,
            "state": job.state,
            "progress": job.progress,
            "importedRows": job.imported_rows,
            "totalRows": job.total_rows,
            "fileSize": sum(detail["fileSize"] for detail in details),
            "completeTime": job.complete_time,
            "details": details,
        }
        if not self.legacy:
            data["createTime"] = job.create_time
        if job.reason or self.flavour == "zilliz":
            data["reason"] = job.reason
        if self.flavour == "zilliz":
            data["fileName"] = self._file_name(job.files[0])
        return data

    def record(self, job: FakeJob) -> dict[str, Any]:
        record: dict[str, Any] = {
            "jobID" if self.legacy else "jobId": job.job_id,
            "collectionName": job.collection_name,
            "state": job.state,
        }
        if self.flavour != "zilliz":
            record["progress"] = job.progress
        if job.reason:
            record["reason"] = job.reason
        return record

    def ok(self, data: Any) -> Response:
        return json_response(envelope(data, code=200 if self.legacy else 0))

    @staticmethod
    def fail(code: int, message: str, status: int = 200) -> Response:
        return json_response(envelope(code=code, message=message), status=status)

    # ---- the handler ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        route = path.rsplit("/", 1)[-1] if ROUTE_PREFIX in path else path
        raw = request.get_data()
        seen = Seen(route=route, path=path, headers=dict(request.headers), raw=raw)
        with self._lock:
            self.seen.append(seen)
            canned = self._canned.get(route) or self._canned.get("*")
            answer = canned.pop(0) if canned else None
        if answer is not None:
            with suppress(ValueError):
                seen.body = json.loads(raw)  # what was sent, for tests that check it
            return answer(request) if callable(answer) and not isinstance(answer, Response) else answer
        if (
            request.method != "POST"
            or path != f"{self.prefix}{ROUTE_PREFIX}{route}"
            or route not in self.routes
        ):
            return text_response(NOT_FOUND_TEXT, 404)
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            if self.flavour == "zilliz":
                return self.fail(21119, "The apikey is illegal.")
            return self.fail(1800, "user hasn't authenticated", status=401)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            return self.fail(1801, f"can only accept json format request, error: {exc}")
        seen.body = body
        if self.flavour == "zilliz" and not body.get("clusterId"):
            return self.fail(1802, "missing required parameters, error: Key: 'clusterId' Error:required")
        return getattr(self, f"_route_{route.lower()}")(body)

    def _route_create(self, body: dict[str, Any]) -> Response:
        collection = body.get("collectionName")
        key = "objectUrls" if self.flavour == "zilliz" else "files"
        if self.flavour == "zilliz" and "volumeName" in body:
            # "Import data via volume" (Zilliz docs): volumeName + dataPaths, no objectUrls or credentials.
            if not isinstance(body["volumeName"], str) or not body["volumeName"]:
                return self.fail(1100, "volumeName is empty: invalid parameter")
            if any(name in body for name in ("objectUrls", "objectUrl", "accessKey", "secretKey", "token")):
                return self.fail(1100, "volumeName cannot be combined with objectUrls or credentials")
            key = "dataPaths"
        if not isinstance(collection, str) or key not in body:
            return self.fail(
                1802, f"missing required parameters, error: collectionName and {key} are required"
            )
        files = body[key]
        if not isinstance(files, list) or not all(
            isinstance(group, list) and all(isinstance(item, str) for item in group) for group in files
        ):
            return self.fail(1801, f"can only accept json format request, error: {key} must be [][]string")
        options = body.get("options", {})
        if not isinstance(options, dict) or not all(isinstance(value, str) for value in options.values()):
            return self.fail(
                1801, "can only accept json format request, error: options must be map[string]string"
            )
        if collection not in self.collections:
            database = body.get("dbName", "default")
            return self.fail(100, f"collection not found[database={database}][collection={collection}]")
        if not files:
            return self.fail(1100, "import request is empty: invalid parameter")
        job_id = self.add_job(collection, files, options=options)
        job = self.jobs[job_id]
        if key == "dataPaths":
            job.volume_name = body["volumeName"]
        if self.rows_per_file is not None:
            job.state, job.progress, job.complete_time = "Completed", 100, "2024-04-01T06:17:55Z"
            job.imported_rows = job.total_rows = self.rows_per_file * len(files)
        return self.ok({"jobID" if self.legacy else "jobId": job_id})

    def _job(self, body: dict[str, Any]) -> FakeJob | Response:
        if "jobId" not in body:
            return self.fail(1802, "missing required parameters, error: Key: 'jobId' Error:required")
        job_id = body["jobId"]
        if not isinstance(job_id, str):
            return self.fail(
                1801,
                "can only accept json format request, error: json: cannot unmarshal "
                "number into Go struct field GetImportReq.jobId of type string",
            )
        if self.flavour == "milvus" and not job_id.isdigit():
            return self.fail(
                2100,
                f'parse job id failed, err=strconv.ParseInt: parsing "{job_id}": '
                "invalid syntax: importing data failed",
            )
        job = self.jobs.get(job_id)
        if job is None:
            return self.fail(2100, f"import job does not exist, jobID={job_id}: importing data failed")
        return job

    def _progress(self, body: dict[str, Any]) -> Response:
        job = self._job(body)
        if isinstance(job, Response):
            return job
        return self.ok(self.progress_data(job))

    _route_describe = _progress
    _route_get_progress = _progress
    _route_getprogress = _progress

    def _route_list(self, body: dict[str, Any]) -> Response:
        collection = body.get("collectionName")
        jobs = [job for job in self.jobs.values() if not collection or job.collection_name == collection]
        if self.flavour != "zilliz":
            return self.ok({"records": [self.record(job) for job in jobs]})
        size = min(int(body.get("pageSize", 10)), self.max_page_size)
        page = int(body.get("currentPage", 1))
        if self.ignore_paging:
            page = 1
        chunk = jobs[(page - 1) * size : page * size]
        return self.ok(
            {
                "count": len(jobs),
                "currentPage": page,
                "pageSize": size,
                "records": [self.record(job) for job in chunk],
            }
        )

    def _settle(self, body: dict[str, Any], state: str) -> Response:
        job = self._job(body)
        if isinstance(job, Response):
            return job
        if job.state != "Uncommitted":
            return self.fail(
                2100, f"import job {job.job_id} is not uncommitted (state {job.state}): importing data failed"
            )
        job.state = state
        return self.ok({})

    def _route_commit(self, body: dict[str, Any]) -> Response:
        return self._settle(body, "Committing")

    def _route_abort(self, body: dict[str, Any]) -> Response:
        return self._settle(body, "Failed")


class RawSocketServer:
    """
    A TCP server on 127.0.0.1 that misbehaves below HTTP.

    :param behaviour: ``"drop"`` reads the request then closes without answering; ``"silent"`` reads it
        and never answers (until stopped); ``"raw"`` sends ``payload`` as is then closes.
    """

    def __init__(self, behaviour: str, payload: bytes = b"") -> None:
        self.behaviour = behaviour
        self.payload = payload
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._open: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(2)
            with suppress(OSError):
                conn.recv(65536)
            if self.behaviour == "silent":
                self._open.append(conn)
                continue
            if self.behaviour == "raw":
                conn.sendall(self.payload)
            conn.close()

    def __enter__(self) -> RawSocketServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._open:
            conn.close()
        self._sock.close()


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


def slow(seconds: float, response: Response) -> Callable[[Request], Response]:
    """A canned answer that comes only after ``seconds``."""

    def answer(request: Request) -> Response:
        time.sleep(seconds)
        return response

    return answer
