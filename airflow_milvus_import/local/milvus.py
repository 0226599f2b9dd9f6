"""Milvus Lite inside the server process, shared with other processes through its own gRPC server.

milvus-lite 3.x is a pure-Python engine (``milvus_lite.MilvusLite``) that holds an exclusive lock on its data
directory, so only one process may open it. It ships a Milvus-protocol gRPC server
(``milvus_lite.adapter.grpc``) that pymilvus' ``MilvusClient(uri="http://host:port")`` talks to. The import
server opens the engine once, imports into it directly (no gRPC round trip), and serves the same engine on a
TCP port for DAG tasks and tests: both see the same data.

The engine is single-writer per collection and does not guard its collection cache, so this module adds the
locks: one lock for the catalog (open / create / drop), one per collection for writes, taken by both the
importer and the gRPC write calls.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from milvus_lite import DataDirLockedError, MilvusLite
from milvus_lite.adapter.grpc.servicer import MilvusServicer
from pymilvus.grpc_gen import milvus_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

logger = logging.getLogger(__name__)

_MAX_MESSAGE_SIZE = 256 * 1024 * 1024
_T = TypeVar("_T")


class CollectionLocks:
    """One write lock per (database, collection)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.RLock] = {}

    def get(self, db_name: str, collection_name: str) -> threading.RLock:
        """The write lock of a collection."""
        key = (db_name or "default", collection_name)
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.RLock()
            return lock


class _CatalogLockedMilvusLite(MilvusLite):  # type: ignore[misc]
    """MilvusLite whose catalog operations are serialized (its collection cache has no lock of its own)."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir)
        self.catalog_lock = threading.RLock()

    def _locked(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        with self.catalog_lock:
            return call(*args, **kwargs)

    def get_collection(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().get_collection, *args, **kwargs)

    def create_collection(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().create_collection, *args, **kwargs)

    def drop_collection(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().drop_collection, *args, **kwargs)

    def rename_collection(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().rename_collection, *args, **kwargs)

    def truncate_collection(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().truncate_collection, *args, **kwargs)

    def create_database(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().create_database, *args, **kwargs)

    def drop_database(self, *args: Any, **kwargs: Any) -> Any:
        return self._locked(super().drop_database, *args, **kwargs)


class _LockingServicer(MilvusServicer):  # type: ignore[misc]
    """Milvus Lite's gRPC servicer with writes taking the same per-collection lock as the importer."""

    def __init__(self, db: MilvusLite, locks: CollectionLocks) -> None:
        super().__init__(db)
        self._write_locks = locks

    def _write(self, call: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        lock = self._write_locks.get(self._database_name(request, context), request.collection_name)
        with lock:
            return call(request, context)

    def Insert(self, request: Any, context: Any) -> Any:
        return self._write(super().Insert, request, context)

    def Upsert(self, request: Any, context: Any) -> Any:
        return self._write(super().Upsert, request, context)

    def Delete(self, request: Any, context: Any) -> Any:
        return self._write(super().Delete, request, context)

    def DropCollection(self, request: Any, context: Any) -> Any:
        return self._write(super().DropCollection, request, context)

    def TruncateCollection(self, request: Any, context: Any) -> Any:
        return self._write(super().TruncateCollection, request, context)


class MilvusLiteHost:
    """Milvus Lite opened in this process and served over gRPC on ``host:port``.

    :param data_dir: the Milvus Lite data directory.
    :param host: address the gRPC server binds.
    :param port: gRPC port (0 picks a free one; see :attr:`port` after :meth:`start`).
    """

    def __init__(self, data_dir: Path, host: str, port: int) -> None:
        self._data_dir = data_dir
        self._host = host
        self._requested_port = port
        self.port = 0
        self.locks = CollectionLocks()
        self._db: _CatalogLockedMilvusLite | None = None
        self._grpc: grpc.Server | None = None

    @property
    def db(self) -> MilvusLite:
        """The open engine."""
        if self._db is None:
            raise RuntimeError("Milvus Lite is not started")
        return self._db

    def start(self) -> None:
        """Open the engine (taking its data-dir lock) and start the gRPC server."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = _CatalogLockedMilvusLite(str(self._data_dir))
        except DataDirLockedError:
            raise OSError(f"the Milvus Lite data dir {self._data_dir} is in use by another process") from None
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="milvus-lite-grpc"),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_SIZE),
                ("grpc.max_send_message_length", _MAX_MESSAGE_SIZE),
                ("grpc.so_reuseport", 0),
                # pymilvus pings idle channels (keepalive); grpc's default server policy answers those
                # pings with GOAWAY "too_many_pings", which breaks long-lived MilvusClient objects.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(_LockingServicer(self._db, self.locks), server)
        address = f"{self._host}:{self._requested_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            self._db.close()
            self._db = None
            raise OSError(f"cannot bind Milvus Lite's gRPC port {address} (in use?)")
        server.start()
        self._grpc = server
        logger.info("Milvus Lite (%s) serves gRPC on %s:%d", self._data_dir, self._host, self.port)

    def stop(self) -> None:
        """Stop the gRPC server and close the engine (idempotent)."""
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait(5)
            self._grpc = None
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def writing(self, db_name: str, collection_name: str) -> Iterator[Any]:
        """Hold a collection's write lock and yield the collection (raises if it does not exist)."""
        with self.locks.get(db_name, collection_name):
            yield self.db.get_collection(collection_name, database_name=db_name or "default")

    def catalog(self) -> threading.RLock:
        """The catalog lock (create / drop / open)."""
        if self._db is None:
            raise RuntimeError("Milvus Lite is not started")
        lock: threading.RLock = self._db.catalog_lock
        return lock
