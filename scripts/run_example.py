"""
The main job: run the local import pipeline example with Airflow for real, then say what happened.

1. A fresh, isolated Airflow home (``.airflow-home/``, wiped at the start of every run, so runs repeat):
   SQLite metadata database migrated with ``airflow db migrate``, DAGs folder ``example_dags/``.
2. The local import server (``LocalImportServer``: the import REST API on Milvus Lite) on a free port of
   127.0.0.1, its bucket and data inside the Airflow home.
3. ``example_milvus_import_local_pipeline`` run by ``dag.test()`` in a child process (the deferred import
   task's trigger runs in-line there), configured through ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` variables.
   Airflow's output goes to ``.airflow-home/airflow.log``; this script prints the task progress.
4. A summary: tasks, the import job, files, rows, the row count verified in Milvus, times. Then it stops
   the server. Exit status 0 only when the run succeeded and the row count matched.

Usage: ``python scripts/run_example.py [--rows N] [--files N] [--dim N] [--home DIR]``; normally
through ``bash scripts/run-example.sh``, which prepares the virtualenv first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_milvus_import_local_pipeline"
DAGS_FOLDER = REPO_ROOT / "example_dags"
#: the lines of Airflow's log this script echoes while the DAG runs
_ECHO = (
    (re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)"), "task {0} started"),
    (re.compile(r"\[DAG TEST\] running trigger in line"), "deferred: the trigger is polling the import job"),
    (
        re.compile(r"(job \S+ \(collection '[^']*'\): \w+ \d+% \|.*?)(?:\s+\[[\w.]+\])?(?:\s+\w+=\S+)*$"),
        "{0}",
    ),
    (re.compile(r"Task failed|Error running task|ERROR - Task failed"), "a task failed (see the log)"),
)


def _print(message: str = "") -> None:
    print(message, flush=True)


def _step(message: str) -> None:
    _print(f"==> {message}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=20_000, help="rows to generate and import (20000)")
    parser.add_argument("--files", type=int, default=4, help="Parquet files to write (4)")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension (64)")
    parser.add_argument("--collection", default="example_embeddings", help="collection name")
    parser.add_argument(
        "--home",
        type=Path,
        default=REPO_ROOT / ".airflow-home",
        help="Airflow home, wiped first (.airflow-home)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--conf", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child:
        if args.rows < 1 or args.files < 1 or args.files > args.rows:
            parser.error("--rows and --files must be at least 1, and --files at most --rows")
        if not 2 <= args.dim <= 4096:
            parser.error("--dim must be between 2 and 4096")
    return args


def airflow_environment(home: Path) -> dict[str, str]:
    """The environment of every Airflow process of the run: isolated from any other Airflow set-up."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and key != "AIRFLOW_HOME"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_logged(command: list[str], env: dict[str, str], log_path: Path, what: str) -> None:
    """Run a command with its output appended to the log; raise with the log's tail if it fails."""
    with log_path.open("a") as log:
        log.write(f"\n===== {what}: {' '.join(command)}\n")
        log.flush()
        completed = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {completed.returncode}); see {log_path}:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_dag_in_child(env: dict[str, str], log_path: Path, result_path: Path, conf: dict[str, Any]) -> int:
    """Run the DAG in a child process, echoing its progress lines from the log; return its exit status."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--result",
        str(result_path),
        "--conf",
        json.dumps(conf),
    ]
    with log_path.open("a") as log:
        log.write(f"\n===== dag.test: {' '.join(command)}\n")
        log.flush()
        offset = log_path.stat().st_size
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                status = child.poll()
                offset = _echo_new_lines(log_path, offset)
                if status is not None:
                    return status
                time.sleep(0.3)
        except BaseException:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
            raise


def _echo_new_lines(log_path: Path, offset: int) -> int:
    with log_path.open("rb") as log:
        log.seek(offset)
        chunk = log.read()
    end = chunk.rfind(b"\n")
    if end < 0:
        return offset
    for raw in chunk[: end + 1].decode(errors="replace").splitlines():
        for pattern, template in _ECHO:
            match = pattern.search(raw)
            if match:
                _print("    " + template.format(*match.groups()))
                break
    return offset + end + 1


def child_main(result_path: Path, conf: dict[str, Any]) -> int:
    """In the child: parse the DAGs folder, dag.test() the pipeline, write what happened as JSON."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        result_path.write_text(json.dumps({"state": "import_errors", "import_errors": bag.import_errors}))
        return 2
    dag = bag.get_dag(DAG_ID)
    if dag is None:
        result_path.write_text(json.dumps({"state": "missing", "error": f"no DAG {DAG_ID} in {DAGS_FOLDER}"}))
        return 2
    started = time.monotonic()
    run = dag.test(run_conf=conf)
    seconds = time.monotonic() - started

    tasks: list[dict[str, Any]] = []
    xcoms: dict[str, Any] = {}
    with create_session() as session:
        for ti in session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)
        ):
            duration = (
                (ti.end_date - ti.start_date).total_seconds() if ti.end_date and ti.start_date else None
            )
            tasks.append(
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": str(ti.state),
                    "seconds": duration,
                }
            )
        for row in session.scalars(
            select(XComModel).where(XComModel.dag_id == DAG_ID, XComModel.run_id == run.run_id)
        ):
            # serde, as a downstream task reads it (XComModel.deserialize_value turns "123" into 123)
            xcoms[f"{row.task_id}.{row.key}"] = deserialize(row.value)
    order = list(dag.task_dict)
    tasks.sort(
        key=lambda item: (order.index(item["task_id"]) if item["task_id"] in order else 99, item["map_index"])
    )
    result_path.write_text(
        json.dumps(
            {
                "state": str(run.state),
                "run_id": run.run_id,
                "seconds": seconds,
                "tasks": tasks,
                "xcoms": xcoms,
            }
        )
    )
    return 0 if str(run.state) == "success" else 1


