"""
The lines and sentences a wait logs and raises: progress lines, summaries, durations, failed files.

Change a waiter's log line here (the tests read them).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from airflow_milvus_import.models import ImportJobProgress, ImportJobState
from airflow_milvus_import.waiting.progress import ProgressRate

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "describe_job",
    "failed_files",
    "format_count",
    "format_duration",
    "format_progress_line",
    "format_summary_line",
]

#: at most this many failed files are spelled out in one message (the rest are counted)
_MAX_FILES_IN_MESSAGE = 20


def format_count(value: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{value:,}"


def format_duration(seconds: float) -> str:
    """A short human duration: ``"0.05s"``, ``"2.5s"``, ``"45s"``, ``"3m05s"``, ``"2h03m"``, ``"3d04h"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "n/a"
    if seconds < 10:
        return f"{seconds:.2g}s" if seconds < 1 else f"{seconds:.1f}".removesuffix(".0") + "s"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _format_rate(rows_per_second: float) -> str:
    if rows_per_second >= 100:
        return f"{rows_per_second:,.0f}"
    if rows_per_second >= 10:
        return f"{rows_per_second:.1f}"
    return f"{rows_per_second:.2f}"


def describe_job(progress: ImportJobProgress | None, job_id: str | None = None) -> str:
    """``"job 4487 (collection 'books')"``; just the id when the collection is not known."""
    identifier = progress.job_id if progress is not None and progress.job_id else job_id or "?"
    if progress is not None and progress.collection_name:
        return f"job {identifier} (collection {progress.collection_name!r})"
    return f"job {identifier}"


def _files_text(progress: ImportJobProgress) -> str:
    if not progress.details:
        return "files n/a"
    return f"files {progress.completed_files}/{len(progress.details)}"


def format_progress_line(progress: ImportJobProgress, rate: ProgressRate | None = None) -> str:
    """
    The line a poll logs for one job.

    ``job 4487 (collection 'books'): Importing 45% | rows 12,000/100,000 | files 1/4 | 2,345 rows/s |
    ETA 1m12s``. Rows/s and ETA read ``n/a`` until they can be estimated; a finished job shows how long
    it took instead of an ETA, when the server gave both times.
    """
    parts = [
        f"{describe_job(progress)}: {progress.state.value} {progress.progress}%",
        f"rows {format_count(progress.imported_rows)}/{format_count(progress.total_rows)}",
        _files_text(progress),
    ]
    rate = rate or ProgressRate()
    if rate.rows_per_second is not None:
        parts.append(f"{_format_rate(rate.rows_per_second)} rows/s")
    else:
        parts.append("rows/s n/a")
    if progress.state.is_terminal:
        if progress.create_time is not None and progress.complete_time is not None:
            took = (progress.complete_time - progress.create_time).total_seconds()
            parts.append(f"took {format_duration(took)}")
    elif rate.eta_seconds is not None:
        parts.append(f"ETA {format_duration(rate.eta_seconds)}")
    else:
        parts.append("ETA n/a")
    if progress.reason and progress.state is not ImportJobState.COMPLETED:
        parts.append(f"reason: {progress.reason}")
    return " | ".join(parts)


def format_summary_line(
    job_ids: Sequence[str],
    latest: Mapping[str, ImportJobProgress],
    rates: Mapping[str, ProgressRate] | None = None,
) -> str:
    """
    One line for a wait on several jobs: ``5 jobs: Completed 3, Importing 2 | rows 1,200/3,000 |
    files 7/10 | 45,000 rows/s | ETA 2m10s`` (ETA of the slowest job, when every unfinished job has one).
    """
    counts: dict[str, int] = {}
    for job_id in job_ids:
        state = latest[job_id].state.value if job_id in latest else "not seen yet"
        counts[state] = counts.get(state, 0) + 1
    seen = [latest[job_id] for job_id in job_ids if job_id in latest]
    imported = sum(progress.imported_rows for progress in seen)
    total = sum(progress.total_rows for progress in seen)
    files_done = sum(progress.completed_files for progress in seen)
    files_total = sum(len(progress.details) for progress in seen)
    parts = [
        f"{len(job_ids)} jobs: " + ", ".join(f"{state} {count}" for state, count in counts.items()),
        f"rows {format_count(imported)}/{format_count(total)}",
        f"files {files_done}/{files_total}" if files_total else "files n/a",
    ]
    rates = rates or {}
    known_rates = [rates[job_id].rows_per_second for job_id in job_ids if job_id in rates]
    row_rates = [value for value in known_rates if value is not None]
    parts.append(f"{_format_rate(sum(row_rates))} rows/s" if row_rates else "rows/s n/a")
    unfinished = [
        job_id for job_id in job_ids if job_id not in latest or not latest[job_id].state.is_terminal
    ]
    etas = [rates[job_id].eta_seconds if job_id in rates else None for job_id in unfinished]
    if unfinished:
        known_etas = [eta for eta in etas if eta is not None]
        parts.append(f"ETA {format_duration(max(known_etas))}" if len(known_etas) == len(etas) else "ETA n/a")
    return " | ".join(parts)


def failed_files(progress: ImportJobProgress) -> list[tuple[str, str]]:
    """``(file name, reason)`` of each failed file of a job (reason ``""`` when the server gave none)."""
    return [(detail.file_name or " ".join(detail.files), detail.reason) for detail in progress.failed_files]


def _failure_text(progress: ImportJobProgress) -> str:
    text = f"{describe_job(progress)} failed: {progress.reason or 'the server gave no reason'}"
    files = failed_files(progress)
    if files:
        shown = "; ".join(
            f"{name}: {reason or 'no reason given'}" for name, reason in files[:_MAX_FILES_IN_MESSAGE]
        )
        more = (
            f"; and {len(files) - _MAX_FILES_IN_MESSAGE} more" if len(files) > _MAX_FILES_IN_MESSAGE else ""
        )
        text += f". Failed files ({len(files)}): {shown}{more}"
    return text


def _polls(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}poll{'' if count == 1 else 's'}"


def _state_text(progress: ImportJobProgress) -> str:
    return (
        f"{describe_job(progress)}: last state {progress.state.value} at {progress.progress}% "
        f"(rows {format_count(progress.imported_rows)}/{format_count(progress.total_rows)}, "
        f"{_files_text(progress)})"
    )
