"""Helpers for the local import server's tests: a small REST client, polling, collections and data files."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import requests
from pymilvus import CollectionSchema, DataType, MilvusClient
from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

IMPORT_PATH = "/v2/vectordb/jobs/import/"
TERMINAL = ("Completed", "Failed")
DIM = 8


class Api:
    """Raw REST calls to one flavour of the server.

    :param base: ``server.url`` or ``server.cloud_url``.
    :param token: sent as ``Authorization: Bearer``.
    :param cluster_id: added to every body (Zilliz Cloud flavour).
    """

    def __init__(
        self, base: str, token: str | None = None, cluster_id: str | None = None, **kwargs: Any
    ) -> None:
        self.base = base
        self.cluster_id = cluster_id
        self.session = requests.Session()
        self.verify: bool | str = kwargs.get("verify", True)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def post(
        self,
        action: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        path: str = IMPORT_PATH,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> requests.Response:
        """POST ``body`` (JSON) or ``raw`` bytes to ``{base}{path}{action}``."""
        if raw is None:
            payload = dict(body or {})
            if self.cluster_id is not None:
                payload.setdefault("clusterId", self.cluster_id)
            return self.session.post(
                self.base + path + action, json=payload, headers=headers, timeout=timeout, verify=self.verify
            )
        return self.session.post(
            self.base + path + action, data=raw, headers=headers, timeout=timeout, verify=self.verify
        )

    def ok(self, action: str, body: Any = None, **kwargs: Any) -> Any:
        """A call that must succeed; returns ``data``."""
        response = self.post(action, body, **kwargs)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["code"] == 0, payload
        return payload["data"]

    def error(self, action: str, body: Any = None, **kwargs: Any) -> tuple[int, int, str]:
        """A call that must fail: (HTTP status, code, message)."""
        response = self.post(action, body, **kwargs)
        payload = response.json()
        assert payload["code"] != 0, payload
        return response.status_code, payload["code"], payload["message"]

    def create(self, collection: str, files: list[list[str]], **extra: Any) -> str:
        """Create a job; returns its id."""
        key = "objectUrls" if self.cluster_id is not None else "files"
        data = self.ok("create", {"collectionName": collection, key: files, **extra})
        return str(data["jobId"])

    def progress(self, job_id: str) -> dict[str, Any]:
        """``describe`` data."""
        data: dict[str, Any] = self.ok("describe", {"jobId": job_id})
        return data

    def wait(self, job_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 120) -> dict[str, Any]:
        """Poll ``describe`` until the job is in one of ``states``."""
        result: dict[str, Any] = wait_for(
            lambda: self._state_in(job_id, states), timeout, f"job {job_id} to reach {states}"
        )
        return result

    def _state_in(self, job_id: str, states: tuple[str, ...]) -> dict[str, Any] | None:
        data = self.progress(job_id)
        return data if data["state"] in states else None


def wait_for(
    check: Callable[[], Any], timeout: float = 60, what: str = "a condition", interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def unique(prefix: str = "c") -> str:
    """A collection name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_schema(*, dim: int = DIM, dynamic: bool = True, auto_id: bool = False) -> CollectionSchema:
    """id INT64 primary key, vec FLOAT_VECTOR(dim), meta JSON, name VARCHAR(64)."""
    schema = MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=dynamic)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("name", DataType.VARCHAR, max_length=64)
    return schema


def make_collection(
    client: MilvusClient, name: str | None = None, **kwargs: Any
) -> tuple[str, CollectionSchema]:
    """Create a collection through pymilvus; returns its name and schema."""
    name = name or unique()
    schema = make_schema(**kwargs)
    client.create_collection(name, schema=schema)
    return name, schema


def rows(
    count: int, *, start: int = 0, dim: int = DIM, with_id: bool = True, seed: int = 0
) -> list[dict[str, Any]]:
    """Rows for :func:`make_schema`, with a dynamic field ``extra``."""
    generator = np.random.default_rng(seed + start)
    vectors = generator.random((count, dim), dtype=np.float32)
    result = []
    for i in range(count):
        row: dict[str, Any] = {
            "vec": vectors[i].tolist(),
            "meta": {"n": start + i},
            "name": f"row-{start + i}",
            "extra": start + i,
        }
        if with_id:
            row["id"] = start + i
        result.append(row)
    return result


def write_files(
    schema: CollectionSchema,
    folder: Path,
    file_type: BulkFileType,
    data: list[dict[str, Any]],
    chunk_size: int | None = None,
) -> list[list[str]]:
    """Write rows with pymilvus' LocalBulkWriter; returns its ``batch_files`` (absolute paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {} if chunk_size is None else {"chunk_size": chunk_size}
    with LocalBulkWriter(schema=schema, local_path=str(folder), file_type=file_type, **kwargs) as writer:
        for row in data:
            writer.append_row(row)
        writer.commit()
        files: list[list[str]] = [list(batch) for batch in writer.batch_files]
    return files


def count_rows(client: MilvusClient, collection: str) -> int:
    """``count(*)`` through pymilvus."""
    result = client.query(collection, filter="", output_fields=["count(*)"])
    return int(result[0]["count(*)"])
