"""
The trigger event: how a wait ended, as the trigger sends it and a resumed task reads it back. PUBLIC.

A wait's trigger (:class:`~airflow_milvus_import.triggers.milvus_import.MilvusImportJobTrigger`) fires one
event whose payload is :meth:`WaitResult.to_event`; the task that deferred reads it with
:meth:`WaitResult.from_event` and raises :func:`exception_for_result` when it is not a success. Your own
code may do the same (a custom task resuming on this trigger, a listener reading the event).

**Payload, version 1** (:data:`EVENT_VERSION`): a JSON-serialisable mapping with

- ``status``: ``"success"``, ``"failed"``, ``"timeout"`` or ``"error"`` (:class:`WaitStatus`);
- ``message``: a sentence a person can act on (never a secret);
- ``job_ids``: every job waited for, as strings, in the order given;
- ``jobs``: the last progress seen of each job, as ``ImportJobProgress.to_dict()``;
- for an ``error`` ended by a non-transient error, where known: ``error_type`` (the class name in
  :mod:`airflow_milvus_import.exceptions`), ``error_endpoint``, ``error_job_id``, ``error_code``,
  ``error_http_status``.

A payload carries ``event_version`` only from version 2 on: a payload without it is version 1 (what
every release so far sends), so events stored by an older triggerer still parse. Fields are only ever
added; a reader ignores fields it does not know.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_milvus_import import exceptions as _exceptions
from airflow_milvus_import.exceptions import (
    MilvusImportError,
    MilvusImportJobFailed,
    MilvusImportJobTimeout,
)
from airflow_milvus_import.models import ImportJobProgress, ImportJobState
from airflow_milvus_import.waiting.messages import failed_files

__all__ = [
    "EVENT_VERSION",
    "EVENT_VERSION_KEY",
    "WaitResult",
    "WaitStatus",
    "event_version",
    "exception_for_result",
]

#: the version of the event payload this package sends (see the module docstring)
EVENT_VERSION = 1
#: the payload key naming its version; absent means version 1
EVENT_VERSION_KEY = "event_version"


def event_version(payload: Mapping[str, Any]) -> int:
    """The version of an event payload: its ``event_version``, 1 when it has none (or an unusable one)."""
    value = payload.get(EVENT_VERSION_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


class WaitStatus(str, enum.Enum):
    """How a wait ended; the ``status`` of the trigger's event."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class WaitResult:
    """
    How a wait on one or more import jobs ended; the payload of the trigger's single event.

    :param status: success, failed, timeout or error.
    :param message: a sentence a person can act on (no secrets).
    :param job_ids: every job waited for, in the order given.
    :param jobs: the last progress seen of each job, where one was seen (same order).
    :param error_type: for an ``error`` ended by a non-transient error, the name of its class in
        :mod:`airflow_milvus_import.exceptions` (``"MilvusImportNotFoundError"``); None means
        :class:`MilvusImportError`.
    :param error_endpoint: the endpoint that error named, when it did.
    :param error_job_id: the job whose poll raised that error.
    :param error_code: the server's envelope ``code`` of that error, when it sent one.
    :param error_http_status: the HTTP status of that error, when there was a response.
    """

    status: WaitStatus
    message: str
    job_ids: tuple[str, ...]
    jobs: tuple[ImportJobProgress, ...] = ()
    error_type: str | None = None
    error_endpoint: str | None = None
    error_job_id: str | None = None
    error_code: int | None = None
    error_http_status: int | None = None

    def to_event(self) -> dict[str, Any]:
        """
        The event payload: ``{"status", "message", "job_ids", "jobs": [progress.to_dict(), ...]}``.

        An ``error`` ended by a non-transient error adds ``"error_type"`` (its class name) and, where known,
        ``"error_endpoint"``, ``"error_job_id"``, ``"error_code"`` and ``"error_http_status"``.
        """
        payload: dict[str, Any] = {
            "status": self.status.value,
            "message": self.message,
            "job_ids": list(self.job_ids),
            "jobs": [progress.to_dict() for progress in self.jobs],
        }
        for key in _ERROR_FIELDS:
            value = getattr(self, key)
            if value is not None:
                payload[key] = value
        if EVENT_VERSION > 1:  # version 1 is the payload without the key (module docstring)
            payload[EVENT_VERSION_KEY] = EVENT_VERSION
        return payload

    @classmethod
    def from_event(cls, payload: Any) -> WaitResult:
        """
        Read an event payload back (what a task gets when it resumes), of any version: one without
        ``event_version`` is version 1; fields a later version adds are ignored.

        :raises MilvusImportError: the payload is not one this package's trigger sends.
        """
        if not isinstance(payload, Mapping):
            raise MilvusImportError(
                f"unexpected trigger event payload: {type(payload).__name__}, not a mapping"
            )
        try:
            status = WaitStatus(payload.get("status"))
        except ValueError:
            raise MilvusImportError(
                f"unexpected trigger event status {payload.get('status')!r}"
                " (expected success, failed, timeout or error)"
            ) from None
        raw_ids = payload.get("job_ids") or []
        raw_jobs = payload.get("jobs") or []
        if not isinstance(raw_ids, list) or not isinstance(raw_jobs, list):
            raise MilvusImportError("unexpected trigger event payload: job_ids and jobs must be lists")
        return cls(
            status=status,
            message=str(payload.get("message") or ""),
            job_ids=tuple(str(job_id) for job_id in raw_ids),
            jobs=tuple(ImportJobProgress.from_dict(item) for item in raw_jobs if isinstance(item, Mapping)),
            # Optional (events of earlier versions lack them); a value of the wrong type is ignored.
            error_type=_text_or_none(payload.get("error_type")),
            error_endpoint=_text_or_none(payload.get("error_endpoint")),
            error_job_id=_text_or_none(payload.get("error_job_id")),
            error_code=_int_or_none(payload.get("error_code")),
            error_http_status=_int_or_none(payload.get("error_http_status")),
        )

    def progress_of(self, job_id: str) -> ImportJobProgress | None:
        return next((progress for progress in self.jobs if progress.job_id == job_id), None)

    @property
    def failed_jobs(self) -> list[ImportJobProgress]:
        return [progress for progress in self.jobs if progress.state is ImportJobState.FAILED]

    def xcom_value(self, *, single: bool) -> dict[str, Any] | list[dict[str, Any]]:
        """What a successful wait returns: one job's ``to_dict()``, or the list of them."""
        dicts = [progress.to_dict() for progress in self.jobs]
        if single:
            return dicts[0] if dicts else {}
        return dicts


