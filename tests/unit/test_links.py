"""
The "Milvus import job" extra link.

Template rendering is pure and tested directly. Then DAGs run for real under ``dag.test()`` against the local
import server: Airflow's task runner computes the link when the try ends and stores it in XCom, and the
API server's own extra-links route (called here in-process) reads it back, as the UI does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_import.links import (
    ZILLIZ_CONSOLE_URL,
    ZILLIZ_CONSOLE_URL_CN,
    MilvusImportJobLink,
    console_url,
    render_console_link,
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

LINK = MilvusImportJobLink.name
LINK_XCOM = "_link_MilvusImportJobLink"
ATTU = "http://attu.example:3000/#/databases/{db_name}/{collection_name}/import?job={job_id}"
SENSOR_DAGS = DAGS_FOLDER.parent / "sensor"


# ---------------------------------------------------------------------------------------------------------
# Pure: templates and the choice of URL


def test_render_fills_and_quotes_the_placeholders() -> None:
    url = render_console_link(
        "https://console.example/{cluster_id}/db/{db_name}/c/{collection_name}?job={job_id}",
        {"job_id": "job-01fa 0e5d", "collection_name": "books", "db_name": "default", "cluster_id": "in01-x"},
    )
    assert url == "https://console.example/in01-x/db/default/c/books?job=job-01fa%200e5d"
    # a value cannot add path segments, a query or a fragment
    assert render_console_link("https://c.example/{job_id}", {"job_id": "a/b?c#d"}) == (
        "https://c.example/a%2Fb%3Fc%23d"
    )


def test_render_is_empty_when_a_used_placeholder_has_no_value() -> None:
    assert render_console_link("https://c.example/{collection_name}", {"collection_name": None}) == ""
    assert render_console_link("https://c.example/jobs", {}) == "https://c.example/jobs"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://c.example/{token}", r"unknown placeholder\(s\) \{token\}"),
        ("https://c.example/{job_id.__class__}", r"unknown placeholder\(s\) \{job_id.__class__\}"),
        ("https://c.example/{job_id!r}", "unknown placeholder"),
        ("https://c.example/{job_id:>30}", "unknown placeholder"),
        ("https://c.example/{0}", "unknown placeholder"),
        ("https://c.example/{job_id", "unmatched"),
        ("javascript:alert({job_id})", "must be an http:// or https:// URL"),
    ],
)
def test_render_refuses_anything_but_known_placeholders_in_http_urls(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_console_link(template, {"job_id": "1", "collection_name": "c", "db_name": "d"})


def test_console_url_per_deployment() -> None:
    milvus = settings_from_connection("m", "http://milvus:19530", password=SENTINEL_TOKEN)
    assert console_url(milvus, job_id="448761313698322011", collection_name="books") == ""
    attu = settings_from_connection(
        "m", "http://milvus:19530", extra={"console_link": ATTU, "db_name": "prod"}
    )
    assert console_url(attu, job_id="42", collection_name="books") == (
        "http://attu.example:3000/#/databases/prod/books/import?job=42"
    )
    assert console_url(attu, job_id="42", collection_name="books", db_name="other").endswith(
        "/databases/other/books/import?job=42"
    )
    zilliz = settings_from_connection("z", "https://api.cloud.zilliz.com", extra={"cluster_id": "in01-abc"})
    assert console_url(zilliz, job_id="job-01") == ZILLIZ_CONSOLE_URL
    china = settings_from_connection("z", "https://api.cloud.zilliz.com.cn", extra={"cluster_id": "in01-abc"})
    assert console_url(china, job_id="job-01") == ZILLIZ_CONSOLE_URL_CN
    assert console_url(zilliz, job_id=None) == ""
    assert console_url(china, job_id="") == ""


def test_console_url_of_a_volume_import() -> None:
    zilliz = settings_from_connection("z", "https://api.cloud.zilliz.com", extra={"cluster_id": "in01-abc"})
    assert console_url(zilliz, job_id="job-01", volume_name="my_volume") == ZILLIZ_CONSOLE_URL
    template = "https://cloud.zilliz.com/orgs/o/projects/p/volumes/{volume_name}?job={job_id}"
    deep = settings_from_connection(
        "z", "https://api.cloud.zilliz.com", extra={"cluster_id": "in01-abc", "console_link": template}
    )
    assert console_url(deep, job_id="job-01", volume_name="my volume") == (
        "https://cloud.zilliz.com/orgs/o/projects/p/volumes/my%20volume?job=job-01"
    )
    assert console_url(deep, job_id="job-01") == "", "no volume, no volume page"


# ---------------------------------------------------------------------------------------------------------
# Registration


def test_the_link_is_registered_and_declared_by_both_task_types() -> None:
    from airflow.providers_manager import ProvidersManager

    from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator
    from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor

    assert "airflow_milvus_import.links.MilvusImportJobLink" in ProvidersManager().extra_links_class_names
    operator = MilvusBulkImportOperator(task_id="t", collection_name="books", files=["a.parquet"])
    sensor = MilvusImportJobSensor(task_id="s", job_id="1")
    for task in (operator, sensor):
        (link,) = task.operator_extra_links
        assert isinstance(link, MilvusImportJobLink)
        assert link.xcom_key == LINK_XCOM


def test_serialized_dags_carry_the_link_also_for_mapped_tasks(airflow_db: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    for dag_id, task_id in (
        ("ami_test_import_on_worker", "import_files"),
        ("ami_test_import_mapped", "import_file"),
    ):
        serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(bag.get_dag(dag_id)))
        assert serialized.get_task(task_id).extra_links == [LINK]


# ---------------------------------------------------------------------------------------------------------
# After a real run: what the UI shows


def links_shown(run: Any, task_id: str, map_index: int = -1) -> dict[str, str | None]:
    """The API server's extra-links route, in-process (what the UI asks for a task instance)."""
    from airflow.api_fastapi.core_api.routes.public.extra_links import get_extra_links
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        response = get_extra_links(
            dag_id=run.dag_id,
            dag_run_id=run.run_id,
            task_id=task_id,
            session=session,
            dag_bag=DBDagBag(),
            map_index=map_index,
        )
    return dict(response.extra_links)


