"""
Outages: the endpoint's port closed (a Milvus proxy restart, a load balancer failing over) mid-wait.

A TCP proxy in front of the local import server closes its listening port (connections are refused, the
open ones are cut) and later opens the same port again. Every setting is at its default (the waits'
10-minute error tolerance, the connection's retries and timeout), with ``poll_interval=10``.

- A 5-minute outage: the deferred path (the real trigger loop) and the poke path (sensors on threads) wait
  side by side on the same two jobs, which end after the port is back, one Completed and one Failed. Each
  wait ends with its job's real outcome. (Five real minutes, paid once for both paths.)
- A permanent outage, with the tolerance lowered to a few seconds (it tests giving up, not surviving): the
  waits end with the clear error (endpoint, job, how long the polls failed, last error) within the
  tolerance plus one poll interval of the outage's start (the poke path also pays the hook's retries of
  its last check).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from tests.chaos.conftest import define_connection
from tests.conftest import prepare_rows

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration]

COLLECTION = "outage_jobs"
ROWS_FILE = "outage_rows.json"
ROWS = 4


class PortProxy:
    """
    A TCP proxy on 127.0.0.1 whose port can be closed (refusing connections, cutting open ones) and opened
    again on the same number.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="outage-proxy").start()

    def close_port(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.accepted += 1
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)


@pytest.fixture
def outage_server(local_server: Any) -> Iterator[tuple[Any, PortProxy]]:
    prepare_rows(local_server, (COLLECTION,), ROWS_FILE, ROWS)
    proxy = PortProxy(int(local_server.url.rsplit(":", 1)[1]))
    try:
        yield local_server, proxy
    finally:
        proxy.close_port()


def create_jobs(conn_id: str, duration: float) -> tuple[str, str]:
    """One job that completes and one that fails, both ``duration`` seconds from now."""
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with MilvusImportHook(conn_id) as hook:
        completes = hook.create_import_job(
            COLLECTION, [[ROWS_FILE]], options={"local.duration": f"{duration:.1f}"}
        )
        fails = hook.create_import_job(
            COLLECTION,
            [[ROWS_FILE]],
            options={"local.duration": f"{duration:.1f}", "local.fail": "outage test: the file is gone"},
        )
    return completes, fails


def wait_both_paths(
    conn_id: str, job_ids: tuple[str, ...], *, poll_interval: float, deadline: float, **settings: Any
) -> tuple[list[tuple[dict[str, Any], float]], list[tuple[str, Any, float]]]:
    """The deferred path (triggers in one loop) and the poke path (sensors on threads), side by side."""
    from airflow_milvus_import.exceptions import MilvusImportError
    from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor
    from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger

    def poke(job_id: str) -> tuple[str, Any, float]:
        sensor = MilvusImportJobSensor(
            task_id=f"outage_wait_{job_id}",
            job_id=job_id,
            milvus_import_conn_id=conn_id,
            deferrable=False,
            mode="poke",
            poll_interval=poll_interval,
            timeout=deadline,
            **settings,
        )
        try:
            return "success", sensor.execute({}), time.monotonic()
        except MilvusImportError as error:
            return "raised", error, time.monotonic()

    async def deferred() -> list[tuple[dict[str, Any], float]]:
        async def one(job_id: str) -> tuple[dict[str, Any], float]:
            trigger = MilvusImportJobTrigger(
                job_id,
                milvus_import_conn_id=conn_id,
                poll_interval=poll_interval,
                end_time=time.time() + deadline,
                **settings,
            )
            events = [event async for event in trigger.run()]
            assert len(events) == 1
            return events[0].payload, time.monotonic()

        return list(await asyncio.gather(*(one(job_id) for job_id in job_ids)))

    with ThreadPoolExecutor(max_workers=len(job_ids), thread_name_prefix="outage-poke") as pool:
        poked = [pool.submit(poke, job_id) for job_id in job_ids]
        triggered = asyncio.run(deferred())
        return triggered, [future.result() for future in poked]


