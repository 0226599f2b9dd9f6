"""Import-job states and progress records, and turning the servers' JSON into them. No I/O.

Every variant the servers send is normalised here (see ``docs/milvus-import-api.md``): ``jobId`` or
``jobID``, ids as numbers or strings, ``reason`` missing, ``""``, ``null`` or ``errorMessage``,
``Importing`` vs ``InProgress``, ``""`` times, integer percent vs the legacy fraction ``readyPercentage``,
Milvus' Go-rendered file lists such as ``"[id.npy vec.npy]"`` and Milvus 2.4.0-2.4.4's protobuf text
``id:449839014328146740 paths:"/8ca4.../1.parquet"``, and file states this package does not know (kept by
their own name, never an end).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import pendulum
from pendulum import DateTime

__all__ = [
    "ImportFileProgress",
    "ImportFileState",
    "ImportJobProgress",
    "ImportJobState",
    "ImportJobSummary",
    "file_display_name",
    "parse_job_id",
    "parse_time",
    "protobuf_file_paths",
    "split_file_name",
]


_State = TypeVar("_State", "ImportJobState", "ImportFileState")


def _state_from_wire(cls: type[_State], value: Any, aliases: dict[str, _State]) -> _State:
    """A state enum's member for any spelling a server uses; ``UNKNOWN`` for anything else."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, str):
        return cls.UNKNOWN
    return aliases.get(value.strip().lower(), cls.UNKNOWN)


class ImportJobState(str, enum.Enum):
    """The state of an import job, as a client sees it."""

    PENDING = "Pending"
    IMPORTING = "Importing"
    UNCOMMITTED = "Uncommitted"
    COMMITTING = "Committing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    #: the server said ``None`` ("unknown import job state") or something this package does not know
    UNKNOWN = "Unknown"

    @classmethod
    def from_wire(cls, value: Any) -> ImportJobState:
        """Map any spelling a server uses (``InProgress``, legacy ``ImportRunning``...) to a state."""
        return _state_from_wire(cls, value, _JOB_STATE_ALIASES)

    @property
    def is_terminal(self) -> bool:
        """Whether the job will not change state any more (Completed or Failed)."""
        return self in (ImportJobState.COMPLETED, ImportJobState.FAILED)

    @property
    def is_success(self) -> bool:
        return self is ImportJobState.COMPLETED

    @property
    def is_failure(self) -> bool:
        return self is ImportJobState.FAILED

    def __str__(self) -> str:
        return self.value


_JOB_STATE_ALIASES: dict[str, ImportJobState] = {
    "pending": ImportJobState.PENDING,
    "importpending": ImportJobState.PENDING,
    "preimporting": ImportJobState.IMPORTING,
    "importing": ImportJobState.IMPORTING,
    "inprogress": ImportJobState.IMPORTING,
    "importrunning": ImportJobState.IMPORTING,
    "running": ImportJobState.IMPORTING,
    "sorting": ImportJobState.IMPORTING,
    "indexbuilding": ImportJobState.IMPORTING,
    "uncommitted": ImportJobState.UNCOMMITTED,
    "committing": ImportJobState.COMMITTING,
    "completed": ImportJobState.COMPLETED,
    "importcompleted": ImportJobState.COMPLETED,
    "failed": ImportJobState.FAILED,
    "importfailed": ImportJobState.FAILED,
}


class ImportFileState(str, enum.Enum):
    """
    The state of one file (or column set) of an import job.

    ``Retry`` (newest Milvus, ``ImportTaskStateV2``) is a file the server is importing again: not an end.
    A state this package does not know is ``UNKNOWN``; :attr:`ImportFileProgress.state_name` keeps the
    server's word for it.
    """

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    RETRY = "Retry"
    COMPLETED = "Completed"
    FAILED = "Failed"
    UNKNOWN = "None"

    @classmethod
    def from_wire(cls, value: Any) -> ImportFileState:
        return _state_from_wire(cls, value, _FILE_STATE_ALIASES)

    @property
    def is_terminal(self) -> bool:
        return self in (ImportFileState.COMPLETED, ImportFileState.FAILED)

    def __str__(self) -> str:
        return self.value


