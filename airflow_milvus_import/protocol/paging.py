"""Listing jobs, without I/O: the ``list`` request, its pages and when a listing ends (:class:`ListPager`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from airflow_milvus_import.exceptions import MilvusImportResponseError
from airflow_milvus_import.models import ImportJobSummary
from airflow_milvus_import.protocol.requests import ApiRequest, build_request, text_argument
from airflow_milvus_import.protocol.routes import ROUTE_LIST

if TYPE_CHECKING:
    from airflow_milvus_import.protocol.settings import ConnectionSettings

__all__ = [
    "ZILLIZ_PAGE_SIZE",
    "ListPager",
    "build_list_request",
    "is_last_list_page",
    "parse_list_page",
]

#: Zilliz Cloud's largest page for ``list``
ZILLIZ_PAGE_SIZE: Final = 100


def build_list_request(
    settings: ConnectionSettings,
    collection_name: str | None = None,
    *,
    db_name: str | None = None,
    page: int | None = None,
    page_size: int | None = None,
) -> ApiRequest:
    """``list``: jobs, optionally of one collection; ``page`` (from 1) and ``page_size`` on Zilliz Cloud."""
    collection = text_argument("collection_name", collection_name, required=False)
    database = text_argument("db_name", db_name, required=False)
    body: dict[str, Any] = {}
    if collection:
        body["collectionName"] = collection
    if settings.is_zilliz:
        body["pageSize"] = page_size or ZILLIZ_PAGE_SIZE
        body["currentPage"] = page or 1
    return build_request(settings, ROUTE_LIST, body, db_name=database, collection_name=collection)


def parse_list_page(
    request: ApiRequest, data: Mapping[str, Any]
) -> tuple[list[Mapping[str, Any]], int | None]:
    """The records of a ``list`` answer and, on Zilliz Cloud, the total ``count``."""
    records = data.get("records")
    if records is None:
        records = data.get("tasks")  # legacy Zilliz v1 examples
    if records is None:
        records = []
    if not isinstance(records, list):
        raise request.error(
            MilvusImportResponseError,
            "got an unreadable answer",
            f"'records' is a {type(records).__name__}, not a list",
            code=0,
            http_status=200,
        )
    count = data.get("count")
    total: int | None = None
    if isinstance(count, (int, float, str)) and not isinstance(count, bool):
        try:
            total = int(float(count))
        except ValueError:
            total = None
    return [record for record in records if isinstance(record, Mapping)], total


def is_last_list_page(
    settings: ConnectionSettings,
    data: Mapping[str, Any],
    records: Sequence[Any],
    *,
    page_size: int = ZILLIZ_PAGE_SIZE,
) -> bool:
    """
    Whether a ``list`` answer is the last page: always on self-hosted Milvus (no paging); on Zilliz Cloud
    when the page is empty or short.

    A page is short when it holds fewer records than were asked for, or than the ``pageSize`` the answer
    reports when the server pages by less. ``count`` alone never ends a listing: the Zilliz docs call it
    the "total number of records listed in this response", which a server may mean per page, and stopping
    on it would drop every page after a full first one.

    :param page_size: the ``pageSize`` the request asked for.
    """
    if not settings.is_zilliz or not records:
        return True
    size = page_size
    reported = data.get("pageSize")
    if isinstance(reported, (int, float, str)) and not isinstance(reported, bool):
        try:
            served = int(float(reported))
        except ValueError:
            served = 0
        if 0 < served < size:
            size = served
    return len(records) < size


@dataclass(eq=False)
class ListPager:
    """
    The requests of one listing and the jobs they gave, without I/O.

    Self-hosted Milvus answers in one request. Zilliz Cloud pages (``pageSize`` 100, ``currentPage`` 1..);
    the listing stops on an empty or short page (see :func:`is_last_list_page`), on a page with no job not
    seen before (a server that ignores paging, or pages shifted by new jobs), and after ``max_pages``;
    never on ``count`` alone (the Zilliz docs call it the number of records "in this response").

    :param settings: where and how to ask.
    :param collection_name: only jobs of this collection.
    :param db_name: the database (default: the connection's).
    :param page_size: the ``pageSize`` to ask Zilliz Cloud for.
    :param max_pages: the most pages one listing reads.
    """

    settings: ConnectionSettings
    collection_name: str | None = None
    _: KW_ONLY
    db_name: str | None = None
    page_size: int = ZILLIZ_PAGE_SIZE
    max_pages: int = 10_000
    #: pages read so far
    pages: int = field(default=0, init=False)
    #: the total ``count`` the last page reported, if any
    total: int | None = field(default=None, init=False)
    _done: bool = field(default=False, init=False, repr=False)
    _seen: set[str] = field(default_factory=set, init=False, repr=False)
    _jobs: list[ImportJobSummary] = field(default_factory=list, init=False, repr=False)

    @property
    def jobs(self) -> list[ImportJobSummary]:
        """The jobs collected so far, in the server's order, each once."""
        return list(self._jobs)

    @property
    def done(self) -> bool:
        return self._done

    def next_request(self) -> ApiRequest | None:
        """The next page's request, or None when the listing is complete."""
        if self._done:
            return None
        if self.settings.is_zilliz:
            return build_list_request(
                self.settings,
                self.collection_name,
                db_name=self.db_name,
                page=self.pages + 1,
                page_size=self.page_size,
            )
        return build_list_request(self.settings, self.collection_name, db_name=self.db_name)

    def feed(self, request: ApiRequest, data: Mapping[str, Any]) -> None:
        """Take one page's answer (the envelope's ``data``)."""
        records, total = parse_list_page(request, data)
        self.pages += 1
        if total is not None:
            self.total = total
        new = 0
        for record in records:
            job = ImportJobSummary.from_wire(record)
            key = job.job_id or json.dumps(record, sort_keys=True, default=str)
            if key in self._seen:
                continue
            self._seen.add(key)
            self._jobs.append(job)
            new += 1
        if (
            new == 0
            or is_last_list_page(self.settings, data, records, page_size=self.page_size)
            or self.pages >= self.max_pages
        ):
            self._done = True
