"""Per-batch compression: Kafka's framings, exact round trips, bounded and validated decompression."""

from __future__ import annotations

import gzip

import pytest
from freshet.storage.compression import CompressionType, compress, decompress
from freshet.storage.errors import (
    CorruptRecordError,
    RecordTooLargeError,
    StorageError,
    UnsupportedCompressionError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

CODECS = [CompressionType.GZIP, CompressionType.LZ4, CompressionType.ZSTD]


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


def test_snappy_is_refused_both_ways():
    """Goal: snappy is not built in: compress and decompress raise UnsupportedCompressionError."""
    with pytest.raises(UnsupportedCompressionError):
        compress(CompressionType.SNAPPY, b"x")
    with pytest.raises(UnsupportedCompressionError):
        decompress(CompressionType.SNAPPY, b"x")
