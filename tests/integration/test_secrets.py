"""
The secrets sweep: with a sentinel token as every credential, run every example DAG, the DAGs of
``tests/dags/secrets`` (Zilliz Cloud's object URLs with storage credentials from a connection, and every
way a task fails with a credential at hand) and a small chaos run; then search everything they left
behind for the sentinel:

* task logs and the triggerer's log lines (all output of the runs, and any log file under AIRFLOW_HOME);
* XComs, rendered template fields, trigger events stored on task instances, asset events: the metadata
  database, every table and column except where credentials belong (``connection``, ``variable``, the
  connection fields of ``connection_test_request``);
* serialized triggers (``trigger.serialize()``, in the serde form a triggerer stores);
* exception texts (message, repr and rendered traceback) of every failure;
* the repr / str of the hook, its settings and its requests.

The server requires the token (``LocalImportServer(token=SENTINEL_TOKEN)``), so a run that succeeds has
really sent it. Airflow's secrets masker would turn a leaked token into ``***`` in logs and rendered fields;
the sweep does not rely on it: the outputs are also checked for ``***`` where nothing secret should ever
have been, and XComs, trigger kwargs and exception texts are never masked by Airflow at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, SENTINEL_TOKEN, prepare_rows
from tests.unit.operators.test_milvus_import import (
    new_collection,
    relative,
    run_dag,
    task_states,
    use_dags_folder,
    write_files,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLE_DAGS = REPO_ROOT / "example_dags"
SECRETS_DAGS = Path(__file__).resolve().parents[1] / "dags" / "secrets"
STORAGE_SECRET = f"{SENTINEL_TOKEN}-storage-secret-key"
SESSION_TOKEN = f"{SENTINEL_TOKEN}-storage-session-token"
WRONG_TOKEN = f"{SENTINEL_TOKEN}-stale"
ROWS_FILE = "secrets_rows.json"
#: tables where a credential is supposed to live
CREDENTIAL_TABLES = frozenset({"connection", "variable"})
#: columns that hold a credential in tables that are otherwise searched (the UI's connection tests keep the
#: connection's fields next to the result message, which is searched)
CREDENTIAL_COLUMNS = {"connection_test_request": frozenset({"password", "extra"})}


@dataclass
class Haystack:
    """Every text the sweep searches, by where it came from."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, source: str, *texts: Any) -> None:
        bucket = self.texts.setdefault(source, [])
        for text in texts:
            bucket.append(text if isinstance(text, str) else json.dumps(text, default=str))

    def add_exception(self, source: str, error: BaseException) -> None:
        self.add(source, str(error), repr(error), "".join(traceback.format_exception(error)))

    def leaks(self) -> list[str]:
        found = []
        for source, texts in self.texts.items():
            for text in texts:
                at = text.find(SENTINEL_TOKEN)
                if at >= 0:
                    found.append(f"{source}: ...{text[max(0, at - 150) : at + 80]}...")
        return found

    def summary(self) -> str:
        return ", ".join(
            f"{source} {len(texts)} ({sum(map(len, texts)):,} chars)" for source, texts in self.texts.items()
        )


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def define_connections(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    """The sentinel everywhere a credential goes: the API token, the storage keys; and refused variants."""
    milvus = {"conn_type": "milvus_import", "host": server.url}
    cloud = {
        "conn_type": "milvus_import",
        "host": server.cloud_url,
        "extra": {"cluster_id": server.cluster_id},
    }
    connection(monkeypatch, "milvus_import_default", **milvus, password=SENTINEL_TOKEN)
    connection(monkeypatch, "ami_secrets_cloud", **cloud, password=SENTINEL_TOKEN)
    connection(monkeypatch, "ami_secrets_wrong_token", **milvus, password=WRONG_TOKEN)
    connection(monkeypatch, "ami_secrets_wrong_login", **milvus, login="root", password=SENTINEL_TOKEN)
    connection(monkeypatch, "ami_secrets_cloud_wrong_key", **cloud, password=WRONG_TOKEN)
    connection(
        monkeypatch,
        "ami_secrets_storage",
        conn_type="aws",
        login="AKIA-ami-secrets-access",
        password=STORAGE_SECRET,
        extra={"aws_session_token": SESSION_TOKEN},
    )
    monkeypatch.setenv("AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_BUCKET", str(server.bucket))
    monkeypatch.setenv("AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_MILVUS_URI", server.milvus_uri)
    monkeypatch.setenv("MILVUS_IMPORT_EXAMPLE_ENDPOINT", server.url)


# ---- the runs -------------------------------------------------------------------------------------------


def example_dag_ids() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert not bag.import_errors, bag.import_errors
    return sorted(bag.dag_ids)


def run_examples(server: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str | None]]:
    """Every example DAG, small; returns ``(run, state it must end in or None)``."""
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    use_dags_folder(monkeypatch, EXAMPLE_DAGS)
    suffix = uuid.uuid4().hex[:8]
    collection = new_collection(server, "secrets_gate")
    batches = relative(server, write_files(server, collection, [10, 20]))
    with MilvusImportHook() as hook:
        good = hook.create_import_job(collection, batches, options={"local.duration": "1"})
        bad = hook.create_import_job(collection, batches[:1], options={"local.fail": "object not readable"})
    recipes: dict[str, list[tuple[dict[str, Any], str | None]]] = {
        "example_milvus_import_local_pipeline": [
            ({"collection": f"secrets_pipeline_{suffix}", "rows": 300, "files": 2, "dim": 8}, "success")
        ],
        "example_milvus_import_mapped": [
            ({"collection": f"secrets_mapped_{suffix}", "files": 2, "rows_per_file": 20, "dim": 8}, "success")
        ],
        "example_milvus_import_gate": [
            ({"job_id": good, "min_rows": 30}, "success"),
            ({"job_id": bad}, "failed"),
        ],
        "example_milvus_import_assets_producer": [({"rows": 50, "dim": 8}, "success")],
    }
    runs = []
    for dag_id in example_dag_ids():
        # A DAG without a recipe (a new example, or one scheduled on assets that dag.test() cannot feed)
        # still runs with its defaults: whatever it does, it must not leak.
        for conf, state in recipes.get(dag_id, [({}, None)]):
            runs.append((run_dag(dag_id, conf, folder=EXAMPLE_DAGS), state))
    return runs


