"""Reading import files: where they are (the bucket), what they hold, and rows ready for Milvus Lite.

Formats are the ones pymilvus' ``LocalBulkWriter`` writes and Milvus imports:

* row-based JSON: ``{"rows": [{...}, ...]}`` (a bare list of rows is accepted too);
* Parquet: one column per field, JSON and sparse-vector fields as JSON text, dynamic fields in ``$meta``;
* NumPy: a set of ``<field>.npy`` files, one per field, all with the same number of rows.

Every problem a user can fix is raised as :class:`ImportFileError` with a message naming the file.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from collections.abc import Iterator

DYNAMIC_FIELD = "$meta"
SUPPORTED_EXTENSIONS = (".json", ".parquet", ".npy")
_OBJECT_URL_SCHEMES = ("s3", "s3a", "gs", "gcs", "minio", "oss", "cos", "az", "azure", "file")
_TARGET_BATCH_BYTES = 1024 * 1024


class ImportFileError(Exception):
    """A file cannot be imported; the message says why, for the job's ``reason``."""


class PathError(Exception):
    """A path names nothing the bucket may serve (outside it, or an unsupported URL)."""


# ---------------------------------------------------------------------------------------------------------
# The bucket
# ---------------------------------------------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Bucket:
    """The folder standing in for the object-storage bucket.

    Paths are relative to it, or absolute inside it (what ``LocalBulkWriter.batch_files`` returns).
    Object URLs (``s3://any-bucket/key``, ``gs://``, ``minio://``...) name ``key`` inside it; ``file://``
    URLs are absolute paths. Nothing outside the folder is served, whether by ``..`` or by a symbolic link.

    :param root: the folder (created if missing).
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._lexical_root = os.path.normpath(os.path.abspath(root))
        self._real_root = os.path.realpath(root)

    def _candidate(self, raw: str, allow_urls: bool) -> str:
        if not raw:
            raise PathError("an empty file path")
        parts = urlsplit(raw)
        if parts.scheme and len(parts.scheme) > 1:
            if not allow_urls or parts.scheme.lower() not in _OBJECT_URL_SCHEMES:
                raise PathError(f"unsupported object URL {raw!r}")
            if parts.scheme.lower() == "file":
                return os.path.normpath(parts.path)
            return os.path.normpath(os.path.join(self._lexical_root, parts.path.lstrip("/")))
        joined = raw if os.path.isabs(raw) else os.path.join(self._lexical_root, raw)
        return os.path.normpath(joined)

    def check(self, raw: str, *, allow_urls: bool = False) -> None:
        """Refuse a path that leaves the bucket, lexically or (when it exists) through a link."""
        self.resolve(raw, allow_urls=allow_urls)

    def resolve(self, raw: str, *, allow_urls: bool = False) -> Path:
        """The real path of ``raw`` inside the bucket.

        :raises PathError: the path leaves the bucket or is an unsupported URL.
        """
        candidate = self._candidate(raw, allow_urls)
        if not (_inside(candidate, self._lexical_root) or _inside(candidate, self._real_root)):
            raise PathError(f"the file path {raw!r} is outside the bucket")
        real = os.path.realpath(candidate)
        if not _inside(real, self._real_root):
            raise PathError(f"the file path {raw!r} leads outside the bucket (through a symbolic link)")
        return Path(real)


def file_kind(paths: list[str]) -> str:
    """The import file type of one ``files`` entry, checked like Milvus' ``importutilv2.GetFileType``.

    :raises ImportFileError: mixed extensions, several JSON/Parquet files, or an unsupported type.
    """
    if not paths:
        raise ImportFileError("no file to import")
    extensions = [os.path.splitext(urlsplit(p).path)[1].lower() for p in paths]
    for path, ext in zip(paths[1:], extensions[1:], strict=False):
        if ext != extensions[0]:
            raise ImportFileError(f"inconsistency in file types, ({paths[0]}) vs ({path})")
    ext = extensions[0]
    if ext in (".json", ".parquet") and len(paths) != 1:
        label = "JSON" if ext == ".json" else "Parquet"
        raise ImportFileError(f"for {label} import, accepts only one file")
    if ext == ".csv":
        raise ImportFileError(
            "the local server does not import CSV files (use JSON, Parquet or NumPy), "
            f"files=[{' '.join(paths)}]"
        )
    if ext not in SUPPORTED_EXTENSIONS:
        return "folder" if not ext else "unknown"
    return ext.lstrip(".")


# ---------------------------------------------------------------------------------------------------------
# The collection's schema, as the importer needs it
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInfo:
    """One field of the target collection."""

    name: str
    dtype: str
    is_primary: bool = False
    auto_id: bool = False
    nullable: bool = False
    has_default: bool = False
    dim: int | None = None
    max_length: int | None = None
    is_function_output: bool = False

    @property
    def optional(self) -> bool:
        """True when a file may leave the field out."""
        return self.nullable or self.has_default or self.is_function_output or self.auto_id


@dataclass(frozen=True)
class SchemaInfo:
    """The target collection's fields and whether it takes dynamic fields."""

    fields: tuple[FieldInfo, ...]
    dynamic: bool

    @classmethod
    def from_milvus_lite(cls, schema: Any) -> SchemaInfo:
        """From a ``milvus_lite.CollectionSchema``."""
        fields = tuple(
            FieldInfo(
                name=f.name,
                dtype=str(getattr(f.dtype, "value", f.dtype)),
                is_primary=bool(f.is_primary),
                auto_id=bool(f.auto_id),
                nullable=bool(f.nullable),
                has_default=f.default_value is not None,
                dim=f.dim,
                max_length=f.max_length,
                is_function_output=bool(f.is_function_output),
            )
            for f in schema.fields
        )
        return cls(fields=fields, dynamic=bool(schema.enable_dynamic_field))

    def field(self, name: str) -> FieldInfo | None:
        """The field called ``name``."""
        return next((f for f in self.fields if f.name == name), None)

    def check_columns(self, label: str, columns: list[str]) -> None:
        """Check a file's column names against the schema (missing, auto-id, unknown).

        :raises ImportFileError: naming the first problem.
        """
        present = set(columns)
        for info in self.fields:
            if info.name in present:
                if info.is_primary and info.auto_id:
                    raise ImportFileError(
                        f"{label}: the primary key '{info.name}' is auto-generated, no need to provide"
                    )
            elif not info.optional:
                raise ImportFileError(
                    f"{label}: field '{info.name}' is missing (the file has: {_names(columns)})"
                )
        for column in columns:
            if self.field(column) is None and column != DYNAMIC_FIELD and not self.dynamic:
                raise ImportFileError(
                    f"{label}: field '{column}' is not defined in the collection schema "
                    "(and the collection has no dynamic field)"
                )
        if DYNAMIC_FIELD in present and not self.dynamic:
            raise ImportFileError(
                f"{label}: '{DYNAMIC_FIELD}' is given but the collection has no dynamic field"
            )