@pytest.fixture
def operator_dags(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_dags_folder(monkeypatch, DAGS_FOLDER)
    return DAGS_FOLDER


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "milvus_import", **fields})
    )


@pytest.mark.integration
def test_self_hosted_link_from_the_connection_template(
    operator_dags: Path, secured_local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = secured_local_server
    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=server.url,
        password=SENTINEL_TOKEN,
        extra={"console_link": ATTU},
    )
    collection = new_collection(server, "links")
    batches = relative(server, write_files(server, collection, [15]))

    run = run_dag("ami_test_import_on_worker", {"collection": collection, "files": batches, "options": {}})

    assert str(run.state) == "success"
    job_id = xcom(run, "import_files", "job_id")
    expected = f"http://attu.example:3000/#/databases/default/{collection}/import?job={job_id}"
    assert xcom(run, "import_files", LINK_XCOM) == expected
    assert links_shown(run, "import_files") == {LINK: expected}
    assert SENTINEL_TOKEN not in json.dumps(links_shown(run, "import_files"))


@pytest.mark.integration
def test_self_hosted_link_is_empty_without_a_template_and_the_deferred_run_has_it_too(
    operator_dags: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, "milvus_import_default", host=local_server.url)
    collection = new_collection(local_server, "links")
    batches = relative(local_server, write_files(local_server, collection, [10]))

    plain = run_dag("ami_test_import_on_worker", {"collection": collection, "files": batches, "options": {}})
    assert str(plain.state) == "success"
    assert links_shown(plain, "import_files") == {LINK: None}

    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=local_server.url,
        extra={"console_link": "https://attu.example/#/jobs/{job_id}?db={db_name}&c={collection_name}"},
    )
    deferred = run_dag(
        "ami_test_import_deferrable",
        {"collection": collection, "files": batches, "options": {"local.duration": "1"}},
    )
    assert str(deferred.state) == "success"
    job_id = xcom(deferred, "import_files", "job_id")
    assert links_shown(deferred, "import_files") == {
        LINK: f"https://attu.example/#/jobs/{job_id}?db=default&c={collection}"
    }


