"""The node's current metadata image and its change notifications, on the node's event loop.

Owns `MetadataPublisher` and its two sources, behind one interface (`image`, `add_listener`,
`wait_for_offset`):

- `QuorumPublisher` (nodes with the controller role): the local voter's image. The quorum's
  apply and reset listeners run on the Raft thread; they only schedule one refresh on the loop
  (coalesced: a burst of 5,000 commits is one refresh that reads the newest image).
- `WatchPublisher` (broker-only nodes): a `WatchMetadata` stream to any controller. It starts from
  a snapshot, replays deltas with `state_machine.apply_bytes`, never applies an offset that is not
  newer than its image, and re-syncs (reconnects from its offset; the server sends a snapshot when
  it can no longer serve deltas) when a batch does not follow its image (`previous_offset`) or
  the stream goes quiet past the keepalive timeout. A voter cut off from the leader still sends
  keepalives but no news: when the image's controller epoch stays below the epoch the broker's
  own heartbeat replies carry for WATCH_STALE_S, the watcher moves to the controller it
  heartbeats to.

Listeners are called on the loop with (old image, new image); they must be quick.

Imports: asyncio, grpc (WatchPublisher), freshet.metadata, freshet.server, wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop except the quorum
listeners, which only call `loop.call_soon_threadsafe`. `image` may be read from any thread (a
reference to an immutable image).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import time
from collections.abc import Callable

import grpc
from freshet.metadata import snapshot, state_machine
from freshet.metadata.errors import SnapshotFormatError
from freshet.metadata.image import EMPTY_IMAGE, MetadataImage
from freshet.metadata.quorum import MetadataQuorum
from freshet.server.cluster.channels import ControllerChannels, cancelled_by_channel
from freshet.server.tasks import cancel_and_wait
from freshet.v1 import controller_pb2

logger = logging.getLogger(__name__)

ImageListener = Callable[[MetadataImage, MetadataImage], None]

WATCH_KEEPALIVE_S = 1.0            # the server sends an empty batch after this much silence
WATCH_SILENCE_TIMEOUT_S = 5.0      # the watcher reconnects after this much silence
WATCH_RETRY_S = 0.1
WATCH_STALE_S = 3.0                # behind the broker's heartbeat controller this long: move


class MetadataPublisher(abc.ABC):
    """The current image and change notifications (see the module docstring).

    Not thread-safe: loop only (reading `image` is safe from any thread).
    """

    def __init__(self) -> None:
        self._image: MetadataImage = EMPTY_IMAGE
        self._listeners: list[ImageListener] = []
        self._changed = asyncio.Event()

    @property
    def image(self) -> MetadataImage:
        return self._image

    def add_listener(self, listener: ImageListener) -> None:
        """Call listener(old, new) on the loop after every published image."""
        self._listeners.append(listener)

    def remove_listener(self, listener: ImageListener) -> None:
        self._listeners = [f for f in self._listeners if f is not listener]

    def _publish(self, image: MetadataImage) -> None:
        old = self._image
        if image.offset <= old.offset:
            return                               # never go back (or publish the same offset twice)
        self._image = image
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for listener in list(self._listeners):
            try:
                listener(old, image)
            except Exception:
                logger.exception("metadata listener failed")

    async def wait_for_offset(self, offset: int, timeout_s: float) -> bool:
        """Wait until the image's offset is >= `offset`; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._image.offset < offset:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def change_event(self) -> asyncio.Event:
        """An event set by the next publish (take it before reading state, then wait on it)."""
        return self._changed

    async def wait_for_change(self, timeout_s: float) -> bool:
        """Wait for the next published image; False on timeout."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    @abc.abstractmethod
    async def start(self) -> None:
        """Publish the first image and start following the source."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop following the source."""


