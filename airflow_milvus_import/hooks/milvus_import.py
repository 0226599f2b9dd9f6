"""MilvusImportHook: the Airflow connection and every REST call to Milvus / Zilliz Cloud import jobs."""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import tenacity
from airflow.providers.common.compat.sdk import BaseHook

from airflow_milvus_import import compat, protocol, transport
from airflow_milvus_import.exceptions import (
    MilvusImportConnectionError,
    MilvusImportError,
    MilvusImportJobLimitError,
    MilvusImportRateLimitError,
    MilvusImportRequestError,
    MilvusImportRouteNotFoundError,
)
from airflow_milvus_import.models import ImportJobProgress, ImportJobSummary

if TYPE_CHECKING:
    import httpx
    import requests

    from airflow_milvus_import.protocol import ApiRequest, ConnectionSettings

__all__ = ["MilvusImportHook"]


def _mask(secrets: Iterable[str]) -> None:
    for secret in secrets:
        if secret:
            compat.mask_secret(secret)


async def _amask(secrets: Iterable[str]) -> None:
    for secret in secrets:
        if secret:
            await compat.amask_secret(secret)


def _extra_of(conn: Any) -> dict[str, Any]:
    """A connection's extras as a dict (parsed here: no masking round trip, works on every Airflow 3)."""
    raw = getattr(conn, "extra", None)
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        raise MilvusImportRequestError(
            f"Milvus import connection '{conn.conn_id}': Extra is not valid JSON"
        ) from None
    if not isinstance(value, dict):
        raise MilvusImportRequestError(
            f"Milvus import connection '{conn.conn_id}': Extra must be a JSON object"
        )
    return value


def _clean(error: BaseException) -> BaseException:
    """Drop the exception chain so a log shows one clear error, not wrapped transport tracebacks."""
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


def _no_route_answered(missing: MilvusImportRouteNotFoundError | None) -> BaseException:
    """The error of a progress lookup no route answered: the last route's 404, without its chain."""
    assert missing is not None, "a progress lookup tries at least one route"
    return _clean(missing)