def summarize(result: dict[str, Any], wall_seconds: float, log_path: Path) -> bool:
    """Print what happened; True when the run succeeded and the row count was verified."""
    _print()
    _print(f"DAG {DAG_ID}: run {result.get('run_id', '?')} ended {result.get('state', '?')}")
    for item in result.get("tasks", []):
        seconds = item.get("seconds")
        suffix = f"[{item['map_index']}]" if item.get("map_index", -1) >= 0 else ""
        took = f"{seconds:6.1f} s" if isinstance(seconds, (int, float)) else "      -"
        _print(f"  {item['task_id'] + suffix:<22} {item['state']:<10} {took}")
    if result.get("tasks"):
        _print("  (the first task's time includes Airflow's one-time start of its in-process task API)")
    xcoms = result.get("xcoms", {})
    job = xcoms.get("import_embeddings.return_value") or {}
    check = xcoms.get("verify_row_count.return_value") or {}
    details = xcoms.get("list_file_details.file_details") or []
    listed = xcoms.get("list_file_details.return_value") or []
    verified = bool(check) and check.get("rows_in_collection") == check.get("rows_written")
    if job:
        _print()
        _print(
            f"Import job {job.get('job_id')} -> collection {job.get('collection_name')!r}: "
            f"{job.get('state')}, "
            f"{job.get('imported_rows', 0):,}/{job.get('total_rows', 0):,} rows, "
            f"{len(job.get('details') or [])} files, {job.get('file_size', 0) / 1e6:.1f} MB"
        )
    if details:
        _print(f"Per-file details ({len(details)} files, {len(listed)} job(s) listed for this run):")
        for record in details:
            name = Path(record["files"][0]).name if record.get("files") else record.get("file_name")
            _print(
                f"  {name:<16} {record['state']:<10} "
                f"{record['imported_rows']:>8,}/{record['total_rows']:<8,} rows "
                f"{record['file_size'] / 1e6:6.2f} MB"
            )
    if check:
        _print(
            f"Row count in Milvus: {check.get('rows_in_collection'):,} "
            f"(written {check.get('rows_written'):,}, imported {check.get('rows_imported'):,}): "
            + ("verified" if verified else "MISMATCH")
        )
    for name, value in (result.get("import_errors") or {}).items():
        _print(f"DAG import error in {name}: {value}")
    if result.get("error"):
        _print(str(result["error"]))
    dag_seconds = result.get("seconds")
    _print()
    _print(
        f"Time: {wall_seconds:.1f} s in all"
        + (f", {dag_seconds:.1f} s running the DAG" if isinstance(dag_seconds, (int, float)) else "")
        + f". Airflow's log: {log_path}"
    )
    ok = result.get("state") == "success" and verified
    _print("RESULT: OK, imported row count verified" if ok else "RESULT: FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.result, json.loads(args.conf or "{}"))

    started = time.monotonic()
    home: Path = args.home.resolve()
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    log_path = home / "airflow.log"
    result_path = home / "result.json"
    env = airflow_environment(home)
    _print(
        f"Milvus bulk import with Airflow: {args.rows:,} rows of {args.dim}-dim embeddings "
        f"in {args.files} files"
    )
    _print(f"Airflow home {home} (wiped), DAGs folder {DAGS_FOLDER}")

    _step("migrating the Airflow metadata database (SQLite)")
    try:
        run_logged([sys.executable, "-m", "airflow", "db", "migrate"], env, log_path, "airflow db migrate")
    except RuntimeError as error:
        _print(f"RESULT: FAILED: {error}")
        return 1

    _step("starting the local import server (Milvus Lite)")
    from airflow_milvus_import.local import LocalImportServer

    server = LocalImportServer(data_dir=home / "milvus" / "data", bucket=home / "milvus" / "bucket", port=0)
    server.start()
    try:
        _print(
            f"    import API {server.url}, Milvus {server.milvus_uri}, bucket {home / 'milvus' / 'bucket'}"
        )
        env["AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT"] = json.dumps(
            {"conn_type": "milvus_import", "host": server.url}
        )
        env["AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_BUCKET"] = str(home / "milvus" / "bucket")
        env["AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_MILVUS_URI"] = server.milvus_uri

        _step(f"running DAG {DAG_ID} with dag.test()")
        conf = {"collection": args.collection, "rows": args.rows, "files": args.files, "dim": args.dim}
        status = run_dag_in_child(env, log_path, result_path, conf)
    finally:
        _step("stopping the local import server")
        server.stop()

    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {
            "state": "crashed",
            "error": f"the DAG run's child process exited {status}:\n{_tail(log_path)}",
        }
    ok = summarize(result, time.monotonic() - started, log_path)
    return 0 if ok and status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
