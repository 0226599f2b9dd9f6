"""Sequential progress calls per second: our hook against pymilvus' ``get_import_progress``, same job.

Starts the local import server twice, over HTTPS (a certificate for 127.0.0.1 from a throwaway CA made with
``trustme``; both clients are told to trust that CA, nothing is left unverified) and over plain HTTP, creates
one finished import job on each, and times N sequential ``describe`` calls per client, interleaved in rounds:

* ours, sync: ``MilvusImportHook.get_import_progress`` (one ``requests.Session``: keep-alive, one TLS
  handshake);
* ours, async: ``await MilvusImportHook.aget_import_progress`` (one ``httpx.AsyncClient``);
* pymilvus: ``pymilvus.bulk_writer.get_import_progress`` (``requests.post`` per call: a new connection, and
  over HTTPS a new TLS handshake, each time).

Every client must get the same answer (state Completed, the job's one file). The last line holds the ratios
(ours sync / pymilvus calls per second) for HTTPS and plain HTTP.

    python benchmarks/hook_calls.py [--calls 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
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

if TYPE_CHECKING:
    from collections.abc import Callable


def rate(call: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - started)


def measure(
    label: str, server_kwargs: dict[str, Any], ca_path: str | None, calls: int, rounds: int
) -> dict[str, Any]:
    from pymilvus.bulk_writer import get_import_progress

    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with local_server(**server_kwargs) as server:
        conn_id = f"milvus_calls_{label.lower()}"
        extra = {"verify": ca_path} if ca_path else {}
        use_connection(conn_id, server.url, **extra)
        verify: Any = ca_path if ca_path else True
        (job,) = asyncio.run(create_jobs(server.url, [(0.0, None)], verify=verify))
        time.sleep(1.0)  # the import finishes
        sync_hook = MilvusImportHook(conn_id)
        async_hook = MilvusImportHook(conn_id)
        loop = asyncio.new_event_loop()

        def ours_sync() -> Any:
            return sync_hook.get_import_progress(job.job_id)

        def ours_async() -> Any:
            return loop.run_until_complete(async_hook.aget_import_progress(job.job_id))

        def theirs() -> Any:
            return get_import_progress(url=server.url, job_id=job.job_id, verify=verify).json()["data"]

        # Same answer from every client, and warm (imports, the first connection) before timing.
        mine, mine_async, pymilvus_data = ours_sync(), ours_async(), theirs()
        assert mine.state.value == mine_async.state.value == pymilvus_data["state"] == "Completed"
        assert len(mine.details) == len(pymilvus_data["details"]) == 1
        rates: dict[str, list[float]] = {"ours (sync)": [], "ours (async)": [], "pymilvus": []}
        for _ in range(rounds):
            rates["pymilvus"].append(rate(theirs, calls))
            rates["ours (sync)"].append(rate(ours_sync, calls))
            rates["ours (async)"].append(rate(ours_async, calls))
        loop.run_until_complete(async_hook.aclose())
        loop.close()
        sync_hook.close()
    result = {name: statistics.median(values) for name, values in rates.items()}
    # The machine's speed drifts between rounds; within a round the clients ran back to back, so the
    # ratios are taken per round and their median reported.
    for mode in ("sync", "async"):
        ratios = [
            ours / theirs for ours, theirs in zip(rates[f"ours ({mode})"], rates["pymilvus"], strict=True)
        ]
        result[f"ratio ({mode})"] = statistics.median(ratios)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (the median is reported)")
    args = parser.parse_args()
    stop_cleanly_on_sigterm()

    work = scratch_dir("ami-bench-tls-")
    quiet_airflow_logs(work / "airflow.log")
    ca_path, cert_path, key_path = tls_files(work)

    print(
        f"{machine()}; {args.rounds} rounds x {args.calls} sequential describe calls per client", flush=True
    )
    results = {
        "HTTPS": measure(
            "HTTPS",
            {"ssl_certfile": cert_path, "ssl_keyfile": key_path},
            ca_path,
            args.calls,
            args.rounds,
        ),
        "HTTP": measure("HTTP", {}, None, args.calls, args.rounds),
    }
    rows = []
    for transport, rates in results.items():
        rows.append(
            [
                transport,
                f"{rates['ours (sync)']:.0f}/s",
                f"{rates['ours (async)']:.0f}/s",
                f"{rates['pymilvus']:.0f}/s",
                f"{rates['ratio (sync)']:.1f}x",
                f"{rates['ratio (async)']:.1f}x",
            ]
        )
    print()
    print(
        table(["transport", "ours sync", "ours async", "pymilvus", "sync/pymilvus", "async/pymilvus"], rows)
    )
    https, http = results["HTTPS"], results["HTTP"]
    print(
        f"RESULT hook_calls: ours/pymilvus progress calls per second over HTTPS = "
        f"{https['ratio (sync)']:.1f}x (sync), {https['ratio (async)']:.1f}x (async); over plain HTTP = "
        f"{http['ratio (sync)']:.1f}x (sync), {http['ratio (async)']:.1f}x (async) "
        f"(median of per-round ratios)"
    )


if __name__ == "__main__":
    main()
