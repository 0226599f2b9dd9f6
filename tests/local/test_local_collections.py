"""The minimal collection REST routes over Milvus Lite, and their agreement with pymilvus' view."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from local_helpers import Api, count_rows, rows, unique, write_files
from pymilvus import MilvusClient
from pymilvus.bulk_writer import BulkFileType

if TYPE_CHECKING:
    from airflow_milvus_import.local import LocalImportServer

pytestmark = pytest.mark.integration

COLLECTIONS = "/v2/vectordb/collections/"
ENTITIES = "/v2/vectordb/entities/"


@pytest.fixture
def rest(shared_server: LocalImportServer) -> Api:
    return Api(shared_server.url)


def test_quick_setup_then_import_then_count(
    rest: Api, shared_client: MilvusClient, shared_server: LocalImportServer
) -> None:
    name = unique("quick")
    assert rest.ok("create", {"collectionName": name, "dimension": 8}, path=COLLECTIONS) == {}
    assert rest.ok("has", {"collectionName": name}, path=COLLECTIONS) == {"has": True}
    assert name in rest.ok("list", {}, path=COLLECTIONS)
    described = rest.ok("describe", {"collectionName": name}, path=COLLECTIONS)
    assert described["collectionName"] == name
    assert described["enableDynamicField"] is True
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["id"]["primaryKey"] is True
    assert fields["id"]["type"] == "Int64"
    assert {"key": "dim", "value": "8"} in fields["vector"]["params"]
    assert shared_client.has_collection(name), "pymilvus sees the collection made over REST"

    schema = shared_client.describe_collection(name)
    assert [f["name"] for f in schema["fields"]] == ["id", "vector"]
    data = [{"id": i, "vector": [0.1 * i] * 8, "tag": f"t{i}"} for i in range(15)]
    from pymilvus import DataType

    writer_schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    writer_schema.add_field("id", DataType.INT64, is_primary=True)
    writer_schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    files = write_files(writer_schema, shared_server.bucket / unique("q"), BulkFileType.PARQUET, data)
    assert rest.wait(rest.create(name, files))["state"] == "Completed"

    count = rest.ok("query", {"collectionName": name, "outputFields": ["count(*)"]}, path=ENTITIES)
    assert count == [{"count(*)": 15}]
    filtered = rest.ok(
        "query", {"collectionName": name, "filter": "id < 5", "outputFields": ["count(*)"]}, path=ENTITIES
    )
    assert filtered == [{"count(*)": 5}]
    found = rest.ok(
        "query", {"collectionName": name, "filter": "id == 3", "outputFields": ["id", "tag"]}, path=ENTITIES
    )
    assert found == [{"id": 3, "tag": "t3"}]

    assert rest.ok("drop", {"collectionName": name}, path=COLLECTIONS) == {}
    assert rest.ok("has", {"collectionName": name}, path=COLLECTIONS) == {"has": False}
    assert not shared_client.has_collection(name)


def test_full_schema(rest: Api, shared_client: MilvusClient, shared_server: LocalImportServer) -> None:
    name = unique("schema")
    schema = {
        "autoId": False,
        "enableDynamicField": False,
        "fields": [
            {
                "fieldName": "pk",
                "dataType": "VarChar",
                "isPrimary": True,
                "elementTypeParams": {"max_length": 32},
            },
            {"fieldName": "emb", "dataType": "FloatVector", "elementTypeParams": {"dim": "4"}},
            {"fieldName": "score", "dataType": "Double", "nullable": True},
        ],
    }
    rest.ok("create", {"collectionName": name, "schema": schema}, path=COLLECTIONS)
    fields = {f["name"]: f for f in rest.ok("describe", {"collectionName": name}, path=COLLECTIONS)["fields"]}
    assert fields["pk"]["type"] == "VarChar"
    assert fields["score"]["nullable"] is True
    shared_client.insert(name, [{"pk": "a", "emb": [0.0, 1.0, 0.0, 1.0], "score": None}])
    assert count_rows(shared_client, name) == 1


def test_collection_route_errors(rest: Api) -> None:
    assert rest.error("describe", {"collectionName": "missing_one"}, path=COLLECTIONS) == (
        200,
        100,
        "collection not found[database=default][collection=missing_one]",
    )
    assert rest.error("describe", {}, path=COLLECTIONS)[1] == 1802
    assert rest.error("create", {"collectionName": unique("x")}, path=COLLECTIONS)[1] == 1100
    assert (
        rest.error("query", {"collectionName": "missing_one", "outputFields": ["count(*)"]}, path=ENTITIES)[1]
        == 100
    )
    assert rest.error("list", {"dbName": "nope"}, path=COLLECTIONS)[1] == 800
    name = unique("dup")
    rest.ok("create", {"collectionName": name, "dimension": 4}, path=COLLECTIONS)
    assert (
        "already exists"
        in rest.error("create", {"collectionName": name, "dimension": 4}, path=COLLECTIONS)[2]
    )
    assert (
        rest.error(
            "create",
            {
                "collectionName": unique("t"),
                "schema": {"fields": [{"fieldName": "id", "dataType": "BinaryVector"}]},
            },
            path=COLLECTIONS,
        )[1]
        == 1100
    )


def test_jobs_list_after_rows(
    rest: Api, shared_client: MilvusClient, shared_server: LocalImportServer
) -> None:
    from local_helpers import make_collection

    name, schema = make_collection(shared_client)
    files = write_files(schema, shared_server.bucket / unique("l"), BulkFileType.JSON, rows(3))
    rest.wait(rest.create(name, files))
    count = rest.ok("query", {"collectionName": name, "outputFields": ["count(*)"]}, path=ENTITIES)
    assert count == [{"count(*)": count_rows(shared_client, name)}] == [{"count(*)": 3}]