class MilvusImportHook(BaseHook):
    """
    Talks to the Milvus / Zilliz Cloud bulk-import REST API (``/v2/vectordb/jobs/import/*``).

    One class for both deployments: a connection with the extra ``cluster_id`` is Zilliz Cloud, one
    without is self-hosted Milvus. The sync methods share one ``requests.Session``; the async ones one
    ``httpx.AsyncClient`` (created on first use, closed by :meth:`aclose`). Every call has a timeout
    (30 s by default) and is retried with exponential backoff and jitter on transient failures only
    (connection errors, timeouts, 5xx, 408, 429 honouring ``Retry-After``); ``create`` is retried only
    where the server cannot have started a job (no connection made, 429, 503, and the server's job-count
    back-pressure, waiting ``retry_max_wait`` between tries, then
    :class:`~airflow_milvus_import.exceptions.MilvusImportJobLimitError`). The token is registered with
    Airflow's secrets masker and never appears in a repr, a log line or an exception message.

    Every request, sync or async, first takes a token from its endpoint's rate budget
    (:class:`~airflow_milvus_import.transport.RateBudget`), shared by every hook and trigger of the process:
    10 requests/s on Zilliz Cloud and no limit on self-hosted Milvus unless the connection's extra
    ``rate_limit`` says otherwise (``0`` or ``"none"``: no limit). A rate-limited answer (429, honouring
    ``Retry-After``) pauses the whole budget. Async callers wait without blocking the event loop.

    :param milvus_import_conn_id: the Airflow connection (type ``milvus_import``).
    :param timeout: seconds per request (connect, then read); None: the connection's ``timeout`` or 30.
    :param max_retries: retries after the first attempt; None: the connection's ``max_retries`` or 3;
        0: a single attempt.
    :param retry_min_wait: the first backoff in seconds (it doubles, with jitter, up to ``retry_max_wait``).
    :param retry_max_wait: the longest backoff in seconds.
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds.
    """

    conn_name_attr = "milvus_import_conn_id"
    default_conn_name = "milvus_import_default"
    conn_type = "milvus_import"
    hook_name = "Milvus Import (Milvus / Zilliz Cloud)"

    retry_min_wait: float = 0.5
    retry_max_wait: float = 10.0
    retry_after_cap: float = 60.0

    #: base URL -> the progress route that answered there (shared by every hook of the process)
    _progress_route_by_url: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        milvus_import_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_min_wait: float | None = None,
        retry_max_wait: float | None = None,
        retry_after_cap: float | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        if not isinstance(milvus_import_conn_id, str) or not milvus_import_conn_id.strip():
            raise MilvusImportRequestError("Milvus import: milvus_import_conn_id must be a non-empty string")
        self.milvus_import_conn_id = milvus_import_conn_id
        self._timeout = timeout
        self._max_retries = max_retries
        if retry_min_wait is not None:
            self.retry_min_wait = retry_min_wait
        if retry_max_wait is not None:
            self.retry_max_wait = retry_max_wait
        if retry_after_cap is not None:
            self.retry_after_cap = retry_after_cap
        self._settings: ConnectionSettings | None = None
        self._rate_budget: transport.RateBudget | None = None
        self._progress_route: str | None = None
        self._session: requests.Session | None = None
        self._session_environment: dict[str, tuple[dict[str, str], bool | str]] = {}
        self._async_client: httpx.AsyncClient | None = None
        self._async_client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        where = f", base_url={self._settings.base_url!r}" if self._settings is not None else ""
        return f"{type(self).__name__}(milvus_import_conn_id={self.milvus_import_conn_id!r}{where})"

    # -----------------------------------------------------------------------------------------------------
    # The connection form (Airflow 3.0 / 3.1; 3.2+ reads conn-fields from get_provider_info())
    # -----------------------------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels, placeholders and hidden fields of the connection form."""
        from airflow_milvus_import import CONNECTION_FIELD_BEHAVIOUR

        behaviour = CONNECTION_FIELD_BEHAVIOUR
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form as WTForms fields; {} where WTForms is not installed."""
        try:
            from wtforms import BooleanField, IntegerField, StringField
            from wtforms.validators import NumberRange, Optional
        except ImportError:
            return {}
        try:
            from flask_babel import lazy_gettext
        except ImportError:

            def lazy_gettext(text: str) -> str:
                return text

        widget_kwargs: dict[str, Any] = {}
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

            widget_kwargs["widget"] = BS3TextFieldWidget()
        except ImportError:
            pass
        from airflow_milvus_import import CONNECTION_FIELDS

        fields: dict[str, Any] = {}
        for name, spec in CONNECTION_FIELDS.items():
            label = lazy_gettext(spec["label"])
            description = spec.get("description", "")
            kind = spec["schema"]["type"]
            kind = kind[0] if isinstance(kind, list) else kind
            if kind == "integer":
                fields[name] = IntegerField(
                    label,
                    validators=[Optional(), NumberRange(min=0)],
                    description=description,
                    **widget_kwargs,
                )
            elif kind == "boolean":
                fields[name] = BooleanField(label, description=description)
            else:
                fields[name] = StringField(label, description=description, **widget_kwargs)
        return fields

    # -----------------------------------------------------------------------------------------------------
    # Settings
    # -----------------------------------------------------------------------------------------------------

    def _settings_from(self, conn: Any) -> ConnectionSettings:
        settings = protocol.settings_from_connection(
            getattr(conn, "conn_id", None) or self.milvus_import_conn_id,
            conn.host,
            conn.port,
            conn.schema,
            conn.login,
            conn.password,
            _extra_of(conn),
            timeout=self._timeout,
            max_retries=self._max_retries,
        )
        return settings

    def get_settings(self) -> ConnectionSettings:
        """The connection's settings (read once per hook), with the token registered with the masker."""
        if self._settings is None:
            conn = self.get_connection(self.milvus_import_conn_id)
            settings = self._settings_from(conn)
            _mask(settings.secrets)
            if isinstance(settings.verify, str):
                # a bad bundle is the connection's error, raised here rather than at the first request
                transport.ca_context(settings.conn_id, settings.verify)
            self._settings = settings
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """:meth:`get_settings` without blocking the event loop (``await BaseHook.aget_connection``)."""
        if self._settings is None:
            conn = await compat.aget_connection(self, self.milvus_import_conn_id)
            settings = self._settings_from(conn)
            await _amask(settings.secrets)
            if isinstance(settings.verify, str):
                # loading a CA bundle takes tens of milliseconds: not on the event loop
                await asyncio.to_thread(transport.ca_context, settings.conn_id, settings.verify)
            self._settings = settings
        return self._settings

    def use_settings(self, settings: ConnectionSettings) -> None:
        """
        Use connection settings already read instead of reading the connection (the shared poller reads
        a connection once for many triggers, and makes single-attempt calls, retrying them itself).
        """
        self._settings = settings
        self._rate_budget = None

    def _budget(self, settings: ConnectionSettings) -> transport.RateBudget:
        """The rate budget of the endpoint (process-wide; looked up once per hook)."""
        if self._rate_budget is None:
            self._rate_budget = transport.rate_budget_for(settings)
        return self._rate_budget

    def _rate_limited(self, settings: ConnectionSettings, error: MilvusImportRateLimitError) -> None:
        """Pause the endpoint's budget for every caller of the process: the server said slow down."""
        asked = error.retry_after if error.retry_after is not None else transport.DEFAULT_PAUSE_SECONDS
        pause = min(asked, self.retry_after_cap, transport.SHARED_PAUSE_CAP_SECONDS)
        if pause > 0:
            self._budget(settings).pause(pause)
            self.log.warning(
                "%s is rate limited: pausing every request to it from this process for %.1f s",
                settings.base_url,
                pause,
            )

    def get_conn(self) -> requests.Session:
        """The ``requests.Session`` the sync calls share."""
        return self._get_session()

    # -----------------------------------------------------------------------------------------------------
    # Retries
    # -----------------------------------------------------------------------------------------------------

    def _backoff(self, retry_state: tenacity.RetryCallState) -> float:
        attempt = retry_state.attempt_number
        base = min(self.retry_max_wait, self.retry_min_wait * (2 ** (attempt - 1)))
        delay = base / 2 + random.uniform(0, base / 2)
        error = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if isinstance(error, MilvusImportRateLimitError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.retry_after_cap))
        if isinstance(error, MilvusImportJobLimitError):
            # Room for a new job comes when running jobs end (seconds to minutes), not in milliseconds.
            delay = max(delay, self.retry_max_wait / 2 + random.uniform(0, self.retry_max_wait / 2))
        return float(delay)

    def _retry_kwargs(self, request: ApiRequest, attempts: int) -> dict[str, Any]:
        def log_retry(retry_state: tenacity.RetryCallState) -> None:
            error = retry_state.outcome.exception() if retry_state.outcome is not None else None
            sleep = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
            self.log.warning(
                "%s; retry %d of %d in %.1f s", error, retry_state.attempt_number, attempts - 1, sleep
            )

        return {
            "stop": tenacity.stop_after_attempt(attempts),
            "wait": self._backoff,
            "retry": tenacity.retry_if_exception(lambda error: protocol.is_retryable(request, error)),
            "before_sleep": log_retry,
            "reraise": True,
        }

    # -----------------------------------------------------------------------------------------------------
    # Sync transport
    # -----------------------------------------------------------------------------------------------------

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            # The environment (proxies, CA bundle) is read once per endpoint (_environment), not on every
            # request: requests scans all of os.environ per call otherwise, and would let a ~/.netrc entry
            # replace the Bearer token.
            session.trust_env = False
            session.cookies = transport.NoCookies()  # type: ignore[assignment]
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
        return self._session

    def _environment(self, settings: ConnectionSettings) -> tuple[dict[str, str], bool | str]:
        """The proxies (``HTTPS_PROXY``, ``NO_PROXY``) and CA bundle requests would read for the endpoint."""
        cached = self._session_environment.get(settings.base_url)
        if cached is None:
            from requests.utils import get_environ_proxies

            verify: bool | str = settings.verify
            if verify is True:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            cached = (dict(get_environ_proxies(settings.base_url)), verify)
            self._session_environment[settings.base_url] = cached
        return cached

    def _send(self, request: ApiRequest, settings: ConnectionSettings) -> dict[str, Any]:
        """One attempt: send, read at most ``max_response_bytes`` + 1, parse."""
        import requests

        session = self._get_session()
        proxies, verify = self._environment(settings)
        self._budget(settings).acquire(not_after=transport.request_not_after())
        failure: BaseException | None = None
        status = 0
        headers: Mapping[str, str] = {}
        body = b""
        try:
            # Prepared here and sent as is: the session has no headers, auth or cookies of its own to merge
            # in (that merge is a third of requests' per-call work).
            prepared = requests.Request(
                "POST", request.url, data=request.content(), headers=dict(request.headers)
            ).prepare()
            response = session.send(
                prepared,
                timeout=(settings.timeout, settings.timeout),
                verify=verify,
                proxies=proxies,
                allow_redirects=False,
                stream=True,
            )
            try:
                status = response.status_code
                headers = response.headers
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_content(transport.READ_CHUNK_BYTES):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > settings.max_response_bytes:
                        break
                body = b"".join(chunks)
            finally:
                response.close()
        except requests.exceptions.RequestException as exc:
            failure = exc
        if failure is not None:
            raise self._transport_error(request, settings, failure)
        return self._parse(request, settings, status, headers, body)

    def _parse(
        self,
        request: ApiRequest,
        settings: ConnectionSettings,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        try:
            return protocol.parse_response(
                request, status, headers, body, max_bytes=settings.max_response_bytes
            )
        except MilvusImportRateLimitError as error:
            self._rate_limited(settings, error)
            raise

    def _transport_error(
        self, request: ApiRequest, settings: ConnectionSettings, failure: BaseException
    ) -> MilvusImportConnectionError:
        reason, sent = transport.describe_failure(failure, settings.timeout)
        error = protocol.connection_error(request, reason, request_sent=sent is not False)
        _clean(error)
        return error

    def _call(
        self, request: ApiRequest, settings: ConnectionSettings, *, max_retries: int | None = None
    ) -> dict[str, Any]:
        attempts = 1 + (settings.max_retries if max_retries is None else max_retries)
        error: MilvusImportError
        try:
            if attempts <= 1:  # one attempt: no retry machinery (the triggers' polls, Test button)
                return self._send(request, settings)
            return tenacity.Retrying(**self._retry_kwargs(request, attempts))(self._send, request, settings)
        except MilvusImportError as exc:
            error = exc
        raise _clean(error) from None

    # -----------------------------------------------------------------------------------------------------
    # Async transport
    # -----------------------------------------------------------------------------------------------------

    def _async_client_ready(self) -> httpx.AsyncClient | None:
        client = self._async_client
        if client is None or client.is_closed or self._async_client_loop is not asyncio.get_running_loop():
            return None  # an httpx client is bound to the loop it first ran in: a new loop gets a new one
        return client

    async def _aget_async_client(self, settings: ConnectionSettings) -> httpx.AsyncClient:
        client = self._async_client_ready()
        if client is not None:
            return client
        import httpx

        verify: bool | ssl.SSLContext = False  # plain HTTP: no TLS, so no CA bundle to load
        if settings.base_url.startswith("https://"):
            # Loading a CA bundle takes tens of milliseconds: a worker thread does it, not the event loop.
            verify = await asyncio.to_thread(transport.async_ssl_context, settings)
        client = self._async_client_ready()
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(settings.timeout),
                verify=verify,
                follow_redirects=False,
                cookies=transport.NoCookies(),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            )
            self._async_client = client
            self._async_client_loop = asyncio.get_running_loop()
        return client

    async def _asend(self, request: ApiRequest, settings: ConnectionSettings) -> dict[str, Any]:
        import httpx

        client = await self._aget_async_client(settings)
        await self._budget(settings).aacquire(not_after=transport.request_not_after())
        failure: BaseException | None = None
        status = 0
        headers: Mapping[str, str] = {}
        body = b""
        try:
            async with client.stream(
                "POST", request.url, content=request.content(), headers=dict(request.headers)
            ) as response:
                status = response.status_code
                headers = response.headers
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes(transport.READ_CHUNK_BYTES):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > settings.max_response_bytes:
                        break
                body = b"".join(chunks)
        except httpx.HTTPError as exc:
            failure = exc
        except ssl.SSLError as exc:  # pragma: no cover - httpx wraps these, but be safe
            failure = exc
        if failure is not None:
            raise self._transport_error(request, settings, failure)
        return self._parse(request, settings, status, headers, body)

    async def _acall(
        self, request: ApiRequest, settings: ConnectionSettings, *, max_retries: int | None = None
    ) -> dict[str, Any]:
        attempts = 1 + (settings.max_retries if max_retries is None else max_retries)
        error: MilvusImportError
        try:
            if attempts <= 1:  # one attempt: no retry machinery (the triggers' polls)
                return await self._asend(request, settings)
            retrying = tenacity.AsyncRetrying(**self._retry_kwargs(request, attempts))
            result: dict[str, Any] = await retrying(self._asend, request, settings)
            return result
        except MilvusImportError as exc:
            error = exc
        raise _clean(error) from None

    # -----------------------------------------------------------------------------------------------------
    # Progress routes: describe, falling back (and remembering) on a 404
    # -----------------------------------------------------------------------------------------------------

    def _route_order(self, settings: ConnectionSettings) -> list[str]:
        routes = list(protocol.progress_routes(settings))
        known = self._progress_route or self._progress_route_by_url.get(settings.base_url)
        if known in routes:
            routes.remove(known)
            routes.insert(0, known)
        return routes

    def _progress_requests(
        self, settings: ConnectionSettings, job_id: str, db_name: str | None
    ) -> Iterator[tuple[str, ApiRequest]]:
        """A job's progress request on each route in turn, the route that answered here before first."""
        normalized = protocol.normalize_job_id(job_id)
        for route in self._route_order(settings):
            yield route, protocol.build_progress_request(settings, normalized, route=route, db_name=db_name)

    def _progress_answered(
        self, settings: ConnectionSettings, route: str, request: ApiRequest, data: Mapping[str, Any]
    ) -> ImportJobProgress:
        """The progress a route answered (remembered as the route to ask first from now on)."""
        self._remember_route(settings, route)
        return ImportJobProgress.from_wire(data, job_id=request.job_id)

    def _remember_route(self, settings: ConnectionSettings, route: str) -> None:
        if self._progress_route != route:
            if route != protocol.ROUTE_DESCRIBE:
                self.log.info(
                    "%s answers job progress on '%s'; using it from now on", settings.base_url, route
                )
            self._progress_route = route
        type(self)._progress_route_by_url[settings.base_url] = route

    # -----------------------------------------------------------------------------------------------------
    # Public API (sync)
    # -----------------------------------------------------------------------------------------------------

    def create_import_job(
        self,
        collection_name: str,
        files: Sequence[Sequence[str]] | Sequence[str] | None = None,
        *,
        db_name: str | None = None,
        partition_name: str | None = None,
        options: Mapping[str, Any] | None = None,
        object_urls: Sequence[Sequence[str]] | Sequence[str] | None = None,
        storage_credentials: Mapping[str, str] | None = None,
        volume_name: str | None = None,
    ) -> str:
        """
        Start an import job and return its id.

        :param collection_name: the target collection.
        :param files: the data: a list of lists (each inner list one file, or the column files of one
            set), or a flat list of paths, as ``BulkWriter.batch_files`` gives. On Milvus, paths in its
            bucket; on Zilliz Cloud, object URLs.
        :param db_name: the database (default: the connection's ``db_name``, else the server's default).
        :param partition_name: the target partition.
        :param options: server options, e.g. ``{"timeout": "300s", "auto_commit": False}``; numbers and
            booleans become strings.
        :param object_urls: Zilliz Cloud object URLs (instead of ``files``).
        :param storage_credentials: Zilliz Cloud: ``access_key``, ``secret_key`` and ``token`` for the
            bucket (take them from an Airflow connection, never from plain task arguments).
        :param volume_name: Zilliz Cloud: import from this volume (Zilliz-managed storage); ``files`` are
            then paths inside it (``"folder/1.parquet"``), sent as ``dataPaths`` with ``volumeName`` and no
            ``object_urls`` or credentials.
        :raises MilvusImportRequestError: invalid arguments, before anything is sent.
        :raises MilvusImportJobLimitError: the server's limit of running jobs was still reached after the
            retries (nothing was created).
        """
        settings = self.get_settings()
        request = protocol.build_create_request(
            settings,
            collection_name,
            files,
            db_name=db_name,
            partition_name=partition_name,
            options=options,
            object_urls=object_urls,
            storage_credentials=storage_credentials,
            volume_name=volume_name,
        )
        _mask(request.secrets)
        data = self._call(request, settings)
        job_id = protocol.parse_create_response(request, data)
        self.log.info(
            "Created Milvus import job %s for collection '%s' at %s%s",
            job_id,
            request.collection_name,
            settings.base_url,
            f" from volume '{request.body['volumeName']}'" if "volumeName" in request.body else "",
        )
        return job_id

    def get_import_progress(self, job_id: str, *, db_name: str | None = None) -> ImportJobProgress:
        """
        A job's state, progress and per-file details (``describe``; ``get_progress`` / ``getProgress``
        where the server only has those, remembered for later calls).

        :raises MilvusImportNotFoundError: no such job.
        """
        settings = self.get_settings()
        missing: MilvusImportRouteNotFoundError | None = None
        for route, request in self._progress_requests(settings, job_id, db_name):
            try:
                data = self._call(request, settings)
            except MilvusImportRouteNotFoundError as exc:
                missing = exc
            else:
                return self._progress_answered(settings, route, request, data)
        raise _no_route_answered(missing) from None

    def list_import_jobs(
        self, collection_name: str | None = None, *, db_name: str | None = None
    ) -> list[ImportJobSummary]:
        """Import jobs (of one collection, if given); on Zilliz Cloud every page is fetched."""
        settings = self.get_settings()
        pager = protocol.ListPager(settings, collection_name, db_name=db_name)
        while (request := pager.next_request()) is not None:
            pager.feed(request, self._call(request, settings))
        return pager.jobs

    def commit_import_job(self, job_id: str, *, db_name: str | None = None) -> None:
        """Commit a two-phase job (created with ``options={"auto_commit": False}``; newest Milvus)."""
        settings = self.get_settings()
        request = protocol.build_commit_request(settings, job_id, db_name=db_name)
        self._call(request, settings)
        self.log.info("Committed Milvus import job %s", request.job_id)

    def abort_import_job(self, job_id: str, *, db_name: str | None = None) -> None:
        """Abort a two-phase job that is not committed yet (newest Milvus)."""
        settings = self.get_settings()
        request = protocol.build_abort_request(settings, job_id, db_name=db_name)
        self._call(request, settings)
        self.log.info("Aborted Milvus import job %s", request.job_id)

    def test_connection(self) -> tuple[bool, str]:
        """
        The UI's Test button: one ``list`` call, no retries. Never raises.

        :return: ``(True, "Connected to ... (Milvus); N import jobs visible")`` or ``(False, reason)``.
        """
        settings: ConnectionSettings | None = None
        try:
            settings = self.get_settings()
            request = protocol.build_list_request(settings)
            data = self._call(request, settings, max_retries=0)
            records, total = protocol.parse_list_page(request, data)
            count = total if total is not None else len(records)
            noun = "import job" if count == 1 else "import jobs"
            return True, f"Connected to {settings.base_url} ({settings.deployment}); {count} {noun} visible"
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            for secret in settings.secrets if settings is not None else ():
                message = message.replace(secret, "***")
            return False, message

    def close(self) -> None:
        """Close the shared ``requests.Session`` (the async client is closed by :meth:`aclose`)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> MilvusImportHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -----------------------------------------------------------------------------------------------------
    # Public API (async)
    # -----------------------------------------------------------------------------------------------------

    async def aget_import_progress(self, job_id: str, *, db_name: str | None = None) -> ImportJobProgress:
        """The async twin of :meth:`get_import_progress` (one reused ``httpx.AsyncClient``)."""
        settings = await self.aget_settings()
        missing: MilvusImportRouteNotFoundError | None = None
        for route, request in self._progress_requests(settings, job_id, db_name):
            try:
                data = await self._acall(request, settings)
            except MilvusImportRouteNotFoundError as exc:
                missing = exc
            else:
                return self._progress_answered(settings, route, request, data)
        raise _no_route_answered(missing) from None

    async def alist_import_jobs(
        self, collection_name: str | None = None, *, db_name: str | None = None
    ) -> list[ImportJobSummary]:
        """The async twin of :meth:`list_import_jobs`."""
        pager = protocol.ListPager(await self.aget_settings(), collection_name, db_name=db_name)
        while await self.afeed_list_page(pager):
            pass
        return pager.jobs

    async def afeed_list_page(self, pager: protocol.ListPager) -> bool:
        """
        Fetch the next page of ``pager``'s listing (one request) and feed it to the pager, which decides
        when the listing is complete (:attr:`protocol.ListPager.done`). A failed request leaves the pager
        as it was, so the call can be retried.

        :return: False when the listing was already complete (nothing was sent).
        """
        request = pager.next_request()
        if request is None:
            return False
        pager.feed(request, await self._acall(request, await self.aget_settings()))
        return True

    async def aabort_import_job(self, job_id: str, *, db_name: str | None = None) -> None:
        """The async twin of :meth:`abort_import_job` (for a trigger's ``on_kill``)."""
        settings = await self.aget_settings()
        request = protocol.build_abort_request(settings, job_id, db_name=db_name)
        await self._acall(request, settings)
        self.log.info("Aborted Milvus import job %s", request.job_id)

    @property
    def async_client_closed(self) -> bool:
        """Whether no ``httpx.AsyncClient`` is open: none made yet, or closed by :meth:`aclose`."""
        client = self._async_client
        return client is None or client.is_closed

    async def aclose(self) -> None:
        """Close the shared ``httpx.AsyncClient`` (and the sync session)."""
        client, self._async_client = self._async_client, None
        self._async_client_loop = None
        if client is not None and not client.is_closed:
            await client.aclose()
        self.close()

    async def __aenter__(self) -> MilvusImportHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