_FILE_STATE_ALIASES: dict[str, ImportFileState] = {
    "pending": ImportFileState.PENDING,
    "inprogress": ImportFileState.IN_PROGRESS,
    "importing": ImportFileState.IN_PROGRESS,
    "preimporting": ImportFileState.IN_PROGRESS,
    "importrunning": ImportFileState.IN_PROGRESS,
    "retry": ImportFileState.RETRY,
    "retrying": ImportFileState.RETRY,
    "completed": ImportFileState.COMPLETED,
    "importcompleted": ImportFileState.COMPLETED,
    "failed": ImportFileState.FAILED,
    "importfailed": ImportFileState.FAILED,
}


def parse_job_id(value: Any) -> str | None:
    """A job id as the string the servers want back (numbers become their decimal digits)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_time(value: Any) -> DateTime | None:
    """``"2024-04-01T06:17:55Z"``-style text, or epoch seconds / milliseconds, to an aware DateTime."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            return None
        seconds = value / 1000 if value > 1e11 else value
        return pendulum.from_timestamp(seconds, tz="UTC")
    if isinstance(value, str):
        try:
            parsed = pendulum.parse(value.strip(), tz="UTC")
        except (ValueError, TypeError, OverflowError):
            return None
        return parsed if isinstance(parsed, DateTime) else None
    return None


# Milvus 2.4.0-2.4.4 render a file as its ImportFile message in protobuf text format:
# ``id:449839014328146740 paths:"/8ca44f28-.../1.parquet"`` (one ``paths:"..."`` per file of a set).
_PROTOBUF_PATH: Final = re.compile(r'(?:^|\s)paths:\s*"((?:[^"\\]|\\.)*)"')
_PROTOBUF_ID: Final = re.compile(r"^id:\s*-?\d+(?:\s|$)")
_PROTOBUF_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "'": "'", "\\": "\\"}


def _protobuf_string(text: str) -> str:
    """A protobuf text-format string literal's content, unescaped (``\\"``, ``\\\\``, octal bytes...)."""
    if "\\" not in text:
        return text
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            octal = re.match(r"[0-7]{1,3}", text[index + 1 :])
            if octal:
                out.append(int(octal.group(0), 8) & 0xFF)
                index += 1 + len(octal.group(0))
                continue
            hexa = re.match(r"x([0-9a-fA-F]{1,2})", text[index + 1 :])
            if hexa:
                out.append(int(hexa.group(1), 16))
                index += 1 + len(hexa.group(0))
                continue
            out.extend(_PROTOBUF_ESCAPES.get(following, following).encode("utf-8"))
            index += 2
            continue
        out.extend(char.encode("utf-8"))
        index += 1
    return out.decode("utf-8", errors="replace")


def protobuf_file_paths(text: str) -> tuple[str, ...] | None:
    """
    The paths of Milvus 2.4.0-2.4.4's protobuf-text ``fileName`` (``id:4498... paths:"/a/1.parquet"``),
    or None when ``text`` is not in that form.
    """
    stripped = text.strip()
    if not (_PROTOBUF_ID.match(stripped) or stripped.startswith("paths:")):
        return None
    paths = tuple(_protobuf_string(match) for match in _PROTOBUF_PATH.findall(stripped))
    return tuple(path for path in paths if path) or None


def split_file_name(value: Any) -> tuple[str, ...]:
    """
    The files behind a detail's ``fileName``: ``"[id.npy vec.npy]"`` -> ``("id.npy", "vec.npy")``;
    Milvus 2.4.0-2.4.4's ``'id:4498... paths:"/a/1.parquet"'`` -> ``("/a/1.parquet",)``.

    Go's ``[a b]`` rendering does not quote, so a path with a space in it comes back as two.
    """
    if isinstance(value, (list, tuple)):
        return tuple(str(item) for item in value if str(item))
    if not isinstance(value, str):
        return ()
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        return tuple(part for part in text[1:-1].split() if part)
    paths = protobuf_file_paths(text)
    if paths is not None:
        return paths
    return (text,) if text else ()


def file_display_name(value: Any) -> str:
    """
    A detail's ``fileName`` as shown to users: as the server sent it, except Milvus 2.4.0-2.4.4's protobuf
    text, shown as later Milvus versions name the same file (``"[/a/1.parquet]"``).
    """
    if isinstance(value, str):
        paths = protobuf_file_paths(value)
        return value if paths is None else "[" + " ".join(paths) + "]"
    if isinstance(value, (list, tuple)):
        return " ".join(split_file_name(value))
    return ""