def _names(columns: list[str]) -> str:
    return ", ".join(columns) if columns else "no columns"


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------


def _parse_json_text(label: str, field: str, row: int, value: Any) -> Any:
    if not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ImportFileError(
            f"{label}: row {row}: field '{field}' is not valid JSON: {value!r:.80}"
        ) from None


def _sparse(label: str, field: str, row: int, value: Any) -> Any:
    value = _parse_json_text(label, field, row, value)
    if isinstance(value, dict) and set(value) == {"indices", "values"}:
        value = dict(zip(value["indices"], value["values"], strict=False))
    elif isinstance(value, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        value = dict(value)
    if not isinstance(value, dict):
        raise ImportFileError(f"{label}: row {row}: sparse vector field '{field}' must be a JSON object")
    try:
        return {int(key): weight for key, weight in value.items()}
    except (TypeError, ValueError):
        raise ImportFileError(
            f"{label}: row {row}: sparse vector field '{field}' has a non-integer index"
        ) from None


def _check_dim(label: str, info: FieldInfo, row: int, value: Any) -> None:
    if value is None or info.dim is None:
        return
    if not isinstance(value, (list, tuple)):
        raise ImportFileError(f"{label}: row {row}: vector field '{info.name}' must be a list of numbers")
    if len(value) != info.dim:
        raise ImportFileError(
            f"{label}: row {row}: vector field '{info.name}' has dim {len(value)}, "
            f"the collection expects {info.dim}"
        )


class RowShaper:
    """Turns decoded file rows into records for ``Collection.insert`` (JSON parsed, ``$meta`` spread out).

    :param schema: the target collection's schema.
    :param label: the file's name, for messages.
    """

    def __init__(self, schema: SchemaInfo, label: str) -> None:
        self._schema = schema
        self._label = label
        self._json_fields = [f.name for f in schema.fields if f.dtype == "json"]
        self._sparse_fields = [f.name for f in schema.fields if f.dtype == "sparse_float_vector"]
        self._vectors = [f for f in schema.fields if f.dtype == "float_vector"]
        self._auto_pk = next((f.name for f in schema.fields if f.is_primary and f.auto_id), None)

    def check_keys(self, row_number: int, row: dict[str, Any]) -> None:
        """Check one row-based record's keys (JSON files, where each row may differ)."""
        label = f"{self._label}: row {row_number}"
        if self._auto_pk is not None and row.get(self._auto_pk) is not None:
            raise ImportFileError(
                f"{label}: the primary key '{self._auto_pk}' is auto-generated, no need to provide"
            )
        for info in self._schema.fields:
            if info.name not in row and not info.optional:
                raise ImportFileError(f"{label}: field '{info.name}' is missing")
        if not self._schema.dynamic:
            for key in row:
                if self._schema.field(key) is None:
                    raise ImportFileError(
                        f"{label}: field '{key}' is not defined in the collection schema "
                        "(and the collection has no dynamic field)"
                    )

    def shape(self, first_row: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows ready for insertion; ``first_row`` numbers them (from 1) in messages."""
        for offset, row in enumerate(rows):
            number = first_row + offset
            for name in self._json_fields:
                if name in row:
                    row[name] = _parse_json_text(self._label, name, number, row[name])
            for name in self._sparse_fields:
                if row.get(name) is not None:
                    row[name] = _sparse(self._label, name, number, row[name])
            for info in self._vectors:
                _check_dim(self._label, info, number, row.get(info.name))
            if DYNAMIC_FIELD in row:
                self._spread_dynamic(number, row)
            if self._auto_pk is not None and row.get(self._auto_pk) is None:
                row.pop(self._auto_pk, None)
        return rows

    def _spread_dynamic(self, number: int, row: dict[str, Any]) -> None:
        meta = _parse_json_text(self._label, DYNAMIC_FIELD, number, row.pop(DYNAMIC_FIELD))
        if meta is None:
            return
        if not isinstance(meta, dict):
            raise ImportFileError(f"{self._label}: row {number}: '{DYNAMIC_FIELD}' must be a JSON object")
        for key, value in meta.items():
            row.setdefault(key, value)


# ---------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------


class Source(ABC):
    """One ``files`` entry opened for import: its size, its row count, and its rows in batches."""

    def __init__(self, label: str, file_size: int, total_rows: int) -> None:
        self.label = label
        self.file_size = file_size
        self.total_rows = total_rows
        self.row_bytes = 1024

    @abstractmethod
    def batches(self, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        """Records ready for ``Collection.insert``, at most ``batch_rows`` at a time."""

    def close(self) -> None:  # noqa: B027 (most sources hold nothing open)
        """Release what the source holds open."""


def _file_size(label: str, path: Path) -> int:
    try:
        if path.is_dir():
            raise ImportFileError(f"{label}: {path} is a folder, not a file")
        if not path.exists():
            raise ImportFileError(f"{label}: no such file in the bucket: {path}")
        return path.stat().st_size
    except OSError as exc:
        raise ImportFileError(f"{label}: cannot read the file: {exc.strerror or exc}") from None


def batch_rows_for(row_bytes: int, throttle: float | None) -> int:
    """Rows per insert call: about 1 MB of raw data (short GIL holds keep status reads fast), and at most a
    quarter second's worth under a throttle."""
    rows = max(1, min(20_000, _TARGET_BATCH_BYTES // max(row_bytes, 1)))
    if throttle is not None:
        rows = max(1, min(rows, int(throttle / 4)))
    return rows


class JsonSource(Source):
    """A row-based JSON file."""

    def __init__(self, label: str, path: Path, schema: SchemaInfo) -> None:
        size = _file_size(label, path)
        try:
            with path.open("rb") as handle:
                document = json.load(handle)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ImportFileError(f"{label}: not a readable JSON file: {exc}") from None
        rows = document.get("rows") if isinstance(document, dict) else document
        if not isinstance(rows, list):
            raise ImportFileError(
                f'{label}: a JSON import file holds {{"rows": [...]}} (a list of row objects)'
            )
        shaper = RowShaper(schema, label)
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise ImportFileError(f"{label}: row {number} is not a JSON object")
            shaper.check_keys(number, row)
        super().__init__(label, size, len(rows))
        self._rows: list[dict[str, Any]] = rows
        self._shaper = shaper
        self.row_bytes = max(1, size // max(1, len(rows)))

    def batches(self, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(self._rows), batch_rows):
            chunk = [dict(row) for row in self._rows[start : start + batch_rows]]
            yield self._shaper.shape(start + 1, chunk)


def _arrow_type_ok(info: FieldInfo, arrow_type: pa.DataType) -> bool:
    is_list = pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
    is_list = is_list or pa.types.is_fixed_size_list(arrow_type)
    is_text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if pa.types.is_null(arrow_type):
        return True
    checks = {
        "bool": pa.types.is_boolean(arrow_type),
        "int8": pa.types.is_integer(arrow_type),
        "int16": pa.types.is_integer(arrow_type),
        "int32": pa.types.is_integer(arrow_type),
        "int64": pa.types.is_integer(arrow_type),
        "float": pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type),
        "double": pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type),
        "varchar": is_text,
        "json": is_text or pa.types.is_binary(arrow_type),
        "geometry": is_text,
        "array": is_list,
        "float_vector": is_list,
        "sparse_float_vector": is_text or pa.types.is_map(arrow_type) or pa.types.is_struct(arrow_type),
        "timestamptz": pa.types.is_timestamp(arrow_type) or pa.types.is_integer(arrow_type) or is_text,
    }
    return bool(checks.get(info.dtype, True))


class ParquetSource(Source):
    """A Parquet file, one column per field."""

    def __init__(self, label: str, path: Path, schema: SchemaInfo) -> None:
        size = _file_size(label, path)
        try:
            self._file = pq.ParquetFile(str(path))
        except (OSError, pa.ArrowException) as exc:
            raise ImportFileError(f"{label}: not a readable Parquet file: {exc}") from None
        arrow_schema = self._file.schema_arrow
        columns = list(arrow_schema.names)
        schema.check_columns(label, columns)
        for name in columns:
            info = schema.field(name)
            if info is not None and not _arrow_type_ok(info, arrow_schema.field(name).type):
                raise ImportFileError(
                    f"{label}: column '{name}' has type {arrow_schema.field(name).type}, "
                    f"which cannot hold the collection's {info.dtype.upper()} field '{name}'"
                )
        rows = self._file.metadata.num_rows
        super().__init__(label, size, rows)
        self._schema = schema
        self._shaper = RowShaper(schema, label)
        metadata = self._file.metadata
        raw_bytes = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        self.row_bytes = max(1, raw_bytes // max(1, rows))

    def batches(self, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        first = 1
        try:
            for batch in self._file.iter_batches(batch_size=batch_rows):
                yield self._shaper.shape(first, self._rows(first, batch))
                first += batch.num_rows
        except pa.ArrowException as exc:
            raise ImportFileError(f"{self.label}: cannot read rows {first} and on: {exc}") from None

    def _rows(self, first: int, batch: pa.RecordBatch) -> list[dict[str, Any]]:
        names = batch.schema.names
        columns = [self._column_values(first, name, batch.column(i)) for i, name in enumerate(names)]
        return [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)]

    def _column_values(self, first: int, name: str, column: pa.Array) -> list[Any]:
        info = self._schema.field(name)
        if info is not None and info.dtype == "float_vector" and info.dim and column.null_count == 0:
            return self._vectors(first, info, column)
        values: list[Any] = column.to_pylist()
        return values

    def _vectors(self, first: int, info: FieldInfo, column: pa.Array) -> list[Any]:
        dim = info.dim or 0
        if pa.types.is_fixed_size_list(column.type):
            lengths_ok = column.type.list_size == dim
        else:
            lengths = pc.list_value_length(column)
            lengths_ok = pc.all(pc.equal(lengths, dim)).as_py() is not False
        if not lengths_ok:
            for offset, value in enumerate(column.to_pylist()):
                _check_dim(self.label, info, first + offset, value)
        flat = column.flatten().to_numpy(zero_copy_only=False)
        vectors: list[Any] = flat.reshape(-1, dim).tolist()
        return vectors


def _load_npy(label: str, path: Path) -> np.ndarray[Any, Any]:
    try:
        array: np.ndarray[Any, Any] = np.load(str(path), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ImportFileError(f"{label}: '{path.name}' is not a readable .npy file: {exc}") from None
    return array


class NumpySource(Source):
    """A set of ``<field>.npy`` files, one per field."""

    def __init__(self, label: str, paths: list[Path], schema: SchemaInfo) -> None:
        names = [path.name[: -len(".npy")] for path in paths]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ImportFileError(f"{label}: more than one file for field '{duplicates[0]}'")
        schema.check_columns(label, names)
        size = sum(_file_size(label, path) for path in paths)
        self._arrays = {name: _load_npy(label, path) for name, path in zip(names, paths, strict=False)}
        counts = {name: len(array) if array.ndim else 1 for name, array in self._arrays.items()}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{name}: {count}" for name, count in counts.items())
            raise ImportFileError(f"{label}: the files hold different numbers of rows ({detail})")
        for name, array in self._arrays.items():
            self._check_array(label, schema.field(name), array)
        rows = next(iter(counts.values()), 0)
        super().__init__(label, size, rows)
        self._shaper = RowShaper(schema, label)
        self.row_bytes = max(1, size // max(1, rows))

    @staticmethod
    def _check_array(label: str, info: FieldInfo | None, array: np.ndarray[Any, Any]) -> None:
        if info is None or info.dtype != "float_vector":
            return
        if array.ndim != 2 or array.shape[1] != info.dim:
            raise ImportFileError(
                f"{label}: '{info.name}.npy' has shape {tuple(array.shape)}, "
                f"the collection expects (rows, {info.dim})"
            )

    def batches(self, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        names = list(self._arrays)
        for start in range(0, self.total_rows, batch_rows):
            columns = [np.asarray(self._arrays[n][start : start + batch_rows]).tolist() for n in names]
            rows = [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)]
            yield self._shaper.shape(start + 1, rows)

    def close(self) -> None:
        self._arrays.clear()


def _numpy_folder(label: str, folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise ImportFileError(f"{label}: the folder holds no .npy files")
    return files


def open_sources(label: str, paths: list[Path], schema: SchemaInfo) -> list[Source]:
    """Open one ``files`` entry: a file, a NumPy set, or (Zilliz Cloud style) a folder of files.

    :raises ImportFileError: the entry cannot be imported.
    """
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        if any(folder.glob("*.npy")):
            return [NumpySource(label, _numpy_folder(label, folder), schema)]
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", ".parquet"))
        if not files:
            raise ImportFileError(f"{label}: the folder holds no .json, .parquet or .npy files")
        return [source for file in files for source in open_sources(f"{label}/{file.name}", [file], schema)]
    suffix = paths[0].suffix.lower()
    if suffix == ".npy":
        return [NumpySource(label, paths, schema)]
    if suffix == ".parquet":
        return [ParquetSource(label, paths[0], schema)]
    if suffix == ".json":
        return [JsonSource(label, paths[0], schema)]
    raise ImportFileError(f"{label}: unsupported file type (supported: .json, .parquet, .npy)")
