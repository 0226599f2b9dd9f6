"""``LocalImportServer``: start and stop the local import server from Python (tests, DAGs, benchmarks).

The server runs as a child process (``python -m airflow_milvus_import.local``), so its work never competes
with the caller's event loop for the GIL, and a test can kill it outright to check what a restart
recovers. This module imports only the standard library.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
import weakref
from pathlib import Path
from typing import Any

from airflow_milvus_import.local.config import DEFAULT_CLUSTER_ID, ServerConfig
from airflow_milvus_import.local.generations import DEFAULT_FLAVOUR

TOKEN_ENV = "MILVUS_IMPORT_LOCAL_TOKEN"
LOG_FILE = "server.log"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


class LocalImportServer:
    """A local Milvus / Zilliz Cloud import server on Milvus Lite, in a child process.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (both idempotent). A new server on the
    same ``data_dir`` sees the jobs and collections of the previous one.

    :param data_dir: job records and Milvus Lite data; created if missing. One server per data dir at a time.
    :param bucket: the "object storage" folder the jobs' files live in (relative or absolute paths inside it).
    :param host: address to bind.
    :param port: HTTP port; 0 picks a free one.
    :param token: when set, requests need ``Authorization: Bearer <token>`` (401 / 1800 otherwise; code 21119
        on the Zilliz Cloud flavour). ``user:password`` tokens work the same way.
    :param rows_per_second: throttle each import, so that waiting is visible.
    :param fail_rate: share of requests answered with an injected 5xx (JSON or HTML body).
    :param drop_rate: share of requests whose connection is closed without an answer.
    :param latency_ms: delay added to requests; beyond the ``Request-Timeout`` header it becomes a 408.
    :param rate_limit: requests per second (token bucket) before answering 429 with ``Retry-After``.
    :param stall: collection-name glob; jobs into matching collections stay Importing forever.
    :param seed: seeds the fault injection for repeatable runs.
    :param legacy: emulate Milvus 2.4 pre-release builds: no ``describe`` route, ``code: 200``, key ``jobID``.
    :param ssl_certfile: serve HTTPS with this certificate...
    :param ssl_keyfile: ...and this key.
    :param milvus_port: Milvus Lite's gRPC port (default: a free one when ``port`` is 0, else ``port + 1``).
    :param latency_rate: share of requests that get ``latency_ms`` (default: all).
    :param cluster_id: the cluster id the Zilliz Cloud flavour reports.
    :param import_workers: imports running at the same time.
    :param max_active_jobs: unfinished jobs allowed before ``create`` answers code 2100; None: no limit.
    :param flavour: the self-hosted Milvus generation to answer like: ``"2.4.0"``, ``"2.5"``, ``"2.6"`` (the
        default) or ``"3.x"``; the Zilliz Cloud routes do not change with it.
    :param startup_timeout: seconds to wait for the server to listen.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        bucket: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        rows_per_second: float | None = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        latency_ms: int = 0,
        rate_limit: float | None = None,
        stall: str | None = None,
        seed: int | None = None,
        legacy: bool = False,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        *,
        milvus_port: int | None = None,
        latency_rate: float = 1.0,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        import_workers: int = 2,
        max_active_jobs: int | None = None,
        flavour: str = DEFAULT_FLAVOUR,
        startup_timeout: float = 60.0,
    ) -> None:
        self._config = ServerConfig(
            data_dir=str(Path(data_dir).resolve()),
            bucket=str(Path(bucket).resolve()),
            host=host,
            port=port,
            milvus_port=milvus_port,
            token=token,
            rows_per_second=rows_per_second,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            latency_ms=latency_ms,
            latency_rate=latency_rate,
            rate_limit=rate_limit,
            stall=stall,
            seed=seed,
            legacy=legacy,
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
            cluster_id=cluster_id,
            import_workers=import_workers,
            max_active_jobs=max_active_jobs,
            flavour=flavour,
        )
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._info: dict[str, Any] = {}

    def __repr__(self) -> str:
        state = f"url={self._info.get('url')!r}" if self.running else "stopped"
        return f"LocalImportServer({state}, data_dir={self._config.data_dir!r})"

    # -- lifecycle --

    def __enter__(self) -> LocalImportServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalImportServer:
        """Start the server and wait until it listens (no-op when running).

        :raises RuntimeError: the server exited during start-up (the message has the end of its log).
        :raises TimeoutError: it did not listen within ``startup_timeout``.
        """
        if self.running:
            return self
        data_dir = Path(self._config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        ready_file = data_dir / f".ready-{uuid.uuid4().hex}.json"
        argv = [
            sys.executable,
            "-m",
            "airflow_milvus_import.local",
            *self._config.to_argv(),
            "--ready-file",
            str(ready_file),
        ]
        with open(data_dir / LOG_FILE, "ab") as log:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._child_env()
            )
        self._finalizer = weakref.finalize(self, _terminate, self._process)
        try:
            self._info = self._wait_ready(ready_file)
        except BaseException:
            self._kill_process()
            raise
        finally:
            ready_file.unlink(missing_ok=True)
        return self

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(TOKEN_ENV, None)
        if self._config.token:
            env[TOKEN_ENV] = self._config.token
        paths = [_PACKAGE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _wait_ready(self, ready_file: Path) -> dict[str, Any]:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if ready_file.exists():
                info: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))
                return info
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the local import server exited with code {self._process.returncode} while starting; "
                    f"end of {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.05)
        raise TimeoutError(
            f"the local import server did not listen within {self._startup_timeout:g} s; "
            f"end of {self.log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM): running imports end Failed, queued ones resume at the next start."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._forget_process()

    def kill(self) -> None:
        """Kill the server outright (SIGKILL), as a crash would; a later start finds the interrupted jobs."""
        self._kill_process()

    def _kill_process(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        self._forget_process()

    def _forget_process(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = None
        self._process = None

    # -- where it is --

    def _require(self, key: str) -> Any:
        if not self.running:
            raise RuntimeError("the local import server is not running; call start() first")
        return self._info[key]

    @property
    def url(self) -> str:
        """Base URL of the self-hosted Milvus flavour: ``{url}/v2/vectordb/jobs/import/...``."""
        return str(self._require("url"))

    @property
    def cloud_url(self) -> str:
        """Base URL of the Zilliz Cloud flavour: ``{cloud_url}/v2/vectordb/jobs/import/...``."""
        return str(self._require("cloud_url"))

    @property
    def milvus_uri(self) -> str:
        """The URI for pymilvus ``MilvusClient(uri=...)``: the same Milvus Lite the server imports into."""
        return str(self._require("milvus_uri"))

    @property
    def cluster_id(self) -> str:
        """A ``clusterId`` for the Zilliz Cloud flavour."""
        return self._config.cluster_id

    @property
    def flavour(self) -> str:
        """The self-hosted Milvus generation the server answers like."""
        return self._config.flavour

    @property
    def volumes(self) -> Path:
        """The Zilliz Cloud flavour's volumes: one folder per volume (``volumeName``) in here."""
        return self.data_dir / "volumes"

    @property
    def port(self) -> int:
        """The HTTP port."""
        return int(self._require("port"))

    @property
    def milvus_port(self) -> int:
        """Milvus Lite's gRPC port."""
        return int(self._require("milvus_port"))

    @property
    def pid(self) -> int:
        """The server process id."""
        return int(self._require("pid"))

    @property
    def data_dir(self) -> Path:
        """The data dir."""
        return Path(self._config.data_dir)

    @property
    def bucket(self) -> Path:
        """The bucket folder."""
        return self._config.bucket_dir

    @property
    def log_path(self) -> Path:
        """The server's log file (its stdout and stderr)."""
        return self.data_dir / LOG_FILE

    # -- counters --

    def _private(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        context = ssl._create_unverified_context() if self.url.startswith("https") else None
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` by route, ``requests_total``, ``faults`` by kind, ``jobs`` by state."""
        return self._private("GET", "/_local/stats")

    def reset_stats(self) -> None:
        """Zero the request and fault counters."""
        self._private("POST", "/_local/stats/reset")