_ERROR_FIELDS = ("error_type", "error_endpoint", "error_job_id", "error_code", "error_http_status")


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@functools.cache
def _error_classes() -> dict[str, type[MilvusImportError]]:
    """What an ``error_type`` may name: :class:`MilvusImportError` and its subclasses in exceptions.py."""
    return {
        name: value
        for name, value in vars(_exceptions).items()
        if isinstance(value, type)
        and issubclass(value, MilvusImportError)
        and value.__module__ == _exceptions.__name__
    }


def _error_class_name(error: BaseException) -> str | None:
    """The name of the nearest class of ``error`` that exceptions.py defines (None: not one of ours)."""
    known = _error_classes()
    for cls in type(error).__mro__:
        if known.get(cls.__name__) is cls:
            return cls.__name__
    return None


def exception_for_result(result: WaitResult) -> MilvusImportError | None:
    """
    The exception an unsuccessful wait raises (None for success).

    ``failed`` -> :class:`MilvusImportJobFailed` (job, collection, reason, failed files; ``failed_files``
    lists every failed file of every failed job); ``timeout`` -> :class:`MilvusImportJobTimeout` (a sensor
    raises Airflow's own sensor timeout instead); ``error`` -> the class of the non-transient error that
    ended the wait (``error_type``: looked up among this package's exceptions only), else
    :class:`MilvusImportError`.
    """
    first_job = result.job_ids[0] if len(result.job_ids) == 1 else None
    if result.status is WaitStatus.SUCCESS:
        return None
    if result.status is WaitStatus.FAILED:
        failed = result.failed_jobs
        first = failed[0] if failed else None
        return MilvusImportJobFailed(
            result.message,
            failed_files=[item for progress in failed for item in failed_files(progress)],
            state=ImportJobState.FAILED.value,
            job_id=first.job_id if first else first_job,
            collection_name=(first.collection_name or None) if first else None,
        )
    if result.status is WaitStatus.TIMEOUT:
        return MilvusImportJobTimeout(result.message, job_id=first_job)
    error_class = _error_classes().get(result.error_type or "", MilvusImportError)
    if issubclass(error_class, (MilvusImportJobFailed, MilvusImportJobTimeout)):
        error_class = MilvusImportError  # outcomes of their own, never what a poll raises
    return error_class(
        result.message,
        endpoint=result.error_endpoint,
        job_id=result.error_job_id or first_job,
        code=result.error_code,
        http_status=result.error_http_status,
    )
