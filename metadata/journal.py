"""The voter's durable Raft log (journal) and Raft meta (term, vote, commit index).

Owns the on-disk Raft state of one voter. It implements the journal interface pysyncobj calls
(`add`, `clear`, `deleteEntriesFrom`, `deleteEntriesTo`, indexing, `len`, `setCurrentTerm`, ... —
the method names are pysyncobj's, hence camelCase) without importing pysyncobj, and replaces
pysyncobj's own FileJournal, which never fsyncs, keeps 32-bit offsets in an mmap (4 GiB limit) and
rewrites the live file in place when it trims (a crash mid-trim truncates the log).

Durability contract (with `fsync=True`, the default):
- `add` only buffers. `sync()` writes the buffer and fdatasyncs; the quorum calls it before any
  message that acknowledges entries (AppendEntries success), before counting its own log towards
  the commit index, and after every tick. `durable_last_index` is the last entry on stable storage.
- `setCurrentTerm` (term and vote) is written and fsynced (file and directory) before it returns,
  so a vote is never granted, nor a RequestVote sent, for a term that a crash could forget.
- Truncating the tail (`deleteEntriesFrom`, `clear`) is ordered before the next `sync()` returns.
- Trimming the head after a snapshot (`deleteEntriesTo`) first fsyncs the directory (so the
  snapshot file's rename is durable), then writes the remaining entries to a new file, fsyncs it,
  renames it over the journal and fsyncs the directory: a crash leaves the old or the new journal.
- The commit index is a hint (Raft does not need it durable); it is written at most once a second,
  never above the durable end of the log.
With `fsync=False` the same writes happen without fsync: a process crash (kill -9) loses nothing
written, a power loss may lose the unsynced tail.

Journal file layout (all integers big-endian):

    header   8 bytes  magic b"FRSHJRNL"
             4 bytes  format version (1)
             4 bytes  reserved (0)
    record   4 bytes  body length n (>= 16)
             4 bytes  CRC-32 (zlib) of the body
             n bytes  body: raft index (u64), term (u64), entry data (n - 16 bytes)

Applied entries are never replaced by different ones. When a leader re-sends entries a follower
already applied, pysyncobj truncates and re-appends them (and logs "truncating already-applied log
entries"); that is harmless only when the re-appended entries are identical. The quorum's
transport removes the usual cause (pysyncobj rewinding the leader's next index on every
acknowledgement), and as a safety net the journal keeps every applied entry it truncates and
asserts that whatever is appended at that index later is byte-identical: a voter whose state
machine would diverge stops instead (`applied_index` is wired to pysyncobj's last applied index).

Records are contiguous in raft index. On open, the log is read up to the first record that is
short, fails its CRC or breaks contiguity; the file is truncated there and the position logged
(a torn tail from a crash; as Kafka's LogSegment.recover).

Meta file: JSON {"format_version": 1, "term": int, "voted_for": str | null,
"commit_raft_index": int}, always replaced atomically (write temp, fsync, rename, fsync dir).

Imports only the standard library and freshet.metadata.errors. Not thread-safe: owned by the
quorum thread (other threads may read the integer statistics).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import struct
import time
import zlib

from freshet.metadata.errors import JournalError, JournalFullError

logger = logging.getLogger(__name__)

JOURNAL_FILE_NAME = "raft.journal"
META_FILE_NAME = "raft.meta"
JOURNAL_MAGIC = b"FRSHJRNL"
JOURNAL_FORMAT_VERSION = 1
META_FORMAT_VERSION = 1
RECORD_BYTES_MAX = 64 * 1024 * 1024

_HEADER = struct.Struct(">8sII")          # magic, format version, reserved
_RECORD_PREFIX = struct.Struct(">II")     # body length, CRC-32 of body
_BODY_PREFIX = struct.Struct(">QQ")       # raft index, term

Entry = tuple[bytes, int, int]            # (data, raft index, term), as pysyncobj stores entries


def fsync_directory(path: str) -> None:
    """fsync a directory so that renames and creations inside it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: str, data: bytes, fsync: bool) -> None:
    """Replace `path` with `data`: a crash leaves either the old or the new content."""
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)        # a full disk: give the space back, the old file stays
        raise
    finally:
        os.close(fd)
    os.replace(temporary, path)
    if fsync:
        fsync_directory(os.path.dirname(os.path.abspath(path)))


def _starts_with_a_record(data: bytes) -> bool:
    """Whether a record with a valid CRC follows the header's place (tells a damaged header of
    our journal from a file of another format, which is refused)."""
    if len(data) < _HEADER.size + _RECORD_PREFIX.size:
        return False
    length, crc = _RECORD_PREFIX.unpack_from(data, _HEADER.size)
    body = data[_HEADER.size + _RECORD_PREFIX.size : _HEADER.size + _RECORD_PREFIX.size + length]
    return _BODY_PREFIX.size <= length == len(body) and zlib.crc32(body) == crc


