"""The local server's settings: one dataclass, read from the command line and written back to it.

``LocalImportServer`` starts the server as a child process through the same command line a user types, so the
flags below are the single description of what the server can be told.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

from airflow_milvus_import.local.generations import DEFAULT_FLAVOUR, GENERATIONS

DEFAULT_CLUSTER_ID = "in01-local"
DEFAULT_PORT = 19530
DEFAULT_DATA_DIR = ".local-milvus"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the local import server can be told.

    :param data_dir: job records and the Milvus Lite data; created if missing.
    :param bucket: the folder standing in for the object-storage bucket the jobs' files live in.
    :param host: address to bind.
    :param port: HTTP port (0 picks a free one).
    :param milvus_port: Milvus Lite's gRPC port for pymilvus ``MilvusClient`` (0 picks a free one).
    :param token: when set, requests need ``Authorization: Bearer <token>``.
    :param rows_per_second: throttle for each import, so that waiting is visible.
    :param fail_rate: share of requests answered with an injected 5xx.
    :param drop_rate: share of requests whose connection is closed without an answer.
    :param latency_ms: delay added to requests (see ``latency_rate``).
    :param latency_rate: share of requests that get the delay (1.0: all of them).
    :param rate_limit: requests per second allowed (token bucket); more get 429 with ``Retry-After``.
    :param stall: a collection-name glob; jobs into matching collections stay Importing forever.
    :param seed: seeds the fault injection, for repeatable runs.
    :param flavour: which generation of self-hosted Milvus to answer like: ``2.4.0``, ``2.5``, ``2.6``
        (default) or ``3.x`` (see ``docs/milvus-import-api.md``, "The local server's flavours").
    :param legacy: answer like Milvus 2.4 pre-release builds (no ``describe``, ``code: 200``, key ``jobID``).
    :param ssl_certfile: certificate to serve HTTPS.
    :param ssl_keyfile: key of that certificate.
    :param cluster_id: the Zilliz Cloud cluster id shown to users (any non-empty ``clusterId`` is accepted).
    :param import_workers: imports that run at the same time.
    :param max_active_jobs: unfinished jobs allowed before ``create`` refuses (code 2100); None: no limit.
    :param ready_file: where the server writes its ports once it listens (used by ``LocalImportServer``).
    """

    data_dir: str = DEFAULT_DATA_DIR
    bucket: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    milvus_port: int | None = None
    token: str | None = None
    rows_per_second: float | None = None
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: int = 0
    latency_rate: float = 1.0
    rate_limit: float | None = None
    stall: str | None = None
    seed: int | None = None
    flavour: str = DEFAULT_FLAVOUR
    legacy: bool = False
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    cluster_id: str = DEFAULT_CLUSTER_ID
    import_workers: int = 2
    max_active_jobs: int | None = None
    ready_file: str | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "drop_rate", "latency_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.fail_rate + self.drop_rate > 1.0:
            raise ValueError("fail_rate + drop_rate must not exceed 1")
        for name in ("rows_per_second", "rate_limit"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")
        if self.import_workers < 1:
            raise ValueError(f"import_workers must be at least 1, got {self.import_workers}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if not self.cluster_id:
            raise ValueError("cluster_id must not be empty")
        if self.flavour not in GENERATIONS:
            raise ValueError(f"unknown flavour {self.flavour!r}; expected one of {', '.join(GENERATIONS)}")

    @property
    def bucket_dir(self) -> Path:
        """The bucket folder (``<data_dir>/bucket`` unless given)."""
        return Path(self.bucket) if self.bucket else Path(self.data_dir) / "bucket"

    @property
    def grpc_port(self) -> int:
        """The Milvus Lite port to bind: the one given, else HTTP port + 1 (0 when the HTTP port is 0)."""
        if self.milvus_port is not None:
            return self.milvus_port
        return self.port + 1 if self.port else 0

    @property
    def scheme(self) -> str:
        """``https`` when a certificate is configured."""
        return "https" if self.ssl_certfile else "http"

    def to_argv(self) -> list[str]:
        """The command-line flags that rebuild this configuration (inverse of :func:`config_from_args`).

        The token is left out: it travels in the ``MILVUS_IMPORT_LOCAL_TOKEN`` environment variable, so it
        never shows in a process list.
        """
        argv: list[str] = []
        defaults = ServerConfig()
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("token", "ready_file"):
                continue
            if value == getattr(defaults, item.name) and item.name not in ("data_dir", "port"):
                continue
            flag = "--" + item.name.replace("_", "-")
            if isinstance(value, bool):
                if value:
                    argv.append(flag)
            elif value is not None:
                argv.extend([flag, str(value)])
        return argv


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``milvus-import-local`` command line."""
    parser = argparse.ArgumentParser(
        prog="milvus-import-local",
        description="A local Milvus / Zilliz Cloud bulk-import REST server on Milvus Lite.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help="HTTP port; 0 picks a free one (default 19530)")
    add("--milvus-port", type=int, default=None, help="Milvus Lite gRPC port (default: HTTP port + 1)")
    add(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="job records and Milvus Lite data (default .local-milvus)",
    )
    add("--bucket", default=None, help="folder holding the files jobs import (default DATA_DIR/bucket)")
    add(
        "--token",
        default=os.environ.get("MILVUS_IMPORT_LOCAL_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' (or set MILVUS_IMPORT_LOCAL_TOKEN)",
    )
    add("--rows-per-second", type=float, default=None, help="throttle each import to this many rows/s")
    add("--fail-rate", type=_rate, default=0.0, help="share of requests answered with an injected 5xx")
    add("--drop-rate", type=_rate, default=0.0, help="share of requests whose connection is dropped")
    add("--latency-ms", type=int, default=0, help="delay added to requests, in milliseconds")
    add("--latency-rate", type=_rate, default=1.0, help="share of requests delayed (default 1: all)")
    add("--rate-limit", type=float, default=None, help="requests per second before answering 429")
    add("--stall", default=None, help="collection-name glob whose jobs stay Importing forever")
    add("--seed", type=int, default=None, help="seed for the fault injection")
    add(
        "--flavour",
        choices=list(GENERATIONS),
        default=DEFAULT_FLAVOUR,
        help=f"the self-hosted Milvus generation to answer like (default {DEFAULT_FLAVOUR})",
    )
    add("--legacy", action="store_true", help="answer like Milvus 2.4 pre-release builds (key jobID)")
    add("--ssl-certfile", default=None, help="certificate file: serve HTTPS")
    add("--ssl-keyfile", default=None, help="key file of the certificate")
    add("--cluster-id", default=DEFAULT_CLUSTER_ID, help="Zilliz Cloud cluster id shown to users")
    add("--import-workers", type=int, default=2, help="imports running at the same time (default 2)")
    add("--max-active-jobs", type=int, default=None, help="unfinished jobs allowed before create refuses")
    add("--ready-file", default=None, help=argparse.SUPPRESS)
    return parser


def config_from_args(argv: list[str] | None = None) -> ServerConfig:
    """Parse the command line into a :class:`ServerConfig` (argparse exits with a message on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return ServerConfig(**vars(args))
    except ValueError as exc:
        parser.error(str(exc))
