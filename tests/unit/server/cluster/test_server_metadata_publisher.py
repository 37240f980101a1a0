"""A broker-only node's metadata from a WatchMetadata stream (server/cluster/publisher.py).

Goal (issue 4): a broker never applies an older offset and re-syncs after a gap. Method: feed a
WatchPublisher the messages a controller would send (a snapshot, then delta batches built from a
scripted metadata log) without any network, including a batch that skips commands, one that
repeats an old offset and a snapshot older than the image.
"""

from __future__ import annotations

import asyncio

import pytest
from freshet.metadata import commands as c
from freshet.metadata import snapshot
from freshet.server.cluster.channels import ControllerChannels
from freshet.server.cluster.publisher import WatchPublisher, _Resync
from freshet.server.config import HostPort
from freshet.v1 import controller_pb2

from tests.support.metadata_script import EPOCH, Script


def scripted_log() -> tuple[Script, list[tuple[int, bytes]]]:
    script = Script(offset_step=3)              # offsets are not dense (Raft no-ops leave gaps)
    script.cluster(3)
    for number in range(4):
        script.ok(c.create_topic(script.rid(), EPOCH, bytes([number + 1]) * 16, f"t{number}", [([1, 2], [1, 2], 1)]))
    return script, script.log


def deltas(previous: int, entries) -> controller_pb2.MetadataDeltas:
    return controller_pb2.MetadataDeltas(
        previous_offset=previous, deltas=[controller_pb2.MetadataDelta(offset=o, command=d) for o, d in entries]
    )


def publisher() -> WatchPublisher:
    channels = ControllerChannels({1: HostPort("127.0.0.1", 1)}, self_id=4)
    return WatchPublisher(channels, node_id=4, controller_hint=lambda: None)


def test_snapshot_then_deltas_reach_the_controllers_image_and_notify_listeners():
    script, log = scripted_log()
    replay = Script(offset_step=3)
    for _, data in log[:5]:
        replay.apply(c.decode(data))
    watcher = publisher()
    seen = []
    watcher.add_listener(lambda old, new: seen.append((old.offset, new.offset)))
    data = snapshot.encode_snapshot(replay.image)
    asyncio.run(watcher._apply_snapshot(controller_pb2.MetadataSnapshotData(offset=replay.image.offset, snapshot=data)))
    assert watcher.image.offset == log[4][0]
    watcher._apply_deltas(deltas(log[4][0], log[5:8]))
    watcher._apply_deltas(controller_pb2.MetadataDeltas(previous_offset=log[7][0]))     # keepalive
    watcher._apply_deltas(deltas(log[7][0], log[8:]))
    assert snapshot.encode_snapshot(watcher.image) == snapshot.encode_snapshot(script.image)
    assert seen == [(0, log[4][0]), (log[4][0], log[7][0]), (log[7][0], log[-1][0])]


def test_a_gap_or_an_old_offset_is_never_applied_and_asks_for_a_resync():
    _, log = scripted_log()
    watcher = publisher()
    watcher._apply_deltas(deltas(0, log[:4]))
    before = watcher.image
    with pytest.raises(_Resync, match="follow offset"):
        watcher._apply_deltas(deltas(log[4][0], log[5:7]))                  # log[4] is missing
    assert watcher.image is before
    with pytest.raises(_Resync, match="does not advance"):
        watcher._apply_deltas(deltas(log[3][0], [log[2], *log[4:6]]))       # an old offset inside
    assert watcher.image is before
    older = snapshot.encode_snapshot(before)
    asyncio.run(watcher._apply_snapshot(controller_pb2.MetadataSnapshotData(offset=before.offset, snapshot=older)))
    assert watcher.image is before, "a snapshot that is not newer changes nothing"
    watcher._apply_deltas(deltas(log[3][0], log[4:]))
    assert watcher.image.offset == log[-1][0]


def test_a_watch_that_trails_the_heartbeat_controller_for_too_long_moves_on(monkeypatch):
    """Goal: a broker-only node does not follow a voter cut off from the leader for ever (it still
    sends keepalives, but no news). Method: the broker's heartbeat replies carry a newer controller
    epoch than the watched image; after WATCH_STALE_S of that the check raises _Stale, not before,
    and catching up resets it."""
    from freshet.server.cluster import publisher as metadata_publisher
    now = [100.0]
    monkeypatch.setattr(metadata_publisher.time, "monotonic", lambda: now[0])
    _, log = scripted_log()
    newest = [EPOCH]
    watcher = WatchPublisher(ControllerChannels({1: HostPort("127.0.0.1", 1)}, 4), 4, lambda: None, lambda: newest[0])
    watcher._apply_deltas(deltas(0, log))
    watcher._check_not_stale(1)
    newest[0] = EPOCH + 1
    watcher._check_not_stale(1)
    now[0] += metadata_publisher.WATCH_STALE_S - 0.1
    watcher._check_not_stale(1)
    now[0] += 0.1
    with pytest.raises(metadata_publisher._Stale, match="controller epoch 7"):
        watcher._check_not_stale(1)
    newest[0] = EPOCH
    now[0] += 100
    watcher._check_not_stale(1)


def test_a_watch_whose_channel_was_retired_under_it_reconnects(monkeypatch):
    """The broker's heartbeats retire a silent controller's channel (ControllerChannels.reset);
    gRPC later cancels the watch still running on it, which its task sees as CancelledError.
    The watch must start again, not end the broker's metadata for good; a real cancellation
    of the publisher still ends it."""
    from freshet.server.cluster import publisher as metadata_publisher
    monkeypatch.setattr(metadata_publisher, "WATCH_RETRY_S", 0.01)
    watcher = publisher()
    attempts: list[int] = []

    async def watch(target: int) -> None:
        attempts.append(target)
        if len(attempts) == 1:
            raise asyncio.CancelledError()                   # what a call on a closed channel raises
        await asyncio.sleep(60)

    watcher._watch = watch

    async def scenario() -> bool:
        await watcher.start()
        for _ in range(100):
            if len(attempts) >= 2:
                break
            await asyncio.sleep(0.01)
        running = not watcher._task.done()
        await watcher.close()
        return running

    assert asyncio.run(scenario()) and len(attempts) == 2
    assert watcher._task.cancelled()
