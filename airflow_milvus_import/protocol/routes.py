"""The routes of the bulk-import REST API (``POST {base_url}/v2/vectordb/jobs/import/{route}``)."""

from __future__ import annotations

from typing import Final

ROUTE_PREFIX: Final = "/v2/vectordb/jobs/import/"

ROUTE_CREATE: Final = "create"
ROUTE_LIST: Final = "list"
ROUTE_DESCRIBE: Final = "describe"
ROUTE_GET_PROGRESS: Final = "get_progress"
ROUTE_GET_PROGRESS_CAMEL: Final = "getProgress"
ROUTE_COMMIT: Final = "commit"
ROUTE_ABORT: Final = "abort"
#: every route that answers with a job's progress, in no particular order
PROGRESS_ROUTES: Final = (ROUTE_DESCRIBE, ROUTE_GET_PROGRESS, ROUTE_GET_PROGRESS_CAMEL)
