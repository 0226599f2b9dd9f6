"""Shared test set-up: an isolated AIRFLOW_HOME, an Airflow metadata DB on demand, the local import server."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# Airflow reads its configuration when first imported: isolate it before any test module imports airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ami-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_AIRFLOW_HOME / "dags"))
os.environ.setdefault("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(_AIRFLOW_HOME / "logs"))
# Airflow 3.2's dag.test() starts the in-process execution API, whose lifespan needs a JWT secret
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "ami-tests-jwt-secret-not-a-credential")
os.environ.pop("AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT", None)


def _keep_airflow_3_2_in_process_api_alive() -> None:
    """
    Airflow 3.2's ``dag.test()`` builds its in-process execution API, keeps only its transport and drops
    the ``InProcessExecutionAPI`` object, whose garbage collection unwinds the API app's lifespan: every
    task then fails with "'State' object has no attribute 'svcs_registry'" (3.3 ties the lifespan to the
    transport instead). Keeping the objects alive for the test process is 3.3's behaviour; nothing of the
    package is patched.
    """
    try:
        from importlib.metadata import version

        if not version("apache-airflow-core").startswith("3.2."):
            return
        from airflow.sdk.execution_time import supervisor
    except Exception:
        return
    original = supervisor.in_process_api_server
    kept: list[Any] = []

    def in_process_api_server() -> Any:
        api = original()
        kept.append(api)
        return api

    supervisor.in_process_api_server = in_process_api_server


_keep_airflow_3_2_in_process_api_alive()

REPO_ROOT = Path(__file__).resolve().parent.parent
SENTINEL_TOKEN = "sentinel-token-7f3a9c-DO-NOT-LEAK"

#: The core suite (``pytest -m core``): what scripts/test-matrix.sh runs on every supported Airflow. The
#: hook, the wire protocol, the trigger, the sensor (deferrable, poke, reschedule), both operators and the
#: example DAGs under dag.test(), the local server with pymilvus' own client, the provider registration and
#: the compatibility layer. The whole suite runs on the newest Airflow.
CORE_SUITE = frozenset(
    {
        "tests/unit/test_compat.py",
        "tests/integration/test_example_dags.py",
        "tests/unit/hooks/test_milvus_import.py",
        "tests/unit/hooks/test_milvus_import_local_server.py",
        "tests/unit/operators/test_milvus_import_retries.py",
        "tests/unit/operators/test_milvus_import.py",
        "tests/unit/test_provider.py",
        "tests/integration/test_round2.py",
        "tests/unit/sensors/test_milvus_import.py",
        "tests/unit/triggers/test_milvus_import.py",
        "tests/local/test_local_pymilvus.py",
        "tests/unit/protocol/test_paging.py",
        "tests/unit/protocol/test_requests.py",
        "tests/unit/protocol/test_responses.py",
        "tests/unit/protocol/test_settings.py",
    }
)


class _CurrentStream:
    """A stream that writes to whatever ``sys.stdout`` (or ``sys.stderr``) is when it writes."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute
        self.name = f"<{attribute}>"

    def write(self, text: str) -> int:
        return int(getattr(sys, self.attribute).write(text))

    def flush(self) -> None:
        getattr(sys, self.attribute).flush()


def _follow_the_current_streams() -> None:
    import logging

    known = logging.Logger.manager.loggerDict.values()
    for logger in [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]:
        for handler in logger.handlers:
            if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
                continue
            if type(handler).__module__.startswith("_pytest") or isinstance(handler.stream, _CurrentStream):
                continue
            if isinstance(getattr(type(handler), "stream", None), property):  # follows sys.stdout already
                continue
            to_stderr = getattr(handler.stream, "name", "") in ("<stderr>", 2) or handler.stream is sys.stderr
            # not setStream: it flushes the old stream, which may be a finished test's closed capture
            handler.stream = _CurrentStream("stderr" if to_stderr else "stdout")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """
    Airflow 2.11 only: log handlers that write to a console keep the ``sys.stdout`` / ``sys.stderr`` they
    were created with (``dag.test()`` adds some), so later tests' ``capfd`` / ``capsys`` would see nothing.
    Make them write to the current streams, which is where Airflow 3 writes task and trigger logs anyway.
    ``dag.test()`` there also leaves the root logger at WARNING, which would drop the triggers' INFO lines:
    this package logs at INFO, as on Airflow 3.
    """
    if _AIRFLOW_2:
        import logging

        _follow_the_current_streams()
        ours = logging.getLogger("airflow_milvus_import")
        if ours.getEffectiveLevel() > logging.INFO:
            ours.setLevel(logging.INFO)
    try:
        return (yield)
    finally:
        if _AIRFLOW_2:
            _follow_the_current_streams()


