"""
The "Milvus import job" extra link of the import operator and the sensor.

* Zilliz Cloud: the Zilliz Cloud console. Its pages live under
  ``https://cloud.zilliz.com/orgs/{org_id}/projects/{project_id}/...`` (cluster pages add
  ``/clusters/{cluster_id}``, a collection's ``/collections/{name}``; import jobs are listed on the
  project's *Jobs* page, per https://docs.zilliz.com/docs/job-center). The connection knows neither the
  organization nor the project, and no public material documents a page for one job, so without a template
  the link opens the console's home (``https://cloud.zilliz.com``; ``.com.cn`` for the China region) and
  a ``console_link`` template gives a deep link, e.g.
  ``https://cloud.zilliz.com/orgs/org-xxx/projects/proj-xxx/clusters/{cluster_id}/collections/{collection_name}``.
* Self-hosted Milvus: the connection extra ``console_link``, a URL template such as an Attu page
  ``http://attu:3000/#/databases/{db_name}/{collection_name}/overview``. Without it the link is empty.

Placeholders: ``{job_id}``, ``{collection_name}``, ``{db_name}``, ``{cluster_id}``, ``{volume_name}`` (the
Zilliz Cloud volume an import read from); nothing else (in particular no credential) can be put in a link.
Values are URL-quoted; a template using a placeholder with no value (``{volume_name}`` for an import that
used no volume) gives no link.

Airflow 3 computes an operator's links on the worker when the task finishes a try (``finalize`` in the
Task SDK's task runner) and stores each in XCom (key ``_link_MilvusImportJobLink``); the API server only
reads that XCom. So the link reads the connection the task used (from Airflow: no call to Milvus), and an
empty string means "no link" (no job yet, or nothing configured).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

    from airflow_milvus_import.protocol import ConnectionSettings


@runtime_checkable
class ImportJobSource(Protocol):
    """A task that can say which import jobs its try worked on (what the console link reads)."""

    def import_job_ids(self) -> list[str]:
        """The jobs the try created or waited for, as strings (empty: none yet)."""
        ...

    def known_import_jobs(self) -> list[dict[str, Any]]:
        """The jobs' last known progress in this process, as ``ImportJobProgress.to_dict()``."""
        ...


__all__ = [
    "LINK_PLACEHOLDERS",
    "ZILLIZ_CONSOLE_URL",
    "ZILLIZ_CONSOLE_URL_CN",
    "MilvusImportJobLink",
    "console_url",
    "render_console_link",
]

log = logging.getLogger(__name__)

ZILLIZ_CONSOLE_URL: Final = "https://cloud.zilliz.com"
ZILLIZ_CONSOLE_URL_CN: Final = "https://cloud.zilliz.com.cn"
#: the placeholders a ``console_link`` template may use
LINK_PLACEHOLDERS: Final = frozenset({"job_id", "collection_name", "db_name", "cluster_id", "volume_name"})

_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")