def _state_name(value: Any) -> str:
    """A state word as the server sent it (for showing a state this package does not know)."""
    return value.strip()[:100] if isinstance(value, str) else ""


def _int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    return int(number) if math.isfinite(number) else 0


def _reason(raw: Mapping[str, Any]) -> str:
    for key in ("reason", "errorMessage", "failReason"):
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _percent(raw: Mapping[str, Any]) -> int | None:
    """Progress as an integer percent 0-100; ``readyPercentage`` (legacy Zilliz v1) is a fraction 0..1."""
    if "progress" in raw and raw["progress"] is not None and not isinstance(raw["progress"], bool):
        value = raw["progress"]
        scale = 1.0
    elif raw.get("readyPercentage") is not None and not isinstance(raw["readyPercentage"], bool):
        value = raw["readyPercentage"]
        scale = 100.0
    else:
        return None
    try:
        number = float(value) * scale
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return max(0, min(100, round(number)))


def _collection(raw: Mapping[str, Any]) -> str:
    value = raw.get("collectionName", raw.get("collection_name"))
    return value if isinstance(value, str) else ""


def _job_id(raw: Mapping[str, Any]) -> str | None:
    for key in ("jobId", "jobID", "job_id", "taskId"):
        if key in raw:
            job_id = parse_job_id(raw[key])
            if job_id is not None:
                return job_id
    return None


def _time_to_dict(value: DateTime | None) -> str | None:
    return value.to_iso8601_string() if value is not None else None


