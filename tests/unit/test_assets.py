"""
Assets: an import declares its collection as an outlet, and a DAG scheduled on it runs when the import lands.

The asset helper and Airflow's URI rules for ``milvus://`` / ``zilliz://`` are tested directly. Then the
example DAG pair runs for real against the local import server: the producer under ``dag.test()``; the
asset event it records (read back from the metadata DB); the consumer found due by the scheduler's own
query and its run created by the scheduler's own code (with the triggering events), then run as
``dag.test()`` runs tasks; its sensor waits on the job ids from the events' extras.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_import.lineage import collection_ref, milvus_collection_asset, parse_collection_uri
from tests.conftest import REPO_ROOT
from tests.unit.operators.test_milvus_import import (
    count_rows,
    new_collection,
    relative,
    run_dag,
    task_states,
    write_files,
    xcom,
)

if TYPE_CHECKING:
    from pathlib import Path

EXAMPLE_DAGS = REPO_ROOT / "example_dags"
PRODUCER = "example_milvus_import_assets_producer"
CONSUMER = "example_milvus_import_assets_consumer"
EXAMPLE_COLLECTION = "example_asset_books"


# ---------------------------------------------------------------------------------------------------------
# The asset helper and URI rules (pure)


@pytest.mark.parametrize(
    ("kwargs", "uri"),
    [
        ({"endpoint": "http://127.0.0.1:19530"}, "milvus://127.0.0.1:19530/default/books"),
        (
            {"endpoint": "Milvus.Example.com:19530", "db_name": "prod"},
            "milvus://milvus.example.com:19530/prod/books",
        ),
        ({"endpoint": "https://milvus.example.com"}, "milvus://milvus.example.com:443/default/books"),
        ({"endpoint": "milvus.internal", "port": 19540}, "milvus://milvus.internal:19540/default/books"),
        ({"endpoint": "http://[::1]:19530/prefix"}, "milvus://[::1]:19530/default/books"),
        ({"cluster_id": "in01-ABCdef123"}, "zilliz://in01-abcdef123/default/books"),
        (
            {"cluster_id": "in01-abc", "endpoint": "https://api.cloud.zilliz.com", "db_name": "db_1"},
            "zilliz://in01-abc/db_1/books",
        ),
    ],
)
def test_collection_asset_uris(kwargs: dict[str, Any], uri: str) -> None:
    from airflow.sdk import Asset

    asset = milvus_collection_asset("books", **kwargs)
    assert isinstance(asset, Asset)
    assert (asset.uri, asset.name) == (uri, uri)
    # Airflow keeps it as it is (our URI handler is registered for both schemes) and can convert it
    assert asset.normalized_uri == uri
    assert parse_collection_uri(asset.uri) == collection_ref("books", **kwargs)


def test_collection_asset_name_group_and_extra() -> None:
    asset = milvus_collection_asset(
        "books",
        endpoint="http://milvus:19530",
        name="books in prod",
        group="vector-db",
        extra={"team": "search"},
    )
    assert (asset.name, asset.group, asset.extra) == ("books in prod", "vector-db", {"team": "search"})


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("books",), {}, "Give the Milvus endpoint"),
        (
            ("{{ params.collection }}",),
            {"endpoint": "http://m:19530"},
            "is a template: an asset's URI is fixed",
        ),
        (("my-books",), {"endpoint": "http://m:19530"}, "is not a Milvus name"),
        (("books",), {"endpoint": "http://m:19530", "db_name": "1db"}, "db_name '1db' is not a Milvus name"),
        (("books",), {"endpoint": "ftp://m"}, "must be an http:// or https:// URL"),
        (("books",), {"cluster_id": "in01_under/score"}, "is not a Zilliz Cloud cluster id"),
    ],
)
def test_collection_asset_rejects_what_cannot_name_a_collection(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        milvus_collection_asset(*args, **kwargs)


def test_airflow_applies_our_uri_rules_to_hand_written_assets() -> None:
    from airflow.sdk import Asset

    assert Asset("milvus://Milvus/default/books").uri == "milvus://milvus:19530/default/books"
    assert Asset("zilliz://IN01-abc/default/books/").uri == "zilliz://in01-abc/default/books"
    for bad, message in (
        ("milvus://milvus:19530/books", "must name /database/collection"),
        ("milvus://milvus:19530/default/books?x=1", "must not have a query"),
        ("milvus://milvus:19530/default/my-books", "collection 'my-books' is not a Milvus name"),
        ("zilliz://in01-abc:443/default/books", "names a cluster id, not a port"),
    ):
        with pytest.raises(ValueError, match=message):
            Asset(bad)


def test_the_asset_and_the_lineage_output_name_the_same_dataset() -> None:
    from airflow.providers.common.compat.openlineage.utils.utils import translate_airflow_asset

    from airflow_milvus_import.lineage import build_lineage, target_from_settings
    from airflow_milvus_import.protocol import settings_from_connection

    for endpoint, extra in (
        ("http://milvus.internal:19530", {"db_name": "prod"}),
        ("https://api.cloud.zilliz.com", {"cluster_id": "in01-abc", "db_name": "prod"}),
    ):
        asset = milvus_collection_asset(
            "books", endpoint=endpoint, cluster_id=extra.get("cluster_id"), db_name="prod"
        )
        dataset = translate_airflow_asset(asset, None)
        target = target_from_settings(settings_from_connection("c", endpoint, extra=extra))
        (output,) = build_lineage(target, collection_name="books").outputs
        assert dataset is not None
        assert (dataset.namespace, dataset.name) == (output.namespace, output.name)


# ---------------------------------------------------------------------------------------------------------
# Helpers: the metadata DB, and running an asset-triggered run the way the scheduler creates it


def asset_events(uri: str, source_run_id: str | None = None) -> list[Any]:
    """The asset events recorded for ``uri`` (optionally: by one run), as plain records."""
    from types import SimpleNamespace

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        )
        if source_run_id is not None:
            query = query.where(AssetEvent.source_run_id == source_run_id)
        return [
            SimpleNamespace(
                id=event.id,
                asset_id=event.asset_id,
                extra=dict(event.extra or {}),
                source_dag_id=event.source_dag_id,
                source_task_id=event.source_task_id,
                source_run_id=event.source_run_id,
                source_aliases=[alias.name for alias in event.source_aliases],
            )
            for event in session.scalars(query)
        ]


def sync_dags_and_unpause(folder: Path, dag_id: str) -> None:
    """Write the folder's DAGs to the metadata DB (as the DAG processor does) and unpause ``dag_id``."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert dag_id in bag.dag_ids, f"{dag_id} not in bundle {bundle.name} at {bundle.path} ({folder})"
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def create_asset_triggered_run(dag_id: str) -> str:
    """What the scheduler does for an asset-scheduled DAG: check it is due, create its run with the events."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    with create_session() as session:
        query, triggered = DagModel.dags_needing_dagruns(session)
        due = [model for model in query if model.dag_id == dag_id]
        model = session.get(DagModel, dag_id)
        state = {
            name: getattr(model, name, None)
            for name in ("is_paused", "is_stale", "has_import_errors", "bundle_name", "max_active_runs")
        }
        assert due, f"the scheduler does not find {dag_id} due: {state}, triggered {triggered}"
        assert dag_id in triggered
        runner = SchedulerJobRunner(job=Job(), executors=[])
        runner._create_dag_runs_asset_triggered(dag_models=due, session=session)
        session.flush()
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.run_type == DagRunType.ASSET_TRIGGERED)
            .order_by(DagRun.id.desc())
        ).first()
        assert run is not None
        return str(run.run_id)


def run_existing(folder: Path, dag_id: str, run_id: str) -> Any:
    """Run the tasks of an existing DagRun in this process, as ``dag.test()`` runs those of its own run."""
    import time

    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    dag = DagBag(dag_folder=str(folder)).get_dag(dag_id)
    session = settings.Session()
    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
    run.dag = DBDagBag().get_dag_for_run(run, session=session)
    run.state = DagRunState.RUNNING
    run.start_date = timezone.utcnow()
    session.commit()
    deadline = time.monotonic() + 180
    while run.state == DagRunState.RUNNING and time.monotonic() < deadline:
        session.expire_all()
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
            ti.scheduled_dttm = timezone.utcnow()
        session.commit()
        ready = [
            ti for ti in run.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED
        ]
        if not ready:
            time.sleep(0.5)
        for ti in ready:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    session.close()
    return run


# ---------------------------------------------------------------------------------------------------------
# The example pair


@pytest.fixture
def example_assets(airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.unit.operators.test_milvus_import import use_dags_folder

    use_dags_folder(monkeypatch, EXAMPLE_DAGS)
    monkeypatch.setenv("MILVUS_IMPORT_EXAMPLE_ENDPOINT", local_server.url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT",
        json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_BUCKET", str(local_server.bucket))
    monkeypatch.setenv("AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_MILVUS_URI", local_server.milvus_uri)
    return local_server


@pytest.mark.integration
def test_the_consumer_runs_on_the_producers_import(example_assets: Any) -> None:
    from airflow.models.asset import AssetDagRunQueue, DagScheduleAssetReference
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    server = example_assets
    uri = collection_ref(EXAMPLE_COLLECTION, endpoint=server.url).uri
    sync_dags_and_unpause(EXAMPLE_DAGS, CONSUMER)

    produced = run_dag(PRODUCER, {"rows": 300, "dim": 8}, folder=EXAMPLE_DAGS)

    assert str(produced.state) == "success", task_states(produced)
    job_id = xcom(produced, "import_books", "job_id")
    imported = xcom(produced, "import_books")
    (event,) = asset_events(uri, produced.run_id)
    assert event.source_dag_id == PRODUCER
    assert event.source_task_id == "import_books"
    assert event.extra == {
        "job_id": job_id,
        "collection_name": EXAMPLE_COLLECTION,
        "db_name": "default",
        "deployment": "Milvus",
        "endpoint": server.url,
        "state": "Completed",
        "imported_rows": 300,
        "total_rows": 300,
        "file_size": imported["file_size"],
        "files": 1,
    }
    with create_session() as session:
        references = session.scalars(
            select(DagScheduleAssetReference).where(DagScheduleAssetReference.dag_id == CONSUMER)
        ).all()
        assert [reference.asset.uri for reference in references] == [uri]
        queued = session.scalars(
            select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == CONSUMER)
        ).all()
        assert [item.asset_id for item in queued] == [event.asset_id]

    run_id = create_asset_triggered_run(CONSUMER)
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.run_id == run_id, DagRun.dag_id == CONSUMER)).one()
        assert [consumed.id for consumed in run.consumed_asset_events] == [event.id]

    consumed = run_existing(EXAMPLE_DAGS, CONSUMER, run_id)

    assert str(consumed.state) == "success", task_states(consumed)
    waited = xcom(consumed, "wait_for_imports")
    assert [job["job_id"] for job in waited] == [job_id]
    assert waited[0]["state"] == "Completed"
    assert xcom(consumed, "publish") == {
        "collection": EXAMPLE_COLLECTION,
        "jobs": [job_id],
        "rows": 300,
        "events": [{"source": f"{PRODUCER}/{produced.run_id}", "job_id": job_id}],
    }
    assert count_rows(server, EXAMPLE_COLLECTION) == 300


# ---------------------------------------------------------------------------------------------------------
# Fire and forget: an AssetAlias outlet, and the consumer's sensor doing the waiting

ALIAS_DAGS = textwrap.dedent(
    """
    import os
    from datetime import datetime

    from airflow.sdk import DAG, AssetAlias

    from airflow_milvus_import.lineage import milvus_collection_asset
    from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator
    from airflow_milvus_import.sensors.milvus_import import (
        JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS,
        MilvusImportJobSensor,
    )

    COLLECTION = os.environ["AMI_ALIAS_COLLECTION"]
    IMPORTS = AssetAlias("ami_alias_imports")
    START = datetime(2025, 1, 1)

    with DAG("ami_alias_producer", schedule=None, start_date=START, catchup=False,
             render_template_as_native_obj=True, params={"files": []}):
        MilvusBulkImportOperator(
            task_id="start_import",
            collection_name=COLLECTION,
            files="{{ params.files }}",
            options={"local.duration": "3"},
            wait_for_completion=False,
            outlets=[IMPORTS],
        )

    with DAG("ami_alias_consumer", start_date=START, catchup=False,
             schedule=[milvus_collection_asset(COLLECTION, endpoint=os.environ["AMI_ALIAS_ENDPOINT"])]):
        MilvusImportJobSensor(
            task_id="wait", job_id=JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS, deferrable=True, poll_interval=0.5,
            timeout=120,
        )
    """
)


@pytest.mark.integration
def test_an_alias_outlet_gets_the_collection_and_the_consumer_waits_for_the_job(
    airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.unit.operators.test_milvus_import import use_dags_folder

    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "ami_alias_dags.py").write_text(ALIAS_DAGS)
    collection = new_collection(local_server, "alias")
    batches = relative(local_server, write_files(local_server, collection, [40, 2]))
    use_dags_folder(monkeypatch, folder)
    monkeypatch.setenv("AMI_ALIAS_COLLECTION", collection)
    monkeypatch.setenv("AMI_ALIAS_ENDPOINT", local_server.url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT",
        json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
    )
    sync_dags_and_unpause(folder, "ami_alias_consumer")
    uri = collection_ref(collection, endpoint=local_server.url).uri

    started = run_dag("ami_alias_producer", {"files": batches}, folder=folder)

    assert str(started.state) == "success", task_states(started)
    job_id = xcom(started, "start_import", "job_id")
    assert xcom(started, "start_import") == job_id
    (event,) = asset_events(uri, started.run_id)
    assert event.extra["job_id"] == job_id
    assert "state" not in event.extra  # the event fired when the job was created, not when it ended
    assert event.source_aliases == ["ami_alias_imports"]

    run_id = create_asset_triggered_run("ami_alias_consumer")
    consumed = run_existing(folder, "ami_alias_consumer", run_id)

    assert str(consumed.state) == "success", task_states(consumed)
    (waited,) = xcom(consumed, "wait")
    assert (waited["job_id"], waited["state"], waited["imported_rows"]) == (job_id, "Completed", 42)


@pytest.mark.integration
def test_an_outlet_naming_another_collection_is_reported(
    airflow_db: Path,
    local_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.unit.operators.test_milvus_import import Logs, use_dags_folder

    folder = tmp_path / "dags"
    folder.mkdir()
    wrong = f"other_{uuid.uuid4().hex[:6]}"
    (folder / "ami_wrong_outlet.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import datetime
            from airflow.sdk import DAG
            from airflow_milvus_import.lineage import milvus_collection_asset
            from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator

            with DAG("ami_wrong_outlet", schedule=None, start_date=datetime(2025, 1, 1),
                     render_template_as_native_obj=True, params={{"collection": "", "files": []}}):
                MilvusBulkImportOperator(
                    task_id="import_files", collection_name="{{{{ params.collection }}}}",
                    files="{{{{ params.files }}}}", poll_interval=0.5, timeout=60,
                    outlets=[milvus_collection_asset("{wrong}", endpoint={local_server.url!r})],
                )
            """
        )
    )
    use_dags_folder(monkeypatch, folder)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT",
        json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
    )
    collection = new_collection(local_server, "outlet")
    batches = relative(local_server, write_files(local_server, collection, [5]))
    caplog.set_level("INFO")
    logs = Logs(capfd, caplog)

    run = run_dag("ami_wrong_outlet", {"collection": collection, "files": batches}, folder=folder)

    assert str(run.state) == "success"
    (event,) = asset_events(collection_ref(wrong, endpoint=local_server.url).uri, run.run_id)
    assert event.extra["collection_name"] == collection
    assert "does not name the collection this task imported into" in logs.text()
