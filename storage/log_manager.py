"""All partition logs of one data directory: open, create, delete, retention, cleaner, checkpoints.

Owns the data directory `<data>/`:

    <topic>-<partition>/                 one PartitionLog per partition replica on this broker
    <topic>-<partition>.<hex>-delete/    a log being deleted (removed on start)
    replication-offset-checkpoint        high watermark of every partition (Kafka's format)

At start every partition directory is opened; logs that were not closed cleanly are recovered
(each log keeps its own clean-shutdown marker). Opening and creating many logs at once (start,
a topic of thousands of partitions) runs on `open_threads` threads (Kafka's
num.recovery.threads.per.data.dir): a new log costs a few fsyncs and nothing else, and
concurrent fsyncs share the filesystem's journal commits, so N threads take far less than N
times one thread's wall time. Each log's directory is touched by one thread only. A log that cannot be opened is reported in
`offline_partitions` and the others still open, so one bad disk region does not stop the broker.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: thread-safe. The map of logs is guarded by a lock; the compaction cleaner thread
reads it through `logs()`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from freshet.storage.checkpoint import read_checkpoint, remove_stale_temp_files, write_checkpoint
from freshet.storage.cleaner import CleanerConfig, LogCleaner
from freshet.storage.clock import Clock, SystemClock
from freshet.storage.config import LONG_MAX, LogConfig
from freshet.storage.errors import InconsistentTopicIdError, KafkaStorageError, StorageError
from freshet.storage.log import DELETE_DIR_SUFFIX, PartitionLog, remove_log_directory

logger = logging.getLogger(__name__)

HIGH_WATERMARK_CHECKPOINT_FILE_NAME = "replication-offset-checkpoint"
_HIGH_WATERMARK_CHECKPOINT_VERSION = 0
# Kafka's legal topic names; the metadata layer validates, this guards the file system.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

TopicPartition = tuple[str, int]


def partition_directory_name(topic: str, partition: int) -> str:
    """`<topic>-<partition>`, the directory of one partition replica."""
    assert _TOPIC_NAME.match(topic) and topic not in (".", ".."), f"illegal topic name {topic!r}"
    assert partition >= 0
    return f"{topic}-{partition}"


def parse_partition_directory_name(name: str) -> TopicPartition | None:
    """(topic, partition) of a partition directory name, or None if it is not one."""
    topic, dash, partition = name.rpartition("-")
    if not dash or not partition.isdigit() or not _TOPIC_NAME.match(topic) or topic in (".", ".."):
        return None
    return topic, int(partition)


def _parse_high_watermark(fields: list[str]) -> tuple[str, int, int]:
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields, got {len(fields)}")
    return fields[0], int(fields[1]), int(fields[2])


class LogManager:
    """The partition logs of one data directory. Thread-safe."""

    def __init__(
        self,
        data_directory: str,
        clock: Clock,
        config_for_topic: Callable[[str], LogConfig],
        cleaner_config: CleanerConfig,
    ) -> None:
        """Use `LogManager.open`."""
        self.data_directory = data_directory
        self._clock = clock
        self._config_for_topic = config_for_topic
        self._lock = threading.Lock()
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._offline: dict[TopicPartition, StorageError] = {}
        self._is_closed = False
        self.open_threads = 1
        self.cleaner = LogCleaner(self.logs, clock, cleaner_config)

    @classmethod
    def open(
        cls,
        data_directory: str,
        *,
        clock: Clock | None = None,
        config_for_topic: Callable[[str], LogConfig] | None = None,
        cleaner_config: CleanerConfig | None = None,
        open_threads: int = 1,
    ) -> LogManager:
        """Open every partition log under `data_directory` (created if missing), recovering as needed.

        Args:
            data_directory: the broker's data directory.
            clock: time source (defaults to the system clock).
            config_for_topic: the LogConfig to open each topic's logs with (defaults to Kafka's
                defaults); logs can be reconfigured later with `PartitionLog.update_config`.
            cleaner_config: compaction cleaner settings.
            open_threads: threads that open (and recover) logs, here and in `open_missing`.

        Raises:
            KafkaStorageError: the data directory itself cannot be read or created.
        """
        assert open_threads >= 1
        manager = cls(
            data_directory,
            clock or SystemClock(),
            config_for_topic or (lambda topic: LogConfig()),
            cleaner_config or CleanerConfig(),
        )
        manager.open_threads = open_threads
        try:
            os.makedirs(data_directory, exist_ok=True)
            remove_stale_temp_files(data_directory)
            names = sorted(os.listdir(data_directory))
        except OSError as error:
            raise KafkaStorageError(data_directory, "open data directory", error) from error
        found: list[tuple[TopicPartition, str]] = []
        for name in names:
            path = os.path.join(data_directory, name)
            if not os.path.isdir(path):
                continue
            if name.endswith(DELETE_DIR_SUFFIX):
                logger.info("removing %s, a log whose deletion was interrupted", path)
                shutil.rmtree(path, ignore_errors=True)
                continue
            parsed = parse_partition_directory_name(name)
            if parsed is None:
                logger.warning("ignoring %s: not a partition directory", path)
                continue
            found.append((parsed, path))

        def open_one(item: tuple[TopicPartition, str]) -> PartitionLog | StorageError:
            (topic, _), path = item
            try:
                return PartitionLog.open(path, manager._config_for_topic(topic), manager._clock)
            except StorageError as error:
                return error

        for (key, _), opened in zip(found, manager._map_in_threads(open_one, found), strict=True):
            if isinstance(opened, StorageError):
                logger.error("partition %s-%d is offline: %s", key[0], key[1], opened)
                manager._offline[key] = opened
            else:
                manager._logs[key] = opened
        return manager

    def _map_in_threads(self, function: Callable, items: list) -> list:
        """[function(item) for item in items], on up to `open_threads` threads, in order."""
        if self.open_threads == 1 or len(items) < 2:
            return [function(item) for item in items]
        with ThreadPoolExecutor(min(self.open_threads, len(items)), thread_name_prefix="log-open") as executor:
            return list(executor.map(function, items))

    # ---------------------------------------------------------------------------------------------
    # Logs.

    def get_or_create(
        self, topic: str, partition: int, topic_id: str | None, config: LogConfig
    ) -> PartitionLog:
        """The log of (topic, partition), created empty if this broker has none.

        An existing log takes `config` (metadata is the source of truth) and must carry `topic_id`.

        Raises:
            InconsistentTopicIdError: the existing directory belongs to another topic id.
            KafkaStorageError: the partition is offline or the directory cannot be created.
        """
        key = (topic, partition)
        with self._lock:
            self._check_open()
            if key in self._offline:
                raise KafkaStorageError(
                    os.path.join(self.data_directory, partition_directory_name(topic, partition)),
                    "open an offline partition",
                    self._offline[key],
                )
            log = self._logs.get(key)
            if log is None:
                path = os.path.join(self.data_directory, partition_directory_name(topic, partition))
                log = PartitionLog.open(path, config, self._clock, topic_id=topic_id)
                self._logs[key] = log
                return log
        if topic_id is not None and log.topic_id is not None and log.topic_id != topic_id:
            raise InconsistentTopicIdError(log.directory, topic_id, log.topic_id)
        if log.config != config:
            log.update_config(config)
        return log

    def open_missing(self, wanted: Iterable[tuple[str, int, str | None, LogConfig]]) -> int:
        """Open or create, on `open_threads` threads, the logs of `wanted` (topic, partition,
        topic_id, config) that are not open yet, and return how many it opened.

        A warm-up for `get_or_create` over many partitions: a log that cannot be opened here
        (offline, another topic id's directory, a full disk) is simply left out, and the caller's
        `get_or_create` for it then raises as it always does. Only one thread may call
        `open_missing` and `get_or_create` for the same partition at a time (the broker's replica
        worker is the one caller).
        """
        with self._lock:
            self._check_open()
            missing = [item for item in wanted if (item[0], item[1]) not in self._logs and (item[0], item[1]) not in self._offline]

        def open_one(item: tuple[str, int, str | None, LogConfig]) -> PartitionLog | None:
            topic, partition, topic_id, config = item
            path = os.path.join(self.data_directory, partition_directory_name(topic, partition))
            try:
                return PartitionLog.open(path, config, self._clock, topic_id=topic_id)
            except StorageError:
                return None       # get_or_create raises it again, on the caller's thread

        opened = 0
        for (topic, partition, _, _), log in zip(missing, self._map_in_threads(open_one, missing), strict=True):
            if log is None:
                continue
            with self._lock:
                if self._is_closed or (topic, partition) in self._logs:
                    log.close()
                    continue
                self._logs[(topic, partition)] = log
                opened += 1
        return opened

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        """The log of (topic, partition), or None."""
        with self._lock:
            return self._logs.get((topic, partition))

    def logs(self) -> list[PartitionLog]:
        """Every open log (a copy of the list)."""
        with self._lock:
            return list(self._logs.values())

    def all(self) -> dict[TopicPartition, PartitionLog]:
        """(topic, partition) -> log for every open log (a copy of the map)."""
        with self._lock:
            return dict(self._logs)

    @property
    def offline_partitions(self) -> dict[TopicPartition, StorageError]:
        """Partitions whose logs failed to open, with the error."""
        with self._lock:
            return dict(self._offline)

    def delete(self, topic: str, partition: int) -> bool:
        """Delete the log of (topic, partition): rename to `-delete`, then remove. Returns whether one existed."""
        key = (topic, partition)
        with self._lock:
            log = self._logs.pop(key, None)
            self._offline.pop(key, None)
        if log is None:
            path = os.path.join(self.data_directory, partition_directory_name(topic, partition))
            if os.path.isdir(path):
                remove_log_directory(path)
                return True
            return False
        log.delete()
        return True

    # ---------------------------------------------------------------------------------------------
    # High watermarks.

    def checkpoint_high_watermarks(self, high_watermarks: Mapping[TopicPartition, int]) -> None:
        """Write `replication-offset-checkpoint` atomically: one `topic partition offset` line each."""
        entries = [
            (topic, partition, offset) for (topic, partition), offset in sorted(high_watermarks.items())
        ]
        write_checkpoint(
            os.path.join(self.data_directory, HIGH_WATERMARK_CHECKPOINT_FILE_NAME),
            _HIGH_WATERMARK_CHECKPOINT_VERSION,
            entries,
        )

    def read_high_watermarks(self) -> dict[TopicPartition, int]:
        """The last checkpointed high watermarks ({} if none were written).

        Raises:
            CorruptCheckpointError: the file does not parse.
        """
        entries = read_checkpoint(
            os.path.join(self.data_directory, HIGH_WATERMARK_CHECKPOINT_FILE_NAME),
            _HIGH_WATERMARK_CHECKPOINT_VERSION,
            _parse_high_watermark,
        )
        return {(topic, partition): offset for topic, partition, offset in entries or []}

    # ---------------------------------------------------------------------------------------------
    # Periodic work.

    def run_retention(self, now_ms: int, high_watermarks: Mapping[TopicPartition, int]) -> int:
        """Apply retention to every log that has a high watermark in `high_watermarks`.

        Returns:
            The number of segments deleted. A log that fails goes offline and is skipped.
        """
        deleted = 0
        for key, log in self.all().items():
            high_watermark = high_watermarks.get(key)
            if high_watermark is None:
                continue
            try:
                deleted += log.delete_old_segments(now_ms, high_watermark)
            except StorageError as error:
                logger.error("retention of %s failed: %s", log.directory, error)
        return deleted

    def flush_dirty_logs(self) -> int:
        """Flush logs whose flush.ms has passed (call periodically); return how many were flushed."""
        flushed = 0
        for log in self.logs():
            if log.config.flush_ms == LONG_MAX:
                continue            # no flush.ms (the default): nothing to look at, no lock to take
            try:
                flushed += log.maybe_flush()
            except StorageError as error:
                logger.error("flush of %s failed: %s", log.directory, error)
        return flushed

    def start_cleaner(self) -> None:
        """Start the compaction cleaner thread."""
        self.cleaner.start()

    def stop_cleaner(self) -> None:
        """Stop the compaction cleaner thread and wait for it."""
        self.cleaner.stop()

    def close(self) -> None:
        """Stop the cleaner and close every log cleanly (each writes its clean-shutdown marker)."""
        self.cleaner.stop()
        with self._lock:
            self._is_closed = True
            logs = list(self._logs.values())
            self._logs.clear()
        for log in logs:
            try:
                log.close()
            except StorageError as error:
                logger.error("closing %s failed: %s", log.directory, error)

    def _check_open(self) -> None:
        if self._is_closed:
            raise KafkaStorageError(self.data_directory, "use a closed log manager")
