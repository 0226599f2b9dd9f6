"""Event-driven scheduling end to end: Airflow's scheduler, triggerer, DAG processor and API server on SQLite,
the example DAG ``example_milvus_import_event_driven`` watching a collection of the local import server, and
import jobs created with pymilvus' own ``bulk_import`` (not through Airflow).

* a job finished before Airflow started is not replayed; a new job starts the DAG exactly once, a second one
  once more;
* the triggerer is SIGKILLed and a job finishes while none runs: the new triggerer reports it, once, and
  does not repeat the first one (the asset state store remembers);
* a Failed job starts nothing for the Completed-only example, and starts a DAG whose watcher asks for
  failures exactly once, its event carrying the reason;
* the token is in no log, trigger event or asset event.

Select with ``-m e2e``.
"""

from __future__ import annotations

import json
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import (
    E2E_SENTINEL_TOKEN,
    EXAMPLE_DAGS,
    AirflowDeployment,
    ImportServerClient,
    milvus_connection,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

EVENT_DAG = "example_milvus_import_event_driven"
COLLECTION = "example_event_books"
FAILURES_DAG = "e2e_event_failures"
FAILURES_COLLECTION = "e2e_event_failures"
#: the watchers' default poll interval (10 s), and slack for the scheduler to turn an event into a run
QUIET_SECONDS = 35

FAILURES_DAG_FILE = f'''
"""A DAG whose watcher also reports failed imports (written by the e2e test)."""
import os
from datetime import datetime

from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

from airflow_milvus_import.lineage import milvus_collection_asset
from airflow_milvus_import.triggers.milvus_import_event import MilvusImportJobEventTrigger

ENDPOINT = os.environ["MILVUS_IMPORT_EXAMPLE_ENDPOINT"]
_ASSET = milvus_collection_asset({FAILURES_COLLECTION!r}, endpoint=ENDPOINT)
WATCHED = Asset(
    name=_ASSET.name,
    uri=_ASSET.uri,
    watchers=[
        AssetWatcher(
            name="e2e_event_failures_imports",
            trigger=MilvusImportJobEventTrigger(
                collection_name={FAILURES_COLLECTION!r}, states=["Completed", "Failed"]
            ),
        )
    ],
)


@dag(dag_id={FAILURES_DAG!r}, schedule=[WATCHED], start_date=datetime(2025, 1, 1), catchup=False)
def e2e_event_failures():
    @task
    def report():
        return [
            event.extra
            for events in get_current_context()["triggering_asset_events"].values()
            for event in events
        ]

    report()


e2e_event_failures()
'''


def _bulk_import(server: ImportServerClient, collection: str, path: str) -> str:
    """A job created the way a Spark job or a script would: pymilvus' own bulk_import."""
    from pymilvus.bulk_writer import bulk_import

    response = bulk_import(url=server.url, collection_name=collection, files=[[path]], api_key=server.token)
    body = response.json()
    assert body.get("code") == 0, body
    return str(body["data"]["jobId"])


def _finished(server: ImportServerClient, job_id: str) -> str:
    def state() -> str | None:
        current = str(server.describe(job_id)["state"])
        return current if current in ("Completed", "Failed") else None

    return wait_until(f"job {job_id} to finish", state, timeout=120)


@pytest.fixture(scope="module")
def event_airflow(
    import_server: ImportServerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    dags = tmp_path_factory.mktemp("e2e-event-dags")
    (dags / f"{EVENT_DAG}.py").write_text((EXAMPLE_DAGS / f"{EVENT_DAG}.py").read_text())
    (dags / f"{FAILURES_DAG}.py").write_text(textwrap.dedent(FAILURES_DAG_FILE))
    deployment = AirflowDeployment(
        root=tmp_path_factory.mktemp("airflow-event"),
        dags_folder=dags,
        connections={"milvus_import_default": milvus_connection(import_server)},
        config={"MILVUS_IMPORT_EXAMPLE_ENDPOINT": import_server.url},
    )
    try:
        yield deployment
    finally:
        deployment.stop()


def _runs(deployment: AirflowDeployment, dag_id: str) -> list[dict[str, Any]]:
    return deployment.api.dag_runs(dag_id)


def _wait_runs(deployment: AirflowDeployment, dag_id: str, count: int, timeout: float = 180) -> list[Any]:
    """Wait until ``dag_id`` has ``count`` finished runs (and fail at once on more)."""

    def probe() -> list[dict[str, Any]] | None:
        deployment.check_alive()
        runs = _runs(deployment, dag_id)
        assert len(runs) <= count, f"{dag_id}: {len(runs)} runs, expected {count}: {runs}"
        done = [run for run in runs if run["state"] in ("success", "failed")]
        return runs if len(done) == count else None

    return wait_until(f"{count} finished run(s) of {dag_id}", probe, timeout=timeout, interval=2,
                      diagnostics=deployment.diagnostics)


def _jobs_of(deployment: AirflowDeployment, run: dict[str, Any]) -> list[str]:
    assert run["state"] == "success", run
    summary = deployment.api.xcom(EVENT_DAG, run["dag_run_id"], "evaluate")
    assert summary["collection"] == COLLECTION
    assert summary["states"] == ["Completed"]
    return list(summary["jobs"])


def test_imports_from_outside_airflow_start_the_watching_dag_once_each(
    event_airflow: AirflowDeployment, import_server: ImportServerClient
) -> None:
    deployment, api, server = event_airflow, event_airflow.api, import_server
    server.create_collection(COLLECTION)
    server.create_collection(FAILURES_COLLECTION)
    rows = server.write_rows("event/rows.json", 0, 30)
    old_job = _bulk_import(server, COLLECTION, rows)
    assert _finished(server, old_job) == "Completed"

    deployment.migrate()
    deployment.start_api_server()
    deployment.start("scheduler")
    deployment.start("dag-processor")
    deployment.start("triggerer")
    deployment.wait_api()
    deployment.wait_healthy("scheduler", "triggerer", "dag_processor")
    deployment.wait_dags([EVENT_DAG, FAILURES_DAG])
    api.unpause(EVENT_DAG)
    api.unpause(FAILURES_DAG)

    def watching() -> bool:
        text = deployment.all_log_text()
        return all(f"Watcher of collection {name!r}" in text for name in (COLLECTION, FAILURES_COLLECTION))

    wait_until("both watchers to take their baseline", watching, timeout=180, interval=2,
               diagnostics=deployment.diagnostics)

    # 1. One job created with pymilvus: one run (the job finished before Airflow started is not replayed).
    first = _bulk_import(server, COLLECTION, rows)
    [run] = _wait_runs(deployment, EVENT_DAG, 1)
    assert _jobs_of(deployment, run) == [first]

    # 2. The triggerer dies; a job finishes while none runs; a new triggerer reports it, and only it.
    [triggerer] = [c for c in deployment.components if c.name == "triggerer"]
    triggerer.kill()
    second = _bulk_import(server, COLLECTION, rows)
    assert _finished(server, second) == "Completed"
    deployment.start("triggerer")
    runs = _wait_runs(deployment, EVENT_DAG, 2, timeout=240)
    assert _jobs_of(deployment, runs[1]) == [second]

    # 3. Failed jobs: nothing for the Completed-only example; one run where failures are asked for.
    failed_here = _bulk_import(server, COLLECTION, "event/missing.json")
    failed_there = _bulk_import(server, FAILURES_COLLECTION, "event/missing.json")
    assert _finished(server, failed_here) == _finished(server, failed_there) == "Failed"
    [failure_run] = _wait_runs(deployment, FAILURES_DAG, 1)
    assert failure_run["state"] == "success"
    [extra] = api.xcom(FAILURES_DAG, failure_run["dag_run_id"], "report")
    payload = extra["payload"]
    assert (payload["job_id"], payload["state"]) == (failed_there, "Failed")
    assert payload["collection_name"] == FAILURES_COLLECTION
    assert payload["reason"], payload

    # Quiet for a while: no run repeats a job, and the old and the Failed jobs start nothing.
    time.sleep(QUIET_SECONDS)
    deployment.check_alive()
    assert len(_runs(deployment, EVENT_DAG)) == 2
    assert len(_runs(deployment, FAILURES_DAG)) == 1

    events = api.asset_events()
    watched = [event for event in events if (event.get("extra") or {}).get("from_trigger")]
    assert sorted(event["extra"]["payload"]["job_id"] for event in watched) == sorted(
        [first, second, failed_there]
    )
    assert E2E_SENTINEL_TOKEN not in json.dumps(events)
    assert E2E_SENTINEL_TOKEN not in deployment.all_log_text()

