"""Helpers the benchmarks share: the local server with a small collection, job creation, a loop-lag ticker,
percentiles, tables, and the machine's description. Imported by the scripts next to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COLLECTION = "bench_jobs"
ROW_FILE = "bench_row.json"
IMPORT_ROUTES = "/v2/vectordb/jobs/import/"


def scratch_dir(prefix: str) -> Path:
    """A temporary folder removed when the benchmark exits (logs, certificates)."""
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, a CI runner) into SystemExit: the local server is stopped, not orphaned."""
    import signal

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)


def machine() -> str:
    """``2 cores, AMD EPYC, Python 3.11.7, Linux 6.x`` (for the tables and the README)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile, nearest-rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(header)), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    line = "  ".join(str(header).ljust(width) for header, width in zip(headers, widths, strict=True))
    rule = "  ".join("-" * width for width in widths)
    body = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, rule, *body])


def tls_files(folder: Path) -> tuple[str, str, str]:
    """A throwaway CA (``trustme``) and a certificate for 127.0.0.1 it signed: ``(ca, cert, key)`` paths."""
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    authority.cert_pem.write_to_path(str(ca_path))
    certificate.cert_chain_pems[0].write_to_path(str(cert_path))
    certificate.private_key_pem.write_to_path(str(key_path))
    return str(ca_path), str(cert_path), str(key_path)


def post_json(url: str, body: dict[str, Any], *, context: Any = None) -> dict[str, Any]:
    """One JSON POST with the standard library (the benchmark process imports no more than it measures)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60, context=context) as response:
        payload: dict[str, Any] = json.loads(response.read())
    if payload.get("code") != 0:
        raise RuntimeError(f"{url} failed: {payload}")
    return payload


@contextlib.contextmanager
def local_server(**kwargs: Any) -> Iterator[Any]:
    """A local import server in a temporary folder, with the collection and the one-row file jobs import."""
    from airflow_milvus_import.local import LocalImportServer

    with (
        tempfile.TemporaryDirectory(prefix="ami-bench-") as root,
        LocalImportServer(data_dir=Path(root) / "data", bucket=Path(root) / "bucket", **kwargs) as server,
    ):
        context = ssl._create_unverified_context() if server.url.startswith("https") else None
        body = {"collectionName": COLLECTION, "dimension": 4}
        post_json(server.url + "/v2/vectordb/collections/create", body, context=context)
        rows = {"rows": [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4]}]}
        (server.bucket / ROW_FILE).write_text(json.dumps(rows))
        yield server


def use_connection(conn_id: str, url: str, **extra: Any) -> None:
    """Define an Airflow connection through its environment variable (what the hook reads)."""
    connection: dict[str, Any] = {"conn_type": "milvus_import", "host": url}
    if extra:
        connection["extra"] = extra
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)


@dataclass
class CreatedJob:
    job_id: str
    sent_at: float  # time.time() when the create request was sent
    duration: float
    fail: str | None


async def create_jobs(
    base_url: str,
    specs: Sequence[tuple[float, str | None]],
    *,
    concurrency: int = 16,
    verify: Any = True,
) -> list[CreatedJob]:
    """Create one job per ``(duration, fail reason or None)`` spec, ``concurrency`` at a time."""
    import httpx

    limit = asyncio.Semaphore(concurrency)
    url = base_url + IMPORT_ROUTES + "create"
    async with httpx.AsyncClient(timeout=120, verify=verify) as client:

        async def one(duration: float, fail: str | None) -> CreatedJob:
            options = {"local.duration": f"{duration:.3f}"}
            if fail is not None:
                options["local.fail"] = fail
            body = {"collectionName": COLLECTION, "files": [[ROW_FILE]], "options": options}
            async with limit:
                sent_at = time.time()
                response = await client.post(url, json=body)
            payload = response.json()
            if payload.get("code") != 0:
                raise RuntimeError(f"create failed: {payload}")
            return CreatedJob(str(payload["data"]["jobId"]), sent_at, duration, fail)

        return list(await asyncio.gather(*(one(duration, fail) for duration, fail in specs)))


def completion_times(server: Any) -> dict[str, float]:
    """
    When each job really ended, from the server's own job records: ``max(real finish, create + duration)``
    (what the server shows a client), in epoch seconds.
    """
    path = Path(server.data_dir) / "jobs.sqlite3"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT record FROM jobs").fetchall()
    finally:
        connection.close()
    ended: dict[str, float] = {}
    for (text,) in rows:
        record = json.loads(text)
        finish = record.get("finish_time")
        if finish is None:
            continue
        duration = float(record.get("duration") or 0.0)
        ended[str(record["job_id"])] = max(float(finish), float(record["create_time"]) + duration)
    return ended


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its children (Linux ``/proc``; 0.0
    elsewhere): what the local server and its Milvus Lite spend.

    :param pid: the process (the local server's).
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
    return total


class LagTicker:
    """Measures event-loop lag: a task that sleeps ``period`` and records how much longer it took."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags: list[float] = []
        self.times: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - started - self.period))
            self.times.append(started)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def quiet_airflow_logs(path: Path) -> None:
    """Write Airflow's log lines (JSON, as a triggerer does) to ``path`` instead of the terminal."""
    from airflow.sdk.log import configure_logging

    output = open(path, "wb")  # noqa: SIM115 (lives as long as the process)
    configure_logging(json_output=True, output=output, colored_console_log=False)
