"""Apache Airflow provider for Milvus and Zilliz Cloud bulk-import jobs."""

from __future__ import annotations

import copy
from typing import Any

__version__ = "0.1.0"

__all__ = ["CONNECTION_FIELDS", "CONNECTION_FIELD_BEHAVIOUR", "__version__", "get_provider_info"]


def _nullable_field(
    label: str, description: str, json_type: str, *, minimum: int | None = None
) -> dict[str, Any]:
    """A connection-form field of an optional value (its JSON schema allows null)."""
    schema: dict[str, Any] = {"type": [json_type, "null"]}
    if minimum is not None:
        schema["minimum"] = minimum
    return {"label": label, "description": description, "schema": schema}


#: the connection form's extra fields (Airflow 3.2+ ``conn-fields``; stored in the connection's Extra)
CONNECTION_FIELDS: dict[str, dict[str, Any]] = {
    "cluster_id": _nullable_field(
        "Cluster ID (Zilliz Cloud)",
        "Zilliz Cloud only: the cluster's id (in01-...). Leave empty for self-hosted Milvus.",
        "string",
    ),
    "db_name": _nullable_field(
        "Database", "Database used when a task names none. Empty: the server's 'default'.", "string"
    ),
    "timeout": _nullable_field(
        "Timeout (seconds)",
        "Per request, for connecting and then for the answer. Default 30.",
        "number",
        minimum=0,
    ),
    "verify": _nullable_field(
        "Verify TLS",
        "true, false, or the path of a CA bundle (e.g. for a self-signed certificate).",
        "string",
    ),
    "max_retries": _nullable_field(
        "Max retries",
        "Retries of transient failures (connection errors, timeouts, 5xx, 408, 429).",
        "integer",
        minimum=0,
    ),
    "rate_limit": _nullable_field(
        "Rate limit (requests/s)",
        "Requests per second to this endpoint, shared by every task and trigger of a process. "
        "Default: 10 on Zilliz Cloud, none on self-hosted Milvus; 0: no limit.",
        "number",
        minimum=0,
    ),
}

#: which standard fields show, their labels and placeholders (Airflow 3.2+ ``ui-field-behaviour``)
CONNECTION_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "Endpoint URL",
        "port": "Port",
        "login": "User (self-hosted, optional)",
        "password": "API key / token",
    },
    "placeholders": {
        "host": "http://localhost:19530 or https://api.cloud.zilliz.com",
        "port": "19530 (443 for Zilliz Cloud)",
        "login": "root (optional: with a password it becomes the user:password token)",
        "password": "Zilliz Cloud API key, Milvus token, or the user's password",
        "extra": '{"cluster_id": "in01-xxxxxxxxxxxxxxx", "db_name": "default"}',
        "cluster_id": "in01-xxxxxxxxxxxxxxx",
        "db_name": "default",
        "timeout": "30",
        "verify": "true",
        "max_retries": "3",
        "rate_limit": "10 on Zilliz Cloud; empty: no limit on Milvus",
    },
}


def get_provider_info() -> dict[str, Any]:
    """
    Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

    The connection form: Airflow 3.2+ reads ``conn-fields``; 2.11-3.1 ask the hook's
    ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` for the same fields. The collection URIs'
    handlers: ``asset-uris`` (3.0+), ``dataset-uris`` on 2.11.
    """
    from airflow_milvus_import.compat import HAS_ASSETS

    info = _provider_info()
    if not HAS_ASSETS:
        info["dataset-uris"] = info.pop("asset-uris")
    return info


def _provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-milvus-import",
        "name": "Milvus Import",
        "description": "Start, wait for (deferrable) and report Milvus / Zilliz Cloud bulk-import jobs.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "milvus_import",
                "hook-class-name": "airflow_milvus_import.hooks.milvus_import.MilvusImportHook",
                "hook-name": "Milvus Import (Milvus / Zilliz Cloud)",
                "conn-fields": copy.deepcopy(CONNECTION_FIELDS),
                "ui-field-behaviour": copy.deepcopy(CONNECTION_FIELD_BEHAVIOUR),
            }
        ],
        "integrations": [
            {
                "integration-name": "Milvus Import",
                "external-doc-url": "https://milvus.io/docs/import-data.md",
                "tags": ["software"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Milvus Import",
                "python-modules": [
                    "airflow_milvus_import.triggers.milvus_import",
                    "airflow_milvus_import.triggers.milvus_import_event",
                ],
            }
        ],
        "extra-links": ["airflow_milvus_import.links.MilvusImportJobLink"],
        "asset-uris": [
            {
                "schemes": ["milvus", "zilliz"],
                "handler": "airflow_milvus_import.assets.sanitize_asset_uri",
                "factory": "airflow_milvus_import.assets.create_asset",
                "to_openlineage_converter": "airflow_milvus_import.assets.convert_asset_to_openlineage",
            }
        ],
    }
