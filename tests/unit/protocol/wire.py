"""What the protocol tests share: a self-hosted Milvus and a Zilliz Cloud connection's settings."""

from __future__ import annotations

from airflow_milvus_import.protocol import ConnectionSettings
from tests.conftest import SENTINEL_TOKEN

BASE = "http://127.0.0.1:19530"
MILVUS = ConnectionSettings(base_url=BASE, token=SENTINEL_TOKEN, conn_id="m")
ZILLIZ = ConnectionSettings(
    base_url="https://api.cloud.zilliz.com", token=SENTINEL_TOKEN, cluster_id="in01-abc", conn_id="z"
)
