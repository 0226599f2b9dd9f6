"""The compatibility layer: feature flags that match the running Airflow, and calls that work on each one."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import threading
from typing import Any

import pytest

from airflow_milvus_import import compat


def installed_airflow() -> tuple[int, int]:
    major, minor = importlib.metadata.version("apache-airflow").split(".")[:2]
    return int(major), int(minor)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("3.1.8", (3, 1, 8)), ("2.11.2", (2, 11, 2)), ("3.2.0rc1", (3, 2, 0)), ("3.3", (3, 3, 0)),
     ("3.0.6+astro.1", (3, 0, 6)), ("3.4.0.dev0", (3, 4, 0))],
)
def test_version_tuple(given: str, expected: tuple[int, int, int]) -> None:
    assert compat._version_tuple(given) == expected


def test_flags_follow_the_installed_airflow() -> None:
    version = installed_airflow()
    assert compat.AIRFLOW_VERSION[:2] == version
    assert compat.HAS_ASSETS is (version >= (3, 0))
    assert ("asset" if version >= (3, 0) else "dataset") == compat.ASSET_NOUN
    assert compat.HAS_EVENT_TRIGGERS is (version >= (3, 0))
    assert compat.HAS_DECLARATIVE_CONNECTION_FORM is (version >= (3, 2))
    assert compat.HAS_TASK_STATE_STORE is (version >= (3, 3))
    assert compat.HAS_TRIGGER_ON_KILL is (version >= (3, 3))


def test_flags_agree_with_what_airflow_has() -> None:
    """Each flag is checked against the real thing, so a wrong version boundary fails here."""
    import airflow.triggers.base as triggers_base

    assert hasattr(triggers_base, "BaseEventTrigger") is compat.HAS_EVENT_TRIGGERS
    try:
        import airflow.sdk  # noqa: F401
    except ImportError:
        has_sdk = False
    else:
        has_sdk = True
    assert has_sdk is compat.HAS_ASSETS
    from airflow.providers.common.compat.sdk import BaseHook

    assert hasattr(BaseHook, "aget_connection") is compat.HAS_ASYNC_CONNECTIONS


def test_trigger_on_kill_flag_matches_the_triggerer() -> None:
    """The triggerer calls ``trigger.on_kill()`` exactly from the version the flag says."""
    import inspect

    from airflow.jobs import triggerer_job_runner

    calls_on_kill = ".on_kill()" in inspect.getsource(triggerer_job_runner)
    assert calls_on_kill is compat.HAS_TRIGGER_ON_KILL


def test_task_state_store_flag_matches_airflow() -> None:
    try:
        import airflow.models.task_state_store  # noqa: F401
    except ImportError:
        has_store = False
    else:
        has_store = True
    assert has_store is compat.HAS_TASK_STATE_STORE


def test_get_task_state_store() -> None:
    store = object()
    assert compat.get_task_state_store({"task_state_store": store}) is store
    assert compat.get_task_state_store({"ti": None}) is None
    assert compat.get_task_state_store(object()) is None


def test_unavailable_message_names_the_feature_the_versions_and_the_fallback() -> None:
    message = compat.unavailable_message("task state store")
    running = compat.AIRFLOW_VERSION_STRING
    assert message.startswith(f"Airflow {running} has no task state store (Airflow 3.3+)")
    assert "through list" in message


def test_require_feature() -> None:
    compat.require_feature("asset watchers", True)
    with pytest.raises(compat.FeatureUnavailableError, match=r"asset watchers \(Airflow 3\.0\+\)"):
        compat.require_feature("asset watchers", False)


def test_log_unavailable_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "_logged", set())
    logger = logging.getLogger("test_compat")
    with caplog.at_level(logging.INFO, logger="test_compat"):
        assert compat.log_unavailable_once("trigger on_kill", logger) is True
        assert compat.log_unavailable_once("trigger on_kill", logger) is False
    lines = [record.getMessage() for record in caplog.records if record.name == "test_compat"]
    assert len(lines) == 1
    assert "abort_on_kill has no effect" in lines[0]


def test_every_feature_has_a_row() -> None:
    for feature in ("assets", "asset watchers", "declarative connection form", "task state store",
                    "trigger on_kill"):
        assert compat.unavailable_message(feature)


def test_new_asset_is_an_asset_or_a_dataset() -> None:
    asset = compat.new_asset("milvus://h:19530/default/books", name="books", group="milvus", extra={"a": 1})
    assert asset.uri == "milvus://h:19530/default/books"
    assert asset.extra == {"a": 1}
    if compat.HAS_ASSETS:
        from airflow.sdk import Asset

        assert isinstance(asset, Asset)
        assert (asset.name, asset.group) == ("books", "milvus")
    else:
        from airflow.datasets import Dataset

        assert isinstance(asset, Dataset)


def test_base_event_trigger_class() -> None:
    from airflow.triggers.base import BaseTrigger

    base = compat.base_event_trigger_class()
    assert issubclass(base, BaseTrigger)
    assert (base.__name__ == "BaseEventTrigger") is compat.HAS_EVENT_TRIGGERS


def test_mask_secret_registers_with_airflows_masker() -> None:
    secret = "compat-secret-5d1e"
    compat.mask_secret(secret)
    from airflow.providers.common.compat.sdk import redact

    assert secret not in str(redact(f"token {secret}"))


async def test_amask_secret_registers_with_airflows_masker() -> None:
    secret = "compat-async-secret-8b2c"
    await compat.amask_secret(secret)
    from airflow.providers.common.compat.sdk import redact

    assert secret not in str(redact(f"token {secret}"))


class _SyncOnlyHook:
    """A hook of an Airflow without ``aget_connection`` (2.11): only the blocking look-up."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def get_connection(self, conn_id: str) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        return {"conn_id": conn_id}


async def test_aget_connection_runs_a_sync_lookup_off_the_event_loop() -> None:
    hook = _SyncOnlyHook()
    loop_thread = threading.current_thread().name
    heartbeat = 0

    async def beat() -> None:
        nonlocal heartbeat
        while True:
            heartbeat += 1
            await asyncio.sleep(0)

    beating = asyncio.ensure_future(beat())
    try:
        connection = await compat.aget_connection(hook, "milvus_import_default")
    finally:
        beating.cancel()
    assert connection == {"conn_id": "milvus_import_default"}
    assert hook.threads
    assert hook.threads[0] != loop_thread


async def test_aget_connection_prefers_airflows_async_lookup() -> None:
    class AsyncHook(_SyncOnlyHook):
        async def aget_connection(self, conn_id: str) -> dict[str, Any]:
            return {"conn_id": conn_id, "async": True}

    assert await compat.aget_connection(AsyncHook(), "c") == {"conn_id": "c", "async": True}


async def test_the_hook_reads_an_env_connection_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real hook on the running Airflow: the async settings path works (2.11: in a worker thread)."""
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_COMPAT_ASYNC", '{"conn_type": "milvus_import", "host": "http://127.0.0.1:19530"}'
    )
    settings = await MilvusImportHook("compat_async").aget_settings()
    assert settings.base_url == "http://127.0.0.1:19530"


def test_package_modules_check_no_versions() -> None:
    """Version checks live in compat.py only."""
    from pathlib import Path

    package = Path(compat.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "compat.py":
            continue
        text = path.read_text()
        for needle in ("AIRFLOW_V_", "airflow import __version__", "version_compat"):
            if needle in text:
                offenders.append(f"{path.relative_to(package)}: {needle}")
    assert offenders == []