@dataclass(frozen=True)
class ImportFileProgress:
    """
    Progress of one file (or column set) of an import job.

    :param file_name: the name as the server gave it (``"[a.parquet]"`` on Milvus; Milvus 2.4.0-2.4.4's
        protobuf text ``id:... paths:"/a/1.parquet"`` becomes ``"[/a/1.parquet]"``, the later form).
    :param files: the file paths behind it.
    :param state: the file's state; ``UNKNOWN`` for a word this package does not know.
    :param state_name: the server's word for the state (``"Retry"``, or a state newer than this package);
        ``""`` when the server sent none. :attr:`state_label` shows it.
    """

    file_name: str
    files: tuple[str, ...] = ()
    file_size: int = 0
    state: ImportFileState = ImportFileState.UNKNOWN
    progress: int = 0
    imported_rows: int = 0
    total_rows: int = 0
    complete_time: DateTime | None = None
    reason: str = ""
    state_name: str = ""

    @property
    def state_label(self) -> str:
        """The state as shown to users: the server's own word for a state this package does not know."""
        if self.state is ImportFileState.UNKNOWN and self.state_name:
            return self.state_name
        return self.state.value

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> ImportFileProgress:
        name = raw.get("fileName", raw.get("file_name", ""))
        files = split_file_name(name)
        return cls(
            file_name=file_display_name(name),
            files=files,
            file_size=_int(raw.get("fileSize")),
            state=ImportFileState.from_wire(raw.get("state")),
            state_name=_state_name(raw.get("state")),
            progress=_percent(raw) or 0,
            imported_rows=_int(raw.get("importedRows")),
            total_rows=_int(raw.get("totalRows")),
            complete_time=parse_time(raw.get("completeTime")),
            reason=_reason(raw),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (for XCom)."""
        return {
            "file_name": self.file_name,
            "files": list(self.files),
            "file_size": self.file_size,
            "state": self.state_label,
            "progress": self.progress,
            "imported_rows": self.imported_rows,
            "total_rows": self.total_rows,
            "complete_time": _time_to_dict(self.complete_time),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportFileProgress:
        """The inverse of :meth:`to_dict`."""
        return cls(
            file_name=str(data.get("file_name", "")),
            files=tuple(data.get("files") or ()),
            file_size=_int(data.get("file_size")),
            state=ImportFileState.from_wire(data.get("state")),
            state_name=_state_name(data.get("state")),
            progress=_int(data.get("progress")),
            imported_rows=_int(data.get("imported_rows")),
            total_rows=_int(data.get("total_rows")),
            complete_time=parse_time(data.get("complete_time")),
            reason=str(data.get("reason") or ""),
        )


@dataclass(frozen=True)
class ImportJobProgress:
    """
    Progress of one import job, as ``describe`` / ``get_progress`` / ``getProgress`` report it.

    :param job_id: the job id (always a string).
    :param collection_name: the target collection.
    :param state: the job state; completion is this state, never ``progress == 100`` alone.
    :param progress: integer percent 0-100 (phase-weighted on Milvus).
    :param details: one record per file or column set.
    """

    job_id: str
    collection_name: str = ""
    state: ImportJobState = ImportJobState.UNKNOWN
    progress: int = 0
    imported_rows: int = 0
    total_rows: int = 0
    file_size: int = 0
    reason: str = ""
    complete_time: DateTime | None = None
    create_time: DateTime | None = None
    details: tuple[ImportFileProgress, ...] = field(default_factory=tuple)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, job_id: str | None = None) -> ImportJobProgress:
        """
        Build from a success envelope's ``data``.

        :param job_id: the id that was asked for, used when the answer does not repeat it.
        """
        raw_details = data.get("details")
        if not isinstance(raw_details, Sequence) or isinstance(raw_details, (str, bytes)):
            raw_details = []
        details = tuple(
            ImportFileProgress.from_wire(item) for item in raw_details if isinstance(item, Mapping)
        )
        if not details and isinstance(data.get("fileName"), str) and data["fileName"]:
            details = (ImportFileProgress.from_wire(data),)
        return cls(
            job_id=_job_id(data) or job_id or "",
            collection_name=_collection(data),
            state=ImportJobState.from_wire(data.get("state")),
            progress=_percent(data) or 0,
            imported_rows=_int(data.get("importedRows")),
            total_rows=_int(data.get("totalRows")),
            file_size=_int(data.get("fileSize")),
            reason=_reason(data),
            complete_time=parse_time(data.get("completeTime")),
            create_time=parse_time(data.get("createTime")),
            details=details,
        )

    @property
    def failed_files(self) -> list[ImportFileProgress]:
        return [detail for detail in self.details if detail.state is ImportFileState.FAILED]

    @property
    def completed_files(self) -> int:
        return sum(1 for detail in self.details if detail.state is ImportFileState.COMPLETED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (for XCom and trigger events)."""
        return {
            "job_id": self.job_id,
            "collection_name": self.collection_name,
            "state": self.state.value,
            "progress": self.progress,
            "imported_rows": self.imported_rows,
            "total_rows": self.total_rows,
            "file_size": self.file_size,
            "reason": self.reason,
            "complete_time": _time_to_dict(self.complete_time),
            "create_time": _time_to_dict(self.create_time),
            "details": [detail.to_dict() for detail in self.details],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportJobProgress:
        """The inverse of :meth:`to_dict`."""
        return cls(
            job_id=str(data.get("job_id", "")),
            collection_name=str(data.get("collection_name", "")),
            state=ImportJobState.from_wire(data.get("state")),
            progress=_int(data.get("progress")),
            imported_rows=_int(data.get("imported_rows")),
            total_rows=_int(data.get("total_rows")),
            file_size=_int(data.get("file_size")),
            reason=str(data.get("reason") or ""),
            complete_time=parse_time(data.get("complete_time")),
            create_time=parse_time(data.get("create_time")),
            details=tuple(ImportFileProgress.from_dict(item) for item in data.get("details") or ()),
        )


@dataclass(frozen=True)
class ImportJobSummary:
    """
    One record of ``list``: state and progress of a job, without file details.

    :param progress: integer percent, or None where the server left it out (Zilliz Cloud may).
    """

    job_id: str
    collection_name: str = ""
    state: ImportJobState = ImportJobState.UNKNOWN
    progress: int | None = None
    reason: str = ""

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> ImportJobSummary:
        return cls(
            job_id=_job_id(raw) or "",
            collection_name=_collection(raw),
            state=ImportJobState.from_wire(raw.get("state")),
            progress=_percent(raw),
            reason=_reason(raw),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (for XCom)."""
        return {
            "job_id": self.job_id,
            "collection_name": self.collection_name,
            "state": self.state.value,
            "progress": self.progress,
            "reason": self.reason,
        }
