"""A real Airflow, end to end: Airflow's own components as processes on 127.0.0.1, the example DAGs in its
DAGs folder, runs triggered through the REST API, against the local import server.

* On SQLite (one triggerer): the example pipelines import for real; a failed import fails the gate with the
  reason; the triggerer is SIGKILLed midway through a deferred wait and started again: the same trigger
  resumes in the new triggerer and the run succeeds, nothing lost; the token is in no log.
* On PostgreSQL (row locks, so two triggerers can share the work): two triggerers at once hold several
  deferred waits; each wait runs in one triggerer only, fires exactly once, and every run succeeds.

Select with ``-m e2e``; ``-k SQLite`` or ``-k Postgres`` runs one half.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import (
    E2E_SENTINEL_TOKEN,
    AirflowDeployment,
    ImportServerClient,
    PostgresCluster,
    ensure_system_deps,
    milvus_connection,
    postgres_bin_dir,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

GATE = "example_milvus_import_gate"
PIPELINE = "example_milvus_import_local_pipeline"
MAPPED = "example_milvus_import_mapped"
SENSOR = "wait_for_import"
FIRED = "Trigger fired event"
TRIGGER_ID = re.compile(r"\(ID (\d+)\)")
TRIGGERER_JOB = re.compile(r"\.trigger\.(\d+)\.log$")


def _deployment(
    root: Path,
    dags: Path,
    server: ImportServerClient,
    *,
    sql_alchemy_conn: str | None = None,
    config: dict[str, str] | None = None,
) -> AirflowDeployment:
    return AirflowDeployment(
        root=root,
        dags_folder=dags,
        sql_alchemy_conn=sql_alchemy_conn,
        connections={"milvus_import_default": milvus_connection(server)},
        config={
            # where the example pipelines write their Parquet files, and the Milvus they count rows in
            "AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_BUCKET": str(server.bucket),
            "AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_MILVUS_URI": server.milvus_uri,
            **(config or {}),
        },
    )


def _start(deployment: AirflowDeployment, *, triggerers: int) -> None:
    deployment.migrate()
    deployment.start_api_server()
    deployment.start("scheduler")
    deployment.start("dag-processor")
    for _ in range(triggerers):
        deployment.start("triggerer")
    deployment.wait_api()
    deployment.wait_healthy("scheduler", "triggerer", "dag_processor")
    deployment.wait_dags([GATE, PIPELINE, MAPPED])
    for dag_id in (GATE, PIPELINE, MAPPED):
        deployment.api.unpause(dag_id)


def _fired(text: str) -> int:
    return text.count(FIRED)


def _triggerer_job_id(log_name: str) -> int:
    match = TRIGGERER_JOB.search(log_name)
    assert match, f"not a trigger log file name: {log_name}"
    return int(match.group(1))


def _gate_job(server: ImportServerClient, collection: str, rows: int, **job: Any) -> str:
    server.create_collection(collection)
    path = server.write_rows(f"{collection}/rows.json", 0, rows)
    return server.create_job(collection, [path], **job)


def _assert_gate_succeeded(deployment: AirflowDeployment, run_id: str, job_id: str, rows: int) -> None:
    api = deployment.api
    assert api.dag_run(GATE, run_id)["state"] == "success"
    sensor = api.task_instance(GATE, run_id, SENSOR)
    assert sensor["state"] == "success"
    assert sensor["try_number"] == 1, "the wait was retried instead of resumed"
    progress = api.xcom(GATE, run_id, SENSOR)
    assert progress["job_id"] == job_id
    assert progress["state"] == "Completed"
    assert progress["imported_rows"] == rows
    published = api.xcom(GATE, run_id, "publish")
    assert job_id in published


# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def sqlite_airflow(
    import_server: ImportServerClient, example_dags_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    deployment = _deployment(tmp_path_factory.mktemp("airflow-sqlite"), example_dags_folder, import_server)
    try:
        _start(deployment, triggerers=1)
        yield deployment
    finally:
        deployment.stop()


class TestOnSQLite:
    """api-server, scheduler, dag-processor and one triggerer on SQLite with the LocalExecutor."""

    def test_example_pipelines_import_for_real(
        self, sqlite_airflow: AirflowDeployment, import_server: ImportServerClient
    ) -> None:
        api = sqlite_airflow.api
        pipeline_conf = {"collection": "e2e_pipeline", "rows": 8000, "dim": 16, "files": 4}
        mapped_conf = {"collection": "e2e_mapped", "files": 3, "rows_per_file": 200, "dim": 8}
        pipeline_run = api.trigger(PIPELINE, pipeline_conf)
        mapped_run = api.trigger(MAPPED, mapped_conf)

        for dag_id, run_id in ((PIPELINE, pipeline_run), (MAPPED, mapped_run)):
            run = sqlite_airflow.wait_run(dag_id, run_id, timeout=420)
            states = {ti["task_id"]: ti["state"] for ti in api.task_instances(dag_id, run_id)}
            assert run["state"] == "success", f"{dag_id}: {states}"

        summary = api.xcom(PIPELINE, pipeline_run, "verify_row_count")
        assert summary["rows_in_collection"] == summary["rows_imported"] == 8000
        assert import_server.count_rows("e2e_pipeline") == 8000
        details = api.xcom(PIPELINE, pipeline_run, "list_file_details", key="file_details")
        this_job = [d for d in details if d["job_id"] == summary["job_id"]]
        assert len(this_job) == 4
        assert {d["state"] for d in this_job} == {"Completed"}
        assert sum(d["imported_rows"] for d in this_job) == 8000
        assert import_server.count_rows("e2e_mapped") == 600

        # The 8,000-row import outlasts the operator's first check: it waited in the triggerer, which fired
        # exactly one event. (The mapped example's small jobs may end before its sensor checks: no deferral.)
        logs = sqlite_airflow.trigger_logs(PIPELINE, pipeline_run, "import_embeddings")
        assert logs, "import_embeddings never deferred to the triggerer"
        assert sum(_fired(text) for text in logs.values()) == 1
        mapped_logs = sqlite_airflow.trigger_logs(MAPPED, mapped_run, "wait_for_imports")
        assert sum(_fired(text) for text in mapped_logs.values()) == (1 if mapped_logs else 0)

    def test_a_failed_import_fails_the_gate_with_its_reason(
        self, sqlite_airflow: AirflowDeployment, import_server: ImportServerClient
    ) -> None:
        reason = "e2e: row 7 of rows.json has a vector of the wrong dimension"
        job_id = _gate_job(import_server, "e2e_gate_fails", 20, duration=4, fail=reason)
        api = sqlite_airflow.api
        run_id = api.trigger(GATE, {"job_id": job_id, "min_rows": 1})

        run = sqlite_airflow.wait_run(GATE, run_id, timeout=180)

        assert run["state"] == "failed"
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances(GATE, run_id)}
        assert states == {SENSOR: "failed", "check_import": "upstream_failed", "publish": "upstream_failed"}
        log = api.task_log(GATE, run_id, SENSOR)
        assert reason in log
        assert job_id in log

    def test_triggerer_killed_mid_wait_resumes_the_same_wait(
        self, sqlite_airflow: AirflowDeployment, import_server: ImportServerClient
    ) -> None:
        deployment, api = sqlite_airflow, sqlite_airflow.api
        job_id = _gate_job(import_server, "e2e_restart", 50, duration=45)
        run_id = api.trigger(GATE, {"job_id": job_id, "min_rows": 50})
        deployment.wait_task_state(GATE, run_id, SENSOR, {"deferred"}, timeout=120)

        # Let the first triggerer pick the trigger up and poll the job at least once (it logs each poll).
        def polled() -> bool:
            return any(job_id in text for text in deployment.trigger_logs(GATE, run_id, SENSOR).values())

        wait_until(
            "the first triggerer to poll the job", polled, timeout=90, diagnostics=deployment.diagnostics
        )
        at_kill = import_server.describe(job_id)
        assert at_kill["state"] not in {"Completed", "Failed"}, "job ended before the kill"

        [first] = [c for c in deployment.components if c.name == "triggerer"]
        first.kill()  # SIGKILL to its process group: the triggerer and its trigger runner die at once
        assert api.task_instance(GATE, run_id, SENSOR)["state"] == "deferred"
        deployment.start("triggerer")

        deployment.wait_run(GATE, run_id, timeout=300)

        _assert_gate_succeeded(deployment, run_id, job_id, rows=50)
        logs = deployment.trigger_logs(GATE, run_id, SENSOR)
        assert len(logs) == 2, f"expected the trigger in two triggerers, got logs {sorted(logs)}"
        before, after = (logs[name] for name in sorted(logs, key=_triggerer_job_id))
        # The same trigger row (not a new deferral) ran in both; only the second one fired, once.
        assert set(TRIGGER_ID.findall(before)) == set(TRIGGER_ID.findall(after)) != set()
        assert job_id in before
        assert job_id in after  # the resumed trigger polled the same job
        assert _fired(before) == 0
        assert _fired(after) == 1

    def test_the_token_is_in_no_airflow_log(self, sqlite_airflow: AirflowDeployment) -> None:
        text = sqlite_airflow.all_log_text()
        assert FIRED in text  # the task and trigger logs are there to search
        assert E2E_SENTINEL_TOKEN not in text


# ------------------------------------------------------------------------------------------------------------
HA_WAITS = 6


@pytest.fixture(scope="class")
def postgres_cluster() -> Iterator[PostgresCluster]:
    reason = ensure_system_deps(lambda: postgres_bin_dir() is not None, "PostgreSQL (Debian's postgresql)")
    if reason:
        pytest.skip(reason)
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    run_as = None
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user Debian's package creates
        try:
            run_as = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    cluster = PostgresCluster(bin_dir, run_as)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="class")
def postgres_airflow(
    postgres_cluster: PostgresCluster,
    import_server: ImportServerClient,
    example_dags_folder: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowDeployment]:
    for driver in ("psycopg2", "asyncpg"):  # Airflow's sync and async PostgreSQL drivers
        if importlib.util.find_spec(driver) is None:
            pytest.fail(f"{driver} is not installed: it belongs to the test extra (pip install -e '.[test]')")
    deployment = _deployment(
        tmp_path_factory.mktemp("airflow-postgres"),
        example_dags_folder,
        import_server,
        sql_alchemy_conn=postgres_cluster.sqlalchemy_url,
        # Each triggerer holds at most half the waits, so both must take a share.
        config={"AIRFLOW__TRIGGERER__CAPACITY": str(HA_WAITS // 2)},
    )
    try:
        _start(deployment, triggerers=2)
        yield deployment
    finally:
        deployment.stop()


class TestTwoTriggerersOnPostgres:
    """Two triggerers at once (HA) on PostgreSQL: no wait lost, none reported twice."""

    def test_two_triggerers_share_the_waits_and_each_fires_once(
        self, postgres_airflow: AirflowDeployment, import_server: ImportServerClient
    ) -> None:
        deployment, api = postgres_airflow, postgres_airflow.api
        rows = 30
        import_server.create_collection("e2e_ha")
        jobs = []
        for i in range(HA_WAITS):
            path = import_server.write_rows(f"e2e_ha/rows-{i}.json", i * rows, rows)
            jobs.append(import_server.create_job("e2e_ha", [path], duration=25 + 2 * i))
        runs = [api.trigger(GATE, {"job_id": job_id, "min_rows": rows}) for job_id in jobs]

        def waits_by_triggerer() -> dict[int, list[str]] | None:
            placed: dict[int, list[str]] = {}
            for run_id in runs:
                logs = deployment.trigger_logs(GATE, run_id, SENSOR)
                if not logs:
                    return None
                for name in logs:
                    placed.setdefault(_triggerer_job_id(name), []).append(run_id)
            return placed

        placed = wait_until(
            "every wait to run in a triggerer",
            waits_by_triggerer,
            timeout=240,
            interval=2,
            diagnostics=deployment.diagnostics,
        )
        assert len(placed) == 2, f"expected both triggerers to hold waits, got {placed}"
        assert sorted(len(v) for v in placed.values()) == [HA_WAITS // 2, HA_WAITS // 2]

        for run_id in runs:
            deployment.wait_run(GATE, run_id, timeout=300)
        for run_id, job_id in zip(runs, jobs, strict=True):
            _assert_gate_succeeded(deployment, run_id, job_id, rows)
            logs = deployment.trigger_logs(GATE, run_id, SENSOR)
            assert len(logs) == 1, f"{run_id}: the wait ran in more than one triggerer: {sorted(logs)}"
            assert _fired(next(iter(logs.values()))) == 1, f"{run_id}: the wait did not fire exactly once"
        assert import_server.count_rows("e2e_ha") == HA_WAITS * rows
        triggerer_output = "\n".join(
            c.log_path.read_text(errors="replace") for c in deployment.components if c.name == "triggerer"
        )
        assert "insertion attempted twice" not in triggerer_output
        assert E2E_SENTINEL_TOKEN not in deployment.all_log_text()
