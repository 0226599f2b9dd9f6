"""The server side of the wire: error codes and messages as Milvus / Zilliz Cloud send them, and request
bodies checked the way Go's ``encoding/json`` and Gin's ``binding:"required"`` check them.

Nothing here does I/O. The messages copy the servers' own wording (see ``milvus-import-api.md``), including
their quirks, because clients match on them.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Error codes, as the servers number them.
CODE_COLLECTION_NOT_FOUND = 100
CODE_PARTITION_NOT_FOUND = 200
CODE_DATABASE_NOT_FOUND = 800
CODE_INVALID_PARAMETER = 1100
CODE_NEED_AUTHENTICATE = 1800
CODE_INCORRECT_PARAMETER_FORMAT = 1801
CODE_MISSING_REQUIRED_PARAMETERS = 1802
CODE_IMPORT_FAILED = 2100
CODE_IMPORT_FAILED_SERVER_SIDE = 2101
CODE_REQUEST_TIMEOUT = 10001
CODE_RATE_LIMIT = 8
CODE_ZILLIZ_BAD_API_KEY = 21119
CODE_INTERNAL = 65535
CODE_ZILLIZ_PAGE_SIZE = 96008

IMPORT_FAILED_SUFFIX = ": importing data failed"
IMPORT_FAILED_SERVER_SIDE_SUFFIX = ": importing data failed on server side"
INVALID_PARAMETER_SUFFIX = ": invalid parameter"
JSON_FORMAT_MESSAGE = "can only accept json format request"
MISSING_PARAMS_MESSAGE = "missing required parameters"
NOT_FOUND_TEXT = "404 page not found"


class ApiError(Exception):
    """An error answer: HTTP status, the envelope's ``code`` and ``message``.

    :param code: the ``code`` of the JSON envelope.
    :param message: the ``message`` of the JSON envelope.
    :param http_status: the HTTP status (most errors travel as 200, like on the real servers).
    """

    def __init__(self, code: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status

    def body(self) -> dict[str, Any]:
        """The JSON envelope of this error."""
        return {"code": self.code, "message": self.message}


def import_failed(message: str) -> ApiError:
    """Milvus' ``merr.WrapErrImportFailed``: code 2100, the message then ``: importing data failed``."""
    return ApiError(CODE_IMPORT_FAILED, message + IMPORT_FAILED_SUFFIX)


def job_not_found(job_id: str) -> ApiError:
    """The answer for a job id that names no job."""
    return import_failed(f"import job does not exist, jobID={job_id}")


def collection_not_found(db_name: str, collection_name: str) -> ApiError:
    """Code 100, ``collection not found[database=default][collection=x]``."""
    return ApiError(
        CODE_COLLECTION_NOT_FOUND, f"collection not found[database={db_name}][collection={collection_name}]"
    )


def database_not_found(db_name: str) -> ApiError:
    """Code 800, ``database not found[database=x]``."""
    return ApiError(CODE_DATABASE_NOT_FOUND, f"database not found[database={db_name}]")


def partition_not_found(partition_name: str) -> ApiError:
    """Code 200, ``partition not found[partition=p]``."""
    return ApiError(CODE_PARTITION_NOT_FOUND, f"partition not found[partition={partition_name}]")


def empty_import_request() -> ApiError:
    """Code 1100, an import naming no file."""
    return ApiError(CODE_INVALID_PARAMETER, "import request is empty: invalid parameter")


def unauthenticated() -> ApiError:
    """HTTP 401, code 1800: the self-hosted Milvus answer to a missing or wrong token."""
    return ApiError(CODE_NEED_AUTHENTICATE, "user hasn't authenticated", http_status=401)


def illegal_api_key() -> ApiError:
    """Code 21119: the Zilliz Cloud answer to a missing or wrong API key."""
    return ApiError(CODE_ZILLIZ_BAD_API_KEY, "The apikey is illegal.")


def request_timeout() -> ApiError:
    """HTTP 408, code 10001: the request took longer than its ``Request-Timeout``."""
    return ApiError(CODE_REQUEST_TIMEOUT, "request timeout", http_status=408)


def rate_limited(rate: float) -> ApiError:
    """HTTP 429 for a request over the injected rate limit."""
    return ApiError(CODE_RATE_LIMIT, f"rate limit exceeded[rate={rate:g}]", http_status=429)


def go_parse_int64_error(raw: str) -> str | None:
    """The error Go's ``strconv.ParseInt(raw, 10, 64)`` gives for ``raw``, or None when it is an int64."""
    text = raw[1:] if raw and raw[0] in "+-" else raw
    if not text or not text.isascii() or not text.isdigit():
        return f'strconv.ParseInt: parsing "{raw}": invalid syntax'
    if not -(2**63) <= int(raw) < 2**63:
        return f'strconv.ParseInt: parsing "{raw}": value out of range'
    return None


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def go_parse_duration(text: str) -> float:
    """Seconds in a Go duration (``"300s"``, ``"1.5h"``, ``"1h30m"``), read like ``time.ParseDuration``.

    :raises ValueError: with Go's own message, e.g. ``time: invalid duration "abc"``.
    """
    quoted = json.dumps(text, ensure_ascii=False)
    rest = text
    sign = 1.0
    if rest and rest[0] in "+-":
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        number, unit = (match.group(1), match.group(2)) if match else ("", "")
        if number in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
            )
        total += float(number) * _DURATION_UNITS[unit]
        rest = rest[len(number) + len(unit) :]
    return sign * total


