"""The voter's snapshot file, in our own format (no pickle, no fork): what pysyncobj's
serializer/deserializer hooks do, without pysyncobj.

Owns reading the snapshot at start (and trimming the journal to begin at the snapshot's entries,
which neutralises pysyncobj's "discard the whole journal after a crash during compaction":
../shared/notes/pysyncobj.md, durability finding 1), writing a snapshot when pysyncobj compacts
(fsynced before pysyncobj renames it into place), and loading one, either the file read at start
(nothing to do) or one received from the leader (fsynced with its directory before pysyncobj drops
the journal). MetadataQuorum (quorum.py) wires these into pysyncobj.

Imports only the standard library and freshet.metadata (image, journal, snapshot, errors).
Forbidden: pysyncobj (only quorum.py imports it), grpc, storage, server, client, cli.
Not thread-safe: the quorum thread only (and the constructor's thread before that thread starts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable

from freshet.metadata import snapshot
from freshet.metadata.errors import SnapshotFormatError
from freshet.metadata.image import EMPTY_IMAGE, MetadataImage
from freshet.metadata.journal import RaftJournal, fsync_directory

logger = logging.getLogger(__name__)

# pysyncobj's raft entry pairs and voter list, as its serializer and deserializer pass them.
RaftEntries = tuple[tuple[int, int], tuple[int, int], tuple[str, ...]]


class SnapshotStore:
    """One voter's snapshot file (see the module docstring). Not thread-safe (quorum thread).

    Attributes:
        path: the snapshot file (pysyncobj's fullDumpFile).
        raft_index: the raft index of the last entry the newest snapshot covers (0: none).
    """

    def __init__(self, path: str, voter_addresses: Iterable[str], fsync: bool) -> None:
        self.path = path
        self.raft_index = 0
        self._data_dir = os.path.dirname(path)
        self._voter_addresses = tuple(voter_addresses)
        self._fsync = fsync
        self._preloaded: bytes | None = None

    def remove_leftovers(self) -> None:
        """Delete temporary files a crash left behind."""
        for leftover in (
            self.path + ".tmp",           # our serializer's output before pysyncobj renames it
            self.path + ".1.tmp",         # a snapshot being received from the leader
        ):
            if os.path.exists(leftover):
                os.unlink(leftover)

    def load_at_start(self, journal: RaftJournal) -> MetadataImage:
        """The image of the snapshot file (EMPTY_IMAGE when there is none); trims the journal to
        begin at the snapshot's entries.

        Raises:
            SnapshotFormatError: the file is not a valid snapshot.
        """
        if not os.path.exists(self.path):
            return EMPTY_IMAGE
        with open(self.path, "rb") as f:
            data = f.read()
        contents = snapshot.decode_snapshot_file(data)      # raises SnapshotFormatError
        image = snapshot.decode_snapshot(contents.state)
        self._preloaded = data
        self.raft_index = contents.last_applied.raft_index
        dropped = journal.align_with_snapshot(contents.previous, contents.last_applied)
        if dropped:
            logger.warning(
                "raft journal started %d entries before snapshot %d (crash during compaction): trimmed",
                dropped,
                contents.last_applied.raft_index,
            )
        return image

    def write(self, path: str, data: RaftEntries, image: MetadataImage) -> None:
        """pysyncobj's serializer: write `image` as the snapshot covering data's raft entries to
        `path` (pysyncobj renames it over `self.path` when this returns)."""
        last_applied = snapshot.RaftEntry(*data[0])
        previous = snapshot.RaftEntry(*data[1])
        assert image.offset <= last_applied.raft_index, (image.offset, last_applied.raft_index)
        started = time.monotonic()
        contents = snapshot.encode_snapshot_file(last_applied, previous, self._voter_addresses, snapshot.encode_snapshot(image))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(contents)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except OSError:
            # A full disk: give the space back. pysyncobj keeps the previous snapshot and the
            # whole journal, and compacts again later.
            os.close(fd)
            fd = -1
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        # The journal trim that follows (RaftJournal.deleteEntriesTo) fsyncs the directory before
        # dropping any entry.
        self.raft_index = last_applied.raft_index
        logger.info(
            "metadata snapshot at raft index %d (offset %d): %d bytes in %.3f s",
            last_applied.raft_index,
            image.offset,
            len(contents),
            time.monotonic() - started,
        )

    def load(self, path: str, applied: MetadataImage) -> tuple[MetadataImage | None, RaftEntries]:
        """pysyncobj's deserializer: read the snapshot at `path`.

        Returns:
            (the image to replace `applied` with, or None when this is the file read at start and
            `applied` already is its image; the raft entries and voters for pysyncobj).

        Raises:
            OSError, SnapshotFormatError: unreadable, invalid, or older than `applied`.
        """
        with open(path, "rb") as f:
            data = f.read()
        contents = snapshot.decode_snapshot_file(data)
        is_reset = data != self._preloaded
        image = snapshot.decode_snapshot(contents.state) if is_reset else applied
        if image.offset < applied.offset:
            raise SnapshotFormatError(f"snapshot offset {image.offset} is older than applied {applied.offset}")
        if self._fsync:
            # A snapshot received from the leader: durable before pysyncobj drops the journal.
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_directory(self._data_dir)
        self._preloaded = None
        self.raft_index = contents.last_applied.raft_index
        entries = (tuple(contents.last_applied), tuple(contents.previous), self._voter_addresses)
        return (image if is_reset else None), entries
