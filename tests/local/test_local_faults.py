"""Fault injection: 5xx, dropped connections, latency, rate limits; counted, and repeatable with a seed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import requests
from local_helpers import IMPORT_PATH

if TYPE_CHECKING:
    from conftest import ServerFactory

    from airflow_milvus_import.local import LocalImportServer

pytestmark = pytest.mark.integration

LIST = IMPORT_PATH + "list"


def _outcome(server: LocalImportServer) -> str:
    """One request on a fresh connection: its HTTP status, or ``drop``."""
    try:
        response = requests.post(server.url + LIST, json={}, timeout=30, headers={"Connection": "close"})
    except requests.ConnectionError:
        return "drop"
    return str(response.status_code)


def test_fail_rate_answers_5xx_with_json_or_html(server_factory: ServerFactory) -> None:
    server = server_factory(fail_rate=1.0, seed=7)
    kinds = set()
    for _ in range(30):
        response = requests.post(server.url + LIST, json={}, timeout=30)
        assert response.status_code in (500, 502, 503, 504)
        if response.headers["content-type"].startswith("application/json"):
            assert response.json()["code"] != 0
            kinds.add("json")
        else:
            assert response.headers["content-type"].startswith("text/html")
            assert "<html>" in response.text
            kinds.add("html")
    assert kinds == {"json", "html"}
    stats = server.stats
    assert stats["faults"]["fail"] == 30
    assert stats["requests"][LIST] == 30
    assert stats["requests_total"] == 30, "the stats route itself is not counted"


def test_drop_rate_closes_connections_without_an_answer(server_factory: ServerFactory) -> None:
    server = server_factory(drop_rate=1.0)
    for _ in range(5):
        with pytest.raises(requests.ConnectionError):
            requests.post(server.url + LIST, json={}, timeout=30)
    assert server.stats["faults"]["drop"] == 5


def test_a_seed_makes_the_faults_repeatable(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    def run(seed: int) -> list[str]:
        root = tmp_path_factory.mktemp("seeded")
        server = server_factory(
            fail_rate=0.3, drop_rate=0.1, seed=seed, data_dir=root / "d", bucket=root / "b"
        )
        outcomes = [_outcome(server) for _ in range(60)]
        stats = server.stats
        assert stats["faults"]["drop"] == outcomes.count("drop")
        assert stats["faults"]["fail"] == sum(o.startswith("5") for o in outcomes)
        server.stop()
        return outcomes

    first, again, other = run(42), run(42), run(43)
    assert first == again
    assert first != other
    assert {"200", "drop"} <= set(first)
    assert any(o.startswith("5") for o in first)


def test_latency(server_factory: ServerFactory) -> None:
    server = server_factory(latency_ms=300)
    started = time.monotonic()
    for _ in range(3):
        assert requests.post(server.url + LIST, json={}, timeout=30).status_code == 200
    assert time.monotonic() - started >= 0.9
    assert server.stats["faults"]["delayed"] == 3


def test_latency_on_a_share_of_requests(server_factory: ServerFactory) -> None:
    server = server_factory(latency_ms=800, latency_rate=0.5, seed=1)
    delays = []
    for _ in range(12):
        started = time.monotonic()
        requests.post(server.url + LIST, json={}, timeout=30)
        delays.append(time.monotonic() - started)
    delayed = server.stats["faults"]["delayed"]
    assert 0 < delayed < 12
    assert sum(d >= 0.8 for d in delays) == delayed


def test_rate_limit_answers_429_with_retry_after(server_factory: ServerFactory) -> None:
    server = server_factory(rate_limit=5)
    statuses = []
    retry_after = None
    for _ in range(40):
        response = requests.post(server.url + LIST, json={}, timeout=30)
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry_after = response.headers["Retry-After"]
            assert response.json()["code"] != 0
            assert "rate limit exceeded" in response.json()["message"]
    assert statuses[:5] == [200] * 5, "a burst of one second's worth passes"
    assert 429 in statuses
    assert retry_after is not None
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert server.stats["faults"]["rate_limited"] == statuses.count(429)
    time.sleep(int(retry_after))
    assert requests.post(server.url + LIST, json={}, timeout=30).status_code == 200


def test_private_routes_are_never_faulted_and_stats_reset(server_factory: ServerFactory) -> None:
    server = server_factory(fail_rate=1.0)
    health = requests.get(server.url + "/_local/health", timeout=30).json()
    assert health["status"] == "ok"
    assert health["milvus_uri"] == server.milvus_uri
    requests.post(server.url + LIST, json={}, timeout=30)
    assert server.stats["faults"]["fail"] == 1
    server.reset_stats()
    assert server.stats["faults"]["fail"] == 0
    assert server.stats["requests_total"] == 0


def test_faults_are_off_by_default(shared_server: LocalImportServer) -> None:
    before = shared_server.stats["faults"]
    for _ in range(20):
        assert requests.post(shared_server.url + LIST, json={}, timeout=30).status_code == 200
    assert shared_server.stats["faults"] == before
