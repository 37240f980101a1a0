"""The data plane's periodic disk work: flush.ms, high-watermark checkpoints, retention.

Owns, on one worker thread so the event loop never waits on the disk: the flush.ms policy (every
`limits.FLUSH_CHECK_INTERVAL_MS`), the high-watermark checkpoint (Kafka's
replica.high.watermark.checkpoint.interval.ms, and once more at close) and retention (every
log.retention.check.interval.ms, the broker config, read again at every pass so a dynamic change
applies from the next check). The compaction cleaner has its own thread (LogManager), started only
with log.cleaner.enable.

Imports: asyncio, concurrent.futures, freshet.server (broker, limits), freshet.storage.
Thread-safety: not thread-safe; schedule from the node's event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

from freshet.server import limits
from freshet.server.broker.partition_table import TopicPartition
from freshet.server.tasks import cancel_quietly
from freshet.storage.clock import Clock
from freshet.storage.errors import StorageError
from freshet.storage.log_manager import LogManager

logger = logging.getLogger(__name__)


class Housekeeping:
    """Periodic flushes, checkpoints and retention on a worker thread. Not thread-safe (loop)."""

    def __init__(
        self,
        log_manager: LogManager,
        high_watermarks: Callable[[], dict[TopicPartition, int]],
        clock: Clock,
        node_id: int,
        retention_check_interval_ms: Callable[[], int],
        is_cleaner_enabled: bool,
    ) -> None:
        """Args:
            retention_check_interval_ms: the current log.retention.check.interval.ms (called at
                every pass; passes run every FLUSH_CHECK_INTERVAL_MS, so that is the finest grain).
            is_cleaner_enabled: start the compaction cleaner thread (log.cleaner.enable).
        """
        self._log_manager = log_manager
        self._retention_check_interval_ms = retention_check_interval_ms
        self._is_cleaner_enabled = is_cleaner_enabled
        self._high_watermarks = high_watermarks
        self._clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"data-plane-{node_id}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._is_retention_requested = False
        # The high watermarks the checkpoint file holds (None: not written by this process yet).
        self._checkpointed: dict[TopicPartition, int] | None = None

    def request_retention(self) -> None:
        """Run retention at the next pass (within FLUSH_CHECK_INTERVAL_MS): the disk became full."""
        self._is_retention_requested = True

    async def read_checkpoint(self, loop: asyncio.AbstractEventLoop) -> dict[TopicPartition, int]:
        """The checkpointed high watermarks ({} when the checkpoint is unreadable: logged)."""
        try:
            return await loop.run_in_executor(self._executor, self._log_manager.read_high_watermarks)
        except StorageError as error:
            logger.error("the high-watermark checkpoint is unreadable (%s): high watermarks start at 0", error)
            return {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._is_cleaner_enabled:
            self._log_manager.start_cleaner()
        else:
            logger.warning("log.cleaner.enable is false: compacted topics are not compacted")
        self._task = loop.create_task(self._run(), name="data-plane-housekeeping")

    async def close(self) -> None:
        """Stop the periodic work and write the high-watermark checkpoint one last time."""
        await cancel_quietly(self._task)
        if self._loop is not None:
            try:
                await self._loop.run_in_executor(self._executor, self._log_manager.checkpoint_high_watermarks, self._high_watermarks())
            except (StorageError, OSError) as error:
                logger.error("could not checkpoint high watermarks at shutdown: %s", error)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        run = loop.run_in_executor
        now_ms = self._clock.monotonic_ms()
        next_checkpoint_ms = now_ms + limits.HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS
        last_retention_ms = now_ms
        while True:
            await asyncio.sleep(limits.FLUSH_CHECK_INTERVAL_MS / 1000)
            try:
                await run(self._executor, self._log_manager.flush_dirty_logs)
                now_ms = self._clock.monotonic_ms()
                if now_ms >= next_checkpoint_ms:
                    next_checkpoint_ms = now_ms + limits.HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS
                    high_watermarks = self._high_watermarks()
                    if high_watermarks != self._checkpointed:       # an idle broker rewrites (and fsyncs) nothing
                        await run(self._executor, self._log_manager.checkpoint_high_watermarks, high_watermarks)
                        self._checkpointed = high_watermarks
                is_due = now_ms - last_retention_ms >= self._retention_check_interval_ms()
                if self._is_retention_requested or is_due:
                    self._is_retention_requested = False
                    last_retention_ms = now_ms
                    deleted = await run(self._executor, self._log_manager.run_retention, self._clock.now_ms(), self._high_watermarks())
                    if deleted:
                        logger.info("retention deleted %d segments", deleted)
            except (StorageError, OSError) as error:
                logger.error("data-plane housekeeping failed: %s", error)