@pytest.mark.timeout(900)
def test_a_five_minute_outage_mid_wait_is_waited_out_at_default_settings(
    outage_server: tuple[Any, PortProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_import.exceptions import MilvusImportJobFailed

    _, proxy = outage_server
    define_connection(monkeypatch, "ami_outage", proxy.url)
    outage_starts, outage = 15.0, 300.0
    started = time.monotonic()
    # the jobs end 20 s after the port is back
    job_ids = create_jobs("ami_outage", outage_starts + outage + 20)
    served_before = 0

    def outage_schedule() -> None:
        nonlocal served_before
        time.sleep(outage_starts)
        served_before = proxy.accepted
        proxy.close_port()
        time.sleep(outage)
        proxy.open()

    schedule = threading.Thread(target=outage_schedule, daemon=True)
    schedule.start()
    triggered, poked = wait_both_paths("ami_outage", job_ids, poll_interval=10, deadline=800)
    schedule.join()

    completes, fails = job_ids
    (completed_event, completed_at), (failed_event, failed_at) = triggered
    assert completed_event["status"] == "success", completed_event["message"]
    assert completed_event["jobs"][0]["state"] == "Completed"
    assert completed_event["jobs"][0]["imported_rows"] == ROWS
    assert failed_event["status"] == "failed", failed_event["message"]
    assert "outage test: the file is gone" in failed_event["message"]
    (poke_status, poke_value, poke_completed_at), (fail_status, fail_error, poke_failed_at) = poked
    assert poke_status == "success", poke_value
    assert poke_value["job_id"] == completes
    assert poke_value["state"] == "Completed"
    assert fail_status == "raised"
    assert isinstance(fail_error, MilvusImportJobFailed), fail_error
    assert fail_error.job_id == fails
    # the waits really lived through the outage: polls before it, none while the port was closed, and the
    # ends came after the port was back
    assert served_before > 0
    assert proxy.accepted > served_before
    for ended in (completed_at, failed_at, poke_completed_at, poke_failed_at):
        assert ended - started > outage_starts + outage


@pytest.mark.timeout(120)
def test_a_permanent_outage_ends_with_the_clear_error_within_the_tolerance(
    outage_server: tuple[Any, PortProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, proxy = outage_server
    define_connection(monkeypatch, "ami_outage_forever", proxy.url)
    job_ids = create_jobs("ami_outage_forever", 600)
    tolerance, interval = 5.0, 1.0
    closed_at: list[float] = []

    def close_soon() -> None:
        time.sleep(2.0)
        closed_at.append(time.monotonic())
        proxy.close_port()

    threading.Thread(target=close_soon, daemon=True).start()
    triggered, poked = wait_both_paths(
        "ami_outage_forever", job_ids, poll_interval=interval, deadline=60, error_tolerance=tolerance
    )

    outage_start = closed_at[0]
    for (event, ended), job_id in zip(triggered, job_ids, strict=True):
        assert event["status"] == "error", event["message"]
        message = event["message"]
        assert message.startswith(f"Gave up waiting for Milvus import job {job_id} on {proxy.url}/"), message
        assert "its polls have been failing for " in message
        assert "tolerance 5s, set by error_tolerance); last error: " in message
        assert "[connection 'ami_outage_forever']" in message
        # the tolerance, plus one interval until the first failed poll, plus event-loop lag
        assert ended - outage_start <= tolerance + interval + 1.0, ended - outage_start
    for (status, error, ended), job_id in zip(poked, job_ids, strict=True):
        assert status == "raised"
        assert str(error).startswith(f"Gave up waiting for Milvus import job {job_id} on {proxy.url}/")
        # poke mode: also the hook's retries of the last check (at most 0.5 + 1 + 2 s of backoff)
        assert ended - outage_start <= tolerance + interval + 3.5 + 1.0, ended - outage_start
