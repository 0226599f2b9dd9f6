"""Run Airflow's own components (and a throwaway PostgreSQL) as real processes, for the end-to-end tests.

Everything binds 127.0.0.1. Each component runs in its own process group so a test can SIGKILL one
(the triggerer with its trigger-runner child) and start it again; ``stop()`` ends every group it started.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

VENV_BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
CHROMIUM = Path("/usr/bin/chromium")
#: the local server's token and the connection's password: it must show up in no Airflow log
E2E_SENTINEL_TOKEN = "e2e-sentinel-token-5d1c8e-DO-NOT-LEAK"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-" + secrets.token_hex(4)
TERMINAL_RUN_STATES = {"success", "failed"}

T = TypeVar("T")

#: everything started here, so that even an interrupted run (Ctrl-C, a pytest-timeout) leaves nothing behind
_STARTED_COMPONENTS: list[Component] = []
_STARTED_CLUSTERS: list[PostgresCluster] = []


@atexit.register
def _stop_leftovers() -> None:
    for component in _STARTED_COMPONENTS:
        component.signal_group(signal.SIGKILL)
    for cluster in _STARTED_CLUSTERS:
        cluster.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something but None/False; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except (requests.RequestException, OSError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_error is not None:
                message += f" (last error: {last_error!r})"
            if diagnostics is not None:
                message += "\n" + diagnostics()
            raise AssertionError(message)
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Component:
    """One running Airflow component (``airflow <name> ...``) in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (the component and every child it started), as a crash would."""
        self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, grace: float = 20.0) -> None:
        if self.alive:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        # Children (LocalExecutor workers, trigger runner) may outlive the leader: end the group either way.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class AirflowApi:
    """A small client of Airflow 3's public REST API (``/api/v2``), logged in via the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self._username = username
        self._password = password

    def login(self) -> str:
        """``POST /auth/token`` with the user's credentials: the JWT every other call sends as Bearer."""
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self._username, "password": self._password},
            timeout=30,
        )
        if response.status_code != 201:
            raise AssertionError(f"login failed: HTTP {response.status_code} {response.text[:500]}")
        token = str(response.json()["access_token"])
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def request(self, method: str, path: str, *, expect: Iterable[int] = (200,), **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=60, **kwargs)
        if response.status_code not in set(expect):
            raise AssertionError(f"{method} {path}: HTTP {response.status_code} {response.text[:2000]}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    # --- DAGs and runs -------------------------------------------------------------------------------------
    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/importErrors")["import_errors"])

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.get("/api/v2/dags", params={"limit": 100})["dags"]}

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id``, oldest first."""
        runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})
        return list(runs["dag_runs"])

    def asset_events(self) -> list[dict[str, Any]]:
        """Every asset event, oldest first (with its ``extra``)."""
        events = self.get("/api/v2/assets/events", params={"limit": 100, "order_by": "timestamp"})
        return list(events["asset_events"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        entry = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
        value = entry["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's log as text (the API returns structured records; join their events)."""
        data = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = data.get("content", []) if isinstance(data, dict) else data
        if isinstance(content, str):
            return content
        lines = []
        for record in content:
            if isinstance(record, dict):
                lines.append(json.dumps(record, default=str))
            else:
                lines.append(str(record))
        return "\n".join(lines)

    def test_connection(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/api/v2/connections/test", json=dict(body)))


@dataclass
class AirflowDeployment:
    """A temporary AIRFLOW_HOME and the Airflow components started in it, all on 127.0.0.1."""

    root: Path
    dags_folder: Path
    sql_alchemy_conn: str | None = None
    connections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    components: list[Component] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.root / "airflow-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.component_logs = self.root / "component-logs"
        self.component_logs.mkdir(exist_ok=True)
        self.base_url = f"http://127.0.0.1:{self.port}"
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                # A restarted triggerer adopts the dead one's triggers once its heartbeat is this old.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "12",
            }
        )
        if self.sql_alchemy_conn:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.sql_alchemy_conn
        else:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{self.home / 'airflow.db'}"
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        env.update(self.config)
        self.env = env
        self.api = AirflowApi(self.base_url, ADMIN_USER, ADMIN_PASSWORD)

    # --- processes -----------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow ARGS`` to completion in this deployment's environment; its output on success."""
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"`airflow {' '.join(args)}` exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        return result.stdout

    def migrate(self) -> None:
        self.cli("db", "migrate", timeout=600)

    def start(self, name: str, *args: str) -> Component:
        """Start ``airflow NAME ARGS`` in its own process group, output to a log file of its own."""
        index = sum(1 for c in self.components if c.name == name) + 1
        log_path = self.component_logs / f"{name}-{index}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(VENV_BIN / "airflow"), name, *args],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        component = Component(name=name, process=process, log_path=log_path)
        self.components.append(component)
        _STARTED_COMPONENTS.append(component)
        return component

    def start_api_server(self) -> Component:
        return self.start("api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1")

    def stop(self) -> None:
        """End every component this deployment started (whole process groups), the newest first."""
        for component in reversed(self.components):
            component.signal_group(signal.SIGTERM)
        for component in reversed(self.components):
            component.stop(grace=15)

    def diagnostics(self) -> str:
        parts = []
        for component in self.components:
            state = "running" if component.alive else f"exited {component.process.returncode}"
            parts.append(f"--- {component.log_path.name} ({state}) ---\n{tail(component.log_path, 25)}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = [c for c in self.components if not c.alive and c.process.returncode != -signal.SIGKILL]
        if dead:
            raise AssertionError(f"{dead[0].name} exited {dead[0].process.returncode}\n{self.diagnostics()}")

    # --- readiness -----------------------------------------------------------------------------------------
    def wait_api(self, timeout: float = 180) -> None:
        def probe() -> bool:
            self.check_alive()
            response = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
            return response.status_code == 200

        wait_until("the API server to answer", probe, timeout=timeout, diagnostics=self.diagnostics)
        self.api.login()

    def health(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=10).json())

    def wait_healthy(self, *names: str, timeout: float = 180) -> None:
        """Wait until the API's health report calls each of ``names`` (scheduler, triggerer...) healthy."""

        def probe() -> bool:
            self.check_alive()
            health = self.health()
            return all((health.get(name) or {}).get("status") == "healthy" for name in names)

        wait_until(f"{', '.join(names)} to be healthy", probe, timeout=timeout, diagnostics=self.diagnostics)

    def wait_dags(self, dag_ids: Iterable[str], timeout: float = 240) -> None:
        """Wait until the DAG processor stored each DAG in ``dag_ids``; fail at once on an import error."""
        wanted = set(dag_ids)

        def probe() -> bool:
            self.check_alive()
            errors = self.api.import_errors()
            if errors:
                raise AssertionError(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
            return wanted <= self.api.dag_ids()

        wait_until(
            f"DAGs {sorted(wanted)} to be parsed",
            probe,
            timeout=timeout,
            interval=2,
            diagnostics=self.diagnostics,
        )

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            self.check_alive()
            run = self.api.dag_run(dag_id, run_id)
            return run if run["state"] in TERMINAL_RUN_STATES else None

        def diagnostics() -> str:
            states = {ti["task_id"]: ti["state"] for ti in self.api.task_instances(dag_id, run_id)}
            return f"task states: {states}\n{self.diagnostics()}"

        return wait_until(
            f"run {dag_id}/{run_id} to finish", probe, timeout=timeout, interval=2, diagnostics=diagnostics
        )

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 180
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            self.check_alive()
            ti = self.api.task_instance(dag_id, run_id, task_id)
            if ti["state"] in {"failed", "upstream_failed"} and ti["state"] not in states:
                raise AssertionError(f"{dag_id}/{run_id}/{task_id} is {ti['state']}\n{self.diagnostics()}")
            return ti if ti["state"] in states else None

        return wait_until(
            f"{dag_id}/{run_id}/{task_id} to be {sorted(states)}",
            probe,
            timeout=timeout,
            interval=1,
            diagnostics=self.diagnostics,
        )

    # --- evidence on disk ----------------------------------------------------------------------------------
    def trigger_logs(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
        """The triggerer's log files for one task instance, by file name (one per triggerer that ran it)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        pattern = str(folder / "*")
        return {
            Path(path).name: Path(path).read_text(errors="replace")
            for path in sorted(glob.glob(pattern))
            if ".trigger." in Path(path).name
        }

    def all_log_text(self) -> str:
        """Every log file this deployment wrote (component output and task/trigger logs), concatenated."""
        texts = []
        for directory in (self.component_logs, self.home / "logs"):
            for path in sorted(directory.rglob("*")):
                if path.is_file():
                    texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)


# --- PostgreSQL -------------------------------------------------------------------------------------------
def postgres_bin_dir() -> Path | None:
    """Debian's server binaries (``/usr/lib/postgresql/<version>/bin``), the newest version; else PATH's."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temp dir on 127.0.0.1 (trust auth), run as a non-root user."""

    def __init__(self, bin_dir: Path, run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.port = free_port()
        # Not under pytest's tmp dir: its parents are private to root, and the server runs as another user.
        self.dir = Path(tempfile.mkdtemp(prefix="ami-e2e-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "server.log"
        if run_as:
            shutil.chown(self.dir, user=run_as)
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.dir
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n"
                f"{result.stderr}\n{tail(self.log_path)}"
            )

    def start(self) -> None:
        _STARTED_CLUSTERS.append(self)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start"
        )
        self.started = True
        import psycopg2

        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        ) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the local import server, seen from outside -----------------------------------------------------------
class ImportServerClient:
    """Sets up collections, files and jobs on the local import server via its REST API (not our client)."""

    def __init__(self, server: Any, bucket: Path, token: str) -> None:
        self.server = server
        self.url: str = server.url
        self.milvus_uri: str = server.milvus_uri
        self.bucket = bucket
        self.token = token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.url}/v2/vectordb/{route}", json=body, timeout=60)
        response.raise_for_status()
        payload = response.json()
        if payload.get("code") not in (0, 200):
            raise AssertionError(f"{route} answered {payload}")
        return dict(payload.get("data") or {})

    def create_collection(self, name: str, dim: int = 4) -> None:
        """A fresh collection (``id`` Int64 primary key, ``vector`` FloatVector) via ``collections/create``.

        REST rather than pymilvus here: a long-lived pymilvus channel in this process gets a gRPC GOAWAY
        ("too_many_pings") from Milvus Lite after being idle for a while, and then fails to reconnect.
        """
        if self.call("collections/has", {"collectionName": name}).get("has"):
            self.call("collections/drop", {"collectionName": name})
        self.call("collections/create", {"collectionName": name, "dimension": dim})

    def write_rows(self, relative_path: str, first_id: int, count: int, dim: int = 4) -> str:
        """A row-based JSON file (``{"rows": [...]}``) in the bucket; returns its bucket-relative path."""
        path = self.bucket / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"id": first_id + i, "vector": [float(i % 7), 0.5, 1.0, float(i % 3)][:dim]} for i in range(count)
        ]
        path.write_text(json.dumps({"rows": rows}))
        return relative_path

    def create_job(
        self, collection: str, files: list[str], *, duration: float | None = None, fail: str | None = None
    ) -> str:
        options: dict[str, str] = {}
        if duration is not None:
            options["local.duration"] = str(duration)
        if fail is not None:
            options["local.fail"] = fail
        data = self.call(
            "jobs/import/create",
            {"collectionName": collection, "files": [[f] for f in files], "options": options},
        )
        return str(data.get("jobId") or data.get("jobID"))

    def describe(self, job_id: str) -> dict[str, Any]:
        return self.call("jobs/import/describe", {"jobId": job_id})

    def count_rows(self, collection: str) -> int:
        response = self.session.post(
            f"{self.url}/v2/vectordb/entities/query",
            json={"collectionName": collection, "filter": "", "outputFields": ["count(*)"]},
            timeout=60,
        )
        response.raise_for_status()
        payload = response.json()
        assert payload.get("code") in (0, 200), payload
        return int(payload["data"][0]["count(*)"])


def milvus_connection(server: ImportServerClient) -> dict[str, Any]:
    """The ``milvus_import_default`` connection (JSON form) pointing at the local import server."""
    port = int(server.url.rsplit(":", 1)[1])
    return {
        "conn_type": "milvus_import",
        "host": server.url,
        "port": port,
        "password": server.token,
        "extra": {"timeout": 20, "max_retries": 3},
    }


def ensure_system_deps(present: Callable[[], bool], what: str) -> str | None:
    """Run scripts/install-system-deps.sh when ``present()`` is false; a skip reason if it still is."""
    if present():
        return None
    script = REPO_ROOT / "scripts" / "install-system-deps.sh"
    if os.geteuid() != 0 or not script.exists():
        return f"{what} is not installed, and it cannot be installed here (not root, or no {script.name})"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900, check=False)
    if present():
        return None
    output = (result.stdout + result.stderr)[-500:]
    return f"{what} is not installed and {script.name} did not install it: {output}"


def artifacts_dir() -> Path:
    """Where e2e tests leave screenshots: $AMI_ARTIFACTS, else tests/e2e/artifacts/ (ignored by git)."""
    folder = Path(os.environ.get("AMI_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
