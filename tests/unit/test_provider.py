"""Provider registration: get_provider_info, discovery through ProvidersManager, the connection form."""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from typing import Any

import jsonschema
import pytest

import airflow_milvus_import
from airflow_milvus_import import CONNECTION_FIELD_BEHAVIOUR, CONNECTION_FIELDS, get_provider_info
from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

HOOK_PATH = "airflow_milvus_import.hooks.milvus_import.MilvusImportHook"
EXTRAS = ("cluster_id", "db_name", "timeout", "verify", "max_retries", "rate_limit")


def airflow_schema(name: str) -> dict[str, Any]:
    return json.loads(files("airflow").joinpath(name).read_text())


def test_provider_info_is_valid_for_airflow() -> None:
    info = get_provider_info()
    jsonschema.validate(info, airflow_schema("provider_info.schema.json"))
    connection_types = airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], connection_types)
    assert info["package-name"] == "airflow-milvus-import"
    assert info["versions"] == [airflow_milvus_import.__version__]


def test_connection_type_declares_its_form() -> None:
    (connection,) = get_provider_info()["connection-types"]
    assert connection["connection-type"] == "milvus_import"
    assert connection["hook-class-name"] == HOOK_PATH
    assert connection["hook-name"] == "Milvus Import (Milvus / Zilliz Cloud)"
    assert set(connection["conn-fields"]) == set(EXTRAS)
    behaviour = connection["ui-field-behaviour"]
    assert behaviour["hidden-fields"] == ["schema"]
    assert "port" not in behaviour["hidden-fields"], "Airflow 3.3's Test button needs a stored port"
    assert behaviour["relabeling"]["host"] == "Endpoint URL"
    assert behaviour["relabeling"]["password"] == "API key / token"
    for name in ("host", "port", "login", "password", *EXTRAS):
        assert behaviour["placeholders"][name]


def test_provider_info_hands_out_copies() -> None:
    get_provider_info()["connection-types"][0]["ui-field-behaviour"]["placeholders"]["host"] = "changed"
    assert CONNECTION_FIELD_BEHAVIOUR["placeholders"]["host"] != "changed"


def test_hook_attributes() -> None:
    assert MilvusImportHook.conn_name_attr == "milvus_import_conn_id"
    assert MilvusImportHook.default_conn_name == "milvus_import_default"
    assert MilvusImportHook.conn_type == "milvus_import"
    assert MilvusImportHook.hook_name == "Milvus Import (Milvus / Zilliz Cloud)"
    assert MilvusImportHook().milvus_import_conn_id == "milvus_import_default"


def test_providers_manager_discovers_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-milvus-import" in manager.providers
    assert manager.providers["airflow-milvus-import"].version == airflow_milvus_import.__version__


def connection_class() -> Any:
    """The Connection a task (and ``airflow connections test``) builds the hook from, on this Airflow."""
    try:
        from airflow.sdk.definitions.connection import Connection
    except ImportError:  # Airflow 2.11
        from airflow.models.connection import Connection  # type: ignore[assignment]
    if not hasattr(Connection, "test_connection"):  # Airflow 3.0: the CLI tests through the models' class
        from airflow.models.connection import Connection  # type: ignore[assignment]
    return Connection


def test_the_task_runtime_discovers_the_hook() -> None:
    Connection = connection_class()
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:  # before Airflow 3.2 tasks use the ProvidersManager
        from airflow.providers_manager import ProvidersManager as ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks["milvus_import"]
    assert hook_info is not None
    assert hook_info.hook_class_name == HOOK_PATH
    assert hook_info.connection_id_attribute_name == "milvus_import_conn_id"
    assert hook_info.hook_name == "Milvus Import (Milvus / Zilliz Cloud)"
    # What `airflow connections test` and the UI's Test button do: connection -> hook.
    connection = Connection(conn_id="from_ui", conn_type="milvus_import", host="http://127.0.0.1:19530")
    hook = connection.get_hook()
    assert isinstance(hook, MilvusImportHook)
    assert hook.milvus_import_conn_id == "from_ui"


