"""The broker's watch over its log directory's free space (README "A full disk").

Owns the node's `DiskSpaceMonitor` (storage/disk_space.py) and the task that looks at the
filesystem every `limits.DISK_CHECK_INTERVAL_MS` on a worker thread, applying the current
disk.free.min.bytes / disk.free.min.percent / disk.reserve.bytes (dynamic broker configs, so an
operator's change applies at the next look). When the directory becomes full it asks housekeeping
for a retention pass at once (retention frees space; its usual period is five minutes).

Who is refused (the produce path asks `check_produce`): client produce (gRPC and the Kafka
listener) to ordinary topics. Not refused: followers (they copy what their leader already
accepted and use the room between the low-water mark and zero), internal topics such as
`__consumer_offsets` (a commit is small, and refusing it would stop consumers too), and the
metadata quorum (its own directory; the reserve file is released for it).

Imports: asyncio, freshet.metadata (configs), freshet.server (limits), freshet.storage.
Thread-safety: start/close on the event loop; `state()` from any thread (the monitor is thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from freshet.metadata import configs
from freshet.server import limits
from freshet.server.tasks import cancel_quietly
from freshet.storage.disk_space import DiskSpaceLimits, DiskSpaceMonitor, DiskSpaceState

logger = logging.getLogger(__name__)

#: The reserve file in the data directory (same filesystem as the logs and the metadata journal).
RESERVE_FILE_NAME = "disk-reserve"


def disk_limits(broker: configs.BrokerConfig) -> DiskSpaceLimits:
    """The monitor's marks from a broker's effective config."""
    return DiskSpaceLimits(broker.disk_free_min_bytes, broker.disk_free_min_percent, broker.disk_reserve_bytes)


def is_internal_topic(topic: str) -> bool:
    """Topics whose writes are not refused below the low-water mark (Kafka's internal topics)."""
    return topic.startswith("__")


class DiskWatch:
    """Looks at the log directory's free space periodically (module docstring). Not thread-safe
    (loop), except `state()` and `check_produce`'s monitor."""

    def __init__(
        self,
        logs_dir: str,
        data_dir: str,
        broker_config: Callable[[], configs.BrokerConfig],
        on_full: Callable[[], None],
    ) -> None:
        self._broker_config = broker_config
        self._on_full = on_full
        self.monitor = DiskSpaceMonitor(
            logs_dir, disk_limits(broker_config()), reserve_path=os.path.join(data_dir, RESERVE_FILE_NAME)
        )
        self._task: asyncio.Task | None = None
        self._full_transitions_handled = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.monitor.poll()                       # a first look before any produce is answered
        self._task = loop.create_task(self._run(), name="disk-watch")

    async def close(self) -> None:
        await cancel_quietly(self._task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(limits.DISK_CHECK_INTERVAL_MS / 1000)
            wanted = disk_limits(self._broker_config())
            if wanted != self.monitor.limits:
                logger.info("disk limits now %s", wanted)
                self.monitor.set_limits(wanted)
            state = await loop.run_in_executor(None, self.monitor.poll)
            if state.is_full and self.monitor.full_transitions != self._full_transitions_handled:
                self._full_transitions_handled = self.monitor.full_transitions
                self._on_full()

    def check_produce(self, topic: str, size_bytes: int) -> None:
        """Refuse a client's append to `topic` while the directory is full.

        Raises:
            LogDirFullError: the directory is full (never for internal topics).
        """
        if not is_internal_topic(topic):
            self.monitor.check_append(size_bytes, f"produce to {topic}")

    def note_appended(self, size_bytes: int) -> None:
        self.monitor.note_appended(size_bytes)

    def state(self) -> DiskSpaceState:
        return self.monitor.state()


def describe_disk(state: DiskSpaceState) -> dict:
    """The JSON form of a disk state (/status "disk", the console)."""
    return {
        "directory": state.directory,
        "state": state.label,
        "free_bytes": state.free_bytes,
        "total_bytes": state.total_bytes,
        "low_water_bytes": state.low_water_bytes,
        "high_water_bytes": state.high_water_bytes,
        "reserve_bytes": state.reserve_bytes,
        "error": state.error,
    }


def readiness_note(state: DiskSpaceState) -> str:
    """What /readyz adds while the directory is full ("" while it is not). A full disk does not
    make a node unready: it still serves reads, replication and metadata, and Kubernetes must not
    restart it for that (a restart frees nothing)."""
    if not state.is_full:
        return ""
    return (
        f"log directory {state.directory} full: {state.free_bytes} bytes free, below the low-water mark of "
        f"{state.low_water_bytes} bytes; produce refused until {state.high_water_bytes} bytes are free, reads served"
    )
