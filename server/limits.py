"""Every bound of the node process in one place, with asserts of how they relate.

Naming: the quantity, its unit, then the qualifier last (`fetch_response_bytes_max`,
`isr_check_interval_ms_min`), as STYLE.md §2; module constants are upper case. A module that needs
a bound imports it from here instead of defining its own, so that one number cannot mean two
things (the gRPC message limit and a replication message's target size once shared a name).

Relations are asserted at import (TigerBeetle's comptime asserts, PySyncObj's
`SyncObjConf.validate`): changing one number so that another no longer fits fails every test.

Imports: freshet.metadata.quorum's command size bound only (no I/O). Thread-safety: constants.
"""

from __future__ import annotations

from freshet.metadata.quorum import COMMAND_BYTES_MAX

KiB = 1024
MiB = 1024 * KiB

# -- gRPC -------------------------------------------------------------------------------------------
#: The largest gRPC message any Freshet channel or server sends or accepts.
GRPC_MESSAGE_BYTES_MAX = 64 * MiB

# -- replication (server/replication/leader_sessions.py) --------------------------------------------
#: A leader stops adding partitions to one push message past this many record bytes (one batch
#: larger than this is still sent whole: a topic's max.message.bytes bounds it).
REPLICATION_MESSAGE_BYTES_TARGET = 4 * MiB
#: Bytes pushed and not yet acknowledged, per follower and partition.
REPLICATION_PARTITION_WINDOW_BYTES = 2 * MiB
#: Bytes pushed and not yet acknowledged, per follower stream (all its partitions).
REPLICATION_STREAM_WINDOW_BYTES = 16 * MiB

# -- client connections (server/kafka/listener.py, server/broker/service.py) ------------------------
#: Unanswered requests per Kafka connection, and per gRPC ProduceStream, before the broker stops
#: reading it until one is answered (librdkafka and the SDK send at most 5 produce requests in
#: flight; metadata and fetches add a few). A client that ignores its own bound is held here
#: instead of growing the broker's memory.
REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX = 64

# -- consumer fetches (server/broker/fetch.py) ------------------------------------------------------
#: A fetch that names no max_bytes gets Kafka's fetch.max.bytes default ...
FETCH_BYTES_DEFAULT = 50 * MiB
#: ... capped, like every fetch, at half the gRPC message limit (headers, several partitions).
FETCH_RESPONSE_BYTES_MAX = GRPC_MESSAGE_BYTES_MAX // 2

# -- metadata watch (server/controller/service.py) --------------------------------------------------
WATCH_DELTAS_PER_MESSAGE_MAX = 1000
WATCH_DELTA_BYTES_PER_MESSAGE_MAX = 4 * MiB

# -- controller (server/controller/active.py) -------------------------------------------------------
CONTROLLER_ACTIONS_PER_ROUND_MAX = 100

# -- the data plane's periodic work (server/broker) -------------------------------------------------
ISR_CHECK_INTERVAL_MS_MIN = 50
ISR_CHECK_INTERVAL_MS_MAX = 2_500
ALTER_PARTITION_TIMEOUT_MS = 10_000
#: One controller gets this long to answer an AlterPartition before the next one is tried (same
#: request id: the controller deduplicates). A request stuck on a controller whose replies were cut
#: off held every later ISR change of its partitions for the whole 10 s (issue 16, one-way faults).
ALTER_PARTITION_ATTEMPT_TIMEOUT_MS = 2_000
HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS = 5_000     # Kafka's replica.high.watermark.checkpoint.interval.ms
FLUSH_CHECK_INTERVAL_MS = 1_000                    # how often flush.ms is checked
DISK_CHECK_INTERVAL_MS = 250                       # how often the log directory's free space is looked at
# Threads that open, create and recover partition logs (at start, and for a new topic's thousands
# of replicas): Kafka's num.recovery.threads.per.data.dir. A new log is a few fsyncs, which
# concurrent threads share (ext4 joins them into one journal commit).
LOG_OPEN_THREADS = 8

# -- how they relate ---------------------------------------------------------------------------------
# A replication message filled to its target plus a partition window's worth of overrun stays
# under the gRPC message limit.
assert REPLICATION_MESSAGE_BYTES_TARGET + REPLICATION_PARTITION_WINDOW_BYTES < GRPC_MESSAGE_BYTES_MAX
# The stream window holds at least one partition's window.
assert REPLICATION_PARTITION_WINDOW_BYTES <= REPLICATION_STREAM_WINDOW_BYTES
# A fetch response filled to its bound leaves half the gRPC message for headers and overrun.
assert 2 * FETCH_RESPONSE_BYTES_MAX <= GRPC_MESSAGE_BYTES_MAX
assert FETCH_BYTES_DEFAULT > FETCH_RESPONSE_BYTES_MAX   # so the default is the cap, as before
# A watch message of deltas, each at most one metadata command, fits a gRPC message.
assert WATCH_DELTA_BYTES_PER_MESSAGE_MAX + COMMAND_BYTES_MAX < GRPC_MESSAGE_BYTES_MAX
assert 0 < ISR_CHECK_INTERVAL_MS_MIN < ISR_CHECK_INTERVAL_MS_MAX
# An AlterPartition that takes longer than the slowest ISR check would pile up passes.
assert ALTER_PARTITION_TIMEOUT_MS > ISR_CHECK_INTERVAL_MS_MAX
assert 0 < ALTER_PARTITION_ATTEMPT_TIMEOUT_MS < ALTER_PARTITION_TIMEOUT_MS
