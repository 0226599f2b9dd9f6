"""
Task-argument coercion, shared by the operators, the sensor and the triggers (pure: no I/O, no Airflow).

- :func:`normalize_job_ids` / :func:`job_ids_given_as_list`: what a user (or a template) gave as job ids.
- :func:`parse_error_tolerance`: a wait's ``error_tolerance`` as seconds.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_milvus_import.models import parse_job_id

__all__ = [
    "job_ids_given_as_list",
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