def render_console_link(template: str, values: Mapping[str, str | None]) -> str:
    """
    Fill a ``console_link`` template.

    Only ``{name}`` placeholders from :data:`LINK_PLACEHOLDERS` are allowed (no format specs, attributes
    or indexes: a template cannot reach into objects). Values are URL-quoted.

    :returns: the URL, or ``""`` when a placeholder the template uses has no value.
    :raises ValueError: an unknown placeholder, a stray brace, or a result that is not an http(s) URL.
    """
    used = _PLACEHOLDER.findall(template)
    unknown = sorted({name for name in used if name not in LINK_PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"console_link uses unknown placeholder(s) {', '.join('{' + name + '}' for name in unknown)}; "
            f"allowed: {', '.join('{' + name + '}' for name in sorted(LINK_PLACEHOLDERS))}"
        )
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        raise ValueError("console_link has an unmatched '{' or '}'")
    if any(not values.get(name) for name in used):
        return ""
    url = _PLACEHOLDER.sub(lambda match: urllib.parse.quote(str(values[match.group(1)]), safe=""), template)
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ValueError("console_link must be an http:// or https:// URL")
    return url


def console_url(
    settings: ConnectionSettings,
    *,
    job_id: str | None,
    collection_name: str | None = None,
    db_name: str | None = None,
    volume_name: str | None = None,
) -> str:
    """
    The console link for a job, from the connection's settings; ``""`` when there is no job or no link.

    :param volume_name: the Zilliz Cloud volume the job imports from, for a template's ``{volume_name}``.
    :raises ValueError: a malformed ``console_link`` template.
    """
    if not job_id:
        return ""
    values = {
        "job_id": job_id,
        "collection_name": collection_name,
        "db_name": db_name or settings.db_name or "default",
        "cluster_id": settings.cluster_id,
        "volume_name": volume_name,
    }
    if settings.console_link:
        return render_console_link(settings.console_link, values)
    if settings.is_zilliz:
        host = urllib.parse.urlsplit(settings.base_url).hostname or ""
        return ZILLIZ_CONSOLE_URL_CN if host.endswith(".cn") else ZILLIZ_CONSOLE_URL
    return ""


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        if text and "{{" not in text and "{%" not in text:
            return text
    return None


def _job_ids(operator: Any) -> list[str]:
    """
    The jobs a task created (the import operator's job, also the one it pushed to XCom ``job_id``) or
    waited for (the sensor's rendered ``job_id``), as its
    :class:`ImportJobSource` interface says. Airflow computes links in
    the process that ran the try, on the task object that ran it, so this is what the try did: no XCom
    round trip is needed.
    """
    if not isinstance(operator, ImportJobSource):
        return []
    return [job_id for job_id in operator.import_job_ids() if _text(job_id)]


def _collection_of(operator: Any, job_ids: list[str]) -> str | None:
    named = _text(getattr(operator, "collection_name", None))
    if named:
        return named
    jobs = operator.known_import_jobs() if isinstance(operator, ImportJobSource) else []
    names = {job.get("collection_name") for job in jobs if job.get("job_id") in job_ids}
    names.discard(None)
    names.discard("")
    return str(names.pop()) if len(names) == 1 else None


class MilvusImportJobLink(BaseOperatorLink):
    """
    Link to the import job in a console: Zilliz Cloud's, or one the connection's ``console_link`` names.

    Empty when the task has no job (yet), when it waits for several jobs and the template needs one
    ``{job_id}``, or when a self-hosted connection has no ``console_link``.
    """

    name = "Milvus import job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow_milvus_import.exceptions import MilvusImportError

        job_ids = _job_ids(operator)
        if not job_ids:
            return ""
        conn_id = _text(getattr(operator, "milvus_import_conn_id", None))
        if conn_id is None:
            return ""
        try:
            settings = _settings(conn_id)
            if len(job_ids) > 1:
                return _several_jobs_url(settings, operator, job_ids)
            return console_url(
                settings,
                job_id=job_ids[0],
                collection_name=_collection_of(operator, job_ids),
                db_name=_text(getattr(operator, "db_name", None)),
                volume_name=_text(getattr(operator, "volume_name", None)),
            )
        except (MilvusImportError, ValueError) as error:
            log.warning("No %r link for connection %r: %s", self.name, conn_id, error)
            return ""


def _several_jobs_url(settings: ConnectionSettings, operator: Any, job_ids: list[str]) -> str:
    """Several jobs: the Zilliz console, or a template that does not need one ``{job_id}``."""
    template = settings.console_link
    if template is None:
        return console_url(settings, job_id=job_ids[0]) if settings.is_zilliz else ""
    if "{job_id}" in template:
        return ""
    return render_console_link(
        template,
        {
            "collection_name": _collection_of(operator, job_ids),
            "db_name": _text(getattr(operator, "db_name", None)) or settings.db_name or "default",
            "cluster_id": settings.cluster_id,
            "volume_name": _text(getattr(operator, "volume_name", None)),
        },
    )


def _settings(conn_id: str) -> ConnectionSettings:
    """The connection's settings, read from Airflow (never a call to Milvus; the token stays inside)."""
    from airflow.providers.common.compat.sdk import BaseHook

    from airflow_milvus_import.protocol import settings_from_connection

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    return settings_from_connection(
        conn_id, conn.host, conn.port, conn.schema, conn.login, conn.password, extra
    )
