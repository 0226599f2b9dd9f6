"""
Airflow pieces the tests use whose home differs between the supported versions (2.11, 3.0-3.3).

The package keeps its version differences in ``airflow_milvus_import.compat``; these are the tests' own
(Airflow internals a test inspects, which no user code touches).
"""

from __future__ import annotations

from typing import Any


def dagbag_class() -> Any:
    """``DagBag`` (``airflow.dag_processing.dagbag`` on 3.1+, ``airflow.models.dagbag`` before)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]
    return DagBag


#: Python source that binds ``DagBag`` on any supported Airflow, for tests running code in a subprocess
DAGBAG_IMPORT_SOURCE = (
    "try:\n"
    "    from airflow.dag_processing.dagbag import DagBag\n"
    "except ImportError:\n"
    "    from airflow.models.dagbag import DagBag\n"
)


def xcom_model() -> Any:
    """The XCom table's model: ``XComModel`` (3.x) or ``BaseXCom`` (2.11)."""
    try:
        from airflow.models.xcom import XComModel
    except ImportError:
        from airflow.models.xcom import BaseXCom as XComModel  # type: ignore[attr-defined,no-redef]
    return XComModel


def xcom_value(row: Any) -> Any:
    """What a downstream task receives for a stored XCom row."""
    try:
        from airflow.sdk.serde import deserialize
    except ImportError:  # Airflow 2.11 stores JSON (bytes on some databases)
        value = row.value
        if isinstance(value, (bytes, bytearray, memoryview)):
            from airflow.models.xcom import XCom

            return XCom.deserialize_value(row)
        return value
    return deserialize(row.value)


def serde() -> tuple[Any, Any]:
    """Airflow's ``(serialize, deserialize)``: ``airflow.sdk.serde``, or ``airflow.serialization.serde``."""
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:
        from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]
    return serialize, deserialize


def import_string(path: str) -> Any:
    """Airflow's ``import_string``."""
    try:
        from airflow.sdk._shared.module_loading import import_string as sdk_import_string
    except ImportError:
        from airflow.utils.module_loading import import_string as core_import_string

        return core_import_string(path)
    return sdk_import_string(path)


def secrets_masker_functions() -> tuple[Any, str, str]:
    """
    The module whose functions ``airflow_milvus_import.compat`` calls to register secrets with Airflow's
    masker (looked up as compat does, at call time), the name of its sync function and of the one a
    coroutine uses (``amask_secret`` on 3.2+; the sync one before), for tests that spy on them.
    """
    import importlib

    try:
        import airflow.sdk.log as sdk_log
    except ImportError:
        sdk_log = None
    if sdk_log is not None and hasattr(sdk_log, "amask_secret"):
        return sdk_log, "mask_secret", "amask_secret"
    if sdk_log is not None and hasattr(sdk_log, "mask_secret"):
        return sdk_log, "mask_secret", "mask_secret"
    from airflow_milvus_import import compat

    return importlib.import_module(compat._mask_secret_function().__module__), "mask_secret", "mask_secret"


def redact(text: str) -> Any:
    """Airflow's ``redact`` (the secrets masker's view of ``text``)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact as shared_redact
    except ImportError:
        try:
            from airflow.sdk.execution_time.secrets_masker import redact as sdk_redact
        except ImportError:
            from airflow.utils.log.secrets_masker import redact as core_redact

            return core_redact(text)
        return sdk_redact(text)
    return shared_redact(text)


def without_airflows_mask_requests(text: str) -> str:
    """
    ``text`` without the lines in which Airflow 3.0's task supervisor logs, at DEBUG level, the request a
    task sends to register a secret with the masker (``msg=MaskSecret(value='...')``, the secret in clear):
    Airflow's own log line about masking, seen only at DEBUG (the README's support table says so). Every
    other line is kept, so a secret our code logs is still found.
    """
    return "\n".join(line for line in text.splitlines() if "MaskSecret(value=" not in line)


def latest_dag_run(dag_id: str) -> Any:
    """The newest run of ``dag_id`` in the metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        ).first()
        session.expunge_all()
        return run


def is_task_timeout_escaping_dag_test(error: BaseException) -> bool:
    """
    Airflow 2.11's ``AirflowTaskTimeout`` is a ``BaseException``, which its ``dag.test()`` lets out after
    the task has failed (and after ``on_kill``); Airflow 3 records the failure and returns the run.
    """
    return type(error).__name__ == "AirflowTaskTimeout" and not isinstance(error, Exception)


def skip_if_dag_test_cannot_reschedule_twice() -> None:
    """
    Airflow 3.0's in-process ``dag.test()`` hands a rescheduled sensor its first reschedule date as a
    string (``TaskRescheduleStartDate.model_construct`` skips validation; a real worker decodes it), so
    the sensor base class fails its second check with a TypeError. Real workers are not affected.
    """
    from airflow_milvus_import.compat import AIRFLOW_VERSION

    if AIRFLOW_VERSION[:2] == (3, 0):
        import pytest

        pytest.skip("Airflow 3.0's dag.test() gives a rescheduled sensor a string date (real workers do not)")


def skip_if_dag_test_resumes_a_retry_into_the_old_event(deferrable: bool) -> None:
    """
    Airflow 3.0's in-process ``dag.test()`` starts the retry of a task that failed after deferring in its
    ``execute_complete`` again, with the previous try's trigger event (seen: try 2 re-raised try 1's
    timeout without running ``execute``). Not checked on a real 3.0 scheduler and worker.
    """
    from airflow_milvus_import.compat import AIRFLOW_VERSION

    if deferrable and AIRFLOW_VERSION[:2] == (3, 0):
        import pytest

        pytest.skip("Airflow 3.0's dag.test() resumes a deferred task's retry into the old trigger event")
