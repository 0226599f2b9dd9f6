"""``milvus-import-local`` / ``python -m airflow_milvus_import.local``: run the local import server."""

from __future__ import annotations

import sys

from airflow_milvus_import.local.config import config_from_args


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until SIGINT / SIGTERM; returns the exit status."""
    config = config_from_args(argv)
    try:
        from airflow_milvus_import.local.serve import run
    except ImportError as exc:
        print(
            "milvus-import-local needs the [local] extra: "
            f"pip install 'airflow-milvus-import[local]' ({exc})",
            file=sys.stderr,
        )
        return 2
    try:
        run(config)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"milvus-import-local: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
