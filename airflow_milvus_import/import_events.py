"""
What the import-event watcher reports and remembers (pure logic, shared by the event trigger and the import
operator): the asset-state-store keys, which finished jobs of a collection are new, and the event payload.

State kept per collection asset in Airflow 3.3's asset state store (one small key per job, so concurrent
writers never overwrite each other's entries):

* ``milvus_import.reported.<job_id>``: the job has been reported to this asset by a watcher;
* ``milvus_import.created.<job_id>``: the provider's import operator (``MilvusBulkImportOperator``) created
  the job with this asset as an outlet (its task emits the asset's event itself);
* ``milvus_import.watch.<digest>``: one watcher's baseline, the jobs already finished when it first ran.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from airflow_milvus_import.models import ImportJobState

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from airflow_milvus_import.lineage import LineageTarget
    from airflow_milvus_import.models import ImportJobProgress, ImportJobSummary

__all__ = [
    "CREATED_BY_ANYONE",
    "CREATED_BY_OTHERS",
    "CREATED_BY_VALUES",
    "REPORTABLE_STATES",
    "created_key",
    "event_payload",
    "finished_at",
    "finished_jobs",
    "normalize_states",
    "parse_since",
    "reported_key",
    "watch_key",
]

#: the job states a watcher can report (the two ends of a job; a cancelled or unknown state never is one)
REPORTABLE_STATES: Final = (ImportJobState.COMPLETED.value, ImportJobState.FAILED.value)
#: report every finished job of the collection, whoever created it
CREATED_BY_ANYONE: Final = "anyone"
#: skip jobs the provider's import operator created with this asset as an outlet (they emit its event)
CREATED_BY_OTHERS: Final = "others"
CREATED_BY_VALUES: Final = (CREATED_BY_ANYONE, CREATED_BY_OTHERS)

_KEY_PREFIX: Final = "milvus_import."


def reported_key(job_id: str) -> str:
    """The asset-state-store key saying ``job_id`` was reported to the asset."""
    return f"{_KEY_PREFIX}reported.{job_id}"


def created_key(job_id: str) -> str:
    """The asset-state-store key saying the provider's import operator created ``job_id`` for the asset."""
    return f"{_KEY_PREFIX}created.{job_id}"


def watch_key(identity: Mapping[str, Any]) -> str:
    """The key of one watcher's baseline: a digest of what it watches and reports (its trigger kwargs)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return f"{_KEY_PREFIX}watch.{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"


def normalize_states(states: str | Iterable[str]) -> tuple[str, ...]:
    """
    The states to report, canonical and de-duplicated (``"completed"`` -> ``"Completed"``).

    :raises ValueError: an empty list or a state that is not Completed or Failed.
    """
    items = [states] if isinstance(states, str) else list(states)
    wanted: list[str] = []
    for item in items:
        match = next(
            (
                state
                for state in REPORTABLE_STATES
                if isinstance(item, str) and item.strip().lower() == state.lower()
            ),
            None,
        )
        if match is None:
            raise ValueError(f"states: {item!r} is not one of {', '.join(REPORTABLE_STATES)}")
        if match not in wanted:
            wanted.append(match)
    if not wanted:
        raise ValueError(f"states: give at least one of {', '.join(REPORTABLE_STATES)}")
    return tuple(wanted)


def parse_since(value: datetime | str | None) -> datetime | None:
    """
    ``since`` as an aware UTC datetime (a naive one is read as UTC); None stays None.

    :raises ValueError: text that is no ISO 8601 time, or another type.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            example = "2026-01-31T08:00:00Z"
            raise ValueError(f"since: {value!r} is not an ISO 8601 time such as {example}") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError(f"since must be a datetime or an ISO 8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def finished_jobs(
    jobs: Iterable[ImportJobSummary], collection_name: str, *, exclude: Collection[str] = ()
) -> list[ImportJobSummary]:
    """The jobs of ``collection_name`` that are Completed or Failed, minus the ids in ``exclude``."""
    ends = {ImportJobState.COMPLETED, ImportJobState.FAILED}
    return [
        job
        for job in jobs
        if job.job_id
        and job.collection_name == collection_name
        and job.state in ends
        and job.job_id not in exclude
    ]


def finished_at(progress: ImportJobProgress) -> datetime | None:
    """When a job finished: its ``completeTime``, else its ``createTime`` (None: the server tells neither)."""
    moment = progress.complete_time or progress.create_time
    if moment is None:
        return None
    return datetime.fromtimestamp(moment.timestamp(), tz=timezone.utc)


def event_payload(
    target: LineageTarget, progress: ImportJobProgress, *, collection_name: str, db_name: str | None
) -> dict[str, Any]:
    """
    The payload of a watcher's event, and so the asset event's ``extra["payload"]``: the keys of the import
    operator's asset events (``job_id``, ``collection_name``, ``db_name``, ``state``, rows, ``files``...)
    plus ``reason`` and ``complete_time``. Nothing secret: the endpoint is the connection's base URL.
    """
    from airflow_milvus_import.lineage import asset_event_extra

    payload = asset_event_extra(
        target,
        job_id=progress.job_id,
        collection_name=collection_name,
        db_name=db_name,
        progress=progress.to_dict(),
    )
    payload["state"] = progress.state.value
    payload["reason"] = progress.reason
    moment = finished_at(progress)
    payload["complete_time"] = moment.isoformat() if moment is not None else None
    return payload


def mark_created_by_operator(
    context: Mapping[str, Any], outlets: Iterable[Any], collection: Any, job_id: str, log: Any
) -> int:
    """
    Mark ``job_id`` as created by the import operator in the asset state store of each of the task's
    collection-asset outlets that names ``collection`` (a ``CollectionRef``), so that watchers with
    ``created_by="others"`` skip it. Airflow 3.3+ (elsewhere there is no store: nothing to do). Best effort:
    a failed write is logged, never fails the import. Returns how many assets were marked.
    """
    from airflow_milvus_import.lineage import is_collection_asset, parse_collection_uri

    store = context.get("asset_state_store")
    if store is None:
        return 0
    ti = context.get("ti")
    value = {
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
    }
    marked = 0
    for outlet in outlets:
        if not is_collection_asset(outlet) or parse_collection_uri(outlet.uri) != collection:
            continue
        try:
            store[outlet].set(created_key(job_id), value)
        except Exception as error:
            log.warning("Could not mark import job %s in asset %s's state: %s", job_id, outlet.uri, error)
            continue
        marked += 1
    return marked
