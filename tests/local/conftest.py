"""Fixtures for the local import server's tests: servers started on 127.0.0.1 and stopped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from local_helpers import Api
from pymilvus import MilvusClient

from airflow_milvus_import.local import LocalImportServer

if TYPE_CHECKING:
    from pathlib import Path

ServerFactory = Callable[..., LocalImportServer]


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalImportServer]:
    """One server with default settings for the tests that do not need their own."""
    root = tmp_path_factory.mktemp("shared-import-server")
    with LocalImportServer(data_dir=root / "data", bucket=root / "bucket") as server:
        yield server


@pytest.fixture(scope="session")
def shared_client(shared_server: LocalImportServer) -> Iterator[MilvusClient]:
    """pymilvus ``MilvusClient`` on the shared server's Milvus Lite."""
    client = MilvusClient(uri=shared_server.milvus_uri)
    yield client
    client.close()


@pytest.fixture
def api(shared_server: LocalImportServer) -> Api:
    """REST calls to the shared server, self-hosted Milvus flavour."""
    return Api(shared_server.url)


@pytest.fixture
def cloud_api(shared_server: LocalImportServer) -> Api:
    """REST calls to the shared server, Zilliz Cloud flavour (``clusterId`` added)."""
    return Api(shared_server.cloud_url, cluster_id=shared_server.cluster_id)


@pytest.fixture
def bucket(shared_server: LocalImportServer) -> Path:
    """The shared server's bucket folder."""
    return shared_server.bucket


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with custom settings (own data dir and bucket unless given); stopped after the test."""
    started: list[LocalImportServer] = []

    def start(**kwargs: Any) -> LocalImportServer:
        kwargs.setdefault("data_dir", tmp_path / "data")
        kwargs.setdefault("bucket", tmp_path / "bucket")
        server = LocalImportServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
