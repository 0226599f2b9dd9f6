"""How fast a job goes: rows per second and an ETA from recent progress samples (pure: callers pass times)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_milvus_import.models import ImportJobProgress

__all__ = ["ProgressHistory", "ProgressRate"]


@dataclass(frozen=True)
class ProgressRate:
    """
    What recent samples say about a job's speed.

    :param rows_per_second: imported rows per second, None until two samples exist.
    :param eta_seconds: estimated seconds to completion, None until it can be estimated.
    """

    rows_per_second: float | None = None
    eta_seconds: float | None = None


class ProgressHistory:
    """
    Recent ``(time, imported rows, percent)`` samples of one job, to estimate rows/s and an ETA.

    The ETA follows the job's overall percent (Milvus weights its phases: rows are only counted while
    importing, then sorting and indexing still take time), and falls back to the remaining rows at the
    current row rate when the percent has not moved. Times are whatever monotonic clock the caller uses.

    :param max_samples: how many recent samples the estimate spans.
    """

    def __init__(self, max_samples: int = 12) -> None:
        if max_samples < 2:
            raise ValueError("max_samples must be at least 2")
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, progress: ImportJobProgress, at: float) -> None:
        """Record a sample; a job that went backwards (server restart, new attempt) starts a new history."""
        if self._samples:
            last_at, last_rows, last_percent = self._samples[-1]
            if at <= last_at:
                return
            if progress.imported_rows < last_rows or progress.progress < last_percent:
                self._samples.clear()
        self._samples.append((at, progress.imported_rows, progress.progress))

    def rate(self, progress: ImportJobProgress | None = None) -> ProgressRate:
        """
        The current estimate.

        :param progress: the latest progress (for the remaining rows); defaults to the last sample's.
        """
        if len(self._samples) < 2:
            return ProgressRate()
        first_at, first_rows, first_percent = self._samples[0]
        last_at, last_rows, last_percent = self._samples[-1]
        elapsed = last_at - first_at
        if elapsed <= 0:
            return ProgressRate()
        rows_per_second = max(0.0, (last_rows - first_rows) / elapsed)
        percent_per_second = (last_percent - first_percent) / elapsed
        eta: float | None = None
        if progress is not None and progress.state.is_terminal:
            eta = None
        elif percent_per_second > 0 and last_percent < 100:
            eta = (100 - last_percent) / percent_per_second
        elif rows_per_second > 0 and progress is not None and progress.total_rows > progress.imported_rows:
            eta = (progress.total_rows - progress.imported_rows) / rows_per_second
        return ProgressRate(rows_per_second=rows_per_second, eta_seconds=eta)