# ---------------------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------------------


def _json_type_name(value: Any) -> str:
    """The word Go's decoder uses for a JSON value in ``cannot unmarshal <word> into ...``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(struct: str, field: str, value: Any, go_type: str) -> ApiError:
    kind = _json_type_name(value)
    detail = f"json: cannot unmarshal {kind} into Go struct field {struct}.{field} of type {go_type}"
    return ApiError(CODE_INCORRECT_PARAMETER_FORMAT, f"{JSON_FORMAT_MESSAGE}, error: {detail}")


#: Go field names that are not the JSON name with a capital first letter.
_GO_FIELD_NAMES = {"jobId": "JobID"}


def missing_required(struct: str, field: str) -> ApiError:
    """Gin's answer for a ``binding:"required"`` field that is absent or empty (it names the Go field)."""
    go_name = _GO_FIELD_NAMES.get(field) or field[:1].upper() + field[1:]
    detail = f"Key: '{struct}.{go_name}' Error:Field validation for '{go_name}' failed on the 'required' tag"
    return ApiError(CODE_MISSING_REQUIRED_PARAMETERS, f"{MISSING_PARAMS_MESSAGE}, error: {detail}")


def parse_body(raw: bytes, struct: str) -> dict[str, Any]:
    """Decode a request body like Gin's ``ShouldBindBodyWith(req, binding.JSON)``.

    :param raw: the body bytes.
    :param struct: the Go request type's name, used in error messages.
    """
    if not raw.strip():
        raise ApiError(
            CODE_INCORRECT_PARAMETER_FORMAT,
            f"{JSON_FORMAT_MESSAGE}, the request body should be nil, however {{}} is valid",
        )
    try:
        decoded = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(CODE_INCORRECT_PARAMETER_FORMAT, f"{JSON_FORMAT_MESSAGE}, error: {exc}") from None
    if decoded is None:
        return {}
    if not isinstance(decoded, dict):
        detail = (
            f"json: cannot unmarshal {_json_type_name(decoded)} into Go value of type httpserver.{struct}"
        )
        raise ApiError(CODE_INCORRECT_PARAMETER_FORMAT, f"{JSON_FORMAT_MESSAGE}, error: {detail}")
    return decoded


def get_str(body: dict[str, Any], field: str, struct: str, *, required: bool = False) -> str:
    """A ``string`` field: absent or null is ``""``; any other JSON type is a 1801 error."""
    value = body.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _type_error(struct, field, value, "string")
    if required and not value:
        raise missing_required(struct, field)
    return value


def get_id(body: dict[str, Any], field: str, struct: str, *, allow_number: bool) -> str:
    """A job id: a JSON string (self-hosted Milvus), or a string or an integer (as in Zilliz Cloud's docs)."""
    value = body.get(field)
    if allow_number and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return get_str(body, field, struct, required=True)


def get_int(body: dict[str, Any], field: str, struct: str, default: int) -> int:
    """An ``int`` field: absent or null gives ``default``; a fraction or another type is a 1801 error."""
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(struct, field, value, "int")
    if isinstance(value, float):
        if not value.is_integer():
            detail = (
                f"json: cannot unmarshal number {value} into Go struct field {struct}.{field} of type int"
            )
            raise ApiError(CODE_INCORRECT_PARAMETER_FORMAT, f"{JSON_FORMAT_MESSAGE}, error: {detail}")
        return int(value)
    return value


def get_bool(body: dict[str, Any], field: str, struct: str, default: bool = False) -> bool:
    """A ``bool`` field."""
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _type_error(struct, field, value, "bool")
    return value


def get_string_map(body: dict[str, Any], field: str, struct: str) -> dict[str, str]:
    """A ``map[string]string`` field such as ``options``: every value must be a JSON string."""
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(struct, field, value, "map[string]string")
    for item in value.values():
        if not isinstance(item, str):
            raise _type_error(struct, field, item, "string")
    return dict(value)


def get_path_lists(body: dict[str, Any], field: str, struct: str) -> list[list[str]] | None:
    """A ``[][]string`` field such as ``files``; ``None`` when absent or null."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _type_error(struct, field, value, "[][]string")
    result: list[list[str]] = []
    for inner in value:
        if inner is None:
            result.append([])
            continue
        if not isinstance(inner, list):
            raise _type_error(struct, field, inner, "[]string")
        for path in inner:
            if not isinstance(path, str):
                raise _type_error(struct, field, path, "string")
        result.append(list(inner))
    return result


def get_str_list(body: dict[str, Any], field: str, struct: str) -> list[str]:
    """A ``[]string`` field such as ``outputFields``."""
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(struct, field, value, "[]string")
    for item in value:
        if not isinstance(item, str):
            raise _type_error(struct, field, item, "string")
    return list(value)


def go_string_slice(paths: list[str]) -> str:
    """Go's ``fmt.Sprintf("%v", []string{...})``: ``[a.parquet]``, ``[id.npy vec.npy]``."""
    return "[" + " ".join(paths) + "]"


def protobuf_text_file(file_id: int, paths: list[str]) -> str:
    """An ``ImportFile`` in protobuf text, as Milvus 2.4.0 to about 2.4.4 named a detail's ``fileName``:
    ``id:449839014328146740 paths:"/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet"``."""
    quoted = " ".join("paths:" + json.dumps(path, ensure_ascii=False) for path in paths)
    return f"id:{file_id} {quoted}"