def _encode_record(data: bytes, raft_index: int, term: int) -> bytes:
    body = _BODY_PREFIX.pack(raft_index, term) + data
    return _RECORD_PREFIX.pack(len(body), zlib.crc32(body)) + body


class RaftJournal:
    """Durable Raft log and meta of one voter (see the module docstring).

    Not thread-safe: every method is called by the quorum thread, except that other threads may
    read `durable_last_index`, `fsync_count` and `size_bytes`.
    """

    def __init__(self, directory: str, fsync: bool = True) -> None:
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, JOURNAL_FILE_NAME)
        self.meta_path = os.path.join(self.directory, META_FILE_NAME)
        self.is_fsync_enabled = fsync
        self._entries: list[Entry] = []
        self._positions: list[int] = []     # file position of each entry's record
        self._pending = bytearray()         # records added but not yet written
        self._file_bytes = 0                # bytes written to the file (header included)
        self._needs_fsync = False
        self.durable_last_index = 0
        self.fsync_count = 0
        self.truncated_tail_bytes = 0       # bytes dropped by recovery when opening
        # raft index -> applied entry truncated by pysyncobj, awaiting its identical re-append.
        self._applied_truncated: dict[int, Entry] = {}
        self.applied_index = lambda: 0      # replaced by the quorum: pysyncobj's last applied index
        self.applied_entries_rewritten = 0
        self._meta = self._read_meta()
        self._meta_saved_commit = self._meta["commit_raft_index"]
        self._fd = -1
        self._open_and_recover()

    # -- opening and recovery -------------------------------------------------------------------

    def _read_meta(self) -> dict:
        default = {"format_version": META_FORMAT_VERSION, "term": 0, "voted_for": None, "commit_raft_index": 1}
        try:
            with open(self.meta_path, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            return default
        try:
            meta = json.loads(text)
        except ValueError as error:
            raise JournalError(self.meta_path, f"unreadable meta file: {error}") from None
        if not isinstance(meta, dict) or meta.get("format_version") != META_FORMAT_VERSION:
            raise JournalError(self.meta_path, f"unknown meta format {meta!r:.100}")
        for key in ("term", "commit_raft_index"):
            if not isinstance(meta.get(key), int):
                raise JournalError(self.meta_path, f"meta field {key} is not an integer")
        if meta.get("voted_for") is not None and not isinstance(meta["voted_for"], str):
            raise JournalError(self.meta_path, "meta field voted_for is not a string")
        return meta

    def _open_and_recover(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as error:
            raise JournalError(self.path, f"cannot open: {error}") from error
        self._fd = fd
        with open(self.path, "rb") as f:
            data = f.read()
        if not data:
            header = _HEADER.pack(JOURNAL_MAGIC, JOURNAL_FORMAT_VERSION, 0)
            self._write(header)
            self._file_bytes = len(header)
            self._fsync_file()
            if self.is_fsync_enabled:
                fsync_directory(self.directory)
            return
        if len(data) < _HEADER.size:
            raise JournalError(self.path, f"{len(data)} bytes is shorter than the journal header")
        magic, version, _ = _HEADER.unpack_from(data)
        if magic != JOURNAL_MAGIC or version != JOURNAL_FORMAT_VERSION:
            if not _starts_with_a_record(data):
                raise JournalError(self.path, f"not a Freshet journal (magic {magic!r}, version {version})")
            data = self._repair_header(data, f"damaged header (magic {magic!r}, version {version})")
        position = _HEADER.size
        reason = ""
        while position < len(data):
            if len(data) - position < _RECORD_PREFIX.size:
                reason = "short record header"
                break
            length, crc = _RECORD_PREFIX.unpack_from(data, position)
            if not _BODY_PREFIX.size <= length <= RECORD_BYTES_MAX:
                reason = f"implausible record length {length}"
                break
            start = position + _RECORD_PREFIX.size
            if start + length > len(data):
                reason = "record cut short"
                break
            body = data[start : start + length]
            if zlib.crc32(body) != crc:
                reason = "CRC mismatch"
                break
            raft_index, term = _BODY_PREFIX.unpack_from(body)
            if self._entries and raft_index != self._entries[-1][1] + 1:
                reason = f"raft index {raft_index} does not follow {self._entries[-1][1]}"
                break
            self._entries.append((bytes(body[_BODY_PREFIX.size :]), raft_index, term))
            self._positions.append(position)
            position = start + length
        if position < len(data):
            logger.warning(
                "raft journal %s: %s at position %d of %d; truncating the tail (%d entries kept)",
                self.path,
                reason,
                position,
                len(data),
                len(self._entries),
            )
            self.truncated_tail_bytes = len(data) - position
            os.ftruncate(self._fd, position)
            self._fsync_file()
        self._file_bytes = position
        self.durable_last_index = self._entries[-1][1] if self._entries else 0

    def _repair_header(self, data: bytes, reason: str) -> bytes:
        """The header is damaged but a valid record follows it: this is our journal with a bit
        flipped in its first bytes. Write the header again (and fsync) and keep every entry."""
        logger.error("raft journal %s: %s, but its first record checks out: header rewritten", self.path, reason)
        header = _HEADER.pack(JOURNAL_MAGIC, JOURNAL_FORMAT_VERSION, 0)
        with open(self.path, "r+b") as file:
            file.write(header)
            file.flush()
            if self.is_fsync_enabled:
                os.fsync(file.fileno())
        return header + data[_HEADER.size :]

    # -- low-level writes -----------------------------------------------------------------------

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JournalFullError(self.path, f"write failed: {error}") from error
            raise JournalError(self.path, f"write failed: {error}") from error

    def _cut_back_to_last_record(self) -> None:
        """Remove a partly written tail (a full disk): the file ends at its last whole record
        again, so the retried write does not follow a torn record that recovery would stop at."""
        try:
            os.ftruncate(self._fd, self._file_bytes)
        except OSError as error:
            raise JournalError(self.path, f"cannot cut a partial write back: {error}") from error

    def _fsync_file(self) -> None:
        if not self.is_fsync_enabled:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as error:
            raise JournalError(self.path, f"fdatasync failed: {error}") from error
        self.fsync_count += 1

    # -- durability -----------------------------------------------------------------------------

    @property
    def is_dirty(self) -> bool:
        """True when something added or truncated is not yet on stable storage."""
        return bool(self._pending) or self._needs_fsync

    @property
    def last_index(self) -> int:
        return self._entries[-1][1] if self._entries else 0

    def term_at(self, raft_index: int) -> int | None:
        """The term of the entry at `raft_index`, or None when the log does not hold it."""
        if not self._entries or not self._entries[0][1] <= raft_index <= self._entries[-1][1]:
            return None
        return self._entries[raft_index - self._entries[0][1]][2]

    @property
    def size_bytes(self) -> int:
        return self._file_bytes + len(self._pending)

    def sync(self) -> bool:
        """Write buffered records and make everything durable. Returns True when there was work."""
        if not self.is_dirty:
            return False
        if self._pending:
            try:
                self._write(self._pending)
            except JournalFullError:
                self._cut_back_to_last_record()
                # A fresh buffer: the failed write's memoryviews may outlive this call (the
                # exception's traceback holds them), and a bytearray with views cannot grow.
                self._pending = bytearray(self._pending)
                raise
            self._file_bytes += len(self._pending)
            self._pending = bytearray()
        self._fsync_file()
        self._needs_fsync = False
        self.durable_last_index = self.last_index
        return True

    def align_with_snapshot(self, previous: Entry, last_applied: Entry) -> int:
        """Drop entries before `previous` when the log holds `previous` and `last_applied`.

        A voter killed after renaming a new snapshot file but before trimming its journal restarts
        with a journal that starts before the snapshot. pysyncobj 0.3.17 then finds that the journal
        does not begin with the snapshot's two entries and discards the *whole* journal, including
        acknowledged entries after the snapshot (../shared/notes/pysyncobj.md, durability finding 1).
        Trimming the journal so that it begins exactly with those entries makes pysyncobj keep the
        tail. When the journal does not hold the entries (it is behind the snapshot, or diverged),
        nothing is done and pysyncobj rightly replaces the journal with the snapshot's entries.

        Returns:
            The number of entries dropped.
        """
        if len(self._entries) < 2:
            return 0
        position = previous[1] - self._entries[0][1]
        if position <= 0 or position + 1 >= len(self._entries):
            return 0
        if tuple(self._entries[position]) != tuple(previous) or tuple(self._entries[position + 1]) != tuple(last_applied):
            return 0
        self.deleteEntriesTo(position)
        return position

    # -- pysyncobj's Journal interface ----------------------------------------------------------

    def add(self, command: bytes, idx: int, term: int) -> None:
        """Append an entry (buffered until sync())."""
        assert not self._entries or idx == self._entries[-1][1] + 1, (idx, self.last_index)
        data = bytes(command)
        if self._applied_truncated:
            applied = self._applied_truncated.pop(idx, None)
            if applied is not None:
                # Invariant: an applied (committed) entry is only ever rewritten with itself.
                assert applied == (data, idx, term), f"applied raft entry {idx} replaced by a different one"
                self.applied_entries_rewritten += 1
        self._positions.append(self._file_bytes + len(self._pending))
        self._pending += _encode_record(data, idx, term)
        self._entries.append((data, int(idx), int(term)))

    def clear(self) -> None:
        """Remove every entry (pysyncobj then adds a snapshot's two entries)."""
        self._truncate_at(0)
        self._applied_truncated.clear()      # a snapshot now covers whatever was applied

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 - pysyncobj's name
        """Remove entries at list positions >= entryFrom (a divergent tail)."""
        if entryFrom < len(self._entries):
            applied = self.applied_index()
            for entry in self._entries[entryFrom:]:
                if entry[1] > applied:
                    break
                self._applied_truncated[entry[1]] = entry
            self._truncate_at(entryFrom)

    def _truncate_at(self, position: int) -> None:
        if position == len(self._entries):
            return
        cut = self._positions[position] if position < len(self._positions) else self.size_bytes
        if cut >= self._file_bytes:
            del self._pending[cut - self._file_bytes :]
        else:
            self._pending.clear()
            try:
                os.ftruncate(self._fd, cut)
            except OSError as error:
                raise JournalError(self.path, f"truncate failed: {error}") from error
            self._file_bytes = cut
            self._needs_fsync = True
        del self._entries[position:]
        del self._positions[position:]
        self.durable_last_index = min(self.durable_last_index, self.last_index)
        if not self.is_fsync_enabled:
            self._needs_fsync = False

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802 - pysyncobj's name
        """Remove entries at list positions < entryTo (they are in a durable snapshot now)."""
        if entryTo <= 0:
            return
        self.sync()
        if self.is_fsync_enabled:
            fsync_directory(self.directory)          # the snapshot's rename, before we drop entries
        kept = self._entries[entryTo:]
        header = _HEADER.pack(JOURNAL_MAGIC, JOURNAL_FORMAT_VERSION, 0)
        chunks = [header]
        positions = []
        position = len(header)
        for data, raft_index, term in kept:
            record = _encode_record(data, raft_index, term)
            positions.append(position)
            position += len(record)
            chunks.append(record)
        try:
            write_file_atomically(self.path, b"".join(chunks), self.is_fsync_enabled)
            new_fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as error:
            raise JournalError(self.path, f"rewriting the journal failed: {error}") from error
        os.close(self._fd)
        self._fd = new_fd
        self._entries = kept
        self._positions = positions
        self._file_bytes = position
        if self.is_fsync_enabled:
            self.fsync_count += 1

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802, N803
        self._meta["commit_raft_index"] = raftCommitIndex

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        """The commit index hint, never past the last entry (after recovery cut a damaged tail
        or set a damaged journal aside, the hint may name entries this voter no longer has)."""
        return min(self._meta["commit_raft_index"], max(self.last_index, 1))

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:  # noqa: N802, N803
        """Persist term and vote before returning (Raft §5: before any message reflects them)."""
        self._meta["term"] = term
        self._meta["voted_for"] = votedForNodeId
        self._save_meta()

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._meta["term"]

    def getVotedForNodeId(self) -> str | None:  # noqa: N802
        return self._meta["voted_for"]

    def onOneSecondTimer(self) -> None:  # noqa: N802
        """Persist the commit index hint (never above the durable end of the log). A full disk
        defers both to a later second: the hint is not needed for safety, and unwritten records
        stay buffered and unacknowledged (the quorum's tick retries them)."""
        try:
            self.sync()
            if self._meta["commit_raft_index"] != self._meta_saved_commit:
                self._save_meta()
        except JournalFullError as error:
            logger.warning("raft journal: %s; retrying later", error)

    def _save_meta(self) -> None:
        meta = dict(self._meta)
        meta["commit_raft_index"] = max(1, min(meta["commit_raft_index"], self.durable_last_index))
        started = time.monotonic()
        try:
            write_file_atomically(self.meta_path, json.dumps(meta, sort_keys=True).encode(), self.is_fsync_enabled)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JournalFullError(self.meta_path, f"writing meta failed: {error}") from error
            raise JournalError(self.meta_path, f"writing meta failed: {error}") from error
        if self.is_fsync_enabled:
            self.fsync_count += 2
        self._meta_saved_commit = meta["commit_raft_index"]
        elapsed = time.monotonic() - started
        if elapsed > 0.1:
            logger.warning("raft meta write took %.3f s", elapsed)

    def _destroy(self) -> None:
        """pysyncobj's close hook."""
        self.close()

    def close(self) -> None:
        """Make everything durable and close the file. Idempotent."""
        if self._fd < 0:
            return
        try:
            self.sync()
            if self._meta["commit_raft_index"] != self._meta_saved_commit:
                self._save_meta()
        finally:
            os.close(self._fd)
            self._fd = -1