def test_providers_manager_reads_the_form_from_provider_info() -> None:
    from airflow.providers_manager import ProvidersManager

    from airflow_milvus_import.compat import HAS_DECLARATIVE_CONNECTION_FORM

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    widgets = manager.connection_form_widgets
    for name in EXTRAS:
        widget = widgets[f"extra__milvus_import__{name}"]
        assert HOOK_PATH.endswith(widget.hook_class_name)  # 2.11 keeps the class name only
        assert widget.field_name == name
        if HAS_DECLARATIVE_CONNECTION_FORM:  # 3.2+: conn-fields from the provider info
            assert widget.field["schema"]["title"] == CONNECTION_FIELDS[name]["label"]
        else:  # 2.11-3.1: the hook's WTForms fields
            assert str(widget.field.args[0]) == CONNECTION_FIELDS[name]["label"]
        assert not getattr(widget, "is_sensitive", False)
    behaviour = manager.field_behaviours["milvus_import"]
    assert behaviour["hidden_fields"] == ["schema"]
    assert behaviour["placeholders"]["extra__milvus_import__cluster_id"] == "in01-xxxxxxxxxxxxxxx"
    assert behaviour["placeholders"]["host"].startswith("http://localhost:19530")


def test_the_flask_ui_renders_our_form_on_airflow_2() -> None:
    """Airflow 2.11's connection form (Flask AppBuilder): our extra fields bind and render as inputs."""
    pytest.importorskip("airflow.www", reason="Airflow 3 has no Flask UI (the React UI: next test)")
    from airflow.providers_manager import ProvidersManager
    from flask import Flask
    from wtforms import Form

    widgets = ProvidersManager().connection_form_widgets
    ours = "extra__milvus_import__"
    fields = {key: widget.field for key, widget in widgets.items() if key.startswith(ours)}
    assert set(fields) == {f"extra__milvus_import__{name}" for name in EXTRAS}
    form_class = type("ConnectionForm", (Form,), fields)
    app = Flask(__name__)
    from flask_babel import Babel

    Babel(app)
    with app.test_request_context():
        form = form_class()
        html = str(form["extra__milvus_import__cluster_id"])
        assert 'name="extra__milvus_import__cluster_id"' in html
        assert "form-control" in html  # Flask AppBuilder's Bootstrap widget
        assert str(form["extra__milvus_import__max_retries"].label.text) == "Max retries"


def test_the_ui_api_renders_our_form() -> None:
    """
    What the React UI's connection form is built from. In a fresh process, as in the API server: Airflow
    3.0 / 3.1 convert the hook's WTForms fields only while the ProvidersManager is first filled.
    """
    pytest.importorskip("airflow.api_fastapi", reason="Airflow 2.11 has the Flask UI (previous test)")
    import subprocess

    code = (
        "import json\n"
        "from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService\n"
        "(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == 'milvus_import']\n"
        "print('META ' + json.dumps(meta.model_dump(mode='json')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("META ")]
    meta = json.loads(line.removeprefix("META "))
    assert meta["hook_name"] == "Milvus Import (Milvus / Zilliz Cloud)"
    standard = meta["standard_fields"]
    assert standard["url_schema"]["hidden"]
    assert standard["host"]["title"] == "Endpoint URL"
    assert not standard["host"]["hidden"]
    assert not standard["port"]["hidden"]
    assert standard["port"]["placeholder"]
    assert standard["password"]["title"] == "API key / token"
    assert meta["extra_fields"] is not None, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(meta["extra_fields"]) == set(EXTRAS)
    assert meta["extra_fields"]["cluster_id"]["schema"]["title"] == "Cluster ID (Zilliz Cloud)"


def test_ui_field_behaviour_for_airflow_3_0_and_3_1() -> None:
    behaviour = MilvusImportHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, airflow_schema("customized_form_field_behaviours.schema.json"))
    assert behaviour["hidden_fields"] == ["schema"]
    assert "port" not in behaviour["hidden_fields"]
    assert behaviour["relabeling"]["host"] == "Endpoint URL"
    assert set(EXTRAS) <= set(behaviour["placeholders"])
    behaviour["placeholders"]["host"] = "mutated"
    assert MilvusImportHook.get_ui_field_behaviour()["placeholders"]["host"] != "mutated"


def test_form_widgets_without_wtforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wtforms", None)  # the import fails, as on a 3.x without FAB
    assert MilvusImportHook.get_connection_form_widgets() == {}


def test_form_widgets_with_wtforms() -> None:
    pytest.importorskip("wtforms")
    widgets = MilvusImportHook.get_connection_form_widgets()
    assert set(widgets) == set(EXTRAS)
    assert widgets["max_retries"].field_class.__name__ == "IntegerField"
    assert widgets["cluster_id"].field_class.__name__ == "StringField"
    assert str(widgets["cluster_id"].args[0]) == "Cluster ID (Zilliz Cloud)"


