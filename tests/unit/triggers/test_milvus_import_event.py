"""MilvusImportJobEventTrigger: its real run loop against the local import server (jobs created through
REST, as any client would), with a state store of the asset state store's shape standing in for Airflow's."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from jinja2 import Environment

from airflow_milvus_import import import_events
from airflow_milvus_import.compat import FeatureUnavailableError
from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
from airflow_milvus_import.triggers import milvus_import_event
from airflow_milvus_import.triggers.milvus_import_event import (
    MemoryStateStore,
    MilvusImportJobEventTrigger,
    active_feeds,
)
from tests.conftest import SENTINEL_TOKEN, prepare_rows

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

#: short lists so that each test takes seconds (the interval is the DAG author's choice, not a tolerance)
INTERVAL = 0.2
ROWS_FILE = "event-trigger-rows.json"


@pytest.fixture(scope="module")
def server(secured_local_server: Any) -> Any:
    return secured_local_server


@pytest.fixture
def conn_id(server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    conn_id = f"event_{uuid.uuid4().hex[:8]}"
    connection = {"conn_type": "milvus_import", "host": server.url, "password": SENTINEL_TOKEN}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return conn_id


def _collection(server: Any) -> str:
    name = f"ev_{uuid.uuid4().hex[:10]}"
    prepare_rows(server, name, ROWS_FILE, rows=5)
    return name


def _create(conn_id: str, collection: str, *, fail: str | None = None, duration: float = 0.0) -> str:
    options = {"local.duration": str(duration)}
    if fail is not None:
        options["local.fail"] = fail
    with MilvusImportHook(conn_id) as hook:
        return hook.create_import_job(collection, [[ROWS_FILE]], options=options)


def _finish(conn_id: str, job_id: str, timeout: float = 60) -> str:
    async def wait() -> str:
        async with MilvusImportHook(conn_id) as hook:
            for _ in range(int(timeout / 0.1)):
                progress = await hook.aget_import_progress(job_id)
                if progress.state.is_terminal:
                    return progress.state.value
                await asyncio.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish")

    return asyncio.run(wait())


class Watcher:
    """A trigger's run() driven as the triggerer drives it, collecting its events."""

    def __init__(self, trigger: MilvusImportJobEventTrigger, store: Any = None) -> None:
        self.trigger = trigger
        if store is not None:
            trigger.asset_state_store = store
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def _consume(self, run: AsyncIterator[Any]) -> None:
        async for event in run:
            self.events.append(event.payload)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._consume(self.trigger.run()))

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task

    async def until(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        for _ in range(int(timeout / 0.05)):
            if self._task is not None and self._task.done():
                self._task.result()
            if len(self.events) >= count:
                return self.events
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.events)} events, expected {count}: {self.events}")

    async def settle(self, lists: int = 3) -> None:
        """Let a few more lists go by (to see that nothing more is reported)."""
        await asyncio.sleep(INTERVAL * lists + 0.3)


def _trigger(conn_id: str, collection: str, **kwargs: Any) -> MilvusImportJobEventTrigger:
    return MilvusImportJobEventTrigger(
        collection_name=collection, milvus_import_conn_id=conn_id, poll_interval=INTERVAL, **kwargs
    )


