"""
OpenLineage: what the import operator and the sensor report, with Airflow's OpenLineage provider installed.

The naming of files and collections is pure and tested directly. Then real runs under ``dag.test()`` against
the local import server: the provider's own extractor (``ExtractorManager``) asks a task for its facets after
the run, and, in a separate Airflow process with OpenLineage switched on (file transport), the provider's
listener emits the events a lineage backend would receive, which are read back and checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_import.lineage import (
    RUN_FACET_NAME,
    LineageTarget,
    build_lineage,
    collection_ref,
    file_dataset_id,
    target_from_settings,
)
from airflow_milvus_import.protocol import settings_from_connection
from tests.conftest import SENTINEL_TOKEN
from tests.unit.operators.test_milvus_import import (
    DAGS_FOLDER,
    new_collection,
    relative,
    run_dag,
    use_dags_folder,
    write_files,
    xcom,
)

if TYPE_CHECKING:
    from pathlib import Path

SENSOR_DAGS = DAGS_FOLDER.parent / "sensor"
LOCAL = LineageTarget(
    namespace="milvus://127.0.0.1:19530",
    default_db=None,
    base_url="http://127.0.0.1:19530",
    server_host="127.0.0.1",
)
REMOTE = LineageTarget(
    namespace="milvus://milvus.internal:19530",
    default_db="prod",
    base_url="http://milvus.internal:19530",
    server_host="milvus.internal",
)


# ---------------------------------------------------------------------------------------------------------
# Naming (pure)


@pytest.mark.parametrize(
    ("path", "target", "expected"),
    [
        ("s3://raw/emb/1.parquet", LOCAL, ("s3://raw", "emb/1.parquet")),
        ("s3a://raw/emb/1.parquet", LOCAL, ("s3://raw", "emb/1.parquet")),
        ("gs://raw/emb/1.parquet", LOCAL, ("gs://raw", "emb/1.parquet")),
        ("file:///data/1.parquet", REMOTE, ("file", "/data/1.parquet")),
        ("file://nas/data/1.parquet", LOCAL, ("file://nas", "/data/1.parquet")),
        # object-storage HTTPS URLs, as Zilliz Cloud's docs write them
        (
            "https://s3.us-west-2.amazonaws.com/publicdataset.zillizcloud.com/medium/a.json",
            LOCAL,
            ("s3://publicdataset.zillizcloud.com", "medium/a.json"),
        ),
        (
            "https://my.bucket.s3.eu-west-1.amazonaws.com/a/b.parquet",
            LOCAL,
            ("s3://my.bucket", "a/b.parquet"),
        ),
        ("https://storage.googleapis.com/raw/b.parquet", LOCAL, ("gs://raw", "b.parquet")),
        (
            "https://acct.blob.core.windows.net/box/dir/c.parquet",
            LOCAL,
            ("wasbs://box@acct.blob.core.windows.net", "dir/c.parquet"),
        ),
        ("https://files.example.com/x/y.json", LOCAL, ("https://files.example.com", "x/y.json")),
        # absolute paths live on the server's machine; "file" when that is this one (Airflow's convention)
        ("/srv/bucket/1.parquet", LOCAL, ("file", "/srv/bucket/1.parquet")),
        ("/srv/bucket/1.parquet", REMOTE, ("file://milvus.internal", "/srv/bucket/1.parquet")),
        # relative paths are in the server's bucket, whose location the client does not know
        ("emb/1.parquet", LOCAL, ("milvus-bucket://127.0.0.1:19530", "emb/1.parquet")),
        ("./emb/1.parquet", REMOTE, ("milvus-bucket://milvus.internal:19530", "emb/1.parquet")),
    ],
)
def test_file_naming(path: str, target: LineageTarget, expected: tuple[str, str]) -> None:
    assert file_dataset_id(path, target) == expected


def test_bucket_url_places_relative_paths() -> None:
    minio = settings_from_connection("m", "http://milvus.internal:19530")
    in_s3 = target_from_settings(minio, {"bucket_url": "s3://a-bucket/imports/"})
    assert file_dataset_id("emb/1.parquet", in_s3) == ("s3://a-bucket", "imports/emb/1.parquet")
    assert file_dataset_id("/emb/1.parquet", in_s3) == ("s3://a-bucket", "imports/emb/1.parquet")
    on_server = target_from_settings(minio, {"bucket_url": "file:///var/lib/milvus/bucket"})
    assert file_dataset_id("emb/1.parquet", on_server) == (
        "file://milvus.internal",
        "/var/lib/milvus/bucket/emb/1.parquet",
    )
    local = target_from_settings(
        settings_from_connection("m", "http://localhost:19530"), {"bucket_url": "file:///b"}
    )
    assert file_dataset_id("emb/1.parquet", local) == ("file", "/b/emb/1.parquet")
    for bad in ("a-bucket", "s3://user:pw@bucket", 42):
        with pytest.raises(ValueError, match="bucket_url"):
            target_from_settings(minio, {"bucket_url": bad})


def test_collection_naming_per_deployment() -> None:
    milvus = target_from_settings(
        settings_from_connection(
            "m", "https://Milvus.Example.com", password=SENTINEL_TOKEN, extra={"db_name": "prod"}
        )
    )
    assert milvus.namespace == "milvus://milvus.example.com:443"
    assert milvus.collection("books").dataset_name == "prod.books"
    assert SENTINEL_TOKEN not in repr(milvus)
    zilliz = target_from_settings(
        settings_from_connection("z", "https://api.cloud.zilliz.com", extra={"cluster_id": "in01-ABC123"})
    )
    assert zilliz.namespace == "zilliz://in01-abc123"
    assert zilliz.collection("books").dataset_name == "default.books"
    # the same identity as an asset built from the endpoint
    assert collection_ref("books", endpoint="https://milvus.example.com", db_name="prod").namespace == (
        milvus.namespace
    )


def progress(job_id: str, state: str, details: list[dict[str, Any]], **numbers: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "collection_name": "books",
        "state": state,
        "progress": 100 if state == "Completed" else 40,
        "imported_rows": numbers.get("imported_rows", 0),
        "total_rows": numbers.get("total_rows", 0),
        "file_size": numbers.get("file_size", 0),
        "reason": numbers.get("reason", ""),
        "details": details,
    }


def detail(name: str, files: list[str], rows: int, size: int) -> dict[str, Any]:
    return {"file_name": name, "files": files, "total_rows": rows, "imported_rows": rows, "file_size": size}


def test_build_lineage_from_a_completed_job() -> None:
    from airflow.providers.openlineage.extractors import OperatorLineage

    job = progress(
        "448761313698322011",
        "Completed",
        [
            detail("[a.parquet]", ["a.parquet"], 10, 100),
            detail("[1/id.npy 1/vec.npy]", ["1/id.npy", "1/vec.npy"], 5, 60),
        ],
        imported_rows=15,
        total_rows=15,
        file_size=160,
    )

    lineage = build_lineage(LOCAL, jobs=[job], files=[["a.parquet"], ["1/id.npy", "1/vec.npy"]])

    assert isinstance(lineage, OperatorLineage)
    assert [(item.namespace, item.name) for item in lineage.inputs] == [
        ("milvus-bucket://127.0.0.1:19530", "a.parquet"),
        ("milvus-bucket://127.0.0.1:19530", "1/id.npy"),
        ("milvus-bucket://127.0.0.1:19530", "1/vec.npy"),
    ]
    stats = lineage.inputs[0].inputFacets["inputStatistics"]
    assert (stats.rowCount, stats.size, stats.fileCount) == (10, 100, 1)
    assert lineage.inputs[1].inputFacets == {}  # a column set's numbers are not one file's
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("milvus://127.0.0.1:19530", "default.books")
    out = output.outputFacets["outputStatistics"]
    assert (out.rowCount, out.size, out.fileCount) == (15, 160, 3)
    assert output.facets["datasource"].uri == "milvus://127.0.0.1:19530"
    assert lineage.run_facets["externalQuery"].externalQueryId == "448761313698322011"
    assert lineage.run_facets["externalQuery"].source == "milvus://127.0.0.1:19530"
    facet = lineage.run_facets[RUN_FACET_NAME]
    assert facet.deployment == "Milvus"
    assert facet.jobs == [
        {
            "jobId": "448761313698322011",
            "collectionName": "books",
            "dbName": "default",
            "state": "Completed",
            "progress": 100,
            "importedRows": 15,
            "totalRows": 15,
            "fileSize": 160,
            "files": 3,
            "reason": "",
        }
    ]
    # what the OpenLineage client sends
    from openlineage.client.serde import Serde

    sent = json.loads(Serde.to_json(facet))
    assert sent["_schemaURL"].startswith("urn:airflow-milvus-import:")
    assert sent["jobs"][0]["jobId"] == "448761313698322011"


def test_build_lineage_reads_files_from_milvus_details_and_reports_no_rows_for_a_failed_job() -> None:
    job = progress(
        "7",
        "Failed",
        [detail("[x/a.parquet]", [], 0, 0), detail("[x/id.npy x/vec.npy]", [], 0, 0)],
        reason="schema mismatch",
    )

    lineage = build_lineage(REMOTE, jobs=[job])

    assert [item.name for item in lineage.inputs] == ["x/a.parquet", "x/id.npy", "x/vec.npy"]
    (output,) = lineage.outputs
    assert output.name == "prod.books"
    assert "outputStatistics" not in output.outputFacets
    assert lineage.run_facets[RUN_FACET_NAME].jobs[0]["reason"] == "schema mismatch"


def test_protobuf_text_file_names_of_milvus_2_4_0_become_their_paths() -> None:
    # an XCom record from before round 2, when the file name was kept as the server's protobuf text
    name = 'id:449839014328146740 paths:"/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet"'
    lineage = build_lineage(REMOTE, jobs=[progress("7", "Completed", [detail(name, [], 10, 99)])])
    assert [(item.namespace, item.name) for item in lineage.inputs] == [
        ("file://milvus.internal", "/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet")
    ]


def test_files_of_a_zilliz_volume() -> None:
    target = target_from_settings(
        settings_from_connection("z", "https://api.cloud.zilliz.com", extra={"cluster_id": "in01-abc"})
    )
    assert file_dataset_id("folder/1.parquet", target, volume_name="my_volume") == (
        "zilliz-volume://my_volume",
        "folder/1.parquet",
    )
    assert file_dataset_id("./folder/", target, volume_name="my_volume") == (
        "zilliz-volume://my_volume",
        "folder/",
    )
    job = progress("job-1", "Completed", [detail("folder/1.parquet", [], 10, 99)], imported_rows=10)
    sent = build_lineage(target, jobs=[job], files=[["folder/1.parquet"]], volume_name="my_volume")
    from_details = build_lineage(target, jobs=[job], volume_name="my_volume")
    for lineage in (sent, from_details):
        (item,) = lineage.inputs
        assert (item.namespace, item.name) == ("zilliz-volume://my_volume", "folder/1.parquet")
        assert item.inputFacets["inputStatistics"].rowCount == 10
        assert [(output.namespace, output.name) for output in lineage.outputs] == [
            ("zilliz://in01-abc", "default.books")
        ]


def test_build_lineage_of_several_jobs_has_no_single_external_id() -> None:
    jobs = [
        progress("1", "Completed", [detail("[a]", ["a"], 1, 1)], imported_rows=1),
        progress("2", "Completed", [detail("[b]", ["b"], 2, 2)], imported_rows=2),
    ]
    lineage = build_lineage(LOCAL, jobs=jobs)
    assert "externalQuery" not in lineage.run_facets
    assert [job["jobId"] for job in lineage.run_facets[RUN_FACET_NAME].jobs] == ["1", "2"]
    (output,) = lineage.outputs
    assert output.outputFacets["outputStatistics"].rowCount == 3


def test_modules_load_no_openlineage_http_client_or_hook() -> None:
    # What Airflow itself loads is not ours to count: compare with the Task SDK's own classes loaded.
    code = (
        "import sys\n"
        "from airflow.providers.common.compat.sdk import (\n"
        "    BaseOperator, BaseOperatorLink, BaseSensorOperator, conf)\n"
        "before = set(sys.modules)\n"
        "import airflow_milvus_import.operators.milvus_import, airflow_milvus_import.sensors.milvus_import\n"
        "import airflow_milvus_import.lineage, airflow_milvus_import.links\n"
        "print(sorted(set(sys.modules) - before))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    added = json.loads(output.strip().splitlines()[-1].replace("'", '"'))
    assert "airflow_milvus_import.lineage" in added
    assert [name for name in added if not name.startswith("airflow_milvus_import")] == []
    assert not any(
        name.startswith(("airflow_milvus_import.hooks", "airflow_milvus_import.triggers")) for name in added
    )


# ---------------------------------------------------------------------------------------------------------
# After real runs: the OpenLineage provider's extractor


def task_instance(run: Any, task_id: str) -> Any:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == run.dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()
        session.expunge(ti)
        return ti


def extract(folder: Path, run: Any, task_id: str) -> tuple[Any, Any]:
    """A task object's own answer and the OpenLineage provider's extraction, after the run (from XCom)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.utils.state import TaskInstanceState

    task = DagBag(dag_folder=str(folder)).get_dag(run.dag_id).get_task(task_id)
    ti = task_instance(run, task_id)
    direct = task.get_openlineage_facets_on_complete(ti)
    extracted = ExtractorManager().extract_metadata(
        dagrun=run, task=task, task_instance_state=TaskInstanceState.SUCCESS, task_instance=ti
    )
    return direct, extracted


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "milvus_import", **fields})
    )


