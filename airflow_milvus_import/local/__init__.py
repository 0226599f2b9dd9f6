"""The local Milvus import server: the Milvus / Zilliz Cloud bulk-import REST API on Milvus Lite.

``LocalImportServer`` starts it from Python; ``milvus-import-local`` (or ``python -m
airflow_milvus_import.local``) runs it from a shell. It shares nothing with the provider's client code.
"""

from __future__ import annotations

from airflow_milvus_import.local.server import LocalImportServer

__all__ = ["LocalImportServer"]
