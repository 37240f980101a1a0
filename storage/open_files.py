"""The process-wide, bounded cache of open segment files and index mappings, least recently used out.

Why: a segment reads and writes its `.log` file through a descriptor, and a broker hosts one active
segment per partition replica, so 20,000 replicas held 20,000 descriptors and a node hit its
RLIMIT_NOFILE (EMFILE in the Raft term file, the next file it opened). Kafka keeps every segment
open and asks operators for a high `ulimit -n` (its docs: 100,000 or more); where the limit cannot be
raised that caps the partitions a broker can host. Here the descriptors of segments nobody used
lately are closed and reopened on their next use, so a node hosts more replicas than its limit.

Owns: which holders have an open descriptor, in least-recently-used order, and the budget (how
many may be open at once). The holders: a segment's `.log` file (`LogSegment`) and a sealed
index's memory mapping (`IndexFile`: CPython's mmap keeps a duplicate of the file's descriptor).
A holder pins itself right before a system call or a lookup and unpins right after; a pinned
holder is never closed, so a descriptor cannot be closed (or its number reused by another file)
under a pread, pwrite, fsync, ftruncate or dup, nor a mapping unmapped under a binary search.
Making room closes unpinned holders from the cold end. When every one is pinned the cache goes
over budget for that moment rather than wait.

What a close costs nothing in: page-cache data written through the old descriptor is fsynced
by an fsync through a new one (Linux fsync flushes the file, not the descriptor), which
`LogSegment.flush` does for a segment written since its last flush; a FileRegion owns a `dup` of
the descriptor, so a zero-copy send in flight keeps its file open whatever the cache closes.

Outside the cache: checkpoints, snapshots, index flushes and directories, opened and closed
around each write.

The budget: `configure(n)` (the node's `log.open.files.max`); 0 derives it from the soft
RLIMIT_NOFILE, leaving headroom for sockets, the Raft journal, gRPC, zero-copy regions in flight
and short-lived files (`default_budget`). An open that still fails with EMFILE (other files took the headroom) closes
half the cache and tries once more before the error reaches the log.

Imports: standard library. Thread-safety: thread-safe; one lock, held
for the bookkeeping and the open/close system calls (never for reads or writes).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import threading
from collections import OrderedDict
from typing import Protocol

logger = logging.getLogger(__name__)

#: The smallest budget: below this, caching is pointless and tests with tiny limits still run.
BUDGET_MIN = 8
#: A budget set by hand must leave at least this many descriptors for everything else.
RESERVED_DESCRIPTORS_MIN = 256
#: Descriptors left for everything else when the budget is derived from the limit ...
HEADROOM_DESCRIPTORS = 4096
#: ... but never more than this fraction of the limit (small limits: half of it for segments).
HEADROOM_FRACTION_MAX = 0.5


class Holder(Protocol):
    """What the cache needs of a segment file or an index mapping: a pin count the cache owns,
    and how to open and close its descriptor (both called by the cache, under its lock)."""

    _pins: int

    def _cache_open(self) -> None:
        """Open the descriptor (or mapping). Raises OSError (or ValueError for a mapping)."""

    def _cache_close(self) -> None:
        """Close it (the cache calls this only while nobody has it pinned)."""


def descriptor_limit() -> int:
    """This process's soft RLIMIT_NOFILE (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_budget(limit: int | None = None) -> int:
    """Segment descriptors allowed for a descriptor limit: the limit less min(4096, half of it)
    for sockets, the Raft journal, index mappings and the rest (20,000 -> 15,904; 1,024 -> 512)."""
    limit = descriptor_limit() if limit is None else limit
    headroom = min(HEADROOM_DESCRIPTORS, int(limit * HEADROOM_FRACTION_MAX))
    return max(BUDGET_MIN, limit - headroom)


def exhaustion_hint() -> str:
    """One line for an operator whose node ran out of descriptors: what is open and what to change."""
    try:
        in_use = str(len(os.listdir("/proc/self/fd")))
    except OSError:
        in_use = "all"                          # listing them takes a descriptor too
    return (
        f"out of file descriptors: the limit is {descriptor_limit()} (ulimit -n), {in_use} are open, "
        f"{OPEN_FILES.open_count} of them segment files (log.open.files.max allows {OPEN_FILES.budget}); "
        f"raise the limit or lower log.open.files.max"
    )


class OpenFileCache:
    """The LRU of open segment descriptors (module docstring). Thread-safe."""

    def __init__(self, budget: int) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[Holder, None] = OrderedDict()
        self.budget = max(BUDGET_MIN, budget)
        #: Descriptors opened (first use and every reopen) and closed to make room, since start.
        self.opens = 0
        self.evictions = 0

    def configure(self, budget: int) -> None:
        """Set the budget (0: `default_budget()`) and close what no longer fits."""
        with self._lock:
            self.budget = default_budget() if budget == 0 else max(BUDGET_MIN, budget)
            self._make_room(0)
        logger.info(
            "segment files: at most %d open at once (descriptor limit %d)", self.budget, descriptor_limit()
        )

    @property
    def open_count(self) -> int:
        return len(self._open)

    def pin(self, holder: Holder) -> None:
        """Open the holder's descriptor if it was closed; it stays open until `unpin`.

        Raises:
            OSError, ValueError: it cannot be opened (the caller names the file in its error).
        """
        with self._lock:
            if holder in self._open:
                self._open.move_to_end(holder)
            else:
                self._open_locked(holder)
            holder._pins += 1

    def unpin(self, holder: Holder) -> None:
        with self._lock:
            holder._pins -= 1

    def close(self, holder: Holder) -> None:
        """Close the holder's descriptor now (the segment closes, is released or deleted)."""
        with self._lock:
            if holder in self._open:
                del self._open[holder]
                holder._cache_close()

    def _open_locked(self, holder: Holder) -> None:
        self._make_room(1)
        try:
            holder._cache_open()
        except OSError as error:
            if error.errno != errno.EMFILE or not self._open:
                raise
            shed = self._make_room(len(self._open) // 2 + 1, force=True)
            logger.warning(
                "out of file descriptors (limit %d) with %d segment files open: closed %d and retrying; "
                "lower log.open.files.max (now %d) or raise the limit",
                descriptor_limit(),
                len(self._open) + shed,
                shed,
                self.budget,
            )
            holder._cache_open()
        self._open[holder] = None
        self.opens += 1

    def _make_room(self, wanted: int, *, force: bool = False) -> int:
        """Close unpinned descriptors from the cold end until `wanted` more fit (or, `force`,
        until `wanted` are closed). A pinned one met on the way moves to the warm end (it is in
        use). Returns how many were closed."""
        closed = 0
        skipped = 0
        entries = self._open
        while (closed < wanted) if force else (len(entries) + wanted > self.budget):
            if skipped >= len(entries):
                break  # everything left is pinned: over budget for now
            victim = next(iter(entries))
            if victim._pins:
                entries.move_to_end(victim)
                skipped += 1
                continue
            del entries[victim]
            victim._cache_close()
            closed += 1
        self.evictions += closed
        return closed


#: The one cache of this process (a node's segments share one descriptor limit).
OPEN_FILES = OpenFileCache(default_budget())
