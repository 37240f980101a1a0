"""Small text files that must never be half-written: Kafka's checkpoint file format.

Owns writing and reading the checkpoint files of the storage layer:

- `leader-epoch-checkpoint` (per partition): entries `epoch start_offset`.
- `replication-offset-checkpoint` (per data directory): entries `topic partition high_watermark`.
- `cleaner-offset-checkpoint` (per compacted partition): one entry, the first dirty offset.
- `log-start-offset-checkpoint` (per partition whose start DeleteRecords moved): one entry, the
  log start offset (Kafka keeps one such file per log dir, `topic partition offset`).

Format (Kafka's CheckpointFile)::

    <version>          one integer line
    <count>            number of entry lines that follow
    <entry>            `count` lines of space-separated fields

Writes go to `<name>.tmp`, are fsynced, renamed over the old file and the directory is fsynced, so a
reader sees either the old or the new file, never a mix. A malformed file raises
CorruptCheckpointError with the line that failed; callers decide whether to rebuild or go offline.

Imports: standard library and `freshet.storage.errors`. Forbidden: grpc, wire types (freshet.v1),
metadata, server, client, cli (import-linter contract).

Thread-safety: functions are thread-safe as long as two threads do not write the same path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from freshet.storage.errors import CorruptCheckpointError, KafkaStorageError, LogDirFullError, is_disk_full

T = TypeVar("T")

TEMP_SUFFIX = ".tmp"


def fsync_directory(path: str) -> None:
    """fsync a directory so that renames and creations in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes, is_synced: bool = True) -> None:
    """Replace the file at `path` with `data`: temp file, fsync, rename, fsync the directory.

    With `is_synced` False the two fsyncs are left out: a process crash still sees the old or
    the new file whole (the rename is atomic), a machine crash may see the old one, or an empty
    one; only for files the owner can rebuild (see leader_epoch.py).

    Raises:
        LogDirFullError: the filesystem is full (the old file, if any, is left intact and the
            temp file removed).
        KafkaStorageError: the write failed (the old file, if any, is left intact).
    """
    temp_path = path + TEMP_SUFFIX
    try:
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if is_synced:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_path, path)
        if is_synced:
            fsync_directory(os.path.dirname(path) or ".")
    except OSError as error:
        try:
            os.unlink(temp_path)        # give back the space; the old file is intact
        except OSError:
            pass
        if is_disk_full(error):
            raise LogDirFullError(path, "write checkpoint", cause=error) from error
        raise KafkaStorageError(path, "write checkpoint", error) from error


def write_checkpoint(path: str, version: int, entries: Iterable[Sequence[object]], is_synced: bool = True) -> None:
    """Write a Kafka-format checkpoint file atomically (see the module docstring and `write_atomically`)."""
    lines = [" ".join(str(field) for field in entry) for entry in entries]
    for line in lines:
        assert "\n" not in line
    text = f"{version}\n{len(lines)}\n" + "".join(line + "\n" for line in lines)
    write_atomically(path, text.encode("utf-8"), is_synced)


def read_checkpoint(path: str, version: int, parse_entry: Callable[[list[str]], T]) -> list[T] | None:
    """Read a Kafka-format checkpoint file.

    Args:
        path: the file.
        version: the only version accepted.
        parse_entry: turns the fields of one entry line into a value; may raise ValueError.

    Returns:
        The parsed entries, or None if the file does not exist.

    Raises:
        CorruptCheckpointError: wrong version, wrong count, or an entry that does not parse.
        KafkaStorageError: the file exists but cannot be read.
    """
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise KafkaStorageError(path, "read checkpoint", error) from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorruptCheckpointError(path, 0, f"not UTF-8: {error}") from None
    if not text.endswith("\n"):
        raise CorruptCheckpointError(path, 0, "the last line is not terminated (torn write?)")
    lines = text[:-1].split("\n")
    if len(lines) < 2:
        raise CorruptCheckpointError(path, len(lines), "missing version or count line")
    if lines[0].strip() != str(version):
        raise CorruptCheckpointError(path, 1, f"version {lines[0]!r}, expected {version}")
    try:
        count = int(lines[1])
    except ValueError:
        raise CorruptCheckpointError(path, 2, f"count {lines[1]!r} is not an integer") from None
    if count != len(lines) - 2:
        raise CorruptCheckpointError(path, 2, f"count says {count} entries, the file has {len(lines) - 2}")
    entries: list[T] = []
    for number, line in enumerate(lines[2:], start=3):
        try:
            entries.append(parse_entry(line.split(" ")))
        except (ValueError, IndexError) as error:
            raise CorruptCheckpointError(path, number, f"entry {line!r} does not parse: {error}") from None
    return entries


def parse_int_fields(count: int) -> Callable[[list[str]], tuple[int, ...]]:
    """An entry parser for lines of exactly `count` integers."""

    def parse(fields: list[str]) -> tuple[int, ...]:
        if len(fields) != count:
            raise ValueError(f"expected {count} fields, got {len(fields)}")
        return tuple(int(field) for field in fields)

    return parse


def remove_stale_temp_files(directory: str) -> list[str]:
    """Delete `*.tmp` files left by writes that crashed before their rename; return their names."""
    removed: list[str] = []
    for name in os.listdir(directory):
        if name.endswith(TEMP_SUFFIX):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed
