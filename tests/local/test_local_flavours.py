"""Every row of the facts page's "Round 2" section, against the local server in each ``--flavour``.

Each test carries the body the real server sends, verbatim, and names its source; docs/milvus-import-api.md
has the same rows with the same sources. Where a source gives only a code and the end of a message, the docs
say which words are the local server's own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from local_helpers import IMPORT_PATH, Api, count_rows, make_collection, rows, unique, wait_for, write_files
from pymilvus import MilvusClient
from pymilvus.bulk_writer import BulkFileType, bulk_import, get_import_progress, list_import_jobs

from airflow_milvus_import.local import LocalImportServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import ServerFactory

pytestmark = pytest.mark.integration

FLAVOURS = ("2.4.0", "2.5", "2.6", "3.x")
TWO_PHASE = ("2.6", "3.x")
FACTS = "facts page (docs/milvus-import-api.md), Round 2"


class Flavoured:
    """A running server of one flavour, its Milvus Lite client and a REST client."""

    def __init__(self, server: LocalImportServer) -> None:
        self.server = server
        self.client = MilvusClient(uri=server.milvus_uri)
        self.api = Api(server.url)
        self.flavour = server.flavour
        self.ok_code = 200 if self.flavour == "2.4.0" else 0
        self.progress_route = "get_progress" if self.flavour == "2.4.0" else "describe"

    def ok(self, action: str, body: dict[str, Any]) -> Any:
        payload = self.api.post(action, body).json()
        assert payload["code"] == self.ok_code, payload
        return payload["data"]

    def create(self, collection: str, files: list[list[str]], **extra: Any) -> str:
        return str(self.ok("create", {"collectionName": collection, "files": files, **extra})["jobId"])

    def progress(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.ok(self.progress_route, {"jobId": job_id})
        return data

    def wait(self, job_id: str, states: tuple[str, ...] = ("Completed", "Failed")) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(
            lambda: (data := self.progress(job_id))["state"] in states and data, 60, f"job {job_id}"
        )
        return result

    def error(self, action: str, body: dict[str, Any]) -> tuple[int, str]:
        response = self.api.post(action, body)
        assert response.status_code == 200, response.text
        payload = response.json()
        return payload["code"], payload["message"]

    def job(self, count: int = 5, **extra: Any) -> tuple[str, str]:
        """A collection with ``count`` rows in a Parquet file, and a job importing it."""
        name, schema = make_collection(self.client)
        files = write_files(schema, self.server.bucket / unique("f"), BulkFileType.PARQUET, rows(count))
        return name, self.create(name, files, **extra)


@pytest.fixture(scope="module")
def flavoured_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Flavoured]]:
    started: dict[str, Flavoured] = {}
    servers: list[LocalImportServer] = []
    for flavour in FLAVOURS:
        root = tmp_path_factory.mktemp(f"flavour-{flavour}")
        server = LocalImportServer(
            data_dir=root / "data", bucket=root / "bucket", flavour=flavour, stall="stalled_*"
        )
        servers.append(server.start())
        started[flavour] = Flavoured(server)
    yield started
    for item in started.values():
        item.client.close()
    for server in servers:
        server.stop()


@pytest.fixture(params=FLAVOURS)
def each(request: pytest.FixtureRequest, flavoured_servers: dict[str, Flavoured]) -> Flavoured:
    return flavoured_servers[request.param]


@pytest.fixture(params=TWO_PHASE)
def two_phase(request: pytest.FixtureRequest, flavoured_servers: dict[str, Flavoured]) -> Flavoured:
    return flavoured_servers[request.param]


# -- job ids --


def test_unknown_job_id(each: Flavoured) -> None:
    """master / 3.x: 2101 "...on server side"; 2.5 / 2.6 (and 2.4): 2100 (FACTS, from Milvus
    internal/datacoord/services.go and pkg/util/merr/errors.go of each branch)."""
    expected = {
        "3.x": (2101, "import job does not exist, jobID=123: importing data failed on server side"),
    }.get(each.flavour, (2100, "import job does not exist, jobID=123: importing data failed"))
    assert each.error(each.progress_route, {"jobId": "123"}) == expected


def test_non_numeric_job_id(each: Flavoured) -> None:
    """3.x: 1100 (WrapErrParameterInvalid); 2.6: 2100 "parse job id failed: ..."; 2.5 / 2.4: 2100 with
    the literal ``%w`` of ``fmt.Sprint("parse job id failed, err=%w", err)`` (FACTS; Milvus 2.4
    internal/datacoord/services.go ``GetImportProgress``)."""
    error = 'strconv.ParseInt: parsing "job-abc": invalid syntax'
    expected = {
        "3.x": (1100, f"parse job id failed: {error}: invalid parameter"),
        "2.6": (2100, f"parse job id failed: {error}: importing data failed"),
    }.get(each.flavour, (2100, f"parse job id failed, err=%w{error}: importing data failed"))
    assert each.error(each.progress_route, {"jobId": "job-abc"}) == expected


def test_required_field_names_the_go_field(each: Flavoured) -> None:
    """Gin's validator names the Go field ``JobID`` of ``JobIDReq`` (FACTS; Milvus
    internal/distributed/proxy/httpserver/request_v2.go)."""
    assert each.error(each.progress_route, {}) == (
        1802,
        "missing required parameters, error: Key: 'JobIDReq.JobID' "
        "Error:Field validation for 'JobID' failed on the 'required' tag",
    )


# -- routes and envelopes by generation --


def test_routes_by_generation(each: Flavoured) -> None:
    """``describe`` arrived in Oct 2024 (not in 2.4.0); ``commit`` / ``abort`` come with 2PC (the Milvus
    "Import 2PC RESTful Test Plan" targets 2.6.x; master has them)."""
    base = each.server.url + IMPORT_PATH
    statuses = {
        route: requests.post(base + route, json={"jobId": "1"}, timeout=30).status_code
        for route in ("describe", "commit", "abort")
    }
    has_describe = each.flavour != "2.4.0"
    has_2pc = each.flavour in TWO_PHASE
    assert statuses == {
        "describe": 200 if has_describe else 404,
        "commit": 200 if has_2pc else 404,
        "abort": 200 if has_2pc else 404,
    }


def test_success_envelope_and_file_names_by_generation(each: Flavoured) -> None:
    """2.4.0 pairs ``code: 200`` with ``jobId`` and names a file in protobuf text (the Milvus 2.4 docs'
    example: ``id:449839014328146740 paths:"/8ca44f28-.../1.parquet"``); from June 2024 on Go's
    ``[a.parquet]``; ``createTime`` from 2.6 on (FACTS)."""
    name, schema = make_collection(each.client)
    files = write_files(schema, each.server.bucket / unique("e"), BulkFileType.JSON, rows(4))
    created = each.api.post("create", {"collectionName": name, "files": files}).json()
    assert created["code"] == each.ok_code
    job_id = created["data"]["jobId"]
    final = each.wait(job_id)
    assert final["state"] == "Completed"
    detail = final["details"][0]["fileName"]
    if each.flavour == "2.4.0":
        assert detail == f'id:{int(job_id) + 1} paths:"{files[0][0]}"'
    else:
        assert detail == f"[{files[0][0]}]"
    assert ("createTime" in final) == (each.flavour in TWO_PHASE)


# -- commit / abort rules (2PC generations) --


def test_commit_is_idempotent(two_phase: Flavoured) -> None:
    """Commit of a job already Committing or Completed succeeds (FACTS; the 2PC test plan IMP-LC-003)."""
    name, job_id = two_phase.job(30, options={"auto_commit": "false"})
    assert two_phase.wait(job_id, ("Uncommitted",))["progress"] == 99
    assert two_phase.ok("commit", {"jobId": job_id}) == {}
    assert two_phase.ok("commit", {"jobId": job_id}) == {}, "while Committing (or already Completed)"
    assert two_phase.wait(job_id)["state"] == "Completed"
    assert two_phase.ok("commit", {"jobId": job_id}) == {}, "after Completed"
    assert count_rows(two_phase.client, name) == 30, "no row imported twice"


def test_abort_again_succeeds_and_abort_after_commit_is_refused(two_phase: Flavoured) -> None:
    """Abort of an aborted job succeeds; of a Committing / Completed job it is refused with
    ``terminal/committed state <State>, abort not allowed`` (FACTS; the 2PC test plan IMP-ABT-001/002)."""
    _, aborted = two_phase.job(options={"auto_commit": "false"})
    two_phase.wait(aborted, ("Uncommitted",))
    assert two_phase.ok("abort", {"jobId": aborted}) == {}
    assert two_phase.ok("abort", {"jobId": aborted}) == {}
    assert two_phase.progress(aborted)["state"] == "Failed"

    _, committed = two_phase.job(options={"auto_commit": "false"})
    two_phase.wait(committed, ("Uncommitted",))
    two_phase.ok("commit", {"jobId": committed})
    two_phase.wait(committed)
    assert two_phase.error("abort", {"jobId": committed}) == (
        2100,
        f"job {committed} is in terminal/committed state Completed, abort not allowed: importing data failed",
    )


def test_abort_of_a_failed_job_is_refused(two_phase: Flavoured) -> None:
    """A job that failed on its own cannot be aborted (FACTS)."""
    name, _ = make_collection(two_phase.client)
    job_id = two_phase.create(
        name, [["a.parquet"]], options={"auto_commit": "false", "local.fail": "bad row"}
    )
    assert two_phase.wait(job_id)["state"] == "Failed"
    assert two_phase.error("abort", {"jobId": job_id}) == (
        2100,
        f"job {job_id} is in terminal/committed state Failed, abort not allowed: importing data failed",
    )


@pytest.mark.parametrize("action", ["commit", "abort"])
def test_commit_or_abort_of_an_auto_commit_job_is_refused(two_phase: Flavoured, action: str) -> None:
    """master: 2100 ``job 123 is auto-commit, manual commit/abort not allowed: importing data failed``
    (FACTS); the job is left alone."""
    _, job_id = two_phase.job()
    assert two_phase.error(action, {"jobId": job_id}) == (
        2100,
        f"job {job_id} is auto-commit, manual commit/abort not allowed: importing data failed",
    )
    assert two_phase.wait(job_id)["state"] == "Completed"


@pytest.mark.parametrize("action", ["commit", "abort"])
def test_commit_or_abort_of_a_missing_or_non_numeric_job(two_phase: Flavoured, action: str) -> None:
    """master: 2101 ``job 123 not found``; 1100 ``...invalid parameter[expected=int64 jobId][actual=job-x]``
    (FACTS). 2.6 answers as its ``describe`` does (local choice, no source for 2.6's wording)."""
    missing = two_phase.error(action, {"jobId": "123"})
    bad = two_phase.error(action, {"jobId": "job-x"})
    parse = 'strconv.ParseInt: parsing "job-x": invalid syntax'
    if two_phase.flavour == "3.x":
        assert missing == (2101, "job 123 not found")
        assert bad == (
            1100,
            f"parse job id failed: {parse}: invalid parameter[expected=int64 jobId][actual=job-x]",
        )
    else:
        assert missing == (2100, "import job does not exist, jobID=123: importing data failed")
        assert bad == (2100, f"parse job id failed: {parse}: importing data failed")


# -- options --


def test_auto_commit_option_by_generation(each: Flavoured) -> None:
    """3.x refuses a value other than "true" / "false" while decoding (1801); 2.6 reads anything but a
    case-insensitive "false" as auto-commit (the 2PC test plan's option contract); 2.4 / 2.5 have no 2PC and
    ignore the option (FACTS)."""
    name, _ = make_collection(each.client)
    body = {"collectionName": name, "files": [["a.json"]], "options": {"auto_commit": "maybe"}}
    if each.flavour == "3.x":
        assert each.error("create", body) == (
            1801,
            "can only accept json format request, error: "
            'options.auto_commit must be one of "true" or "false", got "maybe"',
        )
        return
    payload = each.api.post("create", body).json()
    assert payload["code"] == each.ok_code, payload
    if each.flavour != "2.6":
        _, job_id = each.job(options={"auto_commit": "false"})
        assert each.wait(job_id)["state"] == "Completed", "no 2PC before 2.6: the option is ignored"


def test_timeout_fails_the_job(each: Flavoured) -> None:
    """A job running past ``options.timeout`` fails with reason ``import timeout`` (FACTS, all
    generations)."""
    name, _ = make_collection(each.client, unique("stalled"))
    job_id = each.create(name, [["a.parquet"]], options={"timeout": "2s"})
    assert each.progress(job_id)["state"] == "Importing"
    final = each.wait(job_id)
    assert (final["state"], final["reason"], final["progress"]) == ("Failed", "import timeout", 0)
    assert final["completeTime"] != ""
    records = each.ok("list", {"collectionName": name})["records"]
    assert (records[0]["state"], records[0]["reason"]) == ("Failed", "import timeout")


def test_an_unparseable_timeout_is_refused(each: Flavoured) -> None:
    """Milvus internal/datacoord/services.go ``ImportV2``: ``time.ParseDuration`` then
    ``fmt.Sprint("parse import timeout failed, err=%w", err)`` wrapped as 2100."""
    name, _ = make_collection(each.client)
    body = {"collectionName": name, "files": [["a.parquet"]], "options": {"timeout": "soon"}}
    assert each.error("create", body) == (
        2100,
        'parse import timeout failed, err=%wtime: invalid duration "soon": importing data failed',
    )


def test_a_duration_past_the_timeout_leaves_no_rows(flavoured_servers: dict[str, Flavoured]) -> None:
    """A ``local.duration`` job that would end after its ``timeout`` is shown running until the timeout,
    then Failed ``import timeout``, and the rows its worker had inserted are taken back."""
    item = flavoured_servers["2.6"]
    name, job_id = item.job(20, options={"local.duration": "30", "timeout": "3s"})
    assert item.progress(job_id)["state"] in ("Pending", "Importing")
    final = item.wait(job_id)
    assert (final["state"], final["reason"]) == ("Failed", "import timeout")
    assert count_rows(item.client, name) == 0


def test_a_timeout_does_not_end_a_job_that_finished_in_time(each: Flavoured) -> None:
    started = time.monotonic()
    _, job_id = each.job(options={"timeout": "4s"})
    assert each.wait(job_id)["state"] == "Completed"
    time.sleep(max(0.0, started + 4.3 - time.monotonic()))
    assert each.progress(job_id)["state"] == "Completed"


# -- list, back-pressure --


def test_unfiltered_list_shows_every_database(each: Flavoured) -> None:
    """``list`` without ``collectionName``: every job of every database (FACTS: 2.5, master)."""
    database = unique("db")
    each.client.create_database(database)
    other = MilvusClient(uri=each.server.milvus_uri, db_name=database)
    name, schema = make_collection(other)
    files = write_files(schema, each.server.bucket / unique("d"), BulkFileType.PARQUET, rows(3))
    job_id = each.create(name, files, dbName=database)
    listed = [record["jobId"] for record in each.ok("list", {})["records"]]
    assert job_id in listed, "listed from the default database"
    filtered = each.ok("list", {"collectionName": name, "dbName": database})["records"]
    assert [record["jobId"] for record in filtered] == [job_id]
    other.close()


def test_back_pressure_by_generation(server_factory: ServerFactory, flavour: str) -> None:
    """The job limit: 2100 on 2.x, 2101 on master, checked before any job is recorded (FACTS; Milvus
    internal/datacoord/import_util.go ``CheckMaxImportJobs``... via services.go ``ImportV2``)."""
    server = server_factory(flavour=flavour, max_active_jobs=1, stall="stalled_*")
    item = Flavoured(server)
    name, _ = make_collection(item.client, unique("stalled"))
    item.create(name, [["a.parquet"]])
    before = len(item.ok("list", {})["records"])
    message = (
        "The number of jobs has reached the limit, please try again later. If your request is set to only "
        "import a single file, please consider importing multiple files in one request for better efficiency."
    )
    expected = (
        (2101, message + ": importing data failed on server side")
        if flavour == "3.x"
        else (2100, message + ": importing data failed")
    )
    assert item.error("create", {"collectionName": name, "files": [["a.parquet"]]}) == expected
    assert len(item.ok("list", {})["records"]) == before, "nothing recorded"
    item.client.close()


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- per-file state Retry (3.x) --


def test_file_state_retry_on_3x(flavoured_servers: dict[str, Flavoured]) -> None:
    """3.x ``ImportTaskStateV2`` has ``Retry`` (FACTS; Milvus pkg/proto/data_coord.proto): ``local.retry``
    shows every file in it through the first half of the import phase; the job is not ended by it."""
    item = flavoured_servers["3.x"]
    _, job_id = item.job(50, options={"local.duration": "4", "local.retry": "true"})
    seen = wait_for(
        lambda: (
            (data := item.progress(job_id))["details"] and data["details"][0]["state"] == "Retry" and data
        ),
        30,
        "a file in state Retry",
    )
    assert seen["state"] == "Importing"
    assert item.wait(job_id)["state"] == "Completed"


@pytest.mark.parametrize("flavour_name", ["2.4.0", "2.5", "2.6"])
def test_retry_option_is_refused_before_3x(
    flavoured_servers: dict[str, Flavoured], flavour_name: str
) -> None:
    item = flavoured_servers[flavour_name]
    name, _ = make_collection(item.client)
    body = {
        "collectionName": name,
        "files": [["a.parquet"]],
        "options": {"local.duration": "1", "local.retry": "1"},
    }
    code, message = item.error("create", body)
    assert code == 1100
    assert "--flavour 3.x" in message


# -- Zilliz Cloud: pageSize, volumes --


@pytest.mark.parametrize("page_size", [0, 101, -1])
def test_zilliz_page_size_out_of_range_is_96008(cloud_api: Api, page_size: int) -> None:
    """Zilliz Cloud docs, "List Import Jobs": ``pageSize`` 1-100, else 96008 (FACTS)."""
    assert cloud_api.error("list", {"pageSize": page_size}) == (
        200,
        96008,
        "pageSize should be between 1 and 100",
    )


@pytest.mark.parametrize("page_size", [1, 100])
def test_zilliz_page_size_bounds_are_accepted(cloud_api: Api, page_size: int) -> None:
    assert cloud_api.ok("list", {"pageSize": page_size})["pageSize"] == page_size


def test_pymilvus_imports_from_a_zilliz_volume(
    shared_server: LocalImportServer, shared_client: MilvusClient
) -> None:
    """pymilvus' ``bulk_import(volume_name=..., data_paths=...)`` (pymilvus/bulk_writer/bulk_import.py sends
    ``volumeName`` + ``dataPaths``; the Zilliz docs' "Import data via volume"), unchanged, on a volume that is
    a folder under the data dir."""
    collection, schema = make_collection(shared_client)
    volume = unique("vol")
    folder = unique("part")
    written = write_files(schema, shared_server.volumes / volume / folder, BulkFileType.PARQUET, rows(25))
    data_paths = [[str(Path(written[0][0]).relative_to(shared_server.volumes / volume))]]
    response = bulk_import(
        url=shared_server.cloud_url,
        collection_name=collection,
        cluster_id=shared_server.cluster_id,
        api_key="any-key",
        volume_name=volume,
        data_paths=data_paths,
    )
    job_id = response.json()["data"]["jobId"]
    final = wait_for(
        lambda: (
            (
                data := get_import_progress(
                    url=shared_server.cloud_url, job_id=job_id, cluster_id=shared_server.cluster_id
                ).json()["data"]
            )["state"]
            in ("Completed", "Failed")
            and data
        ),
        60,
        "the volume import",
    )
    assert final["state"] == "Completed", final
    assert final["details"][0]["fileName"] == data_paths[0][0]
    assert count_rows(shared_client, collection) == 25
    records = list_import_jobs(
        url=shared_server.cloud_url, cluster_id=shared_server.cluster_id, collection_name=collection
    ).json()["data"]["records"]
    assert [record["jobId"] for record in records] == [job_id]


def test_a_volume_must_exist_and_paths_stay_inside(cloud_api: Api, shared_server: LocalImportServer) -> None:
    collection, _ = make_collection(MilvusClient(uri=shared_server.milvus_uri))
    body = {"collectionName": collection, "volumeName": "no-such-volume", "dataPaths": [["a.parquet"]]}
    assert cloud_api.error("create", body) == (
        200,
        1100,
        "volume no-such-volume not found: invalid parameter",
    )
    volume = unique("vol")
    (shared_server.volumes / volume).mkdir(parents=True)
    outside = {"collectionName": collection, "volumeName": volume, "dataPaths": [["../../bucket/x.parquet"]]}
    status, code, message = cloud_api.error("create", outside)
    assert (status, code) == (200, 2100)
    assert "outside the bucket" in message
    missing = {"collectionName": collection, "volumeName": volume}
    assert cloud_api.error("create", missing)[1:] == (
        1802,
        "missing required parameters, error: Key: 'ImportReq.DataPaths' "
        "Error:Field validation for 'DataPaths' failed on the 'required' tag",
    )


# -- pymilvus unchanged against each flavour --


@pytest.mark.parametrize("flavour_name", ["2.5", "2.6", "3.x"])
def test_pymilvus_against_each_flavour(flavoured_servers: dict[str, Flavoured], flavour_name: str) -> None:
    """pymilvus' bulk_import / get_import_progress (``describe``) / list_import_jobs, unchanged. (2.4.0 has
    no ``describe`` and answers ``code: 200``, which pymilvus reads as an error: like the real 2.4.0.)"""
    item = flavoured_servers[flavour_name]
    name, schema = make_collection(item.client)
    files = write_files(schema, item.server.bucket / unique("p"), BulkFileType.PARQUET, rows(12))
    job_id = bulk_import(url=item.server.url, collection_name=name, files=files).json()["data"]["jobId"]
    final = wait_for(
        lambda: (
            (data := get_import_progress(url=item.server.url, job_id=job_id).json()["data"])["state"]
            in ("Completed", "Failed")
            and data
        ),
        60,
        "the pymilvus job",
    )
    assert final["state"] == "Completed"
    listed = list_import_jobs(url=item.server.url, collection_name=name).json()["data"]["records"]
    assert [record["jobId"] for record in listed] == [job_id]
    assert count_rows(item.client, name) == 12
