"""airflow_milvus_import.protocol.settings, tested directly: a connection read into ConnectionSettings."""

from __future__ import annotations

import pytest

from airflow_milvus_import.exceptions import (
    MilvusImportRequestError,
)
from airflow_milvus_import.protocol import ConnectionSettings, settings_from_connection
from tests.conftest import SENTINEL_TOKEN
from tests.unit.protocol.wire import BASE


def settings(**kwargs: object) -> ConnectionSettings:
    values: dict[str, object] = {"conn_id": "c", "host": BASE}
    values.update(kwargs)
    return settings_from_connection(**values)  # type: ignore[arg-type]


# ---- settings_from_connection ---------------------------------------------------------------------------


class TestSettings:
    def test_defaults(self) -> None:
        result = settings(password=SENTINEL_TOKEN)
        assert result.base_url == BASE
        assert result.token == SENTINEL_TOKEN
        assert (result.timeout, result.max_retries, result.verify) == (30.0, 3, True)
        assert result.cluster_id is None
        assert not result.is_zilliz
        assert result.deployment == "Milvus"

    def test_token_never_in_repr_or_str(self) -> None:
        result = settings(login="root", password=SENTINEL_TOKEN)
        assert result.token == f"root:{SENTINEL_TOKEN}"
        assert SENTINEL_TOKEN not in repr(result)
        assert SENTINEL_TOKEN not in str(result)
        assert result.secrets == (f"root:{SENTINEL_TOKEN}", SENTINEL_TOKEN)

    def test_no_password_means_no_token(self) -> None:
        assert settings().token is None

    def test_login_without_password_is_rejected(self) -> None:
        with pytest.raises(MilvusImportRequestError, match=r"'c'.*Password is empty"):
            settings(login="root")

    @pytest.mark.parametrize("bad", ["s3cr3t\nXy", "s3cr3t\rXy", " s3cr3tXy", "s3cr3tXy\t"])
    def test_token_with_control_characters_or_padding_is_rejected_without_echo(self, bad: str) -> None:
        with pytest.raises(MilvusImportRequestError) as caught:
            settings(password=bad)
        assert "s3cr3t" not in str(caught.value)

    @pytest.mark.parametrize(
        ("host", "port", "schema", "expected"),
        [
            ("http://127.0.0.1:19530", None, None, "http://127.0.0.1:19530"),
            ("http://127.0.0.1:19530/", 19530, None, "http://127.0.0.1:19530"),
            ("http://127.0.0.1", 19530, None, "http://127.0.0.1:19530"),
            ("127.0.0.1", 19530, None, "http://127.0.0.1:19530"),
            ("localhost:19530", 0, None, "http://localhost:19530"),
            ("api.cloud.zilliz.com", None, None, "https://api.cloud.zilliz.com"),
            ("example.org", 443, None, "https://example.org"),
            ("https://api.cloud.zilliz.com", 443, None, "https://api.cloud.zilliz.com"),
            ("http://milvus.internal:80", None, None, "http://milvus.internal"),
            ("HTTPS://api.cloud.zilliz.com.cn", None, None, "https://api.cloud.zilliz.com.cn"),
            ("http://127.0.0.1:8000/cloud/", None, None, "http://127.0.0.1:8000/cloud"),
            ("127.0.0.1", 8000, "cloud", "http://127.0.0.1:8000/cloud"),
            ("http://[::1]:19530", None, None, "http://[::1]:19530"),
        ],
    )
    def test_base_url(self, host: str, port: int | None, schema: str | None, expected: str) -> None:
        assert settings(host=host, port=port, schema=schema).base_url == expected

    @pytest.mark.parametrize(
        ("host", "port", "message"),
        [
            ("", None, "Host is empty"),
            (None, None, "Host is empty"),
            ("ftp://x", None, "http:// or https://"),
            ("http://", None, "not a valid URL"),
            ("http://host:notaport", None, "not a valid URL"),
            ("http://host:70000", None, "not a valid URL"),
            ("http://user:secret@host:19530", None, "must not carry credentials"),
            ("http://host:19530?x=1", None, "query"),
            ("http://ho st:19530", None, "not a valid URL"),
            ("http://host:19530", 8080, "port 19530 but the Port field says 8080"),
            ("http://host", 99999, "Port must be"),
            ("http://host:19530/v2/vectordb/jobs/import", None, "root URL"),
        ],
    )
    def test_malformed_endpoint_names_the_connection(
        self, host: str | None, port: int | None, message: str
    ) -> None:
        with pytest.raises(MilvusImportRequestError) as caught:
            settings_from_connection("my_conn", host, port)
        assert "'my_conn'" in str(caught.value)
        assert message in str(caught.value)
        assert "secret" not in str(caught.value)

    def test_extras(self) -> None:
        result = settings(
            extra={
                "cluster_id": " in01-x ",
                "db_name": "analytics",
                "timeout": "12.5",
                "verify": "false",
                "max_retries": "5",
                "max_response_bytes": 1000,
                "rate_limit": 10,
                "console_link": "http://attu/{job_id}",
            }
        )
        assert result.cluster_id == "in01-x"
        assert result.is_zilliz
        assert result.deployment == "Zilliz Cloud"
        assert result.db_name == "analytics"
        assert result.timeout == 12.5
        assert result.max_retries == 5
        assert result.verify is False
        assert result.max_response_bytes == 1000
        assert result.rate_limit == 10.0
        assert result.console_link == "http://attu/{job_id}"

    def test_prefixed_extras_of_older_forms(self) -> None:
        result = settings(
            extra={"extra__milvus_import__cluster_id": "in01-y", "extra__milvus_import__timeout": 3}
        )
        assert result.cluster_id == "in01-y"
        assert result.timeout == 3.0

    def test_empty_extras_mean_defaults(self) -> None:
        result = settings(
            extra={"cluster_id": "", "db_name": "", "timeout": "", "verify": "", "max_retries": ""}
        )
        assert result.cluster_id is None
        assert result.db_name is None
        assert (result.timeout, result.verify, result.max_retries) == (30.0, True, 3)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(True, True), ("TRUE", True), ("no", False), ("/etc/ssl/ca.pem", "/etc/ssl/ca.pem")],
    )
    def test_verify(self, value: object, expected: object) -> None:
        assert settings(extra={"verify": value}).verify == expected

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            ({"timeout": "soon"}, "'timeout' must be a number"),
            ({"timeout": -1}, "positive"),
            ({"timeout": True}, "'timeout' must be a number"),
            ({"max_retries": "-1"}, "'max_retries' must be a whole number"),
            ({"max_retries": 1.5}, "'max_retries' must be a whole number"),
            ({"verify": 3}, "'verify'"),
            ({"cluster_id": ["a"]}, "'cluster_id' must be text"),
        ],
    )
    def test_bad_extras_name_the_connection(self, extra: dict[str, object], message: str) -> None:
        with pytest.raises(MilvusImportRequestError, match=message) as caught:
            settings(extra=extra)
        assert "'c'" in str(caught.value)

    def test_hook_arguments_override_extras(self) -> None:
        result = settings_from_connection(
            "c", BASE, extra={"timeout": 5, "max_retries": 5}, timeout=1, max_retries=0
        )
        assert (result.timeout, result.max_retries) == (1.0, 0)