def test_protocol_and_models_add_no_http_client_to_the_import() -> None:
    import subprocess

    # Whatever Airflow itself loads is not ours to count: compare with importing airflow.exceptions alone.
    code = (
        "import sys, airflow.exceptions, pendulum;"
        "from airflow.providers.common.compat.sdk import AirflowException; before = set(sys.modules);"
        "import airflow_milvus_import, airflow_milvus_import.protocol, airflow_milvus_import.models;"
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('airflow_milvus_import')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_hook_module_loads_no_http_client_until_used() -> None:
    import subprocess

    code = (
        "import sys, airflow.providers.common.compat.sdk, airflow.exceptions, pendulum;"
        "from airflow.providers.common.compat.sdk import BaseHook; before = set(sys.modules);"
        "import airflow_milvus_import.hooks.milvus_import;"
        "print(sorted(m for m in ('requests', 'httpx') if m in set(sys.modules) - before))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_airflow_connection_test_reaches_a_server_through_the_hook(
    httpserver_ipv4: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    Connection = connection_class()
    # Airflow 2.11's hook looks the connection up by id, so its UI's Test button first exposes the form's
    # values as an AIRFLOW_CONN_ variable; the same here. Airflow 3 hands the Connection to the hook.
    as_in_airflow_2 = Connection.__module__ == "airflow.models.connection"

    def expose(connection: Any) -> None:
        if as_in_airflow_2:
            monkeypatch.setenv("AIRFLOW_CONN_UI_TEST", connection.get_uri())

    from tests.conftest import SENTINEL_TOKEN
    from tests.wire_server import FakeImportServer

    fake = FakeImportServer(httpserver_ipv4, token=SENTINEL_TOKEN)
    fake.add_job()
    # What the UI's Test button runs on a worker (Airflow 3.3): Connection.test_connection -> our hook.
    connection = Connection(
        conn_id="ui_test", conn_type="milvus_import", host=fake.base_url, password=SENTINEL_TOKEN
    )
    expose(connection)
    assert connection.test_connection() == (
        True,
        f"Connected to {fake.base_url} (Milvus); 1 import job visible",
    )
    wrong = Connection(conn_id="ui_test", conn_type="milvus_import", host=fake.base_url, password="wrong")
    expose(wrong)
    ok, message = wrong.test_connection()
    assert not ok
    assert "credentials were not accepted" in message
    assert SENTINEL_TOKEN not in message


def test_the_collection_uri_handlers_are_registered_under_this_airflows_key() -> None:
    from airflow_milvus_import.compat import HAS_ASSETS

    info = get_provider_info()
    key, other = ("asset-uris", "dataset-uris") if HAS_ASSETS else ("dataset-uris", "asset-uris")
    assert other not in info
    (uris,) = info[key]
    assert uris["schemes"] == ["milvus", "zilliz"]
    assert uris["handler"] == "airflow_milvus_import.assets.sanitize_asset_uri"


def run_airflow_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    """The ``airflow`` command of this interpreter's environment, in the tests' isolated AIRFLOW_HOME."""
    import os
    import subprocess
    from pathlib import Path

    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run(
        [str(airflow), *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )


def test_airflow_providers_list_shows_the_provider() -> None:
    result = run_airflow_cli("providers", "list", "--output", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    listing = result.stdout[result.stdout.index("[{") :]  # Airflow 3.0 logs a few lines first
    providers = {entry["package_name"]: entry for entry in json.loads(listing)}
    assert providers["airflow-milvus-import"]["version"] == airflow_milvus_import.__version__


def test_airflow_connections_test_reaches_a_server(httpserver_ipv4: Any) -> None:
    """``airflow connections test`` (connection tests enabled) for a milvus_import connection."""
    from tests.conftest import SENTINEL_TOKEN
    from tests.wire_server import FakeImportServer

    fake = FakeImportServer(httpserver_ipv4, token=SENTINEL_TOKEN)
    fake.add_job()
    connection = json.dumps({"conn_type": "milvus_import", "host": fake.base_url, "password": SENTINEL_TOKEN})
    result = run_airflow_cli(
        "connections",
        "test",
        "cli_test",
        env={"AIRFLOW_CONN_CLI_TEST": connection, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "Connection success" in output  # 2.11 adds our message; 3.x prints only the verdict
    assert any(request.path.endswith("/jobs/import/list") for request, _ in httpserver_ipv4.log)
    assert SENTINEL_TOKEN not in output
