"""Free space of a log directory: the low- and high-water marks, the "full" state, the disk reserve.

Owns, for one log directory (Freshet has one per node, `<data>/logs`):

- the look at the filesystem (`poll`, an injectable `statvfs`), done by the server every
  `DISK_CHECK_INTERVAL_MS`, plus the bytes appended since the last look (`note_appended`), so that
  a burst between two looks cannot run past the low-water mark;
- the decision (`check_append`): a leader append of `size` bytes is refused with
  `LogDirFullError` when the directory is full, or when the estimated free space after it
  (last look - appended since - size) falls under the low-water mark, which makes it full at once;
- hysteresis: once full, the directory stays full until a look finds free space at or above the
  high-water mark; then it is "ok" again without a restart;
- the disk reserve: a file of `reserve_bytes` (zeros, allocated) kept in the data directory while
  the directory is ok. It is deleted as soon as the directory becomes full, so that what must
  still be written (followers' copies of accepted records, the metadata quorum's journal and
  snapshots, consumer offsets) finds that much room even when another process ate the rest, and
  re-created once free space is back above high-water + reserve (so re-creating it cannot make
  the directory full again).

Marks (bytes): low = max(free_min_bytes, free_min_percent of the filesystem's size);
high = low + max(low / 4, 1 MiB), capped at the filesystem's size. Who is exempt from the low mark
(followers, internal topics) is the caller's choice; this module only answers for one append.

Imports: standard library and freshet.storage.errors. Forbidden: grpc, wire types (freshet.v1),
metadata, server, client, cli (import-linter contract).
Thread-safety: thread-safe (one lock; appends on the event loop, looks on a worker thread, HTTP
readers of `state()`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable

from freshet.storage.errors import LogDirFullError, is_disk_full

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
#: The smallest gap between the low- and the high-water mark.
HYSTERESIS_BYTES_MIN = MIB


@dataclasses.dataclass(frozen=True, slots=True)
class DiskSpaceLimits:
    """The configured marks (disk.free.min.bytes, disk.free.min.percent, disk.reserve.bytes).
    Thread-safe (immutable)."""

    free_min_bytes: int
    free_min_percent: float
    reserve_bytes: int

    def low_water_bytes(self, total_bytes: int) -> int:
        """Below this many free bytes the directory is full."""
        return max(self.free_min_bytes, int(total_bytes * self.free_min_percent / 100))

    def high_water_bytes(self, total_bytes: int) -> int:
        """A full directory is ok again at this many free bytes (at most the filesystem's size)."""
        low = self.low_water_bytes(total_bytes)
        return min(max(total_bytes, low), low + max(low // 4, HYSTERESIS_BYTES_MIN))


@dataclasses.dataclass(frozen=True, slots=True)
class DiskSpaceState:
    """What the last look found, for metrics, /readyz, heartbeats and the console. Immutable.

    Attributes:
        directory: the log directory.
        free_bytes: free bytes for unprivileged writers at the last look, less what was appended
            since (-1 before the first look).
        total_bytes: the filesystem's size (-1 before the first look).
        low_water_bytes, high_water_bytes: the marks for that size.
        is_full: refusing produce (see the module docstring for the hysteresis).
        reserve_bytes: bytes the reserve file holds now (0 while released).
        error: why the last look failed ("" when it did not).
    """

    directory: str
    free_bytes: int
    total_bytes: int
    low_water_bytes: int
    high_water_bytes: int
    is_full: bool
    reserve_bytes: int
    error: str = ""

    @property
    def label(self) -> str:
        """"full" or "ok" (the disk state `cluster status` and the console show)."""
        return "full" if self.is_full else "ok"


class DiskSpaceMonitor:
    """Free space and the full state of one log directory (module docstring). Thread-safe."""

    def __init__(
        self,
        directory: str,
        limits: DiskSpaceLimits,
        *,
        reserve_path: str | None = None,
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
    ) -> None:
        self.directory = directory
        self.reserve_path = reserve_path
        self._statvfs = statvfs
        self._lock = threading.Lock()
        self._limits = limits
        self._free_bytes = -1
        self._total_bytes = -1
        self._appended_bytes = 0            # appended since the last look
        self._is_full = False
        self._error = ""
        #: How often the directory became full, and how many appends it refused (for tests and logs).
        self.full_transitions = 0
        self.refused_appends = 0

    # -- configuration ---------------------------------------------------------------------------

    @property
    def limits(self) -> DiskSpaceLimits:
        return self._limits

    def set_limits(self, limits: DiskSpaceLimits) -> None:
        """New marks (a dynamic config change); they apply from the next look."""
        with self._lock:
            self._limits = limits

    # -- looks -----------------------------------------------------------------------------------

    def poll(self) -> DiskSpaceState:
        """Look at the filesystem, move between ok and full, and keep or release the reserve.

        Never raises: a failed statvfs keeps the previous state and reports the error.
        """
        try:
            found = self._statvfs(self.directory)
        except OSError as error:
            with self._lock:
                self._error = f"statvfs {self.directory}: {error.strerror or error}"
            return self.state()
        free = found.f_bavail * found.f_frsize
        total = found.f_blocks * found.f_frsize
        with self._lock:
            limits = self._limits
            self._free_bytes, self._total_bytes, self._appended_bytes, self._error = free, total, 0, ""
            low, high = limits.low_water_bytes(total), limits.high_water_bytes(total)
            if not self._is_full and free < low:
                self._become_full(free, low)
            elif self._is_full and free >= high:
                self._is_full = False
                logger.warning(
                    "log directory %s has space again: %d bytes free, at or above the high-water mark of %d "
                    "bytes; produce is accepted again", self.directory, free, high,
                )
            is_full = self._is_full
        self._keep_reserve(is_full, free, high, limits.reserve_bytes)
        return self.state()

    def _become_full(self, free: int, low: int) -> None:
        """Holds the lock."""
        self._is_full = True
        self.full_transitions += 1
        logger.error(
            "log directory %s is full: %d bytes free, below the low-water mark of %d bytes; produce is "
            "refused (KAFKA_STORAGE_ERROR) until free space is back above the high-water mark",
            self.directory, free, low,
        )

    def _keep_reserve(self, is_full: bool, free: int, high: int, reserve_bytes: int) -> None:
        """Release the reserve while full; re-create it when there is room for it above high-water."""
        path = self.reserve_path
        if path is None:
            return
        held = _file_size(path)
        if held and (is_full or reserve_bytes == 0):
            try:
                os.unlink(path)
                logger.warning("released the %d-byte disk reserve %s", held, path)
            except OSError as error:
                logger.error("cannot release the disk reserve %s: %s", path, error)
        elif not is_full and reserve_bytes > 0 and held != reserve_bytes and free - reserve_bytes + held >= high:
            _allocate(path, reserve_bytes)

    # -- appends ---------------------------------------------------------------------------------

    def check_append(self, size_bytes: int, operation: str = "produce") -> None:
        """Refuse an append of `size_bytes` when the directory is full or the append would take
        the estimated free space under the low-water mark (the directory is then full at once).

        Raises:
            LogDirFullError: naming the directory, the free bytes and the low-water mark.
        """
        with self._lock:
            if self._total_bytes < 0:
                return                      # no look yet: nothing to decide on
            free = self._free_bytes - self._appended_bytes
            low = self._limits.low_water_bytes(self._total_bytes)
            if not self._is_full and free - size_bytes < low:
                self._become_full(free, low)
            if self._is_full:
                self.refused_appends += 1
                raise LogDirFullError(self.directory, operation, free_bytes=max(free, 0), low_water_bytes=low)

    def note_appended(self, size_bytes: int) -> None:
        """`size_bytes` were written to the directory since the last look (any append)."""
        with self._lock:
            self._appended_bytes += size_bytes

    @property
    def is_full(self) -> bool:
        with self._lock:
            return self._is_full

    def state(self) -> DiskSpaceState:
        with self._lock:
            total = self._total_bytes
            limits = self._limits
            return DiskSpaceState(
                directory=self.directory,
                free_bytes=self._free_bytes - self._appended_bytes if total >= 0 else -1,
                total_bytes=total,
                low_water_bytes=limits.low_water_bytes(total) if total >= 0 else -1,
                high_water_bytes=limits.high_water_bytes(total) if total >= 0 else -1,
                is_full=self._is_full,
                reserve_bytes=_file_size(self.reserve_path) if self.reserve_path else 0,
                error=self._error,
            )

    def close(self) -> None:
        """Nothing to release: the reserve file stays for the next start (it is space, not state)."""


def _file_size(path: str | None) -> int:
    if path is None:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _allocate(path: str, size_bytes: int) -> None:
    """Write the reserve file with `size_bytes` allocated (not sparse); on ENOSPC leave none."""
    temporary = path + ".tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.posix_fallocate(fd, 0, size_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        logger.info("disk reserve %s holds %d bytes", path, size_bytes)
    except OSError as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        log = logger.warning if is_disk_full(error) else logger.error
        log("cannot create the disk reserve %s (%d bytes): %s", path, size_bytes, error)
