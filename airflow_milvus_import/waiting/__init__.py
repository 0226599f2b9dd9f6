"""
Waiting for import jobs, without the I/O: shared by the trigger, the sensor and the operators.

Everything here is pure (no network, no clock: callers pass timestamps in), so the rules that decide a
wait's outcome are tested directly and are the same whether the wait runs in the triggerer (async), in a
poking worker (sync) or in the import operator. One concern per module:

- :mod:`~airflow_milvus_import.waiting.events`: the trigger event (public, versioned): :class:`WaitResult`,
  :class:`WaitStatus`, :func:`exception_for_result`;
- :mod:`~airflow_milvus_import.waiting.tracker`: :class:`JobWaitTracker` (the rules of a wait) and
  :class:`PollRound` (one round of polls);
- :mod:`~airflow_milvus_import.waiting.progress`: rows per second and ETA;
- :mod:`~airflow_milvus_import.waiting.messages`: the lines a wait logs.

The job-id and ``error_tolerance`` coercion lives in :mod:`airflow_milvus_import.arguments`.
"""

from __future__ import annotations

from airflow_milvus_import.waiting.events import (
    EVENT_VERSION,
    WaitResult,
    WaitStatus,
    event_version,
    exception_for_result,
)

__all__ = ["EVENT_VERSION", "WaitResult", "WaitStatus", "event_version", "exception_for_result"]
