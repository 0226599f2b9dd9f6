"""Server generations: where self-hosted Milvus 2.4.0, 2.5, 2.6 and 3.x answer the import API differently.

``--flavour`` picks one for the self-hosted routes (the Zilliz Cloud routes under ``/cloud`` are one service
and do not change with it). Each answer below is the one ``docs/milvus-import-api.md`` records for that
generation, with its source; where a source gives only a code and the end of a message, the start is the local
server's own wording and the docs say so. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from airflow_milvus_import.local.wire import (
    CODE_IMPORT_FAILED,
    CODE_IMPORT_FAILED_SERVER_SIDE,
    CODE_INCORRECT_PARAMETER_FORMAT,
    CODE_INVALID_PARAMETER,
    IMPORT_FAILED_SERVER_SIDE_SUFFIX,
    IMPORT_FAILED_SUFFIX,
    INVALID_PARAMETER_SUFFIX,
    JSON_FORMAT_MESSAGE,
    ApiError,
)

FLAVOUR_2_4_0 = "2.4.0"
FLAVOUR_2_5 = "2.5"
FLAVOUR_2_6 = "2.6"
FLAVOUR_3_X = "3.x"
#: The default: the answers the local server gave before flavours existed (2.5 / 2.6 codes, with commit and
#: abort, which the 2PC test plan of Milvus targets at 2.6.x).
DEFAULT_FLAVOUR = FLAVOUR_2_6

TOO_MANY_JOBS_MESSAGE = (
    "The number of jobs has reached the limit, please try again later. If your request is set to only import "
    "a single file, please consider importing multiple files in one request for better efficiency."
)


@dataclass(frozen=True)
class Generation:
    """How one generation of self-hosted Milvus answers.

    :param name: the ``--flavour`` value.
    :param success_code: ``code`` of a success envelope (200 on 2.4.0, else 0).
    :param describe_route: the ``describe`` route exists (added Oct 2024; 2.4.0 has only ``get_progress``).
    :param two_phase: the ``commit`` / ``abort`` routes and ``options.auto_commit = "false"`` exist.
    :param create_time: progress carries ``createTime`` (2.6+).
    :param protobuf_file_names: a detail's ``fileName`` is protobuf text (2.4.0 to about 2.4.4).
    :param file_retry_state: per-file state ``Retry`` exists (3.x's ``ImportTaskStateV2``).
    :param strict_auto_commit: ``options.auto_commit`` other than ``"true"`` / ``"false"`` is refused (3.x).
    :param server_side_codes: unknown jobs and back-pressure answer 2101 "importing data failed on server
        side", a non-numeric id 1100 "invalid parameter" (3.x); else 2100 "importing data failed".
    """

    name: str
    success_code: int
    describe_route: bool
    two_phase: bool
    create_time: bool
    protobuf_file_names: bool
    file_retry_state: bool
    strict_auto_commit: bool
    server_side_codes: bool

    # -- job ids --

    def job_not_found(self, job_id: str) -> ApiError:
        """``describe`` / ``get_progress`` of an id that names no job."""
        message = f"import job does not exist, jobID={job_id}"
        if self.server_side_codes:
            return ApiError(CODE_IMPORT_FAILED_SERVER_SIDE, message + IMPORT_FAILED_SERVER_SIDE_SUFFIX)
        return ApiError(CODE_IMPORT_FAILED, message + IMPORT_FAILED_SUFFIX)

    def bad_job_id(self, parse_error: str) -> ApiError:
        """``describe`` / ``get_progress`` of an id that is no int64.

        :param parse_error: Go's ``strconv.ParseInt`` error for the id.
        """
        if self.server_side_codes:
            return ApiError(
                CODE_INVALID_PARAMETER, f"parse job id failed: {parse_error}{INVALID_PARAMETER_SUFFIX}"
            )
        if self.name == FLAVOUR_2_6:
            return ApiError(CODE_IMPORT_FAILED, f"parse job id failed: {parse_error}{IMPORT_FAILED_SUFFIX}")
        # 2.4 / 2.5 build it with fmt.Sprint("parse job id failed, err=%w", err): the %w stays in the text.
        return ApiError(CODE_IMPORT_FAILED, f"parse job id failed, err=%w{parse_error}{IMPORT_FAILED_SUFFIX}")

    def commit_job_not_found(self, job_id: str) -> ApiError:
        """``commit`` / ``abort`` of an id that names no job."""
        if self.server_side_codes:
            return ApiError(CODE_IMPORT_FAILED_SERVER_SIDE, f"job {job_id} not found")
        return self.job_not_found(job_id)

    def commit_bad_job_id(self, raw: str, parse_error: str) -> ApiError:
        """``commit`` / ``abort`` of an id that is no int64."""
        if self.server_side_codes:
            return ApiError(
                CODE_INVALID_PARAMETER,
                f"parse job id failed: {parse_error}: invalid parameter[expected=int64 jobId][actual={raw}]",
            )
        return self.bad_job_id(parse_error)

    # -- create --

    def too_many_jobs(self) -> ApiError:
        """Back-pressure: the unfinished-job limit is reached (checked before any job is recorded)."""
        if self.server_side_codes:
            return ApiError(
                CODE_IMPORT_FAILED_SERVER_SIDE, TOO_MANY_JOBS_MESSAGE + IMPORT_FAILED_SERVER_SIDE_SUFFIX
            )
        return ApiError(CODE_IMPORT_FAILED, TOO_MANY_JOBS_MESSAGE + IMPORT_FAILED_SUFFIX)

    def auto_commit(self, options: dict[str, str]) -> bool:
        """``options.auto_commit`` read as this generation reads it.

        2.x: anything but a case-insensitive ``"false"`` is auto-commit (and 2.4 / 2.5 have no 2PC at all:
        the option is ignored). 3.x refuses any other value while decoding the request (code 1801).
        """
        raw = options.get("auto_commit")
        if raw is None or not self.two_phase:
            return True
        if self.strict_auto_commit and raw not in ("true", "false"):
            raise ApiError(
                CODE_INCORRECT_PARAMETER_FORMAT,
                f"{JSON_FORMAT_MESSAGE}, error: "
                f'options.auto_commit must be one of "true" or "false", got "{raw}"',
            )
        return raw.strip().lower() != "false"


_MILVUS_2_4_0 = Generation(
    name=FLAVOUR_2_4_0,
    success_code=200,
    describe_route=False,
    two_phase=False,
    create_time=False,
    protobuf_file_names=True,
    file_retry_state=False,
    strict_auto_commit=False,
    server_side_codes=False,
)
# Each later generation as what it changed from the one before.
_MILVUS_2_5 = replace(
    _MILVUS_2_4_0, name=FLAVOUR_2_5, success_code=0, describe_route=True, protobuf_file_names=False
)
_MILVUS_2_6 = replace(_MILVUS_2_5, name=FLAVOUR_2_6, two_phase=True, create_time=True)
_MILVUS_3_X = replace(
    _MILVUS_2_6, name=FLAVOUR_3_X, file_retry_state=True, strict_auto_commit=True, server_side_codes=True
)

GENERATIONS: dict[str, Generation] = {
    known.name: known for known in (_MILVUS_2_4_0, _MILVUS_2_5, _MILVUS_2_6, _MILVUS_3_X)
}


def generation(flavour: str) -> Generation:
    """The :class:`Generation` a ``--flavour`` value names.

    :raises ValueError: an unknown flavour.
    """
    try:
        return GENERATIONS[flavour]
    except KeyError:
        raise ValueError(f"unknown flavour {flavour!r}; expected one of {', '.join(GENERATIONS)}") from None
