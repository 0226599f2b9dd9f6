"""
The waiting helpers' former home, kept so that every name imported from here goes on working.

They now live by concern in :mod:`airflow_milvus_import.waiting` (``events``: the public trigger event;
``tracker``: the wait's rules and the poll round; ``progress``; ``messages``) and in
:mod:`airflow_milvus_import.arguments` (job ids, ``error_tolerance``). New code imports from there.
"""

from __future__ import annotations

from airflow_milvus_import.arguments import (
    _parse_list_text,
    job_ids_given_as_list,
    normalize_job_ids,
    parse_error_tolerance,
)
from airflow_milvus_import.waiting.events import (
    EVENT_VERSION,
    WaitResult,
    WaitStatus,
    event_version,
    exception_for_result,
)
from airflow_milvus_import.waiting.messages import (
    describe_job,
    failed_files,
    format_count,
    format_duration,
    format_progress_line,
    format_summary_line,
)
from airflow_milvus_import.waiting.progress import ProgressHistory, ProgressRate
from airflow_milvus_import.waiting.tracker import (
    DEFAULT_ERROR_TOLERANCE_SECONDS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    FailedPoll,
    FailureWording,
    JobWaitTracker,
    PollLog,
    PollRound,
    is_done_state,
)

__all__ = [
    "DEFAULT_ERROR_TOLERANCE_SECONDS",
    "DEFAULT_MAX_CONSECUTIVE_ERRORS",
    "EVENT_VERSION",
    "FailedPoll",
    "FailureWording",
    "JobWaitTracker",
    "PollLog",
    "PollRound",
    "ProgressHistory",
    "ProgressRate",
    "WaitResult",
    "WaitStatus",
    "_parse_list_text",
    "describe_job",
    "event_version",
    "exception_for_result",
    "failed_files",
    "format_count",
    "format_duration",
    "format_progress_line",
    "format_summary_line",
    "is_done_state",
    "job_ids_given_as_list",
    "normalize_job_ids",
    "parse_error_tolerance",
]
