"""The broker data plane of real nodes, in-process (3 combined nodes on one loop).

Goal: produce / fetch / ListOffsets / InitProducerId answer as broker.proto says, errors carry
what the client needs (NOT_LEADER the leader, OFFSET_OUT_OF_RANGE the range), refused batches
leave the log unchanged, idempotent retries answer the original offsets, long polls wait without
spinning and answer at min_bytes, FetchStream pushes new data, deleting a topic removes its data
on every broker, exactly one node reports ActiveControllerCount 1, and the internal API the group
coordinator uses works. Method: one module-scoped 3-node cluster (real gRPC, Raft, HTTP on
loopback); tests use fresh topic names so they do not depend on each other.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import threading
import time

import grpc
import pytest
from freshet.server import status
from freshet.server.errors import PartitionRequestError
from freshet.storage.record_batch import Record, encode_batch, iter_batches
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

from tests.support.inprocess_nodes import InProcessCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
E = common_pb2.ErrorCode


def batch(count: int = 3, value: bytes = b"v", producer_id: int = -1, base_sequence: int = -1) -> bytes:
    now = int(time.time() * 1000)
    records = [Record(now, None, value + str(i).encode(), ()) for i in range(count)]
    if producer_id >= 0:
        return bytes(encode_batch(records, producer_id=producer_id, producer_epoch=0, base_sequence=base_sequence))
    return bytes(encode_batch(records))


def topic(cluster: InProcessCluster, name: str, partitions: int = 1, rf: int = 3, configs: dict | None = None) -> None:
    creatable = controller_pb2.CreatableTopic(name=name, num_partitions=partitions, replication_factor=rf)
    for key, value in (configs or {}).items():
        creatable.configs.add(key=key, value=value)
    response = cluster.admin(1).CreateTopics(controller_pb2.CreateTopicsRequest(topics=[creatable]), timeout=30)
    assert response.results[0].error.code == E.NONE, response
    wait_until(lambda: all(leader_of(cluster, name, p) is not None for p in range(partitions)), 20, f"{name} has leaders")
    # Every replica applied its role and every follower reported: the ISR is whole and the HW known.
    for number in range(partitions):
        wait_until(lambda number=number: isr_complete(cluster, name, number, rf), 20, f"{name}-{number} replicated")


def leader_of(cluster: InProcessCluster, name: str, number: int) -> int | None:
    for node_id, node in cluster.nodes.items():
        plane = node.data_plane
        partition = plane.partitions.get((name, number)) if plane is not None else None
        if partition is not None and partition.is_leader:
            return node_id
    return None


def isr_complete(cluster: InProcessCluster, name: str, number: int, rf: int) -> bool:
    leader = leader_of(cluster, name, number)
    if leader is None:
        return False
    state = cluster.nodes[leader].data_plane.partitions[(name, number)].leader
    return state is not None and len(state.isr) == rf and all(f.log_end_offset >= 0 for f in state.followers.values())


def produce(cluster, node_id: int, name: str, number: int, data: bytes, acks: int = -1, timeout_ms: int = 10000):
    request = broker_pb2.ProduceRequest(
        acks=acks, timeout_ms=timeout_ms, partitions=[broker_pb2.PartitionRecords(topic=name, partition=number, records=data)]
    )
    return cluster.broker(node_id).Produce(request, timeout=30).results[0]


def fetch(cluster, node_id: int, name: str, number: int, offset: int, max_wait_ms: int = 0, min_bytes: int = 0):
    request = broker_pb2.FetchRequest(
        max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=1 << 20,
        partitions=[broker_pb2.PartitionFetch(topic=name, partition=number, fetch_offset=offset, current_leader_epoch=-1)],
    )
    return cluster.broker(node_id).Fetch(request, timeout=30).results[0]


def offsets_in(records: bytes) -> list[int]:
    return [offset for header, _ in iter_batches(records) for offset in range(header.base_offset, header.base_offset + header.last_offset_delta + 1)]


def log_end(cluster, node_id: int, name: str, number: int) -> int:
    return cluster.nodes[node_id].data_plane.partitions[(name, number)].log.log_end_offset


def test_produce_fetch_and_list_offsets_on_the_leader(cluster):
    topic(cluster, "basic")
    leader = leader_of(cluster, "basic", 0)
    first = produce(cluster, leader, "basic", 0, batch(3))
    second = produce(cluster, leader, "basic", 0, batch(2), acks=1)
    assert (first.error.code, first.base_offset, second.error.code, second.base_offset) == (E.NONE, 0, E.NONE, 3)
    wait_until(lambda: fetch(cluster, leader, "basic", 0, 0).high_watermark == 5, 10, "HW 5")
    result = fetch(cluster, leader, "basic", 0, 0)
    assert (result.error.code, offsets_in(result.records)) == (E.NONE, [0, 1, 2, 3, 4])
    queries = [broker_pb2.PartitionOffsetQuery(topic="basic", partition=0, timestamp=t) for t in (-2, -1, 0)]
    answers = cluster.broker(leader).ListOffsets(broker_pb2.ListOffsetsRequest(partitions=queries), timeout=10).results
    assert [(a.error.code, a.offset) for a in answers] == [(E.NONE, 0), (E.NONE, 5), (E.NONE, 0)]
    # Every replica holds the same bytes (acks=all committed on all three).
    for node_id in cluster.nodes:
        wait_until(lambda node_id=node_id: log_end(cluster, node_id, "basic", 0) == 5, 10, f"node {node_id} replicated")


def test_not_leader_carries_the_leader_on_produce_fetch_and_list_offsets(cluster):
    topic(cluster, "hint")
    leader = leader_of(cluster, "hint", 0)
    other = next(n for n in cluster.nodes if n != leader)
    before = log_end(cluster, other, "hint", 0)
    results = [
        produce(cluster, other, "hint", 0, batch()).error,
        fetch(cluster, other, "hint", 0, 0).error,
        cluster.broker(other).ListOffsets(
            broker_pb2.ListOffsetsRequest(partitions=[broker_pb2.PartitionOffsetQuery(topic="hint", partition=0, timestamp=-1)]),
            timeout=10,
        ).results[0].error,
    ]
    for error in results:
        assert error.code == E.NOT_LEADER, error
        assert (error.leader_id, error.leader.port) == (leader, cluster.ports[leader])
        assert (error.partition.topic, error.partition.partition) == ("hint", 0)
    assert log_end(cluster, other, "hint", 0) == before
    unknown = produce(cluster, leader, "no-such-topic", 0, batch()).error
    assert unknown.code == E.UNKNOWN_TOPIC


def test_offset_out_of_range_carries_the_readable_range(cluster):
    topic(cluster, "range")
    leader = leader_of(cluster, "range", 0)
    produce(cluster, leader, "range", 0, batch(4))
    result = fetch(cluster, leader, "range", 0, 99)
    assert result.error.code == E.OFFSET_OUT_OF_RANGE
    assert (result.error.log_start_offset, result.error.log_end_offset) == (0, 4)
    assert "99" in result.error.message


def test_refused_batches_leave_the_log_unchanged(cluster):
    topic(cluster, "refused", configs={"max.message.bytes": "2000"})
    leader = leader_of(cluster, "refused", 0)
    produce(cluster, leader, "refused", 0, batch(2))
    before = [log_end(cluster, n, "refused", 0) for n in cluster.nodes]
    too_large = produce(cluster, leader, "refused", 0, batch(1, b"x" * 5000))
    corrupt = bytearray(batch(2))
    corrupt[-1] ^= 0xFF
    corrupted = produce(cluster, leader, "refused", 0, bytes(corrupt))
    two = produce(cluster, leader, "refused", 0, batch(1) + batch(1))
    assert too_large.error.code == E.RECORD_TOO_LARGE and "2000" in too_large.error.message, too_large
    assert corrupted.error.code == E.CORRUPT_RECORD, corrupted
    assert two.error.code == E.INVALID_RECORD and "exactly one batch" in two.error.message, two
    with pytest.raises(grpc.RpcError) as raised:
        cluster.broker(leader).Produce(broker_pb2.ProduceRequest(acks=2, timeout_ms=100), timeout=10)
    assert status.detail_from_metadata(raised.value.trailing_metadata()).code == E.INVALID_REQUIRED_ACKS
    assert [log_end(cluster, n, "refused", 0) for n in cluster.nodes] == before == [2, 2, 2]
    assert offsets_in(fetch(cluster, leader, "refused", 0, 0).records) == [0, 1]


def test_idempotent_retries_answer_the_original_offsets_and_gaps_are_refused(cluster):
    topic(cluster, "idem")
    leader = leader_of(cluster, "idem", 0)
    producer_id = cluster.broker(leader).InitProducerId(broker_pb2.InitProducerIdRequest(client_id="t"), timeout=10).producer_id
    other_id = cluster.broker(leader).InitProducerId(broker_pb2.InitProducerIdRequest(client_id="t"), timeout=10).producer_id
    assert producer_id >= 0 and other_id != producer_id
    first = batch(3, producer_id=producer_id, base_sequence=0)
    a = produce(cluster, leader, "idem", 0, first)
    b = produce(cluster, leader, "idem", 0, batch(2, producer_id=producer_id, base_sequence=3))
    again = produce(cluster, leader, "idem", 0, first)
    gap = produce(cluster, leader, "idem", 0, batch(1, producer_id=producer_id, base_sequence=9))
    assert (a.base_offset, b.base_offset) == (0, 3)
    assert (again.error.code, again.base_offset, again.is_duplicate) == (E.NONE, 0, True)
    assert gap.error.code == E.OUT_OF_ORDER_SEQUENCE
    assert log_end(cluster, leader, "idem", 0) == 5


def test_long_poll_waits_without_spinning_and_answers_at_min_bytes(cluster):
    topic(cluster, "poll")
    leader = leader_of(cluster, "poll", 0)
    cpu_before = time.process_time()
    started = time.monotonic()
    empty = fetch(cluster, leader, "poll", 0, 0, max_wait_ms=1500, min_bytes=1)
    waited = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    assert empty.error.code == E.NONE and empty.records == b""
    assert 1.4 <= waited < 5, waited
    # The whole process (3 nodes with heartbeats and Raft) used well under a core while waiting.
    assert cpu < 0.6 * waited, (cpu, waited)

    answered: list = []

    def poll() -> None:
        answered.append((fetch(cluster, leader, "poll", 0, 0, max_wait_ms=20000, min_bytes=1), time.monotonic()))

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)                       # let the fetch park (it would answer at once with data)
    sent = time.monotonic()
    produce(cluster, leader, "poll", 0, batch(2))
    thread.join(25)
    result, at = answered[0]
    assert offsets_in(result.records) == [0, 1]
    assert at - sent < 5, "answered when the data committed, not at max_wait_ms"


def test_fetch_stream_pushes_new_data_as_it_commits(cluster):
    topic(cluster, "stream")
    leader = leader_of(cluster, "stream", 0)
    produce(cluster, leader, "stream", 0, batch(2))
    request = broker_pb2.FetchRequest(
        max_bytes=1 << 20, partitions=[broker_pb2.PartitionFetch(topic="stream", partition=0, fetch_offset=0, current_leader_epoch=-1)]
    )
    call = cluster.broker(leader).FetchStream(request, timeout=30)
    seen: list[int] = []
    first = next(call)
    seen += offsets_in(first.results[0].records)
    produce(cluster, leader, "stream", 0, batch(3))
    while len(seen) < 5:
        message = next(call)
        seen += offsets_in(message.results[0].records)
    call.cancel()
    assert seen == [0, 1, 2, 3, 4]


def test_deleting_a_topic_removes_its_data_on_every_broker(cluster):
    topic(cluster, "doomed")
    leader = leader_of(cluster, "doomed", 0)
    produce(cluster, leader, "doomed", 0, batch(3))
    directories = [cluster.root / f"node-{n}" / "logs" for n in cluster.nodes]

    def dirs() -> list:
        # A deleted log is renamed "<name>.<id>-delete" first, then removed: both count.
        return [name for root in directories for name in os.listdir(root) if name.startswith("doomed-0")]

    assert len(dirs()) == 3
    response = cluster.admin(1).DeleteTopics(controller_pb2.DeleteTopicsRequest(names=["doomed"]), timeout=30)
    assert response.results[0].error.code == E.NONE, response
    wait_until(lambda: not dirs(), 20, "the partition directories gone on every broker")
    assert all(("doomed", 0) not in node.data_plane.partitions for node in cluster.nodes.values())


def test_exactly_one_node_reports_an_active_controller_and_metrics_count_traffic(cluster):
    topic(cluster, "metered")
    leader = leader_of(cluster, "metered", 0)
    produce(cluster, leader, "metered", 0, batch(4))
    total = 0
    for node_id in cluster.nodes:
        text = cluster.http(node_id, "/metrics")[1]
        total += int(float(re.search(r"^freshet_active_controller_count (\S+)$", text, re.M).group(1)))
    assert total == 1
    text = cluster.http(leader, "/metrics")[1]
    assert re.search(r'^freshet_server_brokertopicmetrics_messages_in_total\{topic="metered"\} 4\.0$', text, re.M), text
    assert re.search(r'^freshet_network_request_latency_seconds_count\{api="Produce"\} [1-9]', text, re.M)
    assert re.search(r'^freshet_purgatory_size\{type="produce"\} 0\.0$', text, re.M)
    # The open-file cache is process-wide (in-process nodes share it): open within its budget.
    open_files = int(float(re.search(r"^freshet_log_open_files (\S+)$", text, re.M).group(1)))
    assert 1 <= open_files <= int(float(re.search(r"^freshet_log_open_files_max (\S+)$", text, re.M).group(1)))
    assert re.search(r"^freshet_log_open_files_evicted_total \d", text, re.M)
    assert cluster.http(leader, "/readyz")[0] == 200


def test_internal_api_appends_reads_committed_and_reports_leadership(cluster):
    topic(cluster, "__internal_test")
    leader = leader_of(cluster, "__internal_test", 0)
    other = next(n for n in cluster.nodes if n != leader)
    plane = cluster.nodes[leader].data_plane
    heard: list = []

    async def go():
        plane.add_leadership_listener(lambda *event: heard.append(event))
        first = await plane.append_as_leader("__internal_test", 0, batch(2), acks="all", timeout_ms=10000)
        second = await plane.append_as_leader("__internal_test", 0, batch(3), acks="all", timeout_ms=10000)
        records, next_offset, high_watermark = plane.read_committed("__internal_test", 0, 0)
        try:
            await cluster.nodes[other].data_plane.append_as_leader("__internal_test", 0, batch(1))
        except PartitionRequestError as error:
            refusal = error.detail
        return first, second, offsets_in(records), next_offset, high_watermark, refusal

    first, second, offsets, next_offset, high_watermark, refusal = asyncio.run_coroutine_threadsafe(go(), cluster.loop).result(30)
    assert (first, second, offsets, next_offset, high_watermark) == (0, 2, [0, 1, 2, 3, 4], 5, 5)
    assert (refusal.code, refusal.leader_id) == (E.NOT_LEADER, leader)
    # Moving leadership away (a reassignment that drops the leader) is heard.
    replicas = [n for n in cluster.nodes if n != leader]
    response = cluster.admin(1).AlterPartitionReassignments(
        controller_pb2.AlterPartitionReassignmentsRequest(
            reassignments=[controller_pb2.PartitionReassignment(partition=common_pb2.TopicPartition(topic="__internal_test", partition=0), target_replicas=replicas)]
        ),
        timeout=30,
    )
    assert response.results[0].error.code == E.NONE, response
    wait_until(lambda: ("__internal_test", 0, False) in [event[:3] for event in heard], 20, "stopped leading heard")


def test_perf_produce_and_consume_report_what_they_measured(cluster):
    """`freshet perf produce/consume --json` against real brokers: one JSON line each, every
    record acknowledged and read back, latency percentiles ordered."""
    import json

    from freshet.cli.main import app
    from typer.testing import CliRunner

    topic(cluster, "perf", partitions=2)
    bootstrap = ",".join(f"127.0.0.1:{port}" for port in cluster.ports.values())
    runner = CliRunner()
    produced = runner.invoke(app, ["perf", "produce", "--topic", "perf", "--num-records", "300", "--record-size", "100",
                                   "--bootstrap-server", bootstrap, "--json"])
    assert produced.exit_code == 0, produced.output
    result = json.loads(produced.stdout.strip().splitlines()[-1])
    assert (result["records"], result["errors"]) == (300, 0)
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["p999_ms"] <= result["max_ms"]
    assert (result["batch_size"], result["malloc_tuned"]) == (1_000_000, True)
    synced = runner.invoke(app, ["perf", "produce", "--topic", "perf", "--num-records", "20", "--record-size", "10", "--sync",
                                 "--bootstrap-server", bootstrap, "--json"])
    assert synced.exit_code == 0 and json.loads(synced.stdout.strip().splitlines()[-1])["mode"] == "sync", synced.output
    consumed = runner.invoke(app, ["perf", "consume", "--topic", "perf", "--messages", "320", "--bootstrap-server", bootstrap, "--json"])
    assert consumed.exit_code == 0, consumed.output
    read = json.loads(consumed.stdout.strip().splitlines()[-1])
    assert (read["records"], read["bytes"], read["check_crcs"], read["malloc_tuned"]) == (320, 300 * 100 + 20 * 10, True, True)
    unchecked = runner.invoke(app, ["perf", "consume", "--topic", "perf", "--messages", "320", "--no-check-crcs",
                                    "--bootstrap-server", bootstrap, "--json"], env={"FRESHET_MALLOC_TUNING": "off"})
    assert unchecked.exit_code == 0, unchecked.output
    read = json.loads(unchecked.stdout.strip().splitlines()[-1])
    assert (read["records"], read["bytes"], read["check_crcs"], read["malloc_tuned"]) == (320, 300 * 100 + 20 * 10, False, False)
    assert (read["max_partition_fetch_bytes"], read["fetch_max_bytes"]) == (1024 * 1024, 50 * 1024 * 1024)
    # Fetch sizes smaller than one batch: every fetch still returns a whole batch, so all arrive.
    small = runner.invoke(app, ["perf", "consume", "--topic", "perf", "--messages", "320", "--max-partition-fetch-bytes", "150",
                                "--fetch-max-bytes", "200", "--bootstrap-server", bootstrap, "--json"])
    assert small.exit_code == 0, small.output
    read = json.loads(small.stdout.strip().splitlines()[-1])
    assert (read["records"], read["bytes"]) == (320, 300 * 100 + 20 * 10)
    assert (read["max_partition_fetch_bytes"], read["fetch_max_bytes"]) == (150, 200)
    refused = runner.invoke(app, ["perf", "consume", "--topic", "perf", "--messages", "1", "--max-partition-fetch-bytes", "0",
                                  "--bootstrap-server", bootstrap])
    assert refused.exit_code == 2 and "max-partition-fetch-bytes" in refused.output
    missing = runner.invoke(app, ["perf", "consume", "--topic", "perf", "--messages", "999", "--timeout-ms", "500",
                                  "--bootstrap-server", bootstrap, "--json"])
    assert missing.exit_code == 1 and "only 320 of 999" in missing.stdout


def _perf_json(bootstrap: str, *args: str) -> dict:
    """`freshet perf ARGS --bootstrap-server B --json` in-process: it must exit 0; its JSON line."""
    import json

    from freshet.cli.main import app
    from typer.testing import CliRunner

    outcome = CliRunner().invoke(app, ["perf", *args, "--bootstrap-server", bootstrap, "--json"])
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.stdout.strip().splitlines()[-1])


def test_perf_produce_default_batches_of_large_records_fit_the_topic_limit(cluster):
    """`perf produce`'s default 1,000,000-byte batches: 60 KB records go 16 to a batch (about
    960 KB, under the topic's default max.message.bytes of 1,048,588) and every one is
    acknowledged and read back whole."""
    topic(cluster, "big", partitions=1)
    bootstrap = ",".join(f"127.0.0.1:{port}" for port in cluster.ports.values())
    result = _perf_json(bootstrap, "produce", "--topic", "big", "--num-records", "48", "--record-size", "60000")
    assert (result["records"], result["errors"], result["batch_size"]) == (48, 0, 1_000_000)
    assert _perf_json(bootstrap, "consume", "--topic", "big", "--messages", "48")["bytes"] == 48 * 60000


def test_perf_produce_round_robin_spreads_records_evenly_over_every_partition(cluster):
    """`freshet perf produce --round-robin` (the scale benchmark's load) sends record i to
    partition i mod the partition count, so 300 records over 3 partitions put 100 in each; the
    default sticky partitioner would fill whole batches of one partition."""
    import json

    from freshet.cli.main import app
    from freshet.client import Consumer, TopicPartition
    from typer.testing import CliRunner

    topic(cluster, "spread", partitions=3)
    bootstrap = ",".join(f"127.0.0.1:{port}" for port in cluster.ports.values())
    produced = CliRunner().invoke(app, ["perf", "produce", "--topic", "spread", "--num-records", "300", "--record-size", "10",
                                        "--round-robin", "--bootstrap-server", bootstrap, "--json"])
    assert produced.exit_code == 0, produced.output
    result = json.loads(produced.stdout.strip().splitlines()[-1])
    assert (result["records"], result["errors"], result["partitioner"]) == (300, 0, "round-robin")
    consumer = Consumer(bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition("spread", p) for p in range(3)])
    finally:
        consumer.close()
    assert sorted(ends.values()) == [100, 100, 100], ends


def test_produce_stream_answers_in_order_by_correlation_id_and_a_failed_acks_0_request_ends_it(cluster):
    """ProduceStream: requests are appended in stream order and answered with their
    correlation_id; an acks=0 request gets no response, and when one fails (here NOT_LEADER) the
    broker ends the stream with that error and its leader hint (broker.proto)."""
    topic(cluster, "streamed")
    leader = leader_of(cluster, "streamed", 0)
    other = next(n for n in cluster.nodes if n != leader)

    def request(correlation_id: int, acks: int) -> broker_pb2.ProduceRequest:
        return broker_pb2.ProduceRequest(
            acks=acks, timeout_ms=10000, correlation_id=correlation_id,
            partitions=[broker_pb2.PartitionRecords(topic="streamed", partition=0, records=batch(2))],
        )

    responses = list(cluster.broker(leader).ProduceStream(iter([request(7, -1), request(8, 0), request(9, 1)]), timeout=30))
    # Answers come as requests complete (the acks=1 one may overtake the acks=all one).
    assert sorted((r.correlation_id, r.results[0].error.code, r.results[0].base_offset) for r in responses) == [
        (7, E.NONE, 0), (9, E.NONE, 4)
    ], "acks=0 (offsets 2-3) gets no response but is appended in stream order"
    with pytest.raises(grpc.RpcError) as raised:
        list(cluster.broker(other).ProduceStream(iter([request(1, 0), request(2, -1)]), timeout=30))
    detail = status.detail_from_metadata(raised.value.trailing_metadata())
    assert (detail.code, detail.leader_id) == (E.NOT_LEADER, leader)


def test_fetch_stream_ends_a_partition_feed_with_its_error(cluster):
    creatable = controller_pb2.CreatableTopic(name="feeds")
    creatable.assignments.extend(controller_pb2.ReplicaAssignment(replicas=r) for r in ([1, 2, 3], [2, 3, 1]))
    assert cluster.admin(1).CreateTopics(controller_pb2.CreateTopicsRequest(topics=[creatable]), timeout=30).results[0].error.code == E.NONE
    for number in range(2):
        wait_until(lambda number=number: isr_complete(cluster, "feeds", number, 3), 20, f"feeds-{number} replicated")
    leaders = [leader_of(cluster, "feeds", number) for number in range(2)]
    assert leaders == [1, 2]
    node = leaders[0]
    request = broker_pb2.FetchRequest(max_bytes=1 << 20, partitions=[
        broker_pb2.PartitionFetch(topic="feeds", partition=number, fetch_offset=0, current_leader_epoch=-1) for number in range(2)
    ])
    produce(cluster, leaders[0], "feeds", 0, batch(1))
    call = cluster.broker(node).FetchStream(request, timeout=30)
    errors, data = {}, {}
    deadline = time.monotonic() + 20
    while (0 not in data or 1 not in errors) and time.monotonic() < deadline:
        for result in next(call).results:
            if result.error.code != E.NONE:
                errors[result.partition] = result.error
            elif result.records:
                data[result.partition] = offsets_in(result.records)
    call.cancel()
    assert data[0] == [0]
    assert errors[1].code == E.NOT_LEADER and errors[1].leader_id == leaders[1]


def test_high_watermarks_are_checkpointed_at_clean_shutdown_and_read_back_at_start(cluster):
    """A replica's high watermark is in `replication-offset-checkpoint` after a clean stop and
    is where the restarted replica starts (clamped to its log end)."""
    topic(cluster, "ckpt")
    leader = leader_of(cluster, "ckpt", 0)
    produce(cluster, leader, "ckpt", 0, batch(3))
    controller = cluster.active_controller().node_id
    node_id = next(n for n in cluster.nodes if n not in (leader, controller))
    wait_until(lambda: cluster.nodes[node_id].data_plane.partitions[("ckpt", 0)].high_watermark == 3, 10, "follower HW 3")
    config = cluster.nodes[node_id].config
    cluster.stop(node_id)
    lines = (pathlib.Path(config.logs_dir) / "replication-offset-checkpoint").read_text().splitlines()
    entries = {tuple(line.split()[:2]): int(line.split()[2]) for line in lines[2:]}
    assert entries[("ckpt", "0")] == 3
    node = cluster.start(node_id)
    cluster.wait_ready(node_id)
    wait_until(lambda: ("ckpt", 0) in node.data_plane.partitions, 10, "the replica applied again")
    partition = node.data_plane.partitions[("ckpt", 0)]
    assert (partition.high_watermark, partition.log_end_offset) == (3, 3)


def test_describe_log_dirs_reports_every_replica_as_its_own_log_sees_it(cluster):
    topic(cluster, "dirs")
    leader = leader_of(cluster, "dirs", 0)
    assert produce(cluster, leader, "dirs", 0, batch(4)).error.code == E.NONE
    for node_id, node in cluster.nodes.items():
        wait_until(lambda node=node: node.data_plane.partitions[("dirs", 0)].high_watermark == 4, 10, f"node {node_id}'s HW at 4")
    wanted = [common_pb2.TopicPartition(topic="dirs", partition=0), common_pb2.TopicPartition(topic="dirs", partition=7)]
    for node_id, node in cluster.nodes.items():
        response = cluster.broker(node_id).DescribeLogDirs(broker_pb2.DescribeLogDirsRequest(partitions=wanted), timeout=10)
        assert response.broker_id == node_id
        hosted, missing = response.replicas
        log = node.data_plane.partitions[("dirs", 0)].log
        assert (hosted.error.code, hosted.is_leader, hosted.log_start_offset, hosted.log_end_offset) == (E.NONE, node_id == leader, 0, 4)
        assert hosted.size_bytes == log.size_bytes > 0
        assert hosted.high_watermark == 4
        assert missing.error.code == E.UNKNOWN_TOPIC and "hosts no replica of dirs-7" in missing.error.message
        everything = cluster.broker(node_id).DescribeLogDirs(broker_pb2.DescribeLogDirsRequest(), timeout=10)
        assert {(r.topic, r.partition) for r in everything.replicas} == set(node.data_plane.partitions)
