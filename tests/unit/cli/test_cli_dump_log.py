"""`freshet dump-log`: Kafka's DumpLogSegments over Freshet's segment files.

Goal: every batch is listed with its header fields and CRC verdict, records decode with
--print-data, a torn tail and index entries that disagree with the log are reported (exit 1, no
traceback), bad usage exits 2, and the files are never modified. Method: a real PartitionLog
written in tmp_path, then damaged byte by byte; the command runs in process (CliRunner).
Reference: Kafka tools/DumpLogSegments.scala (dumpLog, dumpIndex, dumpTimeIndex).
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from freshet.cli.main import app
from freshet.storage.clock import ManualClock
from freshet.storage.compression import CompressionType
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, encode_batch
from typer.testing import CliRunner

LOG = "00000000000000000000.log"
INDEX = "00000000000000000000.index"
TIME_INDEX = "00000000000000000000.timeindex"
BATCH_BYTES = 100  # each batch written below is exactly this long (checked in the fixture)


@pytest.fixture
def partition(tmp_path):
    """orders-0 with 5 zstd batches of 2 records (producer 3, sequences 0..9), indexed every batch."""
    directory = tmp_path / "orders-0"
    log = PartitionLog.open(str(directory), LogConfig(compression_type="zstd", index_interval_bytes=50), ManualClock(1))
    for number in range(5):
        records = [Record(5 + number, b"k", b"v" * 100, [("h", b"x")]), Record(7 + number, None, b"\xff\x00")]
        log.append_as_leader(encode_batch(records, producer_id=3, producer_epoch=0, base_sequence=2 * number), 1)
    log.close()
    assert os.path.getsize(directory / LOG) == 5 * BATCH_BYTES
    return directory


def _run(*args: str):
    return CliRunner().invoke(app, ["dump-log", *args])


def _json(*args: str) -> tuple[int, dict]:
    result = _run(*args, "--output", "json")
    return result.exit_code, json.loads(result.stdout)


def _digests(directory) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in os.listdir(directory)}


def test_dump_log_lists_batches_and_records_of_a_valid_segment(partition):
    """Goal: the Kafka-style text lists every batch and, with --print-data, every record; exit 0.

    Method: text output of the fixture segment; JSON output checked field by field.
    """
    before = _digests(partition)
    result = _run(str(partition / LOG), "--print-data")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    batch_lines = [line for line in lines if line.startswith("baseOffset:")]
    assert len(batch_lines) == 5
    assert batch_lines[1].startswith("baseOffset: 2 lastOffset: 3 count: 2 baseSequence: 2 lastSequence: 3 producerId: 3")
    assert "position: 100 CreateTime: 8 size: 100 magic: 2 compresscodec: zstd" in batch_lines[1]
    assert all(line.endswith("isvalid: true") for line in batch_lines)
    assert "| offset: 0 CreateTime: 5 keySize: 1 valueSize: 100 sequence: 0 headerKeys: [h] key: k payload: " in result.stdout
    assert "| offset: 1 CreateTime: 7 keySize: -1 valueSize: 2 sequence: 1 headerKeys: [] key(base64): null payload(base64): /wA=" in result.stdout
    assert "4 entries, 0 mismatches" in result.stdout

    code, document = _json("--files", str(partition / LOG), "--print-data-log")
    assert code == 0 and document["is_valid"] is True
    (log,) = document["files"]
    assert [batch["base_offset"] for batch in log["batches"]] == [0, 2, 4, 6, 8]
    first = log["batches"][0]
    assert (first["compression"], first["is_valid"], first["partition_leader_epoch"], first["size_bytes"]) == ("zstd", True, 1, 100)
    assert first["records"][0] == {
        "topic": "orders", "partition": 0, "offset": 0, "timestamp": 5, "key": "k", "value": "v" * 100,
        "headers": [["h", "x"]], "encoding": "utf-8", "timestamp_type": "CreateTime", "sequence": 0,
    }
    assert [index["type"] for index in log["indexes"]] == ["offset_index", "time_index"]
    assert _digests(partition) == before, "dump-log must not modify the files"


def test_deep_iteration_prints_record_metadata_without_payload(partition):
    code, document = _json(str(partition / LOG), "--deep-iteration")
    assert code == 0
    record = document["files"][0]["batches"][0]["records"][1]
    assert (record["key_size"], record["value_size"], record["header_keys"]) == (-1, 2, [])
    assert "value" not in record


def test_corrupt_batch_torn_tail_and_index_mismatches_are_reported_with_exit_1(partition):
    """Goal: a flipped byte makes exactly that batch invalid, a cut file is reported as a torn
    tail at the batch where it starts, and bad index entries print Index/Timeindex mismatch lines.

    Method: flip a byte inside batch 1, cut the file 70 bytes into batch 4 (past its header), point index entry 1 at
    a position inside a batch and raise time index entry 0's timestamp.
    """
    with open(partition / LOG, "r+b") as file:
        file.seek(BATCH_BYTES + 50)
        byte = file.read(1)
        file.seek(BATCH_BYTES + 50)
        file.write(bytes([byte[0] ^ 1]))
        file.truncate(4 * BATCH_BYTES + 70)
    with open(partition / INDEX, "r+b") as file:
        file.seek(8 + 4)  # entry 1's position field
        file.write((250).to_bytes(4, "big"))
    with open(partition / TIME_INDEX, "r+b") as file:
        file.write((99).to_bytes(8, "big"))  # entry 0's timestamp

    result = _run(str(partition / LOG))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Corrupt tail at position 400: batch of 100 bytes runs past the end of the segment at 470" in result.stdout
    assert "Index mismatch: offset 4 points at position 250, not at a batch start" in result.stdout
    assert "Timeindex mismatch: index timestamp 99, log timestamp 8 at offset 2" in result.stdout

    code, document = _json(str(partition / LOG))
    (log,) = document["files"]
    assert code == 1 and document["is_valid"] is False
    assert [batch["is_valid"] for batch in log["batches"]] == [True, False, True, True]
    assert log["tail"] == {"position": 400, "reason": "batch of 100 bytes runs past the end of the segment at 470"}

    code, document = _json(str(partition / INDEX))
    assert code == 1
    assert document["files"][0]["entries"][1] == {"offset": 4, "position": 250}
    assert any("inside the corrupt tail that starts at 400" in line for line in document["files"][0]["mismatches"])


def test_index_entry_naming_the_wrong_offset_is_a_mismatch(partition):
    with open(partition / INDEX, "r+b") as file:
        file.write((3).to_bytes(4, "big"))  # entry 0: offset 3 at position 100 (batch 2..3 starts there)
    result = _run(str(partition / INDEX))
    assert result.exit_code == 1
    assert "Index mismatch: index offset 3, log offset 2 at position 100" in result.stdout


def test_an_index_without_its_log_lists_entries_unchecked(partition):
    os.unlink(partition / LOG)
    result = _run(str(partition / TIME_INDEX))
    assert result.exit_code == 0, result.output
    assert "timestamp: 8 offset: 2" in result.stdout and "entries not checked" in result.stdout


def test_a_torn_index_file_is_reported_not_raised(partition):
    with open(partition / INDEX, "ab") as file:
        file.write(b"\x01\x02\x03")
    code, document = _json(str(partition / INDEX))
    assert code == 1
    assert "not a multiple of the entry size" in document["files"][0]["mismatches"][0]


@pytest.mark.parametrize("args", [[], ["missing/00000000000000000000.log"], ["leader-epoch-checkpoint"]])
def test_bad_usage_exits_2_with_one_line(partition, args):
    """Goal: no file, a missing file or a file that is not a segment is bad usage: exit 2, one line."""
    os.chdir(partition)
    result = _run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_uncompressed_and_gzip_codecs_are_named(tmp_path):
    log = PartitionLog.open(str(tmp_path / "t-3"), LogConfig(), ManualClock(1))
    log.append_as_leader(encode_batch([Record(1, None, b"a")]), 0)
    log.append_as_leader(encode_batch([Record(1, None, b"a")], compression=CompressionType.GZIP), 0)
    log.close()
    code, document = _json(str(tmp_path / "t-3" / LOG))
    assert code == 0
    assert [batch["compression"] for batch in document["files"][0]["batches"]] == ["none", "gzip"]


def test_records_that_do_not_decode_under_a_valid_crc_are_a_problem(tmp_path):
    """Goal: with --print-data a batch whose CRC holds but whose records do not parse is reported
    (exit 1) and the scan goes on to the next batch.

    Method: a follower append (no record check) of a batch cut by one byte with batch_length and
    CRC fixed up, then a good batch.
    """
    from freshet.storage.record_batch import CRC_POSITION, compute_crc

    bad = bytearray(encode_batch([Record(1, b"k", b"value")])[:-1])
    bad[8:12] = (len(bad) - 12).to_bytes(4, "big")
    bad[CRC_POSITION : CRC_POSITION + 4] = compute_crc(bad).to_bytes(4, "big")
    log = PartitionLog.open(str(tmp_path / "t-0"), LogConfig(), ManualClock(1))
    log.append_as_follower(bytes(bad) + bytes(encode_batch([Record(2, None, b"ok")], base_offset=1)))
    log.close()
    result = _run(str(tmp_path / "t-0" / LOG), "--print-data")
    assert result.exit_code == 1
    assert "| records do not decode: corrupt record batch: record at byte 0 of the records section declares length 12, 11 bytes remain" in result.stdout
    assert "| offset: 1 CreateTime: 2 keySize: -1 valueSize: 2" in result.stdout
    code, document = _json(str(tmp_path / "t-0" / LOG), "--print-data")
    assert code == 1 and [batch["is_valid"] for batch in document["files"][0]["batches"]] == [True, True]
    assert "error" in document["files"][0]["batches"][0]


def test_log_append_time_batches_print_their_timestamp_type(tmp_path):
    from freshet.storage.record_batch import TimestampType

    config = LogConfig(message_timestamp_type=TimestampType.LOG_APPEND_TIME)
    log = PartitionLog.open(str(tmp_path / "t-0"), config, ManualClock(1_234))
    log.append_as_leader(encode_batch([Record(1, None, b"a")]), 0)
    log.close()
    result = _run(str(tmp_path / "t-0" / LOG), "--deep-iteration")
    assert result.exit_code == 0, result.output
    assert "position: 0 LogAppendTime: 1234 size:" in result.stdout
    assert "| offset: 0 LogAppendTime: 1234 keySize: -1 valueSize: 1" in result.stdout
