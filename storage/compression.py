"""Per-batch compression codecs of the record-batch format.

Owns the codec ids of the batch attributes (bits 0-2, as Kafka: 0 none, 1 gzip, 2 snappy, 3 lz4,
4 zstd) and turning the records section of a batch into compressed bytes and back:

- gzip: one gzip member (RFC 1952), as Java's GZIPOutputStream writes it.
- lz4: the LZ4 frame format with independent 64 KiB blocks, no content size and no content checksum,
  which is what Kafka's KafkaLZ4BlockOutputStream writes for v2 batches.
- zstd: one zstd frame (Kafka uses zstd-jni's streaming frame).
- snappy: encoded as snappy-java's SnappyOutputStream writes it, which is what Kafka's Java producer
  and broker write for v2 batches (the "xerial" framing, below), in 32 KiB blocks as snappy-java's
  default. Every client decodes that: snappy-java's SnappyInputStream, librdkafka
  (`rd_kafka_snappy_java_uncompress` when the 8-byte magic is there), kafka-python's and aiokafka's
  `snappy_decode`. Decoding accepts both the xerial framing and raw snappy (one block, no framing),
  which librdkafka writes (`rd_kafka_snappy_compress_iov` with no header; snappy-java and the
  Python clients fall back to raw when the magic is absent). The two cannot be confused: a raw
  stream opens with a varint and a literal, and the magic's third byte (b"N") is a copy tag, which
  no valid raw stream starts with. Empty input is encoded as raw snappy (one byte, b"\x00"): a
  xerial header with no block is refused by librdkafka and kafka-python/aiokafka (they require a
  block after the header) and snappy-java refuses a zero-byte stream.

  Xerial framing (all integers big-endian)::

      position  field        type      meaning
       0        magic        8 bytes   b"\x82SNAPPY\x00"
       8        version      int32     1 (read and ignored: Redpanda writes it little-endian)
      12        compatible   int32     1 (read and ignored, as kafka-python)
      16        blocks       repeated  int32 length of the block, then that many bytes of raw
                                       snappy holding at most 32 KiB of input

Decompression is bounded: every decoder stops once the output passes `max_output_bytes` and raises
RecordTooLargeError, so a small hostile batch cannot make a consumer or the cleaner allocate gigabytes.
Malformed compressed data raises CorruptRecordError; no library exception leaks.

Imports: standard library, `zstandard`, `lz4.frame`, `cramjam` (snappy) and `freshet.storage.errors` only: the client
SDK imports this module, so no other storage module. Forbidden: grpc, wire types (freshet.v1),
metadata, server, client, cli (import-linter contract).

Thread-safety: every function is thread-safe (no shared mutable state; codec contexts are created
per call).
"""

from __future__ import annotations

import enum
import struct
import zlib

import cramjam
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


#: Codecs this build can encode and decode: every codec id Kafka defines.
SUPPORTED_COMPRESSION_TYPES = frozenset(CompressionType)

#: snappy-java's SnappyOutputStream header: magic, then version 1 and minimum compatible version 1.
XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_BYTES = len(_XERIAL_HEADER)
#: SnappyOutputStream's default block size (input bytes per raw snappy block), which Kafka uses.
XERIAL_BLOCK_BYTES = 32 * 1024
_BLOCK_LENGTH = struct.Struct(">i")  # length in bytes of the raw snappy block that follows

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
        UnsupportedCompressionError: an unknown codec id.
    """
    assert codec != CompressionType.NONE, "compress() is not called for uncompressed batches"
    if codec not in SUPPORTED_COMPRESSION_TYPES:
        raise UnsupportedCompressionError(int(codec))
    if codec == CompressionType.SNAPPY:
        return _compress_snappy(data)  # snappy has no levels
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
        UnsupportedCompressionError: an unknown codec id.
        RecordTooLargeError: the output would exceed `max_output_bytes`.
        CorruptRecordError: the compressed data is malformed, truncated or has trailing bytes.
    """
    assert codec != CompressionType.NONE, "decompress() is not called for uncompressed batches"
    assert max_output_bytes >= 0
    if codec not in SUPPORTED_COMPRESSION_TYPES:
        raise UnsupportedCompressionError(int(codec))
    if codec == CompressionType.SNAPPY:
        return _decompress_snappy(data, max_output_bytes)
    chunk_bytes = max(_MIN_OUTPUT_CHUNK_BYTES, 8 * len(data))
    if codec == CompressionType.GZIP:
        return _decompress_gzip(data, max_output_bytes, chunk_bytes)
    if codec == CompressionType.LZ4:
        return _decompress_lz4(data, max_output_bytes, chunk_bytes)
    return _decompress_zstd(data, max_output_bytes, chunk_bytes)


def _compress_snappy(data: bytes | bytearray | memoryview) -> bytes:
    """`data` in snappy-java's xerial framing (module docstring); empty input as raw snappy."""
    if not data:
        return bytes(cramjam.snappy.compress_raw(b""))
    view = memoryview(data)
    parts = [_XERIAL_HEADER]
    for start in range(0, len(view), XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_BYTES]))
        parts.append(_BLOCK_LENGTH.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _decompress_snappy(data: bytes | bytearray | memoryview, max_output_bytes: int) -> bytes:
    """Xerial-framed or raw snappy (module docstring). Each raw block declares its uncompressed
    length in its first bytes, so the bound is checked before anything is allocated."""
    view = memoryview(data)
    if len(view) < _XERIAL_HEADER_BYTES or view[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
        return _decompress_raw_snappy(view, max_output_bytes)
    blocks = []
    total = 0
    position = _XERIAL_HEADER_BYTES
    while position < len(view):
        if position + _BLOCK_LENGTH.size > len(view):
            raise CorruptRecordError(f"xerial snappy block length at byte {position} is truncated")
        (length,) = _BLOCK_LENGTH.unpack_from(view, position)
        position += _BLOCK_LENGTH.size
        if length <= 0 or position + length > len(view):
            raise CorruptRecordError(
                f"xerial snappy block of {length} bytes at byte {position} does not fit in {len(view)} bytes"
            )
        blocks.append(view[position : position + length])
        total += _raw_snappy_length(blocks[-1])
        if total > max_output_bytes:
            raise _too_large(total, max_output_bytes)
        position += length
    return b"".join(_decompress_raw_snappy(block, max_output_bytes) for block in blocks)


def _raw_snappy_length(block: memoryview) -> int:
    """The uncompressed length a raw snappy block declares (its leading varint)."""
    try:
        return cramjam.snappy.decompress_raw_len(block)
    except cramjam.DecompressionError as error:
        raise CorruptRecordError(f"snappy block is malformed: {error}") from error


def _decompress_raw_snappy(block: memoryview, max_output_bytes: int) -> bytes:
    declared = _raw_snappy_length(block)
    if declared > max_output_bytes:
        raise _too_large(declared, max_output_bytes)
    try:
        # The decoder checks that the output has exactly the declared length and that no byte of
        # the block is left over.
        return bytes(cramjam.snappy.decompress_raw(block))
    except cramjam.DecompressionError as error:
        raise CorruptRecordError(f"snappy block is malformed: {error}") from error


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
