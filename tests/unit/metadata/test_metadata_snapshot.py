"""Snapshots: determinism, round trips, replay equality, and the snapshot file format.

The property tests drive the state machine with random command sequences over a small universe
(few brokers, topics and request ids, so duplicates, epochs and CAS conflicts collide often) and
check that apply never raises, the image invariants hold after every command, snapshots round-trip
byte-identically, and replaying the log from any snapshot reaches the same image.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest
from freshet.metadata import commands as c
from freshet.metadata import snapshot, state_machine
from freshet.metadata.errors import SnapshotFormatError
from freshet.metadata.image import EMPTY_IMAGE, NO_LEADER, REQUEST_LOG_CAPACITY, RequestLog
from freshet.metadata.security import (
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
)
from freshet.v1 import metadata_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.metadata_script import EPOCH, Script

REPO = pathlib.Path(__file__).resolve().parents[3]


def build_busy_image() -> Script:
    """A deterministic script touching every command type."""
    s = Script(offset_step=2)
    s.claim()
    s.ok(c.init_cluster(s.rid(), EPOCH, "cluster-x"))
    for node_id in (3, 1, 2, 4):
        s.broker(node_id, rack=f"r{node_id % 2}")
    ids = [s.topic(name, [([1, 2, 3], [1, 2, 3], 1), ([2, 3, 4], [2, 3], 2)], {"retention.ms": str(len(name))}) for name in ("zeta", "alpha", "mid.dle")]
    s.ok(c.change_partition(s.rid(), EPOCH, ids[0], 1, 0, leader=3, isr=[3, 2]))
    s.ok(c.reassign_partition(s.rid(), EPOCH, ids[1], 0, [4, 1]))
    s.ok(c.create_partitions(s.rid(), EPOCH, ids[2], 3, [([4, 1, 2], [4, 1], 4)]))
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"num.partitions": "4", "min.insync.replicas": "2"}))
    s.ok(c.alter_configs(s.rid(), EPOCH, c.broker_resource(2), {"num.partitions": "5"}))
    for group_id in ("zz-billing", "audit"):
        s.ok(c.alter_configs(s.rid(), EPOCH, c.group_resource(group_id), {"lag.alert.seconds": str(len(group_id))}))
    s.ok(c.allocate_producer_ids(s.rid(), EPOCH, 2, s.image.brokers[2].broker_epoch))
    s.ok(c.fence_broker(s.rid(), EPOCH, 4, s.image.brokers[4].broker_epoch))
    s.ok(c.begin_controlled_shutdown(s.rid(), EPOCH, 4, s.image.brokers[4].broker_epoch))
    s.ok(c.delete_topic(s.rid(), EPOCH, ids[2]))
    for name in ("zoe", "adam"):
        for mechanism in ScramMechanism:
            credential = ScramCredential.from_password(mechanism, f"pw-{name}", 4096, salt=name.encode())
            s.ok(c.upsert_user_credential(s.rid(), EPOCH, name, credential))
    s.ok(c.create_acls(s.rid(), EPOCH, [
        AclBinding(ResourceType.TOPIC, "zeta", PatternType.LITERAL, "User:zoe", "*", Operation.READ, Permission.ALLOW),
        AclBinding(ResourceType.GROUP, "g-", PatternType.PREFIXED, "User:adam", "10.0.0.1", Operation.ALL, Permission.DENY),
        AclBinding(ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL, "User:*", "*", Operation.DESCRIBE, Permission.ALLOW),
    ]))
    s.apply(c.noop("x" * 300, EPOCH))                            # an invalid one, too
    return s


def test_snapshot_bytes_are_exactly_protobuf_deterministic_serialization():
    image = build_busy_image().image
    data = snapshot.encode_snapshot(image)
    message = metadata_pb2.MetadataSnapshot()
    message.ParseFromString(data)
    assert message.SerializeToString(deterministic=True) == data
    assert [b.node_id for b in message.brokers] == [1, 2, 3, 4]
    assert [t.topic_id for t in message.topics] == sorted(t.topic_id for t in message.topics)
    assert [u.name for u in message.users] == ["adam", "zoe"]
    assert [cr.mechanism for cr in message.users[0].credentials] == [1, 2]
    assert len(message.acls) == 3
    assert [g.group_id for g in message.group_configs] == ["audit", "zz-billing"]
    assert message.group_configs[0].configs[0].value == "5"
    assert message.format_version == snapshot.SNAPSHOT_FORMAT_VERSION


def test_snapshot_round_trip_is_lossless_and_byte_identical():
    image = build_busy_image().image
    data = snapshot.encode_snapshot(image)
    decoded = snapshot.decode_snapshot(data)
    assert decoded == image
    assert snapshot.encode_snapshot(decoded) == data
    assert snapshot.decode_snapshot(snapshot.encode_snapshot(EMPTY_IMAGE)) == EMPTY_IMAGE


def test_the_same_commands_give_byte_identical_snapshots():
    first = snapshot.encode_snapshot(build_busy_image().image)
    second = snapshot.encode_snapshot(build_busy_image().image)
    assert first == second


# Run with the repository root as the working directory, so `tests` is importable in the child.
_DIGEST_PROGRAM = """
import hashlib
from tests.unit.metadata.test_metadata_snapshot import build_busy_image
from freshet.metadata import snapshot
print(hashlib.sha256(snapshot.encode_snapshot(build_busy_image().image)).hexdigest())
"""


def test_snapshots_do_not_depend_on_the_process_hash_seed():
    """Set/dict order of str keys varies with PYTHONHASHSEED: two processes must still agree."""
    digests = set()
    for seed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", _DIGEST_PROGRAM], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert digests == {hashlib.sha256(snapshot.encode_snapshot(build_busy_image().image)).hexdigest()}


def test_cached_topic_encoding_follows_changes():
    s = build_busy_image()
    before = snapshot.encode_snapshot(s.image)
    topic_id = s.image.topic_ids_by_name["zeta"]
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, isr=[1, 2]))
    after = snapshot.encode_snapshot(s.image)
    assert after != before
    fresh = snapshot.decode_snapshot(after)                     # no cache on decoded topics
    assert snapshot.encode_snapshot(fresh) == after
    assert fresh.partition("zeta", 0).isr == (1, 2)


def test_decode_rejects_garbage_and_broken_invariants():
    with pytest.raises(SnapshotFormatError):
        snapshot.decode_snapshot(b"\xff\xff\xff")
    message = metadata_pb2.MetadataSnapshot()
    message.ParseFromString(snapshot.encode_snapshot(build_busy_image().image))
    message.format_version = 99
    with pytest.raises(SnapshotFormatError, match="format version 99"):
        snapshot.decode_snapshot(message.SerializeToString())
    message.format_version = 1
    message.topics[0].partitions[0].isr.append(42)
    with pytest.raises(SnapshotFormatError, match="ISR is not a subset"):
        snapshot.decode_snapshot(message.SerializeToString())


def test_snapshot_file_round_trip_and_corruption_detection():
    last = snapshot.RaftEntry(b"last", 11, 3)
    previous = snapshot.RaftEntry(b"prev", 10, 2)
    state = snapshot.encode_snapshot(build_busy_image().image)
    data = snapshot.encode_snapshot_file(last, previous, ["b:2", "a:1"], state)
    decoded = snapshot.decode_snapshot_file(data)
    assert decoded == snapshot.SnapshotFile(last, previous, ("a:1", "b:2"), state)
    assert decoded.last_applied == (b"last", 11, 3)             # equal to the tuple pysyncobj stores
    flipped = bytearray(data)
    flipped[-5] ^= 0x01
    with pytest.raises(SnapshotFormatError, match="checksum"):
        snapshot.decode_snapshot_file(bytes(flipped))
    with pytest.raises(SnapshotFormatError, match="payload is"):
        snapshot.decode_snapshot_file(data[:-1])
    with pytest.raises(SnapshotFormatError, match="magic"):
        snapshot.decode_snapshot_file(b"PICKLE!!" + data[8:])
    with pytest.raises(SnapshotFormatError, match="shorter than the header"):
        snapshot.decode_snapshot_file(b"FRSH")


def test_request_log_is_bounded_and_evicts_whole_oldest_chunks_deterministically():
    log = RequestLog()
    for i in range(REQUEST_LOG_CAPACITY + 300):
        log = log.with_request(f"r{i}", b"x")
    assert REQUEST_LOG_CAPACITY <= len(log) < REQUEST_LOG_CAPACITY + 256
    assert log.get("r0") is None and log.get("r255") is None   # the whole first chunk is evicted
    assert log.get("r256") == b"x"
    assert log.get(f"r{REQUEST_LOG_CAPACITY + 299}") == b"x"
    items = list(log.items())
    assert [rid for rid, _ in items] == sorted((rid for rid, _ in items), key=lambda r: int(r[1:]))
    rebuilt = RequestLog.from_items(items)
    assert rebuilt == log
    # A rebuilt log evicts exactly as the original does from then on.
    for i in range(REQUEST_LOG_CAPACITY + 300, REQUEST_LOG_CAPACITY + 800):
        log = log.with_request(f"r{i}", b"y")
        rebuilt = rebuilt.with_request(f"r{i}", b"y")
    assert list(rebuilt.items()) == list(log.items())


# ---------------------------------------------------------------------------------------------
# Property tests over random command sequences
# ---------------------------------------------------------------------------------------------

BROKERS = st.integers(min_value=0, max_value=4)
# Mostly valid values (so commands reach deep paths), with some invalid ones mixed in.
REPLICAS = st.one_of(
    st.permutations([1, 2, 3]).flatmap(lambda order: st.integers(1, 3).map(lambda n: order[:n])),
    st.lists(BROKERS, min_size=0, max_size=4),
)
TOPIC_IDS = st.sampled_from([bytes([i]) * 16 for i in (1, 2, 3)] * 3 + [b"short"])
NAMES = st.sampled_from(["a", "b", "c", "a.b", "a_b", "", "bad name"])
REQUEST_IDS = st.sampled_from([f"r{i}" for i in range(80)] + [""])
EPOCHS = st.sampled_from([EPOCH] * 8 + [0, EPOCH - 1, EPOCH + 1])
BROKER_EPOCHS = st.sampled_from([2, 4, 6] * 3 + [0, 99])
LEADERS = st.integers(min_value=-2, max_value=4)


@st.composite
def _assignment(draw):
    replicas = draw(REPLICAS)
    if draw(st.integers(0, 4)) == 0:
        return replicas, draw(REPLICAS), draw(LEADERS)
    isr = replicas[: draw(st.integers(0, len(replicas)))]
    return replicas, isr, isr[0] if isr else -1


ASSIGNMENT = _assignment()
CONFIGS = st.dictionaries(
    st.sampled_from(["retention.ms", "num.partitions", "cleanup.policy", "min.insync.replicas", "bogus"]),
    st.sampled_from(["1", "-1", "compact", "x", "3"]),
    max_size=2,
)
RESOURCES = st.one_of(
    st.just(c.cluster_resource()),
    BROKERS.map(c.broker_resource),
    TOPIC_IDS.map(lambda t: c.topic_resource(topic_id=t)),
    NAMES.map(lambda n: c.topic_resource(topic_name=n)),
)


def _optional(strategy):
    return st.one_of(st.none(), strategy)


COMMANDS = st.one_of(
    st.builds(c.noop, REQUEST_IDS, EPOCHS),
    st.builds(c.init_cluster, REQUEST_IDS, EPOCHS, st.sampled_from(["c1", "c2"])),
    st.builds(c.claim_controller, REQUEST_IDS, BROKERS, st.sampled_from([EPOCH] * 5 + [EPOCH + 1])),
    st.builds(c.register_broker, REQUEST_IDS, EPOCHS, BROKERS, st.sampled_from([b"i" * 16, b"j" * 16]), st.just("h"), st.just(1)),
    st.builds(c.fence_broker, REQUEST_IDS, EPOCHS, BROKERS, BROKER_EPOCHS),
    st.builds(c.unfence_broker, REQUEST_IDS, EPOCHS, BROKERS, BROKER_EPOCHS),
    st.builds(c.begin_controlled_shutdown, REQUEST_IDS, EPOCHS, BROKERS, BROKER_EPOCHS),
    st.builds(c.create_topic, REQUEST_IDS, EPOCHS, TOPIC_IDS, NAMES, st.lists(ASSIGNMENT, min_size=1, max_size=3), CONFIGS),
    st.builds(c.delete_topic, REQUEST_IDS, EPOCHS, TOPIC_IDS),
    st.builds(c.create_partitions, REQUEST_IDS, EPOCHS, TOPIC_IDS, st.integers(0, 4), st.lists(ASSIGNMENT, max_size=2)),
    st.builds(
        c.change_partition, REQUEST_IDS, EPOCHS, TOPIC_IDS, st.integers(0, 2), st.integers(0, 3),
        _optional(st.integers(-1, 3)), _optional(REPLICAS), _optional(REPLICAS), st.booleans(),
    ),
    st.builds(c.reassign_partition, REQUEST_IDS, EPOCHS, TOPIC_IDS, st.integers(0, 2), REPLICAS),
    st.builds(c.alter_configs, REQUEST_IDS, EPOCHS, RESOURCES, CONFIGS, st.lists(st.sampled_from(["retention.ms", "x"]), max_size=1)),
    st.builds(c.allocate_producer_ids, REQUEST_IDS, EPOCHS, BROKERS, BROKER_EPOCHS),
)


def _prelude() -> list[metadata_pb2.MetadataCommand]:
    """A controller and a few brokers, so random commands reach the interesting paths."""
    prelude = [c.claim_controller("p-claim", 1, EPOCH)]
    for node_id in (1, 2, 3):
        prelude.append(c.register_broker(f"p-reg-{node_id}", EPOCH, node_id, b"i" * 16, "h", 1))
        prelude.append(c.unfence_broker(f"p-unf-{node_id}", EPOCH, node_id, 1 + 2 * (node_id - 1) + 1))
    prelude.append(c.create_topic("p-a", EPOCH, b"\x01" * 16, "a", [([1, 2], [1, 2], 1), ([2, 3], [2, 3], 2)]))
    prelude.append(c.create_topic("p-b", EPOCH, b"\x02" * 16, "b", [([1, 2, 3], [1, 2, 3], 1)]))
    return prelude


def _check_invariants(image) -> None:
    assert set(image.topic_ids_by_name.values()) == set(image.topics_by_id)
    for topic_id, topic in image.topics_by_id.items():
        assert topic.topic_id == topic_id
        assert image.topic_ids_by_name[topic.name] == topic_id
        assert len(topic.partitions) >= 1
        for number, p in enumerate(topic.partitions):
            assert p.partition == number
            assert len(set(p.replicas)) == len(p.replicas) >= 1
            assert set(p.isr) <= set(p.replicas)
            assert p.leader == NO_LEADER or p.leader in p.isr
            assert set(p.adding_replicas) | set(p.removing_replicas) <= set(p.replicas)
            assert p.leader_epoch >= 0 and p.partition_epoch >= 0
    assert image.next_producer_id % 1000 == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COMMANDS, min_size=1, max_size=40), st.integers(min_value=0, max_value=40))
def test_random_command_sequences_keep_invariants_and_snapshot_and_replay_exactly(commands_list, cut):
    script = Script()
    for command in [*_prelude(), *commands_list]:
        before = script.image
        result = script.apply(command)                         # never raises
        _check_invariants(script.image)
        assert result.offset <= script.offset
        if command.request_id and before.recent_requests.get(command.request_id) is not None:
            assert result.SerializeToString(deterministic=True) == before.recent_requests.get(command.request_id)
    image = script.image
    data = snapshot.encode_snapshot(image)
    decoded = snapshot.decode_snapshot(data)
    assert decoded == image
    assert snapshot.encode_snapshot(decoded) == data
    cut = min(cut, len(script.log))
    middle = snapshot.decode_snapshot(snapshot.encode_snapshot(state_machine.replay(EMPTY_IMAGE, script.log[:cut])))
    assert snapshot.encode_snapshot(state_machine.replay(middle, script.log[cut:])) == data