@pytest.fixture(autouse=True, scope="session")
def _dag_test_prints_task_errors() -> Iterator[None]:
    """
    Airflow 3.0 only: ``dag.test()`` there runs a task in-process and keeps its exception in the result
    without printing it (3.1+ print it). Print the task's own exception as later versions do, so the
    tests read the same message from the log on every version.
    """
    if _AIRFLOW_2 or not _airflow_3_0():
        yield
        return
    import traceback

    from airflow.sdk.execution_time import supervisor

    original = supervisor.run_task_in_process

    def run_and_print_the_error(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        error = getattr(result, "error", None)
        if error is not None:
            sys.stdout.write("".join(traceback.format_exception(error)))
        return result

    supervisor.run_task_in_process = run_and_print_the_error
    try:
        yield
    finally:
        supervisor.run_task_in_process = original


def _airflow_3_0() -> bool:
    from airflow_milvus_import.compat import AIRFLOW_VERSION

    return AIRFLOW_VERSION[:2] == (3, 0)


def _airflow_2() -> bool:
    try:
        import airflow.sdk  # noqa: F401
    except ImportError:
        return True
    return False


_AIRFLOW_2 = _airflow_2()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of the core suite's modules ``core``."""
    for item in items:
        if item.path.relative_to(REPO_ROOT).as_posix() in CORE_SUITE:
            item.add_marker(pytest.mark.core)


@pytest.fixture(autouse=True)
def _fresh_rate_budgets() -> Iterator[None]:
    """Each test gets its own per-endpoint rate budgets: a 429 pause or a drained bucket stays in its test."""

    def reset() -> None:
        transport = sys.modules.get("airflow_milvus_import.transport")  # not imported yet: nothing to reset
        if transport is not None:
            transport.reset_rate_budgets()

    reset()
    yield
    reset()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised metadata database (SQLite in the isolated AIRFLOW_HOME), for dag.test() and friends."""
    from airflow.utils.db import initdb

    initdb()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One local import server (Milvus Lite behind it) shared by the session; Milvus and Zilliz flavours."""
    from airflow_milvus_import.local import LocalImportServer

    root = tmp_path_factory.mktemp("local-server")
    with LocalImportServer(data_dir=root / "data", bucket=root / "bucket") as server:
        yield server


@pytest.fixture(scope="session")
def secured_local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A local import server that requires ``SENTINEL_TOKEN`` as its Bearer token."""
    from airflow_milvus_import.local import LocalImportServer

    root = tmp_path_factory.mktemp("secured-local-server")
    with LocalImportServer(data_dir=root / "data", bucket=root / "bucket", token=SENTINEL_TOKEN) as server:
        yield server


def prepare_rows(server: Any, collections: str | Iterable[str], rows_file: str, rows: int = 5) -> None:
    """
    Collections of 4-dimensional vectors (made if missing) and a JSON file of ``rows`` rows in the server's
    bucket for import jobs to read (idempotent: servers are shared by the session).
    """
    from pymilvus import MilvusClient

    names = [collections] if isinstance(collections, str) else list(collections)
    client = MilvusClient(uri=server.milvus_uri)
    try:
        for name in names:
            if not client.has_collection(name):
                client.create_collection(name, dimension=4)
    finally:
        client.close()
    records = [{"id": number, "vector": [0.1, 0.2, 0.3, 0.4]} for number in range(rows)]
    (Path(server.bucket) / rows_file).write_text(json.dumps({"rows": records}))
