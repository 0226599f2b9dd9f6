"""Job records survive a restart; a job cut off mid-import ends Failed with a clear reason, never stuck."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from local_helpers import Api, count_rows, make_collection, rows, unique, wait_for, write_files
from pymilvus import MilvusClient
from pymilvus.bulk_writer import BulkFileType

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ServerFactory

pytestmark = pytest.mark.integration


def test_jobs_and_rows_survive_a_restart(server_factory: ServerFactory, tmp_path: Path) -> None:
    first = server_factory()
    client = MilvusClient(uri=first.milvus_uri)
    name, schema = make_collection(client)
    files = write_files(schema, first.bucket / unique("r"), BulkFileType.PARQUET, rows(50))
    api, cloud = Api(first.url), Api(first.cloud_url, cluster_id=first.cluster_id)
    job_id = api.create(name, files)
    before = api.wait(job_id)
    cloud_id = cloud.create(name, [["gone.parquet"]])
    cloud_before = cloud.wait(cloud_id)
    client.close()
    first.stop()

    second = server_factory()
    client = MilvusClient(uri=second.milvus_uri)
    api, cloud = Api(second.url), Api(second.cloud_url, cluster_id=second.cluster_id)
    assert api.progress(job_id) == before
    assert cloud.progress(cloud_id) == cloud_before
    assert [r["jobId"] for r in api.ok("list")["records"]] == [job_id]
    assert count_rows(client, name) == 50
    newer = api.create(name, [["none.parquet"]])
    assert int(newer) > int(job_id), "ids keep growing after a restart"
    client.close()


def test_a_job_cut_off_by_a_crash_ends_failed(server_factory: ServerFactory, tmp_path: Path) -> None:
    crashed = server_factory(rows_per_second=300, import_workers=1)
    client = MilvusClient(uri=crashed.milvus_uri)
    name, schema = make_collection(client)
    big = write_files(schema, crashed.bucket / unique("big"), BulkFileType.PARQUET, rows(6000))
    small = write_files(schema, crashed.bucket / unique("small"), BulkFileType.JSON, rows(10, start=10_000))
    api = Api(crashed.url)
    running = api.create(name, big)
    queued = api.create(name, small)
    wait_for(lambda: api.progress(running)["importedRows"] > 0, 60, "the first import to insert rows")
    assert api.progress(queued)["state"] == "Pending", "one worker: the second job waits"
    client.close()
    crashed.kill()

    restarted = server_factory()
    api = Api(restarted.url)
    cut_off = api.progress(running)
    assert cut_off["state"] == "Failed"
    assert cut_off["reason"] == "import interrupted by a server restart"
    resumed = api.wait(queued)
    assert resumed["state"] == "Completed", "a job that had not started is resumed"
    client = MilvusClient(uri=restarted.milvus_uri)
    assert client.query(name, filter="id >= 10000", output_fields=["count(*)"])[0]["count(*)"] == 10
    client.close()


def test_a_graceful_stop_fails_the_running_import_and_takes_its_rows_back(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(rows_per_second=300)
    client = MilvusClient(uri=server.milvus_uri)
    name, schema = make_collection(client)
    files = write_files(schema, server.bucket / unique("g"), BulkFileType.PARQUET, rows(6000))
    api = Api(server.url)
    job_id = api.create(name, files)
    wait_for(lambda: api.progress(job_id)["importedRows"] > 0, 60, "rows to arrive")
    client.close()
    server.stop()

    again = server_factory()
    final = Api(again.url).progress(job_id)
    assert (final["state"], final["reason"]) == ("Failed", "import interrupted by a server shutdown")
    client = MilvusClient(uri=again.milvus_uri)
    assert count_rows(client, name) == 0
    client.close()


def test_a_duration_job_keeps_its_timeline_across_a_restart(server_factory: ServerFactory) -> None:
    server = server_factory()
    client = MilvusClient(uri=server.milvus_uri)
    name, schema = make_collection(client)
    files = write_files(schema, server.bucket / unique("t"), BulkFileType.JSON, rows(3))
    api = Api(server.url)
    job_id = api.create(name, files, options={"local.duration": "4"})
    wait_for(lambda: api.progress(job_id)["progress"] >= 10, 30, "the job to start")
    client.close()
    server.kill()

    again = server_factory()
    api = Api(again.url)
    assert api.progress(job_id)["state"] in ("Importing", "Completed")
    assert api.wait(job_id)["state"] == "Completed"


def test_stop_and_start_are_idempotent(server_factory: ServerFactory) -> None:
    server = server_factory()
    url = server.url
    assert server.start() is server
    assert server.url == url
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    server.start()
    assert Api(server.url).ok("list") == {"records": []}


def test_one_data_dir_serves_one_server_at_a_time(server_factory: ServerFactory, tmp_path: Path) -> None:
    server_factory()
    with pytest.raises(RuntimeError, match="in use by another process"):
        server_factory()
