"""Apache Airflow provider for Milvus and Zilliz Cloud bulk-import jobs."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-milvus-import",
        "name": "Milvus Import",
        "description": "Start, wait for (deferrable) and report Milvus / Zilliz Cloud bulk-import jobs.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "milvus_import",
                "hook-class-name": "airflow_milvus_import.hooks.milvus_import.MilvusImportHook",
            }
        ],
    }
