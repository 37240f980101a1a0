"""Per-batch compression: Kafka's framings, exact round trips, bounded and validated decompression."""

from __future__ import annotations

import gzip
import struct

import aiokafka.codec
import cramjam
import kafka.codec
import pytest
from freshet.storage.compression import (
    XERIAL_BLOCK_BYTES,
    XERIAL_MAGIC,
    CompressionType,
    compress,
    decompress,
)
from freshet.storage.errors import (
    CorruptRecordError,
    RecordTooLargeError,
    StorageError,
    UnsupportedCompressionError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

CODECS = [CompressionType.GZIP, CompressionType.SNAPPY, CompressionType.LZ4, CompressionType.ZSTD]


@settings(max_examples=60, deadline=None)
@given(codec=st.sampled_from(CODECS), data=st.binary(max_size=200_000))
def test_decompress_inverts_compress(codec, data):
    """Goal: every codec round-trips any bytes exactly."""
    assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize("codec", CODECS)
def test_output_of_exactly_the_limit_is_accepted_and_one_more_byte_is_not(codec):
    """Goal: the bound is exact, not approximate. Method: 1 MiB of data, limits of 1 MiB and 1 MiB - 1."""
    data = bytes(range(256)) * 4096
    compressed = compress(codec, data)
    assert decompress(codec, compressed, max_output_bytes=len(data)) == data
    with pytest.raises(RecordTooLargeError) as raised:
        decompress(codec, compressed, max_output_bytes=len(data) - 1)
    assert raised.value.max_bytes == len(data) - 1


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_or_padded_streams_are_corrupt(codec):
    """Goal: a cut or padded compressed section never decodes to something shorter or longer."""
    compressed = compress(codec, b"kafka" * 10_000)
    for cut in (1, 5, len(compressed) // 2, len(compressed) - 1):
        with pytest.raises(CorruptRecordError):
            decompress(codec, compressed[:cut])
    with pytest.raises(CorruptRecordError):
        decompress(codec, compressed + b"\x00\x01")


@settings(max_examples=300, deadline=2000)
@given(codec=st.sampled_from(CODECS), data=st.binary(max_size=300))
def test_garbage_raises_only_storage_errors(codec, data):
    """Goal: library exceptions (zlib.error, RuntimeError, ZstdError) never leak."""
    try:
        decompress(codec, data, max_output_bytes=1 << 20)
    except StorageError:
        pass


def test_lz4_uses_kafkas_frame_layout():
    """Goal: lz4 output is what Kafka's KafkaLZ4BlockOutputStream writes for v2 batches.

    Method: the LZ4 frame descriptor: magic 0x184D2204; FLG 0x60 (version 01, independent blocks,
    no block checksum, no content size, no content checksum); BD 0x40 (64 KiB max block size).
    """
    frame = compress(CompressionType.LZ4, b"x" * 100_000)
    assert frame[:4] == bytes.fromhex("04224d18")
    assert frame[4] == 0x60
    assert frame[5] == 0x40


def test_gzip_output_is_a_standard_gzip_member_and_concatenated_members_decode():
    """Goal: gzip interoperates with Java's GZIPInputStream (RFC 1952, concatenated members)."""
    data = b"freshet" * 1000
    assert gzip.decompress(compress(CompressionType.GZIP, data)) == data
    two_members = gzip.compress(b"one") + gzip.compress(b"two")
    assert decompress(CompressionType.GZIP, two_members) == b"onetwo"


def test_codec_names_follow_kafka_config_values():
    """Goal: compression.type values map to codec ids as in Kafka; unknown names are refused."""
    assert CompressionType.from_name("zstd") == CompressionType.ZSTD
    assert CompressionType.from_name("none") == CompressionType.NONE
    assert CompressionType.LZ4.kafka_name == "lz4"
    with pytest.raises(UnsupportedCompressionError):
        CompressionType.from_name("brotli")


def test_snappy_output_is_snappy_javas_xerial_framing_in_32_kib_blocks():
    """Goal: snappy output is what Kafka's Java producer writes (snappy-java's SnappyOutputStream).

    Method: the 16-byte header (magic, version 1, compatible version 1), then for each 32 KiB of
    input a big-endian int32 length and one raw snappy block of exactly that input.
    """
    data = bytes(range(256)) * 300  # 76800 bytes: two full blocks and a partial one
    framed = compress(CompressionType.SNAPPY, data)
    assert framed[:16] == XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    position, inputs = 16, []
    while position < len(framed):
        (length,) = struct.unpack_from(">i", framed, position)
        inputs.append(bytes(cramjam.snappy.decompress_raw(framed[position + 4 : position + 4 + length])))
        position += 4 + length
    assert position == len(framed)
    assert [len(part) for part in inputs] == [XERIAL_BLOCK_BYTES, XERIAL_BLOCK_BYTES, len(data) - 2 * XERIAL_BLOCK_BYTES]
    assert b"".join(inputs) == data


@pytest.mark.parametrize("codec_module", [kafka.codec, aiokafka.codec], ids=["kafka-python", "aiokafka"])
@pytest.mark.parametrize("size", [0, 1, 5000, 100_000])
def test_snappy_interoperates_with_the_python_kafka_clients_both_framings(codec_module, size):
    """Goal: what we write, kafka-python and aiokafka read; what they write (xerial by default, or
    raw snappy as librdkafka writes), we read.

    Method: their own `snappy_encode` (xerial_compatible True and False) and `snappy_decode`.
    """
    data = (b"freshet-%d " % size) * (size // 12) + bytes(size % 12)
    assert codec_module.snappy_decode(compress(CompressionType.SNAPPY, data)) == data
    for is_xerial in (True, False):
        if is_xerial and not data:
            continue  # their xerial encoder writes a bare header for no input, which they cannot read
        theirs = bytes(codec_module.snappy_encode(data, xerial_compatible=is_xerial))
        assert theirs.startswith(XERIAL_MAGIC) == is_xerial
        assert decompress(CompressionType.SNAPPY, theirs) == data


def test_snappy_of_nothing_is_one_raw_byte_every_client_reads():
    """Goal: an empty records section is written as raw snappy b"\\x00", not a bare xerial header
    (librdkafka and the Python clients want a block after the header; snappy-java refuses zero bytes)."""
    assert compress(CompressionType.SNAPPY, b"") == b"\x00"
    assert decompress(CompressionType.SNAPPY, b"\x00") == b""
    assert kafka.codec.snappy_decode(b"\x00") == b""


def test_snappy_bound_is_checked_before_a_block_is_inflated():
    """Goal: a raw block that declares more than the limit is refused from its length prefix,
    and a xerial stream is refused at the first block that passes the limit."""
    raw = bytes(cramjam.snappy.compress_raw(bytes(10 * 1024 * 1024)))
    with pytest.raises(RecordTooLargeError) as raised:
        decompress(CompressionType.SNAPPY, raw, max_output_bytes=1024)
    assert raised.value.size_bytes == 10 * 1024 * 1024
    framed = compress(CompressionType.SNAPPY, bytes(10 * 1024 * 1024))
    with pytest.raises(RecordTooLargeError) as raised:
        decompress(CompressionType.SNAPPY, framed, max_output_bytes=XERIAL_BLOCK_BYTES * 3)
    assert raised.value.size_bytes == XERIAL_BLOCK_BYTES * 4


@pytest.mark.parametrize(
    "stream",
    [
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", 0),
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", -5) + b"x" * 10,
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", 100) + b"\x03abc",
        XERIAL_MAGIC + b"\x00\x00",
        b"\x05ab",
    ],
    ids=["zero-length-block", "negative-length", "block-past-end", "short-header", "short-raw"],
)
def test_malformed_snappy_framing_is_corrupt(stream):
    """Goal: bad xerial block lengths and truncated raw blocks raise CorruptRecordError."""
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.SNAPPY, stream)
