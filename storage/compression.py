"""Per-batch compression codecs of the record-batch format.

Owns the codec ids of the batch attributes (bits 0-2, as Kafka: 0 none, 1 gzip, 2 snappy, 3 lz4,
4 zstd) and turning the records section of a batch into compressed bytes and back:

- gzip: one gzip member (RFC 1952), as Java's GZIPOutputStream writes it.
- lz4: the LZ4 frame format with independent 64 KiB blocks, no content size and no content checksum,
  which is what Kafka's KafkaLZ4BlockOutputStream writes for v2 batches.
- zstd: one zstd frame (Kafka uses zstd-jni's streaming frame).
- snappy: not built in. Encoding or decoding a snappy batch raises UnsupportedCompressionError.

Decompression is bounded: every decoder stops once the output passes `max_output_bytes` and raises
RecordTooLargeError, so a small hostile batch cannot make a consumer or the cleaner allocate gigabytes.
Malformed compressed data raises CorruptRecordError; no library exception leaks.

Imports: standard library, `zstandard`, `lz4.frame` and `freshet.storage.errors` only: the client
SDK imports this module, so no other storage module. Forbidden: grpc, wire types (freshet.v1),
metadata, server, client, cli (import-linter contract).

Thread-safety: every function is thread-safe (no shared mutable state; codec contexts are created
per call).
"""

from __future__ import annotations

import enum
import zlib

import lz4.frame
import zstandard
from freshet.storage.errors import CorruptRecordError, RecordTooLargeError, UnsupportedCompressionError

#: Default bound on the size of the records section after decompression (bytes). A 1 MiB batch of
#: text compresses about 5-20x, so 64 MiB leaves room for legitimate batches while stopping bombs.
DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024

# Output is produced in chunks of at least this size, so that a bomb is stopped after about one
# chunk beyond the limit and a normal batch needs one or two calls into the codec.
_MIN_OUTPUT_CHUNK_BYTES = 256 * 1024


