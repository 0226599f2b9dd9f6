"""Per-file details of 500 import jobs: the list operator against a sequential loop of pymilvus calls.

Starts the local import server (127.0.0.1), creates N finished import jobs, then times, on the same server:

* ours: ``MilvusListImportJobsOperator(include_details=True).execute()`` (one ``list``, then one progress
  call per job on ``max_concurrency`` threads (the operator's default, 16) over the hook's one reused
  ``requests`` session);
* pymilvus: ``list_import_jobs`` then ``get_import_progress`` for each job, one after the other (what a
  script or a PythonOperator using the official client does).

Both must report the same jobs and files. On loopback the CPU of the two clients and the server (on a 2-core
VM, about 1 ms per request in the client, 0.5 ms in the server) is what limits both sides; a real Milvus or
Zilliz Cloud endpoint is a network round trip away, which the server's
``latency_ms`` adds to every request (the delay a cloud region's round trip costs; new connections'
handshakes are not delayed, which understates what pymilvus' connection per call costs on a real network).
It runs once with ``--latency-ms`` and once at 0 ms; the last line holds both ratios. ``--https`` serves
HTTPS (a throwaway CA both clients trust), as Zilliz Cloud always is: pymilvus then pays a TLS handshake per
call, as it would against a real endpoint.

    python benchmarks/list_details.py [--jobs 500] [--latency-ms 30] [--rounds 2] [--max-concurrency 16]
                                      [--https]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    COLLECTION,
    create_jobs,
    local_server,
    machine,
    quiet_airflow_logs,
    scratch_dir,
    stop_cleanly_on_sigterm,
    table,
    tls_files,
    use_connection,
)

CONN_ID = "milvus_list_bench"


class _TaskInstance:
    """The one thing the operator's execute() uses of its context: ``ti.xcom_push``."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def ours(max_concurrency: int) -> tuple[float, list[tuple[str, str, str]]]:
    from airflow_milvus_import.operators.milvus_import import MilvusListImportJobsOperator

    operator = MilvusListImportJobsOperator(
        task_id="list_details",
        collection_name=COLLECTION,
        milvus_import_conn_id=CONN_ID,
        max_concurrency=max_concurrency,
    )
    ti = _TaskInstance()
    started = time.perf_counter()
    operator.execute({"ti": ti})  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    files = [(str(r["job_id"]), str(r["file_name"]), str(r["state"])) for r in ti.xcom["file_details"]]
    return elapsed, sorted(files)


def operator_default_concurrency() -> int:
    """The list operator's default ``max_concurrency`` (read from its signature, so the two cannot drift)."""
    from airflow_milvus_import.operators.milvus_import import MilvusListImportJobsOperator

    default = inspect.signature(MilvusListImportJobsOperator.__init__).parameters["max_concurrency"].default
    return int(default)


def pymilvus_loop(url: str, verify: Any = True) -> tuple[float, list[tuple[str, str, str]]]:
    from pymilvus.bulk_writer import get_import_progress, list_import_jobs

    started = time.perf_counter()
    listed = list_import_jobs(url=url, collection_name=COLLECTION, verify=verify).json()["data"]["records"]
    files = []
    for record in listed:
        job_id = str(record["jobId"])
        data = get_import_progress(url=url, job_id=job_id, verify=verify).json()["data"]
        files.extend((job_id, str(detail["fileName"]), str(detail["state"])) for detail in data["details"])
    return time.perf_counter() - started, sorted(files)


def wait_until_finished(url: str, count: int, verify: Any = True) -> None:
    from pymilvus.bulk_writer import list_import_jobs

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        answer = list_import_jobs(url=url, collection_name=COLLECTION, verify=verify)
        records = answer.json()["data"]["records"]
        if len(records) >= count and all(record["state"] == "Completed" for record in records):
            return
        time.sleep(0.5)
    raise RuntimeError("the jobs did not finish")


def measure(
    jobs: int, latency_ms: int, rounds: int, max_concurrency: int, tls: tuple[str, str, str] | None
) -> dict[str, float]:
    server_kwargs: dict[str, Any] = {"latency_ms": latency_ms}
    verify: Any = True
    if tls is not None:
        verify, server_kwargs["ssl_certfile"], server_kwargs["ssl_keyfile"] = tls
    with local_server(**server_kwargs) as server:
        use_connection(CONN_ID, server.url, **({"verify": verify} if tls else {}))
        asyncio.run(create_jobs(server.url, [(0.0, None)] * jobs, concurrency=32, verify=verify))
        wait_until_finished(server.url, jobs, verify)
        times: dict[str, list[float]] = {"ours": [], "pymilvus": []}
        for _ in range(rounds):
            theirs_time, theirs_files = pymilvus_loop(server.url, verify)
            ours_time, ours_files = ours(max_concurrency)
            if ours_files != theirs_files or len(ours_files) != jobs:
                raise SystemExit(f"the two sides disagree: {len(ours_files)} vs {len(theirs_files)} files")
            times["ours"].append(ours_time)
            times["pymilvus"].append(theirs_time)
            print(
                f"[latency {latency_ms} ms] ours {ours_time:.2f} s, pymilvus {theirs_time:.2f} s", flush=True
            )
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument(
        "--latency-ms", type=int, default=30, help="added to every request (0 skips that run)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    default_concurrency = operator_default_concurrency()
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=default_concurrency,
        help=f"the operator's (default: its own default, {default_concurrency})",
    )
    parser.add_argument("--https", action="store_true", help="serve HTTPS (a throwaway CA both trust)")
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    work = scratch_dir("ami-bench-")
    quiet_airflow_logs(work / "airflow.log")
    tls = tls_files(work) if args.https else None
    transport = "HTTPS" if args.https else "HTTP"
    print(
        f"{machine()}; {args.jobs} jobs with one file each; operator max_concurrency={args.max_concurrency}; "
        f"{transport}",
        flush=True,
    )
    latencies = [args.latency_ms, 0] if args.latency_ms else [0]
    results = {
        latency: measure(args.jobs, latency, args.rounds, args.max_concurrency, tls) for latency in latencies
    }
    rows = [
        [
            f"{latency} ms",
            f"{times['ours']:.2f} s",
            f"{times['pymilvus']:.2f} s",
            f"{times['pymilvus'] / times['ours']:.1f}x",
        ]
        for latency, times in results.items()
    ]
    print()
    print(table(["latency per request", "ours (operator)", "pymilvus loop", "ratio"], rows))
    parts = [
        f"{times['pymilvus'] / times['ours']:.1f}x at {latency} ms latency per request"
        for latency, times in results.items()
    ]
    print(
        f"RESULT list_details {args.jobs} jobs over {transport}, operator max_concurrency="
        f"{args.max_concurrency}: "
        f"pymilvus loop time / operator time = {'; '.join(parts)}"
    )


if __name__ == "__main__":
    main()
