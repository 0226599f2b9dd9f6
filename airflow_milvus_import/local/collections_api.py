"""A minimal Milvus REST v2 collection API over Milvus Lite: create, describe, has, list, drop, and
``entities/query`` (``count(*)`` and plain queries), enough to prepare and check imports without pymilvus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from milvus_lite import CollectionSchema, DataType, FieldSchema, MilvusLiteError

from airflow_milvus_import.local.wire import (
    CODE_INVALID_PARAMETER,
    ApiError,
    collection_not_found,
    database_not_found,
    get_bool,
    get_int,
    get_str,
    get_str_list,
)

if TYPE_CHECKING:
    from airflow_milvus_import.local.milvus import MilvusLiteHost

_TYPES: dict[str, DataType] = {
    "bool": DataType.BOOL,
    "int8": DataType.INT8,
    "int16": DataType.INT16,
    "int32": DataType.INT32,
    "int64": DataType.INT64,
    "float": DataType.FLOAT,
    "double": DataType.DOUBLE,
    "varchar": DataType.VARCHAR,
    "json": DataType.JSON,
    "array": DataType.ARRAY,
    "geometry": DataType.GEOMETRY,
    "timestamptz": DataType.TIMESTAMPTZ,
    "floatvector": DataType.FLOAT_VECTOR,
    "sparsefloatvector": DataType.SPARSE_FLOAT_VECTOR,
}
_TYPE_NAMES = {
    DataType.BOOL: "Bool",
    DataType.INT8: "Int8",
    DataType.INT16: "Int16",
    DataType.INT32: "Int32",
    DataType.INT64: "Int64",
    DataType.FLOAT: "Float",
    DataType.DOUBLE: "Double",
    DataType.VARCHAR: "VarChar",
    DataType.JSON: "JSON",
    DataType.ARRAY: "Array",
    DataType.GEOMETRY: "Geometry",
    DataType.TIMESTAMPTZ: "Timestamptz",
    DataType.FLOAT_VECTOR: "FloatVector",
    DataType.SPARSE_FLOAT_VECTOR: "SparseFloatVector",
}
_STRUCT = "CollectionReq"


def _invalid(message: str) -> ApiError:
    return ApiError(CODE_INVALID_PARAMETER, f"{message}: invalid parameter")


def _data_type(name: Any) -> DataType:
    if not isinstance(name, str) or name.lower() not in _TYPES:
        raise _invalid(
            f"unsupported data type {name!r} (Milvus Lite supports: {', '.join(_TYPE_NAMES.values())})"
        )
    return _TYPES[name.lower()]


def _int_param(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid(f"{key} must be an integer, got {value!r}") from None


def _field(spec: Any, auto_id: bool) -> FieldSchema:
    if not isinstance(spec, dict) or not isinstance(spec.get("fieldName"), str):
        raise _invalid("each field needs a fieldName")
    params = spec.get("elementTypeParams") or {}
    if not isinstance(params, dict):
        raise _invalid("elementTypeParams must be an object")
    dtype = _data_type(spec.get("dataType"))
    is_primary = bool(spec.get("isPrimary", False))
    element = spec.get("elementDataType")
    return FieldSchema(
        name=spec["fieldName"],
        dtype=dtype,
        is_primary=is_primary,
        auto_id=auto_id and is_primary,
        dim=_int_param(params, "dim"),
        max_length=_int_param(params, "max_length"),
        element_type=_data_type(element) if element else None,
        max_capacity=_int_param(params, "max_capacity"),
        nullable=bool(spec.get("nullable", False)),
        default_value=spec.get("defaultValue"),
        is_partition_key=bool(spec.get("isPartitionKey", False)),
    )


def _schema(body: dict[str, Any]) -> CollectionSchema:
    schema = body.get("schema")
    if isinstance(schema, dict) and schema.get("fields"):
        auto_id = bool(schema.get("autoId", body.get("autoId", False)))
        return CollectionSchema(
            fields=[_field(spec, auto_id) for spec in schema["fields"]],
            enable_dynamic_field=bool(
                schema.get("enableDynamicField", body.get("enableDynamicField", False))
            ),
        )
    dimension = get_int(body, "dimension", _STRUCT, 0)
    if dimension <= 0:
        raise _invalid("give either schema.fields or dimension")
    id_type = get_str(body, "idType", _STRUCT) or "Int64"
    pk_type = _data_type(id_type)
    return CollectionSchema(
        fields=[
            FieldSchema(
                name=get_str(body, "primaryFieldName", _STRUCT) or "id",
                dtype=pk_type,
                is_primary=True,
                auto_id=get_bool(body, "autoId", _STRUCT),
                max_length=65535 if pk_type == DataType.VARCHAR else None,
            ),
            FieldSchema(
                name=get_str(body, "vectorFieldName", _STRUCT) or "vector",
                dtype=DataType.FLOAT_VECTOR,
                dim=dimension,
            ),
        ],
        enable_dynamic_field=True,
    )


class CollectionsApi:
    """The handlers' logic; each returns the ``data`` of a success envelope.

    :param host: Milvus Lite.
    """

    def __init__(self, host: MilvusLiteHost) -> None:
        self._host = host

    def _require_db(self, db_name: str) -> None:
        if not self._host.db.has_database(db_name):
            raise database_not_found(db_name)

    def _collection(self, db_name: str, name: str) -> Any:
        self._require_db(db_name)
        if not self._host.db.has_collection(name, database_name=db_name):
            raise collection_not_found(db_name, name)
        return self._host.db.get_collection(name, database_name=db_name)

    def create(self, body: dict[str, Any], db_name: str) -> dict[str, Any]:
        """``collections/create``: quick setup (``dimension``) or a full ``schema``."""
        name = get_str(body, "collectionName", _STRUCT, required=True)
        self._require_db(db_name)
        schema = _schema(body)
        with self._host.catalog():
            if self._host.db.has_collection(name, database_name=db_name):
                raise _invalid(f"collection {name} already exists")
            try:
                self._host.db.create_collection(name, schema, database_name=db_name)
            except (MilvusLiteError, ValueError, TypeError) as exc:
                raise _invalid(str(exc)) from None
        return {}

    def describe(self, body: dict[str, Any], db_name: str) -> dict[str, Any]:
        """``collections/describe``."""
        name = get_str(body, "collectionName", "CollectionNameReq", required=True)
        collection = self._collection(db_name, name)
        schema = collection.schema
        fields = []
        for field in schema.fields:
            params = [
                {"key": k, "value": str(v)}
                for k, v in (
                    ("dim", field.dim),
                    ("max_length", field.max_length),
                    ("max_capacity", field.max_capacity),
                )
                if v is not None
            ]
            fields.append(
                {
                    "name": field.name,
                    "type": _TYPE_NAMES.get(field.dtype, str(field.dtype)),
                    "primaryKey": bool(field.is_primary),
                    "autoId": bool(field.auto_id),
                    "nullable": bool(field.nullable),
                    "partitionKey": bool(field.is_partition_key),
                    "params": params,
                    "description": "",
                }
            )
        return {
            "collectionName": name,
            "dbName": db_name,
            "autoId": any(f.auto_id for f in schema.fields),
            "enableDynamicField": bool(schema.enable_dynamic_field),
            "fields": fields,
            "description": "",
            "shardsNum": 1,
            "partitionsNum": len(collection.list_partitions()),
            "consistencyLevel": "Strong",
            "load": "LoadStateLoaded",
            "properties": [],
        }

    def has(self, body: dict[str, Any], db_name: str) -> dict[str, Any]:
        """``collections/has``."""
        name = get_str(body, "collectionName", "CollectionNameReq", required=True)
        self._require_db(db_name)
        return {"has": bool(self._host.db.has_collection(name, database_name=db_name))}

    def list_names(self, body: dict[str, Any], db_name: str) -> list[str]:
        """``collections/list``."""
        self._require_db(db_name)
        names: list[str] = self._host.db.list_collections(database_name=db_name)
        return names

    def drop(self, body: dict[str, Any], db_name: str) -> dict[str, Any]:
        """``collections/drop``."""
        name = get_str(body, "collectionName", "CollectionNameReq", required=True)
        self._require_db(db_name)
        with self._host.locks.get(db_name, name):
            self._host.db.drop_collection(name, database_name=db_name)
        return {}

    def query(self, body: dict[str, Any], db_name: str) -> list[dict[str, Any]]:
        """``entities/query``: ``count(*)``, or rows matching ``filter``."""
        name = get_str(body, "collectionName", "QueryReqV2", required=True)
        expr = get_str(body, "filter", "QueryReqV2")
        output = get_str_list(body, "outputFields", "QueryReqV2")
        limit = get_int(body, "limit", "QueryReqV2", 100)
        collection = self._collection(db_name, name)
        try:
            if output == ["count(*)"]:
                if not expr:
                    return [{"count(*)": int(collection.num_entities)}]
                return [{"count(*)": len(collection.query(expr, output_fields=[collection.pk_field]))}]
            rows: list[dict[str, Any]] = collection.query(
                expr or None, output_fields=output or None, limit=limit
            )
        except (MilvusLiteError, ValueError) as exc:
            raise _invalid(str(exc)) from None
        return [_plain(row) for row in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.hex()
    return value