class CompressionType(enum.IntEnum):
    """Compression codec of a batch, the value of attribute bits 0-2 (Kafka's ids)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_name(cls, name: str) -> CompressionType:
        """The codec named as in Kafka's `compression.type` ("none", "gzip", "snappy", "lz4", "zstd").

        Raises:
            UnsupportedCompressionError: the name is not one of those (codec_id -1).
        """
        try:
            return cls[name.upper()]
        except KeyError:
            raise UnsupportedCompressionError(-1, f"unknown compression name {name!r}") from None

    @property
    def kafka_name(self) -> str:
        """The lower-case name Kafka configs use."""
        return self.name.lower()


#: Codecs this build can encode and decode.
SUPPORTED_COMPRESSION_TYPES = frozenset(
    {CompressionType.NONE, CompressionType.GZIP, CompressionType.LZ4, CompressionType.ZSTD}
)

_DEFAULT_LEVELS = {
    CompressionType.GZIP: 6,  # zlib's default, what Java's Deflater uses by default.
    CompressionType.LZ4: 0,  # lz4's fast mode; HC levels cost far more CPU in the producer.
    CompressionType.ZSTD: 3,  # zstd's default level, Kafka's default too.
}


def compress(codec: int, data: bytes | bytearray | memoryview, level: int | None = None) -> bytes:
    """Compress the records section of a batch with `codec`.

    Args:
        codec: a CompressionType other than NONE.
        data: the uncompressed records section.
        level: codec-specific level; None for the codec's default.

    Returns:
        The compressed bytes, in the framing Kafka uses for that codec (see the module docstring).

    Raises:
        UnsupportedCompressionError: snappy or an unknown codec id.
    """
    assert codec != CompressionType.NONE, "compress() is not called for uncompressed batches"
    if codec not in SUPPORTED_COMPRESSION_TYPES:
        raise UnsupportedCompressionError(int(codec), "this build has no snappy codec")
    if level is None:
        level = _DEFAULT_LEVELS[CompressionType(codec)]
    if codec == CompressionType.GZIP:
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
        return compressor.compress(data) + compressor.flush()
    if codec == CompressionType.LZ4:
        return lz4.frame.compress(
            data,
            compression_level=level,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=False,
            store_size=False,
        )
    return zstandard.ZstdCompressor(level=level).compress(data)


def decompress(
    codec: int,
    data: bytes | bytearray | memoryview,
    max_output_bytes: int = DECOMPRESSED_BYTES_MAX,
) -> bytes:
    """Decompress the records section of a batch, refusing output larger than `max_output_bytes`.

    Args:
        codec: a CompressionType other than NONE.
        data: the compressed records section.
        max_output_bytes: upper bound on the decompressed size.

    Returns:
        The uncompressed records section.

    Raises:
        UnsupportedCompressionError: snappy or an unknown codec id.
        RecordTooLargeError: the output would exceed `max_output_bytes`.
        CorruptRecordError: the compressed data is malformed, truncated or has trailing bytes.
    """
    assert codec != CompressionType.NONE, "decompress() is not called for uncompressed batches"
    assert max_output_bytes >= 0
    if codec not in SUPPORTED_COMPRESSION_TYPES:
        raise UnsupportedCompressionError(int(codec), "this build has no snappy codec")
    chunk_bytes = max(_MIN_OUTPUT_CHUNK_BYTES, 8 * len(data))
    if codec == CompressionType.GZIP:
        return _decompress_gzip(data, max_output_bytes, chunk_bytes)
    if codec == CompressionType.LZ4:
        return _decompress_lz4(data, max_output_bytes, chunk_bytes)
    return _decompress_zstd(data, max_output_bytes, chunk_bytes)


def _too_large(size_bytes: int, max_output_bytes: int) -> RecordTooLargeError:
    return RecordTooLargeError(size_bytes, max_output_bytes, what="decompressed records section")


def _decompress_gzip(data: bytes | bytearray | memoryview, max_output_bytes: int, chunk_bytes: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    remaining = bytes(data)
    try:
        # Java's GZIPInputStream reads concatenated members; so do we.
        while remaining:
            decompressor = zlib.decompressobj(31)  # wbits 31: expect the gzip header and trailer
            pending = remaining
            while True:
                part = decompressor.decompress(pending, chunk_bytes)
                pending = decompressor.unconsumed_tail
                total += len(part)
                if total > max_output_bytes:
                    raise _too_large(total, max_output_bytes)
                parts.append(part)
                if decompressor.eof:
                    break
                if not part and not pending:
                    raise CorruptRecordError("gzip stream is truncated or followed by stray bytes")
            remaining = decompressor.unused_data
    except zlib.error as error:
        raise CorruptRecordError(f"gzip stream is malformed: {error}") from error
    return b"".join(parts)


def _decompress_lz4(data: bytes | bytearray | memoryview, max_output_bytes: int, chunk_bytes: int) -> bytes:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    parts: list[bytes] = []
    total = 0
    pending: bytes | bytearray | memoryview = data
    try:
        while not decompressor.eof:
            part = decompressor.decompress(pending, max_length=min(chunk_bytes, max_output_bytes + 1 - total))
            pending = b""
            total += len(part)
            if total > max_output_bytes:
                raise _too_large(total, max_output_bytes)
            if not part and not decompressor.eof:
                raise CorruptRecordError("lz4 frame is truncated")
            parts.append(part)
    except RuntimeError as error:  # lz4.frame reports every LZ4F error as RuntimeError
        raise CorruptRecordError(f"lz4 frame is malformed: {error}") from error
    if decompressor.unused_data:
        raise CorruptRecordError(f"{len(decompressor.unused_data)} bytes after the lz4 frame")
    return b"".join(parts)


def _decompress_zstd(data: bytes | bytearray | memoryview, max_output_bytes: int, chunk_bytes: int) -> bytes:
    decompressor = zstandard.ZstdDecompressor()
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as error:
        raise CorruptRecordError(f"zstd frame header is malformed: {error}") from error
    if declared > max_output_bytes:
        raise _too_large(declared, max_output_bytes)
    try:
        if declared == 0:
            # zstandard returns b"" for a declared empty frame without reading it: decode it for real
            # so that a truncated or padded frame is still caught.
            stream = decompressor.decompressobj()
            output = stream.decompress(data)
            if output or not stream.eof or stream.unused_data:
                raise CorruptRecordError("zstd frame declared empty is malformed")
            return b""
        if declared > 0:
            return decompressor.decompress(data, allow_extra_data=False)
        # Streaming frames (Kafka's) carry no content size: try an output buffer sized for typical
        # ratios first, and only if that is too small stream in bounded chunks to tell a bomb from a
        # large but legal batch.
        return decompressor.decompress(
            data, max_output_size=min(chunk_bytes, max_output_bytes), allow_extra_data=False
        )
    except zstandard.ZstdError:
        pass
    total = 0
    try:
        with decompressor.stream_reader(data) as reader:
            while True:
                part = reader.read(chunk_bytes)
                if not part:
                    break
                total += len(part)
                if total > max_output_bytes:
                    raise _too_large(total, max_output_bytes)
        return decompressor.decompress(data, max_output_size=max(total, 1), allow_extra_data=False)
    except zstandard.ZstdError as error:
        raise CorruptRecordError(f"zstd frame is malformed or truncated: {error}") from error
