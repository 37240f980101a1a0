"""`freshet dump-log`: print and check segment files, like Kafka's kafka-dump-log.sh (DumpLogSegments).

Owns the command's options and output; the reading and checking is `freshet.server.tools.dump_log`
(storage's own batch and index code). The text output uses Kafka's field names (`baseOffset:`,
`compresscodec:`, `isvalid:`, `| offset: ...`) so that habits and scripts carry over; `--output json`
prints one JSON document. Exit codes: 0 every file is valid, 1 a CRC, record, torn-tail or index
problem was found, 2 bad usage (missing file, unknown extension). Files are only read.
"""

from __future__ import annotations

import base64
import sys
from typing import Annotated

import typer
from freshet.cli import common
from freshet.cli.common import Output, OutputFormat
from freshet.cli.console import record_json
from freshet.client.structs import ConsumerRecord


def dump_log(
    files: Annotated[list[str] | None, typer.Argument(help="Segment files: .log, .index or .timeindex.", show_default=False)] = None,
    files_option: Annotated[
        str | None, typer.Option("--files", help="Comma-separated files (Kafka's spelling).", show_default=False)
    ] = None,
    print_data: Annotated[
        bool, typer.Option("--print-data", "--print-data-log", help="Print each record's key, value and headers.")
    ] = False,
    deep_iteration: Annotated[
        bool, typer.Option("--deep-iteration", help="Print each record's offset, timestamp and sizes, no payload.")
    ] = False,
    output: Output = OutputFormat.table,
) -> None:
    """Print the batches of segment files and check them (CRCs, torn tail, index consistency).

    For a .log: one line per batch (offsets, position, timestamps, size, codec, CRC and whether it
    holds, producer fields, leader epoch), where a torn or corrupt tail starts and why, then the
    sibling .index and .timeindex checked against the log. For a .index or .timeindex: its entries
    and the entries that disagree with the sibling .log. Files are only read: safe on a live broker.

    Exit 0 when everything is valid, 1 when a problem was found, 2 for bad usage.

    Examples:

      freshet dump-log data/orders-0/00000000000000000000.log --print-data

      freshet dump-log --files data/orders-0/00000000000000000000.index --output json
    """
    from freshet.server.tools import dump_log as tool  # reads storage: only imported when used

    paths = list(files or []) + [part for part in (files_option or "").split(",") if part.strip()]
    if not paths:
        common.usage_error("dump-log needs at least one file (FILE... or --files F1,F2)")
    try:
        segments = [tool.segment_file(path.strip()) for path in paths]
    except tool.DumpUsageError as error:
        common.usage_error(str(error))
    documents = []
    is_valid = True
    for segment in segments:
        emit = None if output == OutputFormat.json else _TextPrinter(print_data).line
        try:
            document = _dump(tool, segment, print_data, deep_iteration, emit)
        except OSError as error:  # e.g. retention deleted the segment of a live broker meanwhile
            common.fail(f"{segment.path}: {error.strerror or error}")
        is_valid = is_valid and document["is_valid"]
        documents.append(document)
    if output == OutputFormat.json:
        common.print_json({"files": documents, "is_valid": is_valid})
    raise typer.Exit(common.EXIT_OK if is_valid else common.EXIT_FAILED)


def _dump(tool, segment, print_data: bool, deep_iteration: bool, emit) -> dict:
    """One file's JSON document; with `emit`, its text lines are printed as the scan goes."""
    document: dict = {"file": segment.path, "type": segment.kind, "base_offset": segment.base_offset}
    if emit is not None:
        emit(f"Dumping {segment.path}")
    if segment.kind != tool.KIND_LOG:
        index = tool.dump_index(segment)
        document.update(_index_document(index, emit))
        document["is_valid"] = not index.mismatches
        return document
    if emit is not None:
        emit(f"Log starting offset: {segment.base_offset}")
    decode = print_data or deep_iteration
    log = tool.LogDump(segment, decode_records=decode)
    topic, partition = segment.topic_partition
    batches = []
    for batch in log.batches():
        if emit is not None:
            emit(batch)
            continue
        entry = batch.summary()
        if batch.error is not None:
            entry["error"] = batch.error
        if decode:
            records = [_record(topic, partition, batch, record) for record in batch.records or ()]
            entry["records"] = records if print_data else [_without_data(record) for record in records]
        batches.append(entry)
    document["batches"] = batches
    document["size_bytes"] = log.size_bytes
    document["tail"] = None if log.tail is None else {"position": log.tail[0], "reason": log.tail[1]}
    if log.tail is not None and emit is not None:
        emit(f"Corrupt tail at position {log.tail[0]}: {log.tail[1]}")
    indexes = []
    for sibling in tool.sibling_index_files(segment):
        if emit is not None:
            emit(f"Checking {sibling.path} against the log")
        indexes.append(_index_document(log.check_index(sibling), emit, entries=False))
    document["indexes"] = indexes
    document["is_valid"] = not log.has_problems and not any(i["mismatches"] for i in indexes)
    return document


