"""The connection form in a real browser: Airflow's UI (api-server on 127.0.0.1) driven by Playwright with
Debian's Chromium. Log in, add a "Milvus Import" connection, see our fields (labels, placeholders and
descriptions read from ``get_provider_info()``, so the test follows the code), save it, press the row's
Test Connection button and see success against the local import server. Screenshots go to
``$AMI_ARTIFACTS`` or ``tests/e2e/artifacts/``.

Select with ``-m e2e``; skips only when Chromium is missing and cannot be installed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    CHROMIUM,
    AirflowDeployment,
    ImportServerClient,
    artifacts_dir,
    ensure_system_deps,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

CONN_TYPE = "milvus_import"
CONN_ID = "milvus_import_ui_e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _connection_type_info() -> dict[str, Any]:
    from airflow_milvus_import import get_provider_info

    [info] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE]
    return dict(info)


@pytest.fixture(scope="module")
def ui_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    """The api-server alone (it serves the UI and runs connection tests), on SQLite, tests enabled."""
    root = tmp_path_factory.mktemp("airflow-ui")
    dags = root / "dags"
    dags.mkdir()
    deployment = AirflowDeployment(
        root=root, dags_folder=dags, config={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    )
    try:
        deployment.migrate()
        deployment.start_api_server()
        deployment.wait_api()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = ensure_system_deps(CHROMIUM.exists, f"Chromium ({CHROMIUM}, Debian's chromium)")
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _log_in(page: Page, deployment: AirflowDeployment) -> None:
    page.goto(f"{deployment.base_url}/connections")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/connections")


def test_add_a_milvus_import_connection_and_test_it_from_the_list(
    ui_airflow: AirflowDeployment, browser: Browser, import_server: ImportServerClient
) -> None:
    from playwright.sync_api import expect

    info = _connection_type_info()
    behaviour = info["ui-field-behaviour"]
    extra_fields: dict[str, dict[str, Any]] = info["conn-fields"]
    hidden = set(behaviour.get("hidden-fields", []))
    placeholders = behaviour.get("placeholders", {})
    shown_standard = {f: label for f, label in behaviour["relabeling"].items() if f not in hidden}
    assert {"host", "port", "password"} <= shown_standard.keys()
    port = int(import_server.url.rsplit(":", 1)[1])
    shots = artifacts_dir()

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    _log_in(page, ui_airflow)

    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").first.fill("Milvus")
    page.get_by_role("option", name=info["hook-name"], exact=True).click()

    # Standard fields: our labels and placeholders; the hidden ones are gone.
    for field, label in shown_standard.items():
        box = dialog.get_by_label(label, exact=True)
        expect(box).to_be_visible()
        if field in placeholders:
            expect(box).to_have_attribute("placeholder", placeholders[field])
    for field in hidden:
        expect(dialog.get_by_label(field.capitalize(), exact=True)).to_have_count(0)
    page.screenshot(path=str(shots / "connection-form-standard-fields.png"))
    dialog.locator('input[name="connection_id"]').fill(CONN_ID)
    dialog.get_by_label(shown_standard["host"], exact=True).fill(import_server.url)
    dialog.get_by_label(shown_standard["port"], exact=True).fill(str(port))
    dialog.get_by_label(shown_standard["password"], exact=True).fill(import_server.token)

    # Extra fields (conn-fields): each input with its label and description.
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for name, spec in extra_fields.items():
        expect(dialog.locator(f'[name="element_{name}"]')).to_be_visible()
        expect(dialog.locator("label").filter(has_text=spec["label"])).to_have_count(1)
        if spec.get("description"):
            expect(dialog.get_by_text(spec["description"], exact=True)).to_be_visible()
    dialog.locator('[name="element_db_name"]').fill("default")
    dialog.locator('[name="element_timeout"]').fill("10")
    dialog.locator('[name="element_max_retries"]').fill("1")
    page.screenshot(path=str(shots / "connection-form-extra-fields.png"))
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)

    row = page.get_by_role("row").filter(has_text=CONN_ID)
    expect(row).to_contain_text(CONN_TYPE)
    expect(row).to_contain_text(import_server.url)
    with page.expect_response("**/api/v2/connections/test") as tested:
        row.get_by_role("button", name="Test Connection").click()
    answer = tested.value.json()
    toast = page.get_by_role("status").filter(has_text="Test Connection Successful")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text(import_server.url)  # the hook's message names the endpoint it reached
    page.wait_for_timeout(800)  # let the toast finish sliding in before the screenshot
    page.screenshot(path=str(shots / "connection-test-success.png"), full_page=True)
    assert tested.value.status == 200
    assert answer["status"] is True, answer["message"]
    sent = json.loads(tested.value.request.post_data or "{}")
    assert sent["port"] == port  # the Port field is stored, so the list's test matches the stored connection

    # What was stored, through the REST API: our type and extras, and the key masked.
    api = ui_airflow.api
    stored = api.get(f"/api/v2/connections/{CONN_ID}")
    assert (stored["conn_type"], stored["host"], stored["port"]) == (CONN_TYPE, import_server.url, port)
    assert json.loads(stored["extra"]).items() >= {"db_name": "default", "timeout": 10}.items()
    assert import_server.token not in json.dumps(stored)
    # The test API itself, as the Test button calls it (stored credentials): status true.
    rest = api.test_connection(
        {"connection_id": CONN_ID, "conn_type": CONN_TYPE, "host": import_server.url, "port": port}
    )
    assert rest["status"] is True, rest["message"]
    # A wrong key: a clear no, naming the endpoint, without the key.
    wrong_key = "wrong-key-3e9d71"
    refused = api.test_connection(
        {
            "connection_id": "milvus_import_wrong_key",
            "conn_type": CONN_TYPE,
            "host": import_server.url,
            "port": port,
            "password": wrong_key,
        }
    )
    assert refused["status"] is False
    assert wrong_key not in refused["message"]
    assert "127.0.0.1" in refused["message"]
    page.close()
    for name in (
        "connection-form-standard-fields.png",
        "connection-form-extra-fields.png",
        "connection-test-success.png",
    ):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