@pytest.mark.integration
def test_zilliz_cloud_jobs_link_to_the_console(
    operator_dags: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMI_TEST_STORAGE",
        json.dumps({"conn_type": "aws", "login": "AKIA-links", "password": "links-secret"}),
    )
    collection = new_collection(local_server, "links")
    batches = relative(local_server, write_files(local_server, collection, [12]))
    urls = [[f"s3://ami-bucket/{path}" for path in batch] for batch in batches]
    conf = {"collection": collection, "files": urls, "storage_conn_id": "ami_test_storage"}

    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=local_server.cloud_url,
        extra={"cluster_id": local_server.cluster_id},
    )
    default = run_dag("ami_test_import_object_urls", conf)
    assert str(default.state) == "success"
    assert xcom(default, "import_files", "job_id").startswith("job-")
    assert links_shown(default, "import_files") == {LINK: ZILLIZ_CONSOLE_URL}

    deep = "https://cloud.zilliz.com/orgs/org-a/projects/proj-b/clusters/{cluster_id}/collections/{collection_name}"
    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=local_server.cloud_url,
        extra={"cluster_id": local_server.cluster_id, "console_link": deep},
    )
    templated = run_dag("ami_test_import_object_urls", conf)
    assert str(templated.state) == "success"
    assert links_shown(templated, "import_files") == {
        LINK: f"https://cloud.zilliz.com/orgs/org-a/projects/proj-b/clusters/{local_server.cluster_id}"
        f"/collections/{collection}"
    }


@pytest.mark.integration
def test_no_job_no_link(operator_dags: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(
        monkeypatch,
        "milvus_import_default",
        host=local_server.cloud_url,
        extra={"cluster_id": local_server.cluster_id},
    )

    run = run_dag(
        "ami_test_import_on_worker",
        {"collection": "no_such_collection_here", "files": ["a.parquet"], "options": {}},
    )

    assert str(run.state) == "failed"
    assert xcom(run, "import_files", "job_id") is None
    assert xcom(run, "import_files", LINK_XCOM) == ""
    assert links_shown(run, "import_files") == {LINK: None}


@pytest.mark.integration
def test_the_sensor_links_to_the_job_it_waited_for(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    use_dags_folder(monkeypatch, SENSOR_DAGS)
    use_connection(monkeypatch, "milvus_import_default", host=local_server.url)
    use_connection(
        monkeypatch,
        "milvus_import_test",
        host=local_server.url,
        extra={"console_link": ATTU, "db_name": "default"},
    )
    collection = new_collection(local_server, "links")
    batches = relative(local_server, write_files(local_server, collection, [8, 9]))
    with MilvusImportHook() as hook:
        job_id = hook.create_import_job(collection, batches, options={"local.duration": "1"})
        other = hook.create_import_job(collection, batches[:1])

    one = run_dag("milvus_sensor_deferrable", {"job_id": job_id}, folder=SENSOR_DAGS)
    assert str(one.state) == "success"
    assert links_shown(one, "wait") == {
        LINK: f"http://attu.example:3000/#/databases/default/{collection}/import?job={job_id}"
    }

    # Several jobs: a template that needs one {job_id} has no single value to use.
    several = run_dag("milvus_sensor_deferrable", {"job_id": [job_id, other]}, folder=SENSOR_DAGS)
    assert str(several.state) == "success"
    assert links_shown(several, "wait") == {LINK: None}
