"""A job's life as clients see it: phase-weighted progress, rows, details, times; duration, injected failure,
stall and abort."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from local_helpers import Api, count_rows, make_collection, rows, unique, wait_for, write_files
from pymilvus import MilvusClient
from pymilvus.bulk_writer import BulkFileType

from airflow_milvus_import.local import LocalImportServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalImportServer]:
    """A server importing at most 400 rows/s per job, where collections named ``stalled_*`` never finish."""
    root = tmp_path_factory.mktemp("throttled")
    with LocalImportServer(
        data_dir=root / "data", bucket=root / "bucket", rows_per_second=400, stall="stalled_*"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def client(throttled: LocalImportServer) -> Iterator[MilvusClient]:
    milvus = MilvusClient(uri=throttled.milvus_uri)
    yield milvus
    milvus.close()


def _watch(api: Api, job_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Every describe answer until the job ends."""
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        seen.append(api.progress(job_id))
        return seen[-1]["state"] in ("Completed", "Failed")

    wait_for(finished, timeout, f"job {job_id}", interval=0.02)
    return seen


def test_progress_follows_the_milvus_phases(throttled: LocalImportServer, client: MilvusClient) -> None:
    name, schema = make_collection(client)
    files = []
    for part in range(3):
        files += write_files(
            schema, throttled.bucket / unique("p"), BulkFileType.PARQUET, rows(300, start=part * 300)
        )
    api = Api(throttled.url)
    job_id = api.create(name, files)
    seen = _watch(api, job_id)

    progresses = [s["progress"] for s in seen]
    assert progresses == sorted(progresses), "progress never goes back"
    assert seen[-1]["state"] == "Completed"
    assert {s["state"] for s in seen} <= {"Pending", "Importing", "Completed"}
    for snapshot in seen:
        assert "reason" not in snapshot, "self-hosted Milvus leaves reason out while it is empty"
        assert TIME_FORMAT.match(snapshot["createTime"])
        if snapshot["progress"] < 40:
            assert (snapshot["importedRows"], snapshot["totalRows"], snapshot["details"]) == (0, 0, [])
        if snapshot["state"] != "Completed":
            assert snapshot["completeTime"] == ""
            assert snapshot["progress"] < 100
    importing = [s for s in seen if 40 <= s["progress"] < 70]
    assert importing, "the import phase (40-70) is visible at 400 rows/s"
    assert any(0 < s["importedRows"] < 900 for s in importing)
    assert all(s["totalRows"] == 900 for s in importing)
    assert any({d["state"] for d in s["details"]} & {"InProgress", "Pending"} for s in importing)

    final = seen[-1]
    assert (final["progress"], final["importedRows"], final["totalRows"]) == (100, 900, 900)
    assert TIME_FORMAT.match(final["completeTime"])
    sizes = [Path(f[0]).stat().st_size for f in files]
    assert [d["fileSize"] for d in final["details"]] == sizes
    assert final["fileSize"] == sum(sizes)
    assert [d["fileName"] for d in final["details"]] == [f"[{f[0]}]" for f in files]
    for detail in final["details"]:
        assert (detail["state"], detail["progress"], detail["importedRows"], detail["totalRows"]) == (
            "Completed",
            100,
            300,
            300,
        )
        assert TIME_FORMAT.match(detail["completeTime"])
        assert "reason" not in detail
    assert count_rows(client, name) == 900


def test_numpy_detail_names_every_file_of_the_set(throttled: LocalImportServer, client: MilvusClient) -> None:
    name, schema = make_collection(client, dynamic=False)
    data = [{k: v for k, v in row.items() if k != "extra"} for row in rows(20)]
    files = write_files(schema, throttled.bucket / unique("n"), BulkFileType.NUMPY, data)
    api = Api(throttled.url)
    final = api.wait(api.create(name, files))
    assert final["state"] == "Completed", final
    assert final["details"][0]["fileName"] == "[" + " ".join(files[0]) + "]"
    assert count_rows(client, name) == 20


