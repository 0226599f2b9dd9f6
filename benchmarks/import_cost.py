"""What importing the sensor and the operators adds to a DAG file's parse time, beyond ``import airflow.sdk``.

DAG files are parsed again and again, so the modules they import must stay cheap: the hook, HTTP clients and
models are imported lazily. Each sample is a fresh interpreter that imports ``airflow.sdk`` first (every DAG
file does), then times the import of the module alone. The median of ``--runs`` interpreters is reported,
with the heaviest modules the import pulled in (``-X importtime``), and the last line compares both to the
30 ms budget.

    python benchmarks/import_cost.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, machine, median, percentile, table

MODULES = ("airflow_milvus_import.sensors.milvus_import", "airflow_milvus_import.operators.milvus_import")
BUDGET_MS = 30.0

_PROBE = """
import sys, time
import airflow.sdk
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(elapsed * 1000)
"""


def sample(module: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="")
    output = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=str(REPO),
    ).stdout
    return float(output.strip().splitlines()[-1])


def heaviest(module: str, count: int = 5) -> list[tuple[str, int]]:
    """The modules ``module`` pulled in (beyond airflow.sdk), by cumulative import time (microseconds)."""
    code = f"import airflow.sdk\nimport {module}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    stderr = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
    ).stderr
    lines = stderr.splitlines()
    # -X importtime prints every module as it finishes; the ones after airflow.sdk's own line are ours.
    marker = next((i for i, line in enumerate(lines) if line.rstrip().endswith("| airflow.sdk")), -1)
    rows = []
    for line in lines[marker + 1 :]:
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2  # -X importtime indents a nested import by 2
            rows.append((name.strip(), int(parts[1]), depth))
    # What the module imports directly (depth 1 below it), heaviest first.
    direct = [(name, micros) for name, micros, depth in rows if depth == 1]
    return sorted(direct, key=lambda item: -item[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"{machine()}; {args.runs} fresh interpreters per module", flush=True)
    results = {}
    for module in MODULES:
        sample(module)  # warm the file system cache and write the bytecode
        results[module] = [sample(module) for _ in range(args.runs)]
    rows = [
        [module, f"{median(times):.1f} ms", f"{percentile(times, 0.9):.1f} ms", f"{min(times):.1f} ms"]
        for module, times in results.items()
    ]
    print()
    print(table(["module (on top of airflow.sdk)", "median", "p90", "min"], rows))
    for module in MODULES:
        pulled = ", ".join(f"{name.strip()} {micros / 1000:.1f} ms" for name, micros in heaviest(module))
        print(f"  {module.rsplit('.', 2)[-2]} pulls in: {pulled or 'nothing heavy'}")
    sensor, operators = (median(results[module]) for module in MODULES)
    print(
        f"RESULT import_cost: sensors {sensor:.1f} ms ({sensor / BUDGET_MS:.2f} of the "
        f"{BUDGET_MS:.0f} ms budget), operators {operators:.1f} ms ({operators / BUDGET_MS:.2f} of it), "
        f"median of {args.runs} interpreters"
    )


if __name__ == "__main__":
    main()
