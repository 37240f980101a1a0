"""Idempotent producer against a real 3-node cluster whose responses get lost.

Goal: a producer that does not hear back retries, and the log still has each record exactly once
and in order (KIP-98 idempotence: the leader recognises a retried batch by producer id and
sequence). Method: each node advertises a loopback TCP proxy in front of its gRPC port, so every
client and broker connection goes through a proxy. Once armed, a proxy cuts a *new* connection as
soon as the client has sent a produce-sized request (more than 4 KiB) and the broker starts to
answer: the request reached the broker and was appended, the response is lost, the producer's
stream breaks and it retries on a new connection. Connections opened before arming (replication
streams between brokers) are left alone. The test checks the proxies did cut responses, then reads
every partition from the start.
"""

from __future__ import annotations

import socket
import threading

import pytest
from freshet.client import Consumer, Producer, TopicPartition

from tests.support.node_cluster import NodeCluster
from tests.support.ports import free_port_block

pytestmark = pytest.mark.cluster


class DroppingProxy:
    """A TCP proxy (loopback) that can lose the first response of new, produce-sized connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port_block(1)
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.is_armed = False
        self.drops_left = 0
        self.drops_done = 0
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.is_closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, drops: int) -> None:
        with self.lock:
            self.is_armed = True
            self.drops_left = drops

    def _accept(self) -> None:
        while not self.is_closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                is_watched = self.is_armed
                self.sockets += [client, server]
            state = {"sent": 0, "watched": is_watched}
            threading.Thread(target=self._pump, args=(client, server, state, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, state: dict, is_request: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if is_request:
                    state["sent"] += len(data)
                elif state["watched"] and state["sent"] > 4096:
                    with self.lock:
                        drop = self.drops_left > 0
                        if drop:
                            self.drops_left -= 1
                            self.drops_done += 1
                    state["watched"] = False
                    if drop:
                        break  # the response is lost: cut both sides
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.is_closed = True
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.close()
                except OSError:
                    pass


class ProxiedCluster(NodeCluster):
    """One controller-only node (1) and three broker-only nodes (2-4) that advertise a
    DroppingProxy in front of their gRPC port (a controller must advertise its own port)."""

    BROKERS = (2, 3, 4)

    def __init__(self, root) -> None:
        super().__init__(root, controllers=1, extra_nodes=3)
        self.proxies = {node_id: DroppingProxy(self.ports[node_id]) for node_id in self.BROKERS}

    def argv(self, node_id: int, roles: str) -> list[str]:
        argv = super().argv(node_id, roles)
        if node_id in self.proxies:
            argv += ["--advertised", f"127.0.0.1:{self.proxies[node_id].port}"]
        return argv

    def close(self) -> None:
        super().close()
        for proxy in self.proxies.values():
            proxy.close()


def test_lost_produce_responses_leave_each_record_once_and_in_order(tmp_path):
    with ProxiedCluster(tmp_path) as cluster:
        cluster.start(1, "controller")
        for node_id in cluster.BROKERS:
            cluster.start(node_id, "broker")
        cluster.wait_ready()
        cluster.create_topic(1, "ledger", 3, 3)
        bootstrap = ",".join(f"127.0.0.1:{proxy.port}" for proxy in cluster.proxies.values())
        for proxy in cluster.proxies.values():
            proxy.arm(drops=2)
        count = 3000
        with Producer(bootstrap, acks="all", enable_idempotence=True, linger_ms=2, batch_size=16384) as producer:
            futures = [producer.send("ledger", value=f"{n:06d}".encode() + b"." * 500, partition=n % 3) for n in range(count)]
            producer.flush()
            results = [future.result(60) for future in futures]
        dropped = sum(proxy.drops_done for proxy in cluster.proxies.values())
        assert dropped >= 2, f"the proxies cut only {dropped} responses: the test did not exercise retries"
        for partition in range(3):
            expected = [f"{n:06d}".encode() for n in range(partition, count, 3)]
            tp = TopicPartition("ledger", partition)
            got = []
            with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
                consumer.assign([tp])
                end = consumer.end_offsets([tp])[tp]
                assert end == len(expected), f"partition {partition}: {end} records for {len(expected)} sent"
                while len(got) < end:
                    got += [record.value[:6] for record in consumer.poll(timeout_ms=1000)]
            assert got == expected, f"partition {partition}: duplicated, lost or reordered records"
            offsets = [md.offset for md in results if md.partition == partition]
            assert offsets == list(range(len(expected))), "acknowledged offsets are the records' places"
        print(f"\n{dropped} produce responses lost; {count} records each written once, in order")
