"""A fake SDK Transport whose brokers answer DescribeLogDirs from a table, for the console's topic
page without a cluster. Not a test module.

`FakeLogDirs(logs, silent=...)`: `logs[(broker_address, topic, partition)]` is the ReplicaLogInfo
that broker reports (a missing entry: UNKNOWN_TOPIC, not hosted there); addresses in `silent`
never answer (the call blocks until `release()`), as a broker that accepts and stays mute.
`asked` records the (address, partitions) of every call.
"""

from __future__ import annotations

import threading

from freshet.v1 import broker_pb2, common_pb2


class _Stub:
    def __init__(self, fake: FakeLogDirs, address: str) -> None:
        self._fake = fake
        self._address = address

    def DescribeLogDirs(self, request, timeout=None):  # noqa: N802 - the gRPC method's name
        fake = self._fake
        with fake.lock:
            fake.asked.append((self._address, sorted((p.topic, p.partition) for p in request.partitions)))
        if self._address in fake.silent:
            fake.released.wait(30)
        replicas = []
        for p in request.partitions:
            info = fake.logs.get((self._address, p.topic, p.partition))
            if info is None:
                error = common_pb2.ErrorDetail(code=common_pb2.UNKNOWN_TOPIC, message=f"{p.topic}-{p.partition} is not hosted here")
                info = broker_pb2.ReplicaLogInfo(topic=p.topic, partition=p.partition, error=error)
            replicas.append(info)
        return broker_pb2.DescribeLogDirsResponse(replicas=replicas)


class FakeLogDirs:
    """The Transport part the console's log lookup uses: `stub(address)`. Thread-safe."""

    def __init__(self, logs: dict | None = None, silent: set[str] = frozenset()) -> None:
        self.logs = dict(logs or {})
        self.silent = set(silent)
        self.asked: list[tuple[str, list]] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.bootstrap_addresses = ["127.0.0.1:1"]

    def stub(self, address: str) -> _Stub:
        return _Stub(self, address)

    def release(self) -> None:
        self.released.set()


def replica_log(topic: str, partition: int, is_leader: bool, start: int, hw: int, end: int,
                size: int) -> broker_pb2.ReplicaLogInfo:
    return broker_pb2.ReplicaLogInfo(
        topic=topic, partition=partition, is_leader=is_leader, log_start_offset=start, high_watermark=hw,
        log_end_offset=end, size_bytes=size, error=common_pb2.ErrorDetail(code=common_pb2.NONE),
    )
