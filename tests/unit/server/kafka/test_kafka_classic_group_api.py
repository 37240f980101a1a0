"""JoinGroup/SyncGroup/Heartbeat/LeaveGroup handlers over a real GroupCoordinator (in-memory log):
per-version behaviour (KIP-394 member ids from v4, batched LeaveGroup from v3), errors as Kafka
codes, responses that encode in every advertised version."""

from __future__ import annotations

import asyncio
import datetime

from freshet.server.kafka import codec
from freshet.server.kafka.classic_group_api import (
    HeartbeatHandler,
    JoinGroupHandler,
    LeaveGroupHandler,
    SyncGroupHandler,
)
from kio.index import load_request_schema

from tests.unit.server.groups.test_group_coordinator import Clock, MemoryOffsetsLog, loaded, make

SECOND = datetime.timedelta(seconds=10)


def request(api_key: int, version: int, **fields) -> codec.Request:
    schema = load_request_schema(api_key, version)
    known = {name: value for name, value in fields.items() if codec.has_field(schema, name)}
    if "protocols" in known:
        protocol = codec.nested(schema, "JoinGroupRequestProtocol")
        known["protocols"] = tuple(protocol(name=n, metadata=m) for n, m in known["protocols"])
    if "assignments" in known:
        item = codec.nested(schema, "SyncGroupRequestAssignment")
        known["assignments"] = tuple(item(member_id=m, assignment=a) for m, a in known["assignments"])
    if api_key == 13 and "members" in known:
        item = codec.nested(schema, "MemberIdentity")
        known["members"] = tuple(codec.build(item, member_id=m, group_instance_id=i, reason=None) for m, i in known["members"])
    for name in ("group_instance_id", "reason", "protocol_type", "protocol_name"):
        if codec.has_field(schema, name) and name not in known:
            known[name] = None
    return codec.Request(api_key, version, 1, "client", schema(**known), 0)


def join_request(version, member_id=""):
    return request(11, version, group_id="g", session_timeout=SECOND, rebalance_timeout=SECOND, member_id=member_id,
                   protocol_type="consumer", protocols=[("range", b"m")])


def encodes(req: codec.Request, body) -> None:
    codec.encode_response(req.api_key, req.api_version, req.correlation_id, body)


def test_every_version_round_trips():
    async def main():
        coordinator = await loaded(make(MemoryOffsetsLog(), Clock()))
        join, sync, beat, leave = (JoinGroupHandler(coordinator), SyncGroupHandler(coordinator),
                                   HeartbeatHandler(coordinator), LeaveGroupHandler(coordinator))
        for version in range(0, 10):
            req = join_request(version)
            first = await join.handle(req)
            encodes(req, first)
            if version >= 4:
                assert first.error_code == 79 and first.member_id               # MEMBER_ID_REQUIRED
                req = join_request(version, first.member_id)
                first = await join.handle(req)
                encodes(req, first)
            assert first.error_code == 0 and first.leader == first.member_id
            assert [m.metadata for m in first.members] == [b"m"]
            member_id, generation = first.member_id, first.generation_id
            sync_version = min(version, 5)
            req = request(14, sync_version, group_id="g", generation_id=generation, member_id=member_id,
                          protocol_type="consumer", protocol_name="range", assignments=[(member_id, b"A")])
            synced = await sync.handle(req)
            encodes(req, synced)
            assert (synced.error_code, synced.assignment) == (0, b"A")
            req = request(12, min(version, 4), group_id="g", generation_id=generation, member_id=member_id)
            beaten = beat.handle(req)
            encodes(req, beaten)
            assert beaten.error_code == 0
            req = request(12, min(version, 4), group_id="g", generation_id=generation + 5, member_id=member_id)
            assert beat.handle(req).error_code == 22                              # ILLEGAL_GENERATION
            leave_version = min(version, 5)
            if leave_version >= 3:
                req = request(13, leave_version, group_id="g", members=[(member_id, None), ("ghost", None)])
                left = await leave.handle(req)
                assert [m.error_code for m in left.members] == [0, 25]            # UNKNOWN_MEMBER_ID for ghost
            else:
                req = request(13, leave_version, group_id="g", member_id=member_id)
                left = await leave.handle(req)
                assert left.error_code == 0
            encodes(req, left)
            req = request(12, min(version, 4), group_id="g", generation_id=generation, member_id=member_id)
            assert beat.handle(req).error_code == 25

    asyncio.run(main())


def test_a_broker_that_does_not_coordinate_the_group_answers_not_coordinator():
    async def main():
        coordinator = make(MemoryOffsetsLog(), Clock())                           # leads nothing
        for version in range(0, 10):
            req = join_request(version)
            answer = await JoinGroupHandler(coordinator).handle(req)
            encodes(req, answer)
            assert answer.error_code == 16
        for version in range(0, 6):
            req = request(14, version, group_id="g", generation_id=1, member_id="m", assignments=[])
            answer = await SyncGroupHandler(coordinator).handle(req)
            encodes(req, answer)
            assert answer.error_code == 16
            req = request(13, version, group_id="g", member_id="m", members=[("m", None)])
            answer = await LeaveGroupHandler(coordinator).handle(req)
            encodes(req, answer)
            assert answer.error_code == 16
        req = request(12, 4, group_id="g", generation_id=1, member_id="m")
        assert HeartbeatHandler(coordinator).handle(req).error_code == 16

    asyncio.run(main())
