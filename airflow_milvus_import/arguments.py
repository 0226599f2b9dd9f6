"""
Task-argument coercion, shared by the operators, the sensor and the triggers (pure: no I/O, no Airflow).

- :func:`normalize_job_ids` / :func:`job_ids_given_as_list`: what a user (or a template) gave as job ids.
- :func:`normalize_files`: the import operator's ``files`` / ``object_urls`` as the create route's lists.
- :func:`parse_error_tolerance`, :func:`check_max_consecutive_errors`, :func:`check_conn_id`: the checks
  every waiter (sensor, triggers) makes of its arguments.
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_milvus_import.models import parse_job_id

__all__ = [
    "check_conn_id",
    "check_max_consecutive_errors",
    "job_ids_given_as_list",
    "literal_list",
    "normalize_files",
    "normalize_job_ids",
    "parse_error_tolerance",
]

_NOT_A_LIST = object()


def parse_error_tolerance(value: Any) -> float:
    """
    ``error_tolerance`` as seconds: a number of seconds or a ``timedelta``, positive and finite.

    :raises TypeError: not a number or a timedelta.
    :raises ValueError: zero, negative, infinite or NaN.
    """
    seconds: float
    if hasattr(value, "total_seconds") and callable(value.total_seconds):
        seconds = float(value.total_seconds())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"error_tolerance must be seconds or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"error_tolerance must be a positive number of seconds, got {value!r}")
    return seconds


def normalize_job_ids(value: Any) -> list[str]:
    """
    One job id or several, as a list of non-empty strings without duplicates (first occurrence kept).

    Accepts a string, an integer (Milvus ids are numbers), any iterable of those, and the text of a list
    (``"['1', '2']"``: what a Jinja template renders a pulled XCom list to).

    :raises ValueError: no id at all, or an empty / ``None`` / non-scalar id (its position is named).
    """
    if isinstance(value, str):
        text = value.strip()
        value = _parse_list_text(text) if text.startswith("[") and text.endswith("]") else [value]
    elif value is None or isinstance(value, (int, float, Mapping)):
        value = [value]
    elif not isinstance(value, Iterable):
        raise ValueError(f"import job id must be a string or a list of strings, got {type(value).__name__}")

    items = list(value)
    if not items:
        raise ValueError("no import job id given: job_id is an empty list")
    job_ids: list[str] = []
    for position, item in enumerate(items):
        job_id = parse_job_id(item) if isinstance(item, (str, int, float)) else None
        if job_id is None:
            where = f" at position {position}" if len(items) > 1 else ""
            raise ValueError(f"invalid import job id{where}: {item!r} (expected a non-empty string)")
        if job_id not in job_ids:
            job_ids.append(job_id)
    return job_ids


def job_ids_given_as_list(value: Any) -> bool:
    """
    Whether ``value`` names jobs as a list (a waiter then returns a list) rather than one id.

    True for lists, tuples and other iterables, and for the text of a list (``"['1']"``), even of one id.
    """
    if isinstance(value, str):
        text = value.strip()
        return text.startswith("[") and text.endswith("]") and isinstance(_parse_list_text(text, None), list)
    if value is None or isinstance(value, (int, float, Mapping)):
        return False
    return isinstance(value, Iterable)


def _parse_list_text(text: str, default: Any = _NOT_A_LIST) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        # Not a list after all: a single id that happens to be written in brackets.
        return [text] if default is _NOT_A_LIST else default


def check_max_consecutive_errors(value: Any, *, not_an_integer: type[Exception] = TypeError) -> int:
    """
    ``max_consecutive_errors``: an integer of at least 1.

    :param not_an_integer: what a value that is not an integer raises (the event trigger raises
        ``ValueError`` for every bad argument).
    :raises ValueError: less than 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise not_an_integer("max_consecutive_errors must be an integer")
    if value < 1:
        raise ValueError(f"max_consecutive_errors must be at least 1, got {value}")
    return value


def check_conn_id(value: Any) -> str:
    """
    A trigger's ``milvus_import_conn_id``: a non-empty string.

    :raises ValueError: anything else.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("milvus_import_conn_id must be a non-empty string")
    return value


# --------------------------------------------------------------------------------------------------------
# Files


def normalize_files(files: Any, *, argument: str = "files") -> list[list[str]]:
    """
    Turn what users pass as ``files`` into the list of lists the create route wants.

    Accepted forms:

    * a list of lists (what pymilvus' ``BulkWriter.batch_files`` returns): each inner list is one file, or
      the column files of one NumPy column set;
    * a flat list of paths: one file each, except that a flat list of ``.npy`` files that all sit in one
      folder is one NumPy column set (a single ``.npy`` file cannot be imported alone), so mapping over
      ``batch_files`` (``.expand(files=writer.batch_files)``) works for every format;
    * one path (``str`` or ``os.PathLike``);
    * the text of a Python / JSON list (what a Jinja template renders from a list).

    :param argument: the argument's name, for error messages.
    :raises ValueError: empty input, or an entry that is not a path.
    """
    value = literal_list(files) if isinstance(files, str) else files
    if isinstance(value, (str, os.PathLike)):
        return [[_path(value, argument)]]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise ValueError(
            f"{argument} must be a path, a list of paths or a list of lists of paths; "
            f"got {type(files).__name__}"
        )
    items = list(value)
    if not items:
        raise ValueError(f"{argument} is empty: name at least one file to import")
    if all(isinstance(item, (str, os.PathLike)) for item in items):
        paths = [_path(item, argument) for item in items]
        if len(paths) > 1 and all(path.lower().endswith(".npy") for path in paths):
            folders = {path.rsplit("/", 1)[0] if "/" in path else "" for path in paths}
            if len(folders) == 1:
                return [paths]
        return [[path] for path in paths]
    batches: list[list[str]] = []
    for index, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            batches.append([_path(item, argument)])
        elif isinstance(item, Sequence) and not isinstance(item, (bytes, bytearray)):
            batch = [_path(path, f"{argument}[{index}]") for path in item]
            if not batch:
                raise ValueError(f"{argument}[{index}] is an empty list: each entry names at least one file")
            batches.append(batch)
        else:
            raise ValueError(
                f"{argument}[{index}] must be a path or a list of paths; got {type(item).__name__}: {item!r}"
            )
    return batches


def literal_list(text: str) -> Any:
    """The list the text of a Python / JSON list spells (what a template renders a list to), else the text."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return text
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _path(value: Any, argument: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{argument} must hold non-empty paths; got {value!r}")
    return value.strip()