def run_secrets_dags(server: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    use_dags_folder(monkeypatch, SECRETS_DAGS)
    collection = f"secrets_cloud_{uuid.uuid4().hex[:8]}"
    prepare_rows(server, collection, ROWS_FILE)
    zilliz = run_dag(
        "ami_secrets_zilliz_object_urls",
        {"collection": collection, "urls": [[f"s3://ami-bucket/{ROWS_FILE}"]]},
        folder=SECRETS_DAGS,
    )
    assert str(zilliz.state) == "success", task_states(zilliz)
    with MilvusImportHook() as hook:
        job_id = hook.create_import_job(collection, [[ROWS_FILE]], options={"local.duration": "30"})
    failures = run_dag(
        "ami_secrets_failures",
        {"collection": collection, "files": [[ROWS_FILE]], "job_id": job_id},
        folder=SECRETS_DAGS,
    )
    assert set(task_states(failures).values()) == {"failed"}, task_states(failures)
    return [zilliz, failures]


def serialized_triggers(server: Any, haystack: Haystack) -> None:
    """The triggers the sensor and the import operator defer with, as a triggerer would store them."""
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.sdk.serde import serialize

    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator
    from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor

    collection = f"secrets_triggers_{uuid.uuid4().hex[:8]}"
    prepare_rows(server, collection, ROWS_FILE)
    with MilvusImportHook("ami_secrets_cloud") as hook:
        running = hook.create_import_job(
            collection, [[f"s3://ami-bucket/{ROWS_FILE}"]], options={"local.duration": "30"}
        )
    deferring: list[Any] = [
        (
            MilvusImportJobSensor(
                task_id="s", job_id=running, milvus_import_conn_id="ami_secrets_cloud", deferrable=True
            ),
            {},
        ),
        (
            MilvusBulkImportOperator(
                task_id="o",
                collection_name=collection,
                object_urls=[f"s3://ami-bucket/{ROWS_FILE}"],
                storage_conn_id="ami_secrets_storage",
                milvus_import_conn_id="ami_secrets_cloud",
                options={"local.duration": "30"},
                deferrable=True,
            ),
            # the one thing execute needs from a task instance: somewhere to push the job id
            {"ti": SimpleNamespace(xcom_push=lambda key, value: haystack.add("xcom pushed", {key: value}))},
        ),
    ]
    for task, context in deferring:
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context)
        trigger = deferred.value.trigger
        classpath, kwargs = trigger.serialize()
        haystack.add(
            "serialized trigger", classpath, kwargs, serialize(kwargs), repr(trigger), repr(deferred.value)
        )
        assert kwargs["milvus_import_conn_id"] == "ami_secrets_cloud"


def small_chaos_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, haystack: Haystack) -> None:
    """20 jobs through the trigger loop and 20 through poke-mode sensors, faults on, token required."""
    from tests.chaos.conftest import ChaosRun, define_connection, plan_jobs, start_chaos_server

    server = start_chaos_server(tmp_path / "chaos", rate_limit=20.0, token=SENTINEL_TOKEN)
    try:
        define_connection(
            monkeypatch, "ami_secrets_chaos", server.url, password=SENTINEL_TOKEN, max_retries=1
        )
        for path in ("trigger", "poke"):
            plan = plan_jobs(20, 7, durations=(1.0, 3.0), short_deadline=4.0, long_deadline=60.0)
            run = ChaosRun(server, "ami_secrets_chaos", plan, server_rate_limit=20.0)
            run.create_jobs(threads=4)
            if path == "trigger":
                triggers = asyncio.run(run.wait_with_triggers(max_consecutive_errors=30))
                haystack.add("serialized trigger", *(trigger.serialize() for trigger in triggers))
            else:
                run.wait_with_sensors(max_consecutive_errors=15)
            assert run.wrong_outcomes() == [], run.report(path, 2, 15)
            assert run.stats["faults"]["fail"] > 0
            for outcome in run.outcomes:
                haystack.add(f"chaos {path} outcome", outcome.message)
                if outcome.error is not None:
                    haystack.add_exception(f"chaos {path} exception", outcome.error)
    finally:
        server.stop()


