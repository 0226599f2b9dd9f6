"""Job records on disk: one SQLite file in the data dir, so jobs survive a restart of the server."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from airflow_milvus_import.local.jobs import Job

if TYPE_CHECKING:
    from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
)
"""


class JobStore:
    """Saves and loads :class:`Job` records (thread-safe).

    :param path: the SQLite file.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def load(self) -> list[Job]:
        """Every stored job, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM jobs ORDER BY seq").fetchall()
        jobs: list[Job] = []
        for (text,) in rows:
            record: dict[str, Any] = json.loads(text)
            jobs.append(Job.from_record(record))
        return jobs

    def save(self, job: Job) -> None:
        """Insert or replace one job's record."""
        text = json.dumps(job.to_record(), separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (job_id, seq, record) VALUES (?, ?, ?)",
                (job.job_id, job.seq, text),
            )

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._db.close()
