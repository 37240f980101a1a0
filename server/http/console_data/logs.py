"""Every partition's log as its leader reports it, and each reassignment's progress: `topic_logs`.

What the topic page shows per partition (log start offset, high watermark, log end offset, size
on disk) for EVERY partition, not only those this node leads. Reached the way
`freshet topic describe` reaches them (client/admin_topics.py `describe_topics`): one Broker
service DescribeLogDirs per broker naming the partitions wanted, answered from the broker's own
logs (its ReplicaLogInfo; server/kafka/log_dirs_api.py serves the Kafka flavour of the same). The
SDK's `_describe_replicas` makes each call (the CLI's code, not a copy). The leader's replica gives
the row; for partitions being reassigned the adding replicas' brokers are asked in the same call
and each adding replica's distance to the leader (offsets and bytes left) is computed by the SDK
function `Admin.list_partition_reassignments(with_progress=True)` uses (adding_replica_progress).

Why not the browser's ListOffsets (messages.py): it answers log start and high watermark only,
neither log end nor size; one DescribeLogDirs per leader gives all four for all its partitions.

As the viewer (backend.py): the calls carry this node's identity (DescribeLogDirs needs Describe
on the cluster, which a node has); the page that shows the result is only served to viewers with
Describe on the topic (console_pages.topic_page), as before.

Bounded time: the brokers are asked in parallel, each call bounded by backend.request_timeout_s
(the SDK caps it at 5 s) and the whole by `budget_s`; a broker that does not answer in time is
listed in `failures` and its partitions are in `unknown` with the reason (the page shows "?").

Thread-safety: thread-safe (no state of its own); blocks the calling thread up to `budget_s`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Mapping

from freshet.client.admin import Admin
from freshet.client.admin_partitions import adding_replica_progress
from freshet.client.admin_results import ReplicaProgress
from freshet.client.structs import TopicPartition
from freshet.metadata.image import NO_LEADER, TopicImage
from freshet.server.http.console_data.backend import ConsoleBackend
from freshet.server.http.console_data.groups import DESCRIBE_THREADS, Failure, settle
from freshet.v1 import broker_pb2

#: Bound of the whole lookup: the page is shown after it with "?" for what did not answer.
PAGE_BUDGET_S = 6.0


@dataclasses.dataclass(frozen=True)
class PartitionLog:
    """A partition's log as its leader reports it."""

    log_start_offset: int
    high_watermark: int
    log_end_offset: int
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class TopicLogs:
    """What the brokers answered for one topic.

    Attributes:
        partitions: partition -> its leader's log (only the partitions whose leader answered).
        unknown: partition -> why its log is not known (no leader, a broker did not answer).
        progress: partition being reassigned -> each adding replica's distance to the leader
            (client ReplicaProgress: log end, offsets_left, bytes_left, or `error`).
        failures: brokers that did not answer within the budget.
        elapsed_s: the time the lookup took.
    """

    partitions: Mapping[int, PartitionLog]
    unknown: Mapping[int, str]
    progress: Mapping[int, tuple[ReplicaProgress, ...]]
    failures: tuple[Failure, ...]
    elapsed_s: float


def _wanted(topic: TopicImage) -> dict[int, list[TopicPartition]]:
    """broker id -> the partitions to ask it about: those it leads, those it is being added to."""
    wanted: dict[int, list[TopicPartition]] = {}
    for p in topic.partitions:
        brokers = [p.leader] if p.leader != NO_LEADER else []
        brokers += [b for b in p.adding_replicas if b not in brokers]
        for broker_id in brokers:
            wanted.setdefault(broker_id, []).append(TopicPartition(topic.name, p.partition))
    return wanted


def _ask(backend: ConsoleBackend, wanted: dict[int, list[TopicPartition]], budget_s: float):
    """broker id -> {partition: its ReplicaLogInfo or the error text}, and the failures: every
    broker asked in parallel, the whole bounded by `budget_s`."""
    image = backend.image()
    admin = Admin(transport=backend.transport, request_timeout_ms=int(backend.request_timeout_s * 1000))
    infos: dict[int, dict] = {}
    failures: list[Failure] = []
    pool = concurrent.futures.ThreadPoolExecutor(DESCRIBE_THREADS, thread_name_prefix="console-logs")
    try:
        futures, subjects = {}, {}
        for broker_id, tps in sorted(wanted.items()):
            broker = image.brokers.get(broker_id)
            if broker is None:
                infos[broker_id] = dict.fromkeys(tps, f"broker {broker_id} is not registered")
                continue
            address = f"{broker.host}:{broker.port}"
            subject = f"broker {broker_id} at {address}"
            subjects[subject] = broker_id
            # The SDK's own DescribeLogDirs call and reading of it (client/_admin_calls.py).
            futures[pool.submit(admin._describe_replicas, broker_id, address, tps)] = subject  # noqa: SLF001
        for future, subject in settle(futures, time.monotonic() + budget_s, failures):
            infos[subjects[subject]] = future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for failure in failures:
        broker_id = subjects[failure.subject]
        infos[broker_id] = dict.fromkeys(wanted[broker_id], f"{failure.subject}: {failure.message}")
    return infos, failures


def topic_logs(backend: ConsoleBackend, topic: TopicImage, budget_s: float = PAGE_BUDGET_S) -> TopicLogs:
    """Every partition's log (from its leader) and the reassignments' progress of `topic`, within
    `budget_s` seconds (see the module docstring). The caller checked the viewer's Describe."""
    started = time.monotonic()
    infos, failures = _ask(backend, _wanted(topic), budget_s)
    partitions: dict[int, PartitionLog] = {}
    unknown: dict[int, str] = {}
    progress: dict[int, tuple[ReplicaProgress, ...]] = {}
    for p in topic.partitions:
        tp = TopicPartition(topic.name, p.partition)
        leader: broker_pb2.ReplicaLogInfo | str = "no leader"
        if p.leader != NO_LEADER:
            leader = infos.get(p.leader, {}).get(tp, f"broker {p.leader} was not asked")
        if not isinstance(leader, str) and not leader.is_leader:
            leader = f"broker {p.leader} no longer leads {topic.name}-{p.partition}"
        if isinstance(leader, str):
            unknown[p.partition] = leader
        else:
            partitions[p.partition] = PartitionLog(leader.log_start_offset, leader.high_watermark,
                                                   leader.log_end_offset, leader.size_bytes)
        if p.is_reassigning and p.adding_replicas:
            replicas = {b: infos.get(b, {}).get(tp, f"broker {b} was not asked") for b in p.adding_replicas}
            progress[p.partition] = tuple(adding_replica_progress(leader, replicas))
    return TopicLogs(partitions, unknown, progress, tuple(failures), time.monotonic() - started)
