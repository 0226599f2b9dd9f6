"""airflow_milvus_import.protocol.paging, tested directly: list pages and when a listing ends (no I/O)."""

from __future__ import annotations

from airflow_milvus_import import protocol
from airflow_milvus_import.models import ImportJobState
from tests.unit.protocol.wire import MILVUS, ZILLIZ

# ---- list paging ----------------------------------------------------------------------------------------


def page(ids: list[str], count: int | None = None) -> dict[str, object]:
    data: dict[str, object] = {"records": [{"jobId": job_id, "state": "Completed"} for job_id in ids]}
    if count is not None:
        data["count"] = count
    return data


def run_pager(pager: protocol.ListPager, pages: list[dict[str, object]]) -> list[int]:
    asked: list[int] = []
    answers = iter(pages)
    while (request := pager.next_request()) is not None:
        asked.append(int(request.body.get("currentPage", 0)))
        pager.feed(request, next(answers))
    return asked


def test_milvus_lists_in_one_request() -> None:
    pager = protocol.ListPager(MILVUS, "docs")
    assert run_pager(pager, [page(["1", "2"])]) == [0]
    assert [job.job_id for job in pager.jobs] == ["1", "2"]
    assert pager.jobs[0].state is ImportJobState.COMPLETED


def test_zilliz_pages_until_count() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 5), page(["c", "d"], 5), page(["e"], 5)]) == [1, 2, 3]
    assert [job.job_id for job in pager.jobs] == ["a", "b", "c", "d", "e"]


def test_zilliz_stops_on_empty_page() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 9), page([], 9)]) == [1, 2]
    assert len(pager.jobs) == 2


def test_zilliz_stops_on_a_repeated_page() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 6), page(["a", "b"], 6)]) == [1, 2]
    assert [job.job_id for job in pager.jobs] == ["a", "b"]


def test_zilliz_without_count_stops_on_a_short_page() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"]), page(["c"])]) == [1, 2]


def test_zilliz_shifted_pages_are_deduplicated() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 4), page(["b", "c"], 4), page(["d"], 4)]) == [1, 2, 3]
    assert [job.job_id for job in pager.jobs] == ["a", "b", "c", "d"]


def test_zilliz_count_per_page_never_ends_a_listing() -> None:
    # the Zilliz docs call count the "total number of records listed in this response"
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 2), page(["c", "d"], 2), page(["e"], 1)]) == [1, 2, 3]
    assert len(pager.jobs) == 5


def test_zilliz_full_last_page_ends_on_the_empty_one() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 4), page(["c", "d"], 4), page([], 4)]) == [1, 2, 3]


def test_zilliz_short_page_ends_even_when_count_says_more() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a"], 10)]) == [1]


def test_a_server_paging_by_less_is_followed_by_its_page_size() -> None:
    listing = protocol.build_list_request(ZILLIZ, page=1, page_size=100)
    records = [{"jobId": str(number)} for number in range(30)]
    assert not protocol.is_last_list_page(ZILLIZ, {"pageSize": 30}, records, page_size=100)
    assert protocol.is_last_list_page(ZILLIZ, {"pageSize": 30}, records[:29], page_size=100)
    assert protocol.is_last_list_page(ZILLIZ, {"pageSize": "junk"}, records, page_size=100)
    assert protocol.is_last_list_page(ZILLIZ, {}, [], page_size=100)
    assert protocol.is_last_list_page(MILVUS, {}, records, page_size=30)
    assert listing.body["pageSize"] == 100


def test_pager_max_pages() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=1, max_pages=2)
    assert run_pager(pager, [page(["a"], 10), page(["b"], 10)]) == [1, 2]
    assert pager.done