def _index_document(index, emit, entries: bool = True) -> dict:
    """An index's JSON fields; with `emit`, its entries (when `entries`) and mismatch lines printed."""
    if emit is not None:
        if entries:
            for first, second in index.entries:
                emit(f"offset: {first} position: {second}" if index.kind == "offset_index" else f"timestamp: {first} offset: {second}")
        if index.checked_against is None:
            emit(f"(no {index.path.rsplit('.', 1)[0]}.log: entries not checked)")
        for line in index.mismatches:
            emit(line)
        emit(f"{len(index.entries)} entries, {len(index.mismatches)} mismatches")
    key = ("offset", "position") if index.kind == "offset_index" else ("timestamp", "offset")
    return {
        "file": index.path,
        "type": index.kind,
        "entry_count": len(index.entries),
        **({"entries": [dict(zip(key, entry, strict=True)) for entry in index.entries]} if entries else {}),
        "mismatches": index.mismatches,
        "checked_against": index.checked_against,
    }


def _record(topic: str, partition: int, batch, record) -> dict:
    """A record as `freshet consume --output json` prints it (text when UTF-8, else base64)."""
    header = batch.header
    consumer_record = ConsumerRecord(
        topic, partition, record.offset, record.timestamp, int(header.timestamp_type), record.key, record.value,
        record.headers, header.partition_leader_epoch,
    )
    document = record_json(consumer_record)
    if header.base_sequence >= 0:
        document["sequence"] = (header.base_sequence + record.offset - header.base_offset) % 2**31
    return document


def _without_data(record: dict) -> dict:
    """A record's JSON without key, value and headers: their sizes and header names (--deep-iteration)."""
    sizes = {
        "key_size": _size(record["key"], record["encoding"]),
        "value_size": _size(record["value"], record["encoding"]),
        "header_keys": [name for name, _ in record["headers"]],
    }
    kept = {name: value for name, value in record.items() if name not in ("key", "value", "headers", "encoding")}
    return {**kept, **sizes}


def _size(text: str | None, encoding: str) -> int:
    if text is None:
        return -1
    return len(base64.b64decode(text)) if encoding == "base64" else len(text.encode("utf-8"))


class _TextPrinter:
    """Kafka's DumpLogSegments text lines, printed as they come. Single-threaded."""

    def __init__(self, print_data: bool) -> None:
        self._print_data = print_data

    def line(self, item) -> None:
        if isinstance(item, str):
            sys.stdout.write(item + "\n")
            return
        summary = item.summary()
        kind = summary["timestamp_type"]
        sys.stdout.write(
            f"baseOffset: {summary['base_offset']} lastOffset: {summary['last_offset']} count: {summary['count']} "
            f"baseSequence: {summary['base_sequence']} lastSequence: {summary['last_sequence']} "
            f"producerId: {summary['producer_id']} producerEpoch: {summary['producer_epoch']} "
            f"partitionLeaderEpoch: {summary['partition_leader_epoch']} "
            f"isTransactional: {_bool(summary['is_transactional'])} isControl: {_bool(summary['is_control'])} "
            f"position: {summary['position']} {kind}: {summary['max_timestamp']} size: {summary['size_bytes']} "
            f"magic: {summary['magic']} compresscodec: {summary['compression']} crc: {summary['crc']} "
            f"isvalid: {_bool(summary['is_valid'])}\n"
        )
        if not summary["is_valid"]:
            sys.stdout.write(f"| CRC mismatch: stored {summary['crc']}, the bytes do not match it\n")
        if item.error is not None:
            sys.stdout.write(f"| records do not decode: {item.error}\n")
        for record in item.records or ():
            sys.stdout.write(self._record_line(item, record) + "\n")

    def _record_line(self, batch, record) -> str:
        document = _record("", -1, batch, record)
        line = (
            f"| offset: {record.offset} {document['timestamp_type']}: {record.timestamp} "
            f"keySize: {-1 if record.key is None else len(record.key)} "
            f"valueSize: {-1 if record.value is None else len(record.value)} "
            f"sequence: {document.get('sequence', -1)} headerKeys: [{','.join(name for name, _ in record.headers)}]"
        )
        if not self._print_data:
            return line
        suffix = "" if document["encoding"] == "utf-8" else "(base64)"
        headers = ",".join(f"{name}={_null(value)}" for name, value in document["headers"])
        return (
            f"{line} key{suffix}: {_null(document['key'])} payload{suffix}: {_null(document['value'])} "
            f"headers{suffix}: [{headers}]"
        )


def _null(text: str | None) -> str:
    return "null" if text is None else text


def _bool(value: bool) -> str:
    return "true" if value else "false"
