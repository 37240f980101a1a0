"""The produce purgatory of a partition (server/replication/partition.py), without network or event loop.

Goal: an acks=all request is answered exactly once per partition: success when the high
watermark passes its batch (in order of the offsets they need, whatever order they arrived in),
NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below min.insync.replicas by then,
REQUEST_TIMED_OUT for what is still waiting at the request's timeout, NOT_LEADER with the hint
when leadership moves; the high watermark never goes back and never passes the log end.
Method: a real PartitionLog in a temporary directory, a LeaderState, and ProduceOperations whose
answers are collected; the timer is fired by calling `expire` directly.
"""

from __future__ import annotations

from freshet.server import status
from freshet.server.metrics import BrokerMetrics, TopicCounters
from freshet.server.replication.core import LeaderState
from freshet.server.replication.partition import LEADER, Partition, ProduceOperation, ProduceWaiter
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, encode_batch
from freshet.v1 import broker_pb2, common_pb2
from prometheus_client import CollectorRegistry

E = common_pb2.ErrorCode


def leader_partition(tmp_path, min_isr: int = 2) -> Partition:
    log = PartitionLog.open(str(tmp_path / "t-0"), LogConfig())
    for _ in range(3):
        log.append_as_leader(encode_batch([Record(0, None, b"v", ())] * 2), 0)
    partition = Partition("t", 0, b"\x01" * 16, log, 0, TopicCounters(BrokerMetrics(CollectorRegistry()), "t"))
    partition.role = LEADER
    partition.leader_epoch = 0
    partition.min_insync_replicas = min_isr
    partition.leader = LeaderState(1, 0, 0, (1, 2, 3), (1, 2, 3), 0, 0, log.log_end_offset, 0, min_isr)
    return partition


def waiting(partition: Partition, required: list[int], answers: list) -> tuple[ProduceOperation, list[ProduceWaiter]]:
    response = broker_pb2.ProduceResponse(correlation_id=len(answers))
    operation = ProduceOperation(response, answers.append, 0.0)
    waiters = []
    for offset in required:
        result = response.results.add(topic="t", partition=0)
        result.error.CopyFrom(status.ok_detail())
        waiter = ProduceWaiter(offset, operation, result, partition)
        operation.waiting.append(waiter)
        operation.remaining += 1
        partition.add_produce_waiter(waiter)
        waiters.append(waiter)
    return operation, waiters


def test_waiters_complete_in_offset_order_as_the_high_watermark_passes_them(tmp_path):
    partition = leader_partition(tmp_path)
    answers: list = []
    late, _ = waiting(partition, [6], answers)
    early, _ = waiting(partition, [2], answers)
    assert partition.set_high_watermark(2) is True
    assert [r.correlation_id for r in answers] == [early.response.correlation_id]
    assert partition.waiting_count == 1
    assert partition.set_high_watermark(1) is False and partition.high_watermark == 2, "never backwards"
    partition.set_high_watermark(6)
    assert [r.correlation_id for r in answers] == [early.response.correlation_id, late.response.correlation_id]
    assert all(r.results[0].error.code == E.NONE for r in answers)
    assert partition.waiting_count == 0
    late.expire()
    assert len(answers) == 2, "a finished request is never answered twice"


def test_timeout_answers_only_what_still_waits(tmp_path):
    partition = leader_partition(tmp_path)
    answers: list = []
    operation, (first, second) = waiting(partition, [2, 4], answers)
    partition.set_high_watermark(3)
    assert answers == [] and first.is_done and not second.is_done
    operation.expire()
    [response] = answers
    assert [r.error.code for r in response.results] == [E.NONE, E.REQUEST_TIMED_OUT]
    assert "may still be committed" in response.results[1].error.message
    partition.set_high_watermark(6)
    assert len(answers) == 1 and partition.waiting_count == 0


def test_a_shrunk_isr_answers_not_enough_replicas_after_append(tmp_path):
    partition = leader_partition(tmp_path, min_isr=2)
    answers: list = []
    waiting(partition, [2], answers)
    partition.leader.isr = (1,)
    partition.set_high_watermark(2)
    assert answers[0].results[0].error.code == E.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    assert "min.insync.replicas=2" in answers[0].results[0].error.message


def test_losing_leadership_answers_every_waiter_with_the_hint(tmp_path):
    partition = leader_partition(tmp_path)
    answers: list = []
    waiting(partition, [2, 4], answers)
    waiting(partition, [6], answers)
    hint = status.detail(E.NOT_LEADER, "node 2 leads t-0", leader_id=2, leader_epoch=1)
    partition.fail_produce_waiters(lambda p: hint)
    assert [[(r.error.code, r.error.leader_id) for r in response.results] for response in answers] == [
        [(E.NOT_LEADER, 2), (E.NOT_LEADER, 2)], [(E.NOT_LEADER, 2)]
    ]
    assert partition.waiting_count == 0
    partition.set_high_watermark(6)
    assert len(answers) == 2


def test_the_high_watermark_is_clamped_to_the_log_end_after_a_truncation(tmp_path):
    partition = leader_partition(tmp_path)
    partition.set_high_watermark(6)
    partition.log.truncate_to(4)
    partition.clamp_high_watermark()
    assert partition.high_watermark == 4 == partition.log_end_offset
