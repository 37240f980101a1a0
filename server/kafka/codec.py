"""Kafka protocol frames to kio messages and back: the only place that touches the wire format.

Owns the framing of Kafka's binary protocol over TCP — a frame is a 4-byte big-endian size and
then a request (header, body) — and the encodings, which come from `kio` (Python types generated
from Apache Kafka's own JSON message schemas, with a native reader): the request header (v1, or
v2 for flexible versions), the request body of (api key, version), the response header (v0, or
v1 for flexible versions; ApiVersions always v0) and the response body.

`encode_response_parts` encodes a response whose records fields are FileRegions (Fetch's
zero-copy path) with the same kio writers into a `ResponseParts`: the framing as bytes, each
region as a part of its own for the listener to `sendfile` (kio writes records as a length from
`len(value)` followed by the value, so a region passes through unread).

`build(cls, **fields)` makes a version's response from one set of keyword arguments: fields the
version does not have are dropped (an older Metadata has no topic ids), nested entity classes are
looked up by name in the same version's module, and millisecond ints become the timedeltas kio
uses for `*_ms` fields, and millisecond ints for `datetime_i64` fields (log append times) become
the datetimes kio writes (-1: null where the field is nullable, which kio writes as -1). Handlers therefore write one answer for every version they advertise.

Imports: kio, freshet.storage (FileRegion), standard library. Thread-safety: pure functions over immutable tables (caches are
filled once per (api, version) and never change).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import struct
import types
from typing import Any

from freshet.server.errors import KafkaFrameError as FrameError
from freshet.server.errors import UnsupportedKafkaRequestError as UnsupportedRequestError
from freshet.storage.file_region import FileRegion, close_regions
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer

API_VERSIONS_KEY = 18
_SIZE = struct.Struct(">i")
_KEY_AND_VERSION = struct.Struct(">hh")
_HEADER_PREFIX = struct.Struct(">hhi")


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One decoded request. Thread-safe (immutable)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str
    body: Any                                   # the kio request entity of (api_key, api_version)
    size: int                                   # bytes of the frame


def size_of(prefix: bytes) -> int:
    """The frame size in a 4-byte prefix."""
    return _SIZE.unpack(prefix)[0]


def peek_header(frame: bytes) -> tuple[int, int, int]:
    """(api key, api version, correlation id) of a frame, without decoding the rest.

    Raises:
        FrameError: fewer than 8 bytes.
    """
    if len(frame) < _HEADER_PREFIX.size:
        raise FrameError(f"a request of {len(frame)} bytes is shorter than its header")
    return _HEADER_PREFIX.unpack_from(frame)


@functools.cache
def _request_codec(api_key: int, api_version: int):
    schema = load_request_schema(api_key, api_version)
    header_schema = RequestHeaderV2 if schema.__flexible__ else RequestHeaderV1
    return entity_reader(header_schema), entity_reader(schema)


def decode_request(frame: bytes) -> Request:
    """Decode one request frame (without its size prefix).

    Raises:
        FrameError: the frame is malformed (truncated, bad lengths, trailing garbage).
        UnsupportedRequestError: kio has no schema for the API key and version.
    """
    api_key, api_version, correlation_id = peek_header(frame)
    try:
        read_header, read_body = _request_codec(api_key, api_version)
    except Exception as error:  # kio: UnknownAPIKey / UnknownEntity
        raise UnsupportedRequestError(api_key, api_version, correlation_id) from error
    try:
        header, header_size = read_header(frame, 0)
        body, body_size = read_body(frame, header_size)
    except Exception as error:  # kio's native reader raises ValueError / BufferUnderflow / UnicodeError
        raise FrameError(f"API key {api_key} v{api_version}: cannot decode the request: {error}") from error
    # Bytes after the body are ignored, as Kafka's RequestContext does: librdkafka sends a few
    # after some flexible requests (Metadata v12 for every topic), and the frame size bounds them.
    return Request(api_key, api_version, correlation_id, header.client_id or "", body, len(frame))


@functools.cache
def _response_codec(api_key: int, api_version: int):
    schema = load_response_schema(api_key, api_version)
    if api_key == API_VERSIONS_KEY or not schema.__flexible__:
        header_schema, header_writer = ResponseHeaderV0, entity_writer(ResponseHeaderV0)
    else:
        header_schema, header_writer = ResponseHeaderV1, entity_writer(ResponseHeaderV1)
    return schema, header_schema, header_writer, entity_writer(schema)


def response_schema(api_key: int, api_version: int) -> type:
    """The kio response class of (api key, version)."""
    return _response_codec(api_key, api_version)[0]


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """A whole response frame: size prefix, response header, body."""
    _, header_schema, write_header, write_body = _response_codec(api_key, api_version)
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    write_header(buffer, header_schema(correlation_id=correlation_id))
    write_body(buffer, body)
    frame = buffer.getbuffer()
    _SIZE.pack_into(frame, 0, len(frame) - 4)
    del frame
    return buffer.getvalue()


class ResponseParts:
    """A response frame as parts written in order: bytes, and FileRegions (records left in their
    segment files for a zero-copy send). Owns the regions: `close` closes them (idempotent).
    Not thread-safe (one connection's writer)."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: list, size: int) -> None:
        self.parts = parts
        self.size = size                        # bytes of the frame, size prefix included

    def regions(self) -> list[FileRegion]:
        return [part for part in self.parts if isinstance(part, FileRegion)]

    def close(self) -> None:
        close_regions(self.parts)


class _PartsWriter:
    """The buffer kio writes a response into: bytes gather into chunks, a FileRegion (a records
    field's value; kio writes its length prefix from `len` and then passes the value whole to
    `write`) becomes a part of its own."""

    __slots__ = ("parts", "_chunk", "size")

    def __init__(self) -> None:
        self.parts: list = []
        self._chunk = bytearray()
        self.size = 0

    def write(self, data: Any) -> int:
        size = len(data)
        if isinstance(data, FileRegion):
            if self._chunk:
                self.parts.append(bytes(self._chunk))
                self._chunk.clear()
            self.parts.append(data)
        else:
            self._chunk += data
        self.size += size
        return size

    def finish(self) -> ResponseParts:
        if self._chunk:
            self.parts.append(bytes(self._chunk))
        first = self.parts[0]
        assert isinstance(first, bytes) and len(first) >= 4
        self.parts[0] = _SIZE.pack(self.size - 4) + first[4:]
        return ResponseParts(self.parts, self.size)


def encode_response_parts(api_key: int, api_version: int, correlation_id: int, body: Any) -> ResponseParts:
    """`encode_response` for a body whose records fields may be FileRegions: the same bytes
    (kio writes every field but the regions), as parts. On an error the regions are closed."""
    _, header_schema, write_header, write_body = _response_codec(api_key, api_version)
    writer = _PartsWriter()
    try:
        writer.write(b"\0\0\0\0")
        write_header(writer, header_schema(correlation_id=correlation_id))
        write_body(writer, body)
        return writer.finish()
    except BaseException:
        close_regions(writer.parts)
        raise


# -- building a version's response from one set of fields -------------------------------------------

_TIMEDELTA_TYPES = frozenset({"timedelta_i32", "timedelta_i64"})


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {field.name: field for field in dataclasses.fields(cls)}


def nested(cls: type, name: str) -> type:
    """The nested entity class `name` of the version `cls` belongs to (same kio module)."""
    module = _module_of(cls)
    return getattr(module, name)


@functools.cache
def _module_of(cls: type) -> types.ModuleType:
    import sys

    return sys.modules[cls.__module__]


def has_field(cls: type, name: str) -> bool:
    return name in _fields(cls)


def build(cls: type, **values: Any) -> Any:
    """`cls(**values)` keeping only the fields `cls` has; ints for timedelta fields become
    milliseconds, ints for datetime fields milliseconds since the epoch (-1: None), ints for error
    codes become `ErrorCode`."""
    fields = _fields(cls)
    kwargs = {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            continue
        kafka_type = field.metadata.get("kafka_type")
        if kafka_type in _TIMEDELTA_TYPES and isinstance(value, int):
            value = datetime.timedelta(milliseconds=value)
        elif kafka_type == "datetime_i64" and isinstance(value, int):
            if value < 0 and "None" in str(field.type):
                value = None
            else:
                value = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
        elif kafka_type == "error_code" and not isinstance(value, ErrorCode):
            value = error_code(value)
        kwargs[name] = value
    return cls(**kwargs)


def error_code(code: int) -> ErrorCode:
    """The kio ErrorCode of a Kafka error code number (UNKNOWN_SERVER_ERROR for a number kio does
    not know)."""
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error


def milliseconds(value: Any) -> int:
    """A kio timedelta (or plain int) field as milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)
