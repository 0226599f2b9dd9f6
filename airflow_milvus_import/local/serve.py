"""Running the server in this process: Milvus Lite, the job manager, the app under uvicorn, until a signal."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from airflow_milvus_import.local.app import create_app
from airflow_milvus_import.local.collections_api import CollectionsApi
from airflow_milvus_import.local.faults import FaultInjector, Stats
from airflow_milvus_import.local.manager import JobManager
from airflow_milvus_import.local.milvus import MilvusLiteHost
from airflow_milvus_import.local.store import JobStore

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import FrameType

    from airflow_milvus_import.local.config import ServerConfig

logger = logging.getLogger("airflow_milvus_import.local")

MILVUS_SUBDIR = "milvus"
JOBS_FILE = "jobs.sqlite3"


def client_host(host: str) -> str:
    """The address clients use for a bind address (``0.0.0.0`` -> ``127.0.0.1``), bracketed for IPv6."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets of an explicit TCP socket,
    # and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot bind the HTTP port {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def describe(config: ServerConfig, http_port: int, milvus_port: int) -> dict[str, Any]:
    """URLs and ports of a running server (written to the ready file, served by ``/_local/health``)."""
    host = client_host(config.host)
    url = f"{config.scheme}://{host}:{http_port}"
    return {
        "pid": os.getpid(),
        "port": http_port,
        "milvus_port": milvus_port,
        "url": url,
        "cloud_url": f"{url}/cloud",
        "milvus_uri": f"http://{host}:{milvus_port}",
        "cluster_id": config.cluster_id,
        "data_dir": str(Path(config.data_dir).resolve()),
        "bucket": str(config.bucket_dir.resolve()),
        "volumes": str((Path(config.data_dir) / "volumes").resolve()),
        "flavour": config.flavour,
    }


def _write_ready(path: str, info: dict[str, Any]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    os.replace(temporary, path)


def _banner(info: dict[str, Any], config: ServerConfig) -> str:
    auth = "Bearer token required" if config.token else "off"
    faults = [
        f"{name}={value}"
        for name, value in (
            ("fail_rate", config.fail_rate),
            ("drop_rate", config.drop_rate),
            ("latency_ms", config.latency_ms),
            ("rate_limit", config.rate_limit),
            ("stall", config.stall),
            ("rows_per_second", config.rows_per_second),
        )
        if value
    ]
    lines = [
        "milvus-import-local is serving (Ctrl+C to stop)",
        f"  self-hosted Milvus REST : {info['url']}",
        f"  Zilliz Cloud REST       : {info['cloud_url']}   (clusterId: {info['cluster_id']})",
        f'  Milvus Lite for pymilvus: MilvusClient(uri="{info["milvus_uri"]}")',
        f"  flavour                 : Milvus {config.flavour}",
        f"  bucket                  : {info['bucket']}",
        f"  Zilliz Cloud volumes    : {info['volumes']}",
        f"  data dir                : {info['data_dir']}",
        f"  auth                    : {auth}"
        + ("   legacy mode (Milvus 2.4 pre-release)" if config.legacy else ""),
    ]
    if faults:
        lines.append(f"  faults / throttle       : {', '.join(faults)}")
    return "\n".join(lines)


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when installed (uvicorn[standard] brings it), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _serve(server: uvicorn.Server, sock: socket.socket, on_ready: Any) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        on_ready()
    await task


def run(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM; then stop imports, Milvus Lite and the job store cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = bind_socket(config.host, config.port)
    host = MilvusLiteHost(data_dir / MILVUS_SUBDIR, config.host, config.grpc_port)
    store: JobStore | None = None
    manager: JobManager | None = None
    try:
        host.start()
        store = JobStore(data_dir / JOBS_FILE)
        manager = JobManager(config, host, store)
        manager.recover()
        info = describe(config, sock.getsockname()[1], host.port)
        stats = Stats()
        app = create_app(config, manager, CollectionsApi(host), stats, lambda: info)
        uvicorn_config = uvicorn.Config(
            FaultInjector(app, config, stats),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            ssl_certfile=config.ssl_certfile,
            ssl_keyfile=config.ssl_keyfile,
        )

        def ready() -> None:
            if config.ready_file:
                _write_ready(config.ready_file, info)
            print(_banner(info, config), flush=True)

        _run_loop(_serve(uvicorn.Server(uvicorn_config), sock, ready))
    finally:
        if manager is not None:
            manager.shutdown()
        host.stop()
        if store is not None:
            store.close()
        sock.close()
        logger.info("stopped")
        sys.stdout.flush()
