"""Asset watchers on many collections of one endpoint: requests per poll interval, ours vs a poll per watcher.

Starts the local import server with N collections (default 100). Each side watches every collection for
``--seconds`` at ``--interval``; meanwhile K jobs (default 10, one per collection of the first K) are created
and finish 1-4 s later, so that each side has something to report:

* *baseline*: N watcher loops that each ``list`` their own collection once per interval over their own
  HTTP client and ``describe`` each job they see finish (one poll loop per trigger, like the dbt Cloud,
  Airbyte and Databricks triggers);
* *ours*: N real ``MilvusImportJobEventTrigger.run()`` loops in one event loop, as the triggerer runs them
  (one shared ``list`` of the endpoint per interval; a finished job costs one ``list`` of its collection
  and one ``describe``).

Both must report each job exactly once. The last line holds requests per poll interval on each side.

    python benchmarks/event_watchers.py [--watchers 100] [--jobs 10] [--interval 1] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    IMPORT_ROUTES,
    ROW_FILE,
    local_server,
    machine,
    post_json,
    quiet_airflow_logs,
    scratch_dir,
    stop_cleanly_on_sigterm,
    table,
    use_connection,
)

CONN_ID = "bench_event_watchers"


def collections(count: int) -> list[str]:
    return [f"watched_{number:03d}" for number in range(count)]


async def create_jobs(url: str, names: list[str]) -> list[str]:
    """One job per collection, ending 1-4 s after it was created."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        ids = []
        for position, name in enumerate(names):
            body = {
                "collectionName": name,
                "files": [[ROW_FILE]],
                "options": {"local.duration": f"{1 + position % 4}"},
            }
            payload = (await client.post(url + IMPORT_ROUTES + "create", json=body)).json()
            ids.append(str(payload["data"]["jobId"]))
        return ids


async def baseline_watcher(
    url: str, collection: str, interval: float, stop: asyncio.Event, reported: list[str]
) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:
        seen: set[str] | None = None
        while not stop.is_set():
            body = {"collectionName": collection}
            records = (await client.post(url + IMPORT_ROUTES + "list", json=body)).json()["data"]["records"]
            finished = {r["jobId"] for r in records if r["state"] in ("Completed", "Failed")}
            if seen is None:
                seen = set(finished)
            for job_id in sorted(finished - seen):
                await client.post(url + IMPORT_ROUTES + "describe", json={"jobId": job_id})
                reported.append(job_id)
            seen |= finished
            with_timeout = asyncio.create_task(stop.wait())
            await asyncio.wait([with_timeout], timeout=interval)
            with_timeout.cancel()


async def ours_watcher(collection: str, interval: float, stop: asyncio.Event, reported: list[str]) -> None:
    from airflow_milvus_import.triggers.milvus_import_event import (
        MemoryStateStore,
        MilvusImportJobEventTrigger,
    )

    trigger = MilvusImportJobEventTrigger(
        collection_name=collection, milvus_import_conn_id=CONN_ID, poll_interval=interval
    )
    trigger.asset_state_store = MemoryStateStore()  # type: ignore[assignment]

    async def consume() -> None:
        async for event in trigger.run():
            reported.append(event.payload["job_id"])

    task = asyncio.create_task(consume())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def side(
    name: str, server: Any, names: list[str], jobs: int, interval: float, seconds: float
) -> dict[str, Any]:
    stop = asyncio.Event()
    reported: list[str] = []
    if name == "ours":
        watchers = [ours_watcher(collection, interval, stop, reported) for collection in names]
    else:
        watchers = [
            baseline_watcher(server.url, collection, interval, stop, reported) for collection in names
        ]
    running = [asyncio.create_task(watcher) for watcher in watchers]
    await asyncio.sleep(interval * 2)  # every watcher has taken its baseline
    await asyncio.to_thread(server.reset_stats)
    started = time.monotonic()
    created = await create_jobs(server.url, names[:jobs])
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
    stats = await asyncio.to_thread(lambda: server.stats)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*running, return_exceptions=True)
    requests = {
        route.rsplit("/", 1)[-1]: count for route, count in stats["requests"].items() if "/import/" in route
    }
    requests.pop("create", None)
    return {
        "side": name,
        "right": sorted(reported) == sorted(created),
        "reported": len(reported),
        "created": len(created),
        "requests": requests,
        "total": sum(requests.values()),
        "intervals": elapsed / interval,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    quiet_airflow_logs(scratch_dir("event-watchers") / "airflow.log")
    names = collections(args.watchers)
    with local_server() as server:
        for name in names:
            post_json(
                server.url + "/v2/vectordb/collections/create", {"collectionName": name, "dimension": 4}
            )
        use_connection(CONN_ID, server.url)
        results = [
            asyncio.run(side(label, server, names, args.jobs, args.interval, args.seconds))
            for label in ("baseline", "ours")
        ]
    print(machine())
    rows = []
    for result in results:
        per_interval = result["total"] / result["intervals"]
        routes = ", ".join(f"{count:,} {route}" for route, count in sorted(result["requests"].items()))
        rows.append(
            [
                result["side"],
                f"{result['reported']}/{result['created']}" + ("" if result["right"] else " WRONG"),
                f"{result['total']:,} ({routes})",
                f"{per_interval:.1f}",
            ]
        )
    print(table(["side", "jobs reported once", "requests", "requests / interval"], rows))
    baseline, ours = results
    ratio = baseline["total"] / max(1, ours["total"])
    print(
        f"RESULT event_watchers watchers={args.watchers} jobs={args.jobs} interval={args.interval:g}s: "
        f"requests per interval ours {ours['total'] / ours['intervals']:.1f} vs baseline "
        f"{baseline['total'] / baseline['intervals']:.1f} (1/{ratio:.0f}); outcomes right: "
        f"{'all' if all(r['right'] for r in results) else 'NOT ALL'}"
    )


if __name__ == "__main__":
    main()
