"""The command line: ``python -m airflow_milvus_import.local`` (the ``milvus-import-local`` script)."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest
import requests
from local_helpers import IMPORT_PATH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "airflow_milvus_import.local"]


class CliServer:
    """The server run from the command line, its output collected by a thread; killed at teardown if alive."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [
                *COMMAND,
                "--port",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
                "--bucket",
                str(tmp_path / "bucket"),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip())

    def wait_for_line(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.seen))

    def url(self) -> str:
        url = self.wait_for_line(r"self-hosted Milvus REST : (\S+)").group(1)
        self.wait_for_line(r"^  auth ")
        return url

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        time.sleep(0.2)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., CliServer]]:
    started: list[CliServer] = []

    def start(*extra: str, folder: str = "cli") -> CliServer:
        server = CliServer(tmp_path / folder, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serves_prints_urls_and_stops_cleanly(
    cli: Callable[..., CliServer], stop_signal: signal.Signals
) -> None:
    server = cli("--token", "cli-secret-token")
    url = server.url()
    text = server.output()
    assert re.search(r"Zilliz Cloud REST\s+: http://127\.0\.0\.1:\d+/cloud\s+\(clusterId: in01-local\)", text)
    assert re.search(r'MilvusClient\(uri="http://127\.0\.0\.1:\d+"\)', text)
    assert "Bearer token required" in text
    assert re.search(r"flavour\s+: Milvus 2\.6", text), "the default flavour is shown"
    response = requests.post(
        url + IMPORT_PATH + "list", json={}, timeout=30, headers={"Authorization": "Bearer cli-secret-token"}
    )
    assert response.json() == {"code": 0, "data": {"records": []}}
    assert server.stop(stop_signal) == 0
    output = server.output()
    assert "stopped" in output
    assert "Traceback" not in output
    assert "cli-secret-token" not in output


def test_help_lists_the_flags() -> None:
    result = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in (
        "--port",
        "--data-dir",
        "--bucket",
        "--token",
        "--rows-per-second",
        "--fail-rate",
        "--drop-rate",
        "--latency-ms",
        "--rate-limit",
        "--stall",
        "--seed",
        "--legacy",
        "--flavour",
        "--ssl-certfile",
        "--ssl-keyfile",
        "--milvus-port",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-rate", "2"], "expected a share between 0 and 1"),
        (["--ssl-certfile", "a.pem"], "ssl_certfile and ssl_keyfile go together"),
        (["--fail-rate", "0.7", "--drop-rate", "0.7"], "must not exceed 1"),
        (["--flavour", "2.3"], "argument --flavour: invalid choice: '2.3'"),
    ],
)
def test_bad_flags_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_busy_port_is_reported(cli: Callable[..., CliServer], tmp_path: Path) -> None:
    port = cli().url().rsplit(":", 1)[1]
    result = subprocess.run(
        [*COMMAND, "--port", port, "--milvus-port", "0", "--data-dir", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot bind the HTTP port 127.0.0.1:{port}" in result.stderr
