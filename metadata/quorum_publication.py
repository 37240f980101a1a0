"""What a metadata voter publishes to the rest of the node: applied commands for watchers and
callbacks for listeners.

Owns the ring of recent applied commands served to watchers that are behind (`CommandRing`), the
apply / reset / leadership listeners and how they are called (`Listeners`), and the two value
types they carry (`AppliedCommand`, `LeadershipChange`). MetadataQuorum (quorum.py) feeds both from
the quorum thread.

Imports only the standard library and freshet.metadata (image) and wire types. Forbidden:
pysyncobj (only quorum.py imports it), grpc, storage, server, client, cli.
Thread-safety: CommandRing and Listeners are thread-safe (each has its own lock); listener calls
happen on the calling (quorum) thread. The value types are immutable.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable

from freshet.metadata.image import MetadataImage
from freshet.v1 import metadata_pb2

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class LeadershipChange:
    """What a leadership listener is told. Thread-safe (immutable).

    Attributes:
        term: the Raft term now.
        leader_id: the leader this voter knows of (None during an election).
        is_leader: True when this voter is the leader (it should then propose ClaimController at
            `term` before anything else).
    """

    term: int
    leader_id: int | None
    is_leader: bool


@dataclasses.dataclass(frozen=True, slots=True)
class AppliedCommand:
    """One applied log entry, as served to watchers (brokers replay `command`). Thread-safe."""

    offset: int
    command: bytes


ApplyListener = Callable[[int, bytes, metadata_pb2.MetadataResult], None]
ResetListener = Callable[[MetadataImage], None]
LeadershipListener = Callable[[LeadershipChange], None]


class CommandRing:
    """The last `capacity` applied commands, for watchers that are a little behind. Thread-safe.

    Invariant: a watcher at an offset >= `floor` can be served every newer command from the ring.
    """

    def __init__(self, capacity: int, floor: int) -> None:
        assert capacity > 0
        self._ring: collections.deque[AppliedCommand] = collections.deque(maxlen=capacity)
        self._floor = floor       # watchers at or above this offset get deltas
        self._lock = threading.Lock()

    def append(self, offset: int, command: bytes) -> None:
        with self._lock:
            if len(self._ring) == self._ring.maxlen:
                self._floor = self._ring[0].offset
            self._ring.append(AppliedCommand(offset, command))

    def reset(self, floor: int) -> None:
        """Forget every command: the image was replaced by a snapshot at offset `floor`."""
        with self._lock:
            self._ring.clear()
            self._floor = floor

    def after(self, after_offset: int) -> list[AppliedCommand] | None:
        """Commands with offset > after_offset, oldest first; None when the ring no longer holds
        them all."""
        with self._lock:
            if after_offset < self._floor:
                return None
            newer = []
            for applied in reversed(self._ring):
                if applied.offset <= after_offset:
                    break
                newer.append(applied)
        newer.reverse()
        return newer


class Listeners:
    """The registered apply, reset and leadership listeners. Thread-safe: registration may happen
    on any thread; `notify_*` run the listeners on the calling thread, logging and ignoring their
    exceptions (a listener must never stop the quorum thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apply: tuple[ApplyListener, ...] = ()
        self._reset: tuple[ResetListener, ...] = ()
        self._leadership: tuple[LeadershipListener, ...] = ()

    def add(self, on_apply: ApplyListener, on_reset: ResetListener | None = None) -> None:
        with self._lock:
            self._apply += (on_apply,)
            if on_reset is not None:
                self._reset += (on_reset,)

    def remove(self, on_apply: ApplyListener, on_reset: ResetListener | None = None) -> None:
        with self._lock:
            self._apply = tuple(f for f in self._apply if f is not on_apply)
            self._reset = tuple(f for f in self._reset if f is not on_reset)

    def add_leadership(self, listener: LeadershipListener) -> None:
        with self._lock:
            self._leadership += (listener,)

    def notify_apply(self, offset: int, command: bytes, result: metadata_pb2.MetadataResult) -> None:
        for listener in self._apply:
            try:
                listener(offset, command, result)
            except Exception:
                logger.exception("apply listener failed at offset %d", offset)

    def notify_reset(self, image: MetadataImage) -> None:
        for listener in self._reset:
            try:
                listener(image)
            except Exception:
                logger.exception("reset listener failed")

    def notify_leadership(self, view: LeadershipChange) -> None:
        for listener in self._leadership:
            try:
                listener(view)
            except Exception:
                logger.exception("leadership listener failed")