def hook_reprs(haystack: Haystack) -> None:
    from airflow_milvus_import import protocol
    from airflow_milvus_import.exceptions import MilvusImportError
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    for conn_id in ("milvus_import_default", "ami_secrets_cloud", "ami_secrets_wrong_login"):
        hook = MilvusImportHook(conn_id)
        settings = hook.get_settings()
        assert SENTINEL_TOKEN in (settings.token or "")  # the hook does hold it...
        create = protocol.build_create_request(
            dataclasses.replace(settings, cluster_id="in01-x"),
            "docs",
            [["s3://b/a.json"]],
            storage_credentials={"access_key": "AK", "secret_key": STORAGE_SECRET, "token": SESSION_TOKEN},
        )
        haystack.add(
            "repr",
            repr(hook),
            str(hook),
            repr(settings),
            str(settings),
            repr(protocol.build_progress_request(settings, "1")),
            repr(create),
            create.label,
        )
        try:
            hook.get_import_progress("448761313698322011")
        except MilvusImportError as error:  # ...but never shows it
            haystack.add_exception("exception", error)
        haystack.add("test connection", *hook.test_connection())
        haystack.add("repr", repr(hook))  # after use: settings loaded, clients open
        hook.close()


# ---- the search -----------------------------------------------------------------------------------------


def metadata_rows(haystack: Haystack) -> dict[str, int]:
    """Every row of every table of the metadata database, but where credentials belong."""
    from airflow.models.base import Base
    from airflow.utils.session import create_session
    from sqlalchemy import select

    counts: dict[str, int] = {}
    with create_session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in CREDENTIAL_TABLES:
                continue
            skipped = CREDENTIAL_COLUMNS.get(table.name, frozenset())
            rows = session.execute(
                select(*(column for column in table.columns if column.name not in skipped))
            ).all()
            counts[table.name] = len(rows)
            haystack.add(f"db:{table.name}", *(repr(tuple(row)) for row in rows))
    return counts


def log_files(since: float, haystack: Haystack) -> int:
    from airflow.configuration import conf

    roots = {Path(conf.get("logging", "base_log_folder")), Path(os.environ.get("AIRFLOW_HOME", "."))}
    seen = 0
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.is_file() and path.suffix not in (".db", ".sqlite3") and path.stat().st_mtime >= since:
                haystack.add("log file", path.read_text(errors="replace"))
                seen += 1
    return seen


def test_the_sentinel_token_appears_nowhere(
    airflow_db: Path,
    secured_local_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    caplog.set_level("DEBUG")
    started = time.time() - 1
    server = secured_local_server
    define_connections(monkeypatch, server)
    haystack = Haystack()

    examples = run_examples(server, monkeypatch)
    for run, state in examples:
        if state is not None:
            assert str(run.state) == state, (run.dag_id, task_states(run))
    secrets_runs = run_secrets_dags(server, monkeypatch)
    serialized_triggers(server, haystack)
    small_chaos_run(tmp_path, monkeypatch, haystack)
    hook_reprs(haystack)

    output = capfd.readouterr()
    logs = output.out + output.err + "\n" + caplog.text
    haystack.add("task and triggerer logs", logs)
    files = log_files(started, haystack)
    tables = metadata_rows(haystack)

    # The texts searched are the real ones: each source holds what the runs produced.
    runs = [run for run, _ in examples] + secrets_runs
    assert {run.dag_id for run in runs} >= set(example_dag_ids()) | {"ami_secrets_zilliz_object_urls"}
    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel).where(XComModel.run_id.in_([run.run_id for run in runs]))
        ).all()
    assert any("Completed" in str(xcom.value) for xcom in xcoms)
    assert any(xcom.key == "job_id" for xcom in xcoms)
    assert tables["rendered_task_instance_fields"] > 0
    assert "Milvus import wait ended with success" in logs  # the triggerer's lines
    assert "running trigger in line" in logs
    for fragment in (
        "credentials were not accepted",  # the refused token, deferred and in poke mode
        "The apikey is illegal",  # the refused Zilliz Cloud API key
        "row 3 is not readable",  # the failed job
        "collection not found",  # the unknown collection
    ):
        assert fragment in logs, fragment

    leaks = haystack.leaks()
    print(f"searched: {haystack.summary()}; log files {files}; tables {len(tables)}")
    assert leaks == [], "\n".join(leaks[:10])
    # Nothing relied on the masker: no task printed or rendered anything it had to hide.
    masked = [line for line in logs.splitlines() if "***" in line]
    assert masked == [], "\n".join(masked[:10])