class QuorumPublisher(MetadataPublisher):
    """The local voter's image (controller role). Not thread-safe (loop), see the module docstring."""

    def __init__(self, quorum: MetadataQuorum, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._quorum = quorum
        self._loop = loop
        self._pending = False
        self._pending_lock = threading.Lock()

    async def start(self) -> None:
        self._quorum.add_listener(self._on_apply, self._on_reset)
        self._publish(self._quorum.image)

    async def close(self) -> None:
        self._quorum.remove_listener(self._on_apply, self._on_reset)

    @property
    def is_caught_up(self) -> bool:
        """The quorum has a leader and this voter applied the current leader's claim (so every
        entry committed before it)."""
        quorum = self._quorum
        return quorum.leader_id is not None and quorum.image.controller_epoch == quorum.term

    # Raft thread: schedule one refresh, never block.
    def _on_apply(self, offset: int, data: bytes, result) -> None:
        self._schedule()

    def _on_reset(self, image: MetadataImage) -> None:
        self._schedule()

    def _schedule(self) -> None:
        with self._pending_lock:
            if self._pending:
                return
            self._pending = True
        try:
            self._loop.call_soon_threadsafe(self._refresh)
        except RuntimeError:
            pass                                  # the loop is closed: the node is stopping

    def _refresh(self) -> None:
        with self._pending_lock:
            self._pending = False
        self._publish(self._quorum.image)


class WatchPublisher(MetadataPublisher):
    """Metadata from a WatchMetadata stream (broker-only nodes). Not thread-safe (loop)."""

    def __init__(
        self,
        channels: ControllerChannels,
        node_id: int,
        controller_hint: Callable[[], int | None],
        newest_controller_epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        super().__init__()
        self._channels = channels
        self._node_id = node_id
        self._controller_hint = controller_hint
        self._newest_controller_epoch = newest_controller_epoch
        self._behind_since: float | None = None
        self._task: asyncio.Task | None = None
        self.resyncs = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metadata-watch")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        attempt = 0
        while True:
            candidates = self._channels.candidates(self._controller_hint())
            target = candidates[attempt % len(candidates)]
            attempt += 1
            try:
                await self._watch(target)
            except grpc.aio.AioRpcError as error:
                logger.info("metadata watch on controller %d ended: %s", target, error.code().name)
            except asyncio.CancelledError:
                if not cancelled_by_channel():
                    raise
                logger.info("metadata watch on controller %d ended: its channel was retired", target)
            except _Resync as resync:
                self.resyncs += 1
                logger.warning("metadata watch on controller %d: %s; re-syncing", target, resync)
                attempt -= 1                     # same controller, from the current offset
            except _Stale as stale:
                logger.warning("metadata watch: %s; moving to another controller", stale)
                attempt = 0                      # the hint first: the controller heartbeats reach
            except (TimeoutError, SnapshotFormatError) as error:
                logger.warning("metadata watch on controller %d: %s", target, error or "silent for too long")
            except Exception:
                # Anything else must not end the watch: log it and reconnect.
                logger.exception("metadata watch on controller %d failed", target)
            await asyncio.sleep(WATCH_RETRY_S)

    async def _watch(self, target: int) -> None:
        stub = self._channels.stub(target)
        from_offset = self._image.offset if self._image.offset > 0 else -1
        call = stub.WatchMetadata(
            controller_pb2.WatchMetadataRequest(from_offset=from_offset, watcher=f"node {self._node_id}")
        )
        try:
            while True:
                response = await asyncio.wait_for(call.read(), WATCH_SILENCE_TIMEOUT_S)
                if response is grpc.aio.EOF:
                    return
                if response.HasField("snapshot"):
                    await self._apply_snapshot(response.snapshot)
                else:
                    self._apply_deltas(response.deltas)
                self._check_not_stale(target)
        finally:
            call.cancel()

    def _check_not_stale(self, target: int) -> None:
        """Raise _Stale when this watch has trailed the controller the broker heartbeats to for
        WATCH_STALE_S (the serving voter lost touch with the leader)."""
        if self._image.controller_epoch >= self._newest_controller_epoch():
            self._behind_since = None
            return
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
        elif now - self._behind_since >= WATCH_STALE_S:
            self._behind_since = None
            raise _Stale(
                f"controller {target} serves controller epoch {self._image.controller_epoch}, "
                f"heartbeats say {self._newest_controller_epoch()}"
            )

    async def _apply_snapshot(self, data: controller_pb2.MetadataSnapshotData) -> None:
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(None, snapshot.decode_snapshot, data.snapshot)
        if image.offset != data.offset:
            raise SnapshotFormatError(f"snapshot says offset {image.offset}, the stream {data.offset}")
        if image.offset > self._image.offset:
            logger.info("metadata snapshot at offset %d (was at %d)", image.offset, self._image.offset)
            self._publish(image)

    def _apply_deltas(self, batch: controller_pb2.MetadataDeltas) -> None:
        image = self._image
        if not batch.deltas:
            return                               # keepalive
        if batch.previous_offset != image.offset:
            raise _Resync(f"deltas follow offset {batch.previous_offset} but the image is at {image.offset}")
        for delta in batch.deltas:
            if delta.offset <= image.offset:
                raise _Resync(f"delta at offset {delta.offset} does not advance past {image.offset}")
            image, _ = state_machine.apply_bytes(image, delta.command, delta.offset)
        self._publish(image)


class _Resync(Exception):
    """The watch stream does not continue our image. Internal control flow; thread-safe."""


class _Stale(Exception):
    """The watch stream trails the active controller. Internal control flow; thread-safe."""
