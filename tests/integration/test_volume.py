"""
Zilliz Cloud volumes end to end: a DAG imports from a volume under ``dag.test()`` against the Zilliz flavour
of ``tests/wire_server.py`` on 127.0.0.1, and the request, the asset event, the extra link and the lineage
are read back from what Airflow recorded.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

import pytest

from airflow_milvus_import.lineage import ZILLIZ_VOLUME_SCHEME, collection_ref
from tests.conftest import SENTINEL_TOKEN
from tests.unit.operators.test_milvus_import import run_dag, task_states, use_dags_folder, xcom
from tests.unit.test_assets import asset_events
from tests.unit.test_lineage import extract
from tests.unit.test_links import LINK, links_shown
from tests.wire_server import FakeImportServer

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_httpserver import HTTPServer

CLUSTER = "in01-0123456789abcdef"
COLLECTION = "books"
VOLUME_LINK = "https://cloud.zilliz.com/orgs/org-a/projects/proj-b/volumes/{volume_name}?job={job_id}"

VOLUME_DAGS = textwrap.dedent(
    f"""
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_milvus_import.lineage import milvus_collection_asset
    from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator

    with DAG("ami_volume_import", schedule=None, start_date=datetime(2025, 1, 1),
             render_template_as_native_obj=True, params={{"files": [], "volume": ""}}):
        MilvusBulkImportOperator(
            task_id="import_files",
            collection_name="{COLLECTION}",
            files="{{{{ params.files }}}}",
            volume_name="{{{{ params.volume }}}}",
            poll_interval=0.2,
            timeout=60,
            outlets=[milvus_collection_asset("{COLLECTION}", cluster_id="{CLUSTER}")],
        )
    """
)


@pytest.fixture
def volume_dags(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "ami_volume_dags.py").write_text(VOLUME_DAGS)
    use_dags_folder(monkeypatch, folder)
    return folder


@pytest.mark.integration
def test_an_import_from_a_volume(
    volume_dags: Path, httpserver_ipv4: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    zilliz = FakeImportServer(
        httpserver_ipv4,
        flavour="zilliz",
        token=SENTINEL_TOKEN,
        cluster_id=CLUSTER,
        collections=[COLLECTION],
        rows_per_file=50,
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT",
        json.dumps(
            {
                "conn_type": "milvus_import",
                "host": zilliz.base_url,
                "password": SENTINEL_TOKEN,
                "extra": {"cluster_id": CLUSTER, "console_link": VOLUME_LINK},
            }
        ),
    )
    files = [["parquet-folder/1.parquet"], ["parquet-folder/2.parquet"]]

    run = run_dag("ami_volume_import", {"files": files, "volume": "my_volume"}, folder=volume_dags)

    assert str(run.state) == "success", task_states(run)
    (create,) = [seen for seen in zilliz.seen if seen.route == "create"]
    assert create.body == {
        "clusterId": CLUSTER,
        "collectionName": COLLECTION,
        "volumeName": "my_volume",
        "dataPaths": files,
    }
    job_id = xcom(run, "import_files", "job_id")
    assert xcom(run, "import_files")["imported_rows"] == 100

    (event,) = asset_events(collection_ref(COLLECTION, cluster_id=CLUSTER).uri, run.run_id)
    assert (event.extra["job_id"], event.extra["volume_name"]) == (job_id, "my_volume")
    assert event.extra["cluster_id"] == CLUSTER

    assert links_shown(run, "import_files") == {
        LINK: f"https://cloud.zilliz.com/orgs/org-a/projects/proj-b/volumes/my_volume?job={job_id}"
    }

    lineage, extracted = extract(volume_dags, run, "import_files")
    for item in (lineage, extracted):
        assert [(dataset.namespace, dataset.name) for dataset in item.inputs] == [
            (f"{ZILLIZ_VOLUME_SCHEME}://my_volume", "parquet-folder/1.parquet"),
            (f"{ZILLIZ_VOLUME_SCHEME}://my_volume", "parquet-folder/2.parquet"),
        ]
        (output,) = item.outputs
        assert (output.namespace, output.name) == (f"zilliz://{CLUSTER}", f"default.{COLLECTION}")
    assert SENTINEL_TOKEN not in json.dumps([event.extra, xcom(run, "import_files")])
