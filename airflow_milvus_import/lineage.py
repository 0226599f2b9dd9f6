"""
Lineage for Milvus / Zilliz Cloud bulk imports, as the import operator and the sensor use it.

* :mod:`airflow_milvus_import.assets`: the collection's identity (``milvus://`` / ``zilliz://`` asset URIs,
  the asset-URI handlers Airflow calls), the deployment a connection points at (:class:`LineageTarget`) and
  the asset event's ``extra``;
* :mod:`airflow_milvus_import.open_lineage`: the OpenLineage datasets and facets of import jobs;
* here: reading a connection's :class:`LineageTarget` for a task, and the run's XCom and rendered template
  fields for lineage asked for after the fact. Every name of the two modules above is importable from here
  too.

Importing this module is cheap (standard library only): Airflow's connection and rendered-fields models are
imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_milvus_import.assets import (
    DEFAULT_DB_NAME,
    DEFAULT_MILVUS_PORT,
    MILVUS_ASSET_SCHEME,
    ZILLIZ_ASSET_SCHEME,
    ZILLIZ_VOLUME_SCHEME,
    CollectionRef,
    LineageTarget,
    asset_event_extra,
    collection_ref,
    convert_asset_to_openlineage,
    create_asset,
    is_collection_asset,
    milvus_collection_asset,
    parse_collection_uri,
    sanitize_asset_uri,
    target_from_settings,
)
from airflow_milvus_import.open_lineage import (
    RUN_FACET_NAME,
    RUN_FACET_SCHEMA_URL,
    build_lineage,
    empty_lineage,
    file_dataset_id,
)

__all__ = [
    "DEFAULT_DB_NAME",
    "DEFAULT_MILVUS_PORT",
    "MILVUS_ASSET_SCHEME",
    "RUN_FACET_NAME",
    "RUN_FACET_SCHEMA_URL",
    "ZILLIZ_ASSET_SCHEME",
    "ZILLIZ_VOLUME_SCHEME",
    "CollectionRef",
    "LineageTarget",
    "asset_event_extra",
    "build_lineage",
    "collection_ref",
    "convert_asset_to_openlineage",
    "create_asset",
    "empty_lineage",
    "file_dataset_id",
    "is_collection_asset",
    "lineage_target_or_none",
    "milvus_collection_asset",
    "parse_collection_uri",
    "pull_xcom",
    "rendered_value",
    "sanitize_asset_uri",
    "target_from_connection",
    "target_from_settings",
]


def target_from_connection(conn_id: str) -> LineageTarget:
    """
    The lineage view of an Airflow connection: reads the connection (from Airflow, no call to Milvus).

    :raises MilvusImportRequestError: a malformed connection; ``ValueError``: a malformed ``bucket_url``.
    """
    from airflow.providers.common.compat.sdk import BaseHook

    from airflow_milvus_import.protocol import settings_from_connection

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    settings = settings_from_connection(
        conn_id, conn.host, conn.port, conn.schema, conn.login, conn.password, extra
    )
    return target_from_settings(settings, extra)


def lineage_target_or_none(conn_id: str, log: Any, *, lacking: str) -> LineageTarget | None:
    """
    :func:`target_from_connection` for a task that must never fail over lineage: None when it cannot be read.

    :param log: the task's logger.
    :param lacking: what will lack the location, for the warning (``"Lineage"``...).
    """
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    from airflow_milvus_import.exceptions import MilvusImportError

    try:
        return target_from_connection(conn_id)
    except (MilvusImportError, AirflowNotFoundException) as error:
        # A connection the hook cannot use either: the hook's own call reports it.
        log.debug("No lineage target: %s", error)
    except Exception as error:
        log.warning("%s will lack the collection's location: %s", lacking, error)
    return None


def pull_xcom(task_instance: Any, task_id: str, key: str) -> Any:
    """
    An XCom of ``task_id`` in the task instance's run, or None: lineage is also asked for after the fact
    (a fresh task object, the run's XCom as the only record of the job).
    """
    pull = getattr(task_instance, "xcom_pull", None)
    if not callable(pull):
        return None
    map_index = getattr(task_instance, "map_index", -1)
    try:
        return pull(task_ids=task_id, key=key, map_indexes=map_index if isinstance(map_index, int) else -1)
    except Exception:
        return None


def rendered_value(operator: Any, name: str, task_instance: Any, cache: dict[str, Any] | None = None) -> Any:
    """
    A template field's value for lineage asked for after the fact (a task object that did not run): the
    value itself when it is no template, else what Airflow recorded as rendered for the task instance
    (where the metadata database can be read), else None.
    """
    value = getattr(operator, name, None)
    if not (isinstance(value, str) and ("{{" in value or "{%" in value)):
        return value
    if cache is None:
        cache = {}
    if "__fields__" not in cache:
        try:
            from airflow.models.renderedtifields import RenderedTaskInstanceFields

            fields = RenderedTaskInstanceFields.get_templated_fields(task_instance)
        except Exception:  # no metadata database here (a worker), or no record
            fields = None
        cache["__fields__"] = dict(fields) if isinstance(fields, Mapping) else {}
    return cache["__fields__"].get(name)