# --- construction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"collection_name": ""}, "collection_name must be a non-empty string"),
        ({"states": ["Completed", "Importing"]}, "'Importing' is not one of Completed, Failed"),
        ({"states": []}, "give at least one of Completed, Failed"),
        ({"min_rows": -1}, "min_rows must be an integer >= 0"),
        ({"min_rows": True}, "min_rows must be an integer >= 0"),
        ({"created_by": "me"}, "created_by must be one of anyone, others"),
        ({"since": "yesterday"}, "'yesterday' is not an ISO 8601 time"),
        ({"poll_interval": 0}, "poll_interval must be a number of seconds > 0"),
        ({"db_name": " "}, "db_name must be a non-empty string or None"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors must be at least 1"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"collection_name": "books", **kwargs}
    with pytest.raises(ValueError, match=message):
        MilvusImportJobEventTrigger(**arguments)


def test_serialize_keeps_every_argument() -> None:
    trigger = MilvusImportJobEventTrigger(
        collection_name="books",
        milvus_import_conn_id="other",
        db_name="library",
        states=["failed", "Completed", "completed"],
        min_rows=10,
        created_by="others",
        since="2026-01-31T08:00:00Z",
        poll_interval=30,
        max_consecutive_errors=2,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_milvus_import.triggers.milvus_import_event.MilvusImportJobEventTrigger"
    assert kwargs == {
        "collection_name": "books",
        "milvus_import_conn_id": "other",
        "db_name": "library",
        "states": ["Failed", "Completed"],
        "min_rows": 10,
        "created_by": "others",
        "since": "2026-01-31T08:00:00+00:00",
        "poll_interval": 30.0,
        "max_consecutive_errors": 2,
    }
    assert MilvusImportJobEventTrigger(**kwargs).serialize() == (classpath, kwargs)
    json.dumps(kwargs)


def test_without_event_driven_scheduling_it_names_the_version_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(milvus_import_event, "EVENT_DRIVEN_SCHEDULING", False)
    with pytest.raises(FeatureUnavailableError, match=r"needs Airflow 3\.0 or newer .*AssetWatcher"):
        MilvusImportJobEventTrigger(collection_name="books")


def test_job_ids_from_triggering_asset_events_reads_watcher_payloads() -> None:
    from airflow_milvus_import.sensors.milvus_import import JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS

    class Event:
        def __init__(self, extra: dict[str, Any]) -> None:
            self.extra = extra

    events = {
        "milvus://h:1/default/books": [
            Event({"from_trigger": True, "payload": {"job_id": "7", "state": "Completed"}}),
            Event({"job_id": "5"}),
            Event({"from_trigger": True, "payload": "not a mapping"}),
        ],
        "other": [Event({}), Event({"job_id": "5"})],
    }
    rendered = (
        Environment().from_string(JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS).render(triggering_asset_events=events)
    )
    assert sorted(eval(rendered)) == ["5", "7"]


def test_state_keys_and_identity_are_stable() -> None:
    assert import_events.reported_key("449") == "milvus_import.reported.449"
    assert import_events.created_key("job-x") == "milvus_import.created.job-x"
    one = _trigger("a", "books", states=["Completed"])._identity()
    other = MilvusImportJobEventTrigger(collection_name="books", milvus_import_conn_id="b", poll_interval=99)
    assert import_events.watch_key(one) == import_events.watch_key(other._identity())
    stricter = _trigger("a", "books", min_rows=1)._identity()
    assert import_events.watch_key(one) != import_events.watch_key(stricter)
    assert len(import_events.watch_key(one)) < 512


# --- the run loop against the local server -----------------------------------------------------------------


def test_reports_each_new_job_once_not_the_ones_finished_before(server: Any, conn_id: str) -> None:
    collection = _collection(server)
    old_job = _create(conn_id, collection)
    assert _finish(conn_id, old_job) == "Completed"

    async def scenario() -> list[dict[str, Any]]:
        store = MemoryStateStore()
        watcher = Watcher(_trigger(conn_id, collection), store)
        watcher.start()
        await asyncio.sleep(INTERVAL * 3)  # the baseline is taken
        first = await asyncio.to_thread(_create, conn_id, collection)
        await watcher.until(1)
        second = await asyncio.to_thread(_create, conn_id, collection)
        await watcher.until(2)
        await watcher.settle()
        await watcher.stop()
        assert [event["job_id"] for event in watcher.events] == [first, second]
        assert store.values[import_events.reported_key(first)]["state"] == "Completed"
        return watcher.events

    events = asyncio.run(scenario())
    payload = events[0]
    assert payload["collection_name"] == collection
    assert payload["db_name"] == "default"
    assert payload["state"] == "Completed"
    assert payload["imported_rows"] == payload["total_rows"] == 5
    assert payload["files"] == 1
    assert payload["reason"] == ""
    assert payload["endpoint"] == server.url
    assert payload["complete_time"]
    assert SENTINEL_TOKEN not in json.dumps(events)


def test_a_restart_with_the_same_state_neither_repeats_nor_loses(server: Any, conn_id: str) -> None:
    collection = _collection(server)

    async def scenario() -> None:
        store = MemoryStateStore()  # what the asset state store keeps across triggerer processes
        watcher = Watcher(_trigger(conn_id, collection), store)
        watcher.start()
        await asyncio.sleep(INTERVAL * 3)
        first = await asyncio.to_thread(_create, conn_id, collection)
        await watcher.until(1)
        await watcher.stop()
        assert not active_feeds(), "the last watcher to leave stops the list feed"

        # Finishes while no triggerer runs the watcher.
        second = await asyncio.to_thread(_create, conn_id, collection)
        await asyncio.to_thread(_finish, conn_id, second)

        again = Watcher(_trigger(conn_id, collection), store)
        again.start()
        await again.until(1)
        await again.settle()
        await again.stop()
        assert [event["job_id"] for event in again.events] == [second]
        assert watcher.events[0]["job_id"] == first

    asyncio.run(scenario())


def test_without_a_state_store_a_restart_takes_a_new_baseline(server: Any, conn_id: str) -> None:
    collection = _collection(server)

    async def scenario() -> None:
        watcher = Watcher(_trigger(conn_id, collection))
        watcher.start()
        await asyncio.sleep(INTERVAL * 3)
        await asyncio.to_thread(_create, conn_id, collection)
        await watcher.until(1)
        await watcher.stop()
        again = Watcher(_trigger(conn_id, collection))
        again.start()
        await again.settle()
        await again.stop()
        assert again.events == [], "at most once: a restart without a store reports nothing old"

    asyncio.run(scenario())


def test_failed_jobs_only_when_asked(server: Any, conn_id: str) -> None:
    collection = _collection(server)

    async def scenario() -> None:
        store = MemoryStateStore()
        completed_only = Watcher(_trigger(conn_id, collection), MemoryStateStore())
        with_failures = Watcher(_trigger(conn_id, collection, states=["Completed", "Failed"]), store)
        completed_only.start()
        with_failures.start()
        await asyncio.sleep(INTERVAL * 3)
        failed = await asyncio.to_thread(_create, conn_id, collection, fail="disk full on node 3")
        await with_failures.until(1)
        await completed_only.settle()
        assert completed_only.events == []
        event = with_failures.events[0]
        assert (event["job_id"], event["state"], event["reason"]) == (failed, "Failed", "disk full on node 3")
        ok = await asyncio.to_thread(_create, conn_id, collection)
        await completed_only.until(1)
        await with_failures.until(2)
        assert completed_only.events[0]["job_id"] == with_failures.events[1]["job_id"] == ok
        assert len(active_feeds()) == 1, "both watchers share one list"
        await completed_only.stop()
        await with_failures.stop()

    asyncio.run(scenario())


def test_watchers_of_one_asset_report_a_job_once(server: Any, conn_id: str) -> None:
    collection = _collection(server)

    async def scenario() -> None:
        store = MemoryStateStore()  # one asset, two watchers
        one = Watcher(_trigger(conn_id, collection), store)
        two = Watcher(_trigger(conn_id, collection, min_rows=1), store)
        one.start()
        two.start()
        await asyncio.sleep(INTERVAL * 3)
        job = await asyncio.to_thread(_create, conn_id, collection)
        await asyncio.to_thread(_finish, conn_id, job)
        await one.settle(5)
        assert [event["job_id"] for event in one.events + two.events] == [job]
        await one.stop()
        await two.stop()

    asyncio.run(scenario())


def test_since_replays_jobs_finished_before_the_watcher(server: Any, conn_id: str) -> None:
    collection = _collection(server)
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    old_job = _create(conn_id, collection)
    _finish(conn_id, old_job)

    async def scenario() -> None:
        replaying = Watcher(_trigger(conn_id, collection, since=before), MemoryStateStore())
        future = Watcher(
            _trigger(conn_id, collection, since=datetime.now(timezone.utc) + timedelta(hours=1)),
            MemoryStateStore(),
        )
        replaying.start()
        future.start()
        await replaying.until(1)
        await future.settle()
        assert [event["job_id"] for event in replaying.events] == [old_job]
        assert future.events == []
        await replaying.stop()
        await future.stop()

    asyncio.run(scenario())


def test_min_rows_and_created_by(server: Any, conn_id: str) -> None:
    collection = _collection(server)

    async def scenario() -> None:
        store = MemoryStateStore()
        big_only = Watcher(_trigger(conn_id, collection, min_rows=6), MemoryStateStore())
        others = Watcher(_trigger(conn_id, collection, created_by="others"), store)
        big_only.start()
        others.start()
        await asyncio.sleep(INTERVAL * 3)
        by_operator = await asyncio.to_thread(_create, conn_id, collection, duration=1.0)
        await store.aset(import_events.created_key(by_operator), {"dag_id": "d", "task_id": "t"})
        elsewhere = await asyncio.to_thread(_create, conn_id, collection)
        await others.until(1)
        await asyncio.to_thread(_finish, conn_id, by_operator)
        await others.settle()
        assert [event["job_id"] for event in others.events] == [elsewhere]
        assert big_only.events == [], "5 rows < min_rows 6"
        await big_only.stop()
        await others.stop()

    asyncio.run(scenario())


def test_created_by_others_needs_the_asset_state_store(conn_id: str) -> None:
    async def scenario() -> None:
        run = _trigger(conn_id, "books", created_by="others").run()
        with pytest.raises(RuntimeError, match=r"created_by='others' needs Airflow 3\.3's asset state store"):
            await run.__anext__()

    asyncio.run(scenario())


def test_a_wrong_token_fails_the_watcher_clearly_without_the_token(
    server: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_milvus_import.exceptions import MilvusImportAuthError

    conn_id = f"event_bad_{uuid.uuid4().hex[:6]}"
    wrong = "wrong-token-" + uuid.uuid4().hex
    connection = {"conn_type": "milvus_import", "host": server.url, "password": wrong}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))

    async def scenario() -> None:
        trigger = _trigger(conn_id, "books", max_consecutive_errors=2)
        with pytest.raises(MilvusImportAuthError) as raised:
            async for _ in trigger.run():
                pass
        assert wrong not in str(raised.value)

    asyncio.run(scenario())
    output = "".join(capfd.readouterr())
    assert "listing import jobs failed (2/2 in a row)" in output
    assert "credentials were not accepted" in output
    assert wrong not in output


def test_many_watchers_share_one_list_per_interval(server: Any, conn_id: str) -> None:
    collections = [_collection(server) for _ in range(3)] + [f"nowhere_{n}" for n in range(17)]

    async def scenario() -> None:
        watchers = [Watcher(_trigger(conn_id, name), MemoryStateStore()) for name in collections]
        for watcher in watchers:
            watcher.start()
        await asyncio.sleep(INTERVAL * 2)
        (feed,) = active_feeds()
        assert feed.subscribers == 20
        before_rounds = feed.rounds
        before = (await asyncio.to_thread(lambda: server.stats))["requests"]
        await asyncio.sleep(INTERVAL * 10)
        after = (await asyncio.to_thread(lambda: server.stats))["requests"]
        rounds = feed.rounds - before_rounds
        lists = sum(count for route, count in after.items() if "list" in route) - sum(
            count for route, count in before.items() if "list" in route
        )
        assert rounds >= 5
        assert lists <= rounds + 1, f"{lists} lists in {rounds} rounds for 20 watchers"
        for watcher in watchers:
            await watcher.stop()

    asyncio.run(scenario())


# --- the import operator marks the jobs it creates ---------------------------------------------------------

MARKING_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_milvus_import.lineage import milvus_collection_asset
from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator

with DAG("ami_marks_its_jobs", schedule=None, start_date=datetime(2025, 1, 1)):
    MilvusBulkImportOperator(
        task_id="import_rows", collection_name={collection!r}, files=[[{rows!r}]], poll_interval=0.5,
        timeout=60, outlets=[milvus_collection_asset({collection!r}, endpoint={endpoint!r})],
    )
    MilvusBulkImportOperator(
        task_id="import_without_outlet", collection_name={collection!r}, files=[[{rows!r}]],
        poll_interval=0.5, timeout=60,
    )
"""


@pytest.mark.integration
def test_the_import_operator_marks_its_jobs_in_the_outlets_state(
    airflow_db: Any, local_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from airflow.models.asset import AssetModel
    from airflow.models.asset_state_store import AssetStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_milvus_import.lineage import collection_ref
    from tests.unit.operators.test_milvus_import import run_dag, task_states, use_dags_folder, xcom
    from tests.unit.test_assets import sync_dags_and_unpause

    collection = f"ev_marks_{uuid.uuid4().hex[:8]}"
    prepare_rows(local_server, collection, ROWS_FILE, rows=3)
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "ami_marks_its_jobs.py").write_text(
        MARKING_DAG.format(collection=collection, rows=ROWS_FILE, endpoint=local_server.url)
    )
    use_dags_folder(monkeypatch, folder)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT",
        json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
    )
    sync_dags_and_unpause(folder, "ami_marks_its_jobs")

    run = run_dag("ami_marks_its_jobs", {}, folder=folder)

    assert str(run.state) == "success", task_states(run)
    marked, unmarked = xcom(run, "import_rows", "job_id"), xcom(run, "import_without_outlet", "job_id")
    uri = collection_ref(collection, endpoint=local_server.url).uri
    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == uri))
        keys = set(
            session.scalars(select(AssetStateStoreModel.key).where(AssetStateStoreModel.asset_id == asset_id))
        )
    assert import_events.created_key(marked) in keys
    assert import_events.created_key(unmarked) not in keys


def test_state_of_jobs_the_server_no_longer_lists_is_dropped() -> None:
    from airflow_milvus_import.models import ImportJobState, ImportJobSummary
    from airflow_milvus_import.triggers.milvus_import_event import VANISHED_AFTER_LISTS, _Watch

    def job(job_id: str) -> ImportJobSummary:
        return ImportJobSummary(job_id=job_id, collection_name="books", state=ImportJobState.COMPLETED)

    async def scenario() -> dict[str, Any]:
        store = MemoryStateStore()
        watch = _Watch(_trigger("c", "books"), store, target=None, hook=None)  # type: ignore[arg-type]
        watch.baseline = {"1"}
        await watch._save_baseline(watch.baseline)
        for job_id in ("1", "2"):
            await store.aset(import_events.reported_key(job_id), {"state": "Completed"})
            await store.aset(import_events.created_key(job_id), {"dag_id": "d"})
        await watch._forget_vanished([job("1"), job("2")])
        for _ in range(VANISHED_AFTER_LISTS - 1):
            await watch._forget_vanished([job("2")])
        assert import_events.reported_key("1") in store.values, "gone from fewer lists than the limit"
        await watch._forget_vanished([job("2")])
        return store.values

    values = asyncio.run(scenario())
    assert import_events.reported_key("1") not in values
    assert import_events.created_key("1") not in values
    assert import_events.reported_key("2") in values
    [baseline] = [value for key, value in values.items() if key.startswith("milvus_import.watch.")]
    assert baseline["baseline"] == []


def test_on_the_zilliz_cloud_flavour(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = f"event_cloud_{uuid.uuid4().hex[:6]}"
    connection = {
        "conn_type": "milvus_import",
        "host": server.cloud_url,
        "password": SENTINEL_TOKEN,
        "extra": {"cluster_id": server.cluster_id},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    collection = _collection(server)

    async def scenario() -> list[dict[str, Any]]:
        watcher = Watcher(_trigger(conn_id, collection), MemoryStateStore())
        watcher.start()
        await asyncio.sleep(INTERVAL * 3)
        job_id = await asyncio.to_thread(_create, conn_id, collection)
        events = await watcher.until(1)
        await watcher.settle()
        await watcher.stop()
        assert [event["job_id"] for event in events] == [job_id]
        assert job_id.startswith("job-")
        return events

    [payload] = asyncio.run(scenario())
    assert payload["deployment"] == "Zilliz Cloud"
    assert payload["cluster_id"] == server.cluster_id
    assert payload["imported_rows"] == 5
    assert SENTINEL_TOKEN not in json.dumps(payload)