def test_duration_stretches_a_job_over_its_phases(throttled: LocalImportServer, client: MilvusClient) -> None:
    name, schema = make_collection(client)
    files = write_files(schema, throttled.bucket / unique("d"), BulkFileType.JSON, rows(10))
    api = Api(throttled.url)
    started = time.monotonic()
    job_id = api.create(name, files, options={"local.duration": "4"})
    seen = _watch(api, job_id)
    elapsed = time.monotonic() - started

    assert seen[-1]["state"] == "Completed"
    assert elapsed >= 3.9, "the job takes at least its duration"
    progresses = [s["progress"] for s in seen]
    assert progresses == sorted(progresses)
    middle = {p // 10 for p in progresses if p < 100}
    assert len(middle) >= 3, f"progress moves through the phases over the duration: {sorted(middle)}"
    in_import = [s for s in seen if 40 <= s["progress"] < 70]
    assert in_import
    assert all(0 <= s["importedRows"] <= 10 for s in in_import)
    assert all(s["importedRows"] == s["totalRows"] == 10 for s in seen if 70 <= s["progress"] <= 100)


def test_local_fail_ends_failed_after_its_duration(
    throttled: LocalImportServer, client: MilvusClient
) -> None:
    name, _ = make_collection(client)
    api = Api(throttled.url)
    started = time.monotonic()
    job_id = api.create(
        name,
        [["a.parquet"], ["b.parquet"]],
        options={"local.duration": "1", "local.fail": "disk quota exceeded (injected)"},
    )
    assert api.progress(job_id)["state"] in ("Pending", "Importing")
    final = api.wait(job_id)
    assert time.monotonic() - started >= 0.9
    assert final["state"] == "Failed"
    assert final["reason"] == "disk quota exceeded (injected)"
    assert (final["progress"], final["importedRows"], final["totalRows"]) == (0, 0, 0)
    assert [(d["fileName"], d["state"], d["reason"]) for d in final["details"]] == [
        ("[a.parquet]", "Failed", "disk quota exceeded (injected)"),
        ("[b.parquet]", "Failed", "disk quota exceeded (injected)"),
    ]
    records = {r["jobId"]: r for r in api.ok("list", {"collectionName": name})["records"]}
    assert records[job_id]["reason"] == "disk quota exceeded (injected)"


def test_a_bad_duration_is_refused(throttled: LocalImportServer, client: MilvusClient) -> None:
    name, _ = make_collection(client)
    code = Api(throttled.url).error(
        "create", {"collectionName": name, "files": [["a.json"]], "options": {"local.duration": "soon"}}
    )[1]
    assert code == 1100


def test_a_stalled_job_stays_importing_until_aborted(
    throttled: LocalImportServer, client: MilvusClient
) -> None:
    name, schema = make_collection(client, unique("stalled"))
    files = write_files(schema, throttled.bucket / unique("s"), BulkFileType.PARQUET, rows(5))
    api = Api(throttled.url)
    job_id = api.create(name, files, options={"auto_commit": "false"})
    for _ in range(10):
        snapshot = api.progress(job_id)
        assert (snapshot["state"], snapshot["progress"]) == ("Importing", 10)
        time.sleep(0.15)
    api.ok("abort", {"jobId": job_id})
    final = api.progress(job_id)
    assert (final["state"], final["reason"]) == ("Failed", "import job aborted")
    assert count_rows(client, name) == 0
    assert api.ok("abort", {"jobId": job_id}) == {}, "aborting an aborted job again succeeds"


def test_aborting_a_running_2pc_import_stops_it(throttled: LocalImportServer, client: MilvusClient) -> None:
    name, schema = make_collection(client)
    files = write_files(schema, throttled.bucket / unique("a"), BulkFileType.PARQUET, rows(4000))
    api = Api(throttled.url)
    job_id = api.create(name, files, options={"auto_commit": "false"})
    wait_for(lambda: api.progress(job_id)["importedRows"] > 0, 60, "rows to be read")
    api.ok("abort", {"jobId": job_id})
    final = api.wait(job_id)
    assert (final["state"], final["reason"]) == ("Failed", "import job aborted")
    assert count_rows(client, name) == 0


def test_a_timeout_fails_a_running_import_and_takes_its_rows_back(
    throttled: LocalImportServer, client: MilvusClient
) -> None:
    """``options.timeout``: a job running past it fails with reason ``import timeout`` (Milvus
    internal/datacoord/import_checker.go, facts page "Round 2"); the rows it inserted are taken back."""
    name, schema = make_collection(client)
    files = write_files(schema, throttled.bucket / unique("t"), BulkFileType.PARQUET, rows(4000))
    api = Api(throttled.url)
    job_id = api.create(name, files, options={"timeout": "3s"})
    wait_for(lambda: api.progress(job_id)["importedRows"] > 0, 60, "rows to arrive")
    assert count_rows(client, name) > 0
    final = api.wait(job_id)
    assert (final["state"], final["reason"]) == ("Failed", "import timeout")
    assert count_rows(client, name) == 0


def test_a_bad_second_file_fails_the_job_and_leaves_no_rows(
    throttled: LocalImportServer, client: MilvusClient, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name, schema = make_collection(client)
    good = write_files(schema, throttled.bucket / unique("g"), BulkFileType.PARQUET, rows(300))
    bad = throttled.bucket / unique("bad") / "wrong_dim.parquet"
    bad.parent.mkdir()
    table = pa.table(
        {
            "id": [1000 + i for i in range(3)],
            "vec": [[0.5] * 8, [0.5] * 8, [0.5] * 4],
            "meta": ['{"a": 1}'] * 3,
            "name": ["x"] * 3,
        }
    )
    pq.write_table(table, bad)
    api = Api(throttled.url)
    final = api.wait(api.create(name, [*good, [str(bad)]]))

    assert final["state"] == "Failed"
    assert final["reason"] == f"[{bad}]: row 3: vector field 'vec' has dim 4, the collection expects 8"
    assert [d["state"] for d in final["details"]] == ["Completed", "Failed"]
    assert final["details"][1]["reason"] == final["reason"]
    assert count_rows(client, name) == 0, "a failed job leaves the collection as it found it"