@pytest.mark.integration
def test_import_lineage_after_a_deferred_run(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.openlineage.extractors import OperatorLineage

    use_dags_folder(monkeypatch, DAGS_FOLDER)
    bucket = local_server.bucket.resolve()
    use_connection(
        monkeypatch, "milvus_import_default", host=local_server.url, extra={"bucket_url": f"file://{bucket}"}
    )
    collection = new_collection(local_server, "lineage")
    batches = relative(local_server, write_files(local_server, collection, [120, 80]))

    run = run_dag(
        "ami_test_import_deferrable",
        {"collection": collection, "files": batches, "options": {"local.duration": "1"}},
    )
    assert str(run.state) == "success"
    job_id = xcom(run, "import_files", "job_id")
    result = xcom(run, "import_files")

    direct, extracted = extract(DAGS_FOLDER, run, "import_files")

    assert isinstance(extracted, OperatorLineage)
    for lineage in (direct, extracted):
        assert [(item.namespace, item.name) for item in lineage.inputs] == [
            ("file", str(bucket / path)) for batch in batches for path in batch
        ]
        assert sorted(item.inputFacets["inputStatistics"].rowCount for item in lineage.inputs) == [80, 120]
        (output,) = lineage.outputs
        port = local_server.url.rsplit(":", 1)[1]
        assert (output.namespace, output.name) == (f"milvus://127.0.0.1:{port}", f"default.{collection}")
        stats = output.outputFacets["outputStatistics"]
        assert (stats.rowCount, stats.size, stats.fileCount) == (200, result["file_size"], 2)
        assert stats.size > 0
        assert lineage.run_facets["externalQuery"].externalQueryId == job_id
        assert lineage.run_facets[RUN_FACET_NAME].jobs[0]["state"] == "Completed"


@pytest.mark.integration
def test_zilliz_cloud_lineage_names_object_storage_and_the_cluster(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_dags_folder(monkeypatch, DAGS_FOLDER)
    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=local_server.cloud_url,
        extra={"cluster_id": local_server.cluster_id},
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMI_TEST_STORAGE",
        json.dumps({"conn_type": "aws", "login": "AKIA-l", "password": "lineage-sk"}),
    )
    collection = new_collection(local_server, "lineage")
    batches = relative(local_server, write_files(local_server, collection, [25]))
    urls = [[f"s3://ami-bucket/{path}" for path in batch] for batch in batches]

    run = run_dag(
        "ami_test_import_object_urls",
        {"collection": collection, "files": urls, "storage_conn_id": "ami_test_storage"},
    )
    assert str(run.state) == "success"

    lineage, _ = extract(DAGS_FOLDER, run, "import_files")
    assert [(item.namespace, item.name) for item in lineage.inputs] == [("s3://ami-bucket", batches[0][0])]
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == (
        f"zilliz://{local_server.cluster_id.lower()}",
        f"default.{collection}",
    )
    assert output.outputFacets["outputStatistics"].rowCount == 25
    facet = lineage.run_facets[RUN_FACET_NAME]
    assert (facet.deployment, facet.clusterId) == ("Zilliz Cloud", local_server.cluster_id)
    assert "lineage-sk" not in json.dumps(facet.jobs)


@pytest.mark.integration
def test_sensor_lineage_describes_the_jobs_it_waited_for(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    use_dags_folder(monkeypatch, SENSOR_DAGS)
    use_connection(monkeypatch, "milvus_import_default", host=local_server.url)
    use_connection(monkeypatch, "milvus_import_test", host=local_server.url)
    collection = new_collection(local_server, "lineage")
    batches = relative(local_server, write_files(local_server, collection, [7, 9]))
    with MilvusImportHook() as hook:
        first = hook.create_import_job(collection, batches[:1], options={"local.duration": "1"})
        second = hook.create_import_job(collection, batches[1:])

    run = run_dag("milvus_sensor_deferrable", {"job_id": [first, second]}, folder=SENSOR_DAGS)
    assert str(run.state) == "success"

    lineage, extracted = extract(SENSOR_DAGS, run, "wait")
    assert [item.name for item in extracted.inputs] == [path for batch in batches for path in batch]
    (output,) = lineage.outputs
    assert output.name == f"default.{collection}"
    assert output.outputFacets["outputStatistics"].rowCount == 16
    assert "externalQuery" not in lineage.run_facets
    assert [job["jobId"] for job in lineage.run_facets[RUN_FACET_NAME].jobs] == [first, second]


# ---------------------------------------------------------------------------------------------------------
# The OpenLineage listener in a real task run: the events a lineage backend receives

LISTENER_RUN = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag

    folder, dag_id, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    run = DagBag(dag_folder=folder).get_dag(dag_id).test(run_conf=conf)
    print("AMI-OUTCOME " + json.dumps({"state": str(run.state), "run_id": run.run_id}), flush=True)
    """
)


def run_with_openlineage(
    tmp_path: Path, dag_id: str, conf: dict[str, Any]
) -> tuple[dict[str, Any], list[Any]]:
    """``dag.test()`` in a fresh Airflow process whose OpenLineage provider writes events to a file."""
    events_file = tmp_path / f"openlineage-{uuid.uuid4().hex[:6]}.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "ami-tests",
    }
    completed = subprocess.run(
        [sys.executable, "-c", LISTENER_RUN, str(DAGS_FOLDER), dag_id, json.dumps(conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    (line,) = [line for line in completed.stdout.splitlines() if line.startswith("AMI-OUTCOME ")]
    outcome = json.loads(line.removeprefix("AMI-OUTCOME "))
    assert "expired and will be terminated" not in completed.stdout + completed.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return outcome, events


def task_event(events: list[Any], dag_id: str, kind: str) -> Any:
    (event,) = [
        event
        for event in events
        if event["eventType"] == kind and event["job"]["name"] == f"{dag_id}.import_files"
    ]
    return event


@pytest.mark.integration
@pytest.mark.slow
def test_the_openlineage_listener_emits_the_import_lineage(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_dags_folder(monkeypatch, DAGS_FOLDER)
    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=local_server.url,
        password=SENTINEL_TOKEN,  # the local server has no auth: the token is only there to be looked for
    )
    collection = new_collection(local_server, "lineage")
    batches = write_files(local_server, collection, [20, 30])  # absolute paths, as batch_files gives them

    outcome, events = run_with_openlineage(
        tmp_path, "ami_test_import_on_worker", {"collection": collection, "files": batches, "options": {}}
    )

    assert outcome["state"] == "success"
    complete = task_event(events, "ami_test_import_on_worker", "COMPLETE")
    assert [(item["namespace"], item["name"]) for item in complete["inputs"]] == [
        ("file", path) for batch in batches for path in batch
    ]
    assert [item["inputFacets"]["inputStatistics"]["rowCount"] for item in complete["inputs"]] == [20, 30]
    (output,) = complete["outputs"]
    assert output["name"] == f"default.{collection}"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 50
    facets = complete["run"]["facets"]
    job_id = facets["externalQuery"]["externalQueryId"]
    assert facets[RUN_FACET_NAME]["jobs"][0]["jobId"] == job_id
    assert facets[RUN_FACET_NAME]["jobs"][0]["importedRows"] == 50
    assert SENTINEL_TOKEN not in json.dumps(events)


@pytest.mark.integration
@pytest.mark.slow
def test_a_failed_create_still_reports_what_the_task_meant_to_import(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_dags_folder(monkeypatch, DAGS_FOLDER)
    use_connection(monkeypatch, "milvus_import_default", host=local_server.url)

    outcome, events = run_with_openlineage(
        tmp_path,
        "ami_test_import_on_worker",
        {"collection": "no_such_collection_here", "files": ["in/a.parquet"], "options": {}},
    )

    assert outcome["state"] == "failed"
    failed = task_event(events, "ami_test_import_on_worker", "FAIL")
    port = local_server.url.rsplit(":", 1)[1]
    assert [(item["namespace"], item["name"]) for item in failed["inputs"]] == [
        (f"milvus-bucket://127.0.0.1:{port}", "in/a.parquet")
    ]
    assert [item["name"] for item in failed["outputs"]] == ["default.no_such_collection_here"]
    assert "outputStatistics" not in failed["outputs"][0].get("outputFacets", {})
    assert "externalQuery" not in failed["run"]["facets"]
    assert "errorMessage" in failed["run"]["facets"]
