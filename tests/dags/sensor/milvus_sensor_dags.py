"""
DAGs that tests/unit/sensors/test_milvus_import.py runs under ``dag.test()`` (which needs DAGs that live in
the DAGs folder).

Each DAG waits with ``MilvusImportJobSensor`` in one mode, then a downstream task reads the sensor's XCom.
The job id(s) and the connection come from the run's conf, through the sensor's templated fields:
``{"job_id": "448761313698322011"}``, or several as ``{"job_id": ["1", "2"]}`` (rendered to the text
``"['1', '2']"``, which the sensor reads back as a list), and ``{"conn_id": "..."}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor

JOB_ID = "{{ dag_run.conf['job_id'] }}"
CONN_ID = "{{ dag_run.conf.get('conn_id', 'milvus_import_test') }}"
START = datetime(2024, 1, 1)


def _sensor_dag(dag_id: str, **sensor_kwargs: Any) -> DAG:
    with DAG(
        dag_id=dag_id, schedule=None, start_date=START, catchup=False, tags=["milvus-import-tests"]
    ) as dag:
        wait = MilvusImportJobSensor(
            task_id="wait", job_id=JOB_ID, milvus_import_conn_id=CONN_ID, **sensor_kwargs
        )

        @task
        def report(progress: Any) -> dict[str, Any]:
            """The sensor's XCom: one job's progress, or the list of them."""
            jobs = progress if isinstance(progress, list) else [progress]
            return {
                "states": [job["state"] for job in jobs],
                "rows": sum(job["imported_rows"] for job in jobs),
            }

        report(wait.output)
    return dag


# The first dag.test() in a process pays for parsing and for Airflow's in-process API; the tests run this DAG
# first, so that the short jobs they create do not end before their sensor even starts.
with DAG(dag_id="milvus_sensor_warm_up", schedule=None, start_date=START, catchup=False) as warm_up:

    @task
    def noop() -> None:
        return None

    noop()


deferrable = _sensor_dag("milvus_sensor_deferrable", deferrable=True, poll_interval=0.3, timeout=120)
poke = _sensor_dag("milvus_sensor_poke", deferrable=False, mode="poke", poll_interval=0.3, timeout=120)
reschedule = _sensor_dag(
    "milvus_sensor_reschedule", deferrable=False, mode="reschedule", poll_interval=1, timeout=120
)
deferrable_timeout = _sensor_dag(
    "milvus_sensor_deferrable_timeout", deferrable=True, poll_interval=0.3, timeout=1.5
)
soft_fail_deferrable = _sensor_dag(
    "milvus_sensor_soft_fail_deferrable", deferrable=True, poll_interval=0.3, timeout=1.5, soft_fail=True
)
soft_fail_poke = _sensor_dag(
    "milvus_sensor_soft_fail_poke",
    deferrable=False,
    mode="poke",
    poll_interval=0.3,
    timeout=1.5,
    soft_fail=True,
)
soft_fail_reschedule = _sensor_dag(
    "milvus_sensor_soft_fail_reschedule",
    deferrable=False,
    mode="reschedule",
    poll_interval=1,
    timeout=1.5,
    soft_fail=True,
)
