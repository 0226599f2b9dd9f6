"""
What differs between the supported Airflow versions (2.11 and 3.0-3.3), in one place.

Airflow's classes and functions that moved between versions (``BaseOperator``, ``BaseHook``, ``conf``,
``Asset``, the exceptions, ``mask_secret``...) come from ``airflow.providers.common.compat.sdk``; the modules
import them from there. This module holds only what common-compat lacks: which features exist on the
running Airflow, and the few calls whose form differs. No other module of the package checks versions.

Features and the Airflow that has them (the README's support table says what happens without them):

* ``HAS_ASSETS``: assets are called assets (3.0+); 2.11 has the same thing as Datasets (``Asset`` from
  common-compat is ``airflow.datasets.Dataset`` there).
* ``HAS_EVENT_TRIGGERS``: ``BaseEventTrigger`` and ``AssetWatcher`` (event-driven scheduling, 3.0+).
* ``HAS_DECLARATIVE_CONNECTION_FORM``: the UI reads ``conn-fields`` from the provider info (3.2+); before,
  the hook's ``get_connection_form_widgets`` (WTForms) draws the extra fields.
* ``HAS_TASK_STATE_STORE``: ``context["task_state_store"]`` (3.3+).
* ``HAS_TRIGGER_ON_KILL``: the triggerer calls a trigger's ``on_kill`` when its deferred task is killed
  (3.3+); before, killing a deferred task only cancels the trigger.
* ``HAS_ASYNC_CONNECTIONS``: ``BaseHook.aget_connection`` (3.1+); :func:`aget_connection` runs the sync
  look-up in a worker thread on 2.11 and 3.0 so the triggerer's event loop never blocks (as the dbt Cloud
  provider's trigger does there).

This module imports nothing at import time (not even Airflow): it is cheap, and anything in the package
may use it.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    from airflow.sdk import Asset
    from airflow.triggers.base import BaseTrigger

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_VERSION_STRING",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "ASSET_NOUN",
    "HAS_ASSETS",
    "HAS_ASYNC_CONNECTIONS",
    "HAS_DECLARATIVE_CONNECTION_FORM",
    "HAS_EVENT_TRIGGERS",
    "HAS_TASK_STATE_STORE",
    "HAS_TRIGGER_ON_KILL",
    "FeatureUnavailableError",
    "aget_connection",
    "amask_secret",
    "base_event_trigger_class",
    "get_task_state_store",
    "log_unavailable_once",
    "mask_secret",
    "new_asset",
    "require_feature",
    "unavailable_message",
]


def _version_tuple(version: str) -> tuple[int, int, int]:
    """``"3.1.8"`` -> ``(3, 1, 8)``; pre-release and local suffixes are ignored (``"3.2.0rc1"`` is 3.2.0)."""
    numbers = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3]]
    major, minor, micro = [*numbers, 0, 0, 0][:3]
    return major, minor, micro


def _installed_airflow_version() -> str:
    """
    The running Airflow's version without importing Airflow here: Airflow's import discovers providers,
    which calls ``get_provider_info``, which reads this module.
    """
    version = getattr(sys.modules.get("airflow"), "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    for distribution in ("apache-airflow-core", "apache-airflow"):
        try:
            return distribution_version(distribution)
        except PackageNotFoundError:
            continue
    from airflow import __version__

    return str(__version__)


#: the running Airflow's version, as it says (``"3.1.8"``)
AIRFLOW_VERSION_STRING: str = _installed_airflow_version()
#: the running Airflow's (major, minor, micro)
AIRFLOW_VERSION: tuple[int, int, int] = _version_tuple(AIRFLOW_VERSION_STRING)
AIRFLOW_V_3_0_PLUS: bool = AIRFLOW_VERSION >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS: bool = AIRFLOW_VERSION >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS: bool = AIRFLOW_VERSION >= (3, 2, 0)
AIRFLOW_V_3_3_PLUS: bool = AIRFLOW_VERSION >= (3, 3, 0)

HAS_ASSETS: bool = AIRFLOW_V_3_0_PLUS
#: what this Airflow calls an asset, for messages ("dataset" on 2.11)
ASSET_NOUN: str = "asset" if HAS_ASSETS else "dataset"
HAS_EVENT_TRIGGERS: bool = AIRFLOW_V_3_0_PLUS
HAS_DECLARATIVE_CONNECTION_FORM: bool = AIRFLOW_V_3_2_PLUS
HAS_TASK_STATE_STORE: bool = AIRFLOW_V_3_3_PLUS
HAS_TRIGGER_ON_KILL: bool = AIRFLOW_V_3_3_PLUS
HAS_ASYNC_CONNECTIONS: bool = AIRFLOW_V_3_1_PLUS

#: feature -> (the first Airflow that has it, what happens without it); the README's support table
_FEATURES: dict[str, tuple[str, str]] = {
    "assets": ("3.0", "collection assets are Datasets (airflow.datasets.Dataset); the same URIs and extras"),
    "asset watchers": (
        "3.0",
        "no event-driven scheduling (AssetWatcher / BaseEventTrigger): schedule on the collection's dataset "
        "or wait with MilvusImportJobSensor",
    ),
    "declarative connection form": ("3.2", "the form's extra fields come from get_connection_form_widgets"),
    "task state store": (
        "3.3",
        "a retried import finds its earlier try's job through list (same collection and files, created "
        "since the DAG run started) instead of the task state store",
    ),
    "trigger on_kill": (
        "3.3",
        "killing a deferred task leaves its import job running (abort_on_kill has no effect): abort it "
        "with the hook's abort_import_job if needed",
    ),
}


class FeatureUnavailableError(RuntimeError):
    """A feature was used that the running Airflow does not have (the message says which Airflow has it)."""


def unavailable_message(feature: str) -> str:
    """One sentence: ``feature`` needs Airflow X (running: Y) and what happens instead."""
    since, instead = _FEATURES[feature]
    return f"Airflow {AIRFLOW_VERSION_STRING} has no {feature} (Airflow {since}+): {instead}"


def require_feature(feature: str, available: bool) -> None:
    """
    Raise :class:`FeatureUnavailableError` when ``available`` is false, e.g.
    ``require_feature("asset watchers", HAS_EVENT_TRIGGERS)`` where a feature cannot degrade.

    :param feature: a key of the support table (``"asset watchers"``, ``"task state store"``...)
    :param available: one of this module's ``HAS_*`` flags
    """
    if not available:
        raise FeatureUnavailableError(unavailable_message(feature))


_logged: set[str] = set()
_logged_lock = threading.Lock()


def log_unavailable_once(feature: str, logger: logging.Logger | Any) -> bool:
    """
    Log (INFO, once per process and feature) that ``feature`` does not exist on this Airflow and what
    happens instead. Returns whether it logged.

    :param feature: a key of the support table
    :param logger: the task's or trigger's logger (anything with ``.info``)
    """
    with _logged_lock:
        if feature in _logged:
            return False
        _logged.add(feature)
    logger.info("%s", unavailable_message(feature))
    return True


def get_task_state_store(context: Mapping[str, Any] | Any) -> Any | None:
    """
    The task state store of a running task (``context["task_state_store"]``, Airflow 3.3+), or ``None``
    where this Airflow (or this context) has none; callers then fall back (the import operator looks for
    the earlier try's job through ``list``).

    :param context: the task's context
    """
    getter = getattr(context, "get", None)
    if getter is None:
        return None
    try:
        return getter("task_state_store")
    except Exception:
        return None


def base_event_trigger_class() -> type[BaseTrigger]:
    """
    ``BaseEventTrigger`` (the base of triggers an ``AssetWatcher`` may use, Airflow 3.0+); on 2.11
    ``BaseTrigger``, so such a trigger still works as a deferred task's trigger there.
    """
    from airflow.providers.common.compat.triggers import BaseEventTrigger

    return BaseEventTrigger  # type: ignore[no-any-return]


async def aget_connection(hook: Any, conn_id: str) -> Any:
    """
    The connection ``conn_id`` without blocking the event loop: ``await hook.aget_connection`` where
    Airflow has it (3.1+), else the sync look-up in a worker thread (asgiref's ``sync_to_async``).

    :param hook: the hook asking (its class's ``aget_connection`` / ``get_connection`` are used)
    :param conn_id: the connection id
    """
    aget = getattr(hook, "aget_connection", None)
    if aget is not None:
        return await aget(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(hook.get_connection)(conn_id)


def mask_secret(secret: str) -> None:
    """
    Register ``secret`` with Airflow's secrets masker (``airflow.sdk.log`` on 3.2+, the task SDK's
    ``execution_time.secrets_masker`` on 3.0 / 3.1, ``airflow.utils.log.secrets_masker`` on 2.11).
    """
    _mask_secret_function()(secret)


def _mask_secret_function() -> Any:
    try:
        from airflow.sdk.log import mask_secret as sdk_log_mask_secret

        return sdk_log_mask_secret
    except ImportError:
        pass
    try:
        from airflow.sdk.execution_time.secrets_masker import mask_secret as sdk_mask_secret

        return sdk_mask_secret
    except ImportError:
        from airflow.utils.log.secrets_masker import mask_secret as core_mask_secret

        return core_mask_secret


async def amask_secret(secret: str) -> None:
    """:func:`mask_secret` from a coroutine: ``airflow.sdk.log.amask_secret`` (3.2+), else the sync call."""
    try:
        from airflow.sdk.log import amask_secret as sdk_amask_secret
    except ImportError:
        mask_secret(secret)
        return
    await sdk_amask_secret(secret)


def new_asset(
    uri: str,
    *,
    name: str | None = None,
    group: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Asset:
    """
    An ``Asset`` (3.0+) or, on 2.11, a ``Dataset``, which has a URI and an extra but no name or group
    (they are dropped there: a Dataset is known by its URI).

    :param uri: the asset's URI
    :param name: its name (3.0+; Airflow's default is the URI)
    :param group: its group (3.0+; Airflow's default ``asset``)
    :param extra: the asset's own extra
    """
    from airflow.providers.common.compat.sdk import Asset as AssetClass

    kwargs: dict[str, Any] = {"uri": uri}
    if HAS_ASSETS:
        if name is not None:
            kwargs["name"] = name
        if group is not None:
            kwargs["group"] = group
    if extra:
        kwargs["extra"] = dict(extra)
    return AssetClass(**kwargs)
